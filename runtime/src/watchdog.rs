//! The watchdog: a thread of its own that reports handlers running longer
//! than the stuck threshold, once each, with the service's name and the cmd
//! it is stuck in.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    thread::JoinHandle,
    time::Duration,
};

use tracing::warn;

use crate::stats::Counters;

/// A running watchdog; stopped (and joined) by [`Watchdog::stop`].
#[derive(Debug)]
pub(crate) struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Watchdog {
    pub(crate) fn start(
        services: Vec<(&'static str, Arc<Counters>)>,
        threshold: Duration,
    ) -> std::io::Result<Watchdog> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("watchdog".to_owned())
            .spawn(move || watch(services, threshold.max(Duration::from_millis(1)), flag))?;
        Ok(Watchdog { stop, thread })
    }

    /// Stops it: it notices within one tick (at most 500 ms).
    pub(crate) async fn stop(self) {
        self.stop.store(true, Relaxed);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

fn watch(services: Vec<(&'static str, Arc<Counters>)>, threshold: Duration, stop: Arc<AtomicBool>) {
    let tick = (threshold / 4).clamp(Duration::from_millis(10), Duration::from_millis(500));
    while !stop.load(Relaxed) {
        std::thread::sleep(tick);
        for (name, c) in &services {
            if let Some((busy_for, cmd)) = c.busy()
                && busy_for > threshold
                && !c.stuck_reported.swap(true, Relaxed)
            {
                c.stuck.fetch_add(1, Relaxed);
                warn!(service = name, cmd, busy_for = ?busy_for, "a handler is stuck");
            }
        }
    }
}
