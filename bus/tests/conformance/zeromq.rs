//! ZeroMQ in its layouts: each shard's two addresses on free loopback
//! ports, a game binding them, every other process connecting through a
//! proxy the test can cut.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use warren_bus::{Bus, BusError, ZmqBus, ZmqLayout, ZmqSettings};

use crate::{Opts, Transport, proxy::Proxy};

/// A free port on loopback (the listener is dropped; ZeroMQ binds it).
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// One address a game binds, and the proxy the others reach it through.
struct Route {
    upstream: SocketAddr,
    proxy: Proxy,
}

impl Route {
    async fn new() -> Route {
        let upstream = free_port();
        Route {
            upstream,
            proxy: Proxy::start(upstream).await,
        }
    }
}

fn tcp(addr: SocketAddr) -> String {
    format!("tcp://{addr}")
}

/// `PAIR`: layout 3 (one connector, one game), else layout 1 (pubsub).
pub(crate) struct Zmq<const PAIR: bool> {
    requests: Vec<Route>,
    pushes: Vec<Route>,
    opened: Mutex<Vec<Arc<ZmqBus>>>,
}

impl<const PAIR: bool> Zmq<PAIR> {
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
            layout: if PAIR {
                ZmqLayout::Pair
            } else {
                ZmqLayout::PubSub
            },
            requests: self.requests.iter().take(shards).map(address).collect(),
            pushes: self.pushes.iter().take(shards).map(address).collect(),
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
        self.requests.iter().chain(&self.pushes).map(|r| &r.proxy)
    }
}

#[async_trait]
impl<const PAIR: bool> Transport for Zmq<PAIR> {
    const MAX_SHARDS: u16 = if PAIR { 1 } else { 3 };

    async fn new() -> Self {
        let (mut requests, mut pushes) = (Vec::new(), Vec::new());
        for _ in 0..Self::MAX_SHARDS {
            requests.push(Route::new().await);
            pushes.push(Route::new().await);
        }
        Zmq {
            requests,
            pushes,
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
    }
}
