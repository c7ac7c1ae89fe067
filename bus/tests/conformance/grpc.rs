//! The gRPC gateway: a few gateway addresses set aside per test, every
//! game registering with all of them, and every call (a game's
//! registration and pushes, a gateway's deliveries) through a proxy the
//! test can cut.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use warren_bus::{Bus, BusError, GrpcBus, GrpcSettings};

use crate::{
    Opts, Transport,
    proxy::{Proxy, Route},
};

/// Gateways one test may open.
const GATEWAYS: usize = 4;

fn url(route: &Route) -> String {
    format!("http://{}", route.proxy.addr)
}

pub(crate) struct Grpc {
    gateways: Vec<Route>,
    opened_gateways: AtomicUsize,
    games: Mutex<Vec<Route>>,
    opened: Mutex<Vec<Arc<GrpcBus>>>,
}

impl Grpc {
    fn settings(&self, opts: &Opts) -> GrpcSettings {
        GrpcSettings {
            gateways: self.gateways.iter().map(url).collect(),
            shards: opts.shards,
            shard: opts.shard,
            durable: opts.durable,
            lease: Duration::from_secs(1),
            ..GrpcSettings::new()
        }
    }

    fn keep(&self, bus: GrpcBus) -> Arc<dyn Bus> {
        let bus = Arc::new(bus);
        self.opened.lock().unwrap().push(bus.clone());
        bus
    }

    fn proxies(&self) -> Vec<&Proxy> {
        self.gateways.iter().map(|r| &r.proxy).collect()
    }
}

#[async_trait]
impl Transport for Grpc {
    const MAX_SHARDS: u16 = 3;

    async fn new() -> Self {
        let mut gateways = Vec::new();
        for _ in 0..GATEWAYS {
            gateways.push(Route::new().await);
        }
        Grpc {
            gateways,
            opened_gateways: AtomicUsize::new(0),
            games: Mutex::new(Vec::new()),
            opened: Mutex::new(Vec::new()),
        }
    }

    /// A connector: the next gateway address.
    async fn bus(&self, opts: &Opts) -> Result<Arc<dyn Bus>, BusError> {
        let i = self.opened_gateways.fetch_add(1, Ordering::SeqCst);
        let route = self
            .gateways
            .get(i)
            .expect("at most GATEWAYS connectors per test");
        let settings = GrpcSettings {
            gateway: route.upstream,
            ..self.settings(opts)
        };
        Ok(self.keep(GrpcBus::gateway(settings).await?))
    }

    /// A game, registering with every gateway; the first game of a test
    /// opens a gateway if the test has none (it is what refuses a second
    /// owner of a shard).
    async fn game(&self, opts: &Opts) -> Result<Arc<dyn Bus>, BusError> {
        if self.opened_gateways.load(Ordering::SeqCst) == 0 {
            self.bus(opts).await?;
        }
        let route = Route::new().await;
        let settings = GrpcSettings {
            listen: route.upstream,
            advertise: url(&route),
            ..self.settings(opts)
        };
        self.games.lock().unwrap().push(route);
        Ok(self.keep(GrpcBus::service(settings).await?))
    }

    fn cut(&self) {
        self.proxies().into_iter().for_each(Proxy::cut);
        self.games
            .lock()
            .unwrap()
            .iter()
            .for_each(|r| r.proxy.cut());
    }

    fn restore(&self) {
        self.proxies().into_iter().for_each(Proxy::restore);
        self.games
            .lock()
            .unwrap()
            .iter()
            .for_each(|r| r.proxy.restore());
    }

    async fn cleanup(self) {
        self.restore();
        let opened = std::mem::take(&mut *self.opened.lock().unwrap());
        for bus in opened {
            bus.close().await;
        }
    }
}
