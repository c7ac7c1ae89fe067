//! Everything in one process: gold, config-svc, login, the game and the
//! connector and the HTTP call gateway, on the in-process bus unless
//! RabbitMQ or Redis is named.

#![allow(clippy::print_stdout)]

use std::future::Future;

use crate::{
    keys,
    parts::{self, admin_token},
    ready::{Ready, Role},
    settings::{BusKind, Settings},
};

pub(crate) async fn all(
    mut settings: Settings,
    mut ready: Ready,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (private, public) = keys::ensure_dev_pair(&settings)?;
    // Read (or made) once: config-svc, the game and the connector share it.
    let token = admin_token(&settings)?;
    settings.game.admin_token = Some(token.clone().into());
    let (gold_url, gold) = parts::start_gold(&settings, &mut ready).await?;
    settings.gold.url = gold_url.clone();
    let (config_url, config) = parts::start_config(&settings, &mut ready).await?;
    settings.config_svc.url = config_url;
    parts::config_cache(&mut settings);
    let bus = parts::open_bus(&settings, "all", false).await?;
    let game = parts::start_game(&settings, bus.clone(), &mut ready).await?;
    let login = parts::start_login(&settings, &gold_url, &private, &mut ready).await?;
    let (connector, listeners) =
        parts::prepare_connector(&settings, bus.clone(), &public, &mut ready).await?;
    let page = web_page(&settings, &ready)?;
    let calls = parts::start_calls(&settings, bus.clone(), &public, &mut ready, Some(page)).await?;
    match settings.bus.transport() {
        Ok(BusKind::Amqp) => {
            let url = settings.bus.amqp_first().map(ToString::to_string);
            println!("warren: bus: RabbitMQ at {}", url.unwrap_or_default());
        }
        Ok(BusKind::Redis) => {
            let url = settings.bus.redis.url.as_ref().map(ToString::to_string);
            println!("warren: bus: Redis at {}", url.unwrap_or_default());
        }
        Ok(BusKind::Zmq) => {
            let zmq = &settings.bus.zmq;
            println!(
                "warren: bus: ZeroMQ ({} layout; requests {}, pushes {})",
                zmq.layout,
                zmq.requests.join(" "),
                zmq.pushes.join(" ")
            );
        }
        _ => {
            println!("warren: bus: in-process (connector and game share this process)");
            println!(
                "warren: to run as separate processes: `warren game --amqp URL` and `warren connector --amqp URL` (RabbitMQ), or --redis URL (Redis)"
            );
        }
    }
    println!(
        "warren: try it: curl -X POST -d '{{\"device_id\":\"my-phone\"}}' http://127.0.0.1:{}/v1/guest",
        settings.login.listen.port()
    );
    ready.write()?;
    warren_connector::run(listeners, connector, token, shutdown).await?;
    ready.stopping();
    calls.stop().await?;
    game.stop().await?;
    bus.close().await;
    login.stop().await?;
    config.stop().await?;
    gold.stop().await?;
    Ok(())
}

/// The example web page, told the ports login and the connector listen on.
fn web_page(settings: &Settings, ready: &Ready) -> anyhow::Result<axum::Router> {
    let port = |role: Role| -> anyhow::Result<u16> {
        let url = ready
            .url(role)
            .ok_or_else(|| anyhow::anyhow!("{} is not listening yet", role.name()))?;
        // scheme://address[/path], the address as the ready file shows it.
        let address = url.split("://").nth(1).and_then(|a| a.split('/').next());
        let address = address.and_then(|a| a.parse::<std::net::SocketAddr>().ok());
        address
            .map(|a| a.port())
            .ok_or_else(|| anyhow::anyhow!("no address in {}'s URL {url}", role.name()))
    };
    Ok(crate::web_page::router(
        port(Role::Login)?,
        port(Role::Connector)?,
        &settings.connector.path,
    ))
}
