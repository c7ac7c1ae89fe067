//! What only ZeroMQ promises or needs (docs/deploy.md, "ZeroMQ"): start
//! order does not matter (connectors before the game, the push server
//! last); a push server restarted learns the connectors again; a game killed and started again under 200 players keeps every
//! socket open and every request answered; a game that stops reading fills
//! the high-water marks and its players hear `overloaded` at once.

use std::{process::Command, time::Duration};

use warren_proto::cmd;

use crate::helpers::{BusKind, ErrorBody, Event, Room, Said, Say, Stack, decode};
use warren_test_support::stack::{Client, Order, eventually};

/// A reply lost while a link is still coming up (ZeroMQ delivers at most
/// once) is answered `timeout` after 2 s, and the client tries again.
const ANSWER_SOON: &[(&str, &str)] = &[("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS", "2000")];

/// Two players on two connectors are served: echoes come back, and a chat
/// line one says reaches the other (a push through the games' PUB or the
/// push server).
async fn two_connectors_serve(stack: &Stack, what: &str) {
    let mut a = stack.player_on(0, 1).await;
    let mut b = stack.player_on(1, 2).await;
    a.echo_until_served(Duration::from_secs(10), what).await;
    b.echo_until_served(Duration::from_secs(10), what).await;
    for p in [&mut a, &mut b] {
        let (reply, _) = p.request(cmd::CHAT_JOIN, &Room::new("order")).await;
        assert_eq!(reply.cmd, cmd::CHAT_JOIN, "{what}: {reply:?}");
    }
    let mut n = 0;
    eventually(
        &format!("{what}: a chat line across connectors"),
        async || {
            n += 1;
            let text = format!("line {n}");
            let reply = a
                .request_keeping_pushes(cmd::CHAT_SEND, &Say::new("order", text.as_str()))
                .await;
            assert_eq!(reply.cmd, cmd::CHAT_SEND, "{what}: {reply:?}");
            heard(&mut b, &text).await.then_some(())
        },
    )
    .await;
}

/// Whether `p` hears `text` in the room within a second.
async fn heard(p: &mut Client, text: &str) -> bool {
    loop {
        match p.next_event_within(Duration::from_secs(1)).await {
            Event::Frame(f) if f.cmd == cmd::CHAT_MESSAGE => {
                if decode::<Said>(&f).text == text {
                    return true;
                }
            }
            Event::Frame(_) => {}
            _ => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_started_before_the_game_serve_once_it_is_up() {
    for kind in [BusKind::Zmq, BusKind::ZmqPushServer] {
        let stack = Stack::start_in_order(kind, 2, Order::ConnectorsFirst, ANSWER_SOON).await;
        two_connectors_serve(&stack, &format!("{kind:?}, connectors first")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_server_started_last_serves_the_connectors_already_up() {
    let stack = Stack::start_in_order(
        BusKind::ZmqPushServer,
        2,
        Order::PushServerLast,
        ANSWER_SOON,
    )
    .await;
    two_connectors_serve(&stack, "push server last").await;
    // Its console lists both connectors and the pushes it forwarded.
    let (ok, console) = stack.warren_admin(
        "debug",
        &[
            "--push-server",
            &format!("http://{}", stack.push_server.unwrap()),
        ],
    );
    assert!(ok, "{console}");
    for id in ["c0", "c1", "h0", "h1"] {
        assert!(
            console.lines().any(|l| l.starts_with(&format!("{id} "))),
            "{id} not registered:\n{console}"
        );
    }
    assert!(console.contains("forwarded "), "{console}");
}

/// A push server killed and started again learns every connector again
/// (they renew their registration every second) and forwards to them; the
/// requests whose replies it lost meanwhile were answered `timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_push_server_learns_every_connector_again() {
    let mut stack =
        Stack::start_in_order(BusKind::ZmqPushServer, 2, Order::GameFirst, ANSWER_SOON).await;
    two_connectors_serve(&stack, "before the restart").await;
    stack.restart_push_server();
    two_connectors_serve(&stack, "after the restart").await;
}

/// Kills the game and starts it again `rounds` times under 200 players:
/// no socket drops, a request while the game is gone is answered at once
/// (`unavailable`) or, if the game took it with it, `timeout`; service is
/// back within 10 s with no operator action.
async fn the_players_stay_while_the_game_restarts(kind: BusKind, rounds: usize) {
    let mut stack =
        Stack::start_connectors(kind, 1, &[("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS", "2000")]).await;
    let mut players = Vec::new();
    for uid in 1..=200 {
        players.push(stack.player(uid).await);
    }
    let (mut refused, mut timed_out) = (0, 0);
    for round in 1..=rounds {
        stack.kill_game();
        for (i, p) in players.iter_mut().enumerate() {
            let what = format!("{kind:?} round {round}, player {i}");
            let answer = p.echo_or_error(Duration::from_secs(10), &what).await;
            match answer.as_ref().map_err(String::as_str) {
                Err("unavailable") => refused += 1,
                Err("timeout") => timed_out += 1,
                other => panic!("{what}: {other:?}"),
            }
        }
        stack.start_game();
        timed_out += players[0]
            .echo_until_served(Duration::from_secs(10), &format!("round {round}"))
            .await;
        for p in &mut players {
            p.echo(b"\x80").await;
        }
    }
    eprintln!(
        "{kind:?}: {rounds} game restarts under 200 players: {refused} requests refused while it was gone, {timed_out} answered `timeout`, 0 disconnects"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_players_stay_while_the_game_restarts_five_times() {
    the_players_stay_while_the_game_restarts(BusKind::Zmq, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_players_stay_while_the_game_restarts_behind_a_push_server() {
    the_players_stay_while_the_game_restarts(BusKind::ZmqPushServer, 3).await;
}

/// Sends `signal` to the game process.
fn signal_game(stack: &Stack, signal: &str) {
    let (_, pid) = stack
        .pids()
        .into_iter()
        .find(|(name, _)| *name == "game")
        .expect("a game process");
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// A game that stops reading (SIGSTOP) fills the high-water marks and the
/// buffers between the sockets; from then on requests are refused at once
/// and the players hear `overloaded`. Every request is answered; once the
/// game reads again, service resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_that_stops_reading_gets_its_players_overloaded() {
    let stack = Stack::start_with(
        BusKind::Zmq,
        &[
            ("WARREN_BUS__ZMQ__SEND_HWM", "20"),
            ("WARREN_BUS__ZMQ__RECEIVE_HWM", "20"),
            ("WARREN_CONNECTOR__REQUEST_TIMEOUT_MS", "3000"),
        ],
    )
    .await;
    let mut players = Vec::new();
    for uid in 1..=40 {
        players.push(stack.player(uid).await);
    }
    signal_game(&stack, "-STOP");
    // 32 KiB bodies (a MessagePack bin), 25 per player: 32 MB in all,
    // more than the marks and the TCP buffers hold.
    let mut body = vec![0xc5, 0x80, 0x00];
    body.resize(3 + 0x8000, 7);
    let mut sent = Vec::new();
    for p in &mut players {
        let mut seqs = Vec::new();
        for _ in 0..25 {
            let seq = p.seq();
            p.send_frame(seq, cmd::ECHO, body.clone()).await.unwrap();
            seqs.push(seq);
        }
        sent.push(seqs);
    }
    let (mut overloaded, mut timed_out) = (0, 0);
    for (p, seqs) in players.iter_mut().zip(&sent) {
        let mut open: Vec<u64> = seqs.clone();
        while !open.is_empty() {
            let f = match p.next_event_within(Duration::from_secs(10)).await {
                Event::Frame(f) => f,
                other => panic!("unanswered {open:?}: {other:?}"),
            };
            assert_eq!(f.cmd, cmd::ERROR, "the game is stopped: {f:?}");
            match decode::<ErrorBody>(&f).code.as_str() {
                "overloaded" => overloaded += 1,
                "timeout" => timed_out += 1,
                other => panic!("{other}"),
            }
            open.retain(|s| *s != f.seq);
        }
    }
    signal_game(&stack, "-CONT");
    eprintln!("a stopped game: {overloaded} requests refused overloaded, {timed_out} timed out");
    assert!(
        overloaded > 0,
        "no request was refused: {timed_out} timed out"
    );
    // Once it reads again (its backlog first: meanwhile requests may
    // still be refused), an echo is served.
    let p = &mut players[0];
    eventually("an echo served after SIGCONT", async || {
        let seq = p.seq();
        p.send_frame(seq, cmd::ECHO, b"\x80".to_vec())
            .await
            .unwrap();
        loop {
            match p.next_event_within(Duration::from_secs(5)).await {
                Event::Frame(f) if f.seq == seq => return (f.cmd == cmd::ECHO).then_some(()),
                // A late echo of a request answered `timeout` before.
                Event::Frame(f) if f.cmd == cmd::ECHO => {}
                other => panic!("try {seq} unanswered: {other:?}"),
            }
        }
    })
    .await;
}
