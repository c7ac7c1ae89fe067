//! Resumable sessions (PROTOCOL.md §3) through the whole stack: a player
//! whose connection drops keeps its rooms, and gets on resuming everything
//! said meanwhile and the answer to the request it had in flight, once.

use warren_proto::cmd;

use crate::{
    helpers::{BusKind, Client, Presence, PresenceRequest, Room, Said, Say, Stack, decode},
    on_every_bus, on_networked_buses,
};

/// Reads frames until the reply to `seq`; returns the chat lines pushed
/// before it (and checks nothing else came).
async fn said_until_reply(c: &mut Client, seq: u64) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let f = c.recv().await;
        if f.seq == seq {
            return lines;
        }
        assert_eq!(f.cmd, cmd::CHAT_MESSAGE, "{f:?}");
        lines.push(decode::<Said>(&f).text.into_owned());
    }
}

/// What a resumed client gets: the answer to `in_flight` once, and `count`
/// chat lines (returned in the order they came); nothing else.
async fn replayed(c: &mut Client, in_flight: u64, count: usize) -> Vec<String> {
    let mut echoed = false;
    let mut lines = Vec::new();
    while lines.len() < count || !echoed {
        let f = c.recv().await;
        match f.cmd {
            cmd::ECHO => {
                assert_eq!(f.seq, in_flight);
                assert!(!echoed, "the answer comes once");
                echoed = true;
            }
            cmd::CHAT_MESSAGE => lines.push(decode::<Said>(&f).text.into_owned()),
            other => panic!("unexpected cmd {other}: {f:?}"),
        }
    }
    lines
}

/// Sends request `in_flight` again: it is not applied again, so a fresh
/// request to the same service, answered in order, comes back first.
async fn not_applied_again(c: &mut Client, in_flight: u64) {
    c.send_frame(in_flight, cmd::ECHO, b"\x80".to_vec())
        .await
        .unwrap();
    let fresh = c.send(cmd::ECHO, &"fresh").await;
    let f = c.recv().await;
    assert_eq!((f.seq, f.cmd), (fresh, cmd::ECHO), "{f:?}");
}

// Long: one scenario, told in order.
async fn a_dropped_player_keeps_its_rooms_and_gets_what_was_said(kind: BusKind) {
    let stack = Stack::start(kind).await;
    let (mut a, reply) = stack.resumable_player(1).await;
    let session = reply.session.expect("a resumable session");
    let mut b = stack.player(2).await;
    for c in [&mut a, &mut b] {
        let (joined, _) = c.request(cmd::CHAT_JOIN, &Room::new("lobby")).await;
        assert_eq!(joined.cmd, cmd::CHAT_JOIN);
    }
    // b's join is pushed to nobody; a's own lines so far are answered.
    let in_flight = a.send(cmd::ECHO, &"in flight").await;
    stack.redial(&mut a, 0).await;
    // While a is away: b talks, and a is still online and in the room.
    for i in 0..5 {
        let (said, _) = b
            .request(cmd::CHAT_SEND, &Say::new("lobby", format!("line {i}")))
            .await;
        assert_eq!(said.cmd, cmd::CHAT_SEND, "{said:?}");
    }
    let (online, _) = b
        .request(cmd::PRESENCE, &PresenceRequest { uids: vec![1] })
        .await;
    assert_eq!(
        decode::<Presence>(&online).online,
        vec![1],
        "away, not gone"
    );

    let resumed = a.login_resumable(&stack.token(1), Some(&session)).await;
    assert_eq!(resumed.resumed, Some(true), "{resumed:?}");
    // Everything after the last frame a got, in order, once (the client
    // fails the test on a gap or a repeat of a number).
    let lines = replayed(&mut a, in_flight, 5).await;
    let expected: Vec<String> = (0..5).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected);
    not_applied_again(&mut a, in_flight).await;
    // a is still in the room.
    let seq = a.send(cmd::CHAT_SEND, &Say::new("lobby", "back")).await;
    let mut heard = said_until_reply(&mut a, seq).await;
    if heard.is_empty() {
        heard.push(decode::<Said>(&a.recv().await).text.into_owned());
    }
    assert_eq!(heard, vec!["back".to_owned()]);
}

on_every_bus!(a_dropped_player_keeps_its_rooms_and_gets_what_was_said);

// Long: one scenario, told in order.
/// Two connectors and two game shards: a player whose connection to
/// connector 0 drops resumes on connector 1, and gets everything said
/// meanwhile (by players of both shards) and its in-flight answer, once;
/// then it is connector 1's.
async fn a_session_resumes_on_another_connector(kind: BusKind) {
    let stack = Stack::start_connectors(kind, 2, &[("WARREN_BUS__SHARDS", "2")]).await;
    let mut a = stack.client_on(0).await;
    let reply = a.login_resumable(&stack.token(1), None).await;
    let session = reply.session.expect("a resumable session");
    // uids 2 and 3: one per shard.
    let mut others = [stack.player_on(1, 2).await, stack.player_on(0, 3).await];
    for c in std::iter::once(&mut a).chain(others.iter_mut()) {
        let (joined, _) = c.request(cmd::CHAT_JOIN, &Room::new("lobby")).await;
        assert_eq!(joined.cmd, cmd::CHAT_JOIN);
    }
    let in_flight = a.send(cmd::ECHO, &"in flight").await;
    stack.redial(&mut a, 1).await;
    for (i, c) in others.iter_mut().enumerate() {
        let (said, _) = c
            .request(cmd::CHAT_SEND, &Say::new("lobby", format!("line {i}")))
            .await;
        assert_eq!(said.cmd, cmd::CHAT_SEND, "{said:?}");
    }
    let resumed = a.login_resumable(&stack.token(1), Some(&session)).await;
    assert_eq!(resumed.resumed, Some(true), "{resumed:?}");
    let moved = resumed.session.expect("the session's new name");
    assert_ne!(moved, session, "it lives on connector 1 now");
    let mut lines = replayed(&mut a, in_flight, 2).await;
    lines.sort();
    assert_eq!(lines, vec!["line 0".to_owned(), "line 1".to_owned()]);
    // Connector 1 serves it: a request sent again is not applied twice, a
    // new one is answered, and its room still has it.
    not_applied_again(&mut a, in_flight).await;
    let (said, _) = others[0]
        .request(cmd::CHAT_SEND, &Say::new("lobby", "welcome back"))
        .await;
    assert_eq!(said.cmd, cmd::CHAT_SEND);
    assert_eq!(decode::<Said>(&a.recv().await).text, "welcome back");
    // And it can move again, back to connector 0.
    stack.redial(&mut a, 0).await;
    let again = a.login_resumable(&stack.token(1), Some(&moved)).await;
    assert_eq!(again.resumed, Some(true), "{again:?}");
    a.echo(b"\x80").await;
}

/// The connector that held a session is killed: resuming on another one
/// gets `resync` and a new session, and the player is online again.
async fn a_session_whose_connector_died_resyncs(kind: BusKind) {
    let mut stack = Stack::start_connectors(kind, 2, &[]).await;
    let mut a = stack.client_on(0).await;
    let reply = a.login_resumable(&stack.token(1), None).await;
    let session = reply.session.expect("a resumable session");
    stack.kill_connector(0);
    stack.redial(&mut a, 1).await;
    let resumed = a.login_resumable(&stack.token(1), Some(&session)).await;
    assert_eq!(resumed.resumed, Some(false), "{resumed:?}");
    assert_eq!(resumed.reason.as_deref(), Some("resync"));
    a.echo(b"\x80").await;
    let (online, _) = a
        .request(cmd::PRESENCE, &PresenceRequest { uids: vec![1] })
        .await;
    assert_eq!(decode::<Presence>(&online).online, vec![1]);
}

/// A connector stopping for a deploy (SIGTERM) tells its resumable
/// clients to `reconnect`, and hands each session over to the connector
/// it resumes on: nothing said meanwhile is lost; then it exits, with
/// nothing left to drain, long before its drain time (a minute) is over.
async fn a_connector_stopping_for_a_deploy_hands_its_sessions_over(kind: BusKind) {
    let drain = [("WARREN_CONNECTOR__DRAIN_MS", "60000")];
    let mut stack = Stack::start_connectors(kind, 2, &drain).await;
    let mut a = stack.client_on(0).await;
    let reply = a.login_resumable(&stack.token(1), None).await;
    let session = reply.session.expect("a resumable session");
    let mut b = stack.player_on(1, 2).await;
    for c in [&mut a, &mut b] {
        let (joined, _) = c.request(cmd::CHAT_JOIN, &Room::new("lobby")).await;
        assert_eq!(joined.cmd, cmd::CHAT_JOIN);
    }
    stack.signal_connector(0);
    a.expect_kick("reconnect").await;
    let (said, _) = b
        .request(cmd::CHAT_SEND, &Say::new("lobby", "during the deploy"))
        .await;
    assert_eq!(said.cmd, cmd::CHAT_SEND);
    stack.redial(&mut a, 1).await;
    let resumed = a.login_resumable(&stack.token(1), Some(&session)).await;
    assert_eq!(resumed.resumed, Some(true), "{resumed:?}");
    assert_eq!(decode::<Said>(&a.recv().await).text, "during the deploy");
    // Within wait_connector's 20 s, not the minute of drain.
    let status = stack.wait_connector(0);
    assert!(
        status.success(),
        "the stopped connector exits cleanly: {status:?}"
    );
    a.echo(b"\x80").await;
}

on_networked_buses!(
    a_session_resumes_on_another_connector,
    a_session_whose_connector_died_resyncs,
    a_connector_stopping_for_a_deploy_hands_its_sessions_over
);
