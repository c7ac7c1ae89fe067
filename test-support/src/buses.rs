//! The buses a stack runs on: which one ([`BusKind`]), where the shared
//! servers are, running a scenario on each ([`on_every_bus!`],
//! [`on_networked_buses!`]), and leaving nothing behind on them.

use warren_bus::{AmqpBus, AmqpSettings, Bus as _, RedisBus};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusKind {
    InProcess,
    RabbitMq,
    Redis,
}

impl BusKind {
    /// The flags that put a separate `warren connector` or `warren game`
    /// on this bus (Redis at `redis`).
    pub(crate) fn args(self, redis: &str) -> Vec<String> {
        match self {
            BusKind::InProcess => Vec::new(),
            BusKind::RabbitMq => vec!["--amqp".into(), amqp_url()],
            BusKind::Redis => vec!["--redis".into(), redis.to_owned()],
        }
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
pub(crate) fn delete_namespace(
    kind: BusKind,
    ns: &str,
    redis: &str,
    shards: u16,
    durable: Option<u32>,
    max_queue_length: Option<i64>,
) {
    let (ns, redis) = (ns.to_owned(), redis.to_owned());
    let panicking = std::thread::panicking();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        if kind == BusKind::Redis {
            if let Err(e) = rt.block_on(RedisBus::delete_namespace(&redis, &ns)) {
                assert!(panicking, "cleaning namespace {ns} up on {redis}: {e}");
                eprintln!("namespace {ns} left on {redis}: {e}");
            }
            return;
        }
        rt.block_on(async {
            let mut settings = AmqpSettings::new(&amqp_url(), &ns);
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
        });
    })
    .join()
    .unwrap();
}

/// Runs each named scenario, an `async fn(BusKind)`, on every networked
/// bus (RabbitMQ and Redis): the ones that need separate processes.
#[macro_export]
macro_rules! on_networked_buses {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn rabbitmq() {
                    super::$name(BusKind::RabbitMq).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    super::$name(BusKind::Redis).await;
                }
            }
        )*
    };
}

/// Runs each named scenario, an `async fn(BusKind)`, on every bus.
#[macro_export]
macro_rules! on_every_bus {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test]
                async fn in_process() {
                    super::$name(BusKind::InProcess).await;
                }

                #[tokio::test]
                async fn rabbitmq() {
                    super::$name(BusKind::RabbitMq).await;
                }

                #[tokio::test]
                async fn redis() {
                    super::$name(BusKind::Redis).await;
                }
            }
        )*
    };
}
