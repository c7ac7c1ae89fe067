//! Reading from Redis: a game's request list, a connector's push channels.
//!
//! Both feed a bounded channel of raw elements (each a message or a sealed
//! batch) that [`RedisSource::next`] opens and decodes, so `next` is
//! cancel-safe: a caller that drops it in a `select!` loses nothing.
//!
//! - **Requests**: a task pops up to `prefetch` elements at once
//!   (`BLMPOP`, blocking at most [`BLOCK`]), and only as many as the
//!   channel has room for. Closing the subscription hands what was popped
//!   but not handed out back to the head of the list, in order, so a game
//!   stopped on purpose loses nothing; a game that dies loses what it had
//!   popped (the default mode promises no more).
//! - **Pushes**: the subscriber connection's push callback puts each
//!   message in the channel without ever waiting; when the channel is full
//!   the message is dropped and counted, and so is every disconnect (Redis
//!   drops a subscriber that falls behind its `client-output-buffer-limit
//!   pubsub`). The connection resubscribes by itself after a disconnect.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use redis::{PushInfo, PushKind, Value, aio::ConnectionManager};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use warren_proto::{
    DecodeError,
    batch::{BATCH_MARKER, open},
};

use super::{lease::Lease, stream::StreamReader};
use crate::Ack;

/// One element read from Redis: a message or a sealed batch, and its
/// acknowledgement (empty unless it came from a durable stream).
pub(super) struct Element {
    pub(super) body: Bytes,
    pub(super) ack: Ack,
}

impl Element {
    fn plain(body: Bytes) -> Element {
        Element {
            body,
            ack: Ack::none(),
        }
    }
}

/// The longest one pop blocks on an empty list: a stop or a dead peer is
/// noticed within it.
pub(super) const BLOCK: Duration = Duration::from_millis(500);
/// The longest closing waits for the popping task.
const STOP_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest handing popped requests back may take.
const GIVE_BACK_TIMEOUT: Duration = Duration::from_secs(1);

/// What a connector's push subscription lost, for its console and
/// `/metrics`.
#[derive(Debug, Default)]
pub(super) struct PushLosses {
    /// Pushes dropped because the connector's buffer was full.
    pub(super) dropped: AtomicU64,
    /// Times the subscriber connection dropped (Redis disconnects a slow
    /// subscriber; a restart or a network fault does too).
    pub(super) disconnects: AtomicU64,
}

/// A stream of messages from Redis (see the module documentation).
pub(crate) struct RedisSource<T> {
    what: String,
    rx: mpsc::Receiver<Element>,
    /// The rest of a batch, not handed out yet.
    parts: VecDeque<Bytes>,
    decode: fn(&[u8]) -> Result<T, DecodeError>,
    /// Cancelled when another process took this consumer's lease.
    lost: CancellationToken,
    end: Option<End>,
}

impl<T> std::fmt::Debug for RedisSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSource")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

/// How a source stops.
enum End {
    Popper {
        stop: CancellationToken,
        task: JoinHandle<()>,
        /// Where what was popped but not handed out goes back.
        conn: ConnectionManager,
        lease: Lease,
    },
    Subscriber {
        conn: ConnectionManager,
        channels: Vec<String>,
        lease: Lease,
    },
    /// A durable stream's reader: what it handed out and nobody settled
    /// stays pending, for the next game.
    Stream {
        stop: CancellationToken,
        task: JoinHandle<()>,
        lease: Lease,
    },
}

impl<T> RedisSource<T> {
    /// A game's requests: pops `key` into a channel of `prefetch` elements.
    pub(super) fn requests(
        key: String,
        pop: ConnectionManager,
        give_back: ConnectionManager,
        lease: Lease,
        prefetch: usize,
        decode: fn(&[u8]) -> Result<T, DecodeError>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(prefetch.max(1));
        let stop = CancellationToken::new();
        let lost = lease.lost();
        let task = tokio::spawn(popper(pop, key.clone(), tx, stop.clone(), lost.clone()));
        RedisSource {
            what: key,
            rx,
            parts: VecDeque::new(),
            decode,
            lost,
            end: Some(End::Popper {
                stop,
                task,
                conn: give_back,
                lease,
            }),
        }
    }

    /// A game's requests in the durable mode: `reader` reads the shard's
    /// stream into a channel of `prefetch` elements.
    pub(super) fn stream(
        reader: impl FnOnce(mpsc::Sender<Element>) -> StreamReader,
        lease: Lease,
        prefetch: usize,
        decode: fn(&[u8]) -> Result<T, DecodeError>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(prefetch.max(1));
        let reader = reader(tx);
        let what = reader.key.clone();
        let stop = CancellationToken::new();
        let lost = lease.lost();
        let task = tokio::spawn(reader.run(stop.clone(), lost.clone()));
        RedisSource {
            what,
            rx,
            parts: VecDeque::new(),
            decode,
            lost,
            end: Some(End::Stream { stop, task, lease }),
        }
    }

    /// A connector's pushes, fed by a subscriber connection's callback
    /// (see [`push_sender`]) into `rx`.
    pub(super) fn pushes(
        rx: mpsc::Receiver<Element>,
        conn: ConnectionManager,
        channels: Vec<String>,
        lease: Lease,
        decode: fn(&[u8]) -> Result<T, DecodeError>,
    ) -> Self {
        RedisSource {
            what: channels.join(" + "),
            rx,
            parts: VecDeque::new(),
            decode,
            lost: lease.lost(),
            end: Some(End::Subscriber {
                conn,
                channels,
                lease,
            }),
        }
    }

    pub(crate) async fn next(&mut self) -> Option<(T, Ack)> {
        loop {
            if let Some(part) = self.parts.pop_front() {
                match (self.decode)(&part) {
                    Ok(msg) => return Some((msg, Ack::none())),
                    Err(e) => {
                        warn!(source = %self.what, error = %e, "dropping a message that does not decode");
                        continue;
                    }
                }
            }
            let Element { body: element, ack } = tokio::select! {
                biased;
                element = self.rx.recv() => element?,
                _ = self.lost.cancelled() => return None,
            };
            if ack.is_manual() {
                // A durable stream's entry: one message, settled by the
                // consumer; one that is not a message is never
                // deliverable.
                if element.first() == Some(&BATCH_MARKER) {
                    warn!(source = %self.what, "a batch on a durable stream goes to the dead-letter stream");
                    ack.reject();
                    continue;
                }
                match (self.decode)(&element) {
                    Ok(msg) => return Some((msg, ack)),
                    Err(e) => {
                        warn!(source = %self.what, error = %e, "a message that does not decode goes to the dead-letter stream");
                        ack.reject();
                        continue;
                    }
                }
            }
            if element.first() != Some(&BATCH_MARKER) {
                self.parts.push_back(element);
                continue;
            }
            match open(&element) {
                Ok(parts) => self
                    .parts
                    .extend(parts.into_iter().map(|p| element.slice_ref(p))),
                Err(e) => {
                    warn!(source = %self.what, error = %e, "dropping a batch that does not unpack")
                }
            }
        }
    }

    /// Stops reading; a game's popped but unread requests go back to the
    /// head of its list. Bounded (about 2 s) even when Redis is gone.
    pub(crate) async fn close(mut self) {
        if let Some((end, unread)) = self.take_end() {
            finish(end, unread, &self.what).await;
        }
    }

    /// The end, with what was taken from Redis and not handed out.
    fn take_end(&mut self) -> Option<(End, Unread)> {
        let end = self.end.take()?;
        let unread = Unread {
            parts: self.parts.drain(..).collect(),
            rx: std::mem::replace(&mut self.rx, mpsc::channel(1).1),
        };
        Some((end, unread))
    }
}

/// What a source took from Redis and did not hand out: the rest of a
/// batch, then the channel.
struct Unread {
    parts: Vec<Bytes>,
    rx: mpsc::Receiver<Element>,
}

impl Unread {
    /// Everything, in order; call once nothing sends any more.
    fn drain(mut self) -> Vec<Bytes> {
        self.rx.close();
        while let Ok(element) = self.rx.try_recv() {
            self.parts.push(element.body);
        }
        self.parts
    }
}

impl<T> Drop for RedisSource<T> {
    fn drop(&mut self) {
        // Dropped without `close`: the same, as well as a destructor can.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some((end, unread)) = self.take_end() else {
            return;
        };
        let what = self.what.clone();
        rt.spawn(async move { finish(end, unread, &what).await });
    }
}

async fn finish(end: End, unread: Unread, what: &str) {
    match end {
        End::Popper {
            stop,
            mut task,
            mut conn,
            lease,
        } => {
            stop.cancel();
            if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
                // Stuck on a Redis that does not answer: what it pops
                // now is lost, which a dead Redis has nothing of anyway.
                task.abort();
            }
            give_back(&mut conn, what, unread.drain()).await;
            lease.release().await;
        }
        End::Subscriber {
            mut conn,
            channels,
            lease,
        } => {
            drop(unread);
            let unsubscribe = conn.unsubscribe(&channels);
            if tokio::time::timeout(STOP_TIMEOUT, unsubscribe)
                .await
                .is_err()
            {
                debug!(
                    source = what,
                    "unsubscribe not answered; the connection closes anyway"
                );
            }
            lease.release().await;
        }
        End::Stream {
            stop,
            mut task,
            lease,
        } => {
            // Unread entries' acks are dropped (retries, which a stopping
            // reader leaves pending for the next game).
            drop(unread);
            stop.cancel();
            if tokio::time::timeout(STOP_TIMEOUT * 4, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
            lease.release().await;
        }
    }
}

/// Puts `rest` back at the head of the list `key`, first element first.
async fn give_back(conn: &mut ConnectionManager, key: &str, rest: Vec<Bytes>) {
    if rest.is_empty() {
        return;
    }
    let n = rest.len();
    let mut lpush = redis::cmd("LPUSH");
    lpush.arg(key);
    for element in rest.iter().rev() {
        lpush.arg(element.as_ref());
    }
    match tokio::time::timeout(GIVE_BACK_TIMEOUT, lpush.query_async::<i64>(conn)).await {
        Ok(Ok(_)) => info!(
            list = key,
            requests = n,
            "handed unread requests back to the list"
        ),
        Ok(Err(e)) => {
            warn!(list = key, requests = n, error = %e, "unread requests lost: Redis refused them back")
        }
        Err(_) => warn!(
            list = key,
            requests = n,
            "unread requests lost: Redis did not take them back in time"
        ),
    }
}

/// Pops the list into `tx` while there is room, until stopped or the
/// lease is lost; a failing Redis is retried with back-off, logged once
/// per outage.
async fn popper(
    mut conn: ConnectionManager,
    key: String,
    tx: mpsc::Sender<Element>,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let max = tx.max_capacity();
    let mut failing = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        // Room for at least one element first.
        let room = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = lost.cancelled() => return,
            permit = tx.reserve() => permit,
        };
        match room {
            Ok(permit) => drop(permit),
            Err(_) => return,
        }
        let count = tx.capacity().clamp(1, max);
        let popped = redis::cmd("BLMPOP")
            .arg(BLOCK.as_secs_f64())
            .arg(1)
            .arg(&key)
            .arg("LEFT")
            .arg("COUNT")
            .arg(count)
            .query_async::<Option<(String, Vec<Vec<u8>>)>>(&mut conn)
            .await;
        match popped {
            Ok(popped) => {
                if failing {
                    info!(list = %key, "popping requests again: Redis is back");
                    failing = false;
                    backoff = Duration::from_millis(100);
                }
                for element in popped.map(|(_, e)| e).unwrap_or_default() {
                    // Never waits: only this task sends, and it made room.
                    if tx.send(Element::plain(Bytes::from(element))).await.is_err() {
                        return;
                    }
                }
                if stop.is_cancelled() {
                    return;
                }
            }
            Err(e) => {
                if !failing {
                    warn!(list = %key, error = %e, "cannot pop requests; trying again with back-off until Redis answers");
                    failing = true;
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The push callback of a connector's subscriber connection: never waits
/// (a full buffer drops the message and counts it) and counts every
/// disconnect.
pub(super) fn push_sender(
    tx: mpsc::Sender<Element>,
    losses: Arc<PushLosses>,
    what: String,
) -> impl Fn(PushInfo) -> Result<(), ()> + Send + Sync + 'static {
    move |push: PushInfo| {
        match push.kind {
            PushKind::Message => {
                // [channel, payload]
                let payload = match push.data.into_iter().nth(1) {
                    Some(Value::BulkString(b)) => Bytes::from(b),
                    other => {
                        warn!(channel = %what, ?other, "a pub/sub message without a payload");
                        return Ok(());
                    }
                };
                if tx.try_send(Element::plain(payload)).is_err()
                    && losses.dropped.fetch_add(1, Ordering::Relaxed) == 0
                {
                    warn!(channel = %what, "the push buffer is full: dropping pushes (counted in bus_pushes_dropped)");
                }
            }
            PushKind::Disconnection => {
                losses.disconnects.fetch_add(1, Ordering::Relaxed);
                warn!(channel = %what, "the push subscription's connection dropped; resubscribing (pushes meanwhile are lost)");
            }
            PushKind::Subscribe => debug!(channel = %what, "subscribed"),
            _ => {}
        }
        Ok(())
    }
}
