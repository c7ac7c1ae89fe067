//! A service that panics again and again is restarted; a storm of restarts
//! stops the game process with exit code 70, for its orchestrator to see.

use std::{collections::BTreeMap, time::Duration};

use warren_proto::cmd;

use crate::{
    helpers::{BusKind, ErrorBody, Stack, decode},
    on_every_bus,
};

on_every_bus!(a_restart_storm_stops_the_game_with_exit_code_70);

async fn a_restart_storm_stops_the_game_with_exit_code_70(kind: BusKind) {
    let mut stack = Stack::start_with(
        kind,
        &[
            ("WARREN_GAME__RESTART_INTENSITY", "2"),
            ("WARREN_GAME__RESTART_STORM", "2"),
        ],
    )
    .await;
    let mut c = stack.player(1).await;
    // 2 panics: restart 1; 2 more: restart 2; 2 more: a third restart within
    // the storm period: the process stops.
    for seq in 1..=6 {
        if c.send_frame(seq, 9990, b"\x80".to_vec()).await.is_err() {
            break;
        }
    }
    assert_eq!(
        stack.wait_game_exit(),
        Some(warren_game::RESTART_STORM_EXIT)
    );
}

/// The connector does not wait for the broker's confirm of each request
/// (it reads on), yet a request the broker refuses still gets an answer:
/// with the game gone and its request queue full, every request is
/// answered exactly once, `overloaded` (refused by the broker) or `timeout`
/// (queued, never handled), and none goes unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_broker_refuses_are_answered_overloaded_and_none_is_lost() {
    let mut stack = Stack::start_with(
        BusKind::RabbitMq,
        &[
            ("WARREN_BUS__MAX_QUEUE_LENGTH", "5"),
            ("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS", "2000"),
        ],
    )
    .await;
    let mut c = stack.player(1).await;
    stack.kill_game();
    const SENT: u64 = 30;
    for _ in 0..SENT {
        c.send(cmd::ECHO, "hello").await;
        // Longer than the batching window: each request is an AMQP message
        // of its own, so the queue fills message by message.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut answers = BTreeMap::new();
    while (answers.len() as u64) < SENT {
        let f = c.recv().await;
        assert_eq!(f.cmd, cmd::ERROR, "{f:?}");
        let e: ErrorBody = decode(&f);
        assert!(
            answers.insert(f.seq, e.code.clone()).is_none(),
            "seq {} answered twice",
            f.seq
        );
    }
    let overloaded = answers.values().filter(|c| *c == "overloaded").count();
    let timeout = answers.values().filter(|c| *c == "timeout").count();
    assert_eq!(overloaded + timeout, SENT as usize, "{answers:?}");
    assert!(
        overloaded >= 20,
        "the broker refused only {overloaded}: {answers:?}"
    );
    // Nothing more comes: every request was answered once.
    let more = tokio::time::timeout(Duration::from_millis(2500), c.next_event()).await;
    assert!(more.is_err(), "after every answer: {more:?}");
}
