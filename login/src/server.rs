//! Running login: the axum router on a bound listener, until shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::DefaultBodyLimit, routing::post};
use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, sync::Semaphore};
use tracing::info;
use warren_proto::gold::Gold;

use warren_http::ApiError;
use warren_kit::password;

use crate::{
    TokenSigner,
    api::{self, App, refusal},
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
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 7000)),
            max_body_bytes: 16 * 1024,
            gold_timeout_ms: Duration::from_millis(5_000),
            max_hashing: 4,
            cors_origins: vec!["*".to_owned()],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    GoldUrl(String),
    #[error("hashing the timing decoy failed: {0}")]
    Decoy(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves login on `listener` until `shutdown`, reaching gold at
/// `gold_url`; in-flight requests finish first.
pub async fn run(
    listener: TcpListener,
    settings: &LoginSettings,
    gold_url: &str,
    signer: TokenSigner,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let gold = Gold::lazy(gold_url, settings.gold_timeout_ms).map_err(ServeError::GoldUrl)?;
    let dummy_hash = password::hash_off_thread("not a real password, only a timing decoy".into())
        .await
        .map_err(ServeError::Decoy)?;
    let app = Arc::new(App {
        gold,
        signer,
        hashing: Semaphore::new(settings.max_hashing.max(1)),
        dummy_hash,
    });
    let router = Router::new()
        .route("/v1/guest", post(api::guest))
        .route("/v1/register", post(api::register))
        .route("/v1/login", post(api::login))
        .fallback(async || ApiError::not_found("no such endpoint"))
        .method_not_allowed_fallback(async || refusal::method_not_allowed())
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .with_state(app);
    let router = warren_http::cors(router, &settings.cors_origins);
    info!(addr = %listener.local_addr()?, "login serving HTTP");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
