//! The RabbitMQ bus's settings and the names it gives exchanges, queues
//! and routing keys in a namespace.

use std::time::Duration;

use warren_kit::SecretUrl;
use warren_proto::ConnectorId;

/// How to reach the broker and how to name things on it.
#[derive(Clone, Debug)]
pub struct AmqpSettings {
    /// `amqp://user:pass@host:port/vhost`; printed without its password.
    pub url: SecretUrl,
    /// The other nodes of the same cluster (URLs that differ from `url`
    /// only in host and port): every connection and recovery dials the
    /// node that answered last, then the others in turn.
    pub nodes: Vec<SecretUrl>,
    /// Request queues and the shard marker are quorum queues (replicated
    /// over the cluster's nodes, so they outlive one), as in the durable
    /// mode; set it for a cluster. Every process of a namespace must
    /// agree.
    pub quorum: bool,
    /// Prefix of every exchange and queue name.
    pub namespace: String,
    /// Unacknowledged deliveries the broker may send each consumer.
    pub prefetch: u16,
    /// Bound of every queue; publishes beyond it are refused.
    pub max_queue_length: i64,
    /// Shown as the connection name in the broker's tools.
    pub client_name: String,
    /// Game shards of the namespace: every process on it must agree.
    pub shards: u16,
    /// The shard whose requests this process consumes (game processes).
    pub shard: u16,
    /// The durable mode (see the module documentation).
    pub durable: bool,
    /// Durable mode: deliveries of one request before it goes to the
    /// dead-letter queue.
    pub delivery_limit: u32,
    /// How long the batcher collects messages for one AMQP message (zero:
    /// the natural batching; see the `batch` module).
    pub batch_window: Duration,
}

impl AmqpSettings {
    /// The defaults (the settings file's `[bus]` defaults come from here),
    /// for the broker at `url` and the namespace `namespace`.
    pub fn new(url: &str, namespace: &str) -> AmqpSettings {
        AmqpSettings {
            url: url.into(),
            nodes: Vec::new(),
            quorum: false,
            namespace: namespace.to_owned(),
            prefetch: 256,
            max_queue_length: 100_000,
            client_name: "warren".to_owned(),
            shards: 1,
            shard: 0,
            durable: false,
            delivery_limit: 5,
            batch_window: Duration::from_micros(500),
        }
    }
}

/// The names of the exchanges and queues of one namespace.
#[derive(Clone, Debug)]
pub(crate) struct Topology {
    pub requests_exchange: String,
    pub push_exchange: String,
    pub broadcast_exchange: String,
    /// Never holds a message: its `x-max-length` is the shard count, which
    /// the broker refuses to redeclare differently.
    pub shards_marker: String,
    /// Durable mode: where requests that keep failing end.
    pub dead_exchange: String,
    pub dead_queue: String,
    namespace: String,
}

impl Topology {
    pub(super) fn new(namespace: &str) -> Self {
        Topology {
            requests_exchange: format!("{namespace}.requests"),
            push_exchange: format!("{namespace}.push"),
            broadcast_exchange: format!("{namespace}.broadcast"),
            shards_marker: format!("{namespace}.shards"),
            dead_exchange: format!("{namespace}.dead"),
            dead_queue: format!("{namespace}.dead"),
            namespace: namespace.to_owned(),
        }
    }

    /// The request queue of one game shard.
    pub(super) fn requests_queue(&self, shard: u16) -> String {
        format!("{}.requests.{shard}", self.namespace)
    }

    pub(super) fn push_queue(&self, connector: &ConnectorId) -> String {
        format!("{}.push.{connector}", self.namespace)
    }
}

/// The routing key of every message to one shard, and the binding that
/// takes them into its queue.
pub(super) fn shard_key(shard: u16) -> String {
    format!("shard.{shard}")
}
