//! Quick echo benchmark: N websocket clients in a closed loop (send, wait for
//! the reply, send again) against the real processes, on the in-process bus
//! and on RabbitMQ. Reports round trips per second, latency percentiles and
//! the peak RSS (VmHWM) of each server process. The full load harness is the
//! bots crate's job; this is the spine's yardstick.
//!
//! `cargo bench --bench echo` (env: BENCH_CLIENTS=100, BENCH_SECS=10,
//! BENCH_PAYLOAD=100). Clients and servers share the machine.
//!
//! BENCH_PANICS=10 adds one more client that makes the test-only `faults`
//! service panic 10 times a second during the run (issue 7, promise 3: the
//! other services' throughput should not move). The restart-storm stop is
//! turned off for that run: at 10 panics/s the faults service is restarted
//! with fresh state every second, which is the point.
//!
//! BENCH_DURABLE=1 runs the RabbitMQ case in the durable mode (quorum
//! request queue, persistent events, an acknowledgement per request after
//! its handler); the in-process run is skipped (it has no such mode).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use support::{cpu_ticks, env_or, peak_rss_kib};
use warren_test_support::stack::{BusKind, Stack};

// Long: one benchmark run, set up, measured and reported in order.
async fn run(kind: BusKind, clients: u64, secs: u64, payload: usize, panics: u64) {
    let durable = env_or("BENCH_DURABLE", 0) == 1;
    let mut extra = vec![("RUST_LOG", "error"), ("WARREN_GAME__RESTART_STORM", "0")];
    if durable {
        extra.push(("WARREN_BUS__DURABLE", "true"));
    }
    let stack = Stack::start_with(kind, &extra).await;
    let warmup = Duration::from_secs(2);
    let measure = Duration::from_secs(secs);
    let body = vec![7u8; payload];
    let mut tasks = Vec::new();
    let start = Instant::now() + warmup;
    let end = start + measure;
    for uid in 0..clients {
        let mut c = stack.player(1000 + uid).await;
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut n = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                c.echo(&body).await;
                if t0 >= start {
                    h.record(t0.elapsed().as_micros() as u64).unwrap();
                    n += 1;
                }
            }
            (h, n)
        }));
    }
    let mut saboteur = None;
    if let Some(micros) = 1_000_000u64.checked_div(panics) {
        let mut c = stack.player(999_999).await;
        let interval = Duration::from_micros(micros);
        saboteur = Some(tokio::spawn(async move {
            let mut n = 0u64;
            let mut tick = tokio::time::interval(interval);
            while Instant::now() < end {
                tick.tick().await;
                let (r, _) = c.request(9990, &serde_json::json!({})).await;
                assert_eq!(r.cmd, warren_proto::cmd::ERROR);
                n += 1;
            }
            n
        }));
    }
    let pids = stack.pids();
    tokio::time::sleep_until(start.into()).await;
    let cpu0: Vec<u64> = pids.iter().map(|(_, p)| cpu_ticks(*p)).collect();
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut count = 0;
    for t in tasks {
        let (h, n) = t.await.unwrap();
        total.add(h).unwrap();
        count += n;
    }
    let cpu1: Vec<u64> = pids.iter().map(|(_, p)| cpu_ticks(*p)).collect();
    if let Some(s) = saboteur {
        println!(
            "  (meanwhile {} requests made the faults service panic)",
            s.await.unwrap()
        );
    }
    let rate = count as f64 / measure.as_secs_f64();
    println!(
        "{kind:?}: {clients} clients, {payload} B: {rate:.0} round trips/s; latency µs p50 {} p90 {} p99 {} p99.9 {} max {}",
        total.value_at_quantile(0.5),
        total.value_at_quantile(0.9),
        total.value_at_quantile(0.99),
        total.value_at_quantile(0.999),
        total.max()
    );
    for (i, (name, pid)) in pids.iter().enumerate() {
        // Clock ticks are 1/100 s on Linux.
        let cpu_us = (cpu1[i] - cpu0[i]) as f64 * 10_000.0;
        println!(
            "  {name}: peak RSS {} KiB, CPU {:.1} µs per round trip",
            peak_rss_kib(*pid),
            cpu_us / count.max(1) as f64
        );
    }
}

fn main() {
    let clients = env_or("BENCH_CLIENTS", 100);
    let secs = env_or("BENCH_SECS", 10);
    let payload = env_or("BENCH_PAYLOAD", 100) as usize;
    let panics = env_or("BENCH_PANICS", 0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // `cargo test --benches` runs this with --bench absent: keep that short.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (clients, secs) = if smoke { (4, 1) } else { (clients, secs) };
    rt.block_on(async {
        if env_or("BENCH_DURABLE", 0) != 1 {
            run(BusKind::InProcess, clients, secs, payload, panics).await;
        }
        run(BusKind::RabbitMq, clients, secs, payload, panics).await;
    });
}
