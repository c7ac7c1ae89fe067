//! config-svc: the game's configuration, edited by product staff on a web
//! page and read live by services.
//!
//! - Named JSON documents, each with a version history, an optional JSON
//!   Schema (a publish that does not match is refused with the errors) and
//!   an audit log of every publish, rollback and schema change.
//! - gRPC (`proto/proto/config.proto`, default `127.0.0.1:7003`): get, list,
//!   versions, audit, and watch — a stream of new versions, current ones
//!   first, so a client that reconnects is up to date at once.
//! - The admin page (default `127.0.0.1:7004`, [`web`]).
//! - The client library services use ([`ConfigClient`]), which needs only
//!   the default-off half of this crate.
//!
//! Storage is config-svc's own: SQLite by default, PostgreSQL with
//! `database = "postgres://…"`.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod client;
pub use client::{ClientSettings, ConfigClient, Live};

#[cfg(feature = "server")]
mod error;
#[cfg(feature = "server")]
mod grpc;
#[cfg(feature = "server")]
mod schema;
#[cfg(feature = "server")]
mod store;
#[cfg(feature = "server")]
pub mod web;

#[cfg(feature = "server")]
pub use server::*;

#[cfg(feature = "server")]
mod server {
    use std::{net::SocketAddr, time::Duration};

    use serde::{Deserialize, Serialize};
    use tracing::info;
    use warren_http::calls::Calls;
    use warren_proto::config::config_server::ConfigServer;

    pub use crate::error::ConfigError;
    pub use crate::grpc::{ConfigService, Hub};
    pub use crate::store::{Dialect, StaffSession, Store};

    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct ConfigSettings {
        /// Where config-svc serves gRPC.
        pub listen: SocketAddr,
        /// Where services (the game) reach config-svc. Empty: the game runs
        /// without it, on its settings' values.
        pub url: String,
        /// Where the admin page listens. Keep it on loopback (or behind a
        /// TLS proxy, with `secure_cookies`).
        pub admin_listen: SocketAddr,
        /// `postgres://…` or `sqlite://path?mode=rwc`. Unset: SQLite in the
        /// data directory. config-svc's own database, never the game's.
        pub database: Option<warren_kit::SecretUrl>,
        /// Database connections (PostgreSQL; SQLite always uses one).
        pub max_connections: u32,
        /// A staff session ends after this long without a request…
        #[serde(with = "warren_kit::duration::s")]
        pub session_idle_s: Duration,
        /// …and after this long in any case.
        #[serde(with = "warren_kit::duration::s")]
        pub session_max_s: Duration,
        /// Failed sign-ins allowed per address and per username within
        /// `signin_window_s`; more are refused with 429 until it passes.
        pub signin_attempts: u32,
        #[serde(with = "warren_kit::duration::s")]
        pub signin_window_s: Duration,
        /// Mark cookies `Secure` (when the page is served over HTTPS).
        pub secure_cookies: bool,
        /// Create the built-in documents (`chat`, `economy`) with their
        /// schemas if they do not exist.
        pub seed: bool,
    }

    impl Default for ConfigSettings {
        fn default() -> Self {
            ConfigSettings {
                listen: SocketAddr::from(([127, 0, 0, 1], 7003)),
                url: "http://127.0.0.1:7003".to_owned(),
                admin_listen: SocketAddr::from(([127, 0, 0, 1], 7004)),
                database: None,
                max_connections: 8,
                session_idle_s: Duration::from_secs(30 * 60),
                session_max_s: Duration::from_secs(12 * 3600),
                signin_attempts: 5,
                signin_window_s: Duration::from_secs(300),
                secure_cookies: false,
                seed: true,
            }
        }
    }

    /// The documents the game's built-in services read: name, schema, first
    /// version.
    pub(crate) const SEEDS: [(&str, &str, &str); 2] = [
        (
            "chat",
            include_str!("../seed/chat.schema.json"),
            include_str!("../seed/chat.json"),
        ),
        (
            "economy",
            include_str!("../seed/economy.schema.json"),
            include_str!("../seed/economy.json"),
        ),
    ];

    /// Creates the built-in documents that do not exist yet.
    pub async fn seed(store: &Store) -> Result<(), ConfigError> {
        for (name, schema, body) in SEEDS {
            store.seed(name, schema, body).await?;
        }
        Ok(())
    }

    /// config-svc's two listeners.
    #[derive(Debug)]
    pub struct Listeners {
        /// gRPC, for services (TLS with a certificate, off loopback).
        pub grpc: warren_kit::grpc::Listener,
        /// The admin page, for staff (HTTPS with a certificate).
        pub page: warren_http::Listener,
    }

    /// config-svc, ready to serve: its store (seeded if the settings say
    /// so), the hub that feeds watchers, the gRPC service and the admin
    /// page. Opening it is the part that can fail; [`run`] then serves.
    #[derive(Debug)]
    pub struct Server {
        store: Store,
        hub: Hub,
        service: ConfigService,
        web: crate::web::Web,
        /// Every call, gRPC and page, for the page's `/metrics`.
        calls: Calls,
    }

    impl Server {
        /// `admin_token` lets operators' tools call the publishing RPCs.
        pub async fn open(
            store: Store,
            settings: &ConfigSettings,
            admin_token: &str,
        ) -> Result<Server, ConfigError> {
            if settings.seed {
                seed(&store).await?;
            }
            let hub = Hub::new(&store).await?;
            let service = ConfigService::new(store.clone(), hub.clone(), admin_token);
            let calls = Calls::default();
            let web = crate::web::Web::new(store.clone(), hub.clone(), settings)?
                .with_metrics(calls.clone(), admin_token.to_owned());
            Ok(Server {
                store,
                hub,
                service,
                web,
                calls,
            })
        }
    }

    /// Why [`run`] stopped serving.
    #[derive(Debug, thiserror::Error)]
    pub enum RunError {
        #[error("config-svc's gRPC server failed: {0}")]
        Grpc(#[from] tonic::transport::Error),
        #[error("the config admin page failed: {0}")]
        Page(#[from] std::io::Error),
    }

    /// config-svc's entry point: serves gRPC and the admin page, and polls
    /// the database for publishes made by other config-svc processes, until
    /// `shutdown`; then closes the store.
    pub async fn run(
        listeners: Listeners,
        server: Server,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), RunError> {
        let Server {
            store,
            hub,
            service,
            web,
            calls,
        } = server;
        let stop = tokio_util::sync::CancellationToken::new();
        let poller = tokio::spawn({
            let (hub, store, stop) = (hub.clone(), store.clone(), stop.clone());
            async move {
                tokio::select! {
                    () = hub.poll(store) => {}
                    () = stop.cancelled() => {}
                }
            }
        });
        let page = tokio::spawn(crate::web::serve(
            listeners.page,
            web,
            stop.clone().cancelled_owned(),
        ));
        let served = serve_grpc(listeners.grpc, service, &calls, shutdown).await;
        stop.cancel();
        let _ = poller.await;
        let paged = page.await;
        store.close().await;
        served?;
        Ok(paged.map_err(std::io::Error::other)??)
    }

    /// Serves gRPC (with its health service) on `listener` until `shutdown`
    /// resolves, counting every call in `calls`.
    pub async fn serve_grpc(
        listener: warren_kit::grpc::Listener,
        service: ConfigService,
        calls: &Calls,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        let hub = service.hub().clone();
        let shutdown = async move {
            shutdown.await;
            hub.close();
        };
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<ConfigServer<ConfigService>>().await;
        info!(addr = %listener.local_addr(), tls = listener.tls().is_some(), "config-svc serving gRPC");
        tonic::transport::Server::builder()
            .layer(calls.layer())
            .add_service(health_service)
            .add_service(ConfigServer::new(service))
            .serve_with_incoming_shutdown(listener.incoming(), shutdown)
            .await
    }
}
