//! Several connectors on one networked bus (RabbitMQ or Redis), each a process of its own, with one
//! game: a uid is live on at most one of them, chat rooms span them, and a
//! connector that dies is forgotten.

use std::time::{Duration, Instant};

use warren_proto::cmd;

use crate::{
    helpers::{BusKind, Client, Presence, PresenceRequest, Room, Said, Say, Stack, decode},
    on_networked_buses,
};

/// Two connectors, two game shards; 50 uids, 4 rounds each (200 logins
/// over another connector), alternating direction. At the end of every
/// round each uid has exactly one live socket: the newest.
async fn a_login_on_another_connector_kicks_the_old_socket_in_200_rounds(kind: BusKind) {
    let stack = Stack::start_connectors(kind, 2, &[("WARREN_BUS__SHARDS", "2")]).await;
    let uids: Vec<u64> = (1000..1050).collect();
    // Round 0: everyone on connector 0.
    let mut live = Vec::new();
    for &uid in &uids {
        live.push(stack.player_on(0, uid).await);
    }
    for round in 1..=4usize {
        let to = round % 2;
        let mut tasks = Vec::new();
        for (&uid, mut old) in uids.iter().zip(live.drain(..)) {
            let (addr, url) = stack.connectors[to].clone();
            let token = stack.token(uid);
            tasks.push(tokio::spawn(async move {
                let mut new = Client::connect(addr, &url, None).await;
                assert_eq!(new.login(&token).await.cmd, cmd::LOGIN);
                // The older socket, on the other connector, is kicked…
                old.expect_kick("duplicate_login").await;
                // …and the newer one serves.
                new.echo(b"\x80").await;
                new
            }));
        }
        for t in tasks {
            live.push(t.await.unwrap());
        }
        let (reply, _) = live[0]
            .request(
                cmd::PRESENCE,
                &PresenceRequest {
                    uids: uids.to_vec(),
                },
            )
            .await;
        assert_eq!(
            decode::<Presence>(&reply).online.len(),
            uids.len(),
            "round {round}"
        );
    }
}

async fn a_room_spanning_two_connectors_delivers_every_line_to_every_member_once(kind: BusKind) {
    let stack = Stack::start_connectors(kind, 2, &[]).await;
    let mut members = Vec::new();
    for (i, uid) in [(0, 21u64), (1, 22), (0, 23), (1, 24)] {
        let mut p = stack.player_on(i, uid).await;
        let (reply, _) = p.request(cmd::CHAT_JOIN, &Room::new("across")).await;
        assert_eq!(reply.cmd, cmd::CHAT_JOIN);
        members.push((uid, p));
    }
    for (uid, p) in &mut members {
        let text = format!("line from {uid}");
        let reply = p
            .request_keeping_pushes(cmd::CHAT_SEND, &Say::new("across", text.as_str()))
            .await;
        assert_eq!(reply.cmd, cmd::CHAT_SEND);
    }
    for (uid, p) in &mut members {
        let mut heard = Vec::new();
        while heard.len() < 4 {
            let f = p.next_push().await;
            assert_eq!(f.cmd, cmd::CHAT_MESSAGE, "uid {uid}: {f:?}");
            heard.push(decode::<Said>(&f).from);
        }
        assert_eq!(
            heard,
            vec![21, 22, 23, 24],
            "uid {uid} hears every line once, in order"
        );
        let (barrier, extra) = p.request(cmd::ECHO, &Room::new("barrier")).await;
        assert_eq!(barrier.cmd, cmd::ECHO);
        assert!(
            extra.is_empty() && p.stashed() == 0,
            "uid {uid} got duplicates: {extra:?}"
        );
    }
}

async fn a_killed_connector_is_forgotten_and_its_players_can_come_back(kind: BusKind) {
    let mut stack = Stack::start_connectors(
        kind,
        2,
        &[
            ("WARREN_CONNECTOR__ALIVE_INTERVAL_MS", "300"),
            ("WARREN_GAME__CONNECTOR_EXPIRY_MS", "2000"),
            ("WARREN_BUS__SHARDS", "2"),
        ],
    )
    .await;
    let mut doomed = stack.player_on(0, 31).await;
    doomed.echo(b"\x80").await;
    let mut watcher = stack.player_on(1, 32).await;
    let (reply, _) = watcher
        .request(cmd::PRESENCE, &PresenceRequest { uids: vec![31, 32] })
        .await;
    assert_eq!(decode::<Presence>(&reply).online, vec![31, 32]);

    stack.kill_connector(0);
    let killed = Instant::now();
    loop {
        let (reply, _) = watcher
            .request(cmd::PRESENCE, &PresenceRequest { uids: vec![31] })
            .await;
        if decode::<Presence>(&reply).online.is_empty() {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "uid 31 still online 10 s after its connector died"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Expiry 2 s, checked every 2/3 s, alive every 0.3 s: within about 3 s.
    eprintln!(
        "a killed connector's players went offline after {:?}",
        killed.elapsed()
    );

    let mut back = stack.player_on(1, 31).await;
    back.echo(b"\x80").await;
    let (reply, _) = watcher
        .request(cmd::PRESENCE, &PresenceRequest { uids: vec![31] })
        .await;
    assert_eq!(decode::<Presence>(&reply).online, vec![31]);
}

on_networked_buses!(
    a_login_on_another_connector_kicks_the_old_socket_in_200_rounds,
    a_room_spanning_two_connectors_delivers_every_line_to_every_member_once,
    a_killed_connector_is_forgotten_and_its_players_can_come_back,
);
