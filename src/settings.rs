//! Typed settings: defaults, then a TOML file, then `WARREN_*` environment
//! variables (`__` separates sections: `WARREN_CONNECTOR__LISTEN`), then
//! command-line flags. Secrets (the AMQP URL's password) are never printed.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use warren_bus::{AmqpSettings, GrpcSettings, RedisSettings, ZmqLayout, ZmqSettings};
pub use warren_calls::CallSettings;
pub use warren_config::ConfigSettings;
use warren_connector::ConnectorSettings;
use warren_game::GameSettings;
pub use warren_gold::GoldSettings;
pub use warren_kit::SecretUrl;
pub use warren_login::{JwtSettings, LoginSettings};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the embedded default keeps its files (dev keys, the SQLite
    /// database).
    pub data_dir: PathBuf,
    /// Threads of the async runtime; 0: one per core. Fewer than the cores
    /// pays when other busy processes share the machine (see
    /// BENCHMARKS.md): a worker that runs out of work parks, and waking it
    /// again costs a context switch.
    pub worker_threads: usize,
    pub bus: BusSettings,
    pub jwt: JwtSettings,
    pub connector: ConnectorSettings,
    pub game: GameSettings,
    pub gold: GoldSettings,
    pub login: LoginSettings,
    /// config-svc and its admin page (`WARREN_CONFIG_SVC__…`).
    pub config_svc: ConfigSettings,
    /// The HTTP call gateway (`warren http`; `WARREN_HTTP__…`).
    pub http: CallSettings,
    /// TLS for the process's websocket and HTTP listeners
    /// (`WARREN_TLS__…`).
    pub tls: warren_kit::tls::TlsSettings,
}

/// Which transport carries the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// Bounded channels in one process: the embedded default; connector
    /// and game must share the process.
    Memory,
    /// RabbitMQ (`bus.amqp_url`).
    Amqp,
    /// Redis (`bus.redis.url`): lists for requests, pub/sub for pushes.
    Redis,
    /// ZeroMQ (`bus.zmq`): sockets straight between the processes, no
    /// broker.
    Zmq,
    /// The gRPC gateway (`bus.grpc`): games register with the connectors,
    /// which call them; services in any language.
    Grpc,
}

impl BusKind {
    /// Every kind, as `bus.kind` spells it.
    pub const ALL: &[&str] = &["memory", "amqp", "redis", "zmq", "grpc"];
}

/// The ZeroMQ bus (`bus.kind = "zmq"`; docs/deploy.md, "ZeroMQ").
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZmqBusSettings {
    /// `pubsub` (connectors PUSH requests to the owning shard's PULL and
    /// SUBscribe to every shard's PUB) or `pair` (one connector, one game:
    /// PUSH → PULL both ways).
    pub layout: ZmqLayout,
    /// Each shard's request address, `tcp://host:port`, in shard order:
    /// its game binds it, the others connect. One per shard
    /// (`bus.shards`).
    pub requests: Vec<String>,
    /// Each shard's push address (`pubsub`: its PUB; `pair`: the game's
    /// PUSH), in shard order.
    pub pushes: Vec<String>,
    /// `push-server`: where `warren push-server` takes the games' pushes
    /// (the games connect).
    pub push_server: String,
    /// `push-server`: where `warren push-server` takes the connectors'
    /// registrations.
    pub registry: String,
    /// `push-server`: where `warren push-server` serves its console
    /// (`warren debug --push-server URL`; the admin token).
    pub push_server_admin: SocketAddr,
    /// `push-server`: where a connector takes its pushes (registered with
    /// the push server, which connects to it; port `*`: any free one). The
    /// push server must be able to reach it.
    pub listen: String,
    /// What a game binds instead of the host its addresses name (`*`, or
    /// an interface's IP); empty: the addresses as written.
    pub bind: String,
    /// Messages a socket queues towards one peer; a request beyond it is
    /// refused at once (`overloaded`), a push beyond it is dropped by the
    /// publisher (uncounted: libzmq does not say).
    pub send_hwm: i32,
    /// Messages a socket queues from its peers before their queues fill.
    pub receive_hwm: i32,
}

impl Default for ZmqBusSettings {
    fn default() -> Self {
        let zmq = ZmqSettings::new();
        ZmqBusSettings {
            layout: zmq.layout,
            requests: zmq.requests,
            pushes: zmq.pushes,
            push_server: zmq.push_server,
            registry: zmq.registry,
            push_server_admin: SocketAddr::from(([127, 0, 0, 1], 7009)),
            listen: zmq.listen,
            bind: zmq.bind,
            send_hwm: zmq.send_hwm,
            receive_hwm: zmq.receive_hwm,
        }
    }
}

/// The gRPC gateway (`bus.kind = "grpc"`; docs/deploy.md, "The gRPC
/// gateway", and docs/services.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcBusSettings {
    /// Where a connector (or `warren http`) serves the gateway that
    /// services register with.
    pub gateway: SocketAddr,
    /// Where a game serves `Deliver` (port 0: any free one).
    pub listen: SocketAddr,
    /// The URL a game gives the gateways to call it back; empty: `http://`
    /// and the address it bound (set it when `listen` is a wildcard).
    pub advertise: String,
    /// Every connector's and call gateway's gateway URL: a game registers
    /// with each (`warren game --gateways URL,URL`).
    pub gateways: Vec<String>,
    /// Calls at once towards one peer.
    pub in_flight: usize,
    /// Every request is answered within this of its send: a service that
    /// does not take it in time costs its players `unavailable` or
    /// `overloaded`, never the others.
    #[serde(with = "warren_kit::duration::ms")]
    pub deadline_ms: Duration,
    /// Messages a process holds between the calls it took and its
    /// consumer; a call that does not fit is refused (`overloaded`).
    pub buffer: usize,
    /// Messages queued towards one peer; beyond it a send is refused at
    /// once (`overloaded`).
    pub queue: usize,
    /// A registration lapses this long after its last renewal (a game
    /// renews every third of it).
    #[serde(with = "warren_kit::duration::ms")]
    pub lease_ms: Duration,
}

impl Default for GrpcBusSettings {
    fn default() -> Self {
        let grpc = GrpcSettings::new();
        GrpcBusSettings {
            gateway: grpc.gateway,
            listen: grpc.listen,
            advertise: grpc.advertise,
            gateways: grpc.gateways,
            in_flight: grpc.in_flight,
            deadline_ms: grpc.deadline,
            buffer: grpc.buffer,
            queue: grpc.queue,
            lease_ms: grpc.lease,
        }
    }
}

/// The Redis bus (`bus.kind = "redis"`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisBusSettings {
    /// `redis://[user:pass@]host:port[/db]`.
    pub url: Option<SecretUrl>,
    /// Pushes a connector holds between Redis and its sockets; beyond it,
    /// pushes are dropped and counted (`bus_pushes_dropped`), so a
    /// connector that falls behind never blocks Redis.
    pub push_buffer: usize,
}

impl Default for RedisBusSettings {
    fn default() -> Self {
        RedisBusSettings {
            url: None,
            push_buffer: RedisSettings::new("", "").push_buffer,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSettings {
    /// The transport: `memory`, `amqp` or `redis`. Unset: the one whose
    /// URL is set (`amqp_url`, `redis.url`), else `memory`.
    pub kind: Option<BusKind>,
    /// RabbitMQ URL (`bus.kind = "amqp"`).
    pub amqp_url: Option<SecretUrl>,
    /// A RabbitMQ cluster's nodes (URLs that differ only in host and
    /// port), after `amqp_url` if it is set: every connection and every
    /// recovery dials the node that answered last, then the others in
    /// turn, so losing a node costs a reconnection, not the service.
    pub amqp_urls: Vec<SecretUrl>,
    /// RabbitMQ: the request queues and the shard marker are quorum
    /// queues, replicated over the cluster (the durable mode's already
    /// are), so they outlive a node. Set it for a cluster; the same on
    /// every process of a namespace (switching is refused with what to do).
    pub quorum: bool,
    /// The Redis bus (`bus.kind = "redis"`).
    pub redis: RedisBusSettings,
    /// The ZeroMQ bus (`bus.kind = "zmq"`).
    pub zmq: ZmqBusSettings,
    /// The gRPC gateway (`bus.kind = "grpc"`).
    pub grpc: GrpcBusSettings,
    /// Prefix of every exchange and queue name on the broker.
    pub namespace: String,
    /// Unacknowledged deliveries the broker may send each consumer (Redis:
    /// list elements a game pops at once, each a message or a batch).
    pub prefetch: u16,
    /// Bound of every broker queue; publishes beyond it are refused.
    pub max_queue_length: i64,
    /// Messages each in-process channel holds before publishers wait.
    pub memory_capacity: usize,
    /// Game shards on the broker: every connector and game process of a
    /// namespace must say the same (a mismatch stops the process at start).
    pub shards: u16,
    /// The durable mode: the game acknowledges a request only after
    /// handling it, so a killed game loses nothing (RabbitMQ: request
    /// queues are quorum queues and events persistent; Redis: requests go
    /// to streams read through a consumer group). The same on every
    /// process of a namespace. Not in process.
    pub durable: bool,
    /// Durable mode: attempts at one request (a handler that panics hands it
    /// back) before it goes to the dead-letter queue `<namespace>.dead`
    /// (Redis: the stream `{<namespace>}:dead`).
    pub delivery_limit: u32,
    /// RabbitMQ: microseconds the bus collects events or pushes for one
    /// AMQP message. Each message waits at most this much longer; in return
    /// the broker handles a fraction of the messages (at 10,000 requests/s,
    /// 500 µs cuts the CPU per round trip of connector, game and broker by
    /// 40%, and the p99 from 14 ms to under 3 ms on the bench machine). 0
    /// is the natural batching: a message goes at once unless an earlier
    /// write awaits its confirm, and what arrives meanwhile goes together.
    #[serde(with = "warren_kit::duration::us")]
    pub batch_window_us: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("warren-data"),
            worker_threads: 0,
            bus: BusSettings::default(),
            jwt: JwtSettings::default(),
            connector: ConnectorSettings::default(),
            game: GameSettings::default(),
            gold: GoldSettings::default(),
            login: LoginSettings::default(),
            config_svc: ConfigSettings::default(),
            http: CallSettings::default(),
            tls: warren_kit::tls::TlsSettings::default(),
        }
    }
}

impl Default for BusSettings {
    fn default() -> Self {
        let amqp = warren_bus::AmqpSettings::new("", "warren");
        BusSettings {
            kind: None,
            amqp_url: None,
            amqp_urls: Vec::new(),
            quorum: false,
            redis: RedisBusSettings::default(),
            zmq: ZmqBusSettings::default(),
            grpc: GrpcBusSettings::default(),
            namespace: amqp.namespace,
            prefetch: amqp.prefetch,
            max_queue_length: amqp.max_queue_length,
            memory_capacity: warren_bus::MemoryBus::DEFAULT_CAPACITY,
            shards: amqp.shards,
            durable: amqp.durable,
            delivery_limit: amqp.delivery_limit,
            batch_window_us: amqp.batch_window,
        }
    }
}

impl BusSettings {
    /// The transport in force, checked against the other settings: an
    /// `amqp` bus needs its URL, and the durable mode needs a transport
    /// that acknowledges (the in-process bus keeps nothing across a
    /// restart, so it refuses the mode rather than pretend).
    pub fn transport(&self) -> Result<BusKind, String> {
        let kind = match (self.kind, self.amqp_first(), &self.redis.url) {
            (Some(kind), ..) => kind,
            (None, Some(_), Some(_)) => {
                return Err(
                    "both bus.amqp_url and bus.redis.url are set: say which bus with bus.kind \
                     (\"amqp\" or \"redis\")"
                        .into(),
                );
            }
            (None, Some(_), None) => BusKind::Amqp,
            (None, None, Some(_)) => BusKind::Redis,
            (None, None, None) => BusKind::Memory,
        };
        match kind {
            BusKind::Amqp if self.amqp_first().is_none() => Err(
                "bus.kind = \"amqp\" needs bus.amqp_url or bus.amqp_urls (or --amqp URL)".into(),
            ),
            BusKind::Redis if self.redis.url.is_none() => {
                Err("bus.kind = \"redis\" needs bus.redis.url (or --redis URL)".into())
            }
            BusKind::Zmq if self.durable => Err(
                "bus.durable = true needs a transport that keeps messages (bus.kind = \"amqp\" or \
                 \"redis\"): ZeroMQ delivers at most once and keeps nothing across a restart"
                    .into(),
            ),
            BusKind::Zmq if self.zmq.requests.len() != usize::from(self.shards) => Err(format!(
                "bus.shards = {} but bus.zmq.requests names {} addresses: give one per shard",
                self.shards,
                self.zmq.requests.len()
            )),
            BusKind::Grpc if self.durable => Err(
                "bus.durable = true needs a transport that keeps messages (bus.kind = \"amqp\" or \
                 \"redis\"): the gRPC gateway hands each request straight to its service's memory, \
                 and nothing keeps it across a restart"
                    .into(),
            ),
            BusKind::Memory if self.durable => Err(
                "bus.durable = true needs a transport with acknowledgements (bus.kind = \"amqp\" \
                 or \"redis\"): \
                 the in-process bus keeps nothing across a restart"
                    .into(),
            ),
            kind => Ok(kind),
        }
    }

    /// The RabbitMQ URL in force: `amqp_url`, else the first of
    /// `amqp_urls`.
    pub fn amqp_first(&self) -> Option<&SecretUrl> {
        self.amqp_url.as_ref().or(self.amqp_urls.first())
    }

    /// The RabbitMQ bus settings of a process that consumes `shard`'s
    /// requests (any shard for a process that consumes none), on `url`
    /// and the other nodes of `amqp_urls`.
    pub fn amqp(&self, url: &SecretUrl, client_name: &str, shard: u16) -> AmqpSettings {
        let mut nodes: Vec<SecretUrl> = Vec::new();
        for node in &self.amqp_urls {
            if node.expose() != url.expose() && !nodes.iter().any(|n| n.expose() == node.expose()) {
                nodes.push(node.clone());
            }
        }
        AmqpSettings {
            url: url.clone(),
            nodes,
            quorum: self.quorum,
            namespace: self.namespace.clone(),
            prefetch: self.prefetch,
            max_queue_length: self.max_queue_length,
            client_name: client_name.to_owned(),
            shards: self.shards,
            shard,
            durable: self.durable,
            delivery_limit: self.delivery_limit,
            batch_window: self.batch_window_us,
        }
    }

    /// The ZeroMQ bus settings of a process that consumes `shard`'s
    /// requests (any shard for a process that consumes none).
    pub fn zmq(&self, shard: u16) -> ZmqSettings {
        ZmqSettings {
            layout: self.zmq.layout,
            requests: self.zmq.requests.clone(),
            pushes: self.zmq.pushes.clone(),
            push_server: self.zmq.push_server.clone(),
            registry: self.zmq.registry.clone(),
            listen: self.zmq.listen.clone(),
            bind: self.zmq.bind.clone(),
            shard,
            send_hwm: self.zmq.send_hwm,
            receive_hwm: self.zmq.receive_hwm,
            batch_window: self.batch_window_us,
            durable: self.durable,
        }
    }

    /// The gRPC gateway's settings of a process that consumes `shard`'s
    /// requests (any shard for a process that consumes none).
    pub fn grpc(&self, shard: u16) -> GrpcSettings {
        GrpcSettings {
            gateway: self.grpc.gateway,
            listen: self.grpc.listen,
            advertise: self.grpc.advertise.clone(),
            gateways: self.grpc.gateways.clone(),
            shards: self.shards,
            shard,
            durable: self.durable,
            in_flight: self.grpc.in_flight,
            deadline: self.grpc.deadline_ms,
            buffer: self.grpc.buffer,
            queue: self.grpc.queue,
            lease: self.grpc.lease_ms,
            // The process's TLS: set where it is loaded (parts::grpc_bus).
            tls: None,
            client_tls: warren_kit::tls::TlsSettings::default(),
        }
    }

    /// The Redis bus settings of a process that consumes `shard`'s
    /// requests (any shard for a process that consumes none).
    pub fn redis(&self, url: &SecretUrl, client_name: &str, shard: u16) -> RedisSettings {
        RedisSettings {
            url: url.clone(),
            namespace: self.namespace.clone(),
            prefetch: self.prefetch,
            max_queue_length: self.max_queue_length,
            client_name: client_name.to_owned(),
            shards: self.shards,
            shard,
            push_buffer: self.redis.push_buffer,
            batch_window: self.batch_window_us,
            durable: self.durable,
            delivery_limit: self.delivery_limit,
        }
    }
}

/// Loads settings: defaults ← `file` (if given) ← `WARREN_*` variables.
pub fn load(file: Option<&std::path::Path>) -> Result<Settings, Box<figment::Error>> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(file) = file {
        if !file.exists() {
            return Err(Box::new(figment::Error::from(format!(
                "settings file {} does not exist",
                file.display()
            ))));
        }
        figment = figment.merge(Toml::file(file));
    }
    figment
        // WARREN_CONFIG and WARREN_READY_FILE are command-line options
        // (`--config`, `--ready-file`), not settings.
        .merge(
            Env::prefixed("WARREN_")
                .split("__")
                .ignore(&["config", "ready_file"]),
        )
        .extract()
        .map_err(Box::new)
}

#[cfg(test)]
// figment's `Jail` closures return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests;
