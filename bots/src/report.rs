//! The final report: a table for people, JSON for scripts, and an SVG plot
//! of the latency distribution.

use std::{collections::BTreeMap, fmt::Write as _};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{
    plan::Plan,
    stats::{Tally, add_pairs, histogram},
};

#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct GroupReport {
    pub name: String,
    pub scenario: String,
    pub bots: u64,
    /// Per bot and second; 0 = closed loop.
    pub rate: f64,
    pub payload: usize,
    /// Requests meant to be sent in the window, and their answers.
    pub sent: u64,
    pub answered: u64,
    pub failed: u64,
    /// Answered requests per second over the window.
    pub throughput: f64,
    pub latency: Latency,
    /// How late the bots themselves sent (timer and scheduling), included
    /// in `latency`.
    pub send_lag: Latency,
    /// Chat: messages received from room members, and their delivery time.
    pub pushes: u64,
    pub push_latency: Option<Latency>,
    #[serde(skip)]
    pub hist: Histogram<u64>,
    #[serde(skip)]
    pub push_hist: Histogram<u64>,
}

/// CPU and memory of a process watched over the window.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Watched {
    pub name: String,
    pub pid: u32,
    pub cpu_secs: f64,
    /// CPU time per answered request over every group.
    pub cpu_us_per_request: f64,
    /// Context switches of all its threads over the window.
    pub context_switches: u64,
    /// The same per answered request: the wake-ups a request costs.
    pub switches_per_request: f64,
    /// Share of one core over the window.
    pub cpu_percent: f64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub target: Vec<String>,
    pub bots: u64,
    pub processes: u64,
    pub warmup_secs: f64,
    pub window_secs: f64,
    /// Bots that connected and logged in, and those connected at the end.
    pub logged_in: u64,
    pub connected_at_end: u64,
    pub connect: Latency,
    pub groups: Vec<GroupReport>,
    /// Answered requests per second over every group.
    pub throughput: f64,
    pub errors: BTreeMap<String, u64>,
    pub kicks: BTreeMap<String, u64>,
    pub failures: BTreeMap<String, u64>,
    /// The flaky scenario: what the resumed sessions got (frames lost,
    /// duplicated, out of order; requests applied twice; resumes and
    /// resyncs), and how long a resume took.
    pub flaky: BTreeMap<String, u64>,
    pub resume: Option<Latency>,
    pub watched: Vec<Watched>,
}

impl Report {
    pub(crate) fn new(plan: &Plan, tally: Tally, processes: u64, watched: Vec<Watched>) -> Self {
        let secs = plan.duration.as_secs_f64();
        let mut connect = histogram();
        add_pairs(&mut connect, &tally.connect);
        let groups: Vec<GroupReport> = plan
            .groups
            .iter()
            .zip(
                tally
                    .groups
                    .iter()
                    .chain(std::iter::repeat(&Default::default())),
            )
            .map(|(g, t)| {
                let mut hist = histogram();
                add_pairs(&mut hist, &t.reply);
                let mut push_hist = histogram();
                add_pairs(&mut push_hist, &t.push);
                let mut lag = histogram();
                add_pairs(&mut lag, &t.lag);
                GroupReport {
                    name: g.name.clone(),
                    scenario: g.scenario.to_string(),
                    bots: g.bots,
                    rate: g.rate,
                    payload: g.payload,
                    sent: t.sent,
                    answered: t.answered,
                    failed: t.failed,
                    throughput: t.answered as f64 / secs,
                    latency: Latency::of(&hist),
                    send_lag: Latency::of(&lag),
                    pushes: t.pushes,
                    push_latency: (t.pushes > 0).then(|| Latency::of(&push_hist)),
                    hist,
                    push_hist,
                }
            })
            .collect();
        Report {
            target: plan.urls.clone(),
            bots: plan.total_bots(),
            processes,
            warmup_secs: plan.warmup.as_secs_f64(),
            window_secs: secs,
            logged_in: connect.len(),
            connected_at_end: tally.connected,
            connect: Latency::of(&connect),
            throughput: groups.iter().map(|g| g.throughput).sum(),
            groups,
            errors: tally.errors,
            kicks: tally.kicks,
            failures: tally.failures,
            resume: (!tally.resume.is_empty()).then(|| {
                let mut h = histogram();
                add_pairs(&mut h, &tally.resume);
                Latency::of(&h)
            }),
            flaky: tally.flaky,
            watched,
        }
    }

    /// Answered requests over the window, every group.
    pub(crate) fn answered(&self) -> u64 {
        self.groups.iter().map(|g| g.answered).sum()
    }

    /// The highest p99 of any group that sends requests.
    pub(crate) fn worst_p99_ms(&self) -> f64 {
        self.groups
            .iter()
            .filter(|g| g.latency.count > 0)
            .map(|g| g.latency.p99_ms)
            .fold(0.0, f64::max)
    }

    pub(crate) fn problems(&self) -> u64 {
        self.errors
            .values()
            .chain(self.kicks.values())
            .chain(self.failures.values())
            .sum()
    }

    // Long: the report's table: one row per figure.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "warren-bots: {} bots against {} ({} process{}), {:.0} s warm-up, {:.0} s measured",
            self.bots,
            self.target.join(", "),
            self.processes,
            if self.processes == 1 { "" } else { "es" },
            self.warmup_secs,
            self.window_secs
        );
        let _ = writeln!(
            out,
            "logged in {}/{} (still connected at the end: {}); connect ms p50 {:.1} p99 {:.1} max {:.1}",
            self.logged_in,
            self.bots,
            self.connected_at_end,
            self.connect.p50_ms,
            self.connect.p99_ms,
            self.connect.max_ms
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<14} {:<6} {:>7} {:>8} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "group",
            "scen.",
            "bots",
            "rate/s",
            "sent",
            "answers/s",
            "p50 ms",
            "p90",
            "p99",
            "p99.9",
            "max"
        );
        for g in &self.groups {
            let rate = if g.rate == 0.0 {
                "max".to_owned()
            } else {
                format!("{}", g.rate)
            };
            row(
                &mut out,
                [
                    &truncate(&g.name, 14),
                    &g.scenario,
                    &g.bots.to_string(),
                    &rate,
                ],
                g.sent,
                g.throughput,
                &g.latency,
            );
            if let Some(p) = &g.push_latency {
                let per_s = g.pushes as f64 / self.window_secs;
                row(
                    &mut out,
                    ["  ↳ delivered", "push", "", ""],
                    g.pushes,
                    per_s,
                    p,
                );
            }
        }
        let lag = self
            .groups
            .iter()
            .map(|g| g.send_lag.p99_ms)
            .fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "(latency runs from each request's intended send time; the bots themselves sent up to {lag:.2} ms late at p99, which is included)"
        );
        let _ = writeln!(out);
        let list = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                "none".to_owned()
            } else {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let _ = writeln!(out, "error answers: {}", list(&self.errors));
        let _ = writeln!(out, "kicks:         {}", list(&self.kicks));
        let _ = writeln!(out, "bot failures:  {}", list(&self.failures));
        if !self.flaky.is_empty() || self.resume.is_some() {
            // Every kind of loss is shown, 0 included.
            let mut flaky = self.flaky.clone();
            for kind in [
                "frames_lost",
                "frames_duplicated",
                "lines_lost",
                "lines_duplicated",
                "lines_out_of_order",
                "replies_duplicated",
                "requests_applied_twice",
                "resyncs",
            ] {
                flaky.entry(kind.to_owned()).or_default();
            }
            let _ = writeln!(out, "flaky:         {}", list(&flaky));
            if let Some(r) = &self.resume {
                let _ = writeln!(
                    out,
                    "resume:        {} resumes, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    r.count, r.p50_ms, r.p99_ms, r.max_ms
                );
            }
        }
        if !self.watched.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "{:<14} {:>8} {:>10} {:>14} {:>15} {:>9} {:>10}",
                "process",
                "pid",
                "CPU %",
                "CPU µs/answer",
                "switches/answer",
                "RSS MiB",
                "peak MiB"
            );
            for w in &self.watched {
                let _ = writeln!(
                    out,
                    "{:<14} {:>8} {:>10.1} {:>14.1} {:>15.2} {:>9.1} {:>10.1}",
                    truncate(&w.name, 14),
                    w.pid,
                    w.cpu_percent,
                    w.cpu_us_per_request,
                    w.switches_per_request,
                    w.rss_mib,
                    w.peak_rss_mib
                );
            }
        }
        out
    }

    /// The latency distribution of every group (and chat delivery) as an
    /// SVG: percentiles on a log scale across, milliseconds up.
    pub(crate) fn svg(&self) -> anyhow::Result<String> {
        let mut lines: Vec<(String, &Histogram<u64>)> = Vec::new();
        for g in &self.groups {
            if !g.hist.is_empty() {
                lines.push((format!("{} ({}) reply", g.name, g.scenario), &g.hist));
            }
            if !g.push_hist.is_empty() {
                lines.push((format!("{} delivered", g.name), &g.push_hist));
            }
        }
        crate::plot::plot(&self.title(), &lines)
    }

    fn title(&self) -> String {
        let groups: Vec<String> = self
            .groups
            .iter()
            .map(|g| {
                let rate = if g.rate == 0.0 {
                    "max".to_owned()
                } else {
                    format!("{}/s", g.rate)
                };
                format!("{} {} × {}", g.bots, g.scenario, rate)
            })
            .collect();
        format!(
            "warren-bots: {}, {:.0} s window",
            groups.join(" + "),
            self.window_secs
        )
    }
}

/// One line of the groups table: name, scenario, bots, rate; a count, a
/// rate per second, and the latency percentiles.
fn row(out: &mut String, text: [&str; 4], count: u64, per_s: f64, l: &Latency) {
    let [name, scenario, bots, rate] = text;
    let _ = writeln!(
        out,
        "{name:<14} {scenario:<6} {bots:>7} {rate:>8} {count:>10} {per_s:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
    );
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
