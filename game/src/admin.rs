//! The game's admin endpoint, for operators (and `warren announce`): HTTP
//! with JSON, every route behind a bearer token, loopback by default.
//!
//! - `POST /v1/announcements` `{text, level?, uids?, at?}` → 200 with the
//!   outcome (`state: sent`, `delivered`), or 202 when scheduled (`state:
//!   scheduled`, `id`).
//! - `GET /v1/announcements/{id}` → the outcome, 404 if unknown.
//! - `GET /v1/services` → every service's counters (JSON); with
//!   `?format=text`, a table for people (`warren debug`).
//! - `GET /v1/services/{name}` → `{stats, state}`: one service's counters
//!   and its own summary of its state, computed on its thread
//!   (`warren debug --service NAME`).
//! - `POST /v1/services/{name}/trace` `{"on": bool}` → logs every message
//!   that service handles (target `warren::trace`), or stops
//!   (`warren debug --trace NAME=on|off`).
//! - `POST /v1/revoke` `{uid, reason: "banned" | "logged_out", sid?,
//!   not_before_ms?}` → 200 `{"revoked": uid}` once the bus took it: every
//!   connector refuses the player's tokens issued before `not_before_ms`
//!   (unix ms; default now) and kicks its socket with `reason` (only
//!   the socket of sign-in `sid`, when given). login (logout) and `warren
//!   ban` call it; 503 `unavailable` while the bus is down.
//! - `GET /metrics` → the same figures for Prometheus (send the token as a
//!   bearer token in the scrape config).
//!
//! Errors: `{"error": {"code", "message"}}`: 401 `unauthorized`, 400
//! `bad_request`, 404 `not_found`, 413 `body_too_large` (over 1 MiB), 503
//! `busy` (the announce service's mailbox is full, or it did not answer
//! within 5 s).

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tokio::sync::oneshot;
use tracing::info;
use warren_http::{
    ApiError, JsonBody,
    metrics::{self, Family, Kind},
    require_bearer,
};
use warren_runtime::{GameHandle, Holding, ServiceStats};

use crate::services::announce::{AnnounceRequest, Announcement, Outcome};

struct Admin {
    game: GameHandle,
}

impl Admin {
    async fn ask<T>(
        &self,
        req: AnnounceRequest,
        answer: oneshot::Receiver<T>,
    ) -> Result<T, ApiError> {
        let busy = || ApiError::unavailable("busy", "the announce service is busy, try again");
        self.game.send("announce", req).map_err(|_| busy())?;
        tokio::time::timeout(Duration::from_secs(5), answer)
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(busy)
    }
}

async fn announce(
    State(admin): State<Arc<Admin>>,
    JsonBody(announcement): JsonBody<Announcement>,
) -> Result<Response, ApiError> {
    let (reply, answer) = oneshot::channel();
    let outcome = admin
        .ask(
            AnnounceRequest::Send {
                announcement,
                reply,
            },
            answer,
        )
        .await?
        .map_err(|why| ApiError::bad_request("bad_request", why))?;
    let status = if outcome.state == "scheduled" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(outcome)).into_response())
}

async fn status(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<u64>,
) -> Result<Json<Outcome>, ApiError> {
    let (reply, answer) = oneshot::channel();
    admin
        .ask(AnnounceRequest::Status { id, reply }, answer)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such announcement"))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    uid: u64,
    reason: String,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    not_before_ms: Option<u64>,
}

async fn revoke(
    State(admin): State<Arc<Admin>>,
    JsonBody(req): JsonBody<Revoke>,
) -> Result<Response, ApiError> {
    use warren_proto::cmd::kick;
    if ![kick::BANNED, kick::LOGGED_OUT].contains(&req.reason.as_str()) {
        return Err(ApiError::bad_request(
            "bad_request",
            "reason must be \"banned\" or \"logged_out\"",
        ));
    }
    if req.uid == 0 {
        return Err(ApiError::bad_request(
            "bad_request",
            "uid must be a uid (not 0)",
        ));
    }
    let not_before_ms = req
        .not_before_ms
        .unwrap_or_else(warren_proto::time::unix_ms);
    admin
        .game
        .revoke(
            warren_proto::Uid(req.uid),
            not_before_ms,
            req.sid,
            &req.reason,
        )
        .await
        .map_err(|e| {
            ApiError::unavailable("unavailable", format!("the bus did not take it: {e}"))
        })?;
    info!(uid = req.uid, reason = %req.reason, "revoked");
    Ok(Json(serde_json::json!({ "revoked": req.uid })).into_response())
}

#[derive(serde::Deserialize)]
struct Format {
    #[serde(default)]
    format: Option<String>,
}

/// The services table a person reads (`warren debug`), one line each.
fn services_text(stats: &[ServiceStats]) -> String {
    /// One line of the table: the widths live here once.
    fn row(c: [String; 10]) -> String {
        format!(
            "{:<12} {:>8} {:>7} {:>10} {:>9} {:>9} {:>10} {:>6} {:>8} {:>5}\n",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]
        )
    }
    let header = [
        "service", "thread", "mailbox", "messages", "mean_us", "max_us", "cpu_ms", "panics",
        "restarts", "stuck",
    ];
    let mut out = row(header.map(str::to_owned));
    for s in stats {
        out.push_str(&row([
            s.name.to_owned(),
            s.thread_id.to_string(),
            s.mailbox_depth.to_string(),
            s.messages.to_string(),
            s.handler_mean_us.to_string(),
            s.handler_max_us.to_string(),
            (s.cpu_us / 1000).to_string(),
            s.panics.to_string(),
            s.restarts.to_string(),
            s.stuck.to_string(),
        ]));
    }
    out
}

/// The same figures for Prometheus.
fn metrics_families(stats: &[ServiceStats]) -> Vec<Family<'_>> {
    type Get = fn(&ServiceStats) -> f64;
    let families: [(&str, Kind, &str, Get); 9] = [
        (
            "warren_service_messages_total",
            Kind::Counter,
            "Messages a service handled.",
            |s| s.messages as f64,
        ),
        (
            "warren_service_mailbox_depth",
            Kind::Gauge,
            "Messages waiting in a service's mailbox.",
            |s| s.mailbox_depth as f64,
        ),
        (
            "warren_service_overloaded_total",
            Kind::Counter,
            "Requests refused because the mailbox was full.",
            |s| s.overloaded as f64,
        ),
        (
            "warren_service_panics_total",
            Kind::Counter,
            "Handler panics caught.",
            |s| s.panics as f64,
        ),
        (
            "warren_service_restarts_total",
            Kind::Counter,
            "Restarts after too many panics.",
            |s| s.restarts as f64,
        ),
        (
            "warren_service_stuck_total",
            Kind::Counter,
            "Handlers reported stuck by the watchdog.",
            |s| s.stuck as f64,
        ),
        (
            "warren_service_cpu_seconds_total",
            Kind::Counter,
            "CPU time of the service's thread.",
            |s| s.cpu_us as f64 / 1e6,
        ),
        (
            "warren_service_handler_mean_seconds",
            Kind::Gauge,
            "Mean time of one handler call.",
            |s| s.handler_mean_us as f64 / 1e6,
        ),
        (
            "warren_service_handler_max_seconds",
            Kind::Gauge,
            "Longest handler call.",
            |s| s.handler_max_us as f64 / 1e6,
        ),
    ];
    families
        .into_iter()
        .map(|(name, kind, help, get)| Family {
            name,
            kind,
            help,
            samples: stats
                .iter()
                .map(|s| (vec![("service", s.name)], get(s)))
                .collect(),
        })
        .collect()
}

async fn services(
    State(admin): State<Arc<Admin>>,
    Query(format): Query<Format>,
) -> Result<Response, ApiError> {
    let stats = admin.game.stats();
    Ok(match format.format.as_deref() {
        Some("text") => {
            let bus = admin.game.bus_state();
            let state = if bus.up {
                "up"
            } else {
                "DOWN (requests are refused: unavailable)"
            };
            let footer = format!(
                "\nbus: {state}; connections rebuilt: {}\n{}\n",
                bus.rebuilds,
                admin.game.role().describe()
            );
            (services_text(&stats) + &footer).into_response()
        }
        _ => Json(stats).into_response(),
    })
}

/// One service: its counters and its own state summary.
async fn service(
    State(admin): State<Arc<Admin>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let Some(stats) = admin.game.stats().into_iter().find(|s| s.name == name) else {
        return Err(ApiError::not_found("no such service"));
    };
    let state = admin.game.summary(&name).await.ok_or_else(|| {
        ApiError::unavailable(
            "busy",
            "the service did not answer within 5 s (busy, or its mailbox is full)",
        )
    })?;
    Ok(Json(serde_json::json!({ "stats": stats, "state": state })).into_response())
}

#[derive(serde::Deserialize)]
struct TraceSwitch {
    on: bool,
}

/// Turns the tracing of one service on or off.
async fn trace(
    State(admin): State<Arc<Admin>>,
    Path(name): Path<String>,
    JsonBody(switch): JsonBody<TraceSwitch>,
) -> Result<Response, ApiError> {
    if !admin.game.set_tracing(&name, switch.on) {
        return Err(ApiError::not_found("no such service"));
    }
    Ok(Json(serde_json::json!({ "service": name, "tracing": switch.on })).into_response())
}

async fn metrics(State(admin): State<Arc<Admin>>) -> Response {
    let stats = admin.game.stats();
    let mut families = metrics_families(&stats);
    let role = admin.game.role();
    families.extend([
        Family {
            name: "warren_game_serving",
            kind: Kind::Gauge,
            help: "1 while this game serves its shard, 0 while it stands by.",
            samples: vec![(
                Vec::new(),
                f64::from(u8::from(role.holding() == Holding::Serving)),
            )],
        },
        Family {
            name: "warren_game_takeovers_total",
            kind: Kind::Counter,
            help: "Times this game took its shard over after standing by.",
            samples: vec![(Vec::new(), role.takeovers() as f64)],
        },
    ]);
    metrics::response(&families)
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves the admin endpoint on `listener` until `shutdown`.
pub(crate) async fn serve_admin(
    listener: warren_http::Listener,
    game: GameHandle,
    token: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AdminError> {
    let admin = Arc::new(Admin { game });
    let routes = Router::new()
        .route("/v1/announcements", post(announce))
        .route("/v1/announcements/{id}", get(status))
        .route("/v1/revoke", post(revoke))
        .route("/v1/services", get(services))
        .route("/v1/services/{name}", get(service))
        .route("/v1/services/{name}/trace", post(trace))
        .route("/metrics", get(metrics));
    let router = require_bearer(routes, token)
        .fallback(async || ApiError::not_found("no such endpoint"))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(admin);
    let addr = axum::serve::Listener::local_addr(&listener)?;
    info!(%addr, tls = listener.tls(), "game admin endpoint serving");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
