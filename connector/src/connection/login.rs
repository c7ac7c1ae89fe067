//! Logging a socket in: the token, the cooldown, binding the uid (the
//! older socket of the uid goes), Connect, and the answer; or resuming a
//! session (`resume`).

use std::sync::Arc;

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, info, warn};
use warren_proto::{
    EventKind, Frame, LoginReply, LoginRequest, Uid,
    cmd::{self, code, kick},
    decode_body, encode_body,
};

use super::{Conn, publish};
use crate::{registry::Exit, session::Session, stats::Stats};

impl Conn<'_> {
    /// Verifies the token, binds the uid (kicking an older socket of the same
    /// uid), announces Connect and replies; resumes a session instead when
    /// asked to and able to (`resume`). An error is the way out.
    ///
    /// A revocation (logout, ban) that comes while the login is under way
    /// kicks the socket once it is bound, as if it had come just after:
    /// the revocation looks for the player's socket after recording the
    /// time, the login looks at the times again after binding it, so one
    /// of the two sees the other.
    pub(super) async fn login(&mut self, frame: Frame) -> Result<(), Exit> {
        let (req, uid, issued_ms) = self.verify(&frame)?;
        self.log_in(frame, req, uid).await?;
        if let Some(reason) = self.shared.verifier.revoked_since(uid, issued_ms) {
            info!(%uid, %reason, "kicked: revoked while logging in");
            crate::server::kick(self.shared, self.handle, &reason);
        }
        Ok(())
    }

    async fn log_in(&mut self, frame: Frame, req: LoginRequest, uid: Uid) -> Result<(), Exit> {
        let stats = &self.shared.stats;
        let mut resync = false;
        if let Some(token) = &req.resume
            && let Some((connector, conn)) = Session::locate(token)
            && connector != self.shared.id
        {
            let from = (connector, conn, token.as_str());
            return self
                .resume_from(uid, frame.seq, from, req.last.unwrap_or(0))
                .await;
        }
        if let Some(token) = &req.resume {
            match self
                .resume(uid, frame.seq, token, req.last.unwrap_or(0))
                .await
            {
                Ok(()) => return Ok(()),
                Err(why) => {
                    Stats::inc(&stats.resyncs);
                    info!(%uid, peer = %self.peer, why, "cannot resume: a new session (resync)");
                    resync = true;
                }
            }
        }
        let session = (req.resumable || resync).then(|| self.open_session(uid));
        self.bind_new(uid).await;
        self.uid = Some(uid);
        let connect = self.event(
            uid,
            EventKind::Connect {
                peer: self.peer.to_string(),
            },
        );
        if let Err(e) = publish(self.shared, connect).await {
            warn!(%uid, error = %e, "could not announce a login");
            return Err(self.unavailable(uid, frame.seq, session.as_deref()));
        }
        Stats::inc(&stats.logins);
        debug!(%uid, conn = %self.handle.id(), peer = %self.peer, "logged in");
        self.answer(uid, frame.seq, session, resync)
    }

    /// The login body, its player and when its token was issued, once the
    /// token verifies and the player is not cooling down after a kick;
    /// else the refusal is answered and the way out returned.
    fn verify(&self, frame: &Frame) -> Result<(LoginRequest, Uid, u64), Exit> {
        let stats = &self.shared.stats;
        let verified = decode_body::<LoginRequest>("a login body", &frame.body)
            .map_err(|e| e.to_string())
            .and_then(|req| {
                let verified = self.shared.verifier.verify_session(&req.token);
                verified.map(|v| (req, v)).map_err(|e| e.to_string())
            });
        let (req, uid, issued_ms) = match verified {
            Ok((req, verified)) => {
                self.handle.logged_in_with(verified.sid);
                (req, verified.uid, verified.issued_ms)
            }
            Err(why) => {
                Stats::inc(&stats.auth_failures);
                info!(peer = %self.peer, reason = %why, "login refused");
                self.reply_error(frame.seq, code::UNAUTHORIZED, "the token is not valid");
                return Err(Exit::Close(CloseCode::Policy, "unauthorized"));
            }
        };
        if let Some(wait) = self.shared.registry.cooling(uid) {
            Stats::inc(&stats.refused_cooling);
            info!(%uid, peer = %self.peer, wait_ms = wait.as_millis() as u64, "login refused: kicked for flooding, cooling down");
            let message = format!(
                "kicked for sending too fast; log in again in {} s",
                wait.as_secs() + 1
            );
            self.reply_error(frame.seq, kick::RATE_LIMITED, message);
            return Err(Exit::Close(CloseCode::Policy, "rate_limited"));
        }
        Ok((req, uid, issued_ms))
    }

    /// Answers a new login; a new resumable session's answer goes first
    /// and whatever was sent to the session meanwhile after it.
    fn answer(
        &self,
        uid: Uid,
        seq: u64,
        session: Option<Arc<Session>>,
        resync: bool,
    ) -> Result<(), Exit> {
        let Some(session) = session else {
            let reply = LoginReply {
                uid: uid.0,
                ..LoginReply::default()
            };
            self.reply(seq, cmd::LOGIN, encode_body(&reply));
            return Ok(());
        };
        let reply = self.login_answer(uid, &session, resync.then_some(false), seq);
        if let Err(why) = session.attach(self.handle, reply, 0, &self.shared.stats) {
            warn!(%uid, why, "a new session ended before its login was answered");
            return Err(Exit::Close(CloseCode::Again, "session ended, log in again"));
        }
        Ok(())
    }

    /// Binds the uid to this socket; an older socket of the uid here is
    /// kicked (its session ended) and its Close announced first.
    pub(super) async fn bind_new(&self, uid: Uid) {
        let stats = &self.shared.stats;
        let Some(old) = self.shared.registry.bind(uid, self.handle.clone()) else {
            return;
        };
        if old.stop(Exit::Kick(kick::DUPLICATE_LOGIN.to_owned())) {
            Stats::inc(&stats.kicked_duplicate);
        }
        if let Some(session) = old.session() {
            session.end("displaced");
        }
        // The game sees the old socket's Close before the new Connect.
        let close = self.event_for(
            old.id(),
            uid,
            EventKind::Close {
                reason: kick::DUPLICATE_LOGIN.into(),
            },
        );
        if let Err(e) = publish(self.shared, close).await {
            warn!(%uid, error = %e, "could not announce the displaced socket's close");
        }
    }
}
