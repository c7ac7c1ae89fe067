//! Login over HTTP, then spending and earning gold over the websocket: the
//! whole stack, on the in-process bus and on RabbitMQ (there as four
//! processes: gold, login, game, connector).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use warren_proto::cmd;

use crate::{
    helpers::{BusKind, ErrorBody, Stack, decode, http_post},
    on_every_bus,
};

on_every_bus!(guest_login_then_daily_reward_and_shopping);

#[derive(Deserialize)]
struct Balance {
    currency: String,
    balance: i64,
}

#[derive(Deserialize)]
struct Daily {
    reward: i64,
    balance: i64,
}

#[derive(Deserialize)]
struct Bought {
    item: String,
    price: i64,
    balance: i64,
}

#[derive(Deserialize)]
struct Items {
    items: BTreeMap<String, i64>,
}

#[derive(Serialize)]
struct Buy<'a> {
    item: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

fn empty() -> BTreeMap<String, u8> {
    BTreeMap::new()
}

fn code_of(frame: &warren_proto::Frame) -> String {
    assert_eq!(frame.cmd, cmd::ERROR, "expected an error, got {frame:?}");
    decode::<ErrorBody>(frame).code
}

// Long: one scenario, told in order.
async fn guest_login_then_daily_reward_and_shopping(kind: BusKind) {
    let stack = Stack::start_full(kind).await;
    let login = stack.login.expect("the full stack runs login");
    let (status, reply) = http_post(login, "/v1/guest", &json!({"device_id": "e2e-phone"})).await;
    assert_eq!(status, 200, "{reply}");
    let uid = reply["uid"].as_u64().unwrap();
    let token = reply["token"].as_str().unwrap();

    let mut c = stack.client().await;
    let hello = c.login(token).await;
    assert_eq!(
        hello.cmd,
        cmd::LOGIN,
        "the login service's token opens the websocket: {hello:?}"
    );

    let (r, _) = c.request(3001, &empty()).await;
    let b = decode::<Balance>(&r);
    assert_eq!((b.currency.as_str(), b.balance), ("gold", 0));

    let (r, _) = c.request(3002, &empty()).await;
    let d = decode::<Daily>(&r);
    assert_eq!((d.reward, d.balance), (100, 100));
    let (r, _) = c.request(3002, &empty()).await;
    assert_eq!(code_of(&r), "already_claimed");

    let (r, _) = c.request(3004, &empty()).await;
    let items = decode::<Items>(&r).items;
    assert_eq!(items.get("potion"), Some(&50));

    let (r, _) = c
        .request(
            3003,
            &Buy {
                item: "potion",
                request_id: None,
            },
        )
        .await;
    let bought = decode::<Bought>(&r);
    assert_eq!(
        (bought.item.as_str(), bought.price, bought.balance),
        ("potion", 50, 50)
    );
    let (r, _) = c
        .request(
            3003,
            &Buy {
                item: "sword",
                request_id: None,
            },
        )
        .await;
    assert_eq!(code_of(&r), "insufficient_funds");
    let (r, _) = c
        .request(
            3003,
            &Buy {
                item: "unobtainium",
                request_id: None,
            },
        )
        .await;
    assert_eq!(code_of(&r), "unknown_item");

    // The same purchase sent twice (a retry) is charged once.
    for _ in 0..2 {
        let (r, _) = c
            .request(
                3003,
                &Buy {
                    item: "potion",
                    request_id: Some("retry-1"),
                },
            )
            .await;
        assert_eq!(decode::<Bought>(&r).balance, 0);
    }
    let (r, _) = c.request(3001, &empty()).await;
    assert_eq!(
        decode::<Balance>(&r).balance,
        0,
        "reward 100, two potions of 50"
    );

    // The same device logs in again as the same player, with the same gold.
    let (_, again) = http_post(login, "/v1/guest", &json!({"device_id": "e2e-phone"})).await;
    assert_eq!(again["uid"].as_u64(), Some(uid));
}

on_every_bus!(a_players_purchases_are_answered_in_order_while_another_buys);

/// The wallet's gold calls run concurrently, but one player's in the order
/// asked: five purchases sent at once against a balance of 100 are
/// answered 50, 0, then insufficient_funds three times, while a second
/// player's purchases go through beside them.
async fn a_players_purchases_are_answered_in_order_while_another_buys(kind: BusKind) {
    let stack = Stack::start_full(kind).await;
    let login = stack.login.expect("the full stack runs login");
    let mut players = Vec::new();
    for device in ["e2e-order-a", "e2e-order-b"] {
        let (status, reply) = http_post(login, "/v1/guest", &json!({"device_id": device})).await;
        assert_eq!(status, 200, "{reply}");
        let mut c = stack.client().await;
        let hello = c.login(reply["token"].as_str().unwrap()).await;
        assert_eq!(hello.cmd, cmd::LOGIN, "{hello:?}");
        let (r, _) = c.request(3002, &empty()).await;
        assert_eq!(decode::<Daily>(&r).balance, 100);
        players.push(c);
    }
    let buy = Buy {
        item: "potion",
        request_id: None,
    };
    let mut seqs = vec![Vec::new(), Vec::new()];
    for _ in 0..5 {
        for (c, seqs) in players.iter_mut().zip(&mut seqs) {
            seqs.push(c.send(3003, &buy).await);
        }
    }
    for (c, seqs) in players.iter_mut().zip(&seqs) {
        let mut answers = Vec::new();
        for &seq in seqs {
            let f = c.recv().await;
            assert_eq!(f.seq, seq, "answered in the order asked: {f:?}");
            answers.push(if f.cmd == cmd::ERROR {
                code_of(&f)
            } else {
                decode::<Bought>(&f).balance.to_string()
            });
        }
        assert_eq!(
            answers,
            [
                "50",
                "0",
                "insufficient_funds",
                "insufficient_funds",
                "insufficient_funds"
            ]
        );
    }
}
