//! The RabbitMQ bus, through lapin.
//!
//! Topology (all names start with the namespace, `warren` by default, so
//! several deployments or tests can share one broker):
//!
//! | name | kind | purpose |
//! |---|---|---|
//! | `<ns>.requests` | topic exchange | connectors publish events here |
//! | `<ns>.requests.<i>` | durable queue per game shard, bound `shard.<i>` | game shard `i` consumes it, exclusively |
//! | `<ns>.requests.<i>.owner` | exclusive queue, never used | shard `i`'s lock: held by the connection of the game that serves it |
//! | `<ns>.shards` | durable queue, never used | its `x-max-length` is the shard count |
//! | `<ns>.push` | direct exchange | pushes for one connector, routing key = its id |
//! | `<ns>.broadcast` | fanout exchange | pushes for every connector |
//! | `<ns>.push.<id>` | exclusive queue | one connector's pushes, bound to both |
//! | `<ns>.dead` | fanout exchange and durable queue (durable mode) | requests that failed `delivery_limit` times, or do not decode |
//!
//! **Durable mode** (`durable`): the request queues are quorum queues
//! (replicated, on disk) with a delivery limit and a dead-letter exchange;
//! events are published persistent, with publisher confirms as always; and
//! the game acknowledges a request only after its handler has run (see
//! [`crate::Ack`]), so a game killed mid-stream loses nothing: what it had
//! taken is delivered again to the next one. A namespace is in one mode or
//! the other: a process in the other mode is refused at start.
//!
//! Every message to a shard is published with routing key `shard.<s>`
//! ([`crate::Address::of_event`] picks `s = uid % shards` for a request),
//! so each player's requests have one owner and keep their order; a
//! lifecycle event (Connect, Close, Error, Alive) is copied to every
//! shard's key by the batcher, in its place among the requests. All
//! processes on a namespace must agree on the shard count: the marker queue
//! makes the broker refuse one that does not. A shard's queue has one
//! consumer: the game that holds the shard's lock, an exclusive queue of
//! its consuming connection (a quorum queue ignores the exclusive flag of
//! a consumer, so the lock is what the broker enforces). A second game
//! for the same shard is refused ([`BusError::AlreadyConsumed`]): at start,
//! or, as a standby, until the first one's connection goes.
//!
//! Every queue is bounded (`x-max-length`, `x-overflow: reject-publish`): a
//! publish into a full queue is refused by a negative confirm, which the
//! publisher turns into an error, never a silent loss.
//!
//! Two connections: one publishes (with publisher confirms), one consumes,
//! so a broker that blocks publishers under memory pressure does not also
//! stall the consumers that would drain it.

use std::{
    collections::VecDeque,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use lapin::{
    Channel, ExchangeKind,
    options::{
        BasicCancelOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, ShortString},
};
use tracing::{debug, info, warn};
use warren_proto::{BusEvent, BusPush, ConnectorId, DecodeError, decode_event, decode_push};

mod link;
mod opener;
mod sink;
mod topology;

use link::{Health, Side};
pub(crate) use opener::Opener;
use opener::PushQueue;
use sink::AmqpSink;
pub use topology::AmqpSettings;
use topology::Topology;
use topology::shard_key;

use crate::{
    Address, Bus, BusError, BusState, Done, Message, Open, Subscription, batch::Batcher,
    subscription::AmqpSource,
};

/// The longest [`Bus::close`] takes, however dead the broker is.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct AmqpBus {
    topology: Topology,
    settings: AmqpSettings,
    publish: Arc<Side>,
    consume: Arc<Side>,
    batcher: Batcher,
    consumers: Mutex<Vec<(Channel, ShortString)>>,
    /// The durable mode: this connector's push queue, which outlives the
    /// connection, deleted at a clean close.
    push_queue: Mutex<Option<String>>,
    closed: Arc<Open>,
    health: Health,
    watcher: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for AmqpBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpBus")
            .field("topology", &self.topology)
            .field("closed", &self.closed.is_closed())
            .finish_non_exhaustive()
    }
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), BusError> {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(unavailable)
}

pub(crate) fn unavailable(e: impl fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

impl AmqpBus {
    /// Connects (two connections), enables publisher confirms and declares
    /// the shared topology. Fails with [`BusError::Mismatch`] if the
    /// namespace was set up for another number of shards.
    pub async fn connect(settings: AmqpSettings) -> Result<Self, BusError> {
        if settings.shards == 0 || settings.shard >= settings.shards {
            return Err(BusError::Mismatch(format!(
                "shard {} of {} does not exist (shards count from 0)",
                settings.shard, settings.shards
            )));
        }
        let topology = Topology::new(&settings.namespace);
        // Two connections, watched (see `link`): lapin recovers them by
        // itself, consumers wait for that (see `Subscription`), publishers
        // are refused at once meanwhile, and one that does not recover is
        // rebuilt.
        let closed = Arc::new(Open::default());
        let name = &settings.client_name;
        let urls: Vec<&str> = std::iter::once(&settings.url)
            .chain(&settings.nodes)
            .map(warren_kit::SecretUrl::expose)
            .collect();
        let nodes = Arc::new(link::Nodes::new(&urls)?);
        let publish =
            Arc::new(Side::connect("publish", nodes.clone(), name, true, closed.clone()).await?);
        let consume = Arc::new(Side::connect("consume", nodes, name, false, closed.clone()).await?);
        let health = Health::new(publish.clone());
        let watcher = tokio::spawn(link::watch(health.clone(), consume.clone()));
        let batcher = Batcher::start(
            Arc::new(AmqpSink {
                health: health.clone(),
                requests_exchange: topology.requests_exchange.as_str().into(),
                push_exchange: topology.push_exchange.as_str().into(),
                broadcast_exchange: topology.broadcast_exchange.as_str().into(),
                durable: settings.durable,
            }),
            settings.shards,
            settings.batch_window,
        );
        let bus = AmqpBus {
            topology,
            settings,
            publish,
            consume,
            batcher,
            consumers: Mutex::new(Vec::new()),
            push_queue: Mutex::new(None),
            closed,
            health,
            watcher,
        };
        bus.declare_shared().await?;
        info!(namespace = %bus.settings.namespace, "connected to RabbitMQ");
        Ok(bus)
    }

    fn queue_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(self.settings.max_queue_length),
        );
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        args
    }

    // Long: the whole shared topology, declared in the order the broker needs it.
    async fn declare_shared(&self) -> Result<(), BusError> {
        let t = &self.topology;
        let ch = &self.publisher()?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for (name, kind) in [
            (&t.requests_exchange, ExchangeKind::Topic),
            (&t.push_exchange, ExchangeKind::Direct),
            (&t.broadcast_exchange, ExchangeKind::Fanout),
        ] {
            ch.exchange_declare(name.as_str().into(), kind, durable, FieldTable::default())
                .await
                .map_err(unavailable)?;
        }
        let shards = self.settings.shards;
        let mut marker = FieldTable::default();
        marker.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(i64::from(shards)),
        );
        // On a cluster the marker must outlive a node too: a classic
        // durable queue whose node is down cannot even be declared again
        // (rabbitmq-server #2454), which would stop every process.
        let quorum = self.settings.quorum;
        if quorum {
            marker.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        let durable_queue = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(t.shards_marker.as_str().into(), durable_queue, marker)
            .await
            .map_err(|e| {
                if e.to_string().contains("PRECONDITION") {
                    BusError::Mismatch(format!(
                        "namespace {} on this broker was set up for another number of game shards \
                         or another queue type than this process's (bus.shards = {shards}, \
                         bus.quorum = {quorum}): both must be the same on every process of a \
                         namespace. To switch a namespace's queue type, stop its processes and \
                         delete its queues ({}.*), or use a new namespace (bus.namespace); see \
                         docs/deploy.md",
                        self.settings.namespace, self.settings.namespace
                    ))
                } else {
                    unavailable(e)
                }
            })?;
        let mut request_args = self.queue_args();
        if self.settings.durable {
            ch.exchange_declare(
                t.dead_exchange.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(unavailable)?;
            // Bounded too: when full, the oldest dead message makes room.
            let mut dead_args = FieldTable::default();
            dead_args.insert(
                "x-max-length".into(),
                AMQPValue::LongLongInt(self.settings.max_queue_length),
            );
            dead_args.insert(
                "x-overflow".into(),
                AMQPValue::LongString("drop-head".into()),
            );
            if quorum {
                dead_args.insert(
                    "x-queue-type".into(),
                    AMQPValue::LongString("quorum".into()),
                );
            }
            ch.queue_declare(t.dead_queue.as_str().into(), durable_queue, dead_args)
                .await
                .map_err(unavailable)?;
            bind(ch, &t.dead_queue, &t.dead_exchange, "").await?;
            request_args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(i64::from(self.settings.delivery_limit.max(1))),
            );
            request_args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(t.dead_exchange.as_str().into()),
            );
        }
        if self.settings.durable || quorum {
            request_args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        for shard in 0..shards {
            let queue = t.requests_queue(shard);
            ch.queue_declare(queue.as_str().into(), durable_queue, request_args.clone())
                .await
                .map_err(|e| {
                    if e.to_string().contains("PRECONDITION") {
                        BusError::Mismatch(format!(
                            "request queue {queue} exists with other settings than this \
                             process's (bus.durable = {}, bus.quorum = {quorum}, \
                             bus.delivery_limit = {}, bus.max_queue_length = {}): these must \
                             be the same on every process of namespace {}, or use a new \
                             namespace",
                            self.settings.durable,
                            self.settings.delivery_limit,
                            self.settings.max_queue_length,
                            self.settings.namespace,
                        ))
                    } else {
                        unavailable(e)
                    }
                })?;
            bind(ch, &queue, &t.requests_exchange, &shard_key(shard)).await?;
        }
        Ok(())
    }

    /// The publishing channel of the current connection.
    fn publisher(&self) -> Result<Channel, BusError> {
        self.publish
            .link()
            .channel
            .clone()
            .ok_or_else(|| BusError::Unavailable("no publishing channel".into()))
    }

    async fn consume<T: Send + 'static>(
        &self,
        opener: Opener,
        decode: fn(&[u8]) -> Result<T, DecodeError>,
        manual: bool,
    ) -> Result<Subscription<T>, BusError> {
        self.closed.ensure()?;
        let generation = self.consume.generation.subscribe();
        let (channel, consumer) = opener.open().await?;
        let tag = consumer.tag();
        self.consumers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((channel.clone(), tag.clone()));
        Ok(Subscription::amqp(AmqpSource {
            consumer,
            channel,
            tag,
            queue: opener.queue.clone(),
            decode,
            ack_every: usize::from(self.settings.prefetch / 4).max(1),
            unacked: None,
            unacked_count: 0,
            ended: false,
            manual,
            closed: false,
            batched: VecDeque::new(),
            opener,
            generation,
        }))
    }

    /// Deletes the shared exchanges and the request queue of this namespace.
    /// For tests and for tearing a deployment down; never called at shutdown.
    pub async fn delete_topology(&self) -> Result<(), BusError> {
        let t = &self.topology;
        let dead = self.settings.durable.then(|| t.dead_queue.clone());
        let queues = (0..self.settings.shards)
            .map(|s| t.requests_queue(s))
            .chain([t.shards_marker.clone()])
            .chain(dead);
        for queue in queues {
            self.publisher()?
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(unavailable)?;
        }
        let dead = self.settings.durable.then_some(&t.dead_exchange);
        for name in [
            &t.requests_exchange,
            &t.push_exchange,
            &t.broadcast_exchange,
        ]
        .into_iter()
        .chain(dead)
        {
            self.publisher()?
                .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Bus for AmqpBus {
    fn shards(&self) -> u16 {
        self.settings.shards
    }

    async fn send(&self, to: Address, msg: Message, done: Done) {
        if let Err(e) = self.closed.sendable(&to, &msg, self.settings.shards) {
            return done(Err(e));
        }
        // Refused at once while the connection is down (`Sink::ready`).
        self.batcher.send(to, msg.encode(), done).await;
    }

    async fn subscribe_pushes(
        &self,
        connector: &ConnectorId,
    ) -> Result<Subscription<BusPush>, BusError> {
        let queue = self.topology.push_queue(connector);
        if self.settings.durable {
            *self.push_queue.lock().unwrap_or_else(|p| p.into_inner()) = Some(queue.clone());
        }
        let t = self.topology.clone();
        let args = self.queue_args();
        self.consume(
            Opener {
                side: self.consume.clone(),
                queue,
                prefetch: self.settings.prefetch,
                exclusive: None,
                push: Some(PushQueue {
                    push_exchange: t.push_exchange,
                    broadcast_exchange: t.broadcast_exchange,
                    id: connector.to_string(),
                    args,
                    replicated: self.settings.durable,
                }),
            },
            decode_push,
            false,
        )
        .await
    }

    async fn subscribe_events(&self) -> Result<Subscription<BusEvent>, BusError> {
        let shard = self.settings.shard;
        let queue = self.topology.requests_queue(shard);
        let owner = format!(
            "shard {shard} of namespace {} already has a game process consuming its requests \
             (queue {queue}): stop that one first, or start this one with another game.shard",
            self.settings.namespace
        );
        self.consume(
            Opener {
                side: self.consume.clone(),
                queue,
                prefetch: self.settings.prefetch,
                exclusive: Some(owner),
                push: None,
            },
            decode_event,
            self.settings.durable,
        )
        .await
    }

    fn state(&self) -> BusState {
        BusState {
            up: self.health.ready().is_ok(),
            rebuilds: *self.publish.generation.borrow() + *self.consume.generation.borrow(),
            ..BusState::default()
        }
    }

    async fn close(&self) {
        if !self.closed.close() {
            return;
        }
        if tokio::time::timeout(CLOSE_TIMEOUT, self.shut())
            .await
            .is_err()
        {
            warn!(bound = ?CLOSE_TIMEOUT, "RabbitMQ did not let the bus close in time; leaving the connections behind");
        }
    }
}

impl AmqpBus {
    /// Everything `close` does, unbounded: `close` bounds it.
    async fn shut(&self) {
        let consumers =
            std::mem::take(&mut *self.consumers.lock().unwrap_or_else(|p| p.into_inner()));
        for (channel, tag) in &consumers {
            // Already cancelled if its subscription was closed; harmless then.
            let _ = channel
                .basic_cancel(tag.clone(), BasicCancelOptions::default())
                .await;
        }
        let push_queue = self
            .push_queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let (Some(queue), Ok(channel)) = (push_queue, self.publisher()) {
            // Nobody will read it again: gone now rather than when it
            // expires.
            let deleted = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
            if let Err(e) = deleted {
                debug!(%queue, error = %e, "deleting the push queue");
            }
        }
        // Publish what the batcher holds, and let outstanding confirms
        // arrive before the connection goes.
        let _ = self.batcher.flush(CLOSE_TIMEOUT / 2).await;
        let publisher = self.publisher().ok();
        if let Some(publisher) = &publisher {
            let _ = publisher.wait_for_confirms().await;
        }
        // Close every channel explicitly first: a channel whose last handle
        // is dropped while still open is closed by lapin on its own, racing
        // the connection close.
        for channel in consumers.iter().map(|(c, _)| c).chain(publisher.as_ref()) {
            if let Err(e) = channel.close(200, "shutdown".into()).await {
                debug!(error = %e, "closing an AMQP channel");
            }
        }
        for side in [&self.consume, &self.publish] {
            if let Err(e) = side.link().conn.close(200, "shutdown".into()).await {
                debug!(error = %e, "closing the AMQP connection");
            }
        }
        self.watcher.abort();
        info!("RabbitMQ connections closed");
    }
}
