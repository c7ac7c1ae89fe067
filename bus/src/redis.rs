//! The Redis bus: a list per shard for requests, pub/sub for pushes.
//!
//! Keys and channels of a namespace `ns` (every key carries `{ns}` as its
//! hash tag, so a Redis Cluster keeps a namespace in one slot):
//!
//! | name | kind | purpose |
//! |---|---|---|
//! | `{ns}:requests:<i>` | list | game shard `i`'s requests: connectors push, the game pops |
//! | `{ns}:stream:<i>` | stream, group `games` (durable mode) | game shard `i`'s requests, acknowledged once handled |
//! | `{ns}:dead` | stream (durable mode) | requests that failed `delivery_limit` deliveries, or do not decode |
//! | `{ns}:shards` | string | the namespace's shard count and mode, which every process must match |
//! | `{ns}:lease:shard:<i>` | string with expiry | who consumes shard `i` |
//! | `{ns}:lease:connector:<id>` | string with expiry | who holds connector id `id` |
//! | `{ns}:push:<id>` | channel | pushes for connector `id` |
//! | `{ns}:broadcast` | channel | pushes for every connector |
//!
//! **Requests** wait in the list while no game is there, and each goes to
//! one game. A write is one list element (one message or a sealed batch
//! from the batcher), appended by a short script that refuses it when the
//! list holds `max_queue_length` elements (`Rejected`: the client hears
//! `overloaded`). The game pops many at once with `BLMPOP`, on a
//! connection of its own whose response timeout outlasts the block. A
//! popped request is the game's: one that dies loses what it had popped
//! (the seed's "no ack — for a game neither is a problem"); one stopped
//! on purpose hands the unread ones back.
//!
//! **Pushes** are published on the connector's channel or the broadcast
//! channel, and lost when nobody is subscribed (a connector subscribes
//! before it announces itself, so the game never pushes into nothing while
//! it starts). Each connector subscribes to both on one RESP3 connection
//! that resubscribes by itself; Redis disconnects a subscriber that falls
//! behind its `client-output-buffer-limit pubsub`, and the connector
//! counts that and every push its own buffer had to drop
//! ([`BusState`]).
//!
//! **Owners**: a shard and a connector id each have one, held by a lease
//! (see `lease`). The shard count is a key every process checks at start.
//!
//! **Outages**: while Redis is away every send is refused at once
//! (`unavailable`), the players' sockets stay open, and the connections,
//! the popping and the subscriptions come back by themselves with
//! back-off (see `link`).
//!
//! **Durable mode** (`durable`): requests go to a stream per shard
//! instead, `{ns}:stream:<i>`, read through the consumer group `games` and
//! acknowledged only once handled; a dead game's unsettled requests are
//! claimed by the next one, and a request past `delivery_limit`
//! deliveries goes to the dead-letter stream `{ns}:dead` (see `stream`).
//! A namespace is in one mode or the other: its marker says which, and a
//! process in the other mode is refused at start.

use std::{
    fmt,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use async_trait::async_trait;
use redis::{Client, aio::ConnectionManager};
use tracing::{info, warn};
use warren_proto::{BusEvent, BusPush, ConnectorId, decode_event, decode_push};

mod keys;
mod lease;
mod link;
mod source;
mod stream;

pub use keys::RedisSettings;
use keys::{Keys, MARKER};
use lease::Lease;
use link::{Health, RESPONSE_TIMEOUT, RedisSink, unavailable};
pub(crate) use source::RedisSource;
use source::{BLOCK, PushLosses};

use crate::{Address, Bus, BusError, BusState, Done, Message, Open, Subscription, batch::Batcher};

/// The longest [`Bus::close`] takes, however dead Redis is.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RedisBus {
    settings: RedisSettings,
    keys: Keys,
    client: Client,
    /// Writes, leases and the shard-count marker.
    conn: ConnectionManager,
    health: Arc<Health>,
    batcher: Batcher,
    losses: Arc<PushLosses>,
    closed: Open,
    prober: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBus")
            .field("url", &self.settings.url)
            .field("namespace", &self.settings.namespace)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Connects and checks the namespace's shard count: `Mismatch` if it
    /// was set up for another number of shards, `Unavailable` if Redis
    /// cannot be reached.
    pub async fn connect(settings: RedisSettings) -> Result<Self, BusError> {
        if settings.shards == 0 || settings.shard >= settings.shards {
            return Err(BusError::Mismatch(format!(
                "shard {} of {} does not exist (shards count from 0)",
                settings.shard, settings.shards
            )));
        }
        let keys = Keys::new(&settings.namespace);
        let client = link::client(&settings.url)?;
        let health = Arc::new(Health::default());
        let config = link::manager_config(RESPONSE_TIMEOUT).set_push_sender(health.watch());
        let mut conn = link::connect(&client, config, &settings.client_name).await?;
        let marker = marker(&settings);
        let found: String = redis::cmd("EVAL")
            .arg(MARKER)
            .arg(1)
            .arg(&keys.marker)
            .arg(&marker)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if found != marker {
            return Err(BusError::Mismatch(format!(
                "namespace {} on this Redis was set up for other settings ({found}) than this \
                 process's ({marker}): bus.shards, bus.durable and bus.delivery_limit must be the \
                 same on every process of a namespace, or use a new namespace (see docs/deploy.md)",
                settings.namespace
            )));
        }
        let prober = tokio::spawn(health.clone().probe(conn.clone()));
        let sink = RedisSink::start(
            keys.clone(),
            health.clone(),
            conn.clone(),
            settings.max_queue_length,
            settings.durable,
        );
        let batcher = Batcher::start(Arc::new(sink), settings.shards, settings.batch_window);
        info!(namespace = %settings.namespace, url = %settings.url, "connected to Redis");
        Ok(RedisBus {
            settings,
            keys,
            client,
            conn,
            health,
            batcher,
            losses: Arc::new(PushLosses::default()),
            closed: Open::default(),
            prober,
        })
    }

    fn marker(&self) -> (String, String) {
        (self.keys.marker.clone(), marker(&self.settings))
    }

    /// Deletes the keys of `namespace` on the Redis at `url` (request
    /// lists, marker, leases). For tests and for tearing a deployment
    /// down; never called at shutdown.
    pub async fn delete_namespace(url: &str, namespace: &str) -> Result<(), BusError> {
        let client = link::client(&url.into())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(unavailable)?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{namespace}}}:*"))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<i64>(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

impl RedisBus {
    /// How many requests the dead-letter stream of `namespace` holds (the
    /// durable mode).
    pub async fn dead_letters(url: &str, namespace: &str) -> Result<u64, BusError> {
        let client = link::client(&url.into())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(unavailable)?;
        redis::cmd("XLEN")
            .arg(&Keys::new(namespace).dead)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }
}

/// What every process of a namespace must agree on.
fn marker(settings: &RedisSettings) -> String {
    if settings.durable {
        format!(
            "shards={} durable delivery_limit={}",
            settings.shards, settings.delivery_limit
        )
    } else {
        format!("shards={}", settings.shards)
    }
}

#[async_trait]
impl Bus for RedisBus {
    fn shards(&self) -> u16 {
        self.settings.shards
    }

    async fn send(&self, to: Address, msg: Message, done: Done) {
        if let Err(e) = self.closed.sendable(&to, &msg, self.settings.shards) {
            return done(Err(e));
        }
        self.batcher.send(to, msg.encode(), done).await;
    }

    async fn subscribe_pushes(
        &self,
        connector: &ConnectorId,
    ) -> Result<Subscription<BusPush>, BusError> {
        self.closed.ensure()?;
        let lease = Lease::acquire(
            self.conn.clone(),
            self.keys.connector_lease(connector),
            &format!(
                "connector id {connector} is held by another running connector on namespace {}",
                self.settings.namespace
            ),
            self.marker(),
        )
        .await?;
        let channels = vec![self.keys.push(connector), self.keys.broadcast.clone()];
        let (tx, rx) = tokio::sync::mpsc::channel(self.settings.push_buffer.max(1));
        let callback = source::push_sender(tx, self.losses.clone(), channels[0].clone());
        let config = link::manager_config(RESPONSE_TIMEOUT)
            .set_push_sender(callback)
            .set_automatic_resubscription();
        let name = format!("{}-push-{connector}", self.settings.client_name);
        let mut conn = link::connect(&self.client, config, &name).await?;
        // Subscribed to both before this returns: nothing pushed after it
        // is missed.
        conn.subscribe(&channels).await.map_err(unavailable)?;
        Ok(Subscription::redis(RedisSource::pushes(
            rx,
            conn,
            channels,
            lease,
            decode_push,
        )))
    }

    async fn subscribe_events(&self) -> Result<Subscription<BusEvent>, BusError> {
        self.closed.ensure()?;
        let shard = self.settings.shard;
        let key = if self.settings.durable {
            self.keys.stream(shard)
        } else {
            self.keys.requests(shard)
        };
        let lease = Lease::acquire(
            self.conn.clone(),
            self.keys.shard_lease(shard),
            &format!(
                "shard {shard} of namespace {} already has a game process consuming its requests \
                 (list {key}): stop that one first, or start this one with another game.shard",
                self.settings.namespace
            ),
            self.marker(),
        )
        .await?;
        // A blocking pop answers after at most BLOCK: its response
        // timeout must outlast that (the default would cut every pop).
        let config = link::manager_config(BLOCK + RESPONSE_TIMEOUT);
        let name = format!("{}-pop-{shard}", self.settings.client_name);
        let pop = link::connect(&self.client, config, &name).await?;
        if self.settings.durable {
            let mut conn = self.conn.clone();
            stream::ensure_group(&mut conn, &key)
                .await
                .map_err(unavailable)?;
            let me = lease.holder().replace([' ', '#'], "-");
            let (dead, limit) = (self.keys.dead.clone(), self.settings.delivery_limit.max(1));
            return Ok(Subscription::redis(RedisSource::stream(
                |tx| stream::StreamReader {
                    key,
                    dead,
                    me,
                    limit,
                    conn,
                    read: pop,
                    tx,
                },
                lease,
                usize::from(self.settings.prefetch),
                decode_event,
            )));
        }
        Ok(Subscription::redis(RedisSource::requests(
            key,
            pop,
            self.conn.clone(),
            lease,
            usize::from(self.settings.prefetch),
            decode_event,
        )))
    }

    fn state(&self) -> BusState {
        BusState {
            up: self.health.ready().is_ok(),
            rebuilds: 0,
            pushes_dropped: self.losses.dropped.load(Ordering::Relaxed),
            subscriber_disconnects: self.losses.disconnects.load(Ordering::Relaxed),
        }
    }

    async fn close(&self) {
        if !self.closed.close() {
            return;
        }
        // Write what the batcher holds; what Redis does not take in time
        // hears why.
        let bound = CLOSE_TIMEOUT / 2;
        if !self.batcher.flush(bound).await {
            warn!(?bound, "Redis did not take the last writes in time");
        }
        self.prober.abort();
        info!("Redis bus closed");
    }
}
