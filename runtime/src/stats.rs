//! Per-service counters, readable from any thread while the service runs.

use std::{
    path::PathBuf,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

/// A snapshot of one service's counters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ServiceStats {
    pub name: &'static str,
    /// The service thread's id (as `top -H` and `gdb` show it; 0 if unknown).
    pub thread_id: u64,
    /// Messages handled (requests, session events, mail, timers).
    pub messages: u64,
    /// Messages waiting in the mailbox now.
    pub mailbox_depth: usize,
    /// Requests refused with `overloaded` because the mailbox was full.
    pub overloaded: u64,
    /// Handler panics caught.
    pub panics: u64,
    /// Restarts with fresh state after too many panics.
    pub restarts: u64,
    /// Handlers the watchdog found running past the stuck threshold.
    pub stuck: u64,
    /// CPU time the service's thread has used, in microseconds (Linux only;
    /// 0 elsewhere).
    pub cpu_us: u64,
    /// Mean and longest time one handler call took, in microseconds.
    pub handler_mean_us: u64,
    pub handler_max_us: u64,
    /// Whether every message this service handles is logged (turned on
    /// and off from the debug console).
    pub tracing: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages: AtomicU64,
    pub(crate) depth: AtomicUsize,
    pub(crate) overloaded: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) stuck: AtomicU64,
    /// Whether the handler running now was already reported stuck.
    pub(crate) stuck_reported: AtomicBool,
    /// Log every message this service handles (the console's trace switch).
    pub(crate) trace: AtomicBool,
    /// When the running handler started (ms since `epoch()`, plus one; 0:
    /// idle), and its cmd (0 for anything but a request).
    busy_since: AtomicU64,
    busy_cmd: AtomicU32,
    handler_calls: AtomicU64,
    handler_ns: AtomicU64,
    handler_max_ns: AtomicU64,
    /// `/proc/self/task/<tid>/schedstat` of the service's thread.
    pub(crate) schedstat: Mutex<Option<PathBuf>>,
}

/// The instant busy times are measured from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Counters {
    /// A handler (for `cmd`) starts.
    pub(crate) fn begin(&self, cmd: u32) {
        self.busy_cmd.store(cmd, Relaxed);
        let since = epoch().elapsed().as_millis() as u64 + 1;
        self.busy_since.store(since, Relaxed);
    }

    /// The handler is done; it took `took`.
    pub(crate) fn end(&self, took: Duration) {
        let ns = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.handler_calls.fetch_add(1, Relaxed);
        self.handler_ns.fetch_add(ns, Relaxed);
        self.handler_max_ns.fetch_max(ns, Relaxed);
        self.busy_since.store(0, Relaxed);
        self.stuck_reported.store(false, Relaxed);
    }

    /// How long the running handler has run, and its cmd.
    pub(crate) fn busy(&self) -> Option<(Duration, u32)> {
        let since = self.busy_since.load(Relaxed);
        (since != 0).then(|| {
            let now = epoch().elapsed().as_millis() as u64 + 1;
            (
                Duration::from_millis(now.saturating_sub(since)),
                self.busy_cmd.load(Relaxed),
            )
        })
    }

    /// Called on the service's own thread: remembers where its CPU time is.
    pub(crate) fn record_thread(&self) {
        if let Ok(link) = std::fs::read_link("/proc/thread-self") {
            // "<pid>/task/<tid>"
            let path = PathBuf::from("/proc").join(link).join("schedstat");
            *self.schedstat.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
        }
    }

    pub(crate) fn snapshot(&self, name: &'static str) -> ServiceStats {
        let path = self
            .schedstat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let cpu_us = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |ns| ns / 1000);
        ServiceStats {
            name,
            messages: self.messages.load(Relaxed),
            tracing: self.trace.load(Relaxed),
            mailbox_depth: self.depth.load(Relaxed),
            overloaded: self.overloaded.load(Relaxed),
            panics: self.panics.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            stuck: self.stuck.load(Relaxed),
            cpu_us,
            thread_id: path
                .as_ref()
                .and_then(|p| p.parent()?.file_name()?.to_str()?.parse().ok())
                .unwrap_or(0),
            handler_mean_us: self
                .handler_ns
                .load(Relaxed)
                .checked_div(self.handler_calls.load(Relaxed))
                .unwrap_or(0)
                / 1000,
            handler_max_us: self.handler_max_ns.load(Relaxed) / 1000,
        }
    }
}
