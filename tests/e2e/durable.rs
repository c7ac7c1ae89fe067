//! The durable mode, on RabbitMQ and on Redis Streams (not in process: the
//! in-process bus has nothing to keep across a process's death). A game killed with SIGKILL in the middle of a
//! stream of requests loses none of them, and gold charges each exactly
//! once; a request that keeps failing ends in the dead-letter queue instead
//! of looping.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::json;
use warren_proto::{ErrorBody, cmd};

use crate::{
    helpers::{BusKind, Event, Stack, decode, http_post},
    on_durable_buses,
};

const DURABLE: [(&str, &str); 2] = [
    ("WARREN_BUS__DURABLE", "true"),
    ("WARREN_BUS__DELIVERY_LIMIT", "3"),
];

#[derive(Serialize)]
struct Buy {
    item: &'static str,
    request_id: String,
}

#[derive(Deserialize)]
struct Bought {
    item: String,
}

#[derive(Deserialize)]
struct Balance {
    balance: i64,
}

#[derive(Deserialize)]
struct Daily {
    reward: i64,
}

/// Collects answers into `replies` until every one of `seqs` has one (at
/// most 60 s).
async fn await_answers(
    c: &mut crate::helpers::Client,
    seqs: &[u64],
    replies: &mut BTreeMap<u64, Vec<warren_proto::Frame>>,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while seqs.iter().any(|s| !replies.contains_key(s)) {
        let left = seqs.iter().filter(|s| !replies.contains_key(s)).count();
        assert!(Instant::now() < deadline, "{left} requests never answered");
        if let Some(Event::Frame(f)) = c.try_next_event(Duration::from_millis(200)).await {
            replies.entry(f.seq).or_default().push(f);
        }
    }
}

/// A guest player logged in on the websocket, who has claimed the daily
/// reward; and the reward.
async fn guest_with_daily(stack: &Stack, device: &str) -> (crate::helpers::Client, i64) {
    let login = stack.login.unwrap();
    let (status, reply) = http_post(login, "/v1/guest", &json!({"device_id": device})).await;
    assert_eq!(status, 200, "{reply}");
    let mut c = stack.client().await;
    c.login(reply["token"].as_str().unwrap()).await;
    let (r, _) = c.request(3002, &json!({})).await;
    (c, decode::<Daily>(&r).reward)
}

async fn a_game_killed_mid_stream_loses_no_request_and_charges_each_once(kind: BusKind) {
    killed_mid_stream(kind, Successor::Restarted).await;
}

/// With a hot standby beside it, the killed game's requests go to the
/// standby: none lost, each charged once, and no process started.
async fn a_standby_loses_no_request_of_a_game_killed_mid_stream(kind: BusKind) {
    killed_mid_stream(kind, Successor::Standby).await;
}

/// Who serves the shard after the kill.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Successor {
    /// A new game, started 300 ms after the kill.
    Restarted,
    /// A hot standby, started before the stream.
    Standby,
}

// Long: one scenario in order — the stream, the kill mid-stream, the successor, then every answer and the balance checked.
async fn killed_mid_stream(kind: BusKind, successor: Successor) {
    let mut stack = Stack::start_full_with(kind, &DURABLE).await;
    let standby = match successor {
        Successor::Standby => Some(crate::standby::start_standby(&mut stack).await),
        Successor::Restarted => None,
    };
    crate::config::publish(&stack, "economy", json!({"daily_reward": 1_000_000})).await;
    crate::config::wallet_takes_daily_reward(&stack, 1_000_000).await;
    let (mut c, start) = guest_with_daily(&stack, "durable").await;
    assert_eq!(start, 1_000_000);

    // 300 purchases: the first 200 back to back, so the game holds many
    // it has taken but not yet handled when it is killed; the rest while a
    // new game starts.
    const N: usize = 300;
    let mut replies: BTreeMap<u64, Vec<warren_proto::Frame>> = BTreeMap::new();
    let mut seqs = Vec::new();
    // The kill, and the first answer after it (an upper bound of the
    // takeover: answers are read between sends).
    let (mut killed, mut first_after) = (None::<Instant>, None::<Instant>);
    for i in 0..N {
        let seq = c
            .send(
                3003,
                &Buy {
                    item: "potion",
                    request_id: format!("d-{i}"),
                },
            )
            .await;
        seqs.push(seq);
        if i == 199 {
            // Once the game has answered some, it holds the rest.
            while replies.len() < 5 {
                match c.try_next_event(Duration::from_secs(10)).await {
                    Some(Event::Frame(f)) => replies.entry(f.seq).or_default().push(f),
                    other => panic!("no answer before the kill: {other:?}"),
                }
            }
            let answered = replies.len();
            killed = Some(Instant::now());
            if standby.is_some() {
                stack.kill_first_game();
            } else {
                stack.kill_game();
                tokio::time::sleep(Duration::from_millis(300)).await;
                stack.start_game();
            }
            eprintln!(
                "{kind:?}: game killed after {} requests, {answered} answered",
                i + 1
            );
        }
        if i >= 200 {
            while let Some(Event::Frame(f)) = c.try_next_event(Duration::from_millis(2)).await {
                replies.entry(f.seq).or_default().push(f);
                first_after.get_or_insert_with(Instant::now);
            }
        }
    }
    let before = replies.len();
    await_answers(&mut c, &seqs, &mut replies).await;
    if replies.len() > before {
        first_after.get_or_insert_with(Instant::now);
    }
    let mut twice = 0;
    for seq in &seqs {
        let answers = &replies[seq];
        twice += usize::from(answers.len() > 1);
        for f in answers {
            assert_eq!(
                f.cmd,
                3003,
                "seq {seq}: {:?}",
                (f.cmd == cmd::ERROR).then(|| decode::<ErrorBody>(f))
            );
            assert_eq!(decode::<Bought>(f).item, "potion");
        }
    }
    let served = first_after.zip(killed).map(|(a, k)| a - k);
    eprintln!(
        "{kind:?}, {successor:?}: {N} purchases answered, 0 lost; {twice} answered twice (handled \
         by the killed game, then delivered again); first answer {served:?} after the kill"
    );
    if let Some(standby) = &standby {
        crate::standby::serves_after_one_takeover(&stack, standby);
    }
    let (r, _) = c.request(3001, &json!({})).await;
    let balance = decode::<Balance>(&r).balance;
    assert_eq!(
        balance,
        start - 50 * N as i64,
        "every purchase charged exactly once"
    );
}

#[derive(Serialize)]
struct BuyOnce {
    item: &'static str,
}

/// The game dies between a handler and the bus's confirm of its reply
/// (fault injection aborts it when the outbox takes its 40th reply): the
/// requests it had handled but not settled are delivered again to the next
/// game, which answers each with the original result (the purchase's
/// idempotency key is the request's identity, as no `request_id` is sent).
async fn a_game_that_dies_before_its_replies_are_confirmed_loses_no_answer(kind: BusKind) {
    let mut settings = DURABLE.to_vec();
    settings.push(("WARREN_GAME__ABORT_AT_REPLY", "40"));
    // A potion costs 1, so the daily reward pays for every purchase.
    settings.push(("WARREN_GAME__SHOP_ITEMS__POTION", "1"));
    let mut stack = Stack::start_full_with(kind, &settings).await;
    let (mut c, start) = guest_with_daily(&stack, "abort").await;
    assert!(start >= 100, "a daily reward of {start}");

    const N: usize = 100;
    let mut seqs = Vec::new();
    for _ in 0..N {
        seqs.push(c.send(3003, &BuyOnce { item: "potion" }).await);
    }
    let exit = stack.wait_game_end();
    assert!(!exit.success(), "the game aborted: {exit:?}");
    stack.start_game_with(&[("WARREN_GAME__ABORT_AT_REPLY", "0")]);

    let mut replies: BTreeMap<u64, Vec<warren_proto::Frame>> = BTreeMap::new();
    await_answers(&mut c, &seqs, &mut replies).await;
    for seq in &seqs {
        for f in &replies[seq] {
            assert_eq!(
                f.cmd,
                3003,
                "seq {seq}: {:?}",
                (f.cmd == cmd::ERROR).then(|| decode::<ErrorBody>(f))
            );
        }
    }
    let (r, _) = c.request(3001, &json!({})).await;
    assert_eq!(
        decode::<Balance>(&r).balance,
        start - N as i64,
        "every purchase charged exactly once"
    );
}

async fn a_request_that_keeps_failing_ends_in_the_dead_letter_queue(kind: BusKind) {
    let stack = Stack::start_with(kind, &DURABLE).await;
    let mut c = stack.player(5).await;
    let seq = c.send(9990, &json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut failures = 0;
    while stack.dead_letters().await == 0 {
        assert!(
            Instant::now() < deadline,
            "never dead-lettered ({failures} failures seen)"
        );
        while let Some(Event::Frame(f)) = c.try_next_event(Duration::from_millis(100)).await {
            assert_eq!((f.seq, f.cmd), (seq, cmd::ERROR));
            assert_eq!(decode::<ErrorBody>(&f).code, "internal");
            failures += 1;
        }
    }
    while let Some(Event::Frame(f)) = c.try_next_event(Duration::from_millis(300)).await {
        assert_eq!(f.seq, seq);
        failures += 1;
    }
    eprintln!("the poison request failed {failures} times, then went to the dead-letter queue");
    assert!(
        (3..=4).contains(&failures),
        "{failures} attempts for a delivery limit of 3"
    );
    assert_eq!(stack.dead_letters().await, 1);
    // It does not come back, and the game goes on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(c.try_next_event(Duration::from_millis(200)).await.is_none());
    let (r, _) = c.request(9991, &json!({})).await;
    assert_eq!(r.cmd, 9991);
}

on_durable_buses!(
    a_game_killed_mid_stream_loses_no_request_and_charges_each_once,
    a_standby_loses_no_request_of_a_game_killed_mid_stream,
    a_game_that_dies_before_its_replies_are_confirmed_loses_no_answer,
    a_request_that_keeps_failing_ends_in_the_dead_letter_queue,
);
