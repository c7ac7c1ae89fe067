//! The buses a stack runs on: which one ([`BusKind`]), where the shared
//! servers are, running a scenario on each ([`on_every_bus!`],
//! [`on_networked_buses!`]), and leaving nothing behind on them.

use warren_bus::{AmqpBus, AmqpSettings, Bus as _, RedisBus};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusKind {
    InProcess,
    RabbitMq,
    Redis,
    /// ZeroMQ, layout 1 (pubsub).
    Zmq,
    /// ZeroMQ, layout 2: pushes through `warren push-server`.
    ZmqPushServer,
    /// ZeroMQ, layout 3: one connector and one game (no call gateway).
    ZmqPair,
    /// The gRPC gateway: games register with every connector and call
    /// gateway, which call them.
    Grpc,
}

impl BusKind {
    /// The flags that put a separate `warren connector` or `warren game`
    /// on this bus (RabbitMQ or Redis at `broker`).
    pub(crate) fn args(self, broker: &str) -> Vec<String> {
        match self {
            BusKind::InProcess => Vec::new(),
            BusKind::RabbitMq => vec!["--amqp".into(), broker.to_owned()],
            BusKind::Redis => vec!["--redis".into(), broker.to_owned()],
            BusKind::Zmq | BusKind::ZmqPushServer | BusKind::ZmqPair | BusKind::Grpc => Vec::new(),
        }
    }

    /// Whether the stack's processes talk over a network (every bus but
    /// the in-process one).
    pub fn networked(self) -> bool {
        self != BusKind::InProcess
    }

    /// Whether there is a broker that keeps a namespace.
    pub(crate) fn brokered(self) -> bool {
        matches!(self, BusKind::RabbitMq | BusKind::Redis)
    }

    /// The settings that put every process of a stack of `shards` shards
    /// on this bus, beyond the flags (ZeroMQ: the layout and each shard's
    /// two addresses, on free loopback ports; the gRPC gateway: a gateway
    /// address for each of `connectors` call gateways and connectors, in
    /// that order, see [`BusKind::gateway_of`]).
    pub(crate) fn env(self, shards: u16, connectors: usize) -> Vec<(String, String)> {
        if self == BusKind::Grpc {
            let list: Vec<String> = (0..connectors * 2)
                .map(|_| format!("\"http://{}\"", crate::ports::unused()))
                .collect();
            return vec![
                ("WARREN_BUS__KIND".into(), "grpc".into()),
                (GATEWAYS.into(), format!("[{}]", list.join(","))),
            ];
        }
        let layout = match self {
            BusKind::Zmq => "pubsub",
            BusKind::ZmqPushServer => "push-server",
            BusKind::ZmqPair => "pair",
            _ => return Vec::new(),
        };
        let addresses = || {
            let list: Vec<String> = (0..shards)
                .map(|_| format!("\"tcp://{}\"", crate::ports::unused()))
                .collect();
            format!("[{}]", list.join(","))
        };
        vec![
            ("WARREN_BUS__KIND".into(), "zmq".into()),
            ("WARREN_BUS__ZMQ__LAYOUT".into(), layout.into()),
            ("WARREN_BUS__ZMQ__REQUESTS".into(), addresses()),
            ("WARREN_BUS__ZMQ__PUSHES".into(), addresses()),
            (
                "WARREN_BUS__ZMQ__PUSH_SERVER".into(),
                format!("tcp://{}", crate::ports::unused()),
            ),
            (
                "WARREN_BUS__ZMQ__REGISTRY".into(),
                format!("tcp://{}", crate::ports::unused()),
            ),
        ]
    }
}

const GATEWAYS: &str = "WARREN_BUS__GRPC__GATEWAYS";

impl BusKind {
    /// The gRPC gateway: the setting that makes a stack's `i`th process
    /// that serves a gateway (call gateways first, then connectors) serve
    /// the one the games were given.
    pub(crate) fn gateway_of(self, env: &[(String, String)], i: usize) -> Option<(String, String)> {
        if self != BusKind::Grpc {
            return None;
        }
        let (_, list) = env.iter().find(|(k, _)| k == GATEWAYS)?;
        let url = list
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .nth(i)?
            .trim_matches('"');
        let addr = url.strip_prefix("http://")?;
        Some(("WARREN_BUS__GRPC__GATEWAY".into(), addr.to_owned()))
    }
}

pub fn amqp_url() -> String {
    std::env::var("WARREN_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("WARREN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Deletes a finished stack's namespace from its bus: the Redis keys, or
/// the RabbitMQ topology (declared as the stack declared it). Runs on a
/// runtime of its own: it is called from `Drop`, perhaps inside the
/// test's. A test that is already failing reports its own failure, not a
/// cleanup's.
/// The longest a stack's cleanup may wait for its broker.
const CLEANUP_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) fn delete_namespace(
    kind: BusKind,
    ns: &str,
    broker: &str,
    shards: u16,
    durable: Option<u32>,
    max_queue_length: Option<i64>,
    quorum: bool,
) {
    let (ns, broker) = (ns.to_owned(), broker.to_owned());
    let panicking = std::thread::panicking();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        if kind == BusKind::Redis {
            if let Err(e) = rt.block_on(RedisBus::delete_namespace(&broker, &ns)) {
                assert!(panicking, "cleaning namespace {ns} up on {broker}: {e}");
                eprintln!("namespace {ns} left on {broker}: {e}");
            }
            return;
        }
        // Bounded: a broker that stays away (a cluster node a failed test
        // left stopped) must not hang the test binary.
        let cleaned = rt.block_on(async {
            tokio::time::timeout(CLEANUP_WITHIN, async {
                let mut settings = AmqpSettings::new(&broker, &ns);
                settings.quorum = quorum;
                settings.client_name = "warren-test-cleanup".to_owned();
                settings.shards = shards;
                settings.durable = durable.is_some();
                settings.delivery_limit = durable.unwrap_or(settings.delivery_limit);
                settings.max_queue_length = max_queue_length.unwrap_or(settings.max_queue_length);
                let bus = AmqpBus::connect(settings)
                    .await
                    .expect("broker reachable for cleanup");
                bus.delete_topology().await.expect("topology deleted");
                bus.close().await;
            })
            .await
        });
        if cleaned.is_err() {
            assert!(
                panicking,
                "namespace {ns} left on {broker}: it did not answer"
            );
            eprintln!("namespace {ns} left on {broker}: it did not answer");
        }
    })
    .join()
    .unwrap();
}

/// Runs each named scenario, an `async fn(BusKind)`, as one test per bus
/// listed, under the test attribute given: `scenarios_on!(#[tokio::test]
/// [test_name: BusKind, …]; scenario, …)`. The macros below name the usual
/// lists.
#[doc(hidden)]
#[macro_export]
macro_rules! scenarios_on {
    (#[$test:meta] $buses:tt; $($name:ident),* $(,)?) => {
        $( $crate::scenario_on!(#[$test] $buses $name); )*
    };
}

/// One scenario's module: a test per bus (see [`scenarios_on!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! scenario_on {
    (#[$attr:meta] [$($test:ident: $kind:ident),*] $name:ident) => {
        mod $name {
            use super::*;

            $(
                #[$attr]
                async fn $test() {
                    super::$name(BusKind::$kind).await;
                }
            )*
        }
    };
}

/// Runs each named scenario, an `async fn(BusKind)`, on every networked
/// bus that can carry several connectors and shards (RabbitMQ, Redis,
/// ZeroMQ's pubsub and push-server layouts, the gRPC gateway): the scenarios that need
/// separate processes.
#[macro_export]
macro_rules! on_networked_buses {
    ($($name:ident),* $(,)?) => {
        $crate::scenarios_on!(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            [rabbitmq: RabbitMq, redis: Redis, zmq: Zmq, zmq_push_server: ZmqPushServer, grpc: Grpc];
            $($name),*
        );
    };
}

/// Runs each named scenario, an `async fn(BusKind)`, on every bus that
/// keeps messages (the durable mode: RabbitMQ and Redis).
#[macro_export]
macro_rules! on_durable_buses {
    ($($name:ident),* $(,)?) => {
        $crate::scenarios_on!(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            [rabbitmq: RabbitMq, redis: Redis];
            $($name),*
        );
    };
}

/// Runs each named scenario, an `async fn(BusKind)`, on every bus that has
/// room for the HTTP call gateway beside a connector: all but ZeroMQ's
/// pair layout (one connector, one game).
#[macro_export]
macro_rules! on_buses_with_a_gateway {
    ($($name:ident),* $(,)?) => {
        $crate::scenarios_on!(
            #[tokio::test]
            [in_process: InProcess, rabbitmq: RabbitMq, redis: Redis, zmq: Zmq, grpc: Grpc];
            $($name),*
        );
    };
}

/// Runs each named scenario, an `async fn(BusKind)`, on every bus.
#[macro_export]
macro_rules! on_every_bus {
    ($($name:ident),* $(,)?) => {
        $crate::scenarios_on!(
            #[tokio::test]
            [in_process: InProcess, rabbitmq: RabbitMq, redis: Redis, zmq: Zmq, zmq_pair: ZmqPair, grpc: Grpc];
            $($name),*
        );
    };
}
