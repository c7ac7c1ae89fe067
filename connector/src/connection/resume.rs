//! A socket's part in a resumable session (PROTOCOL.md §3, `session`):
//! opening one at login, resuming one, and what happens to it when the
//! socket ends — detached for the grace period, or over.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, info, warn};
use warren_proto::{
    ConnId, ConnectorId, EventKind, Frame, LoginReply, Uid,
    cmd::{self, code},
    encode_body,
};

use super::{Conn, error_frame, publish};
use crate::{
    handover,
    registry::{ConnHandle, Exit},
    server::Shared,
    session::{Bounds, Outcome, Refusal, Session},
    stats::Stats,
};

impl Conn<'_> {
    /// A new resumable session for this socket, joined before the uid is
    /// bound so that every frame sent to it is numbered.
    pub(super) fn open_session(&self, uid: Uid) -> Arc<Session> {
        let session = Session::new(uid, &self.shared.id, self.handle.id(), self.bounds());
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
        // Checked before this socket joins it: a client whose last frame
        // is out of the session's range resyncs at once.
        session.check_resume(last)?;
        let reply = self.login_answer(uid, &session, Some(true), seq);
        self.handle.adopt(conn);
        self.handle.join(session.clone());
        let stats = &self.shared.stats;
        let replayed = match session.attach(self.handle, reply, last, stats) {
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

    /// Resumes here a session that connection `from.1` of connector
    /// `from.0` holds (see `handover`): asks the game to move it, waits for
    /// its state, and answers `resumed` with every frame after `last`, or
    /// `resync` (a new session) when it does not come.
    pub(super) async fn resume_from(
        &mut self,
        uid: Uid,
        seq: u64,
        from: (ConnectorId, ConnId, &str),
        last: u64,
    ) -> Result<(), Exit> {
        let shared = self.shared;
        let session = Session::incoming(uid, &shared.id, self.handle.id(), self.bounds());
        self.handle.join(session.clone());
        self.bind_new(uid).await;
        self.uid = Some(uid);
        let (connector, conn, token) = from;
        let resume = EventKind::Resume {
            from: connector,
            from_conn: conn,
            session: token.to_owned(),
        };
        if let Err(e) = publish(shared, self.event(uid, resume)).await {
            warn!(%uid, error = %e, "could not ask the game to move a session");
            return Err(self.unavailable(uid, seq, Some(&session)));
        }
        let taken = session
            .arrival(handover::STATE_WAIT)
            .await
            .and_then(|state| match state.uid == uid.0 {
                true => state.serves(last).and_then(|()| session.adopt(state)),
                false => Err("the session is another player's"),
            });
        if let Err(why) = taken {
            info!(%uid, why, "cannot resume a session from another connector: a new session (resync)");
            return self.resync_afresh(uid, &session, seq).await;
        }
        let reply = self.login_answer(uid, &session, Some(true), seq);
        match session.attach(self.handle, reply, last, &shared.stats) {
            Ok(replayed) => {
                Stats::inc(&shared.stats.resumed);
                Stats::inc(&shared.stats.resumed_from_elsewhere);
                Stats::add(&shared.stats.replayed_frames, replayed);
                debug!(%uid, replayed, "session resumed from another connector");
                Ok(())
            }
            Err(why) => {
                // It ended between its adoption and the attach.
                info!(%uid, why, "a moved session ended while resuming");
                Stats::inc(&shared.stats.resyncs);
                let close = EventKind::Close {
                    reason: "resync".into(),
                };
                shared.registry.unbind(uid, self.handle);
                if let Err(e) = publish(shared, self.event(uid, close)).await {
                    warn!(%uid, error = %e, "could not announce a resync");
                }
                self.uid = None;
                Err(Exit::Close(CloseCode::Again, "resync: log in again"))
            }
        }
    }

    /// The session could not be taken over: it starts afresh, numbered
    /// from 1 with what it held, and the client hears `resync`; services
    /// see the player leave and come back.
    async fn resync_afresh(&self, uid: Uid, session: &Session, seq: u64) -> Result<(), Exit> {
        let shared = self.shared;
        Stats::inc(&shared.stats.resyncs);
        session.start_afresh();
        let close = EventKind::Close {
            reason: "resync".into(),
        };
        let connect = EventKind::Connect {
            peer: self.peer.to_string(),
        };
        for kind in [close, connect] {
            if let Err(e) = publish(shared, self.event(uid, kind)).await {
                warn!(%uid, error = %e, "could not announce a resync");
            }
        }
        let reply = self.login_answer(uid, session, Some(false), seq);
        session
            .attach(self.handle, reply, 0, &shared.stats)
            .map(drop)
            .map_err(|_| Exit::Close(CloseCode::Again, "session ended, log in again"))
    }

    fn bounds(&self) -> Bounds {
        let settings = &self.shared.settings;
        Bounds {
            frames: settings.resume_buffer_frames.max(1),
            bytes: settings.resume_buffer_bytes.max(1),
        }
    }

    /// The login answer (cmd 1, not numbered) of a resumable session:
    /// `resumed` says whether a resume asked for was served (None: none
    /// was asked for); `false` is a `resync`.
    pub(super) fn login_answer(
        &self,
        uid: Uid,
        session: &Session,
        resumed: Option<bool>,
        seq: u64,
    ) -> Bytes {
        let reply = LoginReply {
            uid: uid.0,
            session: Some(session.token().to_owned()),
            grace_ms: Some(self.shared.settings.resume_grace_ms.as_millis() as u64),
            resumed,
            reason: (resumed == Some(false)).then(|| "resync".to_owned()),
        };
        Frame::new(seq, cmd::LOGIN, encode_body(&reply))
            .encode()
            .into()
    }

    /// The game could not be told of a login (or a resume): the uid is let
    /// go, the session (if any) ends, and the client hears `unavailable`
    /// (not numbered: no session of its own answers it); the way out.
    pub(super) fn unavailable(&mut self, uid: Uid, seq: u64, session: Option<&Session>) -> Exit {
        self.shared.registry.unbind(uid, self.handle);
        if let Some(session) = session {
            session.end("unavailable");
        }
        self.uid = None;
        let refusal = error_frame(seq, code::UNAVAILABLE, "the game is unavailable, try again");
        self.handle.enqueue(refusal, &self.shared.stats);
        Exit::Close(CloseCode::Again, "unavailable")
    }

    /// The socket of `uid` has ended with `event`: a resumable session
    /// whose socket dropped is detached and waits for its client (the game
    /// hears `Detached`); anything else ends the session and the game hears
    /// the Close.
    pub(super) async fn socket_gone(&self, uid: Uid, event: EventKind) {
        let shared = self.shared;
        if let Some(session) = self.handle.session() {
            if session.moving() {
                // Handed (or being handed) to another connector: nothing
                // here is the game's business any more.
                return;
            }
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
        () = shared.drained.cancelled() => {
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
