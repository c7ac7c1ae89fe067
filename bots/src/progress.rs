//! What the harness shows and watches while it runs: the live progress
//! line, and the CPU time and memory of the processes under test.

use std::{io::IsTerminal, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::{sync::mpsc, time::Instant};

use crate::{
    plan::Plan,
    report::Watched,
    stats::{Snapshot, add_pairs, histogram},
    sys,
};

// Long: the progress line's every field, gathered and printed once a second.
/// The live progress line: indicatif on a terminal, a plain line every five
/// seconds otherwise.
pub(crate) async fn show_progress(
    plan: Plan,
    procs: u64,
    mut rx: mpsc::Receiver<(u64, Snapshot)>,
    quiet: bool,
) {
    let total = plan.total_bots();
    let terminal = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if quiet || !terminal {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed:>4} [{bar:24}] {pos}/{len} connected · {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let start = plan.start_instant();
    let (begin, end) = plan.window();
    let mut latest: Vec<Snapshot> = vec![Snapshot::default(); procs as usize];
    let mut previous = Snapshot::default();
    let mut last_line = Instant::now();
    let mut live = histogram();
    let mut last_tick = Instant::now();
    while let Some((k, snap)) = rx.recv().await {
        add_pairs(&mut live, &snap.live);
        if let Some(slot) = latest.get_mut(k as usize) {
            *slot = snap;
        }
        // Redraw once a second, when every process has likely reported.
        if last_tick.elapsed() < Duration::from_millis(900) {
            continue;
        }
        let secs = last_tick.elapsed().as_secs_f64();
        last_tick = Instant::now();
        let sum = latest.iter().fold(Snapshot::default(), |mut a, s| {
            a.connected += s.connected;
            a.sent += s.sent;
            a.received += s.received;
            a.problems += s.problems;
            a
        });
        let t = start.elapsed();
        let phase = if t < plan.ramp_time() {
            "ramp"
        } else if t < begin {
            "warm-up"
        } else if t < end {
            "measuring"
        } else {
            "draining"
        };
        let p99 = if live.is_empty() {
            0.0
        } else {
            live.value_at_quantile(0.99) as f64 / 1000.0
        };
        let msg = format!(
            "{phase} · sent {:.0}/s · answers {:.0}/s · p99 {p99:.1} ms · problems {}",
            (sum.sent - previous.sent.min(sum.sent)) as f64 / secs,
            (sum.received - previous.received.min(sum.received)) as f64 / secs,
            sum.problems
        );
        bar.set_position(sum.connected);
        bar.set_message(msg.clone());
        bar.tick();
        if !quiet && !terminal && last_line.elapsed() >= Duration::from_secs(5) {
            eprintln!(
                "warren-bots: {:>4.0}s {}/{} connected · {msg}",
                t.as_secs_f64(),
                sum.connected,
                total
            );
            last_line = Instant::now();
        }
        live.reset();
        previous = sum;
    }
    bar.finish_and_clear();
}

/// Reads the watched processes' CPU time at the start and the end of the
/// window.
pub(crate) async fn watch_processes(plan: Plan, pids: Vec<(String, u32)>) -> Vec<Watched> {
    if pids.is_empty() {
        return Vec::new();
    }
    let start = plan.start_instant();
    let (begin, end) = plan.window();
    tokio::time::sleep_until(start + begin).await;
    let before: Vec<Option<f64>> = pids.iter().map(|(_, p)| sys::cpu_secs(*p)).collect();
    let switched: Vec<Option<u64>> = pids
        .iter()
        .map(|(_, p)| sys::context_switches(*p))
        .collect();
    let t0 = Instant::now();
    tokio::time::sleep_until(start + end).await;
    let secs = t0.elapsed().as_secs_f64().max(0.001);
    pids.iter()
        .zip(before)
        .zip(switched)
        .map(|(((name, pid), before), switched)| {
            let cpu = match (before, sys::cpu_secs(*pid)) {
                (Some(a), Some(b)) => b - a,
                _ => 0.0,
            };
            let switches = match (switched, sys::context_switches(*pid)) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => 0,
            };
            Watched {
                name: name.clone(),
                pid: *pid,
                cpu_secs: cpu,
                cpu_us_per_request: 0.0,
                context_switches: switches,
                switches_per_request: 0.0,
                cpu_percent: cpu / secs * 100.0,
                rss_mib: sys::memory_mib(*pid, "VmRSS:").unwrap_or(0.0),
                peak_rss_mib: sys::memory_mib(*pid, "VmHWM:").unwrap_or(0.0),
            }
        })
        .collect()
}
