//! Opening the bus `bus.kind` names, for a run mode.

use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context as _, bail};
use warren_bus::{AmqpBus, Bus, GrpcBus, MemoryBus, RedisBus, ZmqBus};

use super::{check_plain, tls};
use crate::settings::{BusKind, Settings};

/// The bus `bus.kind` names. `alone`: this process runs only the
/// connector or only the game, so the bus must reach other processes.
pub(crate) async fn open_bus(
    settings: &Settings,
    role: &str,
    alone: bool,
) -> anyhow::Result<Arc<dyn Bus>> {
    match settings.bus.transport().map_err(anyhow::Error::msg)? {
        BusKind::Memory if alone => bail!(
            "`warren {role}` runs apart from the other half, so it needs a networked bus: \
             give --amqp URL or --redis URL (or set WARREN_BUS__AMQP_URL or \
             WARREN_BUS__REDIS__URL, or WARREN_BUS__KIND=zmq or grpc; bus.kind: {})",
            BusKind::ALL.join(", ")
        ),
        BusKind::Memory => Ok(Arc::new(MemoryBus::new(settings.bus.memory_capacity))),
        BusKind::Amqp => {
            let Some(url) = settings.bus.amqp_first() else {
                bail!(
                    "`warren {role}` runs on RabbitMQ: give --amqp URL or set WARREN_BUS__AMQP_URL"
                );
            };
            let amqp = settings
                .bus
                .amqp(url, &format!("warren-{role}"), settings.game.shard);
            let bus = AmqpBus::connect(amqp)
                .await
                .with_context(|| format!("connecting to RabbitMQ at {url}"))?;
            Ok(Arc::new(bus))
        }
        BusKind::Redis => {
            let Some(url) = &settings.bus.redis.url else {
                bail!(
                    "`warren {role}` runs on Redis: give --redis URL or set WARREN_BUS__REDIS__URL"
                );
            };
            let redis = settings
                .bus
                .redis(url, &format!("warren-{role}"), settings.game.shard);
            let bus = RedisBus::connect(redis)
                .await
                .with_context(|| format!("connecting to Redis at {url}"))?;
            Ok(Arc::new(bus))
        }
        BusKind::Grpc if role == "game" => {
            let grpc = grpc_bus(
                settings,
                settings.bus.grpc.listen,
                "the game's Upstream (gRPC)",
            )?;
            let bus = GrpcBus::service(grpc)
                .await
                .context("starting the gRPC gateway bus")?;
            Ok(Arc::new(bus))
        }
        BusKind::Grpc if alone => {
            let grpc = grpc_bus(settings, settings.bus.grpc.gateway, "the gRPC gateway")?;
            let bus = GrpcBus::gateway(grpc)
                .await
                .context("serving the gRPC gateway")?;
            Ok(Arc::new(bus))
        }
        BusKind::Grpc => bail!(
            "bus.kind = \"grpc\" connects separate processes: run `warren connector` and `warren \
             game` (the embedded default runs on the in-process bus)"
        ),
        BusKind::Zmq => {
            let zmq = settings.bus.zmq(settings.game.shard);
            let bus = ZmqBus::connect(zmq)
                .await
                .context("starting the ZeroMQ bus")?;
            Ok(Arc::new(bus))
        }
    }
}

/// The gRPC bus's settings, with the process's TLS for the listener of
/// `what` on `addr` (plain text off loopback refused unless allowed) and
/// for its calls.
fn grpc_bus(
    settings: &Settings,
    addr: SocketAddr,
    what: &str,
) -> anyhow::Result<warren_bus::GrpcSettings> {
    let mut grpc = settings.bus.grpc(settings.game.shard);
    grpc.tls = tls(settings)?;
    let serves = warren_kit::grpc::serves(addr, grpc.tls.as_ref());
    check_plain(settings, what, addr, serves.as_ref())?;
    grpc.client_tls = settings.tls.clone();
    Ok(grpc)
}
