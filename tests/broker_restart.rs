//! The broker restarts, the players stay: RabbitMQ is stopped and started
//! five times under connected players. No websocket is dropped; a request
//! made while the broker is away gets error `unavailable` at once; service
//! is back within 10 s of the broker; and every request gets an answer — a
//! reply lost while the connections recover is answered `timeout` by the
//! connector (its request time-out is 2 s here).
//!
//! A second test restarts it ten times under steady load (50 players, an
//! echo every 50 ms each) with busy loops on every core: the connector never
//! wedges (every request is answered, every socket stays open) and stops
//! within its bound on SIGTERM afterwards.
//!
//! Its own test binary: cargo runs test binaries one at a time, so stopping
//! the shared local broker here disturbs no other test; the tests in it take
//! turns (`BROKER`).

#![allow(clippy::unwrap_used)]

use warren_test_support::Load;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use warren_test_support::{
    stack::{BusKind, Stack},
    steady::Traffic,
};

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

/// One test at a time may stop the shared broker.
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_players_stay_while_the_broker_restarts_five_times() {
    let _broker = BROKER.lock().await;
    let stack = Stack::start_connectors(
        BusKind::RabbitMq,
        1,
        &[("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS", "2000")],
    )
    .await;
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
            let what = format!("round {round}, player {i}");
            if let Err(code) = p.echo_or_error(Duration::from_secs(10), &what).await {
                assert_eq!(code, "unavailable", "player {i}");
                refused += 1;
            }
        }
        let started = Instant::now();
        rabbitmqctl(&["start_app"]);
        // Back within 10 s: an echo through the game succeeds again; every
        // try is answered (the echo, `unavailable`, or `timeout` for a
        // request lost while the bus was away).
        timed_out += players[0]
            .echo_until_served(Duration::from_secs(10), &format!("round {round}"))
            .await;
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

// Long: one scenario, told in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_never_wedges_while_the_broker_restarts_ten_times_under_load() {
    let _broker = BROKER.lock().await;
    let mut stack = Stack::start_connectors(
        BusKind::RabbitMq,
        1,
        &[("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS", "2000")],
    )
    .await;
    let traffic = Traffic::start(&stack, 1, 50).await;
    let mut probe = stack.player(1000).await;
    let load = Load::start();
    let mut recoveries = Vec::new();
    for round in 1..=10 {
        rabbitmqctl(&["stop_app"]);
        assert!(!broker_up(), "round {round}: the broker is down");
        // The outage the players live through (not a synchronisation).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = Instant::now();
        rabbitmqctl(&["start_app"]);
        // Service comes back: an echo through the game succeeds again.
        probe
            .echo_until_served(Duration::from_secs(30), &format!("round {round}"))
            .await;
        recoveries.push(started.elapsed());
    }
    let total = traffic.finish("10 broker restarts").await;
    drop(load);
    // Every player is still connected and served, and the console says
    // the bus is up (and whether a connection had to be rebuilt).
    probe.echo(b"\x80").await;
    let url = format!("http://{}", stack.connector_admins[0]);
    let (ok, lines) = stack.warren_admin("debug", &["--connector", &url]);
    assert!(ok, "{lines}");
    assert!(
        lines
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["bus_up", "true"]),
        "{lines}"
    );
    let rebuilds = lines
        .lines()
        .find(|l| l.starts_with("bus_rebuilds"))
        .map(str::to_owned)
        .unwrap_or_default();
    let started = Instant::now();
    let status = stack.terminate_connector();
    assert!(status.success(), "connector exit: {status:?}");
    eprintln!(
        "10 broker restarts under load: service back after {recoveries:?}; answers {total:?}; \
         0 sockets lost; {rebuilds}; the connector stopped {:?} after SIGTERM",
        started.elapsed()
    );
}
