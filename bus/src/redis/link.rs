//! Connections to Redis, whether the server is reachable now, and the
//! writer that carries the batcher's bodies.
//!
//! Every connection is a `ConnectionManager` on RESP3: it reconnects by
//! itself (back-off from 100 ms to 2 s), tells us through a push when a
//! connection drops, and resubscribes a subscriber's channels. What it does
//! not do is fail fast while Redis is away, so [`Health`] does: a dropped
//! connection or a failed write marks the bus down, every send is refused
//! at once (`unavailable`) until a probe gets an answer again, and the
//! outage is logged once when it starts and once when it ends.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use redis::{
    AsyncConnectionConfig, Client, ProtocolVersion, PushInfo, PushKind, RedisError,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{info, warn};
use warren_kit::SecretUrl;

use super::keys::{Keys, PUSH_BOUNDED, XADD_BOUNDED};
use crate::{Address, BusError, Confirm, batch::Sink};

/// The longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a command may wait for its answer (blocking pops excepted).
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a bus that is down asks Redis whether it is back.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// Bodies waiting for the writer before the batcher waits for room.
const WRITE_QUEUE: usize = 1024;
/// Most bodies in one pipeline.
const MAX_PIPELINE: usize = 256;

/// A client for `url`, on RESP3 (pushes on the same connection).
pub(super) fn client(url: &SecretUrl) -> Result<Client, BusError> {
    let info = redis::IntoConnectionInfo::into_connection_info(url.expose())
        .map_err(|e| BusError::Mismatch(format!("bus.redis.url {url} is not a Redis URL: {e}")))?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Client::open(info.set_redis_settings(settings)).map_err(unavailable)
}

/// The reconnect policy and timeouts of every connection; `response`
/// bounds each command.
pub(super) fn manager_config(response: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response))
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(2))
}

/// The first connection: fails (`unavailable`) when Redis cannot be
/// reached, instead of retrying, so a process with a wrong URL says so at
/// once.
pub(super) async fn connect(
    client: &Client,
    config: ConnectionManagerConfig,
    name: &str,
) -> Result<ConnectionManager, BusError> {
    // One plain attempt first: the manager would retry quietly.
    let probe = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut first = client
        .get_multiplexed_async_connection_with_config(&probe)
        .await
        .map_err(unavailable)?;
    let _: () = redis::cmd("PING")
        .query_async(&mut first)
        .await
        .map_err(unavailable)?;
    drop(first);
    let mut conn = client
        .get_connection_manager_with_config(config)
        .await
        .map_err(unavailable)?;
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(name.replace(' ', "-"))
        .query_async(&mut conn)
        .await
        .map_err(unavailable)?;
    Ok(conn)
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// Whether the publishing connection is up, and a probe that brings it
/// back up.
#[derive(Debug, Default)]
pub(super) struct Health {
    down: AtomicBool,
    /// Wakes the prober when the bus goes down.
    wake: Notify,
}

impl Health {
    pub(super) fn ready(&self) -> Result<(), BusError> {
        if self.down.load(Ordering::Acquire) {
            Err(BusError::Unavailable("Redis is unreachable".into()))
        } else {
            Ok(())
        }
    }

    /// Marks the bus down; the first caller of an outage logs it.
    pub(super) fn down(&self, why: &str) {
        if !self.down.swap(true, Ordering::AcqRel) {
            warn!(
                reason = why,
                "lost Redis: refusing sends until it answers again"
            );
            self.wake.notify_one();
        }
    }

    /// A push sender that marks the bus down when its connection drops.
    pub(super) fn watch(
        self: &Arc<Self>,
    ) -> impl Fn(PushInfo) -> Result<(), ()> + Send + Sync + 'static + use<> {
        let health = Arc::downgrade(self);
        move |push: PushInfo| {
            if push.kind == PushKind::Disconnection
                && let Some(health) = health.upgrade()
            {
                health.down("the connection dropped");
            }
            Ok(())
        }
    }

    /// While the bus is down, pings every [`PROBE_EVERY`] until Redis
    /// answers, then marks it up. Runs until the bus is dropped.
    pub(super) async fn probe(self: Arc<Self>, mut conn: ConnectionManager) {
        loop {
            if !self.down.load(Ordering::Acquire) {
                self.wake.notified().await;
                continue;
            }
            let ping = redis::cmd("PING");
            let ping = ping.query_async::<()>(&mut conn);
            if let Ok(Ok(())) = tokio::time::timeout(RESPONSE_TIMEOUT, ping).await {
                self.down.store(false, Ordering::Release);
                info!("Redis answers again: taking sends");
                continue;
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }
}

/// One body for the writer.
struct Write {
    to: Target,
    body: Vec<u8>,
    done: oneshot::Sender<Result<(), BusError>>,
}

enum Target {
    /// A shard's request list.
    List(String),
    /// A shard's request stream (the durable mode).
    Stream(String),
    /// A push channel.
    Channel(String),
}

/// The batcher's sink: hands bodies to the writer task, in order.
pub(super) struct RedisSink {
    pub(super) keys: Keys,
    pub(super) health: Arc<Health>,
    /// Requests go to streams, one entry per message.
    durable: bool,
    tx: mpsc::Sender<Write>,
}

impl RedisSink {
    /// Starts the writer on `conn`; lists and streams hold at most
    /// `max_len` elements; `durable` sends requests to streams.
    pub(super) fn start(
        keys: Keys,
        health: Arc<Health>,
        conn: ConnectionManager,
        max_len: i64,
        durable: bool,
    ) -> RedisSink {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(writer(rx, conn, health.clone(), max_len));
        RedisSink {
            keys,
            health,
            durable,
            tx,
        }
    }
}

#[async_trait]
impl Sink for RedisSink {
    async fn write(&self, to: &Address, body: Vec<u8>, _parts: usize) -> Result<Confirm, BusError> {
        let to = match to {
            Address::Shard(s) if self.durable => Target::Stream(self.keys.stream(*s)),
            Address::Shard(s) => Target::List(self.keys.requests(*s)),
            Address::Connector(id) => Target::Channel(self.keys.push(id)),
            Address::EveryConnector => Target::Channel(self.keys.broadcast.clone()),
            Address::EveryShard => {
                return Err(BusError::Mismatch(
                    "a message to every shard is copied to each by the batcher".into(),
                ));
            }
        };
        let (done, confirm) = oneshot::channel();
        self.tx
            .send(Write { to, body, done })
            .await
            .map_err(|_| BusError::Closed)?;
        Ok(Box::pin(async move {
            confirm.await.unwrap_or(Err(BusError::Closed))
        }))
    }

    fn batches(&self, to: &Address) -> bool {
        // The durable mode acknowledges requests one by one.
        !(self.durable && to.is_shard())
    }

    fn ready(&self) -> Result<(), BusError> {
        self.health.ready()
    }
}

/// Writes what is queued as one pipeline at a time: while one is in
/// flight the next gathers, so a lone body goes at once and a busy bus
/// sends few, large pipelines. Each body hears its own outcome.
async fn writer(
    mut rx: mpsc::Receiver<Write>,
    mut conn: ConnectionManager,
    health: Arc<Health>,
    max_len: i64,
) {
    let mut batch = Vec::with_capacity(MAX_PIPELINE);
    while rx.recv_many(&mut batch, MAX_PIPELINE).await > 0 {
        if let Err(e) = health.ready() {
            for w in batch.drain(..) {
                let _ = w.done.send(Err(e.duplicate()));
            }
            continue;
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for w in &batch {
            match &w.to {
                Target::List(key) => pipe
                    .cmd("EVAL")
                    .arg(PUSH_BOUNDED)
                    .arg(1)
                    .arg(key)
                    .arg(&w.body)
                    .arg(max_len),
                Target::Stream(key) => pipe
                    .cmd("EVAL")
                    .arg(XADD_BOUNDED)
                    .arg(1)
                    .arg(key)
                    .arg(&w.body)
                    .arg(max_len),
                Target::Channel(channel) => pipe.cmd("PUBLISH").arg(channel).arg(&w.body),
            };
        }
        // The manager makes a command wait for its reconnection (retries
        // with back-off, seconds long): bound the whole write, so a send
        // is answered within its bound and the bus is marked down.
        let query = pipe.query_async::<Vec<redis::RedisResult<i64>>>(&mut conn);
        let answered = tokio::time::timeout(RESPONSE_TIMEOUT, query)
            .await
            .unwrap_or_else(|_| {
                Err(RedisError::from(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                )))
            });
        match answered {
            Ok(results) => {
                for (w, result) in batch.drain(..).zip(results) {
                    let outcome = match (result, &w.to) {
                        (Ok(-1), Target::List(key) | Target::Stream(key)) => {
                            Err(BusError::Rejected(format!(
                                "requests {key} are full ({max_len} elements, bus.max_queue_length)"
                            )))
                        }
                        (Ok(_), _) => Ok(()),
                        (Err(e), _) => Err(refused(&health, e)),
                    };
                    let _ = w.done.send(outcome);
                }
            }
            Err(e) => {
                let e = refused(&health, e);
                for w in batch.drain(..) {
                    let _ = w.done.send(Err(e.duplicate()));
                }
            }
        }
    }
}

/// What a failed command means for the caller; a connection that failed
/// marks the bus down.
fn refused(health: &Health, e: RedisError) -> BusError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error()
    {
        health.down(&e.to_string());
        BusError::Unavailable(e.to_string())
    } else {
        BusError::Rejected(format!("Redis refused the write: {e}"))
    }
}
