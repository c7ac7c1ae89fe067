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
//!
//! Its own test binary: the cluster's ports are fixed, and its scenarios
//! stop nodes, so they run one after the other in one test.
//!
//! **Unfinished (issue 20)**: not yet in `scripts/test.sh`, so it runs only
//! with `cargo test --features cluster-tests --test cluster`, until it has
//! been run many more times in a row (8 so far, 4 under busy loops). The hot standby
//! and the durable-mode scenarios are not built.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use warren_test_support::{
    rabbit_cluster::RabbitCluster,
    stack::{BusKind, Client, Stack},
    steady::Traffic,
};

const PLAYERS: u64 = 200;

/// Echoes until one is served (every try answered: the echo,
/// `unavailable` or `timeout`); how long that took.
async fn served_after(probe: &mut Client, what: &str) -> Duration {
    let started = Instant::now();
    probe.echo_until_served(Duration::from_secs(30), what).await;
    started.elapsed()
}

// Long: the cluster's scenarios, told in order on one cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_outlives_a_rabbitmq_node() {
    let cluster = tokio::task::block_in_place(RabbitCluster::start);
    let (first, all) = (cluster.url(0), cluster.urls_setting());
    let env = [
        ("WARREN_BUS__AMQP_URL", first.as_str()),
        ("WARREN_BUS__AMQP_URLS", all.as_str()),
        ("WARREN_BUS__QUORUM", "true"),
        ("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS", "2000"),
    ];
    let stack = Stack::start_connectors(BusKind::RabbitMq, 1, &env).await;

    // The node every process dialled first, and is connected to, stops.
    // (Each probe logs in after the players: an idle socket is kicked.)
    let traffic = Traffic::start(&stack, 1, PLAYERS).await;
    let mut probe = stack.player(10_000).await;
    let stopping = Instant::now();
    tokio::task::block_in_place(|| cluster.stop(0));
    let took = stopping.elapsed();
    let back = served_after(&mut probe, "node 1 stopped").await;
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
    drop(stack);
}
