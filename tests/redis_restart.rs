//! Redis restarts, the players stay: a private `redis-server` carrying the
//! bus is killed and started again five times under 200 connected
//! players. No websocket is dropped; a request made while Redis is away is
//! answered at once (`unavailable`); service is back within 10 s of Redis;
//! and every request gets an answer — one lost with the server (it keeps
//! nothing on disk) is answered `timeout` by the connector (its request
//! time-out is 2 s here). HTTP calls the same: answered at once while Redis
//! is away (503 `unavailable`, or 504 `timeout` for one lost with it), and
//! served again once it is back.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use warren_test_support::{
    PrivateRedis, eventually,
    http::request_http,
    stack::{BusKind, Stack},
};

/// One HTTP echo call as player 1: its status and the error code, if any.
async fn http_echo(stack: &Stack) -> (u16, String) {
    let token = stack.token(1);
    let (status, text) =
        request_http(stack.http, "/v1/call/1001", Some(&token), Some("{}".into())).await;
    let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
    let code = reply["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, code)
}

/// An HTTP call while Redis is away is answered at once, never hanging:
/// 503 `unavailable`, or 504 `timeout` if it was lost with Redis.
async fn http_answered_while_away(stack: &Stack, round: usize) {
    match http_echo(stack).await {
        (503, code) => assert_eq!(code, "unavailable", "round {round}"),
        (504, code) => assert_eq!(code, "timeout", "round {round}"),
        other => panic!("round {round}: an HTTP call while Redis is away: {other:?}"),
    }
}

/// HTTP calls are served again within 10 s of Redis coming back.
async fn http_served_again(stack: &Stack, round: usize) {
    eventually(
        "HTTP calls served again",
        Duration::from_secs(10),
        async || match http_echo(stack).await {
            (200, _) => Some(()),
            (503, _) | (504, _) => None,
            other => panic!("round {round}: an HTTP call after Redis is back: {other:?}"),
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_players_stay_while_redis_restarts_five_times() {
    let mut redis = PrivateRedis::start(&[]).await;
    let url = redis.url();
    let stack = Stack::start_connectors(
        BusKind::Redis,
        1,
        &[
            ("WARREN_BUS__REDIS__URL", &url),
            ("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS", "2000"),
            ("WARREN_HTTP__REQUEST_TIMEOUT_MS", "2000"),
            ("WARREN_HTTP__UID_RATE_PER_SEC", "1000"),
        ],
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
        redis.kill();
        assert!(!redis.up(), "round {round}: Redis is down");
        // While it is away: every request gets an answer at once, an error
        // (or the echo, if it was written just before the kill).
        for (i, p) in players.iter_mut().enumerate() {
            let what = format!("round {round}, player {i}");
            let Err(code) = p.echo_or_error(Duration::from_secs(10), &what).await else {
                continue;
            };
            match code.as_str() {
                "unavailable" => refused += 1,
                // Written just before the kill, lost with Redis.
                "timeout" => timed_out += 1,
                other => panic!("{what}: {other}"),
            }
        }
        http_answered_while_away(&stack, round).await;
        let started = Instant::now();
        redis.start_again().await;
        // Back within 10 s: an echo through the game succeeds again; every
        // try is answered (the echo, `unavailable`, or `timeout` for a
        // request lost while the bus was away).
        timed_out += players[0]
            .echo_until_served(Duration::from_secs(10), &format!("round {round}"))
            .await;
        recoveries.push(started.elapsed());
        http_served_again(&stack, round).await;
        // Every player is still connected and served.
        for p in &mut players {
            p.echo(b"\x80").await;
        }
    }
    eprintln!(
        "Redis restarts: service back after {recoveries:?}; {refused} requests refused while it was away; {timed_out} answered `timeout`; 0 disconnects"
    );
    // The stack's keys go with the private server.
    drop(stack);
}
