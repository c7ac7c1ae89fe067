//! Layout 2's push server alone (`warren push-server`): games send it
//! pushes over ZeroMQ, connectors register with it, and it forwards each
//! push to its connector. Its console (`warren debug --push-server URL`)
//! lists the registered connectors and what was forwarded and dropped.
//! What it prints goes to stdout, for people.

#![allow(clippy::print_stdout)]

use std::{
    future::{Future, IntoFuture},
    sync::Arc,
};

use anyhow::Context as _;
use axum::{Json, Router, extract::State, routing::get};
use warren_bus::{PushServer, PushServerSettings, PushServerStats};

use crate::{
    parts::{self, admin_token},
    ready::{Ready, Role},
    settings::Settings,
};

pub(crate) async fn push_server(
    settings: Settings,
    mut ready: Ready,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let zmq = &settings.bus.zmq;
    let server = PushServer::start(PushServerSettings {
        pushes: zmq.push_server.clone(),
        registry: zmq.registry.clone(),
        send_hwm: zmq.send_hwm,
        receive_hwm: zmq.receive_hwm,
    })
    .await
    .context("starting the push server")?;
    let server = Arc::new(server);
    let console = Router::new()
        .route("/v1/stats", get(stats))
        .with_state(server.clone());
    let console = warren_http::require_bearer(console, admin_token(&settings)?);
    let (listener, url) = parts::bind_http(
        &settings,
        zmq.push_server_admin,
        "the push server's console",
    )
    .await?;
    println!(
        "warren: push server taking pushes on {} and registrations on {}; console on {url}",
        zmq.push_server, zmq.registry
    );
    ready.listening(Role::PushServer, &url);
    ready.write()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(
        axum::serve(listener, console)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future(),
    );
    shutdown.await;
    ready.stopping();
    stop.cancel();
    serving
        .await
        .context("the push server's console")?
        .context("serving the push server's console")?;
    server.stop().await;
    Ok(())
}

async fn stats(State(server): State<Arc<PushServer>>) -> Json<PushServerStats> {
    Json(server.stats())
}
