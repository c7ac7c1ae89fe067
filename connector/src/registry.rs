//! Which sockets are logged in, and the handle through which anything else
//! (the push pump, a newer login, shutdown) talks to a socket's tasks.
//!
//! A uid has at most one live connection here: [`Registry::bind`] installs
//! the new one and hands back the one it displaced, to be kicked.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Instant,
};

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use warren_proto::{ConnId, Uid, cmd::kick};

use crate::{
    outbox::{Outbox, Refused},
    session::Session,
    stats::Stats,
};

/// Why a socket's tasks stop, decided by whoever stops them first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Send a kick frame with this reason, then a normal close.
    Kick(String),
    /// Send a close frame with this code and reason.
    Close(CloseCode, &'static str),
    /// The client closed or the socket failed: finish the close handshake.
    Gone,
}

/// The shared end of one socket's tasks.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    /// The connection id the game knows: the socket's own, or the session's
    /// it resumed.
    id: AtomicU64,
    /// The frames waiting for the writer.
    out: Outbox,
    stop: CancellationToken,
    exit: Mutex<Option<Exit>>,
    pending: Mutex<Pending>,
    /// The sign-in the socket logged in with (its token's `sid`).
    sid: std::sync::OnceLock<Option<String>>,
    /// Its resumable session, if it logged in to one.
    session: std::sync::OnceLock<Arc<Session>>,
}

/// The requests of one socket that wait for an answer, with their
/// deadlines, in the order sent (so the earliest deadline is first).
/// Answers mostly come in order, so finding one is a look at the front; at
/// most `max_in_flight` entries are ever scanned.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    order: VecDeque<(u64, Instant)>,
}

impl Pending {
    /// Waits for an answer to `seq` by `deadline` (a session taken over
    /// from another connector: kept in deadline order).
    pub(crate) fn expect(&mut self, seq: u64, deadline: Instant) {
        let at = self.order.partition_point(|&(_, d)| d <= deadline);
        self.order.insert(at, (seq, deadline));
    }

    /// Stops waiting for `seq`; whether it was waited for.
    pub(crate) fn answered(&mut self, seq: u64) -> bool {
        match self.order.iter().position(|&(s, _)| s == seq) {
            Some(i) => {
                self.order.remove(i);
                true
            }
            None => false,
        }
    }

    /// Every request waited for, with its deadline, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (u64, Instant)> + '_ {
        self.order.drain(..)
    }
}

impl ConnHandle {
    pub(crate) fn new(
        id: ConnId,
        stop: CancellationToken,
        max_queued_frames: usize,
        max_queued_bytes: usize,
    ) -> Self {
        ConnHandle {
            id: AtomicU64::new(id.0),
            out: Outbox::new(max_queued_frames, max_queued_bytes),
            stop,
            exit: Mutex::new(None),
            pending: Mutex::new(Pending::default()),
            sid: std::sync::OnceLock::new(),
            session: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn id(&self) -> ConnId {
        ConnId(self.id.load(Ordering::Relaxed))
    }

    /// Takes the connection id of the session it resumes (before it is
    /// bound), so replies addressed to it reach this socket.
    pub(crate) fn adopt(&self, id: ConnId) {
        self.id.store(id.0, Ordering::Relaxed);
    }

    /// Joins `session` (once).
    pub(crate) fn join(&self, session: Arc<Session>) {
        let _ = self.session.set(session);
    }

    pub(crate) fn session(&self) -> Option<&Arc<Session>> {
        self.session.get()
    }

    /// Records the sign-in the socket logged in with (once).
    pub(crate) fn logged_in_with(&self, sid: Option<String>) {
        let _ = self.sid.set(sid);
    }

    /// Whether a revocation of sign-in `sid` (None: every sign-in) covers
    /// this socket.
    pub(crate) fn signed_in_as(&self, sid: Option<&str>) -> bool {
        sid.is_none_or(|sid| {
            self.sid
                .get()
                .is_some_and(|own| own.as_deref() == Some(sid))
        })
    }

    /// The frames waiting for the socket's writer.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.out
    }

    /// The requests waiting for an answer: the socket's, or its resumable
    /// session's (which outlive the socket).
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        let pending = self.session.get().map_or(&self.pending, |s| &s.pending);
        pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a request forwarded to the game; false (and nothing
    /// recorded) if `max` are already waiting.
    pub(crate) fn expect_reply(&self, seq: u64, deadline: Instant, max: usize) -> bool {
        let mut p = self.pending();
        if p.order.len() >= max {
            return false;
        }
        p.order.push_back((seq, deadline));
        true
    }

    /// A frame with this seq came from the game: its request is answered.
    /// False if it was not waited for (answered already, or timed out).
    pub(crate) fn answered(&self, seq: u64) -> bool {
        self.pending().answered(seq)
    }

    /// When the oldest unanswered request times out.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let p = self.pending();
        p.order.front().map(|&(_, at)| at)
    }

    /// Takes the requests whose deadline has passed.
    pub(crate) fn expired(&self, now: Instant) -> Vec<u64> {
        let mut p = self.pending();
        let mut out = Vec::new();
        while let Some(&(seq, at)) = p.order.front() {
            if at > now {
                break;
            }
            p.order.pop_front();
            out.push(seq);
        }
        out
    }

    /// Sends an encoded frame (`[seq, cmd, body]`): numbered and kept by
    /// its resumable session, if it has one, else queued for the socket.
    pub(crate) fn send(&self, frame: Bytes, stats: &Stats) -> bool {
        match self.session.get() {
            Some(session) => session.send(&frame, stats).is_some(),
            None => self.enqueue(frame, stats),
        }
    }

    /// Queues an encoded frame for the socket. A full queue means the client
    /// is not reading: it is kicked as a slow consumer (in a resumable
    /// session the socket is closed and the session detached: its frames
    /// are kept). Returns whether the frame was queued.
    pub(crate) fn enqueue(&self, frame: Bytes, stats: &Stats) -> bool {
        let len = frame.len();
        match self.out.push(frame) {
            Ok(()) => {
                Stats::inc(&stats.frames_out);
                Stats::add(&stats.bytes_out, len);
                true
            }
            Err(Refused::Full) => {
                if self.stop(self.slow()) {
                    Stats::inc(&stats.kicked_slow);
                }
                false
            }
            Err(Refused::Closed) => false,
        }
    }

    /// How a client that does not read is let go: kicked, or (resumable)
    /// closed with 1013 so that it resumes once it reads again.
    fn slow(&self) -> Exit {
        match self.session.get() {
            Some(_) => Exit::Close(CloseCode::Again, kick::SLOW_CONSUMER),
            None => Exit::Kick(kick::SLOW_CONSUMER.to_owned()),
        }
    }

    /// Asks the socket's tasks to stop for `exit`. The first reason given
    /// wins; returns whether it was this one.
    pub(crate) fn stop(&self, exit: Exit) -> bool {
        let first = {
            let mut slot = self.exit.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() && !self.stop.is_cancelled() {
                *slot = Some(exit);
                true
            } else {
                false
            }
        };
        self.stop.cancel();
        first
    }

    pub(crate) fn stopped(&self) -> &CancellationToken {
        &self.stop
    }

    /// The reason the socket is stopping. Cancelled with no reason given means
    /// the whole connector is shutting down: a resumable session's client
    /// is told to `reconnect` (elsewhere), anyone else `shutdown`.
    pub(crate) fn exit(&self) -> Exit {
        let stopping = match self.session.get() {
            Some(_) => kick::RECONNECT,
            None => kick::SHUTDOWN,
        };
        self.exit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| Exit::Kick(stopping.to_owned()))
    }
}

#[derive(Debug, Default)]
struct Inner {
    by_uid: HashMap<Uid, Arc<ConnHandle>>,
    /// The same handles by connection: a reply names its socket.
    by_conn: HashMap<ConnId, Arc<ConnHandle>>,
}

/// The logged-in sockets of this connector.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    /// Players kicked `rate_limited`, and until when they may not log in
    /// again here (so a flooder cannot start over at once).
    cooldowns: Mutex<HashMap<Uid, Instant>>,
}

impl Registry {
    /// At most this many players cool down at once; beyond it (after
    /// forgetting the expired ones) a kicked player is not held back.
    pub(crate) const MAX_COOLDOWNS: usize = 100_000;

    /// Holds `uid` back from logging in until `until`.
    pub(crate) fn cool_down(&self, uid: Uid, until: Instant) {
        let mut c = self.cooldowns.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= Self::MAX_COOLDOWNS {
            let now = Instant::now();
            c.retain(|_, t| *t > now);
            if c.len() >= Self::MAX_COOLDOWNS {
                return;
            }
        }
        c.insert(uid, until);
    }

    /// How long `uid` must still wait before logging in (None: it may).
    pub(crate) fn cooling(&self, uid: Uid) -> Option<std::time::Duration> {
        let mut c = self.cooldowns.lock().unwrap_or_else(|p| p.into_inner());
        let until = *c.get(&uid)?;
        let now = Instant::now();
        if until <= now {
            c.remove(&uid);
            return None;
        }
        Some(until - now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds `uid` to `handle`; returns the connection it displaced.
    pub(crate) fn bind(&self, uid: Uid, handle: Arc<ConnHandle>) -> Option<Arc<ConnHandle>> {
        let mut inner = self.lock();
        let id = handle.id();
        inner.by_conn.insert(id, handle.clone());
        let old = inner.by_uid.insert(uid, handle)?;
        // A resumed session keeps its connection id: its entry is the new
        // socket's already.
        if old.id() != id {
            inner.by_conn.remove(&old.id());
        }
        Some(old)
    }

    /// Unbinds `uid` if `socket` still holds it; returns whether it did (and so
    /// whether this socket's Close is still to be announced).
    pub(crate) fn unbind(&self, uid: Uid, socket: &ConnHandle) -> bool {
        let mut inner = self.lock();
        if inner
            .by_uid
            .get(&uid)
            .is_some_and(|h| std::ptr::eq(&**h, socket))
        {
            inner.by_uid.remove(&uid);
            inner.by_conn.remove(&socket.id());
            true
        } else {
            false
        }
    }

    pub(crate) fn by_uid(&self, uid: Uid) -> Option<Arc<ConnHandle>> {
        self.lock().by_uid.get(&uid).cloned()
    }

    pub(crate) fn by_conn(&self, conn: ConnId) -> Option<Arc<ConnHandle>> {
        self.lock().by_conn.get(&conn).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<ConnHandle>> {
        self.lock().by_uid.values().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().by_uid.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(id: u64, queue: usize) -> Arc<ConnHandle> {
        Arc::new(ConnHandle::new(
            ConnId(id),
            CancellationToken::new(),
            queue,
            1 << 20,
        ))
    }

    #[test]
    fn a_second_bind_displaces_the_first_and_only_the_holder_unbinds() {
        let reg = Registry::default();
        let a = handle(1, 4);
        let b = handle(2, 4);
        assert!(reg.bind(Uid(7), a.clone()).is_none());
        let old = reg.bind(Uid(7), b.clone()).expect("displaced");
        assert_eq!(old.id(), ConnId(1));
        assert!(reg.by_conn(ConnId(1)).is_none());
        assert!(
            !reg.unbind(Uid(7), &a),
            "the displaced socket no longer holds the uid"
        );
        assert_eq!(reg.by_uid(Uid(7)).map(|h| h.id()), Some(ConnId(2)));
        assert!(reg.unbind(Uid(7), &b));
        assert_eq!(reg.len(), 0);
    }

    #[test]
    fn a_full_queue_kicks_as_slow_consumer_once() {
        let stats = Stats::default();
        let h = handle(1, 2);
        assert!(h.send(Bytes::from_static(b"1"), &stats));
        assert!(h.send(Bytes::from_static(b"2"), &stats));
        assert!(!h.send(Bytes::from_static(b"3"), &stats));
        assert!(!h.send(Bytes::from_static(b"4"), &stats));
        assert!(h.stopped().is_cancelled());
        assert_eq!(h.exit(), Exit::Kick("slow_consumer".into()));
        assert_eq!(stats.snapshot().kicked_slow, 1);
    }

    #[test]
    fn too_many_queued_bytes_kick_as_slow_consumer() {
        let stats = Stats::default();
        let h = ConnHandle::new(ConnId(1), CancellationToken::new(), 100, 10);
        assert!(h.send(Bytes::from_static(b"123456"), &stats));
        // The writer takes it: the room is back.
        h.outbox().pop().unwrap();
        assert!(h.send(Bytes::from_static(b"123456"), &stats));
        assert!(
            !h.send(Bytes::from_static(b"12345"), &stats),
            "6 + 5 > 10 bytes"
        );
        assert_eq!(h.exit(), Exit::Kick("slow_consumer".into()));
        assert_eq!(stats.snapshot().kicked_slow, 1);
    }

    #[test]
    fn the_first_stop_reason_wins_and_shutdown_is_the_default() {
        let h = handle(1, 1);
        let parent = CancellationToken::new();
        let child = ConnHandle::new(ConnId(2), parent.child_token(), 1, 1 << 20);
        parent.cancel();
        assert_eq!(child.exit(), Exit::Kick("shutdown".into()));
        assert!(h.stop(Exit::Gone));
        assert!(!h.stop(Exit::Kick("idle_timeout".into())));
        assert_eq!(h.exit(), Exit::Gone);
    }
}
