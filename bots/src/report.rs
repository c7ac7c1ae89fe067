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
        if !self.watched.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "{:<14} {:>8} {:>10} {:>14} {:>9} {:>10}",
                "process", "pid", "CPU %", "CPU µs/answer", "RSS MiB", "peak MiB"
            );
            for w in &self.watched {
                let _ = writeln!(
                    out,
                    "{:<14} {:>8} {:>10.1} {:>14.1} {:>9.1} {:>10.1}",
                    truncate(&w.name, 14),
                    w.pid,
                    w.cpu_percent,
                    w.cpu_us_per_request,
                    w.rss_mib,
                    w.peak_rss_mib
                );
            }
        }
        out
    }

    /// The latency distribution of every group (and chat delivery) as an
    /// SVG: percentiles on a log scale across, milliseconds up.
    pub(crate) fn svg(&self) -> String {
        let mut lines: Vec<(String, &Histogram<u64>)> = Vec::new();
        for g in &self.groups {
            if !g.hist.is_empty() {
                lines.push((format!("{} ({}) reply", g.name, g.scenario), &g.hist));
            }
            if !g.push_hist.is_empty() {
                lines.push((format!("{} delivered", g.name), &g.push_hist));
            }
        }
        plot(&self.title(), &lines)
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

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

// Long: an SVG chart written out element by element.
/// A percentile-spectrum plot, written by hand (no plotting dependency).
pub(crate) fn plot(title: &str, lines: &[(String, &Histogram<u64>)]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 520.0;
    const L: f64 = 70.0;
    const R: f64 = 30.0;
    const T: f64 = 50.0;
    const B: f64 = 60.0;
    const COLORS: [&str; 6] = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
    ];
    // x: "nines", log10(1 / (1 - q)), from 0 (p0) to 5 (p99.999).
    let nines_max = 5.0;
    let x = |nines: f64| L + (W - L - R) * nines / nines_max;
    let top_ms = lines
        .iter()
        .map(|(_, h)| h.max() as f64 / 1000.0)
        .fold(0.0, f64::max)
        .max(0.001);
    let step = nice_step(top_ms / 5.0);
    let y_max = (top_ms / step).ceil() * step;
    let y = |ms: f64| T + (H - T - B) * (1.0 - ms / y_max);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    for (i, label) in ["p0", "p90", "p99", "p99.9", "p99.99", "p99.999"]
        .iter()
        .enumerate()
    {
        let px = x(i as f64);
        let _ = writeln!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{T}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            H - B,
            H - B + 18.0
        );
    }
    let mut v = 0.0;
    while v <= y_max + step / 2.0 {
        let py = y(v);
        let _ = writeln!(
            svg,
            "<line x1=\"{L}\" y1=\"{py:.1}\" x2=\"{}\" y2=\"{py:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - R,
            L - 6.0,
            py + 4.0,
            trim_float(v)
        );
        v += step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text><text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">latency (ms)</text>"#,
        (L + W - R) / 2.0,
        H - 18.0,
        (T + H - B) / 2.0,
        (T + H - B) / 2.0
    );
    for (k, (name, h)) in lines.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let mut points = String::new();
        let mut nines = 0.0;
        while nines <= nines_max + 1e-9 {
            let q = 1.0 - 10f64.powf(-nines);
            let ms = h.value_at_quantile(q.min(1.0)) as f64 / 1000.0;
            let _ = write!(points, "{:.1},{:.1} ", x(nines), y(ms));
            nines += 0.05;
        }
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>"#
        );
        let ly = T + 16.0 + 18.0 * k as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{}">{} — p99 {:.2} ms</text>"#,
            L + 12.0,
            ly - 4.0,
            L + 32.0,
            ly + 1.0,
            escape(name),
            h.value_at_quantile(0.99) as f64 / 1000.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_is_an_svg_with_one_line_per_histogram() {
        let mut a = histogram();
        let mut b = histogram();
        for v in 1..1000 {
            a.record(v * 10).expect("in range");
            b.record(v * 30).expect("in range");
        }
        let svg = plot("a <title>", &[("one".into(), &a), ("two".into(), &b)]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt;title&gt;"));
    }

    #[test]
    fn grid_steps_are_round_numbers() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(12.0), 20.0);
        assert_eq!(trim_float(2.500), "2.5");
    }
}
