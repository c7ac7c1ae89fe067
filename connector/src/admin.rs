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
use tracing::info;
use warren_http::{
    ApiError,
    metrics::{self, Family, Kind},
    require_bearer,
};

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
    /// Pushes dropped because this connector's push buffer was full
    /// (Redis, which delivers without back-pressure).
    bus_pushes_dropped: u64,
    /// Times the push subscription's connection dropped (Redis
    /// disconnects a subscriber that falls behind); pushes meanwhile are
    /// lost.
    bus_subscriber_disconnects: u64,
    /// The services registered with this connector (the gRPC gateway).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    services: Vec<warren_bus::Registration>,
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
        bus_pushes_dropped: bus.pushes_dropped,
        bus_subscriber_disconnects: bus.subscriber_disconnects,
        services: admin.connector.registrations(),
        counters: admin.connector.stats(),
    })
    .into_response()
}

async fn metrics(admin: axum::extract::State<Arc<Admin>>) -> Response {
    let id = admin.connector.id().to_string();
    let labels = vec![("connector", id.as_str())];
    let fields = admin.connector.stats().fields();
    let names: Vec<String> = fields
        .iter()
        .map(|(name, ..)| format!("warren_connector_{name}_total"))
        .collect();
    let bus = admin.connector.bus_state();
    let mut families = vec![
        Family {
            name: "warren_connector_online",
            kind: Kind::Gauge,
            help: "Players logged in on this connector.",
            samples: vec![(labels.clone(), admin.connector.online() as f64)],
        },
        Family {
            name: "warren_connector_bus_up",
            kind: Kind::Gauge,
            help: "1 while the bus takes messages, 0 while it is down or recovering.",
            samples: vec![(labels.clone(), f64::from(u8::from(bus.up)))],
        },
        Family {
            name: "warren_connector_bus_pushes_dropped_total",
            kind: Kind::Counter,
            help: "Pushes dropped because the connector's push buffer was full (Redis).",
            samples: vec![(labels.clone(), bus.pushes_dropped as f64)],
        },
        Family {
            name: "warren_connector_bus_subscriber_disconnects_total",
            kind: Kind::Counter,
            help: "Times the push subscription's connection dropped; pushes meanwhile are lost (Redis).",
            samples: vec![(labels.clone(), bus.subscriber_disconnects as f64)],
        },
    ];
    families.extend(
        fields
            .iter()
            .zip(&names)
            .map(|((_, help, value), name)| Family {
                name,
                kind: Kind::Counter,
                help,
                samples: vec![(labels.clone(), *value as f64)],
            }),
    );
    metrics::response(&families)
}

/// Serves the connector's admin endpoint on `listener` until `shutdown`.
pub(crate) async fn serve_admin(
    listener: warren_http::Listener,
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
    let addr = axum::serve::Listener::local_addr(&listener)?;
    info!(%addr, tls = listener.tls(), "connector admin endpoint serving");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
