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
