//! Per-service counters, readable from any thread while the service runs.

use std::{
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
};

/// A snapshot of one service's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceStats {
    pub name: &'static str,
    /// Messages handled (requests, session events, mail, timers).
    pub messages: u64,
    /// Messages waiting in the mailbox now.
    pub mailbox_depth: usize,
    /// Requests refused with `overloaded` because the mailbox was full.
    pub overloaded: u64,
    /// Handler panics caught.
    pub panics: u64,
    /// CPU time the service's thread has used, in microseconds (Linux only;
    /// 0 elsewhere).
    pub cpu_us: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages: AtomicU64,
    pub(crate) depth: AtomicUsize,
    pub(crate) overloaded: AtomicU64,
    pub(crate) panics: AtomicU64,
    /// `/proc/self/task/<tid>/schedstat` of the service's thread.
    pub(crate) schedstat: Mutex<Option<PathBuf>>,
}

impl Counters {
    /// Called on the service's own thread: remembers where its CPU time is.
    pub(crate) fn record_thread(&self) {
        if let Ok(link) = std::fs::read_link("/proc/thread-self") {
            // "<pid>/task/<tid>"
            let path = PathBuf::from("/proc").join(link).join("schedstat");
            *self.schedstat.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
        }
    }

    pub(crate) fn snapshot(&self, name: &'static str) -> ServiceStats {
        let cpu_us = self
            .schedstat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |ns| ns / 1000);
        ServiceStats {
            name,
            messages: self.messages.load(Relaxed),
            mailbox_depth: self.depth.load(Relaxed),
            overloaded: self.overloaded.load(Relaxed),
            panics: self.panics.load(Relaxed),
            cpu_us,
        }
    }
}
