//! Announcements (push 9001) from the operator's `warren announce`, through
//! the game's admin endpoint, to 500 players on two connectors.

use std::time::{Duration, Instant};

use serde_json::json;
use warren_proto::{body::Marquee, cmd};

use crate::{
    helpers::{BusKind, Client, Presence, PresenceRequest, Stack, decode, eventually, http_post},
    on_networked_buses,
};

fn outcome(printed: &str) -> serde_json::Value {
    serde_json::from_str(printed.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {printed:?}"))
}

/// Reads the next frame, which must be the announcement `text`.
async fn expect_marquee(c: &mut Client, text: &str) -> Marquee<'static> {
    let f = c.recv().await;
    assert_eq!((f.seq, f.cmd), (0, cmd::ANNOUNCEMENT), "{f:?}");
    let m = decode::<Marquee>(&f);
    assert_eq!(m.text, text);
    m
}

/// Nothing is pending for `c`: its next frame is the reply to an echo.
async fn nothing_pending(c: &mut Client) {
    let (f, extra) = c.request(cmd::ECHO, &json!({})).await;
    assert_eq!(f.cmd, cmd::ECHO);
    assert!(extra.is_empty(), "unexpected frames: {extra:?}");
}

async fn announcements_reach_everyone_or_exactly_the_listed_players(kind: BusKind) {
    let stack = Stack::start_connectors(kind, 2, &[]).await;
    let uids: Vec<u64> = (5000..5500).collect();
    let mut clients = Vec::new();
    for (i, uid) in uids.iter().enumerate() {
        clients.push(stack.player_on(i % 2, *uid).await);
    }
    eventually("the game to record every login", async || {
        let (r, _) = clients[0]
            .request(
                cmd::PRESENCE,
                &PresenceRequest {
                    uids: uids.to_vec(),
                },
            )
            .await;
        (decode::<Presence>(&r).online.len() == uids.len()).then_some(())
    })
    .await;

    let (ok, printed) = stack.announce(&["--text", "servers restart at noon", "--level", "urgent"]);
    assert!(ok, "{printed}");
    let sent = outcome(&printed);
    assert_eq!(
        (sent["state"].as_str(), sent["delivered"].as_u64()),
        (Some("sent"), Some(500))
    );
    for c in &mut clients {
        let m = expect_marquee(c, "servers restart at noon").await;
        assert_eq!(m.level, "urgent");
    }
    for c in &mut clients {
        nothing_pending(c).await;
    }

    // To a list: exactly those players (on both connectors), offline ones counted.
    let chosen = [5000u64, 5001, 5002, 5003, 5498, 5499];
    let list = "5000,5001,5002,5003,5498,5499,99999";
    let (ok, printed) = stack.announce(&["--text", "you won", "--uids", list]);
    assert!(ok, "{printed}");
    let sent = outcome(&printed);
    assert_eq!(
        (sent["delivered"].as_u64(), sent["offline"].as_u64()),
        (Some(6), Some(1))
    );
    for (uid, c) in uids.iter().zip(&mut clients) {
        if chosen.contains(uid) {
            let m = expect_marquee(c, "you won").await;
            assert_eq!(m.level, "info");
        }
        nothing_pending(c).await;
    }
}

async fn announcements_can_wait_and_the_endpoint_wants_its_token(kind: BusKind) {
    let stack = Stack::start_connectors(kind, 2, &[]).await;
    let mut a = stack.player_on(0, 1).await;
    let mut b = stack.player_on(1, 2).await;
    eventually("the game to record both logins", async || {
        let (r, _) = a
            .request(cmd::PRESENCE, &PresenceRequest { uids: vec![1, 2] })
            .await;
        (decode::<Presence>(&r).online.len() == 2).then_some(())
    })
    .await;
    let asked = Instant::now();
    let (ok, printed) = stack.announce(&["--text", "later", "--in-secs", "2"]);
    assert!(ok, "{printed}");
    let scheduled = outcome(&printed);
    assert_eq!(scheduled["state"].as_str(), Some("scheduled"));
    expect_marquee(&mut a, "later").await;
    expect_marquee(&mut b, "later").await;
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "sent too early: {:?}",
        asked.elapsed()
    );

    // Without the token: refused, nothing sent.
    let (status, body) = http_post(
        stack.admin,
        "/v1/announcements",
        &json!({"text": "spoofed"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    // Bad input: a clear error from the CLI.
    let (ok, printed) = stack.announce(&["--text", ""]);
    assert!(!ok);
    assert!(printed.contains("bad_request"), "{printed}");
    nothing_pending(&mut a).await;
    nothing_pending(&mut b).await;
}

on_networked_buses!(
    announcements_reach_everyone_or_exactly_the_listed_players,
    announcements_can_wait_and_the_endpoint_wants_its_token,
);
