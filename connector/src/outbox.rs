//! A socket's outbound queue: filled by whoever answers or pushes to the
//! socket, drained by its writer, bounded in frames and in bytes.
//!
//! Not tokio's bounded mpsc: that allocates its cache-padded channel and a
//! first block of 32 slots (about 1.5 KiB) when made, for every socket,
//! idle or not. This holds nothing while empty: a `VecDeque` whose slots
//! are let go when drained, and a `Notify`.

use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard},
};

use bytes::Bytes;
use tokio::sync::Notify;

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds its most frames or bytes: the client is not reading.
    Full,
    /// The writer is gone: nothing will be written any more.
    Closed,
}

#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// A frame was queued, or the queue closed.
    ready: Notify,
    max_frames: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Bytes>,
    bytes: usize,
    closed: bool,
}

impl Outbox {
    /// At most `max_frames` frames and `max_bytes` bytes queued (each at
    /// least 1).
    pub(crate) fn new(max_frames: usize, max_bytes: usize) -> Outbox {
        Outbox {
            state: Mutex::default(),
            ready: Notify::new(),
            max_frames: max_frames.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `frame` behind the others, unless that would pass a bound or
    /// the writer is gone.
    pub(crate) fn push(&self, frame: Bytes) -> Result<(), Refused> {
        let was_empty = {
            let mut s = self.lock();
            if s.closed {
                return Err(Refused::Closed);
            }
            if s.frames.len() >= self.max_frames || s.bytes + frame.len() > self.max_bytes {
                return Err(Refused::Full);
            }
            s.bytes += frame.len();
            s.frames.push_back(frame);
            s.frames.len() == 1
        };
        // Only the first frame wakes the writer: it takes every frame behind
        // it before it waits again (`next` looks before it sleeps), so a
        // wake for each would only leave it a permit for a spurious turn.
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// The oldest queued frame, if any.
    pub(crate) fn pop(&self) -> Option<Bytes> {
        let mut s = self.lock();
        let frame = s.frames.pop_front()?;
        s.bytes -= frame.len();
        if s.frames.is_empty() {
            // An idle socket holds no slots (a drained queue kept 128 bytes
            // or its burst's high-water mark); the next frame allocates anew.
            s.frames = VecDeque::new();
        }
        Some(frame)
    }

    /// The oldest queued frame, waiting for one; None once closed and
    /// drained. Cancel-safe: a frame is taken only by the poll that
    /// returns it.
    pub(crate) async fn next(&self) -> Option<Bytes> {
        loop {
            // Registered before the look, so a push between the two wakes it.
            let ready = self.ready.notified();
            if let Some(frame) = self.pop() {
                return Some(frame);
            }
            if self.lock().closed {
                return None;
            }
            ready.await;
        }
    }

    /// No frame is taken any more: later pushes are refused as `Closed`, and
    /// what is still queued is dropped.
    pub(crate) fn close(&self) {
        let dropped = {
            let mut s = self.lock();
            s.closed = true;
            s.bytes = 0;
            std::mem::take(&mut s.frames)
        };
        drop(dropped);
        self.ready.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn frames_come_out_in_order_within_both_bounds() {
        let o = Outbox::new(2, 10);
        assert_eq!(o.push(frame("123456")), Ok(()));
        assert_eq!(
            o.push(frame("12345")),
            Err(Refused::Full),
            "6 + 5 > 10 bytes"
        );
        assert_eq!(o.push(frame("1234")), Ok(()));
        assert_eq!(o.push(frame("1")), Err(Refused::Full), "2 frames at most");
        assert_eq!(o.pop(), Some(frame("123456")));
        assert_eq!(o.push(frame("1")), Ok(()), "room again");
        assert_eq!(o.pop(), Some(frame("1234")));
        assert_eq!(o.pop(), Some(frame("1")));
        assert_eq!(o.pop(), None);
    }

    #[test]
    fn a_drained_queue_gives_its_slots_back() {
        let o = Outbox::new(100, 1 << 20);
        for _ in 0..50 {
            o.push(frame("x")).expect("room");
        }
        while o.pop().is_some() {}
        assert_eq!(o.lock().frames.capacity(), 0);
    }

    #[test]
    fn a_closed_box_refuses_and_drops_what_it_held() {
        let o = Outbox::new(4, 100);
        o.push(frame("a")).expect("room");
        o.close();
        assert_eq!(o.push(frame("b")), Err(Refused::Closed));
        assert_eq!(o.pop(), None);
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_a_push_and_for_the_close() {
        let o = std::sync::Arc::new(Outbox::new(4, 100));
        let next = |o: &std::sync::Arc<Outbox>| {
            let o = o.clone();
            tokio::spawn(async move { o.next().await })
        };
        let waiter = next(&o);
        tokio::task::yield_now().await;
        o.push(frame("a")).expect("room");
        assert_eq!(waiter.await.expect("joins"), Some(frame("a")));
        let waiter = next(&o);
        tokio::task::yield_now().await;
        o.close();
        assert_eq!(waiter.await.expect("joins"), None);
    }
}
