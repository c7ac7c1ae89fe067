//! The example web page (examples/web/) in a real headless Chromium, served
//! by the embedded default: a guest login, calls over HTTP, chat beside a
//! MessagePack player and an announcement over the JSON socket — checked
//! by what a person sees on the page.

use std::time::Duration;

use warren_proto::cmd;

use crate::{
    browser::{Driver, click, click_when_enabled, el, screenshot, type_into, until_text},
    helpers::{BusKind, Room, Said, Say, Stack, decode},
};

/// The phone player's uid: far above the guests gold numbers from 1.
const PHONE: u64 = 900_001;

/// The number a page's `text` shows between `before` and `after`.
fn number_between<T: std::str::FromStr>(text: &str, before: &str, after: &str) -> T
where
    T::Err: std::fmt::Display,
{
    let number = text
        .strip_prefix(before)
        .and_then(|t| t.strip_suffix(after));
    let number = number.unwrap_or_else(|| panic!("{text:?} is not {before:?}N{after:?}"));
    number.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

// Long: one scenario, told in order.
#[tokio::test]
async fn the_web_page_plays_over_http_and_a_json_socket_in_chromium() {
    let stack = Stack::start(BusKind::InProcess).await;
    let driver = Driver::start();
    let b = driver.browser().await;
    b.goto(&format!("http://{}/", stack.http)).await.unwrap();

    // A guest login.
    click_when_enabled(&b, "#guest").await;
    let who = until_text(&b, "#who", |t| t.starts_with("Playing as uid")).await;
    let uid: u64 = number_between(&who, "Playing as uid ", ".");

    // Calls over HTTP.
    el(&b, "#echo-text").await.clear().await.unwrap();
    type_into(&b, "#echo-text", "hello from Chromium ☃").await;
    click(&b, "#echo").await;
    until_text(&b, "#echo-reply", |t| t == "Echoed: hello from Chromium ☃").await;
    click(&b, "#balance").await;
    let balance = until_text(&b, "#wallet", |t| t.starts_with("Balance:")).await;
    let before: i64 = number_between(&balance, "Balance: ", " gold");
    click(&b, "#daily").await;
    let after = format!("Daily reward: +100; balance: {} gold", before + 100);
    until_text(&b, "#wallet", |t| t == after).await;
    click(&b, "#daily").await;
    until_text(&b, "#error", |t| t.starts_with("422 already_claimed:")).await;
    click(&b, "#items").await;
    until_text(&b, "#wallet", |t| {
        t.starts_with("Shop:") && t.contains("potion 50") && t.contains("sword 300")
    })
    .await;

    // The JSON socket: chat with a MessagePack player.
    until_text(&b, "#socket", |t| t == format!("Connected as uid {uid}.")).await;
    click(&b, "#join").await;
    until_text(&b, "#members", |t| t == format!("In lobby with: {uid}")).await;
    let mut phone = stack.player(PHONE).await;
    let (reply, _) = phone.request(cmd::CHAT_JOIN, &Room::new("lobby")).await;
    assert_eq!(reply.cmd, cmd::CHAT_JOIN, "{reply:?}");
    // Its own line may come before the reply: kept for next_push.
    let f = phone
        .request_keeping_pushes(cmd::CHAT_SEND, &Say::new("lobby", "hi from a phone"))
        .await;
    assert_eq!(f.cmd, cmd::CHAT_SEND, "{f:?}");
    let phone_line = format!("[lobby] {PHONE}: hi from a phone");
    until_text(&b, "#chat", |t| t.contains(&phone_line)).await;
    type_into(&b, "#text", "hi from the web").await;
    click(&b, "#say").await;
    let web_line = format!("[lobby] {uid}: hi from the web");
    let chat = until_text(&b, "#chat", |t| t.contains(&web_line)).await;
    assert_eq!(chat, format!("{phone_line}\n{web_line}"), "each line once");
    let heard: Vec<Said> = [phone.next_push().await, phone.next_push().await]
        .iter()
        .map(decode)
        .collect();
    assert_eq!(
        heard.iter().map(|s| (s.from, &*s.text)).collect::<Vec<_>>(),
        [(PHONE, "hi from a phone"), (uid, "hi from the web")]
    );

    // An operator's announcement reaches the page.
    let (ok, printed) = stack.announce(&["--text", "doors open at noon", "--level", "urgent"]);
    assert!(ok, "{printed}");
    until_text(&b, "#announcements", |t| t == "doors open at noon").await;
    let urgent = el(&b, "#announcements li")
        .await
        .attr("class")
        .await
        .unwrap();
    assert_eq!(urgent.as_deref(), Some("urgent"));
    screenshot(&b, "web-page").await;
    assert_eq!(phone.next_push().await.cmd, cmd::ANNOUNCEMENT);
    assert!(
        phone
            .try_next_event(Duration::from_millis(300))
            .await
            .is_none(),
        "the phone heard each line once"
    );
    b.close().await.unwrap();
}
