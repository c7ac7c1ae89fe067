//! Resumable sessions (PROTOCOL.md §3): a player's session that outlives
//! its socket.
//!
//! A session numbers every frame the server sends it (1, 2, 3, …) and keeps
//! the numbered frames in a bounded buffer until the client says it has
//! them (`last` in a heartbeat or a resume). When its socket drops, the
//! session stays, detached, for `connector.resume_grace_ms`: what is sent to
//! it meanwhile is numbered and kept. A new socket that presents the
//! session's token and the number of the last frame it got is attached in
//! the old one's place, and gets every frame after that number, in order,
//! once, before anything live.
//!
//! **Bounds.** At most `resume_buffer_frames` frames and
//! `resume_buffer_bytes` bytes are kept. While attached, the oldest go when
//! the bound is reached (they were written to the socket; a resume from
//! before them is refused with `resync`). While detached, a frame beyond the
//! bound ends the session at once: it cannot be resumed without a gap, so it
//! is not kept waiting.
//!
//! **Requests.** The session records the highest request seq it took; a
//! request the client sends again after a resume with a seq at or below it
//! is not forwarded again (its answer is, or will be, among the numbered
//! frames).
//!
//! The session's lock orders numbering and writing: a frame is numbered,
//! kept and queued to the attached socket under it, so the socket's queue
//! is in number order, and an attach (which queues the replay) cannot
//! interleave with a live frame.

use std::{
    collections::{BTreeSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use bytes::Bytes;
use tokio::sync::Notify;
use warren_proto::{ConnId, ConnectorId, Uid, numbered};

use crate::{
    registry::{ConnHandle, Pending},
    stats::Stats,
};

mod moving;

pub(crate) use moving::{HandOver, Handed};

/// Why a resume could not be served: the client gets `resync`.
pub(crate) type Refusal = &'static str;

/// The buffer's bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    pub(crate) frames: usize,
    pub(crate) bytes: usize,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) uid: Uid,
    token: String,
    bounds: Bounds,
    state: Mutex<State>,
    /// Told of every attach and of the end.
    changed: Notify,
    /// Its requests waiting for an answer (they outlive a socket).
    pub(crate) pending: Mutex<Pending>,
}

#[derive(Debug)]
struct State {
    /// The number of the next frame.
    next: u64,
    /// Numbered frames not known to have reached the client, oldest first.
    kept: VecDeque<(u64, Bytes)>,
    kept_bytes: usize,
    /// Frames up to this number left the buffer without the client saying
    /// it had them: a resume from before it cannot be served.
    forgotten: u64,
    /// The highest request seq taken.
    taken: u64,
    /// The socket it writes to now, if any.
    attached: Option<Arc<ConnHandle>>,
    /// Attaches so far (the first socket is 1).
    epoch: u64,
    /// Why it ended, once it has: it cannot be resumed any more.
    ended: Option<&'static str>,
    /// Resuming here from another connector: what was sent to it before
    /// its state arrived, not numbered yet.
    incoming: Option<Incoming>,
    /// Being handed over to another connector: the shards that asked.
    moving: Option<BTreeSet<u16>>,
}

#[derive(Debug, Default)]
struct Incoming {
    held: Vec<Bytes>,
    held_bytes: usize,
    /// The answer, once it came: the state, or None (no shard knew it).
    arrived: Option<Option<Bytes>>,
}

/// Why a resume from `last` cannot be served by a session whose next
/// frame is `next` and that let go of every frame up to `forgotten`
/// without the client saying it had them: (the session's end, the reason
/// given). None: it can be.
pub(crate) fn out_of_range(
    next: u64,
    forgotten: u64,
    last: u64,
) -> Option<(&'static str, Refusal)> {
    if last >= next {
        return Some(("ahead", "the client claims frames this session never sent"));
    }
    if last < forgotten {
        return Some(("forgotten", "frames after the client's last were let go"));
    }
    None
}

/// What a detached session's watcher saw.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A socket attached: the session lives on.
    Attached,
    /// It ended (a kick, an overflow, a newer login): its end is
    /// announced by whoever ended it.
    Ended,
    /// Nobody came back in time.
    Expired,
}

impl Session {
    /// A new session of `uid`, named `<connector>.<conn>.<secret>` so a
    /// resume can find it. It keeps what is sent to it until its first
    /// socket [attaches](Session::attach).
    pub(crate) fn new(
        uid: Uid,
        connector: &ConnectorId,
        conn: ConnId,
        bounds: Bounds,
    ) -> Arc<Self> {
        let secret: u128 = rand::random();
        Arc::new(Session {
            uid,
            token: format!("{connector}.{conn}.{secret:032x}"),
            bounds,
            state: Mutex::new(State {
                next: 1,
                kept: VecDeque::new(),
                kept_bytes: 0,
                forgotten: 0,
                taken: 0,
                attached: None,
                epoch: 0,
                ended: None,
                incoming: None,
                moving: None,
            }),
            changed: Notify::new(),
            pending: Mutex::new(Pending::default()),
        })
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// The connector and connection a resume token names (None: not one
    /// of ours in form).
    pub(crate) fn locate(token: &str) -> Option<(ConnectorId, ConnId)> {
        let mut parts = token.rsplitn(3, '.');
        let _secret = parts.next().filter(|s| s.len() == 32)?;
        let conn = parts.next()?.parse().ok()?;
        let connector = ConnectorId::parse(parts.next()?).ok()?;
        Some((connector, ConnId(conn)))
    }

    /// Whether `token` is this session's (in constant time).
    pub(crate) fn is(&self, token: &str) -> bool {
        let (a, b) = (self.token.as_bytes(), token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers `frame` (`[seq, cmd, body]`), keeps it, and queues it to
    /// the attached socket if there is one. Returns the numbered frame,
    /// or None if the session has ended.
    pub(crate) fn send(&self, frame: &[u8], stats: &Stats) -> Option<Bytes> {
        let mut st = self.lock();
        if let Some(incoming) = &mut st.incoming {
            incoming.held_bytes += frame.len();
            incoming.held.push(Bytes::copy_from_slice(frame));
            let over =
                incoming.held.len() > self.bounds.frames || incoming.held_bytes > self.bounds.bytes;
            if over {
                // Cannot be kept: the resume becomes a resync.
                incoming.held.clear();
                incoming.held_bytes = 0;
                st.ended.get_or_insert("overflow");
            }
            return None;
        }
        let numbered = self.number(&mut st, frame)?;
        if let Some(socket) = &st.attached {
            socket.enqueue(numbered.clone(), stats);
        } else if st.ended.is_some() {
            // It overflowed: its watcher announces the end.
            drop(st);
            self.changed.notify_waiters();
        }
        Some(numbered)
    }

    /// Numbers `frame` without writing it (a kick the socket's writer
    /// sends itself as its goodbye), also once the session has ended.
    pub(crate) fn number_only(&self, frame: &[u8]) -> Bytes {
        let mut st = self.lock();
        if st.ended.is_some() {
            let n = st.next;
            st.next += 1;
            return Bytes::from(numbered(frame, n));
        }
        self.number(&mut st, frame)
            .unwrap_or_else(|| unreachable!("a live session numbers"))
    }

    fn number(&self, st: &mut State, frame: &[u8]) -> Option<Bytes> {
        if st.ended.is_some() {
            return None;
        }
        let n = st.next;
        st.next += 1;
        let numbered = Bytes::from(numbered(frame, n));
        st.kept_bytes += numbered.len();
        st.kept.push_back((n, numbered.clone()));
        while st.kept.len() > self.bounds.frames || st.kept_bytes > self.bounds.bytes {
            if st.attached.is_none() {
                self.end_locked(st, "overflow");
                return Some(numbered);
            }
            let Some((n, old)) = st.kept.pop_front() else {
                break;
            };
            st.kept_bytes -= old.len();
            st.forgotten = n;
        }
        Some(numbered)
    }

    /// The client has every frame up to `last`: they need not be kept.
    pub(crate) fn ack(&self, last: u64) {
        let mut st = self.lock();
        while st.kept.front().is_some_and(|(n, _)| *n <= last) {
            if let Some((_, f)) = st.kept.pop_front() {
                st.kept_bytes -= f.len();
            }
        }
    }

    /// Takes request `seq`; false if this session took it (or a later
    /// one) already: it must not be applied again.
    pub(crate) fn take(&self, seq: u64) -> bool {
        let mut st = self.lock();
        if seq <= st.taken {
            return false;
        }
        st.taken = seq;
        true
    }

    /// Attaches `socket` in place of whatever was attached, and queues to
    /// it `first` (the login reply), then every frame numbered after
    /// `last`. Returns how many it replayed, or why the promise cannot be
    /// kept (the session then ends, and nothing is queued).
    pub(crate) fn attach(
        &self,
        socket: &Arc<ConnHandle>,
        first: Bytes,
        last: u64,
        stats: &Stats,
    ) -> Result<usize, Refusal> {
        let st = self.lock();
        let mut st = self.servable(st, last)?;
        socket.enqueue(first, stats);
        let mut replayed = 0;
        for (n, frame) in &st.kept {
            if *n > last {
                socket.enqueue(frame.clone(), stats);
                replayed += 1;
            }
        }
        st.attached = Some(socket.clone());
        st.epoch += 1;
        drop(st);
        self.changed.notify_waiters();
        Ok(replayed)
    }

    /// Whether a resume from `last` can be served, without changing
    /// anything if it can; a session that cannot serve it ends (its
    /// watcher announces the end), and the client resyncs.
    pub(crate) fn check_resume(&self, last: u64) -> Result<(), Refusal> {
        self.servable(self.lock(), last).map(drop)
    }

    /// `st` back if a resume from `last` can be served; else the session
    /// ends, and why.
    fn servable<'a>(
        &self,
        st: MutexGuard<'a, State>,
        last: u64,
    ) -> Result<MutexGuard<'a, State>, Refusal> {
        if let Some(why) = st.ended {
            return Err(why);
        }
        match out_of_range(st.next, st.forgotten, last) {
            None => Ok(st),
            Some((end, why)) => {
                self.end_and_tell(st, end);
                Err(why)
            }
        }
    }

    /// The socket `socket` is gone: if it is the attached one, the session
    /// is detached now; returns the epoch it was detached at (None: it was
    /// not attached, or the session has ended).
    pub(crate) fn detach(&self, socket: &ConnHandle) -> Option<u64> {
        let mut st = self.lock();
        let attached = st
            .attached
            .as_ref()
            .is_some_and(|a| std::ptr::eq(&**a, socket));
        if !attached || st.ended.is_some() {
            return None;
        }
        st.attached = None;
        Some(st.epoch)
    }

    /// Ends the session if `socket` is the attached one (a socket that
    /// lost it to a resume ends nothing); true if it did.
    pub(crate) fn end_from(&self, socket: &ConnHandle, why: &'static str) -> bool {
        let st = self.lock();
        if !st
            .attached
            .as_ref()
            .is_some_and(|a| std::ptr::eq(&**a, socket))
        {
            return false;
        }
        self.end_and_tell(st, why);
        true
    }

    /// Ends the session if it is still detached since `epoch` (nobody
    /// resumed it in time); true if it did.
    pub(crate) fn expire(&self, epoch: u64) -> bool {
        let st = self.lock();
        if st.ended.is_some() || st.epoch != epoch || st.attached.is_some() {
            return false;
        }
        self.end_and_tell(st, "expired");
        true
    }

    /// Ends the session (it cannot be resumed any more); true if this call
    /// ended it.
    pub(crate) fn end(&self, why: &'static str) -> bool {
        let st = self.lock();
        let first = st.ended.is_none();
        self.end_and_tell(st, why);
        first
    }

    /// Ends the session and wakes whoever waits on it (its watcher).
    fn end_and_tell(&self, mut st: MutexGuard<'_, State>, why: &'static str) {
        self.end_locked(&mut st, why);
        drop(st);
        self.changed.notify_waiters();
    }

    fn end_locked(&self, st: &mut State, why: &'static str) {
        if st.ended.is_none() {
            st.ended = Some(why);
        }
        st.attached = None;
        st.kept.clear();
        st.kept_bytes = 0;
    }

    pub(crate) fn ended(&self) -> Option<&'static str> {
        self.lock().ended
    }

    /// Waits, detached since `epoch`, until a socket attaches, the session
    /// ends, or `until`.
    pub(crate) async fn watch(&self, epoch: u64, until: Instant) -> Outcome {
        loop {
            let changed = self.changed.notified();
            {
                let st = self.lock();
                if st.ended.is_some() {
                    return Outcome::Ended;
                }
                if st.epoch != epoch {
                    return Outcome::Attached;
                }
            }
            if tokio::time::timeout_at(until.into(), changed)
                .await
                .is_err()
            {
                return Outcome::Expired;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::sync::CancellationToken;
    use warren_proto::Frame;

    use super::*;

    fn socket(id: u64) -> Arc<ConnHandle> {
        let h = ConnHandle::new(ConnId(id), CancellationToken::new(), 64, 1 << 20);
        Arc::new(h)
    }

    /// A session with `first` attached (its login reply, cmd 1, queued).
    fn session(frames: usize, first: Arc<ConnHandle>) -> Arc<Session> {
        let bounds = Bounds {
            frames,
            bytes: 1 << 20,
        };
        let c = ConnectorId::parse("c1").expect("id");
        let s = Session::new(Uid(7), &c, ConnId(3), bounds);
        s.attach(&first, reply(), 0, &Stats::default())
            .expect("attaches");
        s
    }

    fn reply() -> Bytes {
        Frame::new(1, 1, vec![0x80]).encode().into()
    }

    fn frame(cmd: u32) -> Vec<u8> {
        Frame::new(0, cmd, vec![0x80]).encode()
    }

    fn numbers(socket: &ConnHandle) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        while let Some(b) = socket.outbox().pop() {
            let (f, n) = Frame::decode_numbered(&b).expect("decodes");
            // The login reply is not numbered.
            out.push((f.cmd, n.unwrap_or(0)));
        }
        out
    }

    #[test]
    fn its_token_names_where_it_lives() {
        let a = socket(3);
        let s = session(8, a);
        let (connector, conn) = Session::locate(s.token()).expect("ours");
        assert_eq!((connector.as_str(), conn), ("c1", ConnId(3)));
        assert!(s.is(s.token()));
        assert!(!s.is("c1.3.00000000000000000000000000000000"));
        assert_eq!(Session::locate("c1.3"), None);
        assert_eq!(
            Session::locate("c1.x.00000000000000000000000000000000"),
            None
        );
    }

    #[test]
    fn frames_are_numbered_and_a_resume_replays_what_came_after_last() {
        let stats = Stats::default();
        let a = socket(1);
        let s = session(8, a.clone());
        for cmd in 1001..=1003 {
            s.send(&frame(cmd), &stats);
        }
        assert_eq!(numbers(&a), vec![(1, 0), (1001, 1), (1002, 2), (1003, 3)]);
        let epoch = s.detach(&a).expect("it was attached");
        assert_eq!(epoch, 1, "attached once");
        s.send(&frame(1004), &stats);
        assert!(numbers(&a).is_empty(), "detached: kept, not written");
        let b = socket(2);
        assert_eq!(s.attach(&b, reply(), 2, &stats), Ok(2));
        s.send(&frame(1005), &stats);
        assert_eq!(numbers(&b), vec![(1, 0), (1003, 3), (1004, 4), (1005, 5)]);
        assert_eq!(s.detach(&a), None, "the old socket no longer holds it");
    }

    #[test]
    fn a_seq_is_taken_once() {
        let a = socket(1);
        let s = session(8, a);
        assert!(s.take(1));
        assert!(s.take(5));
        assert!(!s.take(5));
        assert!(!s.take(2));
        assert!(s.take(6));
    }

    #[test]
    fn attached_the_oldest_go_and_a_resume_before_them_is_refused() {
        let stats = Stats::default();
        let a = socket(1);
        let s = session(2, a.clone());
        for cmd in 1001..=1004 {
            s.send(&frame(cmd), &stats);
        }
        s.detach(&a);
        let b = socket(2);
        assert!(
            s.attach(&b, reply(), 1, &stats).is_err(),
            "frame 2 was let go"
        );
        assert!(s.ended().is_some());
    }

    #[test]
    fn acknowledged_frames_go_and_detached_overflow_ends_the_session() {
        let stats = Stats::default();
        let a = socket(1);
        let s = session(2, a.clone());
        s.send(&frame(1001), &stats);
        s.send(&frame(1002), &stats);
        s.ack(2);
        s.detach(&a);
        s.send(&frame(1003), &stats);
        s.send(&frame(1004), &stats);
        assert_eq!(s.ended(), None, "two frames fit");
        s.send(&frame(1005), &stats);
        assert_eq!(s.ended(), Some("overflow"));
        let b = socket(2);
        assert!(s.attach(&b, reply(), 2, &stats).is_err());
    }

    #[test]
    fn a_client_ahead_of_the_session_is_refused() {
        let stats = Stats::default();
        let a = socket(1);
        let s = session(8, a.clone());
        s.send(&frame(1001), &stats);
        s.detach(&a);
        let b = socket(2);
        assert!(s.attach(&b, reply(), 5, &stats).is_err());
    }

    #[tokio::test]
    async fn the_watcher_sees_an_attach_an_end_or_the_deadline() {
        let stats = Stats::default();
        let a = socket(1);
        let s = session(8, a.clone());
        let epoch = s.detach(&a).expect("attached");
        let soon = Instant::now() + std::time::Duration::from_millis(20);
        assert_eq!(s.watch(epoch, soon).await, Outcome::Expired);
        assert!(!s.expire(epoch + 1), "a later epoch is not this detach");
        let later = Instant::now() + std::time::Duration::from_secs(60);
        let watcher = {
            let s = s.clone();
            tokio::spawn(async move { s.watch(epoch, later).await })
        };
        let b = socket(2);
        s.attach(&b, reply(), 0, &stats).expect("resumes");
        assert_eq!(watcher.await.expect("joins"), Outcome::Attached);
        let epoch = s.detach(&b).expect("attached");
        let watcher = {
            let s = s.clone();
            tokio::spawn(async move { s.watch(epoch, later).await })
        };
        assert!(s.end("kicked"));
        assert_eq!(watcher.await.expect("joins"), Outcome::Ended);
    }
}
