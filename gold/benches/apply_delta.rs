//! gold's sustained ApplyDelta rate and latency on PostgreSQL: 50 concurrent
//! gRPC callers for 10 s (after a 2 s warm-up), each call a new idempotency
//! key, in two shapes: every caller on its own account (no row contention)
//! and all callers on one account (every call waits for the row lock).
//!
//! `cargo bench -p warren-gold --bench apply_delta` (env: BENCH_CALLERS,
//! BENCH_SECS; WARREN_TEST_DATABASE_URL for the PostgreSQL server). gold and
//! the callers run in this one process; PostgreSQL runs beside it.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

#[path = "../tests/gold/helpers.rs"]
#[allow(dead_code, unused_macros)]
mod helpers;

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use helpers::{Db, OpenStore, Server, TestDb};
use tonic::transport::Channel;
use warren_proto::gold::{ApplyDeltaRequest, GuestAccountRequest, gold_client::GoldClient};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(shared_account: bool, callers: u64, secs: u64) {
    let db = TestDb::new(Db::Postgres).await;
    let server = Server::start(db.store().await).await;
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut setup = GoldClient::new(channel.clone());
    let mut uids = Vec::new();
    for i in 0..callers {
        let device = if shared_account {
            "shared".to_owned()
        } else {
            format!("bench-{i}")
        };
        let acc = setup
            .guest_account(GuestAccountRequest { device_id: device })
            .await
            .unwrap();
        uids.push(acc.into_inner().uid);
    }
    let start = Instant::now() + Duration::from_secs(2);
    let end = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (i, uid) in uids.into_iter().enumerate() {
        let mut client = GoldClient::new(channel.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut n = 0u64;
            let mut seq = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                seq += 1;
                client
                    .apply_delta(ApplyDeltaRequest {
                        uid,
                        currency: "gold".into(),
                        delta: 1,
                        reason: "bench".into(),
                        idempotency_key: format!("bench-{i}-{seq}"),
                    })
                    .await
                    .unwrap();
                if t0 >= start {
                    h.record(t0.elapsed().as_micros() as u64).unwrap();
                    n += 1;
                }
            }
            (h, n)
        }));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut count = 0;
    for t in tasks {
        let (h, n) = t.await.unwrap();
        total.add(h).unwrap();
        count += n;
    }
    let shape = if shared_account {
        "one shared account"
    } else {
        "an account each"
    };
    println!(
        "ApplyDelta, PostgreSQL, {callers} callers on {shape}: {:.0} calls/s; latency µs p50 {} p90 {} p99 {} p99.9 {} max {}",
        count as f64 / secs as f64,
        total.value_at_quantile(0.5),
        total.value_at_quantile(0.9),
        total.value_at_quantile(0.99),
        total.value_at_quantile(0.999),
        total.max()
    );
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let callers = env_or("BENCH_CALLERS", 50);
    let secs = if smoke { 1 } else { env_or("BENCH_SECS", 10) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run(false, callers, secs).await;
        run(true, callers, secs).await;
    });
}
