//! Announcement fan-out: N bots connected (10,000 by default), one
//! announcement to everyone through `warren announce`; the time from the
//! command to the last bot's receipt gives the fan-out rate (pushes
//! delivered per second). Runs on the in-process bus (one process) and on
//! RabbitMQ with two connectors and one game. Also reports each server
//! process's RSS with the bots connected.
//!
//! `cargo bench --bench fanout` (env: BENCH_BOTS=10000).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use support::rss_kib;
use tokio::sync::{Barrier, Semaphore};
use warren_proto::cmd;
use warren_test_support::stack::{BusKind, Client, Stack};

async fn run(kind: BusKind, bots: u64) {
    let stack = match kind {
        BusKind::InProcess => Stack::start_with(kind, &[("RUST_LOG", "warn")]).await,
        BusKind::RabbitMq
        | BusKind::Redis
        | BusKind::Zmq
        | BusKind::ZmqPushServer
        | BusKind::Grpc => Stack::start_connectors(kind, 2, &[("RUST_LOG", "warn")]).await,
        BusKind::ZmqPair => Stack::start_with(kind, &[("RUST_LOG", "warn")]).await,
    };
    let connect_start = Instant::now();
    let limit = Arc::new(Semaphore::new(200));
    let ready = Arc::new(Barrier::new(bots as usize + 1));
    let mut tasks = Vec::new();
    for uid in 1..=bots {
        let (addr, url) = stack.connectors[(uid as usize) % stack.connectors.len()].clone();
        let token = stack.token(uid);
        let (limit, ready) = (limit.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = {
                let _permit = limit.acquire().await.unwrap();
                let mut c = Client::connect(addr, &url, None).await;
                assert_eq!(c.login(&token).await.cmd, cmd::LOGIN);
                c
            };
            ready.wait().await;
            loop {
                let f = c.recv().await;
                if f.cmd == cmd::ANNOUNCEMENT {
                    return (Instant::now(), c);
                }
            }
        }));
    }
    ready.wait().await;
    let connected_in = connect_start.elapsed();
    // Let the game record every login (presence of the last uids).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss: Vec<(&str, u64)> = stack
        .pids()
        .iter()
        .map(|(n, p)| (*n, rss_kib(*p)))
        .collect();

    let sent = Instant::now();
    let (ok, printed) = stack.announce(&["--text", "fan-out"]);
    assert!(ok, "{printed}");
    let mut last = sent;
    let mut keep = Vec::new();
    for t in tasks {
        let (at, c) = t.await.unwrap();
        last = last.max(at);
        keep.push(c);
    }
    let took = last.duration_since(sent);
    println!(
        "{kind:?}: {bots} bots connected in {:.1} s; announcement reached all in {:.0} ms = {:.0} pushes/s (delivered reported: {})",
        connected_in.as_secs_f64(),
        took.as_secs_f64() * 1000.0,
        bots as f64 / took.as_secs_f64(),
        printed.trim()
    );
    for (name, kib) in rss {
        println!("  {name}: RSS {kib} KiB with the bots connected");
    }
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let bots = if smoke {
        20
    } else {
        std::env::var("BENCH_BOTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run(BusKind::InProcess, bots).await;
        run(BusKind::RabbitMq, bots).await;
    });
}
