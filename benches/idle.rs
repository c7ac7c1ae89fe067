//! Idle connections: how much memory one logged-in, idle socket costs the
//! connector, and how long connecting takes as they pile up. Opens
//! logged-in websockets in steps (2,000 at a time, up to BENCH_IDLE,
//! default 18,000: one process may hold 20,000 files here, and this one
//! holds the client ends) to a connector running alone on RabbitMQ, reads
//! the connector's RSS after each step, and fits a line through the points:
//! its slope is the memory per connection. Connect time is the TCP
//! connect, the websocket handshake and the login reply, per socket.
//!
//! `cargo bench --bench idle` (BENCH_IDLE=18000, BENCH_STEP=2000;
//! BENCH_READ_BUFFER=1024 is the connector's per-socket read buffer).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

mod support;

use std::{sync::Arc, time::Instant};

use hdrhistogram::Histogram;
use support::{env_or, rss_kib};
use tokio::sync::Semaphore;
use warren_proto::cmd;
use warren_test_support::stack::{BusKind, Client, Stack};

/// Least-squares slope and intercept of `points`.
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    let slope = if den == 0.0 { 0.0 } else { num / den };
    (slope, my - slope * mx)
}

// Long: one benchmark run, set up, measured and reported in order.
fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (total, step) = if smoke {
        (200, 100)
    } else {
        (env_or("BENCH_IDLE", 18_000), env_or("BENCH_STEP", 2_000))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let read_buffer = env_or("BENCH_READ_BUFFER", 1024).to_string();
    rt.block_on(async move {
        let stack = Stack::start_connectors(
            BusKind::RabbitMq,
            1,
            &[
                ("RUST_LOG", "warn"),
                ("WARREN_CONNECTOR__MAX_CONNECTIONS", "19800"),
                // Idle means idle: no heartbeats needed for this run.
                ("WARREN_CONNECTOR__IDLE_TIMEOUT_MS", "3600000"),
                (
                    "WARREN_CONNECTOR__READ_BUFFER_BYTES",
                    &read_buffer,
                ),
            ],
        )
        .await;
        let pid = stack
            .pids()
            .into_iter()
            .find(|(name, _)| *name == "connector")
            .unwrap()
            .1;
        let (addr, url) = (stack.addr, stack.url.clone());
        let mut held: Vec<Client> = Vec::new();
        let mut points = vec![(0.0, rss_kib(pid) as f64)];
        let mut connect = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        println!("| sockets | connector RSS (MiB) | connect p50 / p99 (ms) this step |");
        println!("|---|---|---|");
        println!("| 0 | {:.1} | — |", points[0].1 / 1024.0);
        let gate = Arc::new(Semaphore::new(200));
        while (held.len() as u64) < total {
            let mut tasks = Vec::new();
            for i in 0..step.min(total - held.len() as u64) {
                let uid = 1 + held.len() as u64 + i;
                let token = stack.token(uid);
                let (url, gate) = (url.clone(), gate.clone());
                tasks.push(tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await.unwrap();
                    let t0 = Instant::now();
                    let mut c = Client::connect(addr, &url, None).await;
                    let reply = c.login(&token).await;
                    assert_eq!(reply.cmd, cmd::LOGIN, "{reply:?}");
                    (c, t0.elapsed().as_micros() as u64)
                }));
            }
            let mut this_step = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            for t in tasks {
                let (c, us) = t.await.unwrap();
                this_step.record(us).unwrap();
                held.push(c);
            }
            connect.add(&this_step).unwrap();
            // Let the connector settle (allocator, lazy buffers).
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let rss = rss_kib(pid) as f64;
            points.push((held.len() as f64, rss));
            println!(
                "| {} | {:.1} | {:.1} / {:.1} |",
                held.len(),
                rss / 1024.0,
                this_step.value_at_quantile(0.5) as f64 / 1000.0,
                this_step.value_at_quantile(0.99) as f64 / 1000.0
            );
        }
        let (slope, intercept) = fit(&points);
        println!(
            "connector memory per idle logged-in socket: {slope:.2} KiB (fit over {} points; {:.1} MiB with none)",
            points.len(),
            intercept / 1024.0
        );
        println!(
            "connect (TCP + websocket handshake + login reply), all {}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            held.len(),
            connect.value_at_quantile(0.5) as f64 / 1000.0,
            connect.value_at_quantile(0.99) as f64 / 1000.0,
            connect.max() as f64 / 1000.0
        );
    });
}
