//! Resumable sessions (PROTOCOL.md §3) through the whole stack: a player
//! whose connection drops keeps its rooms, and gets on resuming everything
//! said meanwhile and the answer to the request it had in flight, once.

use warren_proto::cmd;

use crate::{
    helpers::{BusKind, Client, Presence, PresenceRequest, Room, Said, Say, Stack, decode},
    on_every_bus,
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
    let mut echoed = false;
    let mut lines = Vec::new();
    while lines.len() < 5 || !echoed {
        let f = a.recv().await;
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
    let expected: Vec<String> = (0..5).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected);
    // The request sent again is not applied again: a fresh one to the same
    // service, answered in order, comes back first.
    a.send_frame(in_flight, cmd::ECHO, b"\x80".to_vec())
        .await
        .unwrap();
    let fresh = a.send(cmd::ECHO, &"fresh").await;
    let f = a.recv().await;
    assert_eq!((f.seq, f.cmd), (fresh, cmd::ECHO), "{f:?}");
    // a is still in the room.
    let seq = a.send(cmd::CHAT_SEND, &Say::new("lobby", "back")).await;
    let mut heard = said_until_reply(&mut a, seq).await;
    if heard.is_empty() {
        heard.push(decode::<Said>(&a.recv().await).text.into_owned());
    }
    assert_eq!(heard, vec!["back".to_owned()]);
}

on_every_bus!(a_dropped_player_keeps_its_rooms_and_gets_what_was_said);
