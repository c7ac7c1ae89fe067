//! A stream of decoded messages from the bus.
//!
//! In process it is a bounded channel. On RabbitMQ it reads the lapin
//! consumer directly (no forwarding task) and acknowledges in batches: a
//! delivery is acknowledged once the caller has taken it and asked for the
//! next one, with one `multiple` ack for everything taken so far whenever the
//! stream would otherwise wait, or every `ack_every` deliveries under load.
//! The broker's prefetch bounds what is in flight.
//!
//! A delivery may be a batch of several messages (see the `batch` module):
//! they are handed out one by one, in order.
//!
//! In the durable mode nothing is acknowledged here: each delivery comes
//! with its [`Ack`], and the consumer acknowledges it after handling it.

use std::collections::VecDeque;

use futures_util::{FutureExt, StreamExt};
use lapin::{
    Acker, Channel, Consumer,
    options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions},
    types::ShortString,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use warren_proto::DecodeError;

use warren_proto::batch::{BATCH_MARKER, open};

use crate::{Ack, Acknowledger, BusError, Decision, redis::RedisSource, zeromq::ZmqSource};

/// A RabbitMQ delivery's acknowledgement, told to the broker from the
/// runtime the delivery came from.
struct AmqpAck(Acker, tokio::runtime::Handle);

impl Acknowledger for AmqpAck {
    fn decide(self: Box<Self>, decision: Decision) {
        let AmqpAck(acker, rt) = *self;
        rt.spawn(async move {
            let result = match decision {
                Decision::Done => acker.ack(BasicAckOptions::default()).await,
                Decision::Retry | Decision::Reject => {
                    acker
                        .nack(BasicNackOptions {
                            multiple: false,
                            requeue: decision == Decision::Retry,
                        })
                        .await
                }
            };
            // A delivery of a channel that has since died cannot be
            // acknowledged; the broker delivers it again anyway.
            if let Err(e) = result {
                debug!(?decision, error = %e, "acknowledgement not sent (channel gone?)");
            }
        });
    }
}

fn manual(acker: Acker, rt: tokio::runtime::Handle) -> Ack {
    Ack::manual(Box::new(AmqpAck(acker, rt)))
}

/// The longest a batched acknowledgement may take.
const ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Messages delivered to one consumer, in order. Dropping it cancels the
/// consumer on the bus.
#[derive(Debug)]
pub struct Subscription<T> {
    source: Source<T>,
}

#[derive(Debug)]
enum Source<T> {
    Channel(mpsc::Receiver<T>),
    Amqp(Box<AmqpSource<T>>),
    Redis(Box<RedisSource<T>>),
    Zmq(Box<ZmqSource<T>>),
}

pub(crate) struct AmqpSource<T> {
    pub(crate) consumer: Consumer,
    pub(crate) channel: Channel,
    pub(crate) tag: ShortString,
    pub(crate) queue: String,
    pub(crate) decode: fn(&[u8]) -> Result<T, DecodeError>,
    pub(crate) ack_every: usize,
    pub(crate) unacked: Option<Acker>,
    pub(crate) unacked_count: usize,
    pub(crate) ended: bool,
    /// The durable mode: deliveries are acknowledged by the consumer.
    pub(crate) manual: bool,
    /// Set by `close`: nothing is left for `Drop` to do.
    pub(crate) closed: bool,
    /// The rest of a batch delivery, not handed out yet.
    pub(crate) batched: VecDeque<T>,
    /// Opens the consumer again when its connection is rebuilt.
    pub(crate) opener: crate::amqp::Opener,
    /// Changes when the consuming connection is rebuilt.
    pub(crate) generation: tokio::sync::watch::Receiver<u64>,
}

impl<T> std::fmt::Debug for AmqpSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSource")
            .field("queue", &self.queue)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

impl<T> Subscription<T> {
    pub(crate) fn channel(rx: mpsc::Receiver<T>) -> Self {
        Subscription {
            source: Source::Channel(rx),
        }
    }

    pub(crate) fn amqp(source: AmqpSource<T>) -> Self {
        Subscription {
            source: Source::Amqp(Box::new(source)),
        }
    }

    pub(crate) fn redis(source: RedisSource<T>) -> Self {
        Subscription {
            source: Source::Redis(Box::new(source)),
        }
    }

    pub(crate) fn zmq(source: ZmqSource<T>) -> Self {
        Subscription {
            source: Source::Zmq(Box::new(source)),
        }
    }

    /// The next message, or `None` once the bus has closed this consumer.
    /// In the durable mode its [`Ack`] is dropped here, which hands the
    /// message back: durable consumers use [`Subscription::next_delivery`].
    pub async fn next(&mut self) -> Option<T> {
        self.next_delivery().await.map(|(msg, _)| msg)
    }

    /// The next message with its acknowledgement (empty unless the bus is
    /// in the durable mode).
    pub async fn next_delivery(&mut self) -> Option<(T, Ack)> {
        match &mut self.source {
            Source::Channel(rx) => rx.recv().await.map(|m| (m, Ack::none())),
            Source::Amqp(src) => src.next().await,
            Source::Redis(src) => src.next().await,
            Source::Zmq(src) => src.next().await.map(|m| (m, Ack::none())),
        }
    }

    /// Acknowledges everything taken and cancels the consumer, waiting for
    /// both. Call it before shutting the bus down: a delivery taken but not
    /// acknowledged would be redelivered to the next consumer.
    pub async fn close(self) {
        let mut src = match self.source {
            Source::Channel(_) => return,
            Source::Redis(src) => return src.close().await,
            Source::Zmq(src) => return src.close(),
            Source::Amqp(src) => src,
        };
        src.flush_acks().await;
        src.closed = true;
        let tag = src.tag.clone();
        let cancel = src.channel.basic_cancel(tag, BasicCancelOptions::default());
        // Bounded: a channel that is down would hold the cancel.
        match tokio::time::timeout(ACK_TIMEOUT, cancel).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(queue = %src.queue, error = %e, "cancel failed (connection already closed?)")
            }
            Err(_) => {
                debug!(queue = %src.queue, "cancel not answered; the connection closes anyway")
            }
        }
    }
}

impl<T> AmqpSource<T> {
    /// Opens the consumer again on the rebuilt connection, trying every
    /// second until it works; false once the bus is closing.
    async fn reopen(&mut self) -> bool {
        // Deliveries taken on the old connection cannot be acknowledged
        // on the new one; the broker delivers them again.
        self.unacked = None;
        self.unacked_count = 0;
        loop {
            if self.opener.closed() {
                self.ended = true;
                return false;
            }
            match self.opener.open().await {
                Ok((channel, consumer)) => {
                    self.tag = consumer.tag();
                    self.channel = channel;
                    self.consumer = consumer;
                    info!(queue = %self.queue, "consuming again on a rebuilt connection");
                    return true;
                }
                // A shard's queue taken meanwhile (a standby took over):
                // this subscription ends, and its game waits for the shard.
                Err(BusError::AlreadyConsumed(e)) if self.opener.exclusive() => {
                    warn!(queue = %self.queue, error = %e, "another consumer took the queue while the connection was rebuilt");
                    self.ended = true;
                    return false;
                }
                Err(e) => {
                    warn!(queue = %self.queue, error = %e, "could not consume on the rebuilt connection; trying again in 1 s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Acknowledges every delivery taken so far, in one frame.
    ///
    /// Never waits on a channel that is not up (lapin would hold the ack
    /// until the channel recovers, or forever): deliveries taken on a lost
    /// channel are delivered again anyway. An ack is bounded by
    /// [`ACK_TIMEOUT`].
    async fn flush_acks(&mut self) {
        if let Some(acker) = self.unacked.take() {
            self.unacked_count = 0;
            if !self.channel.status().connected() {
                debug!(queue = %self.queue, "not acknowledging on a channel that is down");
                return;
            }
            let multiple = BasicAckOptions { multiple: true };
            match tokio::time::timeout(ACK_TIMEOUT, acker.ack(multiple)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(queue = %self.queue, error = %e, "ack failed"),
                Err(_) => warn!(queue = %self.queue, "ack not sent within {ACK_TIMEOUT:?}"),
            }
        }
    }

    /// Notes a delivery as taken: acknowledged with the next flush, which
    /// comes at once every `ack_every` deliveries.
    async fn taken(&mut self, acker: Acker) {
        self.unacked = Some(acker);
        self.unacked_count += 1;
        if self.unacked_count >= self.ack_every {
            self.flush_acks().await;
        }
    }

    // Long: the consumer's one loop: batched messages first, then a delivery, a reopened consumer or the end, with the acknowledgement rules beside each.
    async fn next(&mut self) -> Option<(T, Ack)> {
        loop {
            if let Some(msg) = self.batched.pop_front() {
                return Some((msg, Ack::none()));
            }
            if self.ended {
                return None;
            }
            let delivery = match self.consumer.next().now_or_never() {
                Some(d) => d,
                None => {
                    // Nothing ready: a good moment to acknowledge.
                    self.flush_acks().await;
                    tokio::select! {
                        d = self.consumer.next() => d,
                        _ = self.generation.changed() => {
                            if !self.reopen().await {
                                return None;
                            }
                            continue;
                        }
                    }
                }
            };
            let delivery = match delivery {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    warn!(queue = %self.queue, error = %e, "lost the broker; waiting for the connection to recover");
                    // Deliveries taken on the dead channel cannot be
                    // acknowledged on the new one.
                    self.unacked = None;
                    self.unacked_count = 0;
                    let recovered = tokio::select! {
                        r = self.channel.wait_for_recovery(e) => Some(r),
                        _ = self.generation.changed() => None,
                    };
                    match recovered {
                        Some(Ok(())) => {
                            info!(queue = %self.queue, "consuming again after the broker came back");
                            continue;
                        }
                        Some(Err(e)) => {
                            warn!(queue = %self.queue, error = %e, "the consumer cannot recover");
                            self.ended = true;
                            return None;
                        }
                        // The connection was rebuilt instead.
                        None => {
                            if !self.reopen().await {
                                return None;
                            }
                            continue;
                        }
                    }
                }
                None => {
                    debug!(queue = %self.queue, "consumer stream ended");
                    self.ended = true;
                    return None;
                }
            };
            let is_batch = delivery.data.first() == Some(&BATCH_MARKER);
            if is_batch {
                if self.manual {
                    // The durable mode publishes requests one by one; a batch
                    // cannot be acknowledged message by message.
                    warn!(queue = %self.queue, "a batch on a durable queue goes to the dead-letter queue");
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        manual(delivery.acker, rt).reject();
                    }
                    continue;
                }
                match open(&delivery.data) {
                    Ok(parts) => {
                        for part in parts {
                            match (self.decode)(part) {
                                Ok(msg) => self.batched.push_back(msg),
                                Err(e) => {
                                    warn!(queue = %self.queue, error = %e, "dropping a message of a batch that does not decode")
                                }
                            }
                        }
                    }
                    Err(e) => {
                        warn!(queue = %self.queue, error = %e, "dropping a batch that does not unpack")
                    }
                }
                self.taken(delivery.acker).await;
                continue;
            }
            let decoded = (self.decode)(&delivery.data);
            if self.manual {
                let Ok(rt) = tokio::runtime::Handle::try_current() else {
                    return None;
                };
                let ack = manual(delivery.acker, rt);
                match decoded {
                    Ok(msg) => return Some((msg, ack)),
                    Err(e) => {
                        warn!(queue = %self.queue, error = %e, "a message that does not decode goes to the dead-letter queue");
                        ack.reject();
                        continue;
                    }
                }
            }
            self.taken(delivery.acker).await;
            match decoded {
                Ok(msg) => return Some((msg, Ack::none())),
                // Acknowledged with the rest: logged and dropped, never
                // redelivered forever.
                Err(e) => {
                    warn!(queue = %self.queue, error = %e, "dropping a message that does not decode")
                }
            }
        }
    }
}

impl<T> Drop for AmqpSource<T> {
    fn drop(&mut self) {
        // Dropped without `close`: acknowledge what was taken and stop the
        // broker from sending more, as well as a destructor can.
        if self.closed {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let acker = self.unacked.take();
        let channel = self.channel.clone();
        let tag = self.tag.clone();
        rt.spawn(async move {
            if let Some(acker) = acker {
                let _ = acker.ack(BasicAckOptions { multiple: true }).await;
            }
            if let Err(e) = channel
                .basic_cancel(tag, BasicCancelOptions::default())
                .await
            {
                debug!(error = %e, "cancel failed (connection already closed?)");
            }
        });
    }
}
