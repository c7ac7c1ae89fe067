//! A service's timers: a min-heap of deadlines the service thread sleeps
//! towards between messages.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashSet},
    time::{Duration, Instant},
};

/// Names one timer of one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

/// Timers a service may hold at once; setting one more is refused.
pub(crate) const MAX_TIMERS: usize = 65_536;

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerId)>>,
    cancelled: HashSet<TimerId>,
    next: u64,
}

impl Timers {
    pub(crate) fn set(&mut self, now: Instant, after: Duration) -> Option<TimerId> {
        if self.heap.len() >= MAX_TIMERS {
            return None;
        }
        self.next += 1;
        let id = TimerId(self.next);
        self.heap.push(Reverse((now + after, id)));
        Some(id)
    }

    pub(crate) fn cancel(&mut self, id: TimerId) {
        if self.heap.iter().any(|Reverse((_, t))| *t == id) {
            self.cancelled.insert(id);
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns the next timer due at `now`, skipping cancelled ones.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerId> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if !self.cancelled.remove(&id) {
                return Some(id);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_deadline_order_and_cancelled_ones_never() {
        let mut t = Timers::default();
        let now = Instant::now();
        let late = t.set(now, Duration::from_millis(30)).expect("room");
        let early = t.set(now, Duration::from_millis(10)).expect("room");
        let cancelled = t.set(now, Duration::from_millis(20)).expect("room");
        t.cancel(cancelled);
        assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(10)));
        assert_eq!(t.pop_due(now), None);
        let later = now + Duration::from_millis(40);
        assert_eq!(t.pop_due(later), Some(early));
        assert_eq!(t.pop_due(later), Some(late));
        assert_eq!(t.pop_due(later), None);
        assert_eq!(t.next_deadline(), None);
    }
}
