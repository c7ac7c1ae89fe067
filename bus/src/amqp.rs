//! The RabbitMQ bus, through lapin.
//!
//! Topology (all names start with the namespace, `warren` by default, so
//! several deployments or tests can share one broker):
//!
//! | name | kind | purpose |
//! |---|---|---|
//! | `<ns>.requests` | topic exchange | connectors publish events here |
//! | `<ns>.requests.<i>` | durable queue per game shard, bound `shard.<i>.#` and `lifecycle` | game shard `i` consumes it |
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
//! consumer: a game consumes it exclusively, and a second game for the same
//! shard is refused at start.
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
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, ShortString},
};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use warren_proto::{
    BusEvent, BusPush, ConnectorId, DecodeError, batch::BATCH_CONTENT_TYPE, decode_event,
    decode_push,
};

use crate::{
    Address, Bus, BusError, Confirm, Done, Message, Subscription,
    batch::{Batcher, Sink},
    check,
    subscription::AmqpSource,
};

/// The longest [`Bus::close`] takes, however dead the broker is.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach the broker and how to name things on it.
#[derive(Clone)]
pub struct AmqpSettings {
    /// `amqp://user:pass@host:port/vhost`. Never logged (it may hold a password).
    pub url: String,
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
    /// only what is already waiting; see [`crate::batch`]).
    pub batch_window: Duration,
}

impl fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("url", &"<redacted>")
            .field("namespace", &self.namespace)
            .field("prefetch", &self.prefetch)
            .field("max_queue_length", &self.max_queue_length)
            .field("client_name", &self.client_name)
            .field("shards", &self.shards)
            .field("shard", &self.shard)
            .field("durable", &self.durable)
            .field("delivery_limit", &self.delivery_limit)
            .field("batch_window", &self.batch_window)
            .finish()
    }
}

/// The names of the exchanges and queues of one namespace.
#[derive(Clone, Debug)]
pub struct Topology {
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
    pub fn new(namespace: &str) -> Self {
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
    pub fn requests_queue(&self, shard: u16) -> String {
        format!("{}.requests.{shard}", self.namespace)
    }

    pub fn push_queue(&self, connector: &ConnectorId) -> String {
        format!("{}.push.{connector}", self.namespace)
    }
}

/// The routing key of every message to one shard, and the binding that
/// takes them into its queue.
fn shard_key(shard: u16) -> String {
    format!("shard.{shard}")
}

/// Writes the batcher's bodies to the broker, on the publishing channel
/// (publisher confirms on).
struct AmqpSink {
    channel: Channel,
    health: Health,
    requests_exchange: ShortString,
    push_exchange: ShortString,
    broadcast_exchange: ShortString,
    durable: bool,
}

#[async_trait]
impl Sink for AmqpSink {
    async fn write(&self, to: &Address, body: Vec<u8>, parts: usize) -> Result<Confirm, BusError> {
        let (exchange, key) = match to {
            Address::Shard(s) => (&self.requests_exchange, ShortString::from(shard_key(*s))),
            Address::Connector(id) => (&self.push_exchange, ShortString::from(id.as_str())),
            Address::EveryConnector | Address::EveryShard => {
                (&self.broadcast_exchange, ShortString::from(""))
            }
        };
        let mut properties = BasicProperties::default();
        if parts > 1 {
            properties = properties.with_content_type(BATCH_CONTENT_TYPE.into());
        }
        if self.durable && to.is_shard() {
            // Persistent, one per message (acknowledged one by one).
            properties = properties.with_delivery_mode(2);
        }
        let lost = self.health.next_loss();
        let publish = self.channel.basic_publish(
            exchange.clone(),
            key,
            BasicPublishOptions::default(),
            &body,
            properties,
        );
        let mut lost = Box::pin(lost);
        let confirm = tokio::select! {
            written = publish => written.map_err(unavailable)?,
            _ = &mut lost => return Err(BusError::Unavailable(
                "the connection to RabbitMQ was lost while writing".into(),
            )),
        };
        Ok(Box::pin(async move {
            tokio::select! {
                confirmed = confirm => match confirmed {
                    Ok(c) if c.is_nack() => Err(BusError::Rejected(
                        "the broker refused the message (queue full?)".into(),
                    )),
                    Ok(_) => Ok(()),
                    Err(e) => Err(unavailable(e)),
                },
                _ = lost => Err(BusError::Unavailable(
                    "the connection to RabbitMQ was lost before the broker confirmed".into(),
                )),
            }
        }))
    }

    fn batches(&self, to: &Address) -> bool {
        !(self.durable && to.is_shard())
    }

    fn ready(&self) -> Result<(), BusError> {
        self.health.ready()
    }
}

pub struct AmqpBus {
    topology: Topology,
    settings: AmqpSettings,
    publish_conn: Connection,
    consume_conn: Connection,
    publisher: Channel,
    batcher: Batcher,
    consumers: Mutex<Vec<(Channel, ShortString)>>,
    closed: AtomicBool,
    health: Health,
    watcher: tokio::task::JoinHandle<()>,
}

/// How often the publishing connection's state is looked at.
const WATCH_TICK: Duration = Duration::from_millis(50);

/// Whether the publishing side can take messages, as the watcher sees it.
#[derive(Clone)]
struct Health {
    connection: lapin::ConnectionStatus,
    channel: lapin::ChannelStatus,
    /// Up for two looks in a row (lapin says "connected" for a moment
    /// while a recovery attempt is still failing).
    steady: Arc<AtomicBool>,
    /// The broker blocks publishers (a memory or disk alarm).
    blocked: Arc<AtomicBool>,
    /// Bumped each time the connection is lost.
    lost: watch::Sender<u64>,
}

impl Health {
    fn connected(&self) -> bool {
        self.connection.connected() && self.channel.connected()
    }

    /// `Ok` if a message may be written now: refused at once while the
    /// connection is down or recovering, whatever state the recovery is in.
    fn ready(&self) -> Result<(), BusError> {
        if !(self.steady.load(Ordering::Acquire) && self.connected()) {
            return Err(BusError::Unavailable(
                "the connection to RabbitMQ is down or recovering".into(),
            ));
        }
        if self.blocked.load(Ordering::Acquire) {
            return Err(BusError::Rejected(
                "RabbitMQ is blocking publishers (a memory or disk alarm)".into(),
            ));
        }
        Ok(())
    }

    /// Resolves at the next loss of the connection after the call.
    fn next_loss(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.subscribe();
        async move {
            let _ = lost.changed().await;
        }
    }
}

/// Follows the publishing connection: says in the log when it is lost and
/// when it is back, keeps [`Health`] current, and bumps its `lost` on
/// every loss (lapin holds the publishes and confirms of messages written
/// around a loss until it has recovered, or forever: those are failed at
/// once instead).
async fn watch_connection(health: Health, events: impl futures_util::Stream<Item = lapin::Event>) {
    use futures_util::StreamExt;
    let mut events = std::pin::pin!(events);
    let mut tick = tokio::time::interval(WATCH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut down_since: Option<std::time::Instant> = None;
    let mut up_looks = 2;
    loop {
        tokio::select! {
            event = events.next() => match event {
                None => break,
                Some(lapin::Event::ConnectionBlocked(reason)) => {
                    warn!(%reason, "RabbitMQ blocks publishers: requests are refused (overloaded)");
                    health.blocked.store(true, Ordering::Release);
                }
                Some(lapin::Event::ConnectionUnblocked) => {
                    info!("RabbitMQ takes publishes again");
                    health.blocked.store(false, Ordering::Release);
                }
                Some(_) => {}
            },
            _ = tick.tick() => {
                if !health.connected() {
                    up_looks = 0;
                    health.steady.store(false, Ordering::Release);
                    if down_since.is_none() {
                        warn!("lost RabbitMQ: requests are refused (unavailable) until the connection recovers");
                        down_since = Some(std::time::Instant::now());
                        health.lost.send_modify(|n| *n += 1);
                    }
                    continue;
                }
                up_looks += 1;
                if up_looks >= 2 && let Some(since) = down_since.take() {
                    health.steady.store(true, Ordering::Release);
                    info!(after = ?since.elapsed(), "RabbitMQ connection recovered");
                }
            }
        }
    }
}

impl fmt::Debug for AmqpBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpBus")
            .field("topology", &self.topology)
            .field("closed", &self.closed.load(Ordering::Relaxed))
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

fn unavailable(e: impl fmt::Display) -> BusError {
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
        // If the broker goes away, lapin reconnects (every 0.2 s at first,
        // backing off to every 2 s, never giving up) and replays the
        // topology, consumers, publisher confirms and QoS; consumers wait for
        // that (see `Subscription`), publishers fail fast meanwhile.
        let props = |role: &str| {
            ConnectionProperties::default()
                .with_connection_name(format!("{}-{role}", settings.client_name).into())
                .configure_backoff(|b| {
                    b.with_min_delay(std::time::Duration::from_millis(200))
                        .with_max_delay(std::time::Duration::from_secs(2))
                        .with_max_times(usize::MAX)
                })
                .enable_auto_recover()
        };
        let publish_conn = Connection::connect(&settings.url, props("publish"))
            .await
            .map_err(unavailable)?;
        let consume_conn = Connection::connect(&settings.url, props("consume"))
            .await
            .map_err(unavailable)?;
        let publisher = publish_conn.create_channel().await.map_err(unavailable)?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        let health = Health {
            connection: publish_conn.status().clone(),
            channel: publisher.status().clone(),
            steady: Arc::new(AtomicBool::new(true)),
            blocked: Arc::new(AtomicBool::new(false)),
            lost: watch::channel(0u64).0,
        };
        let watcher = tokio::spawn(watch_connection(
            health.clone(),
            publish_conn.events_listener(),
        ));
        let batcher = Batcher::start(
            Arc::new(AmqpSink {
                channel: publisher.clone(),
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
            publish_conn,
            consume_conn,
            publisher,
            batcher,
            consumers: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            health,
            watcher,
        };
        bus.declare_shared().await?;
        info!(namespace = %bus.settings.namespace, "connected to RabbitMQ");
        Ok(bus)
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
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

    async fn declare_shared(&self) -> Result<(), BusError> {
        let t = &self.topology;
        let ch = &self.publisher;
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
                         than this process's {shards} (bus.shards must be the same everywhere; \
                         see docs/deploy.md)",
                        self.settings.namespace
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
            ch.queue_declare(t.dead_queue.as_str().into(), durable_queue, dead_args)
                .await
                .map_err(unavailable)?;
            bind(ch, &t.dead_queue, &t.dead_exchange, "").await?;
            request_args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
            request_args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(i64::from(self.settings.delivery_limit.max(1))),
            );
            request_args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(t.dead_exchange.as_str().into()),
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
                             process's (bus.durable = {}, bus.delivery_limit = {}, \
                             bus.max_queue_length = {}): these must be the same on every \
                             process of namespace {}, or use a new namespace",
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

    /// `Closed` once [`Bus::close`] has begun: nothing new is published or
    /// consumed after it.
    fn ensure_open(&self) -> Result<(), BusError> {
        if self.closed.load(Ordering::Acquire) {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }

    async fn consume<T: Send + 'static>(
        &self,
        queue: &str,
        prepare: impl AsyncFnOnce(&Channel) -> Result<(), BusError>,
        decode: fn(&[u8]) -> Result<T, DecodeError>,
        manual: bool,
        exclusive: Option<String>,
    ) -> Result<Subscription<T>, BusError> {
        self.ensure_open()?;
        let channel = self
            .consume_conn
            .create_channel()
            .await
            .map_err(unavailable)?;
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        prepare(&channel).await?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions {
                    exclusive: exclusive.is_some(),
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| match (&exclusive, e.kind()) {
                (Some(owner), lapin::ErrorKind::ProtocolError(_)) => {
                    BusError::AlreadyConsumed(format!("{owner} ({e})"))
                }
                _ => unavailable(e),
            })?;
        let tag = consumer.tag();
        self.consumers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((channel.clone(), tag.clone()));
        Ok(Subscription::amqp(AmqpSource {
            consumer,
            channel,
            tag,
            queue: queue.to_owned(),
            decode,
            ack_every: usize::from(self.settings.prefetch / 4).max(1),
            unacked: None,
            unacked_count: 0,
            ended: false,
            manual,
            closed: false,
            batched: VecDeque::new(),
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
            self.publisher
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
            self.publisher
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
        if let Err(e) = self
            .ensure_open()
            .and_then(|()| check(&to, &msg, self.settings.shards))
        {
            return done(Err(e));
        }
        if let Err(e) = self.health.ready() {
            return done(Err(e));
        }
        self.batcher.send(to, msg.encode(), done).await;
    }

    async fn subscribe_pushes(
        &self,
        connector: &ConnectorId,
    ) -> Result<Subscription<BusPush>, BusError> {
        let queue = self.topology.push_queue(connector);
        let t = self.topology.clone();
        let args = self.queue_args();
        let id = connector.to_string();
        let q = queue.clone();
        self.consume(
            &queue,
            async move |ch: &Channel| {
                // Exclusive: the queue lives as long as this connector's
                // consuming connection, so a dead connector leaves nothing.
                ch.queue_declare(
                    q.as_str().into(),
                    QueueDeclareOptions {
                        exclusive: true,
                        auto_delete: true,
                        ..Default::default()
                    },
                    args,
                )
                .await
                .map_err(|e| match e.kind() {
                    lapin::ErrorKind::ProtocolError(_) => BusError::AlreadyConsumed(format!(
                        "push queue {q} is held by another connection: is connector id {id} already running? ({e})"
                    )),
                    _ => unavailable(e),
                })?;
                for (exchange, key) in [(&t.push_exchange, id.as_str()), (&t.broadcast_exchange, "")] {
                    bind(ch, &q, exchange, key).await?;
                }
                Ok(())
            },
            decode_push,
            false,
            None,
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
            &queue,
            async |_: &Channel| Ok(()),
            decode_event,
            self.settings.durable,
            Some(owner),
        )
        .await
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
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
        // Publish what the batcher holds, and let outstanding confirms
        // arrive before the connection goes.
        self.batcher.flush(CLOSE_TIMEOUT / 2).await;
        let _ = self.publisher.wait_for_confirms().await;
        // Close every channel explicitly first: a channel whose last handle
        // is dropped while still open is closed by lapin on its own, racing
        // the connection close.
        for channel in consumers.iter().map(|(c, _)| c).chain([&self.publisher]) {
            if let Err(e) = channel.close(200, "shutdown".into()).await {
                debug!(error = %e, "closing an AMQP channel");
            }
        }
        for conn in [&self.consume_conn, &self.publish_conn] {
            if let Err(e) = conn.close(200, "shutdown".into()).await {
                debug!(error = %e, "closing the AMQP connection");
            }
        }
        self.watcher.abort();
        info!("RabbitMQ connections closed");
    }
}
