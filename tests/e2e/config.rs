//! Live configuration: a change published to config-svc reaches the running
//! game without a restart — through gRPC on both buses, and through the
//! admin page in a real headless Chromium, the way product staff do it.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::json;
use warren_proto::{
    ErrorBody, cmd,
    config::{PublishRequest, config_client::ConfigClient},
};

use crate::{
    browser::{Browser, Driver, at, click, click_link, el, screenshot, text_of, type_into},
    helpers::{BusKind, Client, Room, Say, Stack, decode, eventually, http_post},
    on_every_bus,
};

#[derive(Deserialize)]
struct Daily {
    reward: i64,
}

/// Sends `text` to `room`: Ok, or the error's message.
async fn say(c: &mut Client, room: &str, text: &str) -> Result<(), String> {
    let (r, _) = c.request(cmd::CHAT_SEND, &Say::new(room, text)).await;
    if r.cmd == cmd::ERROR {
        return Err(decode::<ErrorBody>(&r).message);
    }
    Ok(())
}

/// Waits (up to 10 s) until a message of `len` characters is accepted
/// (`accepted`) or refused (`!accepted`) by the running game.
async fn until_chat_allows(c: &mut Client, len: usize, accepted: bool) -> Duration {
    let start = Instant::now();
    let text = "x".repeat(len);
    loop {
        let outcome = say(c, "lobby", &text).await;
        if outcome.is_ok() == accepted {
            if let Err(m) = outcome {
                assert!(m.contains("longer than"), "{m}");
            }
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the game never {} a {len}-character message: {outcome:?}",
            if accepted { "accepted" } else { "refused" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the game's wallet service runs on a published daily reward.
pub(crate) async fn wallet_takes_daily_reward(stack: &Stack, reward: i64) {
    eventually(
        "the wallet to take the published daily reward",
        async || (stack.service_state("wallet").await["daily_reward"] == reward).then_some(()),
    )
    .await;
}

pub(crate) async fn publish(stack: &Stack, name: &str, body: serde_json::Value) {
    let addr = stack.config.expect("this stack runs config-svc");
    let mut c = ConfigClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut req = tonic::Request::new(PublishRequest {
        name: name.into(),
        body: body.to_string(),
        author: "e2e".into(),
        comment: String::new(),
        expected_version: 0,
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", stack.admin_token()).parse().unwrap(),
    );
    c.publish(req).await.unwrap();
}

async fn config_changes_reach_the_running_game(kind: BusKind) {
    let stack = Stack::start_full(kind).await;
    let mut c = stack.player(7).await;
    let (r, _) = c.request(cmd::CHAT_JOIN, &Room::new("lobby")).await;
    assert_eq!(r.cmd, cmd::CHAT_JOIN, "{r:?}");
    say(&mut c, "lobby", &"x".repeat(12)).await.unwrap();

    publish(&stack, "chat", json!({"max_message_len": 10})).await;
    let took = until_chat_allows(&mut c, 12, false).await;
    eprintln!("chat limit applied {took:?} after the publish");
    say(&mut c, "lobby", &"x".repeat(10)).await.unwrap();

    // The daily reward comes from the `economy` document.
    publish(&stack, "economy", json!({"daily_reward": 250})).await;
    wallet_takes_daily_reward(&stack, 250).await;
    let login = stack.login.expect("the full stack runs login");
    let (status, reply) = http_post(login, "/v1/guest", &json!({"device_id": "cfg-phone"})).await;
    assert_eq!(status, 200, "{reply}");
    let mut p = stack.client().await;
    p.login(reply["token"].as_str().unwrap()).await;
    let (r, _) = p.request(3002, &json!({})).await;
    assert_eq!(decode::<Daily>(&r).reward, 250, "{r:?}");
}

on_every_bus!(config_changes_reach_the_running_game);

// ---- the admin page in a real browser ----

async fn set_body(b: &Browser, text: &str) {
    let area = el(b, "#body").await;
    area.clear().await.unwrap();
    area.send_keys(text).await.unwrap();
}

const PASSWORD: &str = "correct horse battery";

// Long: one scenario, told in order.
#[tokio::test]
async fn staff_change_the_game_from_the_admin_page_in_chromium() {
    let stack = Stack::start(BusKind::InProcess).await;
    stack.add_staff("ann", PASSWORD);
    let page: SocketAddr = stack.config_page.unwrap();
    let base = format!("http://{page}");
    let driver = Driver::start();
    let b = driver.browser().await;

    let mut player = stack.player(11).await;
    player.request(cmd::CHAT_JOIN, &Room::new("lobby")).await;
    say(&mut player, "lobby", &"x".repeat(12)).await.unwrap();

    // Every page is behind the sign-in; a wrong password is refused.
    b.goto(&format!("{base}/docs/chat")).await.unwrap();
    at(&b, "/login").await;
    type_into(&b, "#username", "ann").await;
    type_into(&b, "#password", "wrong password!").await;
    click(&b, "#signin").await;
    assert_eq!(
        text_of(&b, "#signin-error").await,
        "Wrong username or password."
    );
    screenshot(&b, "signin").await;
    type_into(&b, "#password", PASSWORD).await;
    click(&b, "#signin").await;
    // Back where we were going.
    at(&b, "/docs/chat").await;
    assert!(text_of(&b, "#live-version").await.contains("v1"));

    // The list of documents.
    b.goto(&base).await.unwrap();
    let list = text_of(&b, "#documents").await;
    assert!(
        list.contains("chat") && list.contains("economy") && list.contains("system"),
        "{list}"
    );
    screenshot(&b, "documents").await;
    click_link(&b, "chat").await;
    at(&b, "/docs/chat").await;

    // A value of the wrong type: the editor says what is wrong, inline
    // (live while typing, and again on review), and nothing is published.
    set_body(&b, r#"{"max_message_len": "ten"}"#).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = text_of(&b, "#live-check").await;
        if live.contains("max_message_len") {
            break;
        }
        assert!(Instant::now() < deadline, "no live validation: {live:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&b, "#review").await;
    at(&b, "/docs/chat/review").await;
    let errors = text_of(&b, "#errors").await;
    assert!(
        errors.contains("/max_message_len") && errors.contains("integer"),
        "{errors}"
    );
    screenshot(&b, "validation-error").await;

    // A valid change: reviewed as a diff against the live version, then
    // published.
    set_body(&b, r#"{"max_message_len": 10}"#).await;
    type_into(&b, "#comment", "shorter chat lines").await;
    click(&b, "#review").await;
    // The review page is the one with the publish button.
    el(&b, "#publish").await;
    let diff = text_of(&b, "#diff").await;
    let line = |sign: char, value: &str| {
        diff.lines().any(|l| {
            l.trim_start().starts_with(sign)
                && l.trim_end()
                    .ends_with(&format!("\"max_message_len\": {value}"))
        })
    };
    assert!(line('-', "1024") && line('+', "10"), "{diff}");
    screenshot(&b, "review").await;
    click(&b, "#publish").await;
    assert!(text_of(&b, "#notice").await.contains("Published version 2"));
    let took = until_chat_allows(&mut player, 12, false).await;
    eprintln!("published on the page; the game refused 12 characters {took:?} later");

    // History, and a one-click rollback.
    click_link(&b, "History").await;
    let history = text_of(&b, "#history").await;
    assert!(
        history.contains("shorter chat lines") && history.contains("ann"),
        "{history}"
    );
    screenshot(&b, "history").await;
    click(&b, "#rollback-1").await;
    assert!(
        text_of(&b, "#notice")
            .await
            .contains("Rolled back to version 1")
    );
    let took = until_chat_allows(&mut player, 12, true).await;
    eprintln!("rolled back on the page; the game accepted 12 characters {took:?} later");

    // The audit log has both, with who and which versions.
    click_link(&b, "Audit log").await;
    let audit = text_of(&b, "#audit").await;
    assert!(
        audit.contains("rollback") && audit.contains("v2 → v3"),
        "{audit}"
    );
    assert!(
        audit.contains("publish") && audit.contains("v1 → v2"),
        "{audit}"
    );
    screenshot(&b, "audit").await;

    // Signing out ends the session: the pages are closed again.
    click(&b, "header button").await;
    at(&b, "/login").await;
    b.goto(&format!("{base}/audit")).await.unwrap();
    at(&b, "/login").await;
    assert!(text_of(&b, "body").await.contains("Sign in"));
    b.close().await.unwrap();
}
