//! Running gold: the gRPC server with its health service, until shutdown.

use std::{future::Future, net::SocketAddr};

use serde::{Deserialize, Serialize};
use tonic::transport::Server;
use tracing::info;
use warren_http::calls::Calls;
use warren_kit::{SecretUrl, grpc::Listener};
use warren_proto::gold::gold_server::GoldServer;

use crate::{GoldService, Store};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GoldSettings {
    /// Where gold serves gRPC.
    pub listen: SocketAddr,
    /// Where gold serves `/metrics` (every RPC counted), behind the
    /// operators' token (`game.admin_token`).
    pub admin_listen: SocketAddr,
    /// Where others (login, the game's wallet) reach gold.
    pub url: String,
    /// `postgres://…` or `sqlite://path?mode=rwc`. Unset: SQLite in the data
    /// directory (the embedded default).
    pub database: Option<SecretUrl>,
    /// Database connections (PostgreSQL; SQLite always uses one).
    pub max_connections: u32,
    /// Requests in flight at once on one gRPC connection.
    pub concurrency_per_connection: usize,
}

impl Default for GoldSettings {
    fn default() -> Self {
        GoldSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 7002)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 7010)),
            url: "http://127.0.0.1:7002".to_owned(),
            database: None,
            max_connections: 16,
            concurrency_per_connection: 256,
        }
    }
}

/// Serves `store` on `listener` (plain or TLS) until `shutdown` resolves,
/// then finishes the calls in flight and returns. Every call is counted
/// in `calls`.
pub async fn run(
    listener: Listener,
    store: Store,
    settings: &GoldSettings,
    calls: &Calls,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<GoldServer<GoldService>>().await;
    info!(addr = %listener.local_addr(), tls = listener.tls().is_some(), "gold serving gRPC");
    Server::builder()
        .concurrency_limit_per_connection(settings.concurrency_per_connection)
        .layer(calls.layer())
        .add_service(health_service)
        .add_service(GoldServer::new(GoldService::new(store)))
        .serve_with_incoming_shutdown(listener.incoming(), shutdown)
        .await
}
