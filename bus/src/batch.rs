//! Batching sends into fewer transport messages, for every transport.
//!
//! Each round trip through a broker costs two messages (the request and
//! its reply), and a broker's per-message cost, not the bytes, is what
//! limits throughput. So a transport does not write each event or push on
//! its own: [`Bus::send`](crate::Bus::send) hands them to one batcher task
//! per bus, which packs whatever is waiting for the same queue into one
//! transport message and hands it to the transport's [`Sink`].
//!
//! - **The window.** The batcher takes what is queued when it wakes. With no
//!   window (the natural, or group-commit, batching) it then yields once,
//!   so that tasks woken at the same moment can add theirs, and writes at
//!   once unless an earlier write still waits for its confirm: then it
//!   gathers what arrives until that confirm comes (at most [`MAX_HOLD`],
//!   or until the batch is full). A lone message waits for nothing, and
//!   under load batches grow with the broker's confirm time. With a
//!   window, it waits until `window` has passed since the first message of
//!   the batch (a timer in the runtime's own poll: [`window`]) and takes
//!   everything that came meanwhile: each message waits up to `window`
//!   longer, and the broker sees fewer messages at moderate loads too.
//! - **Bounds.** A batch holds at most [`MAX_BATCH_ITEMS`] messages and
//!   [`MAX_BATCH_BYTES`] bytes; the queue in front of the batcher holds
//!   [`QUEUE_CAPACITY`] messages, and a sender waits for room at most
//!   [`crate::SEND_WAIT`], then the message is refused (`Rejected`). A
//!   write that the transport has not taken within [`WRITE_TIMEOUT`], or
//!   not confirmed within [`CONFIRM_TIMEOUT`], fails its messages
//!   (`Unavailable`), so a transport stuck in recovery never wedges the
//!   batcher or anyone waiting on it.
//! - **Order.** Every queue receives its messages in the order they were
//!   sent: a batch goes to one queue, and a message to every shard is
//!   copied into each shard's batch. A broadcast push and pushes to single
//!   connectors are never in flight in one flush, so a connector sees them
//!   in sending order too.
//! - **Outcomes.** A message's [`Done`] hears once its batch is confirmed
//!   (every shard's, for a copied one); a refused batch fails every message
//!   in it.
//!
//! On the wire a batch of one is the message itself; a batch of more is
//! sealed by [`warren_proto::batch::seal`] with an in-band marker, so a
//! transport without message properties carries it as it is.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use futures_util::FutureExt;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::debug;

use warren_proto::batch::seal;

use crate::{Address, BusError, Confirm, Done, SEND_WAIT};
use window::WindowTimer;

/// Most messages in one batch.
pub(crate) const MAX_BATCH_ITEMS: usize = 512;

/// Most payload bytes in one batch (a single larger message goes alone).
pub(crate) const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Messages waiting for the batcher before senders wait for room.
pub(crate) const QUEUE_CAPACITY: usize = 8192;

/// The longest the batcher waits for the transport to take one write.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// With no window, the longest a batch is held back while an earlier
/// write waits for its confirm.
pub(crate) const MAX_HOLD: Duration = Duration::from_millis(5);

/// The longest a written batch waits for the transport's confirm.
pub(crate) const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// What a transport provides to the batcher: it writes one body to one
/// queue.
#[async_trait]
pub(crate) trait Sink: Send + Sync + 'static {
    /// Writes `body` (one message, or a sealed batch of `parts` messages)
    /// to the queue `to` (never [`Address::EveryShard`]: the batcher copies
    /// such a message to each shard). Calls come one at a time, in sending
    /// order, and must keep that order; the returned [`Confirm`] resolves
    /// when the transport has taken the body.
    async fn write(&self, to: &Address, body: Vec<u8>, parts: usize) -> Result<Confirm, BusError>;

    /// Whether messages for `to` may share one body. A transport that
    /// acknowledges requests one by one (the durable mode) says no for
    /// shards.
    fn batches(&self, _to: &Address) -> bool {
        true
    }

    /// `Ok` if the transport can take a write now. A write queued while it
    /// was up and due while it is down fails at once instead of waiting
    /// for the transport.
    fn ready(&self) -> Result<(), BusError> {
        Ok(())
    }
}

enum Command {
    Send {
        to: Address,
        payload: Vec<u8>,
        done: Done,
    },
    /// Write everything before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// The sending half, held by the bus.
#[derive(Clone)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<Command>,
    sink: Arc<dyn Sink>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batcher task for `sink` on a bus of `shards` shards.
    pub(crate) fn start(sink: Arc<dyn Sink>, shards: u16, window: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(rx, sink.clone(), shards, window));
        Batcher { tx, sink }
    }

    /// Queues one message; `done` hears once the batch it went out in is
    /// confirmed, or why not. Waits for room at most [`SEND_WAIT`].
    /// A transport that is not ready ([`Sink::ready`]) refuses it at once.
    pub(crate) async fn send(&self, to: Address, payload: Vec<u8>, done: Done) {
        if let Err(e) = self.sink.ready() {
            return done(Err(e));
        }
        let command = Command::Send { to, payload, done };
        let command = match self.tx.try_send(command) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Closed(c)) => return refuse(c, BusError::Closed),
            Err(mpsc::error::TrySendError::Full(c)) => c,
        };
        match self.tx.send_timeout(command, SEND_WAIT).await {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Closed(c)) => refuse(c, BusError::Closed),
            Err(mpsc::error::SendTimeoutError::Timeout(c)) => refuse(
                c,
                BusError::Rejected(format!(
                    "the bus's send queue has been full for {SEND_WAIT:?}"
                )),
            ),
        }
    }

    /// Waits until everything queued before the call has been written, at
    /// most `bound`; false if the bound passed first.
    pub(crate) async fn flush(&self, bound: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        tokio::time::timeout(bound, async {
            if self.tx.send(Command::Flush(tx)).await.is_ok() {
                let _ = rx.await;
            }
        })
        .await
        .is_ok()
    }
}

fn refuse(command: Command, error: BusError) {
    if let Command::Send { done, .. } = command {
        done(Err(error));
    }
}

/// One message's outcome, shared by the batches it was copied into: the
/// first failure of any copy, and who hears it.
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
            slot.0 = Some(e.duplicate());
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
            done(outcome);
        }
    }
}

/// What one queue gets in one transport message.
struct Group {
    to: Address,
    parts: Vec<Vec<u8>>,
    waiters: Vec<Arc<Waiter>>,
    /// Whether more may join (false where the transport writes each alone).
    open: bool,
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

    /// Whether `to` must wait for a flush to keep order (a broadcast push
    /// after pushes to single connectors, or the other way round).
    fn conflicts(&self, to: &Address) -> bool {
        let has = |broadcast: bool| {
            self.groups
                .iter()
                .any(|g| matches!(g.to, Address::EveryConnector) == broadcast)
        };
        match to {
            Address::EveryConnector => has(false),
            Address::Connector(_) => has(true),
            _ => false,
        }
    }

    /// Adds one message, copied to every queue it goes to; `done` hears
    /// once every copy is confirmed.
    fn add(&mut self, sink: &dyn Sink, shards: u16, to: Address, payload: Vec<u8>, done: Done) {
        let queues = to.queues(shards);
        let waiter = Arc::new(Waiter {
            remaining: AtomicUsize::new(queues.len()),
            result: Mutex::new((None, Some(done))),
        });
        if queues.is_empty() {
            waiter.resolve(&Ok(()));
            return;
        }
        self.items += 1;
        self.bytes += payload.len();
        let copies = queues.len();
        let mut payload = Some(payload);
        for (i, queue) in queues.into_iter().enumerate() {
            let part = if i + 1 == copies {
                payload.take().unwrap_or_default()
            } else {
                payload.clone().unwrap_or_default()
            };
            let group = match self.groups.iter().position(|g| g.open && g.to == queue) {
                Some(i) => &mut self.groups[i],
                None => {
                    let open = sink.batches(&queue);
                    self.groups.push(Group {
                        to: queue,
                        parts: Vec::new(),
                        waiters: Vec::new(),
                        open,
                    });
                    let last = self.groups.len() - 1;
                    &mut self.groups[last]
                }
            };
            group.parts.push(part);
            group.waiters.push(waiter.clone());
        }
    }
}

/// Writes whose confirm has not come yet, shared by the batcher and the
/// tasks that wait for the confirms.
#[derive(Debug, Default)]
struct Flights {
    unconfirmed: AtomicUsize,
    /// Told each time a confirm comes.
    settled: Notify,
}

/// One unconfirmed write, counted until dropped.
struct Flight(Arc<Flights>);

impl Flight {
    fn new(flights: &Arc<Flights>) -> Self {
        flights.unconfirmed.fetch_add(1, Ordering::AcqRel);
        Flight(flights.clone())
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.0.unconfirmed.fetch_sub(1, Ordering::AcqRel);
        self.0.settled.notify_one();
    }
}

/// The batcher task's state.
struct Batching {
    sink: Arc<dyn Sink>,
    shards: u16,
    pending: Pending,
    /// Who asked for a flush of what is pending.
    flushed: Vec<oneshot::Sender<()>>,
    flights: Arc<Flights>,
}

impl Batching {
    /// Adds one command to the batch; false once the batch must be written
    /// now (it is full, or a flush was asked for).
    async fn take(&mut self, command: Command) -> bool {
        match command {
            Command::Flush(tx) => {
                self.flushed.push(tx);
                false
            }
            Command::Send { to, payload, done } => {
                if self.pending.conflicts(&to) {
                    self.write().await;
                }
                self.pending
                    .add(&*self.sink, self.shards, to, payload, done);
                !self.pending.full()
            }
        }
    }

    /// Adds everything already queued; false as [`Batching::take`].
    async fn take_queued(&mut self, rx: &mut mpsc::Receiver<Command>) -> bool {
        while let Ok(command) = rx.try_recv() {
            if !self.take(command).await {
                return false;
            }
        }
        true
    }

    /// The natural batching: while an earlier write waits for its confirm,
    /// gathers what arrives, until no write is unconfirmed, the batch is
    /// full, a flush is asked for or [`MAX_HOLD`] has passed.
    async fn hold(&mut self, rx: &mut mpsc::Receiver<Command>) {
        if self.flights.unconfirmed.load(Ordering::Acquire) == 0 {
            return;
        }
        let until = tokio::time::Instant::now() + MAX_HOLD;
        let flights = self.flights.clone();
        while flights.unconfirmed.load(Ordering::Acquire) > 0 {
            tokio::select! {
                biased;
                () = flights.settled.notified() => {}
                command = rx.recv() => match command {
                    Some(command) => {
                        if !self.take(command).await {
                            return;
                        }
                    }
                    None => return,
                },
                () = tokio::time::sleep_until(until) => return,
            }
        }
    }

    /// Writes every pending group, in order; their confirms are awaited on
    /// a task of their own so the next batch does not wait for them.
    async fn write(&mut self) {
        let pending = &mut self.pending;
        pending.items = 0;
        pending.bytes = 0;
        for group in pending.groups.drain(..) {
            let parts = group.parts.len();
            let written = match self.sink.ready() {
                Err(e) => Err(e),
                Ok(()) => tokio::time::timeout(
                    WRITE_TIMEOUT,
                    self.sink.write(&group.to, seal(group.parts), parts),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(BusError::Unavailable(format!(
                        "the transport did not take a write within {WRITE_TIMEOUT:?}"
                    )))
                }),
            };
            let waiters = group.waiters;
            let mut confirm = match written {
                Err(e) => {
                    debug!(error = %e, messages = waiters.len(), "a batch could not be written");
                    let outcome = Err(e);
                    for w in &waiters {
                        w.resolve(&outcome);
                    }
                    continue;
                }
                Ok(confirm) => confirm,
            };
            // A transport that confirms as it writes needs no task.
            if let Some(outcome) = (&mut confirm).now_or_never() {
                for w in &waiters {
                    w.resolve(&outcome);
                }
                continue;
            }
            let flight = Flight::new(&self.flights);
            tokio::spawn(async move {
                let outcome = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
                    .await
                    .unwrap_or_else(|_| {
                        Err(BusError::Unavailable(format!(
                            "the transport did not confirm within {CONFIRM_TIMEOUT:?}"
                        )))
                    });
                for w in &waiters {
                    w.resolve(&outcome);
                }
                drop(flight);
            });
        }
    }
}

async fn run(rx: mpsc::Receiver<Command>, sink: Arc<dyn Sink>, shards: u16, window: Duration) {
    let mut rx = rx;
    let mut b = Batching {
        sink,
        shards,
        pending: Pending::default(),
        flushed: Vec::new(),
        flights: Arc::default(),
    };
    let mut timer = (!window.is_zero()).then(WindowTimer::new);
    while let Some(first) = rx.recv().await {
        let deadline = std::time::Instant::now() + window;
        if b.take(first).await && b.take_queued(&mut rx).await {
            if let Some(timer) = &mut timer {
                // What arrived meanwhile is taken after the window.
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if !left.is_zero() {
                    timer.sleep(left).await;
                    b.take_queued(&mut rx).await;
                }
            } else {
                // Tasks woken at the same moment add theirs first.
                tokio::task::yield_now().await;
                if b.take_queued(&mut rx).await {
                    b.hold(&mut rx).await;
                }
            }
        }
        b.write().await;
        for tx in b.flushed.drain(..) {
            let _ = tx.send(());
        }
    }
    b.write().await;
}

mod window;

#[cfg(test)]
mod tests;
