//! The spine's scenarios, each run on the in-process bus and on RabbitMQ.

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;
use warren_proto::{Claims, cmd};

use crate::{
    helpers::{BusKind, ErrorBody, Event, Room, Said, Say, Stack, body, decode},
    on_every_bus,
};

on_every_bus!(
    login_then_echo_and_heartbeat,
    three_players_in_a_room_get_each_message_exactly_once,
    a_second_login_kicks_the_first,
    frames_before_login_are_dropped_unanswered,
    bad_tokens_are_refused_and_closed,
    oversize_and_malformed_frames_close_the_socket,
    unknown_commands_get_unknown_cmd,
    a_panicking_handler_leaves_everything_else_serving,
    a_client_that_stops_reading_is_kicked_while_others_flow,
    shutdown_kicks_every_player,
    silent_players_are_kicked_and_heartbeats_keep_them,
    sockets_that_never_log_in_are_closed,
);

#[derive(Deserialize)]
struct Members {
    members: Vec<u64>,
}

#[derive(Deserialize)]
struct LoginReply {
    uid: u64,
}

#[derive(Deserialize)]
struct HeartbeatReply {
    server_time_ms: u64,
}

fn error_code(frame: &warren_proto::Frame) -> String {
    assert_eq!(
        frame.cmd,
        cmd::ERROR,
        "expected an error frame, got {frame:?}"
    );
    decode::<ErrorBody>(frame).code
}

async fn login_then_echo_and_heartbeat(kind: BusKind) {
    let stack = Stack::start(kind).await;
    let mut c = stack.client().await;
    let reply = c.login(&stack.token(4242)).await;
    assert_eq!(reply.cmd, cmd::LOGIN);
    assert_eq!(decode::<LoginReply>(&reply).uid, 4242);

    let mut payload = BTreeMap::new();
    payload.insert("hello", "world");
    c.echo(&body(&payload)).await;
    // The connector never looks inside a body: any bytes come back as sent.
    c.echo(&[0xff, 0x00, 0xc1, 0x7f]).await;
    c.echo(&[]).await;

    let before = warren::keys::unix_now() * 1000;
    let (hb, _) = c
        .request(cmd::HEARTBEAT, &BTreeMap::<String, u8>::new())
        .await;
    assert_eq!(hb.cmd, cmd::HEARTBEAT);
    let t = decode::<HeartbeatReply>(&hb).server_time_ms;
    assert!(
        t + 1000 >= before && t <= before + 60_000,
        "server time {t} vs {before}"
    );
    c.close().await;
}

// Long: one scenario, told in order.
async fn three_players_in_a_room_get_each_message_exactly_once(kind: BusKind) {
    let stack = Stack::start(kind).await;
    let mut players = Vec::new();
    for uid in [11, 12, 13] {
        let mut p = stack.player(uid).await;
        let (reply, others) = p.request(cmd::CHAT_JOIN, &Room::new("lobby")).await;
        assert!(others.is_empty());
        assert_eq!(reply.cmd, cmd::CHAT_JOIN);
        let members = decode::<Members>(&reply).members;
        assert!(members.contains(&uid));
        players.push(p);
    }
    let (reply, _) = players[2]
        .request(cmd::CHAT_JOIN, &Room::new("lobby"))
        .await;
    assert_eq!(decode::<Members>(&reply).members, vec![11, 12, 13]);

    let lines = [(0usize, "first"), (1, "second"), (2, "third")];
    for (who, text) in lines {
        let seq = players[who]
            .send(cmd::CHAT_SEND, &Say::new("lobby", text))
            .await;
        // The sender's reply; pushes may come before it.
        loop {
            let f = players[who].recv().await;
            if f.seq == seq {
                assert_eq!(f.cmd, cmd::CHAT_SEND, "{f:?}");
                break;
            }
            assert_eq!(f.cmd, cmd::CHAT_MESSAGE);
            players[who].stash(f);
        }
    }
    for (i, p) in players.iter_mut().enumerate() {
        let mut heard = Vec::new();
        while heard.len() < 3 {
            let f = p.next_push().await;
            assert_eq!(f.cmd, cmd::CHAT_MESSAGE, "player {i}: {f:?}");
            assert_eq!(f.seq, 0, "pushes carry seq 0");
            heard.push(decode::<Said>(&f));
        }
        let expected: Vec<Said> = lines
            .iter()
            .map(|(who, text)| Said {
                room: "lobby".into(),
                from: 11 + *who as u64,
                text: (*text).into(),
            })
            .collect();
        assert_eq!(
            heard, expected,
            "player {i} hears every line once, in order"
        );
        // Nothing else is pending: the next frame is the reply to a barrier.
        let (barrier, extra) = p.request(cmd::ECHO, &Room::new("barrier")).await;
        assert_eq!(barrier.cmd, cmd::ECHO);
        assert!(
            extra.is_empty() && p.stashed() == 0,
            "player {i} got duplicates: {extra:?}"
        );
    }

    // Leaving stops the pushes; talking in a room one left is refused.
    let (left, _) = players[2]
        .request(cmd::CHAT_LEAVE, &Room::new("lobby"))
        .await;
    assert_eq!(left.cmd, cmd::CHAT_LEAVE);
    let (refused, _) = players[2]
        .request(cmd::CHAT_SEND, &Say::new("lobby", "ghost"))
        .await;
    assert_eq!(error_code(&refused), "not_in_room");
    let (reply, _) = players[0]
        .request(cmd::CHAT_JOIN, &Room::new("lobby"))
        .await;
    assert_eq!(decode::<Members>(&reply).members, vec![11, 12]);

    // Bad input gets a clear error, not silence.
    let (bad, _) = players[0].request(cmd::CHAT_JOIN, &Room::new("")).await;
    assert_eq!(error_code(&bad), "bad_request");
    let seq = players[0].seq();
    players[0]
        .send_frame(seq, cmd::CHAT_JOIN, b"not msgpack".to_vec())
        .await
        .unwrap();
    let f = players[0].recv().await;
    assert_eq!((f.seq, error_code(&f).as_str()), (seq, "bad_request"));
}

async fn a_second_login_kicks_the_first(kind: BusKind) {
    let stack = Stack::start(kind).await;
    let mut first = stack.player(77).await;
    first.echo(b"\x80").await;
    let mut second = stack.player(77).await;
    first.expect_kick("duplicate_login").await;
    second.echo(b"\x80").await;
    // And again the other way round: the newest login always wins.
    let mut third = stack.player(77).await;
    second.expect_kick("duplicate_login").await;
    third.echo(b"\x80").await;
}

async fn frames_before_login_are_dropped_unanswered(kind: BusKind) {
    let stack = Stack::start(kind).await;
    let mut c = stack.client().await;
    c.send_frame(100, cmd::ECHO, b"\x80".to_vec())
        .await
        .unwrap();
    c.send_frame(101, cmd::HEARTBEAT, b"\x80".to_vec())
        .await
        .unwrap();
    c.send_frame(102, 5000, b"\x80".to_vec()).await.unwrap();
    let reply = c.login(&stack.token(5)).await;
    assert_eq!(reply.cmd, cmd::LOGIN);
    // Had anything before the login been forwarded, its reply would come
    // before this one: replies to one socket keep their order.
    c.echo(b"\x81\xa1k\xa1v").await;
}

async fn bad_tokens_are_refused_and_closed(kind: BusKind) {
    let stack = Stack::start(kind).await;
    let now = warren::keys::unix_now();
    let claims = |exp: u64, aud: &str, sub: &str| Claims {
        sub: sub.into(),
        exp,
        iat: now - 7200,
        iss: "warren".into(),
        aud: aud.into(),
        sid: None,
        iat_ms: None,
    };
    let (foreign_private, _) = warren::keys::generate().unwrap();
    let foreign = warren::keys::TokenSigner::from_pem(
        foreign_private.as_bytes(),
        &warren::settings::JwtSettings::default(),
    )
    .unwrap();
    let good = stack.token(1);
    let mut tampered = good.clone();
    tampered.insert(good.find('.').unwrap() + 3, 'x');
    let cases = [
        ("garbage", "not-a-token".to_owned()),
        ("empty", String::new()),
        (
            "expired",
            stack
                .signer()
                .sign_claims(&claims(now - 3600, "warren", "1"))
                .unwrap(),
        ),
        (
            "another audience",
            stack
                .signer()
                .sign_claims(&claims(now + 3600, "other", "1"))
                .unwrap(),
        ),
        ("another key", foreign.sign(warren_proto::Uid(1)).unwrap().0),
        ("tampered", tampered),
    ];
    for (what, token) in cases {
        let mut c = stack.client().await;
        let f = c.login(&token).await;
        assert_eq!(error_code(&f), "unauthorized", "{what}");
        c.expect_close(1008).await;
    }
    // A login body that is not {token} is refused the same way.
    let mut c = stack.client().await;
    c.send_frame(1, cmd::LOGIN, b"\xc0".to_vec()).await.unwrap();
    assert_eq!(error_code(&c.recv().await), "unauthorized");
    c.expect_close(1008).await;
    // The right token still works.
    stack.player(1).await.echo(b"\x80").await;
}

async fn oversize_and_malformed_frames_close_the_socket(kind: BusKind) {
    let stack = Stack::start(kind).await;
    let mut big = stack.player(1).await;
    let _ = big.send_frame(1, cmd::ECHO, vec![7u8; 1024 * 1024]).await;
    big.expect_close(1009).await;

    let mut garbage = stack.player(2).await;
    garbage
        .send_raw(Message::Binary(b"garbage".to_vec().into()))
        .await
        .unwrap();
    garbage.expect_close(1007).await;

    let mut text = stack.player(3).await;
    text.send_raw(Message::Text("[1, 1001, \"hi\"]".into()))
        .await
        .unwrap();
    text.expect_close(1007).await;

    // Before login too.
    let mut early = stack.client().await;
    early
        .send_raw(Message::Binary(vec![0x92, 0x01, 0x02].into()))
        .await
        .unwrap();
    early.expect_close(1007).await;

    // Just under the limit is fine.
    let mut fine = stack.player(4).await;
    fine.echo(&vec![1u8; 60 * 1024]).await;
}

async fn unknown_commands_get_unknown_cmd(kind: BusKind) {
    let stack = Stack::start(kind).await;
    let mut c = stack.player(9).await;
    for unowned in [5000u32, 999, 1002, u32::MAX] {
        let seq = c.seq();
        c.send_frame(seq, unowned, b"\x80".to_vec()).await.unwrap();
        let f = c.recv().await;
        assert_eq!(
            (f.seq, error_code(&f).as_str()),
            (seq, "unknown_cmd"),
            "cmd {unowned}"
        );
    }
    c.echo(b"\x80").await;
}

async fn a_panicking_handler_leaves_everything_else_serving(kind: BusKind) {
    let stack = Stack::start(kind).await;
    let mut crasher = stack.player(1).await;
    let mut bystander = stack.player(2).await;
    bystander.request(cmd::CHAT_JOIN, &Room::new("r")).await;
    for _ in 0..5 {
        let seq = crasher.seq();
        crasher
            .send_frame(seq, 9990, b"\x80".to_vec())
            .await
            .unwrap();
        let f = crasher.recv().await;
        assert_eq!((f.seq, error_code(&f).as_str()), (seq, "internal"));
        bystander.echo(b"\x80").await;
    }
    // The panicking service itself lives on, and so does its caller's socket.
    let (alive, _) = crasher.request(9991, &BTreeMap::<String, u8>::new()).await;
    assert_eq!(alive.cmd, 9991);
    crasher.echo(b"\x80").await;
    let (said, _) = bystander
        .request(cmd::CHAT_SEND, &Say::new("r", "still here"))
        .await;
    assert_eq!(said.cmd, cmd::CHAT_SEND);
}

async fn a_client_that_stops_reading_is_kicked_while_others_flow(kind: BusKind) {
    let stack = Stack::start_with(kind, &[("WARREN_CONNECTOR__OUTBOUND_QUEUE", "8")]).await;
    let mut good = stack.player(1).await;
    let mut slow = stack.small_buffer_client().await;
    slow.login(&stack.token(2)).await;

    // The slow client sends many requests with large replies and reads none.
    let payload = vec![3u8; 32 * 1024];
    let total = 600u64;
    let mut sent = 0;
    for seq in 1..=total {
        if slow
            .send_frame(seq, cmd::ECHO, payload.clone())
            .await
            .is_err()
        {
            break; // already cut off
        }
        sent += 1;
        if seq % 50 == 0 {
            good.echo(b"\x80").await;
        }
    }
    // Now it reads: it gets some replies, then the connection ends. It never
    // gets them all.
    let mut received = 0;
    loop {
        match slow.next_event_within(Duration::from_secs(30)).await {
            Event::Frame(f) if f.cmd == cmd::ECHO => received += 1,
            Event::Frame(f) => assert_eq!(f.cmd, cmd::KICK, "{f:?}"),
            Event::Closed(_) | Event::Ended => break,
        }
    }
    assert!(
        received < sent,
        "a slow client must be cut off, yet it got {received} of {sent}"
    );
    for _ in 0..10 {
        good.echo(b"\x80").await;
    }
    // Its uid can come back.
    stack.player(2).await.echo(b"\x80").await;
}

async fn shutdown_kicks_every_player(kind: BusKind) {
    let mut stack = Stack::start(kind).await;
    let mut a = stack.player(1).await;
    let mut b = stack.player(2).await;
    a.echo(b"\x80").await;
    b.echo(b"\x80").await;
    let mut anonymous = stack.client().await;
    let status = stack.terminate_connector();
    assert!(status.success(), "graceful exit, got {status:?}");
    a.expect_kick("shutdown").await;
    b.expect_kick("shutdown").await;
    anonymous.expect_kick("shutdown").await;
}

async fn silent_players_are_kicked_and_heartbeats_keep_them(kind: BusKind) {
    // A login time-out far longer than the idle one: the idle kick must
    // come from the idle deadline, not wait for the login's.
    let stack = Stack::start_with(
        kind,
        &[
            ("WARREN_CONNECTOR__IDLE_TIMEOUT_MS", "1000"),
            ("WARREN_CONNECTOR__LOGIN_TIMEOUT_MS", "60000"),
        ],
    )
    .await;
    let mut silent = stack.player(1).await;
    let mut chatty = stack.player(2).await;
    // 2.4 s of heartbeats 200 ms apart: five to a time-out, room for a
    // loaded host; the silent one is kicked meanwhile.
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (hb, _) = chatty
            .request(cmd::HEARTBEAT, &BTreeMap::<String, u8>::new())
            .await;
        assert_eq!(hb.cmd, cmd::HEARTBEAT);
    }
    silent.expect_kick("idle_timeout").await;
    chatty.echo(b"\x80").await;
}

async fn sockets_that_never_log_in_are_closed(kind: BusKind) {
    let stack = Stack::start_with(kind, &[("WARREN_CONNECTOR__LOGIN_TIMEOUT_MS", "300")]).await;
    let mut lurker = stack.client().await;
    lurker.expect_close(1008).await;
    stack.player(1).await.echo(b"\x80").await;
}
