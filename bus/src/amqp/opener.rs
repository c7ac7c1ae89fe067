//! Opening a consumer, at first and again on a rebuilt connection: a
//! shard's request queue (behind the shard's lock) or a connector's push
//! queue (declared and bound first).

use lapin::{
    Channel,
    options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

use super::{Side, bind, unavailable};
use crate::BusError;
use std::{sync::Arc, time::Duration};

/// The longest opening a consumer may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a durable connector's push queue outlives its consumer (the
/// connector restarting, or moving to another node): then it is deleted.
const PUSH_QUEUE_EXPIRES_MS: i64 = 60_000;

/// How a consumer is opened: at first, and again on a rebuilt connection.
pub(crate) struct Opener {
    pub(super) side: Arc<Side>,
    pub(crate) queue: String,
    pub(super) prefetch: u16,
    /// A shard's queue: consumed exclusively; the message says who owns it.
    pub(super) exclusive: Option<String>,
    /// A connector's push queue: declared and bound before it is consumed.
    pub(super) push: Option<PushQueue>,
}

pub(super) struct PushQueue {
    pub(super) push_exchange: String,
    pub(super) broadcast_exchange: String,
    pub(super) id: String,
    pub(super) args: FieldTable,
    /// The durable mode: a quorum queue (on disk, replicated over a
    /// cluster's nodes) that outlives a node and the connector's
    /// connection for [`PUSH_QUEUE_EXPIRES_MS`], so the replies routed to
    /// it while the connector moves are not lost; the connector id's lock
    /// is then an exclusive queue beside it. Otherwise the push queue is
    /// itself exclusive to the connection, gone with it.
    pub(super) replicated: bool,
}

impl Opener {
    /// Whether the bus is closing: nothing is re-opened then.
    pub(crate) fn closed(&self) -> bool {
        self.side.closed.is_closed()
    }

    /// Whether the queue is consumed exclusively (a shard's requests).
    pub(crate) fn exclusive(&self) -> bool {
        self.exclusive.is_some()
    }

    /// A channel with the prefetch, and a consumer of the queue on it, on
    /// the side's current connection; refused as unavailable after
    /// [`OPEN_TIMEOUT`] (a connection lost meanwhile and rebuilt instead of
    /// recovered would hold the broker's answers forever).
    pub(crate) async fn open(&self) -> Result<(Channel, lapin::Consumer), BusError> {
        tokio::time::timeout(OPEN_TIMEOUT, self.open_now())
            .await
            .unwrap_or_else(|_| {
                self.side.wedged();
                Err(BusError::Unavailable(format!(
                    "RabbitMQ did not answer within {OPEN_TIMEOUT:?} while opening a consumer of {}",
                    self.queue
                )))
            })
    }

    async fn open_now(&self) -> Result<(Channel, lapin::Consumer), BusError> {
        let link = self.side.link();
        let channel = link.conn.create_channel().await.map_err(unavailable)?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable)?;
        let q = &self.queue;
        if let Some(p) = &self.push {
            push_queue(&channel, q, p).await?;
        }
        if let Some(owner) = &self.exclusive {
            shard_lock(&channel, q, owner).await?;
        }
        let consumer = channel
            .basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    exclusive: self.exclusive.is_some(),
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| match (&self.exclusive, e.kind()) {
                (Some(owner), lapin::ErrorKind::ProtocolError(_)) => {
                    BusError::AlreadyConsumed(format!("{owner} ({e})"))
                }
                _ => unavailable(e),
            })?;
        Ok((channel, consumer))
    }
}

/// A queue exclusive to this connection (gone with it): a lock the broker
/// enforces on every queue type. Refused while another connection holds it.
async fn lock(
    channel: &Channel,
    name: &str,
    held: impl FnOnce(String) -> String,
) -> Result<(), BusError> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|_| ())
        .map_err(|e| match e.kind() {
            lapin::ErrorKind::ProtocolError(_) => BusError::AlreadyConsumed(held(e.to_string())),
            _ => unavailable(e),
        })
}

/// Declares and binds a connector's push queue.
async fn push_queue(channel: &Channel, q: &str, p: &PushQueue) -> Result<(), BusError> {
    let held = |e: String| {
        format!(
            "push queue {q} is held by another connection: is connector id {} already running? ({e})",
            p.id
        )
    };
    let (options, args) = if p.replicated {
        lock(channel, &format!("{q}.owner"), held).await?;
        let mut args = p.args.clone();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        args.insert(
            "x-expires".into(),
            AMQPValue::LongLongInt(PUSH_QUEUE_EXPIRES_MS),
        );
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        (durable, args)
    } else {
        // The queue lives as long as this connector's consuming
        // connection, so a dead connector leaves nothing.
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        (exclusive, p.args.clone())
    };
    channel
        .queue_declare(q.into(), options, args)
        .await
        .map_err(|e| match e.kind() {
            lapin::ErrorKind::ProtocolError(_) if p.replicated => BusError::Mismatch(format!(
                "push queue {q} exists with other settings (it was declared outside the durable \
                 mode?): delete it, or wait a minute for it to expire ({e})"
            )),
            lapin::ErrorKind::ProtocolError(_) => BusError::AlreadyConsumed(held(e.to_string())),
            _ => unavailable(e),
        })?;
    for (exchange, key) in [
        (&p.push_exchange, p.id.as_str()),
        (&p.broadcast_exchange, ""),
    ] {
        bind(channel, q, exchange, key).await?;
    }
    Ok(())
}

/// Takes the shard's lock, unless someone consumes the shard's queue:
/// refused then without touching the lock (a refused lock closes the
/// channel, which lapin logs as an error, and a standby asks several times
/// a second).
async fn shard_lock(channel: &Channel, q: &str, owner: &str) -> Result<(), BusError> {
    let queue = channel
        .queue_declare(
            q.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(unavailable)?;
    if queue.consumer_count() > 0 {
        let _ = channel.close(200, "shard taken".into()).await;
        return Err(BusError::AlreadyConsumed(format!(
            "{owner} ({} consumer on the queue)",
            queue.consumer_count()
        )));
    }
    // A quorum queue does not enforce an exclusive consumer: the lock is
    // what the broker enforces.
    lock(channel, &format!("{q}.owner"), |e| format!("{owner} ({e})")).await
}
