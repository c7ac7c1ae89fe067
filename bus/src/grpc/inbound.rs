//! Taking calls in: a bounded buffer of decoded messages that the
//! subscription drains, and each sender's calls in the order it numbered
//! them.
//!
//! Several calls of one sender may be in flight, and the server runs each
//! on a task of its own, so two calls sent in order can reach the buffer
//! in the other order. A call that arrives before its predecessor waits
//! for it, at most half the call deadline (the predecessor is on the same
//! connection, so it is only a scheduling moment behind, unless it was
//! lost with a connection, and then the sender has moved to a new epoch);
//! a call that arrives after its successor was taken is refused
//! (`late`), never taken out of order.
//!
//! The buffer holds `capacity` messages; a call whose messages do not fit
//! is refused whole (`full`: the sender's players hear `overloaded`).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::sync::{Notify, mpsc};

use super::outbound::Place;

/// Senders remembered at once; the least recently seen is forgotten.
const MAX_SENDERS: usize = 4096;

/// Why a call was not taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The buffer has no room for the call's messages.
    Full,
    /// A later call of its sender was taken first.
    Late,
    /// The subscription is gone.
    Closed,
}

/// Where a sender's calls stand.
struct Line {
    next: u64,
    seen: Instant,
}

pub(crate) struct Inbound<T> {
    tx: mpsc::Sender<T>,
    /// The longest a call waits for the call numbered before it.
    gap_wait: Duration,
    lines: Mutex<HashMap<(u64, u64), Line>>,
    moved: Notify,
}

impl<T> std::fmt::Debug for Inbound<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound").finish_non_exhaustive()
    }
}

impl<T: Send> Inbound<T> {
    /// A buffer of `capacity` messages, and its reading end. A call waits
    /// for its predecessor at most half of `deadline` (`bus.grpc.deadline_ms`):
    /// long enough for one held up by a loaded host to be taken in order
    /// (a fixed 250 ms refused a login's Connect `late` under the full test
    /// suite), short enough that a successor that waited is still answered
    /// within its own deadline.
    pub(crate) fn new(capacity: usize, deadline: Duration) -> (Self, mpsc::Receiver<T>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let inbound = Inbound {
            tx,
            gap_wait: deadline / 2,
            lines: Mutex::new(HashMap::new()),
            moved: Notify::new(),
        };
        (inbound, rx)
    }

    /// Takes one call's messages, in its sender's order (`place`; `None`
    /// or seq 0: no order).
    pub(crate) async fn take(&self, place: Option<Place>, messages: Vec<T>) -> Result<(), Refusal> {
        let Some(place) = place.filter(|p| p.seq != 0) else {
            return self.put(messages);
        };
        let key = (place.sender, place.epoch);
        let mut gap_passed = false;
        loop {
            let notified = self.moved.notified();
            tokio::pin!(notified);
            {
                let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
                if !lines.contains_key(&key) && lines.len() >= MAX_SENDERS {
                    forget_oldest(&mut lines);
                }
                let line = lines.entry(key).or_insert(Line {
                    next: 1,
                    seen: Instant::now(),
                });
                line.seen = Instant::now();
                if place.seq < line.next {
                    return Err(Refusal::Late);
                }
                if place.seq == line.next || gap_passed {
                    line.next = place.seq + 1;
                    // Taken (or refused whole) while the line is held, so
                    // the next call cannot overtake it.
                    let taken = self.put(messages);
                    drop(lines);
                    self.moved.notify_waiters();
                    return taken;
                }
                notified.as_mut().enable();
            }
            if tokio::time::timeout(self.gap_wait, notified).await.is_err() {
                gap_passed = true;
            }
        }
    }

    fn put(&self, messages: Vec<T>) -> Result<(), Refusal> {
        if messages.is_empty() {
            return Ok(());
        }
        match self.tx.try_reserve_many(messages.len()) {
            Ok(permits) => {
                for (permit, msg) in permits.zip(messages) {
                    permit.send(msg);
                }
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => Err(Refusal::Full),
            Err(mpsc::error::TrySendError::Closed(())) => Err(Refusal::Closed),
        }
    }
}

fn forget_oldest(lines: &mut HashMap<(u64, u64), Line>) {
    if let Some(oldest) = lines.iter().min_by_key(|(_, l)| l.seen).map(|(k, _)| *k) {
        lines.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const DEADLINE: Duration = Duration::from_secs(2);

    fn at(seq: u64) -> Option<Place> {
        Some(Place {
            sender: 7,
            epoch: 1,
            seq,
        })
    }

    #[tokio::test]
    async fn a_call_that_overtook_its_predecessor_waits_for_it() {
        let (inbound, mut rx) = Inbound::new(16, DEADLINE);
        let inbound = Arc::new(inbound);
        let second = tokio::spawn({
            let inbound = inbound.clone();
            async move { inbound.take(at(2), vec![2]).await }
        });
        // The second is parked until the first is taken.
        tokio::task::yield_now().await;
        assert!(rx.try_recv().is_err());
        inbound.take(at(1), vec![1]).await.unwrap();
        second.await.unwrap().unwrap();
        assert_eq!((rx.recv().await, rx.recv().await), (Some(1), Some(2)));
        // A call older than what was taken is refused, not reordered.
        assert_eq!(inbound.take(at(2), vec![9]).await, Err(Refusal::Late));
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_that_never_fills_is_skipped_after_the_wait() {
        let (inbound, mut rx) = Inbound::new(16, DEADLINE);
        inbound.take(at(1), vec![1]).await.unwrap();
        inbound.take(at(3), vec![3]).await.unwrap();
        assert_eq!(inbound.take(at(2), vec![2]).await, Err(Refusal::Late));
        assert_eq!((rx.recv().await, rx.try_recv().ok()), (Some(1), Some(3)));
    }

    #[tokio::test]
    async fn a_call_that_does_not_fit_is_refused_whole() {
        let (inbound, mut rx) = Inbound::new(3, DEADLINE);
        inbound.take(None, vec![1, 2]).await.unwrap();
        assert_eq!(inbound.take(None, vec![3, 4]).await, Err(Refusal::Full));
        assert_eq!(inbound.take(at(1), vec![3]).await, Ok(()));
        let got: Vec<i32> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(got, vec![1, 2, 3]);
    }
}
