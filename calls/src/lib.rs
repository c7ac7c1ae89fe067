//! The HTTP call gateway (PROTOCOL.md §4): `POST /v1/call/{cmd}` with a
//! player's token and a JSON body reaches the service that owns the cmd
//! through the bus, like a socket's request, and the service's reply comes
//! back as the JSON response.
//!
//! The gateway is stateless: it holds no session, only the calls waiting
//! for their reply (bounded by `max_in_flight`, each by
//! `request_timeout_ms`). On the bus it is a connector without sockets: it
//! consumes the replies sent to its own id, and sends each call as an
//! `EventKind::Call` whose `conn` names the call. The game serves only the
//! cmds a service declares callable over HTTP (`Service::HTTP_CMDS`) and
//! answers the rest `unknown_cmd`. Pushes that reach the gateway (a
//! broadcast) are not for anyone here and are dropped.
//!
//! - [`settings`]: what can be tuned.
//! - `limits`: per-player and per-address rate limits, bounded.
//! - `tokens`: tokens verified recently, so a player's calls pay the
//!   signature check once per token, bounded.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod settings;
mod tokens;

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{
    Router,
    body::Bytes,
    extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Path, Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use tokio::sync::oneshot;
use tracing::{debug, warn};
use warren_bus::{Address, Bus, BusError, Done, Subscription};
use warren_connector::TokenVerifier;
use warren_http::ApiError;
use warren_proto::{
    BusEvent, BusPush, ConnId, ConnectorId, ErrorBody, EventKind, PushKind, Target, Uid,
    cmd::{self, code},
    decode_body,
    json::{body_to_json, json_to_body},
};

pub use settings::CallSettings;
use tokens::VerifiedTokens;
use warren_kit::limits::Limits;

/// A gateway: build it with [`Gateway::new`] (which starts consuming its
/// replies), then serve it with [`run`].
#[derive(Clone, Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    id: ConnectorId,
    settings: CallSettings,
    bus: Arc<dyn Bus>,
    verifier: Arc<TokenVerifier>,
    /// The calls waiting for their reply, by the conn id their event
    /// carried.
    waiting: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    /// Starts at the boot's nanosecond clock, so a gateway that restarts
    /// under the same id never reuses a call's id.
    next_call: AtomicU64,
    by_uid: Limits<Uid>,
    by_address: Limits<IpAddr>,
    tokens: VerifiedTokens,
}

/// What the game answered: the reply's cmd and body.
#[derive(Debug)]
struct Answer {
    cmd: u32,
    body: Bytes,
}

impl Gateway {
    /// Consumes this gateway's replies from `bus` (its id is
    /// `settings.id`, default `http-<pid>`).
    pub async fn new(
        settings: CallSettings,
        bus: Arc<dyn Bus>,
        verifier: Arc<TokenVerifier>,
    ) -> Result<Gateway, BusError> {
        let raw = settings
            .id
            .clone()
            .unwrap_or_else(|| format!("http-{}", std::process::id()));
        let id = ConnectorId::parse(&raw)
            .map_err(|e| BusError::Mismatch(format!("calls.id {raw:?}: {e}")))?;
        let replies = bus.subscribe_pushes(&id).await?;
        let tracked = settings.max_tracked;
        let shared = Arc::new(Shared {
            id,
            bus,
            verifier,
            waiting: Mutex::new(HashMap::new()),
            next_call: AtomicU64::new(warren_proto::time::unix_ms().wrapping_mul(1_000_000)),
            by_uid: Limits::new(
                f64::from(settings.uid_rate_per_sec),
                settings.uid_rate_burst,
                tracked,
            ),
            by_address: Limits::new(
                f64::from(settings.address_rate_per_sec),
                settings.address_rate_burst,
                tracked,
            ),
            tokens: VerifiedTokens::new(settings.token_cache),
            settings,
        });
        tokio::spawn(pump(replies, Arc::downgrade(&shared)));
        Ok(Gateway { shared })
    }

    /// The id replies are sent to.
    pub fn id(&self) -> &ConnectorId {
        &self.shared.id
    }

    /// The routes, for [`run`] or to merge into another server.
    pub fn router(&self) -> Router {
        let router = Router::new()
            .route("/v1/call/{cmd}", post(call))
            .fallback(async || {
                ApiError::not_found("no such endpoint: calls are POST /v1/call/{cmd}")
            })
            .method_not_allowed_fallback(async || {
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "use POST with a JSON body",
                )
            })
            .layer(DefaultBodyLimit::max(self.shared.settings.max_body_bytes))
            .with_state(self.shared.clone());
        warren_http::cors(router, &self.shared.settings.cors_origins)
    }
}

/// The gateway's entry point: serves `app` (a [`Gateway::router`], perhaps
/// merged with other routes) on `listener` until `shutdown`, then finishes
/// the calls in flight (each bounded by its time-out).
pub async fn run(
    listener: warren_http::Listener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.into_make_service_with_connect_info::<warren_http::Peer>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Hands each reply to the call waiting for it; ends with the bus or the
/// gateway.
async fn pump(mut replies: Subscription<BusPush>, shared: std::sync::Weak<Shared>) {
    while let Some(push) = replies.next().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let (conn, cmd, body) = match (push.target, push.kind) {
            (Target::Conn { conn, .. }, PushKind::Frame { cmd, body, .. }) => (conn, cmd, body),
            (
                Target::Uid(uid),
                PushKind::Revoke {
                    not_before_ms,
                    reason,
                    ..
                },
            ) => {
                shared.verifier.revoke(uid, not_before_ms, &reason);
                shared.tokens.forget(uid);
                continue;
            }
            _ => continue,
        };
        let waiter = shared.waiting().remove(&conn.0);
        if let Some(tx) = waiter {
            let _ = tx.send(Answer { cmd, body });
        }
    }
}

impl Shared {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Answer>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `POST /v1/call/{cmd}`.
async fn call(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(warren_http::Peer(peer)): ConnectInfo<warren_http::Peer>,
    Path(cmd): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    match serve(&shared, peer, &cmd, &headers, req).await {
        Ok(json) => (StatusCode::OK, axum::Json(json)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn serve(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    cmd: &str,
    headers: &HeaderMap,
    req: Request,
) -> Result<serde_json::Value, ApiError> {
    let now = Instant::now();
    if !shared.by_address.take(&peer.ip(), now) {
        return Err(rate_limited("this address"));
    }
    let uid = authenticate(shared, headers)?;
    if !shared.by_uid.take(&uid, now) {
        return Err(rate_limited("this player"));
    }
    let cmd = match cmd.parse::<u32>() {
        Ok(c) if c >= cmd::FIRST_SERVICE_CMD => c,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                code::UNKNOWN_CMD,
                format!("no service command {cmd:?}: service cmds are numbers from 1000"),
            ));
        }
    };
    // A client that sends its body slowly holds a connection, not the game.
    let limit = shared.settings.request_timeout_ms;
    let body = tokio::time::timeout(limit, read_json(req))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the body did not arrive within {} ms", limit.as_millis()),
            )
        })??;
    let answer = forward(shared, uid, cmd, json_to_body(&body)).await?;
    if answer.cmd == cmd::ERROR {
        return Err(service_error(&answer.body));
    }
    body_to_json(&answer.body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "not_json",
            format!("the reply of cmd {cmd} has no JSON form: {e}"),
        )
    })
}

fn rate_limited(who: &str) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        cmd::kick::RATE_LIMITED,
        format!("too many calls from {who}; slow down"),
    )
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Uid, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("Authorization: Bearer <token> is required"))?
        .trim();
    let now = warren_proto::time::unix_secs();
    if let Some(uid) = shared.tokens.get(token, now) {
        return Ok(uid);
    }
    let (uid, until) = shared.verifier.verify_until(token).map_err(|e| {
        debug!(error = %e, "call refused: bad token");
        ApiError::unauthorized("the token is not valid")
    })?;
    shared.tokens.insert(token, uid, until, now);
    Ok(uid)
}

/// The request's JSON body; an empty body is `{}`.
async fn read_json(req: Request) -> Result<serde_json::Value, ApiError> {
    let bytes = Bytes::from_request(req, &()).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("the request body is too large")
        } else {
            ApiError::bad_request("bad_request", rejection.body_text())
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}")))
}

/// Sends the call and waits for its answer, within the time-out.
async fn forward(
    shared: &Arc<Shared>,
    uid: Uid,
    cmd: u32,
    body: Vec<u8>,
) -> Result<Answer, ApiError> {
    let conn = shared.next_call.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    {
        let mut waiting = shared.waiting();
        if waiting.len() >= shared.settings.max_in_flight.max(1) {
            return Err(ApiError::unavailable(
                code::OVERLOADED,
                "too many calls are waiting for the game; try again",
            ));
        }
        waiting.insert(conn, tx);
    }
    // Whatever happens next, the call stops waiting when this returns.
    let _forget = Forget { shared, conn };
    let event = BusEvent {
        connector: shared.id.clone(),
        conn: ConnId(conn),
        uid,
        kind: EventKind::Call {
            seq: 1,
            cmd,
            body: body.into(),
        },
    };
    let (refused_tx, refused_rx) = oneshot::channel();
    let done: Done = Box::new(move |outcome| {
        if let Err(e) = outcome {
            let _ = refused_tx.send(e);
        }
    });
    let to = Address::of_event(&event, shared.bus.shards());
    shared
        .bus
        .send(to, warren_bus::Message::Event(event), done)
        .await;
    let wait = async {
        tokio::select! {
            answer = rx => answer.map_err(|_| ApiError::unavailable(code::UNAVAILABLE, "the gateway is stopping")),
            Ok(e) = refused_rx => Err(not_sent(&e)),
        }
    };
    let limit = shared.settings.request_timeout_ms;
    tokio::time::timeout(limit, wait).await.unwrap_or_else(|_| {
        Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            code::TIMEOUT,
            format!(
                "no answer from the game within {} ms; the call may still have been carried out",
                limit.as_millis()
            ),
        ))
    })
}

/// Removes a call from the waiting ones when its handler is done with it.
struct Forget<'a> {
    shared: &'a Shared,
    conn: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.shared.waiting().remove(&self.conn);
    }
}

fn not_sent(e: &BusError) -> ApiError {
    warn!(error = %e, "call not forwarded");
    match e {
        BusError::Rejected(_) => {
            ApiError::unavailable(code::OVERLOADED, "the game is overloaded, try again")
        }
        _ => ApiError::unavailable(code::UNAVAILABLE, "the game is unavailable, try again"),
    }
}

/// A service's error reply as the HTTP error a client expects: the
/// protocol's codes keep their statuses; a service's own code is 422.
fn service_error(body: &[u8]) -> ApiError {
    let Ok(e) = decode_body::<ErrorBody>("an error body", body) else {
        return ApiError::new(
            StatusCode::BAD_GATEWAY,
            "internal",
            "the game's error is malformed",
        );
    };
    let status = match e.code.as_str() {
        code::UNKNOWN_CMD => StatusCode::NOT_FOUND,
        code::BAD_REQUEST => StatusCode::BAD_REQUEST,
        code::UNAUTHORIZED => StatusCode::UNAUTHORIZED,
        code::OVERLOADED | code::UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        code::TIMEOUT => StatusCode::GATEWAY_TIMEOUT,
        code::INTERNAL => StatusCode::INTERNAL_SERVER_ERROR,
        cmd::kick::RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.code, e.message)
}
