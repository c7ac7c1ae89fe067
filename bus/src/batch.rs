//! Batching publishes into fewer AMQP messages.
//!
//! Each round trip through the broker costs two messages (the request and
//! its reply), and the broker's per-message cost, not the bytes, is what
//! limits throughput. So the RabbitMQ bus does not publish each event or
//! push on its own: callers hand them to one batcher task per bus, which
//! packs whatever is waiting for the same queue into one AMQP message.
//!
//! - **The window.** The batcher takes what is queued when it wakes. With no
//!   window it then yields once, so that tasks woken at the same moment can
//!   add theirs, and publishes: a lone message waits for nothing, and under
//!   heavy load batches grow by themselves, because messages pile up while
//!   the previous batch is written. With a window, it waits until `window`
//!   has passed since the first message of the batch and takes everything
//!   that came meanwhile: each message waits at most `window` longer, and
//!   the broker sees far fewer messages under moderate load too.
//! - **Bounds.** A batch holds at most [`MAX_BATCH_ITEMS`] messages and
//!   [`MAX_BATCH_BYTES`] bytes; the queue in front of the batcher holds
//!   [`QUEUE_CAPACITY`] messages, and publishers wait for room (the same
//!   back-pressure as a full channel).
//! - **Order.** Every queue receives its messages in the order they were
//!   published: a batch goes to one destination, and a message that goes to
//!   several destinations (a lifecycle event to every game shard) is copied
//!   into each destination's batch. A broadcast push and pushes to single
//!   connectors are never in flight in one flush, so a connector sees them
//!   in publishing order too.
//! - **Confirms.** A message's [`crate::Confirm`] resolves when the broker
//!   confirms the AMQP message it went out in (every destination's, for a
//!   copied one); a refused batch fails every message in it. A message
//!   handed over with [`Batcher::send`] has no confirm: only a refusal is
//!   heard, through its callback, so a confirmed message wakes nobody.
//!
//! On the wire, a batch of one is the message itself. A batch of more has
//! the content type [`BATCH_CONTENT_TYPE`] and a body of length-prefixed
//! parts ([`warren_proto::batch`] writes and reads it).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use lapin::{BasicProperties, Channel, options::BasicPublishOptions, types::ShortString};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use warren_proto::batch::{BATCH_CONTENT_TYPE, pack};

use crate::{BusError, Confirm, OnRefused};

/// Most messages in one batch.
pub const MAX_BATCH_ITEMS: usize = 512;

/// Most payload bytes in one batch (a single larger message goes alone).
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Messages waiting for the batcher before publishers wait for room.
pub const QUEUE_CAPACITY: usize = 8192;

/// Where a message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dest {
    /// One game shard's request queue; the cmd names the service.
    Shard(u16, u32),
    /// Every game shard (Connect, Close, Error, Alive).
    EveryShard,
    /// One connector's push queue.
    Connector(String),
    /// Every connector's push queue.
    EveryConnector,
}

/// How the batcher names exchanges and routing keys.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    pub requests_exchange: String,
    pub push_exchange: String,
    pub broadcast_exchange: String,
    pub shards: u16,
}

pub(crate) enum Command {
    Publish {
        dest: Dest,
        payload: Vec<u8>,
        done: Done,
    },
    /// Publish everything before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The publishing half, held by the bus.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<Command>,
}

impl Batcher {
    pub(crate) fn start(channel: Channel, names: Names, window: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(rx, channel, names, window));
        Batcher { tx }
    }

    /// Queues one message; the returned confirm resolves when the broker
    /// has confirmed the batch it went out in.
    pub(crate) async fn publish(&self, dest: Dest, payload: Vec<u8>) -> Result<Confirm, BusError> {
        let (done, confirmed) = oneshot::channel();
        self.queue(dest, payload, Done::Confirm(done)).await?;
        Ok(Box::pin(async move {
            confirmed.await.unwrap_or(Err(BusError::Closed))
        }))
    }

    /// Queues one message; `refused` runs only if the broker does not take
    /// the batch it went out in.
    pub(crate) async fn send(
        &self,
        dest: Dest,
        payload: Vec<u8>,
        refused: OnRefused,
    ) -> Result<(), BusError> {
        self.queue(dest, payload, Done::Refused(refused)).await
    }

    async fn queue(&self, dest: Dest, payload: Vec<u8>, done: Done) -> Result<(), BusError> {
        self.tx
            .send(Command::Publish {
                dest,
                payload,
                done,
            })
            .await
            .map_err(|_| BusError::Closed)
    }

    /// Waits until everything queued before the call has been published.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Who hears how a message fared.
pub(crate) enum Done {
    /// A [`crate::Confirm`] waiting on the other end.
    Confirm(oneshot::Sender<Result<(), BusError>>),
    /// Only a refusal is told, to this callback.
    Refused(OnRefused),
}

impl Done {
    fn finish(self, outcome: Result<(), BusError>) {
        match self {
            Done::Confirm(tx) => {
                let _ = tx.send(outcome);
            }
            Done::Refused(refused) => {
                if let Err(e) = outcome {
                    refused(e);
                }
            }
        }
    }
}

/// One message's confirm, shared by the batches it was copied into: the
/// first failure of any copy, and where to send the outcome.
struct Waiter {
    remaining: AtomicUsize,
    result: Mutex<(Option<BusError>, Option<Done>)>,
}

impl Waiter {
    fn resolve(&self, outcome: &Result<(), BusError>) {
        let mut slot = self.result.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = outcome
            && slot.0.is_none()
        {
            slot.0 = Some(match e {
                BusError::Rejected(m) => BusError::Rejected(m.clone()),
                BusError::Closed => BusError::Closed,
                other => BusError::Unavailable(other.to_string()),
            });
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(done) = slot.1.take()
        {
            let outcome = match slot.0.take() {
                Some(e) => Err(e),
                None => Ok(()),
            };
            // Not under the lock: a callback may take locks of its own.
            drop(slot);
            done.finish(outcome);
        }
    }
}

/// What one destination gets in this flush.
struct Group {
    target: Target,
    parts: Vec<Vec<u8>>,
    bytes: usize,
    waiters: Vec<Arc<Waiter>>,
    /// The one cmd of every request in the group, or `None` once they
    /// differ or a lifecycle event is in it.
    cmd: Option<u32>,
    lifecycle_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Shard(u16),
    Connector(String),
    Broadcast,
}

#[derive(Default)]
struct Pending {
    groups: Vec<Group>,
    items: usize,
    bytes: usize,
}

impl Pending {
    fn full(&self) -> bool {
        self.items >= MAX_BATCH_ITEMS || self.bytes >= MAX_BATCH_BYTES
    }

    /// Whether `dest` must wait for a flush to keep order (a broadcast push
    /// after pushes to single connectors, or the other way round).
    fn conflicts(&self, dest: &Dest) -> bool {
        let has = |broadcast: bool| {
            self.groups
                .iter()
                .any(|g| matches!(g.target, Target::Broadcast) == broadcast)
        };
        match dest {
            Dest::EveryConnector => has(false),
            Dest::Connector(_) => has(true),
            _ => false,
        }
    }

    /// Adds one message, copied to every queue it goes to; `done` hears
    /// once every copy is confirmed.
    fn add(&mut self, names: &Names, dest: Dest, payload: Vec<u8>, done: Done) {
        let (targets, cmd): (Vec<Target>, Option<u32>) = match dest {
            Dest::Shard(s, cmd) => (vec![Target::Shard(s)], Some(cmd)),
            Dest::EveryShard => ((0..names.shards).map(Target::Shard).collect(), None),
            Dest::Connector(id) => (vec![Target::Connector(id)], None),
            Dest::EveryConnector => (vec![Target::Broadcast], None),
        };
        let waiter = Arc::new(Waiter {
            remaining: AtomicUsize::new(targets.len()),
            result: Mutex::new((None, Some(done))),
        });
        self.items += 1;
        self.bytes += payload.len();
        let copies = targets.len();
        let mut payload = Some(payload);
        for (i, target) in targets.into_iter().enumerate() {
            let part = if i + 1 == copies {
                payload.take().unwrap_or_default()
            } else {
                payload.clone().unwrap_or_default()
            };
            let group = match self.groups.iter_mut().position(|g| g.target == target) {
                Some(i) => &mut self.groups[i],
                None => {
                    self.groups.push(Group {
                        target,
                        parts: Vec::new(),
                        bytes: 0,
                        waiters: Vec::new(),
                        cmd,
                        lifecycle_only: cmd.is_none(),
                    });
                    let last = self.groups.len() - 1;
                    &mut self.groups[last]
                }
            };
            if group.cmd != cmd {
                group.cmd = None;
            }
            group.lifecycle_only &= cmd.is_none();
            group.bytes += part.len();
            group.parts.push(part);
            group.waiters.push(waiter.clone());
        }
    }
}

impl Group {
    fn address(&self, names: &Names) -> (String, String) {
        match &self.target {
            Target::Shard(s) => {
                let key = match (self.cmd, self.lifecycle_only) {
                    (Some(cmd), _) => format!("shard.{s}.{cmd}"),
                    (None, true) => format!("shard.{s}.lifecycle"),
                    (None, false) => format!("shard.{s}.mixed"),
                };
                (names.requests_exchange.clone(), key)
            }
            Target::Connector(id) => (names.push_exchange.clone(), id.clone()),
            Target::Broadcast => (names.broadcast_exchange.clone(), String::new()),
        }
    }
}

async fn run(mut rx: mpsc::Receiver<Command>, channel: Channel, names: Names, window: Duration) {
    let mut pending = Pending::default();
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let Some(first) = rx.recv().await else { break };
        let mut next = Some(first);
        let deadline = tokio::time::Instant::now() + window;
        let mut yielded = false;
        loop {
            while let Some(command) = next.take() {
                match command {
                    Command::Flush(tx) => {
                        flushed.push(tx);
                        break;
                    }
                    Command::Publish {
                        dest,
                        payload,
                        done,
                    } => {
                        if pending.conflicts(&dest) {
                            publish(&channel, &names, &mut pending).await;
                        }
                        pending.add(&names, dest, payload, done);
                    }
                }
                if pending.full() {
                    break;
                }
                next = rx.try_recv().ok();
            }
            if !flushed.is_empty() || pending.full() {
                break;
            }
            if window.is_zero() {
                if yielded {
                    break;
                }
                yielded = true;
                tokio::task::yield_now().await;
                next = rx.try_recv().ok();
                if next.is_none() {
                    break;
                }
            } else {
                // tokio's timers tick in whole milliseconds; a window is
                // usually shorter, so it is slept on a blocking thread
                // (tens of microseconds of precision), and what arrived
                // meanwhile is taken after it.
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() || yielded {
                    break;
                }
                yielded = true;
                let _ = tokio::task::spawn_blocking(move || std::thread::sleep(left)).await;
                next = rx.try_recv().ok();
                if next.is_none() {
                    break;
                }
            }
        }
        publish(&channel, &names, &mut pending).await;
        for tx in flushed.drain(..) {
            let _ = tx.send(());
        }
    }
    publish(&channel, &names, &mut pending).await;
}

/// Publishes every pending group, in order; their confirms are awaited on
/// a task of their own so the next batch does not wait for them.
async fn publish(channel: &Channel, names: &Names, pending: &mut Pending) {
    pending.items = 0;
    pending.bytes = 0;
    for group in pending.groups.drain(..) {
        let (exchange, key) = group.address(names);
        // Never persistent: the durable mode publishes its requests one by
        // one (each is acknowledged on its own), and pushes are transient.
        let mut properties = BasicProperties::default();
        let body;
        let payload: &[u8] = if group.parts.len() == 1 {
            &group.parts[0]
        } else {
            properties = properties.with_content_type(ShortString::from(BATCH_CONTENT_TYPE));
            body = pack(&group.parts);
            &body
        };
        let sent = channel
            .basic_publish(
                exchange.as_str().into(),
                key.as_str().into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await;
        let waiters = group.waiters;
        match sent {
            Err(e) => {
                debug!(error = %e, messages = waiters.len(), "a batch could not be published");
                let outcome = Err(BusError::Unavailable(e.to_string()));
                for w in &waiters {
                    w.resolve(&outcome);
                }
            }
            Ok(confirm) => {
                tokio::spawn(async move {
                    let outcome = match confirm.await {
                        Ok(c) if c.is_nack() => Err(BusError::Rejected(
                            "the broker refused the message (queue full?)".into(),
                        )),
                        Ok(_) => Ok(()),
                        Err(e) => Err(BusError::Unavailable(e.to_string())),
                    };
                    for w in &waiters {
                        w.resolve(&outcome);
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(shards: u16) -> Names {
        Names {
            requests_exchange: "r".into(),
            push_exchange: "p".into(),
            broadcast_exchange: "b".into(),
            shards,
        }
    }

    fn waiter() -> (Done, oneshot::Receiver<Result<(), BusError>>) {
        let (tx, rx) = oneshot::channel();
        (Done::Confirm(tx), rx)
    }

    /// A callback that counts how often it ran.
    fn refusal() -> (Done, Arc<AtomicUsize>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let seen = runs.clone();
        let done = Done::Refused(Box::new(move |e| {
            assert!(matches!(e, BusError::Rejected(_)));
            seen.fetch_add(1, Ordering::SeqCst);
        }));
        (done, runs)
    }

    #[test]
    fn lifecycle_events_are_copied_to_every_shard_in_order() {
        let names = names(2);
        let mut p = Pending::default();
        p.add(&names, Dest::Shard(1, 10), b"m1".to_vec(), waiter().0);
        p.add(&names, Dest::EveryShard, b"c".to_vec(), waiter().0);
        p.add(&names, Dest::Shard(1, 10), b"m2".to_vec(), waiter().0);
        assert_eq!(p.items, 3);
        let g1 = &p.groups[0];
        assert_eq!(g1.target, Target::Shard(1));
        assert_eq!(
            g1.parts,
            vec![b"m1".to_vec(), b"c".to_vec(), b"m2".to_vec()]
        );
        assert_eq!(g1.address(&names).1, "shard.1.mixed");
        let g0 = &p.groups[1];
        assert_eq!(g0.parts, vec![b"c".to_vec()]);
        assert_eq!(g0.address(&names).1, "shard.0.lifecycle");
    }

    #[test]
    fn requests_of_one_cmd_keep_their_routing_key() {
        let names = names(1);
        let mut p = Pending::default();
        p.add(&names, Dest::Shard(0, 300), b"a".to_vec(), waiter().0);
        p.add(&names, Dest::Shard(0, 300), b"b".to_vec(), waiter().0);
        assert_eq!(p.groups[0].address(&names).1, "shard.0.300");
        p.add(&names, Dest::Shard(0, 301), b"c".to_vec(), waiter().0);
        assert_eq!(p.groups[0].address(&names).1, "shard.0.mixed");
    }

    #[test]
    fn a_broadcast_and_single_pushes_are_never_pending_together() {
        let names = names(1);
        let mut p = Pending::default();
        assert!(!p.conflicts(&Dest::Connector("a".into())));
        p.add(
            &names,
            Dest::Connector("a".into()),
            b"x".to_vec(),
            waiter().0,
        );
        assert!(p.conflicts(&Dest::EveryConnector));
        assert!(!p.conflicts(&Dest::Connector("b".into())));
        p.groups.clear();
        p.add(&names, Dest::EveryConnector, b"y".to_vec(), waiter().0);
        assert!(p.conflicts(&Dest::Connector("a".into())));
        assert!(!p.conflicts(&Dest::EveryConnector));
    }

    #[test]
    fn a_copied_message_is_confirmed_when_every_copy_is() {
        let names = names(3);
        let mut p = Pending::default();
        let (w, mut rx) = waiter();
        p.add(&names, Dest::EveryShard, b"c".to_vec(), w);
        let waiters: Vec<_> = p.groups.iter().map(|g| g.waiters[0].clone()).collect();
        waiters[0].resolve(&Ok(()));
        waiters[1].resolve(&Err(BusError::Rejected("full".into())));
        assert!(rx.try_recv().is_err(), "not yet: one copy is unconfirmed");
        waiters[2].resolve(&Ok(()));
        assert!(matches!(rx.try_recv(), Ok(Err(BusError::Rejected(_)))));
    }

    #[test]
    fn a_refusal_callback_runs_once_and_only_when_a_copy_is_refused() {
        let names = names(2);
        let mut p = Pending::default();
        let (taken, taken_runs) = refusal();
        let (lost, lost_runs) = refusal();
        p.add(&names, Dest::Shard(0, 300), b"a".to_vec(), taken);
        p.add(&names, Dest::EveryShard, b"c".to_vec(), lost);
        let first = p.groups[0].waiters.clone();
        let second = p.groups[1].waiters.clone();
        for w in &first {
            w.resolve(&Ok(()));
        }
        assert_eq!(
            taken_runs.load(Ordering::SeqCst),
            0,
            "a confirmed message is silent"
        );
        assert_eq!(
            lost_runs.load(Ordering::SeqCst),
            0,
            "one copy is still unconfirmed"
        );
        second[0].resolve(&Err(BusError::Rejected("full".into())));
        assert_eq!(lost_runs.load(Ordering::SeqCst), 1);
    }
}
