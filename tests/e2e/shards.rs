//! Two game processes (shards) on one networked bus (RabbitMQ or Redis): each player's requests are
//! handled in order by one owner, chat rooms spread over both keep working,
//! and a process configured for another shard count is refused at start.

use std::collections::BTreeMap;

use warren_proto::cmd;

use crate::{
    helpers::{BusKind, Room, Said, Say, Stack, decode},
    on_durable_buses, on_networked_buses,
};

const TWO_SHARDS: &[(&str, &str)] = &[("WARREN_BUS__SHARDS", "2")];
/// Each shard takes 4 players x 1,000 echoes at once: its echo mailbox
/// holds them all, so none is answered `overloaded` however slowly the
/// service thread starts draining on a loaded host (the bound itself
/// is runtime/tests/runtime.rs's `a_full_mailbox_answers_overloaded_…`).
const TWO_SHARDS_DEEP_MAILBOX: &[(&str, &str)] = &[
    ("WARREN_BUS__SHARDS", "2"),
    ("WARREN_GAME__MAILBOX", "4096"),
];

async fn each_players_1000_echoes_come_back_in_order_across_two_shards(kind: BusKind) {
    let stack = Stack::start_connectors(kind, 1, TWO_SHARDS_DEEP_MAILBOX).await;
    let mut tasks = Vec::new();
    // uids 1..=8: half on each shard.
    for uid in 1..=8u64 {
        let mut c = stack.player(uid).await;
        tasks.push(tokio::spawn(async move {
            for seq in 1..=1000u64 {
                c.send_frame(seq, cmd::ECHO, seq.to_be_bytes().to_vec())
                    .await
                    .unwrap();
            }
            for seq in 1..=1000u64 {
                let f = c.recv().await;
                assert_eq!((f.seq, f.cmd), (seq, cmd::ECHO), "uid {uid}: out of order");
                assert_eq!(&f.body[..], &seq.to_be_bytes());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn chat_rooms_spread_over_two_shards_deliver_every_line_once(kind: BusKind) {
    let stack = Stack::start_connectors(kind, 2, TWO_SHARDS).await;
    let rooms = ["north", "south", "east", "west", "up", "down"];
    // Four players: two per connector, two per shard.
    let mut players = Vec::new();
    for (i, uid) in [(0, 40u64), (1, 41), (0, 42), (1, 43)] {
        let mut p = stack.player_on(i, uid).await;
        for room in rooms {
            let (reply, _) = p.request(cmd::CHAT_JOIN, &Room::new(room)).await;
            assert_eq!(reply.cmd, cmd::CHAT_JOIN, "{reply:?}");
        }
        players.push((uid, p));
    }
    for (_, p) in &mut players {
        for room in rooms {
            let f = p
                .request_keeping_pushes(cmd::CHAT_SEND, &Say::new(room, "hello"))
                .await;
            assert_eq!(f.cmd, cmd::CHAT_SEND, "{f:?}");
        }
    }
    let expected = players.len() * rooms.len();
    for (uid, p) in &mut players {
        let mut heard: BTreeMap<(String, u64), u32> = BTreeMap::new();
        for _ in 0..expected {
            let f = p.next_push().await;
            assert_eq!(f.cmd, cmd::CHAT_MESSAGE, "uid {uid}: {f:?}");
            let said = decode::<Said>(&f);
            *heard
                .entry((said.room.into_owned(), said.from))
                .or_default() += 1;
        }
        assert_eq!(heard.len(), expected, "uid {uid} heard every line");
        assert!(
            heard.values().all(|&n| n == 1),
            "uid {uid} heard a line twice: {heard:?}"
        );
        let (barrier, extra) = p.request(cmd::ECHO, &Room::new("barrier")).await;
        assert_eq!(barrier.cmd, cmd::ECHO);
        assert!(
            extra.is_empty() && p.stashed() == 0,
            "uid {uid} got extra lines: {extra:?}"
        );
    }
}

async fn a_process_with_another_shard_count_is_refused_at_start(kind: BusKind) {
    let stack = Stack::start_connectors(kind, 1, TWO_SHARDS).await;
    let (ok, output) =
        stack.run_game_with(&[("WARREN_BUS__SHARDS", "3"), ("WARREN_GAME__SHARD", "2")]);
    assert!(
        !ok,
        "a game with 3 shards must not start on a 2-shard namespace"
    );
    assert!(output.contains("shards"), "the refusal says why: {output}");
    // The running stack is unharmed.
    stack.player(1).await.echo(b"\x80").await;
}

async fn a_second_game_for_a_served_shard_is_refused_at_start(kind: BusKind) {
    a_second_game_is_refused(kind, &[]).await;
}

/// In the durable mode too: RabbitMQ's quorum request queues ignore an
/// exclusive consumer, so the shard's lock queue is what refuses it.
async fn a_second_game_for_a_served_durable_shard_is_refused_at_start(kind: BusKind) {
    a_second_game_is_refused(kind, &[("WARREN_BUS__DURABLE", "true")]).await;
}

async fn a_second_game_is_refused(kind: BusKind, extra: &[(&str, &str)]) {
    let settings = [TWO_SHARDS, extra].concat();
    let stack = Stack::start_connectors(kind, 1, &settings).await;
    let (ok, output) =
        stack.run_game_with(&[("WARREN_BUS__SHARDS", "2"), ("WARREN_GAME__SHARD", "1")]);
    assert!(!ok, "a second game for shard 1 must not start");
    assert!(
        output.contains("shard 1") && output.contains("already has a game"),
        "the refusal names the shard and says what to do: {output}"
    );
    // The running stack is unharmed: both shards still answer, in order.
    for uid in [1, 2] {
        stack.player(uid).await.echo(b"\x80").await;
    }
}

on_networked_buses!(
    each_players_1000_echoes_come_back_in_order_across_two_shards,
    chat_rooms_spread_over_two_shards_deliver_every_line_once,
    a_process_with_another_shard_count_is_refused_at_start,
    a_second_game_for_a_served_shard_is_refused_at_start,
);

on_durable_buses!(a_second_game_for_a_served_durable_shard_is_refused_at_start);
