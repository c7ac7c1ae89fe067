//! Precise send times for open-loop bots.
//!
//! tokio's timers tick in whole milliseconds, so a bot that sleeps until its
//! intended send time wakes up to a millisecond late, and that lateness
//! would count against the server (latency runs from the intended time).
//! The pacer is one thread that keeps every bot's next send time in a heap
//! and wakes each bot when its time comes, sleeping on a condition variable
//! (tens of microseconds of precision instead of a millisecond).

use std::{
    cmp::Ordering,
    collections::BinaryHeap,
    sync::{Arc, Condvar, Mutex},
    time::Instant,
};

use tokio::sync::oneshot;

struct Entry {
    at: Instant,
    n: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.n) == (other.at, other.n)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.n).cmp(&(self.at, self.n))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Entry>,
    next: u64,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

/// Hands out wake-ups; the thread ends when the pacer is dropped.
pub(crate) struct Pacer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pacer")
    }
}

impl Pacer {
    pub(crate) fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || run(&s))?;
        Ok(Pacer { shared })
    }

    /// Resolves at `at` (at once if it has passed).
    pub(crate) fn at(&self, at: tokio::time::Instant) -> oneshot::Receiver<()> {
        let (wake, rx) = oneshot::channel();
        let at = at.into_std();
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        let n = state.next;
        state.next += 1;
        let earliest = state.heap.peek().is_none_or(|top| at < top.at);
        state.heap.push(Entry { at, n, wake });
        drop(state);
        if earliest {
            self.shared.cv.notify_one();
        }
        rx
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed = true;
        self.shared.cv.notify_one();
    }
}

fn run(shared: &Shared) {
    let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if state.closed {
            return;
        }
        let now = Instant::now();
        match state.heap.peek().map(|top| top.at) {
            None => {
                state = shared.cv.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            Some(at) if at <= now => {
                if let Some(entry) = state.heap.pop() {
                    // A bot that went away dropped its receiver: nothing to do.
                    let _ = entry.wake.send(());
                }
            }
            Some(at) => {
                state = shared
                    .cv
                    .wait_timeout(state, at - now)
                    .map(|(s, _)| s)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn wake_ups_come_in_time_order_and_not_early() {
        let pacer = Pacer::start().expect("thread");
        let now = tokio::time::Instant::now();
        let late = pacer.at(now + Duration::from_millis(30));
        let soon = pacer.at(now + Duration::from_millis(10));
        let past = pacer.at(now - Duration::from_millis(5));
        past.await.expect("woken");
        soon.await.expect("woken");
        assert!(now.elapsed() >= Duration::from_millis(10));
        late.await.expect("woken");
        assert!(now.elapsed() >= Duration::from_millis(30));
    }
}
