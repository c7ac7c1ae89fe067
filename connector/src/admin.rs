//! The connector's admin endpoint, for operators: its counters (logins,
//! kicks by reason, frames and bytes, …) and how many players it holds, as
//! JSON (`GET /v1/stats`, `warren debug --connector`) and for Prometheus
//! (`GET /metrics`). Behind a bearer token, loopback by default.

use std::{future::Future, sync::Arc};

use axum::{
    Json, Router,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::info;
use warren_http::{ApiError, require_bearer};

use crate::{Connector, StatsSnapshot};

struct Admin {
    connector: Connector,
}

#[derive(Serialize)]
struct Stats {
    connector: String,
    online: usize,
    /// Whether the bus takes messages now.
    bus_up: bool,
    /// Bus connections rebuilt because their recovery stalled.
    bus_rebuilds: u64,
    #[serde(flatten)]
    counters: StatsSnapshot,
}

async fn stats(admin: axum::extract::State<Arc<Admin>>) -> Response {
    let bus = admin.connector.bus_state();
    Json(Stats {
        connector: admin.connector.id().to_string(),
        online: admin.connector.online(),
        bus_up: bus.up,
        bus_rebuilds: bus.rebuilds,
        counters: admin.connector.stats(),
    })
    .into_response()
}

async fn metrics(admin: axum::extract::State<Arc<Admin>>) -> Response {
    let id = admin.connector.id().to_string();
    let mut out = format!(
        "# HELP warren_connector_online Players logged in on this connector.\n# TYPE warren_connector_online gauge\nwarren_connector_online{{connector=\"{id}\"}} {}\n",
        admin.connector.online()
    );
    for (name, help, value) in admin.connector.stats().fields() {
        out.push_str(&format!(
            "# HELP warren_connector_{name}_total {help}\n# TYPE warren_connector_{name}_total counter\nwarren_connector_{name}_total{{connector=\"{id}\"}} {value}\n"
        ));
    }
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}

/// Serves the connector's admin endpoint on `listener` until `shutdown`.
pub(crate) async fn serve_admin(
    listener: TcpListener,
    connector: Connector,
    token: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let admin = Arc::new(Admin { connector });
    let routes = Router::new()
        .route("/v1/stats", get(stats))
        .route("/metrics", get(metrics));
    let router = require_bearer(routes, token)
        .fallback(async || ApiError::not_found("no such endpoint"))
        .with_state(admin);
    info!(addr = %listener.local_addr()?, "connector admin endpoint serving");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
