//! The command line's client for the admin endpoints: `warren debug`
//! (services, one service, tracing, a connector) and `warren announce`.
//! Everything it prints goes to stdout.

#![allow(clippy::print_stdout)]

use anyhow::{Context as _, bail};

use crate::{
    parts::{admin_token, admin_url},
    settings::Settings,
};

/// An HTTP client for the admin endpoints (trusting `tls.ca`, else
/// `tls.cert`, over HTTPS).
fn admin_agent(settings: &Settings) -> anyhow::Result<ureq::Agent> {
    let timeout = std::time::Duration::from_secs(30);
    Ok(warren_kit::tls::client_agent(&settings.tls, timeout)?)
}

fn admin_base(settings: &Settings, admin: Option<String>) -> String {
    admin.unwrap_or_else(|| admin_url(settings, settings.game.admin_listen))
}

/// Calls an admin endpoint (`what` names whose, for the error): `GET` when
/// `json` is None, else `POST` with it. Returns the status and the body.
fn admin_call(
    settings: &Settings,
    what: &str,
    base: &str,
    path: &str,
    json: Option<serde_json::Value>,
) -> anyhow::Result<(ureq::http::StatusCode, String)> {
    let auth = format!("Bearer {}", admin_token(settings)?);
    let url = format!("{base}{path}");
    let resp = match json {
        None => admin_agent(settings)?
            .get(&url)
            .header("Authorization", &auth)
            .call(),
        Some(body) => admin_agent(settings)?
            .post(&url)
            .header("Authorization", &auth)
            .send_json(&body),
    };
    let mut resp =
        resp.with_context(|| format!("reaching the {what}'s admin endpoint at {base}"))?;
    let status = resp.status();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Ok((status, body))
}

/// POSTs `body` to the game's admin endpoint (`admin`, or the one the
/// settings name); the status and the body.
pub(crate) fn post_game(
    settings: &Settings,
    admin: Option<String>,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<(ureq::http::StatusCode, String)> {
    let base = admin_base(settings, admin);
    admin_call(settings, "game", &base, path, Some(body))
}

/// `warren debug`: a connector (`--connector URL`), one service
/// (`--service NAME`), a tracing switch (`--trace NAME=on|off`), or every
/// service of the game.
pub(crate) fn debug_command(
    settings: &Settings,
    json: bool,
    admin: Option<String>,
    connector: Option<String>,
    service: Option<String>,
    trace: Option<String>,
) -> anyhow::Result<()> {
    match (connector, service, trace) {
        (Some(url), _, _) => debug_connector(settings, json, &url),
        (_, Some(name), _) => debug_service(settings, admin, &name),
        (_, _, Some(switch)) => debug_trace(settings, admin, &switch),
        _ => debug(settings, json, admin),
    }
}

fn debug(settings: &Settings, json: bool, admin: Option<String>) -> anyhow::Result<()> {
    let base = admin_base(settings, admin);
    let format = if json { "json" } else { "text" };
    let path = format!("/v1/services?format={format}");
    let (status, body) = admin_call(settings, "game", &base, &path, None)?;
    print!("{body}");
    if !status.is_success() {
        bail!("the admin endpoint answered {status}");
    }
    Ok(())
}

/// `warren debug --service NAME`: one service's counters and state, as
/// indented JSON.
fn debug_service(settings: &Settings, admin: Option<String>, name: &str) -> anyhow::Result<()> {
    let base = admin_base(settings, admin);
    let path = format!("/v1/services/{name}");
    let (status, body) = admin_call(settings, "game", &base, &path, None)?;
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
        Err(_) => println!("{body}"),
    }
    if !status.is_success() {
        bail!("the admin endpoint answered {status}");
    }
    Ok(())
}

/// `warren debug --trace NAME=on|off`.
fn debug_trace(settings: &Settings, admin: Option<String>, switch: &str) -> anyhow::Result<()> {
    let (name, on) = match switch.split_once('=') {
        Some((name, "on")) => (name, true),
        Some((name, "off")) => (name, false),
        _ => bail!("--trace takes NAME=on or NAME=off, not {switch:?}"),
    };
    let base = admin_base(settings, admin);
    let path = format!("/v1/services/{name}/trace");
    let body = serde_json::json!({ "on": on });
    let (status, body) = admin_call(settings, "game", &base, &path, Some(body))?;
    println!("{body}");
    if !status.is_success() {
        bail!("the admin endpoint answered {status}");
    }
    Ok(())
}

fn debug_connector(settings: &Settings, json: bool, base: &str) -> anyhow::Result<()> {
    let (status, body) = admin_call(settings, "connector", base, "/v1/stats", None)?;
    if !status.is_success() {
        println!("{body}");
        bail!("the admin endpoint answered {status}");
    }
    if json {
        println!("{body}");
        return Ok(());
    }
    let mut stats: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&body)?;
    let services = stats.remove("services");
    for (name, value) in stats {
        println!("{name:<22} {value}");
    }
    if let Some(services) = services {
        let services: Vec<warren_bus::Registration> = serde_json::from_value(services)?;
        print_services(&services);
    }
    Ok(())
}

/// The gateway's registered services, one line each.
fn print_services(services: &[warren_bus::Registration]) {
    println!();
    println!(
        "{:<12} {:<26} {:>5} {:<14} {:>9} {:>9} {:>9} {:>6} {:>7} {:>7}",
        "service",
        "address",
        "shard",
        "cmds",
        "lease",
        "calls",
        "messages",
        "flight",
        "errors",
        "refused"
    );
    for s in services {
        let cmds = if s.cmds.is_empty() {
            "*".to_owned()
        } else {
            s.cmds
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let lease = if s.live {
            format!("{} ms", s.lease_age.as_millis())
        } else {
            "lapsed".to_owned()
        };
        println!(
            "{:<12} {:<26} {:>5} {:<14} {:>9} {:>9} {:>9} {:>6} {:>7} {:>7}",
            s.name,
            s.address,
            s.shard,
            cmds,
            lease,
            s.calls,
            s.messages,
            s.in_flight,
            s.errors,
            s.refused
        );
    }
}

/// `warren debug --push-server URL`: the registered connectors, and what
/// was forwarded, dropped and refused.
pub(crate) fn debug_push_server(settings: &Settings, json: bool, base: &str) -> anyhow::Result<()> {
    let (status, body) = admin_call(settings, "push server", base, "/v1/stats", None)?;
    if !status.is_success() || json {
        println!("{body}");
        if !status.is_success() {
            bail!("the push server's console answered {status}");
        }
        return Ok(());
    }
    let stats: warren_bus::PushServerStats = serde_json::from_str(&body)?;
    println!("{:<24} {:<32} registered", "connector", "address");
    for c in &stats.connectors {
        let secs = warren_proto::time::unix_ms().saturating_sub(c.since_unix_ms) / 1000;
        println!("{:<24} {:<32} {secs} s ago", c.id, c.address);
    }
    println!();
    println!(
        "forwarded {}  dropped {}  refused registrations {}",
        stats.forwarded, stats.dropped, stats.refused
    );
    Ok(())
}

pub(crate) fn announce(
    settings: &Settings,
    text: String,
    level: String,
    uids: Vec<u64>,
    in_secs: Option<u64>,
    admin: Option<String>,
) -> anyhow::Result<()> {
    let base = admin_base(settings, admin);
    let body = serde_json::json!({
        "text": text,
        "level": level,
        "uids": if uids.is_empty() { None } else { Some(uids) },
        // At least `s` seconds from now: the next whole second, plus `s`.
        "at": in_secs.map(|s| warren_proto::time::unix_ms().div_ceil(1000) + s),
    });
    let (status, reply) = admin_call(settings, "game", &base, "/v1/announcements", Some(body))?;
    println!("{reply}");
    if !status.is_success() {
        bail!("the announcement was refused ({status})");
    }
    Ok(())
}
