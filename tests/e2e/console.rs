//! The game's debug console: `warren debug` and Prometheus `/metrics`.

use crate::{
    helpers::{BusKind, Stack, http_get},
    on_both_buses,
};

on_both_buses!(the_console_shows_every_service_and_metrics_scrape);

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
