//! The broker restarts, the players stay: RabbitMQ is stopped and started
//! five times under connected players. No websocket is dropped; a request
//! made while the broker is away gets error `unavailable` at once; service
//! is back within 10 s of the broker; and every request gets an answer — a
//! reply lost while the connections recover is answered `timeout` by the
//! connector (its request time-out is 2 s here).
//!
//! Its own test binary: cargo runs test binaries one at a time, so stopping
//! the shared local broker here disturbs no other test.

#![allow(clippy::unwrap_used)]

#[path = "e2e/helpers.rs"]
#[allow(unused_macros)]
mod helpers;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use helpers::{ErrorBody, Event, Stack, decode};
use warren_proto::cmd;

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn broker_up() -> bool {
    std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5672".parse().unwrap(),
        Duration::from_millis(200),
    )
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_players_stay_while_the_broker_restarts_five_times() {
    let stack =
        Stack::start_connectors(1, &[("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS", "2000")]).await;
    let mut players = Vec::new();
    for uid in 1..=200 {
        players.push(stack.player(uid).await);
    }
    let mut recoveries = Vec::new();
    let mut refused = 0;
    let mut timed_out = 0;
    for round in 1..=5 {
        rabbitmqctl(&["stop_app"]);
        assert!(!broker_up(), "round {round}: the broker is down");
        // Let the connector take in the broker's forced close: a publish
        // in the instant before is held for recovery instead of refused.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // While it is away: every request gets an answer at once, an error.
        for (i, p) in players.iter_mut().enumerate() {
            let seq = p.seq();
            p.send_frame(seq, cmd::ECHO, b"\x80".to_vec())
                .await
                .unwrap();
            match p.next_event_within(Duration::from_secs(10)).await {
                Event::Frame(f) if f.seq == seq && f.cmd == cmd::ERROR => {
                    assert_eq!(decode::<ErrorBody>(&f).code, "unavailable", "player {i}");
                    refused += 1;
                }
                Event::Frame(f) if f.seq == seq && f.cmd == cmd::ECHO => {}
                other => panic!("round {round}, player {i}: {other:?}"),
            }
        }
        let started = Instant::now();
        rabbitmqctl(&["start_app"]);
        // Back within 10 s: an echo through the game succeeds again. Every
        // try is answered: the echo, `unavailable`, or — for a reply lost
        // while the connections recover — `timeout` from the connector.
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "round {round}: no service 10 s after the broker"
            );
            let p = &mut players[0];
            let seq = p.seq();
            p.send_frame(seq, cmd::ECHO, b"\x80".to_vec())
                .await
                .unwrap();
            let answer = loop {
                match p.next_event_within(Duration::from_secs(5)).await {
                    Event::Frame(f) if f.seq == seq => break f,
                    // A late echo of an earlier try.
                    Event::Frame(f) if f.cmd == cmd::ECHO => {}
                    other => panic!("round {round}: try {seq} unanswered: {other:?}"),
                }
            };
            if answer.cmd == cmd::ECHO {
                break;
            }
            let code = decode::<ErrorBody>(&answer).code;
            match code.as_str() {
                "unavailable" => {}
                "timeout" => timed_out += 1,
                other => panic!("round {round}: {other}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        recoveries.push(started.elapsed());
        // Every player is still connected and served.
        for p in &mut players {
            p.echo(b"\x80").await;
        }
    }
    eprintln!(
        "broker restarts: service back after {recoveries:?}; {refused} requests refused while it was away; {timed_out} answered `timeout` while the connections recovered; 0 disconnects"
    );
}
