//! Detached sessions: how much memory a resumable session (PROTOCOL.md §5)
//! costs the connector while it waits for its client. In steps of 2,000, up
//! to BENCH_DETACHED (default 18,000), players open resumable sessions,
//! each gets one echo answer (kept for a resume, like any frame not yet
//! acknowledged), and drop their connection without a close: the sessions
//! stay, detached, for the grace period (an hour here). The connector's RSS
//! is read after each step and a line fitted through the points: its slope
//! is the memory per detached session (the sockets of each step are freed
//! and their memory reused by the next, so what grows is the sessions).
//!
//! `cargo bench --bench detached` (BENCH_DETACHED=18000, BENCH_STEP=2000,
//! BENCH_PAYLOAD=100: the echoed bytes each session keeps).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use support::{env_or, rss_kib};
use tokio::sync::Semaphore;
use warren_test_support::stack::{BusKind, Client, Stack};

/// Least-squares slope of `points`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

/// Opens a resumable session as `uid`, has `payload` bytes echoed, and
/// drops the connection without a close.
async fn detach_one(addr: std::net::SocketAddr, url: String, token: String, payload: usize) {
    let mut c = Client::connect(addr, &url, None).await;
    let reply = c.login_resumable(&token, None).await;
    assert!(reply.session.is_some(), "{reply:?}");
    c.echo(&vec![b'x'; payload]).await;
    drop(c);
}

// Long: one benchmark run, set up, measured and reported in order.
fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (total, step) = if smoke {
        (200, 100)
    } else {
        (
            env_or("BENCH_DETACHED", 18_000),
            env_or("BENCH_STEP", 2_000),
        )
    };
    let payload = env_or("BENCH_PAYLOAD", 100) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let stack = Stack::start_connectors(
            BusKind::RabbitMq,
            1,
            &[
                ("RUST_LOG", "warn"),
                ("WARREN_CONNECTOR__MAX_CONNECTIONS", "19800"),
                ("WARREN_CONNECTOR__RESUME_GRACE_MS", "3600000"),
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
        let mut points = vec![(0.0, rss_kib(pid) as f64)];
        println!("| detached sessions | connector RSS (MiB) |");
        println!("|---|---|");
        println!("| 0 | {:.1} |", points[0].1 / 1024.0);
        let gate = Arc::new(Semaphore::new(200));
        let mut done = 0u64;
        while done < total {
            let mut tasks = Vec::new();
            for i in 0..step.min(total - done) {
                let token = stack.token(1 + done + i);
                let (url, gate) = (url.clone(), gate.clone());
                tasks.push(tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await.unwrap();
                    detach_one(addr, url, token, payload).await;
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            done += step.min(total - done);
            // Let the connector see every drop and settle.
            tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
            let rss = rss_kib(pid) as f64;
            points.push((done as f64, rss));
            println!("| {done} | {:.1} |", rss / 1024.0);
        }
        println!(
            "connector memory per detached session (one {payload}-byte answer kept): {:.2} KiB (fit over {} points)",
            slope(&points),
            points.len()
        );
    });
}
