//! The game's debug console: `warren debug` and Prometheus `/metrics`.

use std::time::Duration;

use warren_test_support::eventually;

/// How long the scrape waits for a call to be counted.
const STEP: Duration = Duration::from_secs(15);

use crate::{
    helpers::{BusKind, Stack, http_get},
    on_every_bus,
};

on_every_bus!(the_console_shows_every_service_and_metrics_scrape);

async fn the_console_shows_every_service_and_metrics_scrape(kind: BusKind) {
    let stack = Stack::start_with(kind, &[]).await;
    let mut c = stack.player(1).await;
    for _ in 0..25 {
        c.echo(b"\x80").await;
    }
    let (ok, table) = stack.warren_admin("debug", &[]);
    assert!(ok, "{table}");
    let echo = table
        .lines()
        .find(|l| l.starts_with("echo "))
        .unwrap_or_else(|| panic!("no echo line in:\n{table}"));
    let columns: Vec<&str> = echo.split_whitespace().collect();
    // service thread mailbox messages …
    assert!(
        columns[1].parse::<u64>().unwrap() > 0,
        "a thread id: {echo}"
    );
    assert_eq!(columns[3], "25", "messages handled: {echo}");
    assert!(
        table
            .lines()
            .any(|l| l == "bus: up; connections rebuilt: 0"),
        "the console says how the bus is:\n{table}"
    );
    for service in ["chat", "wallet", "session", "announce"] {
        assert!(
            table.lines().any(|l| l.starts_with(service)),
            "{service} missing:\n{table}"
        );
    }

    let (status, metrics) = http_get(stack.admin, "/metrics", &stack.admin_token()).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("# TYPE warren_service_messages_total counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warren_service_messages_total{service=\"echo\"} 25"),
        "{metrics}"
    );
    let (status, _) = http_get(stack.admin, "/metrics", "wrong-token").await;
    assert_eq!(status, 401);

    // The connector's side: its counters, and Prometheus.
    let url = format!("http://{}", stack.connector_admins[0]);
    let (ok, lines) = stack.warren_admin("debug", &["--connector", &url]);
    assert!(ok, "{lines}");
    let value = |name: &str| {
        lines
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{lines}"))
    };
    assert_eq!(
        (value("online"), value("logins"), value("frames_in")),
        (1, 1, 25)
    );
    assert!(value("bytes_in") > 0 && value("bytes_out") > 0);
    assert_eq!(value("bus_rebuilds"), 0, "{lines}");
    assert!(
        lines
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["bus_up", "true"]),
        "the console says the bus is up:\n{lines}"
    );
    let (status, metrics) =
        http_get(stack.connector_admins[0], "/metrics", &stack.admin_token()).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("warren_connector_logins_total{connector="),
        "{metrics}"
    );
    let (status, _) = http_get(stack.connector_admins[0], "/v1/stats", "nope").await;
    assert_eq!(status, 401);
}

on_every_bus!(one_service_tells_its_state_and_can_be_traced);

async fn one_service_tells_its_state_and_can_be_traced(kind: BusKind) {
    let stack = Stack::start_with(kind, &[]).await;
    let mut a = stack.player(1).await;
    let mut b = stack.player(2).await;
    for c in [&mut a, &mut b] {
        let (r, _) = c
            .request(
                warren_proto::cmd::CHAT_JOIN,
                &serde_json::json!({"room": "lobby"}),
            )
            .await;
        assert_eq!(r.cmd, warren_proto::cmd::CHAT_JOIN);
    }
    let (ok, out) = stack.warren_admin("debug", &["--service", "chat"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stats"]["name"], "chat");
    assert_eq!(v["state"]["rooms"], 1, "{v}");
    assert_eq!(v["state"]["players_in_rooms"], 2, "{v}");
    assert_eq!(v["state"]["largest_room"]["members"], 2, "{v}");
    let (ok, out) = stack.warren_admin("debug", &["--service", "session"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"]["online"], 2, "{v}");
    let (ok, out) = stack.warren_admin("debug", &["--service", "nope"]);
    assert!(!ok && out.contains("not_found"), "{out}");

    // Tracing one service logs each of its messages, and only its.
    let (ok, out) = stack.warren_admin("debug", &["--trace", "echo=on"]);
    assert!(ok && out.contains("\"tracing\":true"), "{out}");
    a.echo(b"\x80").await;
    a.request(
        warren_proto::cmd::CHAT_LEAVE,
        &serde_json::json!({"room": "lobby"}),
    )
    .await;
    let traced = |log: &str, service: &str| {
        log.lines().any(|l| {
            l.contains("warren::trace")
                && (l.contains(&format!("service=\"{service}\""))
                    || l.contains(&format!("service={service} ")))
        })
    };
    let wait = std::time::Duration::from_secs(5);
    let log = eventually("a trace line of echo", wait, async || {
        let log = stack.game_log();
        traced(&log, "echo").then_some(log)
    })
    .await;
    assert!(!traced(&log, "chat"), "chat is not traced:\n{log}");
    let (ok, out) = stack.warren_admin("debug", &["--trace", "echo=off"]);
    assert!(ok && out.contains("\"tracing\":false"), "{out}");
    let (ok, _) = stack.warren_admin("debug", &["--trace", "echo=maybe"]);
    assert!(!ok);
}

/// gold and config-svc serve `/metrics` too (behind the operators' token),
/// every call counted per RPC: a guest sign-in calls gold, the game's
/// configuration watch calls config-svc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gold_and_config_svc_count_their_calls_for_prometheus() {
    let stack = Stack::start_full(BusKind::RabbitMq).await;
    let (status, reply) = crate::helpers::http_post(
        stack.login.unwrap(),
        "/v1/guest",
        &serde_json::json!({"device_id": "metrics"}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let token = stack.admin_token();
    let gold = stack.gold_admin.unwrap();
    let (status, text) = http_get(gold, "/metrics", &token).await;
    assert_eq!(status, 200, "{text}");
    let guest = text
        .lines()
        .find(|l| l.starts_with("warren_rpc_calls_total{method=\"/warren.gold.v1.Gold/"))
        .unwrap_or_else(|| panic!("no gold RPC counted:\n{text}"));
    assert!(!guest.ends_with(" 0"), "{guest}");
    let (status, _) = http_get(gold, "/metrics", "wrong-token").await;
    assert_eq!(status, 401);

    let page = stack.config_page.unwrap();
    let text = eventually("config-svc counts the game's watch", STEP, async || {
        let (status, text) = http_get(page, "/metrics", &token).await;
        assert_eq!(status, 200, "{text}");
        text.contains("warren_rpc_calls_total{method=\"/warren.config.v1.Config/")
            .then_some(text)
    })
    .await;
    assert!(
        text.contains("# TYPE warren_rpc_errors_total counter"),
        "{text}"
    );
}
