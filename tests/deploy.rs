//! The Docker layout in `deploy/`, checked without a Docker engine:
//! `docker-compose config` accepts the compose file (and refuses it, naming
//! the variable, while a secret is unset); every Warren service has the
//! health check; Prometheus scrapes services the file has; the Grafana
//! dashboard is valid JSON whose every Warren metric is one Warren serves.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, path::Path, process::Command};

const SECRETS: [(&str, &str); 4] = [
    ("WARREN_ADMIN_TOKEN", "t0ken"),
    ("POSTGRES_PASSWORD", "pg"),
    ("RABBITMQ_PASSWORD", "rb"),
    ("RABBITMQ_ERLANG_COOKIE", "cookie"),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `docker-compose -f deploy/docker-compose.yml ARGS` with `env`: whether
/// it succeeded, and what it printed.
fn compose(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new("docker-compose")
        .arg("-f")
        .arg(root().join("deploy/docker-compose.yml"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("docker-compose runs (scripts/test.sh installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_compose_file_is_valid_and_holds_the_production_layout() {
    let (ok, services) = compose(&["config", "--services"], &SECRETS);
    assert!(ok, "{services}");
    let services: BTreeSet<&str> = services.lines().collect();
    for wanted in [
        "rabbit1",
        "rabbit2",
        "rabbit3",
        "postgres",
        "keys",
        "gold-1",
        "gold-2",
        "login-1",
        "login-2",
        "connector-1",
        "connector-2",
        "game-0a",
        "game-0b",
        "game-1a",
        "game-1b",
        "config-svc",
        "prometheus",
        "grafana",
    ] {
        assert!(services.contains(wanted), "{wanted} in {services:?}");
    }

    // Every Warren process has the health check; the games of a shard are
    // standbys of each other, and every process knows the three nodes.
    let (ok, config) = compose(&["config"], &SECRETS);
    assert!(ok, "{config}");
    let warren = services
        .iter()
        .filter(|s| {
            ["gold", "login", "connector", "game", "config"]
                .iter()
                .any(|p| s.starts_with(p))
        })
        .count();
    assert_eq!(warren, 11);
    let count = |line: &str| config.lines().filter(|l| l.trim_start() == line).count();
    assert_eq!(count("- health"), warren, "a health check each:\n{config}");
    assert_eq!(count("WARREN_GAME__STANDBY: \"true\""), 4, "{config}");
    assert_eq!(
        config.matches("@rabbit3:5672/%2f\"]'").count(),
        warren,
        "every process knows the three nodes:\n{config}"
    );

    // A secret left unset stops it, naming the variable.
    let (ok, said) = compose(&["config"], &SECRETS[1..]);
    assert!(!ok, "no admin token, no deployment");
    assert!(said.contains("WARREN_ADMIN_TOKEN"), "{said}");
}

#[test]
fn prometheus_scrapes_services_of_the_compose_file() {
    let (ok, services) = compose(&["config", "--services"], &SECRETS);
    assert!(ok, "{services}");
    let services: BTreeSet<&str> = services.lines().collect();
    let scrape = std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml")).unwrap();
    let mut targets = 0;
    for target in scrape
        .split('"')
        .filter(|t| t.contains(':') && !t.contains(' '))
    {
        let host = target.split(':').next().unwrap();
        assert!(services.contains(host), "{target}: no service {host}");
        targets += 1;
    }
    assert_eq!(targets, 2 + 4 + 2 + 2 + 1 + 3, "{scrape}");
}

#[test]
fn the_dashboard_shows_only_metrics_warren_serves() {
    let text = std::fs::read_to_string(root().join("deploy/grafana/warren.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    // Where Warren names its metrics (a connector's counters are
    // warren_connector_<counter>_total).
    let sources: String = [
        "connector/src/admin.rs",
        "connector/src/stats.rs",
        "game/src/admin.rs",
        "http/src/calls.rs",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(root().join(f)).unwrap())
    .collect();
    for panel in panels {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            for metric in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("warren_"))
            {
                let counter = metric
                    .strip_prefix("warren_connector_")
                    .and_then(|m| m.strip_suffix("_total"))
                    .map(|c| format!("    {c}: "));
                let served = sources.contains(&format!("\"{metric}\""))
                    || counter.is_some_and(|c| sources.contains(&c));
                assert!(
                    served,
                    "{metric} (panel {}) is not a Warren metric",
                    panel["title"]
                );
            }
        }
    }
}
