//! Attackers next to players (issue 7, promise 4): 200 well-behaved clients
//! send a 100-byte echo 10 times a second each (open loop: latency counts
//! from the intended send time), first alone, then next to
//!
//! - 10 flooders, sending as fast as they can (kicked `rate_limited`, and
//!   reconnecting at once to flood again — refused while their 10 s
//!   cool-down lasts),
//! - 100 non-readers, playing normally (10 echoes of 1 KiB a second) but
//!   never reading (kicked `slow_consumer` once their replies fill the
//!   socket buffers and the connector's 256-frame / 1 MiB queue, and
//!   reconnecting),
//! - 10 drippers, sending a websocket handshake one byte every 500 ms
//!   (closed at the 5 s handshake limit, and coming back).
//!
//! Connector and game run as separate processes on RabbitMQ with the
//! production rate limit (100 frames/s, bursts of 200). Reports the good
//! clients' latency in both phases, whether every one of their requests
//! was answered, the connector's kicks by reason and its memory (peak and
//! current RSS). `cargo bench --bench attackers` (BENCH_SECS=20; the mix:
//! BENCH_FLOODERS=10, BENCH_NON_READERS=100, BENCH_DRIPPERS=10).
//! BENCH_NON_READERS_READ=1 makes the non-readers read after all: the same
//! load from well-behaved clients, to tell the cost of not reading from the
//! cost of the traffic.

#![allow(clippy::print_stdout, clippy::unwrap_used)]

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use support::{env_or, status_kib};
use tokio::io::AsyncWriteExt;
use warren_proto::cmd;
use warren_test_support::stack::{BusKind, Client, Event, Stack};

struct Phase {
    latency: Histogram<u64>,
    sent: u64,
    answered: u64,
}

/// `good` clients, each sending `rate` echoes per second for `secs`.
async fn players(good: Vec<Client>, rate: u64, secs: u64) -> (Vec<Client>, Phase) {
    let interval = Duration::from_micros(1_000_000 / rate);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (i, mut c) in good.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let (mut sent, mut answered) = (0u64, 0u64);
            // Spread the clients over the interval.
            let mut intended = Instant::now() + interval * (i as u32 % 100) / 100;
            let body = vec![7u8; 100];
            while intended < end {
                tokio::time::sleep_until(intended.into()).await;
                let seq = c.seq();
                c.send_frame(seq, cmd::ECHO, body.clone()).await.unwrap();
                sent += 1;
                match c.next_event_within(Duration::from_secs(30)).await {
                    Event::Frame(f) if f.seq == seq && f.cmd == cmd::ECHO => answered += 1,
                    Event::Frame(f) => panic!("a good client got {f:?}"),
                    other => panic!("a good client was disconnected: {other:?}"),
                }
                h.record(intended.elapsed().as_micros() as u64).unwrap();
                intended += interval;
            }
            (c, h, sent, answered)
        }));
    }
    let mut phase = Phase {
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
        sent: 0,
        answered: 0,
    };
    let mut back = Vec::new();
    for t in tasks {
        let (c, h, s, a) = t.await.unwrap();
        phase.latency.add(h).unwrap();
        phase.sent += s;
        phase.answered += a;
        back.push(c);
    }
    (back, phase)
}

fn report(name: &str, p: &Phase) {
    let h = &p.latency;
    println!(
        "{name}: {} requests, {} answered; latency µs p50 {} p90 {} p99 {} p99.9 {} max {}",
        p.sent,
        p.answered,
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

// Long: one benchmark run, set up, measured and reported in order.
fn main() {
    let secs = env_or("BENCH_SECS", 20);
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (secs, good_n, flood_n, slow_n, drip_n) = if smoke {
        (2, 10, 1, 5, 1)
    } else {
        (
            secs,
            200,
            env_or("BENCH_FLOODERS", 10),
            env_or("BENCH_NON_READERS", 100),
            env_or("BENCH_DRIPPERS", 10),
        )
    };
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
                ("WARREN_CONNECTOR__RATE_LIMIT_PER_SEC", "100"),
                ("WARREN_CONNECTOR__RATE_LIMIT_BURST", "200"),
                ("WARREN_CONNECTOR__BYTE_LIMIT_PER_SEC", "262144"),
                ("WARREN_CONNECTOR__BYTE_LIMIT_BURST", "1048576"),
            ],
        )
        .await;
        let (addr, url) = (stack.addr, stack.url.clone());
        let connector_pid = stack
            .pids()
            .into_iter()
            .find(|(name, _)| *name == "connector")
            .unwrap()
            .1;
        let mut good: Vec<Client> = Vec::new();
        for uid in 0..good_n {
            good.push(stack.player(1 + uid).await);
        }
        let rss_before = status_kib(connector_pid, "VmRSS:");
        let (good, alone) = players(good, 10, secs).await;
        report("players alone", &alone);

        let stop = Arc::new(AtomicBool::new(false));
        let kicked = Arc::new(AtomicU64::new(0));
        let mut attackers = Vec::new();
        for i in 0..flood_n {
            let (url, stop, kicked) = (url.clone(), stop.clone(), kicked.clone());
            let token = stack.token(100_000 + i);
            attackers.push(tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    let began = Instant::now();
                    let mut c = Client::connect(addr, &url, None).await;
                    c.login(&token).await;
                    // As fast as the socket takes them, until kicked.
                    loop {
                        let seq = c.seq();
                        if c.send_frame(seq, cmd::ECHO, vec![1u8; 100]).await.is_err() {
                            break;
                        }
                        if matches!(
                            c.try_next_event(Duration::ZERO).await,
                            Some(Event::Closed(_) | Event::Ended)
                        ) {
                            break;
                        }
                    }
                    kicked.fetch_add(1, Relaxed);
                    // A refused login: try again soon (not in a tight loop
                    // that would take this process's CPU from the players).
                    if began.elapsed() < Duration::from_millis(100) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }));
        }
        let they_read = env_or("BENCH_NON_READERS_READ", 0) == 1;
        for i in 0..slow_n {
            let (url, stop, kicked) = (url.clone(), stop.clone(), kicked.clone());
            let token = stack.token(200_000 + i);
            attackers.push(tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    let mut c = Client::connect(addr, &url, Some(4096)).await;
                    c.login(&token).await;
                    // A normal player's pace, never reading the replies.
                    let mut tick = tokio::time::interval(Duration::from_millis(100));
                    loop {
                        tick.tick().await;
                        let seq = c.seq();
                        let sent = tokio::time::timeout(
                            Duration::from_secs(2),
                            c.send_frame(seq, cmd::ECHO, vec![2u8; 1024]),
                        )
                        .await;
                        if !matches!(sent, Ok(Ok(()))) || stop.load(Relaxed) {
                            break;
                        }
                        if they_read {
                            while let Some(Event::Frame(_)) =
                                c.try_next_event(Duration::ZERO).await
                            {}
                        }
                    }
                    kicked.fetch_add(1, Relaxed);
                }
            }));
        }
        for _ in 0..drip_n {
            let stop = stop.clone();
            attackers.push(tokio::spawn(async move {
                let request = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n";
                while !stop.load(Relaxed) {
                    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
                        continue;
                    };
                    for b in request {
                        if stop.load(Relaxed) || tcp.write_all(&[*b]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }));
        }
        // Let the attack get going, then measure the players again.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (_good, attacked) = players(good, 10, secs).await;
        let rss_during = status_kib(connector_pid, "VmRSS:");
        stop.store(true, Relaxed);
        report("players next to the attackers", &attacked);
        let ratio = attacked.latency.value_at_quantile(0.99) as f64
            / alone.latency.value_at_quantile(0.99).max(1) as f64;
        println!("p99 with attackers / p99 alone: {ratio:.2}");
        for a in attackers {
            a.abort();
        }
        let stats = stack.connector_stats(0).await;
        println!(
            "connector: kicked rate_limited {}, slow_consumer {}; logins refused while cooling down {}; handshake failures {}; attacker sessions ended {}",
            stats["kicked_rate"],
            stats["kicked_slow"],
            stats["refused_cooling"],
            stats["handshake_failures"],
            kicked.load(Relaxed)
        );
        println!(
            "connector RSS: {} KiB before the attack, {} KiB during it, peak {} KiB",
            rss_before,
            rss_during,
            status_kib(connector_pid, "VmHWM:")
        );
        assert_eq!(alone.sent, alone.answered);
        assert_eq!(attacked.sent, attacked.answered, "every player request answered");
    });
}
