//! Running login: the axum router on a bound listener, until shutdown.

use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{Router, extract::DefaultBodyLimit, routing::post};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::info;
use warren_proto::gold::Gold;

use warren_http::{ApiError, calls::Calls};
use warren_kit::{limits::Limits, password};

use crate::{
    TokenSigner,
    api::{self, App, refusal},
    sessions,
};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSettings {
    /// Where login serves HTTP.
    pub listen: SocketAddr,
    /// Largest accepted request body; larger is 413.
    pub max_body_bytes: usize,
    /// How long a call to gold may take before the client gets 503.
    #[serde(with = "warren_kit::duration::ms")]
    pub gold_timeout_ms: Duration,
    /// Password hashes computed at once; more wait up to 5 s, then 503.
    pub max_hashing: usize,
    /// Web pages allowed to call login from another origin (CORS): `"*"`
    /// (any; safe, as no cookie is involved) or a list like
    /// `["https://play.example.com"]`; empty: none.
    pub cors_origins: Vec<String>,
    /// Attempts (guest, register, login, refresh, logout) per client
    /// address a minute, and how many may come at once; more are 429
    /// `rate_limited`.
    pub address_per_min: u32,
    pub address_burst: u32,
    /// The same per account (a username, a device id, a sign-in).
    pub account_per_min: u32,
    pub account_burst: u32,
    /// Addresses not limited per address: loopback by default (a proxy on
    /// the same host, whose clients login cannot tell apart; load-test
    /// bots). Per-account limits still apply.
    pub unlimited_addresses: Vec<IpAddr>,
    /// Addresses and accounts tracked at once; when full, the idlest half
    /// is forgotten (and starts again with a full allowance).
    pub limits_tracked: usize,
    /// A game's admin endpoint (`http://host:port`) a logout is sent on
    /// to, so connectors kick the socket and refuse the older tokens.
    /// Unset: the game of this process, else `game.admin_listen`.
    pub game_admin: Option<String>,
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            max_body_bytes: 16 * 1024,
            gold_timeout_ms: Duration::from_millis(5_000),
            max_hashing: 4,
            cors_origins: vec!["*".to_owned()],
            address_per_min: 60,
            address_burst: 30,
            account_per_min: 10,
            account_burst: 10,
            unlimited_addresses: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            limits_tracked: 100_000,
            game_admin: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("hashing the timing decoy failed: {0}")]
    Decoy(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves login on `listener` until `shutdown`, reaching gold at
/// `gold` and sending logouts on through `revoker` (None: a logout
/// ends the sign-in, and live sockets stay until they close); in-flight
/// requests finish first.
pub async fn run(
    listener: warren_http::Listener,
    settings: &LoginSettings,
    gold: Gold,
    signer: TokenSigner,
    revoker: Option<crate::Revoker>,
    metrics_token: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let dummy_hash = password::hash_off_thread("not a real password, only a timing decoy".into())
        .await
        .map_err(ServeError::Decoy)?;
    let app = Arc::new(App {
        gold,
        signer,
        hashing: Semaphore::new(settings.max_hashing.max(1)),
        dummy_hash,
        by_address: Limits::new(
            f64::from(settings.address_per_min) / 60.0,
            settings.address_burst,
            settings.limits_tracked,
        ),
        by_account: Limits::new(
            f64::from(settings.account_per_min) / 60.0,
            settings.account_burst,
            settings.limits_tracked,
        ),
        unlimited: settings.unlimited_addresses.clone(),
        revoker,
    });
    // `/metrics` (behind the operators' token): every call counted.
    let calls = Calls::default();
    let mut router = Router::new();
    if let Some(token) = metrics_token {
        router = router.merge(calls.metrics_route(token));
    }
    let router = router
        .route("/v1/guest", post(api::guest))
        .route("/v1/register", post(api::register))
        .route("/v1/login", post(api::login))
        .route("/v1/refresh", post(sessions::refresh))
        .route("/v1/logout", post(sessions::logout))
        .fallback(async || ApiError::not_found("no such endpoint"))
        .method_not_allowed_fallback(async || refusal::method_not_allowed())
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(calls.layer())
        .with_state(app);
    let router = warren_http::cors(router, &settings.cors_origins);
    info!(addr = %axum::serve::Listener::local_addr(&listener)?, tls = listener.tls(), "login serving HTTP");
    let service = router.into_make_service_with_connect_info::<warren_http::Peer>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
