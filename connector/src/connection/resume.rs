//! A socket's part in a resumable session (PROTOCOL.md §3, `session`):
//! opening one at login, resuming one, and what happens to it when the
//! socket ends — detached for the grace period, or over.

use std::{sync::Arc, time::Instant};

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, info, warn};
use warren_proto::{EventKind, Frame, LoginReply, Uid, cmd, encode_body};

use super::{Conn, publish};
use crate::{
    registry::{ConnHandle, Exit},
    server::Shared,
    session::{Bounds, Outcome, Refusal, Session},
    stats::Stats,
};

impl Conn<'_> {
    /// A new resumable session for this socket, joined before the uid is
    /// bound so that every frame sent to it is numbered.
    pub(super) fn open_session(&self, uid: Uid) -> Arc<Session> {
        let settings = &self.shared.settings;
        let bounds = Bounds {
            frames: settings.resume_buffer_frames.max(1),
            bytes: settings.resume_buffer_bytes.max(1),
        };
        let session = Session::new(uid, &self.shared.id, self.handle.id(), bounds);
        self.handle.join(session.clone());
        Stats::inc(&self.shared.stats.resumable_logins);
        session
    }

    /// Resumes the session `token` of `uid` on this socket: answers the
    /// login, replays every frame after `last`, and tells the game the
    /// player is back. Err: why it cannot (nothing was changed, except in
    /// one race, where the socket is closed and the client resumes again).
    pub(super) async fn resume(
        &mut self,
        uid: Uid,
        seq: u64,
        token: &str,
        last: u64,
    ) -> Result<(), Refusal> {
        let (connector, conn) = Session::locate(token).ok_or("not a session token")?;
        if connector != self.shared.id {
            return Err("the session is held by another connector");
        }
        let old = self
            .shared
            .registry
            .by_conn(conn)
            .ok_or("no such session here (it ended)")?;
        let session = old
            .session()
            .filter(|s| s.is(token) && s.uid == uid)
            .cloned()
            .ok_or("not this player's session")?;
        if let Some(why) = session.ended() {
            debug!(why, "the session has ended");
            return Err("the session has ended");
        }
        let settings = &self.shared.settings;
        let reply = LoginReply {
            uid: uid.0,
            session: Some(token.to_owned()),
            grace_ms: Some(settings.resume_grace_ms.as_millis() as u64),
            resumed: Some(true),
            reason: None,
        };
        let reply = Frame::new(seq, cmd::LOGIN, encode_body(&reply)).encode();
        self.handle.adopt(conn);
        self.handle.join(session.clone());
        let stats = &self.shared.stats;
        let replayed = match session.attach(self.handle, reply.into(), last, stats) {
            Ok(n) => n,
            Err(why) => {
                // Joined to a session that ended between the look and the
                // attach: this socket cannot start another one.
                info!(%uid, why, "the session ended while resuming");
                self.handle
                    .stop(Exit::Close(CloseCode::Again, "session ended, log in again"));
                return Ok(());
            }
        };
        if let Some(displaced) = self.shared.registry.bind(uid, self.handle.clone()) {
            // A socket the client gave up on (half-open, say): it is closed
            // without a word; the session is this one's now.
            displaced.stop(Exit::Close(CloseCode::Policy, "resumed on another socket"));
        }
        self.uid = Some(uid);
        Stats::inc(&stats.resumed);
        Stats::add(&stats.replayed_frames, replayed);
        debug!(%uid, %conn, replayed, "session resumed");
        let attached = self.event(
            uid,
            EventKind::Attached {
                peer: self.peer.to_string(),
            },
        );
        if let Err(e) = publish(self.shared, attached).await {
            warn!(%uid, error = %e, "could not announce a resumed session");
        }
        Ok(())
    }

    /// The socket of `uid` has ended with `event`: a resumable session
    /// whose socket dropped is detached and waits for its client (the game
    /// hears `Detached`); anything else ends the session and the game hears
    /// the Close.
    pub(super) async fn socket_gone(&self, uid: Uid, event: EventKind) {
        let shared = self.shared;
        if let Some(session) = self.handle.session() {
            if self.keeps_session() {
                if let Some(epoch) = session.detach(self.handle) {
                    Stats::inc(&shared.stats.detached);
                    let reason = match &event {
                        EventKind::Close { reason } => reason.clone(),
                        EventKind::Error { error } => format!("error: {error}"),
                        _ => "dropped".to_owned(),
                    };
                    let detached = self.event(uid, EventKind::Detached { reason });
                    if let Err(e) = publish(shared, detached).await {
                        warn!(%uid, error = %e, "could not announce a detached session");
                    }
                    let watch = watch(shared.clone(), self.handle.clone(), session.clone(), epoch);
                    shared.watchers.spawn(watch);
                    return;
                }
            } else {
                session.end_from(self.handle, "closed");
            }
        }
        if shared.registry.unbind(uid, self.handle) {
            self.publish_lifecycle(uid, event).await;
        }
    }

    /// Whether the way this socket ended leaves its session resumable: it
    /// dropped, was not read, went silent, or the connector is stopping;
    /// not a close with 1000 (leaving), a kick, or a protocol violation.
    fn keeps_session(&self) -> bool {
        if self.left {
            return false;
        }
        match self.handle.exit() {
            Exit::Gone => true,
            Exit::Close(code, _) => matches!(code, CloseCode::Again | CloseCode::Away),
            Exit::Kick(reason) => reason == cmd::kick::RECONNECT,
        }
    }
}

/// Watches a detached session until its client resumes it, it ends, the
/// grace period passes, or the connector stops; when it is over, the game
/// hears the Close.
async fn watch(shared: Arc<Shared>, handle: Arc<ConnHandle>, session: Arc<Session>, epoch: u64) {
    let until = Instant::now() + shared.settings.resume_grace_ms;
    let outcome = tokio::select! {
        outcome = session.watch(epoch, until) => outcome,
        () = shared.shutdown.cancelled() => {
            session.end("shutdown");
            Outcome::Ended
        }
    };
    let reason = match outcome {
        Outcome::Attached => return,
        Outcome::Expired if session.expire(epoch) => {
            Stats::inc(&shared.stats.sessions_expired);
            "resume_grace_ended".to_owned()
        }
        // Resumed at the deadline.
        Outcome::Expired => return,
        Outcome::Ended => {
            let why = session.ended().unwrap_or("ended");
            if why == "overflow" {
                Stats::inc(&shared.stats.sessions_overflowed);
            }
            format!("session_{why}")
        }
    };
    let uid = session.uid;
    if shared.registry.unbind(uid, &handle) {
        debug!(%uid, reason, "a detached session is over");
        let close = warren_proto::BusEvent {
            connector: shared.id.clone(),
            conn: handle.id(),
            uid,
            kind: EventKind::Close { reason },
        };
        if let Err(e) = publish(&shared, close).await {
            warn!(%uid, error = %e, "could not announce the end of a detached session");
        }
    }
}
