//! Calls to one peer (a service's `Deliver`, a gateway's `SendToPlayer`
//! or `Forward`), batched and bounded.
//!
//! - **Natural batching.** One task per peer takes the first message
//!   waiting and everything queued behind it (at most
//!   [`MAX_BATCH_ITEMS`] messages, [`MAX_BATCH_BYTES`] bytes, or one
//!   message for a peer that takes them singly) and starts one call: a
//!   lone message waits for nothing, and while calls are in flight the
//!   next batch gathers by itself.
//! - **Bounds.** At most `in_flight` calls at once; the queue in front
//!   holds `queue` messages, beyond which a send is refused at once
//!   (`Rejected`: the player hears `overloaded`). Every message is
//!   answered within `deadline` of its send: a batch that cannot start a
//!   call in time is refused (`Rejected`: the peer is that slow), and a
//!   call is given what is left of it (`Unavailable` when it passes).
//! - **Order.** Calls are numbered per (sender, epoch); the receiver takes
//!   them in that order ([`super::inbound`]). After a failed call the
//!   epoch changes, so a gap the receiver would wait for never exists.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{Semaphore, mpsc};
use tracing::debug;

use crate::{
    BusError, Done,
    batch::{MAX_BATCH_BYTES, MAX_BATCH_ITEMS},
};

/// A call's place in its sender's order (`Order` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) sender: u64,
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
}

/// Makes one call carrying `parts` (each an encoded bus message) within
/// `deadline`.
pub(crate) type Call = Arc<
    dyn Fn(
            Vec<Vec<u8>>,
            Place,
            Duration,
        ) -> Pin<Box<dyn Future<Output = Result<(), BusError>> + Send>>
        + Send
        + Sync,
>;

/// What the console shows of one peer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) calls: AtomicU64,
    pub(crate) messages: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) refused: AtomicU64,
}

/// How calls to one peer are bounded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) in_flight: usize,
    pub(crate) queue: usize,
    pub(crate) deadline: Duration,
    /// One message per call (a service that takes the single form).
    pub(crate) single: bool,
}

struct Item {
    payload: Vec<u8>,
    done: Done,
    since: Instant,
}

/// The sending half; dropping every clone ends the task once its queue
/// is empty.
#[derive(Clone)]
pub(crate) struct Outbound {
    tx: mpsc::Sender<Item>,
    what: Arc<str>,
    in_flight: Arc<Semaphore>,
    limit: usize,
    pub(crate) counters: Arc<Counters>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// Starts the task that calls `what` (named in errors) with `call`.
    pub(crate) fn start(what: String, sender: u64, limits: Limits, call: Call) -> Self {
        let (tx, rx) = mpsc::channel(limits.queue.max(1));
        let in_flight = Arc::new(Semaphore::new(limits.in_flight.max(1)));
        let counters = Arc::new(Counters::default());
        let what: Arc<str> = what.into();
        let task = Task {
            rx,
            what: what.clone(),
            sender,
            limits,
            call,
            in_flight: in_flight.clone(),
            counters: counters.clone(),
            broken: Arc::new(AtomicBool::new(false)),
        };
        tokio::spawn(task.run());
        Outbound {
            tx,
            what,
            in_flight,
            limit: limits.in_flight.max(1),
            counters,
        }
    }

    /// Queues one message; `done` hears how its call fared.
    pub(crate) fn send(&self, payload: Vec<u8>, done: Done) {
        let item = Item {
            payload,
            done,
            since: Instant::now(),
        };
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(item)) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                (item.done)(Err(BusError::Rejected(format!(
                    "{} is not keeping up: its queue is full",
                    self.what
                ))));
            }
            Err(mpsc::error::TrySendError::Closed(item)) => (item.done)(Err(BusError::Closed)),
        }
    }

    /// Calls in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.limit - self.in_flight.available_permits()
    }
}

struct Task {
    rx: mpsc::Receiver<Item>,
    what: Arc<str>,
    sender: u64,
    limits: Limits,
    call: Call,
    in_flight: Arc<Semaphore>,
    counters: Arc<Counters>,
    /// Set by a failed call: the next call starts a new epoch.
    broken: Arc<AtomicBool>,
}

impl Task {
    async fn run(mut self) {
        let mut place = Place {
            sender: self.sender,
            epoch: 1,
            seq: 0,
        };
        while let Some(first) = self.rx.recv().await {
            let batch = self.gather(first);
            let left = self
                .limits
                .deadline
                .saturating_sub(batch[0].since.elapsed());
            let permit =
                match tokio::time::timeout(left, self.in_flight.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        self.counters.refused.fetch_add(1, Ordering::Relaxed);
                        let error = BusError::Rejected(format!(
                            "{} has had {} calls in flight for {:?}",
                            self.what, self.limits.in_flight, self.limits.deadline
                        ));
                        for item in batch {
                            (item.done)(Err(error.duplicate()));
                        }
                        continue;
                    }
                };
            if self.broken.swap(false, Ordering::AcqRel) {
                place.epoch += 1;
                place.seq = 0;
            }
            place.seq += 1;
            let left = self
                .limits
                .deadline
                .saturating_sub(batch[0].since.elapsed());
            let (parts, dones): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|i| (i.payload, i.done)).unzip();
            self.counters.calls.fetch_add(1, Ordering::Relaxed);
            self.counters
                .messages
                .fetch_add(parts.len() as u64, Ordering::Relaxed);
            let call = (self.call)(parts, place, left);
            let (what, counters, broken) = (
                self.what.clone(),
                self.counters.clone(),
                self.broken.clone(),
            );
            tokio::spawn(async move {
                let outcome = tokio::time::timeout(left, call).await.unwrap_or_else(|_| {
                    Err(BusError::Unavailable(format!(
                        "{what} did not answer within the deadline"
                    )))
                });
                drop(permit);
                if let Err(e) = &outcome {
                    debug!(peer = %what, error = %e, messages = dones.len(), "a call failed");
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    broken.store(true, Ordering::Release);
                }
                let mut dones = dones.into_iter();
                let last = dones.next_back();
                for done in dones {
                    done(match &outcome {
                        Ok(()) => Ok(()),
                        Err(e) => Err(e.duplicate()),
                    });
                }
                if let Some(done) = last {
                    done(outcome);
                }
            });
        }
    }

    /// The first message and what is queued behind it, within the bounds.
    fn gather(&mut self, first: Item) -> Vec<Item> {
        let mut bytes = first.payload.len();
        let mut batch = vec![first];
        if self.limits.single {
            return batch;
        }
        while batch.len() < MAX_BATCH_ITEMS && bytes < MAX_BATCH_BYTES {
            match self.rx.try_recv() {
                Ok(item) => {
                    bytes += item.payload.len();
                    batch.push(item);
                }
                Err(_) => break,
            }
        }
        batch
    }
}
