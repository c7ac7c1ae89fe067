//! A RabbitMQ cluster that loses a node: a private three-node cluster
//! (`warren_test_support::rabbit_cluster`, started once for this binary
//! and stopped at its end), a connector and a game on it with
//! `bus.amqp_urls` naming every node and quorum queues, and 200 players
//! sending an echo every 50 ms each throughout.
//!
//! - The node every process is connected to stops: no socket is dropped,
//!   every request is answered (the echo, or `unavailable` / `timeout`
//!   while the connections move to another node), and service is back
//!   within 10 s.
//! - A node nobody is connected to stops: no effect at all (every answer
//!   is the echo).
//! - The durable mode, with a hot standby beside the game (request time-out
//!   10 s): the connected node stops, then the serving game is killed with
//!   SIGKILL. Nothing is lost either time: every request is answered with
//!   the echo, or refused at once before the bus took it (`unavailable`,
//!   or `overloaded` when the broker refused the publish while a quorum
//!   queue elected its new leader); none `timeout`.
//!
//! Its own test binary: the cluster's ports are fixed, and its scenarios
//! stop nodes, so they run one after the other in one test.
//!
//! In the test suite: it starts its cluster once (about 20 s) and runs
//! about 80 s.

#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use warren_test_support::{
    rabbit_cluster::RabbitCluster,
    stack::{AddedGame, BusKind, Client, Stack},
    steady::Traffic,
};

const PLAYERS: u64 = 200;
/// How often each player sends in the durable mode: every request is a
/// persistent message replicated to a quorum of nodes, which three nodes on
/// one small machine take at a few hundred a second, not the 4,000 the
/// default mode's players send.
const DURABLE_EVERY: Duration = Duration::from_millis(500);

/// Echoes until one is served (every try answered: the echo,
/// `unavailable`, `timeout`, or one of `also`, within `per_try`); how long
/// that took.
async fn served_after(
    probe: &mut Client,
    per_try: Duration,
    what: &str,
    also: &[&str],
) -> Duration {
    let started = Instant::now();
    probe
        .echo_until_served_or(Duration::from_secs(30), per_try, what, also)
        .await;
    started.elapsed()
}

/// The env of a stack on the cluster: every node named, quorum queues.
fn on_cluster(cluster: &RabbitCluster) -> Vec<(String, String)> {
    [
        ("WARREN_BUS__AMQP_URL", cluster.url(0)),
        ("WARREN_BUS__AMQP_URLS", cluster.urls_setting()),
        ("WARREN_BUS__QUORUM", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn stack_on(cluster: &RabbitCluster, extra: &[(&str, &str)]) -> Stack {
    let env = on_cluster(cluster);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend(extra);
    Stack::start_connectors(BusKind::RabbitMq, 1, &all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_outlives_a_rabbitmq_node_and_a_game() {
    let cluster = tokio::task::block_in_place(RabbitCluster::start);
    default_mode(&cluster).await;
    durable_mode(&cluster).await;
}

/// The default mode: the connected node stops, then an idle one.
async fn default_mode(cluster: &RabbitCluster) {
    let stack = stack_on(cluster, &[("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS", "2000")]).await;

    // The node every process dialled first, and is connected to, stops.
    // (Each probe logs in after the players: an idle socket is kicked.)
    let traffic = Traffic::start(&stack, 1, PLAYERS).await;
    let mut probe = stack.player(10_000).await;
    let stopping = Instant::now();
    tokio::task::block_in_place(|| cluster.stop(0));
    let took = stopping.elapsed();
    let back = served_after(&mut probe, Duration::from_secs(5), "node 1 stopped", &[]).await;
    let answers = traffic.finish("node 1 stopped").await;
    assert!(
        back < Duration::from_secs(10),
        "service back {back:?} after node 1 stopped"
    );
    eprintln!(
        "cluster: the connected node stopped ({took:?} to stop it): service back {back:?} after \
         it was gone; answers {answers:?}; 0 sockets dropped, 0 requests unanswered"
    );
    tokio::task::block_in_place(|| cluster.restart(0));

    // A node nobody is connected to stops: nothing changes for anyone.
    let traffic = Traffic::start(&stack, 1_000, PLAYERS).await;
    let mut probe = stack.player(10_001).await;
    tokio::task::block_in_place(|| cluster.stop(2));
    probe.echo(b"\x80").await;
    let answers = traffic.finish("node 3 stopped").await;
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        ["echo"],
        "node 3 stopped: {answers:?}"
    );
    eprintln!("cluster: an idle node stopped: answers {answers:?}");
    tokio::task::block_in_place(|| cluster.restart(2));
}

/// What the durable mode may answer instead of the echo: refusals made at
/// once, before the bus took the request (`unavailable` while a
/// connection moves; `overloaded` for a publish the broker refused while a
/// quorum queue elected a new leader), never `timeout`.
const DURABLE_REFUSALS: &[&str] = &["overloaded"];
/// The durable stacks' request time-out (10 s) and some.
const DURABLE_TRY: Duration = Duration::from_secs(15);

/// Nothing lost: every answer the echo or a refusal made at once, none
/// `timeout`.
fn nothing_lost(answers: &BTreeMap<String, usize>, what: &str) {
    for kind in answers.keys() {
        assert!(
            kind == "echo" || kind == "unavailable" || DURABLE_REFUSALS.contains(&kind.as_str()),
            "{what}: {answers:?}"
        );
    }
}

/// Which game serves shard 0: the standby (true) or the stack's own.
fn standby_serves(stack: &Stack, standby: &AddedGame) -> bool {
    let (ok, table) = stack.warren_admin_at(standby.admin, "debug", &[]);
    assert!(ok, "{table}");
    table.lines().any(|l| l.starts_with("serving shard 0"))
}

// Long: the durable mode's two faults, told in order on one stack.
/// The durable mode with a hot standby: the connected node stops, then
/// the serving game is killed.
async fn durable_mode(cluster: &RabbitCluster) {
    let mut stack = stack_on(
        cluster,
        &[
            ("WARREN_BUS__DURABLE", "true"),
            ("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS", "10000"),
        ],
    )
    .await;
    let standby = stack.start_game_with(&[("WARREN_GAME__STANDBY", "true")]);

    let traffic = Traffic::start_every(&stack, 1, PLAYERS, DURABLE_EVERY).await;
    let mut probe = stack.player(10_000).await;
    tokio::task::block_in_place(|| cluster.stop(0));
    let back = served_after(
        &mut probe,
        DURABLE_TRY,
        "durable: node 1 stopped",
        DURABLE_REFUSALS,
    )
    .await;
    let answers = traffic.finish("durable: node 1 stopped").await;
    nothing_lost(&answers, "durable: node 1 stopped");
    assert!(back < Duration::from_secs(10), "service back {back:?}");
    eprintln!(
        "cluster, durable: the connected node stopped: service back {back:?} after it was gone; \
         answers {answers:?}; 0 sockets dropped, 0 lost"
    );
    tokio::task::block_in_place(|| cluster.restart(0));

    // Whichever game serves now (the standby may have won the shard while
    // both moved to another node) is killed; the other takes over.
    let traffic = Traffic::start_every(&stack, 1_000, PLAYERS, DURABLE_EVERY).await;
    let mut probe = stack.player(10_001).await;
    probe.echo(b"\x80").await;
    let standby_was_serving = standby_serves(&stack, &standby);
    if standby_was_serving {
        stack.kill_game();
    } else {
        stack.kill_first_game();
    }
    let takeover = served_after(
        &mut probe,
        DURABLE_TRY,
        "durable: the serving game killed",
        DURABLE_REFUSALS,
    )
    .await;
    let answers = traffic.finish("durable: the serving game killed").await;
    nothing_lost(&answers, "durable: the serving game killed");
    assert!(takeover < Duration::from_secs(10), "takeover {takeover:?}");
    if !standby_was_serving {
        assert!(standby_serves(&stack, &standby), "the standby took over");
    }
    eprintln!(
        "cluster, durable: the serving game killed (the standby serving before: \
         {standby_was_serving}): the other took over in {takeover:?}; answers {answers:?}; \
         0 sockets dropped, 0 lost"
    );
}
