//! The numbers the docs state are the code's: docs/settings.md's settings
//! block names every setting at its default, and the limits docs/PROTOCOL.md
//! and the README quote are the defaults in force. A changed default fails
//! here until the docs say so too.

#![allow(clippy::unwrap_used)]

use figment::{
    Figment,
    providers::{Format, Toml},
};
use serde_json::Value;
use warren::settings::Settings;

fn read(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first fenced TOML block of a Markdown file.
fn toml_block(md: &str) -> &str {
    let start = md.find("```toml\n").expect("a ```toml block") + "```toml\n".len();
    let len = md[start..].find("```").expect("the block's end");
    &md[start..start + len]
}

/// Every leaf of a JSON value as (dotted path, value).
fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, v, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

fn defaults() -> Value {
    serde_json::to_value(Settings::default()).unwrap()
}

fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, k| v.get(k))
}

#[test]
fn settings_md_states_every_setting_at_its_default() {
    let md = read("docs/settings.md");
    let block = toml_block(&md);
    let documented: Value = Figment::from(Toml::string(block)).extract().unwrap();
    let defaults = defaults();
    let mut stated = Vec::new();
    leaves("", &documented, &mut stated);
    assert!(stated.len() > 50, "the block was read: {stated:?}");
    for (path, value) in &stated {
        let default = at(&defaults, path)
            .unwrap_or_else(|| panic!("docs/settings.md names {path}, which is no setting"));
        assert_eq!(
            &value, &default,
            "docs/settings.md says {path} = {value}; the default is {default}"
        );
    }
    // Every setting is there, set or (when it has no default) commented out.
    let mut all = Vec::new();
    leaves("", &defaults, &mut all);
    for (path, _) in all {
        let key = path.rsplit('.').next().unwrap();
        assert!(
            block.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} =")) || l.starts_with(&format!("{key}="))
            }),
            "docs/settings.md does not name {path}"
        );
    }
}

/// 2048 → "2,048", as the prose writes numbers.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count as the prose writes it: "64 KiB", "1 MiB".
fn bytes(n: u64) -> String {
    if n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else {
        format!("{} KiB", n / 1024)
    }
}

fn secs(d: std::time::Duration) -> String {
    format!("{} s", d.as_secs())
}

// Long: a table of quotes.
#[test]
fn protocol_and_readme_quote_the_defaults_in_force() {
    let s = Settings::default();
    let c = &s.connector;
    let h = &s.http;
    let protocol = read("docs/PROTOCOL.md");
    let readme = read("README.md");
    let architecture = read("ARCHITECTURE.md");
    let shop: Vec<String> = s
        .game
        .shop_items
        .iter()
        .map(|(item, price)| format!("{item} {price}"))
        .collect();
    let quotes: Vec<(&str, &str, String)> = vec![
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!("within\n  {} is closed", secs(c.login_timeout_ms)),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "for {} is kicked with `idle_timeout`",
                secs(c.idle_timeout_ms)
            ),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!("over {} closes", bytes(c.max_frame_bytes as u64)),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "at most {} frames and\n  {} waiting",
                grouped(c.outbound_queue as u64),
                bytes(c.outbound_queue_bytes as u64)
            ),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "send {} frames a second sustained, with\n  bursts of {}",
                c.rate_limit_per_sec, c.rate_limit_burst
            ),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "than {} a second sustained, with bursts of {}",
                bytes(c.byte_limit_per_sec.into()),
                bytes(c.byte_limit_burst.into())
            ),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "within {} (`connector.kick_cooldown_ms`)",
                secs(c.kick_cooldown_ms)
            ),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "within {} (`connector.request_timeout_ms`)",
                secs(c.request_timeout_ms)
            ),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "at most {} requests per socket",
                grouped(c.max_in_flight as u64)
            ),
        ),
        (
            "README.md",
            &readme,
            format!(
                "panics {} times within {}",
                s.game.restart_intensity,
                secs(s.game.restart_period_ms)
            ),
        ),
        (
            "README.md",
            &readme,
            format!("more than {} in a minute", s.game.restart_storm),
        ),
        (
            "README.md",
            &readme,
            format!("longer than {} is", secs(s.game.stuck_threshold_ms)),
        ),
        (
            "ARCHITECTURE.md",
            &architecture,
            format!(
                "per-socket outbound queue ({} frames or {};",
                grouped(c.outbound_queue as u64),
                bytes(c.outbound_queue_bytes as u64)
            ),
        ),
        (
            "ARCHITECTURE.md",
            &architecture,
            format!(
                "(`game.confirm_window`, {};",
                grouped(s.game.confirm_window as u64)
            ),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "text at most {} characters (`game.chat_max_text`)",
                grouped(s.game.chat_max_text as u64)
            ),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "The default shop: {}; the daily reward is {}",
                shop.join(", "),
                s.game.daily_reward
            ),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "over {} calls a second per player (bursts of {}), or {} per client address (bursts of {};",
                h.uid_rate_per_sec, h.uid_rate_burst, h.address_rate_per_sec, h.address_rate_burst
            ),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "a body over {} (`http.max_body_bytes`)",
                bytes(h.max_body_bytes as u64)
            ),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "or {} calls already wait on this gateway",
                grouped(h.max_in_flight as u64)
            ),
        ),
        (
            "docs/PROTOCOL.md",
            &protocol,
            format!(
                "no answer within {} (`http.request_timeout_ms`)",
                secs(h.request_timeout_ms)
            ),
        ),
        (
            "ARCHITECTURE.md",
            &architecture,
            format!(
                "(`http.max_in_flight`, {}; full → 503 `overloaded`) and its rate-limit buckets (`http.max_tracked`, {};",
                grouped(h.max_in_flight as u64),
                grouped(h.max_tracked as u64)
            ),
        ),
    ];
    for (file, text, quote) in quotes {
        // Prose wraps: compare with runs of whitespace made one space.
        let squash = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            squash(text).contains(&squash(&quote)),
            "{file} should say {quote:?} (the default in force)"
        );
    }
    assert_eq!(
        s.game.restart_storm_period_ms,
        std::time::Duration::from_secs(60),
        "the README says \"in a minute\""
    );
}
