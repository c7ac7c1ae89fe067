//! ZeroMQ in its layouts: each shard's two addresses on free loopback
//! ports, a game binding them, every other process connecting through a
//! proxy the test can cut.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use warren_bus::{Bus, BusError, PushServer, PushServerSettings, ZmqBus, ZmqLayout, ZmqSettings};

use crate::{
    Opts, Transport,
    proxy::{Proxy, Route},
};

fn tcp(addr: SocketAddr) -> String {
    format!("tcp://{addr}")
}

/// Layout 1: a PUB per shard.
pub(crate) const PUBSUB: u8 = 1;
/// Layout 2: a push server.
pub(crate) const PUSH_SERVER: u8 = 2;
/// Layout 3: one connector, one game.
pub(crate) const PAIR: u8 = 3;

/// ZeroMQ in one of its layouts (`LAYOUT`: [`PUBSUB`], [`PUSH_SERVER`] or
/// [`PAIR`]).
pub(crate) struct Zmq<const LAYOUT: u8> {
    requests: Vec<Route>,
    pushes: Vec<Route>,
    /// Layout 2: the push server, and its registry's route.
    push_server: Option<(PushServer, Route)>,
    opened: Mutex<Vec<Arc<ZmqBus>>>,
}

impl<const LAYOUT: u8> Zmq<LAYOUT> {
    fn settings(&self, opts: &Opts, game: bool) -> ZmqSettings {
        let shards = usize::from(opts.shards);
        let address = |r: &Route| {
            if game {
                tcp(r.upstream)
            } else {
                tcp(r.proxy.addr)
            }
        };
        ZmqSettings {
            layout: match LAYOUT {
                PAIR => ZmqLayout::Pair,
                PUSH_SERVER => ZmqLayout::PushServer,
                _ => ZmqLayout::PubSub,
            },
            requests: self.requests.iter().take(shards).map(address).collect(),
            pushes: self.pushes.iter().take(shards).map(address).collect(),
            // Games reach the push server directly, connectors register
            // through the proxy.
            push_server: tcp(self.pushes[0].upstream),
            registry: self
                .push_server
                .as_ref()
                .map_or_else(String::new, |(_, r)| address(r)),
            shard: opts.shard,
            durable: opts.durable,
            ..ZmqSettings::new()
        }
    }

    async fn open(&self, settings: ZmqSettings) -> Result<Arc<dyn Bus>, BusError> {
        let bus = Arc::new(ZmqBus::connect(settings).await?);
        self.opened.lock().unwrap().push(bus.clone());
        Ok(bus)
    }

    fn proxies(&self) -> impl Iterator<Item = &Proxy> {
        self.requests
            .iter()
            .chain(&self.pushes)
            .chain(self.push_server.iter().map(|(_, r)| r))
            .map(|r| &r.proxy)
    }
}

#[async_trait]
impl<const LAYOUT: u8> Transport for Zmq<LAYOUT> {
    const MAX_SHARDS: u16 = if LAYOUT == PAIR { 1 } else { 3 };

    async fn new() -> Self {
        let (mut requests, mut pushes) = (Vec::new(), Vec::new());
        for _ in 0..Self::MAX_SHARDS {
            requests.push(Route::new().await);
            pushes.push(Route::new().await);
        }
        // Layout 2: the first push route is the push server's PULL.
        let push_server = if LAYOUT == PUSH_SERVER {
            let registry = Route::new().await;
            let server = PushServer::start(PushServerSettings {
                pushes: tcp(pushes[0].upstream),
                registry: tcp(registry.upstream),
                send_hwm: 10_000,
                receive_hwm: 10_000,
            })
            .await
            .unwrap();
            Some((server, registry))
        } else {
            None
        };
        Zmq {
            requests,
            pushes,
            push_server,
            opened: Mutex::new(Vec::new()),
        }
    }

    async fn bus(&self, opts: &Opts) -> Result<Arc<dyn Bus>, BusError> {
        self.open(self.settings(opts, false)).await
    }

    async fn game(&self, opts: &Opts) -> Result<Arc<dyn Bus>, BusError> {
        self.open(self.settings(opts, true)).await
    }

    fn cut(&self) {
        self.proxies().for_each(Proxy::cut);
    }

    fn restore(&self) {
        self.proxies().for_each(Proxy::restore);
    }

    async fn cleanup(self) {
        self.restore();
        let opened = std::mem::take(&mut *self.opened.lock().unwrap());
        for bus in opened {
            bus.close().await;
        }
        if let Some((server, _)) = self.push_server {
            server.stop().await;
        }
    }
}
