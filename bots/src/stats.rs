//! What the bots of one process record, and the two forms it leaves the
//! process in: a [`Snapshot`] every second (for the progress line) and a
//! [`Tally`] at the end (for the report). Both merge across processes.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds, up to a minute.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|e| unreachable!("bounds: {e}"))
}

/// A histogram as (value, count) pairs, for JSON.
pub(crate) fn pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

pub(crate) fn add_pairs(h: &mut Histogram<u64>, pairs: &[(u64, u64)]) {
    for &(value, count) in pairs {
        // Clamped: a value beyond the bounds counts at the top.
        let _ = h.record_n(value.clamp(1, h.high()), count);
    }
}

/// Histograms behind a few locks, so bots on different threads rarely meet.
#[derive(Debug)]
pub(crate) struct Sharded {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Sharded {
    fn new() -> Self {
        Sharded {
            shards: (0..16).map(|_| Mutex::new(histogram())).collect(),
        }
    }

    pub(crate) fn record(&self, bot: u64, micros: u64) {
        let mut h = self.shards[(bot % 16) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let _ = h.record(micros.clamp(1, 60_000_000));
    }

    /// Everything recorded; with `reset`, also empties it.
    fn merged(&self, reset: bool) -> Histogram<u64> {
        let mut total = histogram();
        for shard in &self.shards {
            let mut h = shard.lock().unwrap_or_else(|p| p.into_inner());
            let _ = total.add(&*h);
            if reset {
                h.reset();
            }
        }
        total
    }
}

/// One group's figures.
#[derive(Debug)]
pub(crate) struct GroupStats {
    /// Requests sent whose intended time is in the measured window.
    pub sent: AtomicU64,
    /// Replies to those requests.
    pub answered: AtomicU64,
    /// Of those, error frames.
    pub failed: AtomicU64,
    /// Pushes received in the window (chat messages).
    pub pushes: AtomicU64,
    /// How late the bots sent, after the intended time (their own timer
    /// and scheduling; it is part of the reply latency).
    pub lag: Sharded,
    pub reply: Sharded,
    pub push: Sharded,
}

/// Everything one process records.
#[derive(Debug)]
pub(crate) struct Stats {
    pub groups: Vec<GroupStats>,
    pub connected: AtomicU64,
    /// Bots still connected when the measured window ended.
    pub connected_at_end: AtomicU64,
    /// Every request sent and reply received, window or not (progress).
    pub sent_all: AtomicU64,
    pub received_all: AtomicU64,
    pub problems: AtomicU64,
    pub connect: Sharded,
    /// Latencies since the last snapshot, for the live p99.
    live: Sharded,
    /// Error frames by code, kicks by reason, connection failures by kind.
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub kicks: Mutex<BTreeMap<String, u64>>,
    pub failures: Mutex<BTreeMap<String, u64>>,
    /// The flaky scenario's counts (frames lost, resumes…), and how long
    /// a resume took.
    pub flaky: Mutex<BTreeMap<String, u64>>,
    pub resume: Sharded,
}

impl Stats {
    pub(crate) fn new(groups: usize) -> Self {
        Stats {
            groups: (0..groups)
                .map(|_| GroupStats {
                    sent: AtomicU64::new(0),
                    answered: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                    pushes: AtomicU64::new(0),
                    lag: Sharded::new(),
                    reply: Sharded::new(),
                    push: Sharded::new(),
                })
                .collect(),
            connected: AtomicU64::new(0),
            connected_at_end: AtomicU64::new(0),
            sent_all: AtomicU64::new(0),
            received_all: AtomicU64::new(0),
            problems: AtomicU64::new(0),
            connect: Sharded::new(),
            live: Sharded::new(),
            errors: Mutex::default(),
            kicks: Mutex::default(),
            failures: Mutex::default(),
            flaky: Mutex::default(),
            resume: Sharded::new(),
        }
    }

    pub(crate) fn flaky(&self, what: &str, n: u64) {
        if n == 0 {
            return;
        }
        *self
            .flaky
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(what.to_owned())
            .or_default() += n;
    }

    pub(crate) fn live(&self, bot: u64, micros: u64) {
        self.live.record(bot, micros);
    }

    fn count(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
        *map.lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_owned())
            .or_default() += 1;
    }

    pub(crate) fn error(&self, code: &str) {
        self.problems.fetch_add(1, Relaxed);
        Self::count(&self.errors, code);
    }

    pub(crate) fn kick(&self, reason: &str) {
        self.problems.fetch_add(1, Relaxed);
        Self::count(&self.kicks, reason);
    }

    pub(crate) fn failure(&self, kind: &str) {
        self.problems.fetch_add(1, Relaxed);
        Self::count(&self.failures, kind);
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            connected: self.connected.load(Relaxed),
            sent: self.sent_all.load(Relaxed),
            received: self.received_all.load(Relaxed),
            problems: self.problems.load(Relaxed),
            live: pairs(&self.live.merged(true)),
        }
    }

    pub(crate) fn tally(&self) -> Tally {
        let map =
            |m: &Mutex<BTreeMap<String, u64>>| m.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Tally {
            groups: self
                .groups
                .iter()
                .map(|g| GroupTally {
                    sent: g.sent.load(Relaxed),
                    answered: g.answered.load(Relaxed),
                    failed: g.failed.load(Relaxed),
                    pushes: g.pushes.load(Relaxed),
                    lag: pairs(&g.lag.merged(false)),
                    reply: pairs(&g.reply.merged(false)),
                    push: pairs(&g.push.merged(false)),
                })
                .collect(),
            connected: self.connected_at_end.load(Relaxed),
            connect: pairs(&self.connect.merged(false)),
            errors: map(&self.errors),
            kicks: map(&self.kicks),
            failures: map(&self.failures),
            flaky: map(&self.flaky),
            resume: pairs(&self.resume.merged(false)),
        }
    }
}

/// A process's state at one moment (counters are totals since the start).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub connected: u64,
    pub sent: u64,
    pub received: u64,
    pub problems: u64,
    /// Latencies since the previous snapshot.
    pub live: Vec<(u64, u64)>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct GroupTally {
    pub sent: u64,
    pub answered: u64,
    pub failed: u64,
    pub pushes: u64,
    pub lag: Vec<(u64, u64)>,
    pub reply: Vec<(u64, u64)>,
    pub push: Vec<(u64, u64)>,
}

/// A process's final figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Tally {
    pub groups: Vec<GroupTally>,
    /// Bots still connected at the end of the window.
    pub connected: u64,
    pub connect: Vec<(u64, u64)>,
    pub errors: BTreeMap<String, u64>,
    pub kicks: BTreeMap<String, u64>,
    pub failures: BTreeMap<String, u64>,
    #[serde(default)]
    pub flaky: BTreeMap<String, u64>,
    #[serde(default)]
    pub resume: Vec<(u64, u64)>,
}

impl Tally {
    pub(crate) fn merge(&mut self, other: Tally) {
        if self.groups.len() < other.groups.len() {
            self.groups
                .resize_with(other.groups.len(), GroupTally::default);
        }
        for (mine, theirs) in self.groups.iter_mut().zip(other.groups) {
            mine.sent += theirs.sent;
            mine.answered += theirs.answered;
            mine.failed += theirs.failed;
            mine.pushes += theirs.pushes;
            mine.lag.extend(theirs.lag);
            mine.reply.extend(theirs.reply);
            mine.push.extend(theirs.push);
        }
        self.connected += other.connected;
        self.connect.extend(other.connect);
        self.resume.extend(other.resume);
        for (mine, theirs) in [
            (&mut self.errors, other.errors),
            (&mut self.kicks, other.kicks),
            (&mut self.failures, other.failures),
            (&mut self.flaky, other.flaky),
        ] {
            for (k, v) in theirs {
                *mine.entry(k).or_default() += v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_of_two_processes_add_up() {
        let a = Stats::new(1);
        let b = Stats::new(1);
        for v in [100, 200, 300] {
            a.groups[0].reply.record(1, v);
        }
        b.groups[0].reply.record(2, 10_000);
        a.groups[0].answered.store(3, Relaxed);
        b.groups[0].answered.store(1, Relaxed);
        a.error("timeout");
        b.error("timeout");
        b.kick("rate_limited");
        let mut total = a.tally();
        total.merge(b.tally());
        assert_eq!(total.groups[0].answered, 4);
        let mut h = histogram();
        add_pairs(&mut h, &total.groups[0].reply);
        assert_eq!(h.len(), 4);
        assert!(h.max() >= 9_990, "{}", h.max());
        assert_eq!(total.errors["timeout"], 2);
        assert_eq!(total.kicks["rate_limited"], 1);
    }

    #[test]
    fn the_live_histogram_empties_at_each_snapshot() {
        let s = Stats::new(0);
        s.live(0, 500);
        assert_eq!(s.snapshot().live.iter().map(|p| p.1).sum::<u64>(), 1);
        assert!(s.snapshot().live.is_empty());
    }
}
