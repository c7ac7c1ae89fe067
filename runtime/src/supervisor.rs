//! Panics and restarts: every callback runs guarded (a panic is caught,
//! counted and logged, and the service goes on); a service that panics too
//! often is restarted with fresh state, and restarts that come as a storm
//! stop the process (Erlang's intensity and period).

use std::{
    collections::VecDeque,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::atomic::Ordering::Relaxed,
    time::{Duration, Instant},
};

use tracing::error;

use crate::{RuntimeSettings, stats::Counters};

/// The exit code of a process stopped by a restart storm.
pub const RESTART_STORM_EXIT: i32 = 70;

/// When a service that keeps panicking is restarted, and when restarts are a
/// storm that should stop the process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RestartPolicy {
    intensity: usize,
    period: Duration,
    pub(crate) storm: usize,
    pub(crate) storm_period: Duration,
}

impl From<&RuntimeSettings> for RestartPolicy {
    fn from(s: &RuntimeSettings) -> Self {
        RestartPolicy {
            intensity: s.restart_intensity as usize,
            period: s.restart_period,
            storm: s.restart_storm as usize,
            storm_period: s.restart_storm_period,
        }
    }
}

/// What to do after a panic.
pub(crate) enum Verdict {
    GoOn,
    Restart,
    Storm,
}

/// Remembers recent panics and restarts of one service.
#[derive(Debug)]
pub(crate) struct Restarts {
    policy: RestartPolicy,
    panics: VecDeque<Instant>,
    restarts: VecDeque<Instant>,
}

impl Restarts {
    pub(crate) fn new(policy: RestartPolicy) -> Self {
        Restarts {
            policy,
            panics: VecDeque::new(),
            restarts: VecDeque::new(),
        }
    }

    pub(crate) fn panicked(&mut self, now: Instant) -> Verdict {
        if self.policy.intensity == 0 {
            return Verdict::GoOn;
        }
        self.panics.push_back(now);
        while self
            .panics
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.policy.period)
        {
            self.panics.pop_front();
        }
        if self.panics.len() < self.policy.intensity {
            return Verdict::GoOn;
        }
        self.panics.clear();
        self.restarts.push_back(now);
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.policy.storm_period)
        {
            self.restarts.pop_front();
        }
        if self.policy.storm > 0 && self.restarts.len() > self.policy.storm {
            Verdict::Storm
        } else {
            Verdict::Restart
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// Runs `f`, catching a panic; returns whether it completed. While it
/// runs, the service is marked busy with `cmd` for the watchdog.
pub(crate) fn guarded(
    counters: &Counters,
    service: &'static str,
    what: std::fmt::Arguments<'_>,
    cmd: u32,
    f: impl FnOnce(),
) -> bool {
    counters.begin(cmd);
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(f));
    counters.end(started.elapsed());
    match result {
        Ok(()) => true,
        Err(payload) => {
            counters.panics.fetch_add(1, Relaxed);
            error!(service, what = %what, panic = %panic_message(payload.as_ref()), "handler panicked; the service goes on");
            false
        }
    }
}
