//! Holding the shard: a game serves its shard's requests only while it is
//! the shard's one consumer, and a hot standby waits for its turn.
//!
//! Every bus lets one consumer take a shard's requests (RabbitMQ: the
//! shard's lock queue; Redis: a lease; ZeroMQ: the bound address; the gRPC
//! gateway: one registration) and refuses a second with
//! [`BusError::AlreadyConsumed`]. A game started without `standby` is
//! refused at start then, as before. A standby starts its services, its
//! admin endpoint and its upstream connections, then asks again every
//! [`STANDBY_POLL`]: the bus frees the shard the moment the active game's
//! connection goes (a kill closes its sockets), so it takes over within
//! about one poll plus the bus's own detection.
//!
//! Any game whose consumer ends for good while it runs (the shard taken by
//! another process while its connection was being rebuilt) goes back to
//! waiting the same way, rather than sitting idle.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use warren_bus::{Bus, BusError, Subscription};
use warren_proto::BusEvent;

use crate::{
    dispatcher::{self, Routes},
    outbox::Outgoing,
};

/// How often a waiting game asks for its shard again: one look at the
/// shard's queue (or lease) each, and at most this much added to a
/// takeover.
pub(crate) const STANDBY_POLL: Duration = Duration::from_millis(200);

/// What this process is to its shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holding {
    /// Asking for the shard (at start, or after losing it).
    Asking,
    /// Another game serves the shard; this one takes over when it goes.
    Standby,
    /// This process consumes the shard's requests.
    Serving,
}

/// Whether this process serves its shard now; shared with the admin
/// endpoint, the metrics and the console.
#[derive(Debug)]
pub struct ShardRole {
    /// The shard this process is for.
    pub shard: u16,
    holding: watch::Sender<Holding>,
    /// Times this process started serving the shard after waiting for it.
    takeovers: AtomicU64,
}

impl ShardRole {
    pub(crate) fn new(shard: u16) -> Self {
        ShardRole {
            shard,
            holding: watch::Sender::new(Holding::Asking),
            takeovers: AtomicU64::new(0),
        }
    }

    /// One line for the console: what this process is to its shard.
    pub fn describe(&self) -> String {
        let shard = self.shard;
        match self.holding() {
            Holding::Serving => format!("serving shard {shard} (takeovers: {})", self.takeovers()),
            Holding::Standby => format!(
                "standby for shard {shard}: another game serves it; this one takes over when it goes"
            ),
            Holding::Asking => {
                format!("not serving shard {shard}: asking the bus for it (see the log)")
            }
        }
    }

    /// What this process is to its shard now.
    pub fn holding(&self) -> Holding {
        *self.holding.borrow()
    }

    /// Sees every change of [`Self::holding`].
    pub fn watch(&self) -> watch::Receiver<Holding> {
        self.holding.subscribe()
    }

    /// How many times this process took the shard over after waiting.
    pub fn takeovers(&self) -> u64 {
        self.takeovers.load(Relaxed)
    }

    fn set(&self, holding: Holding) {
        self.holding
            .send_if_modified(|h| std::mem::replace(h, holding) != holding);
    }
}

/// What serving the shard needs, moved into its task.
pub(crate) struct Serving {
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) routes: Routes,
    pub(crate) outbox: mpsc::Sender<Outgoing>,
    pub(crate) stop: CancellationToken,
    pub(crate) role: Arc<ShardRole>,
}

impl Serving {
    /// Serves the shard with `first` (None: wait for it first), and waits
    /// for it again whenever the consumer ends, until `stop` or the bus
    /// closes.
    pub(crate) async fn run(self, first: Option<Subscription<BusEvent>>) {
        let mut events = first;
        loop {
            let subscription = match events.take() {
                Some(s) => s,
                None => match self.wait().await {
                    Some(s) => {
                        self.role.takeovers.fetch_add(1, Relaxed);
                        info!(
                            shard = self.role.shard,
                            "took the shard over: serving its requests"
                        );
                        s
                    }
                    None => return,
                },
            };
            self.role.set(Holding::Serving);
            dispatcher::run(subscription, &self.routes, &self.outbox, &self.stop).await;
            self.role.set(Holding::Asking);
            if self.stop.is_cancelled() {
                return;
            }
            warn!(
                shard = self.role.shard,
                "lost the shard's requests: waiting to take the shard again"
            );
        }
    }

    /// Asks for the shard every [`STANDBY_POLL`] until it is ours; None
    /// when stopped or the bus closed.
    async fn wait(&self) -> Option<Subscription<BusEvent>> {
        // Said once per kind of refusal, not every poll.
        let mut said = None;
        loop {
            let refusal = tokio::select! {
                _ = self.stop.cancelled() => return None,
                r = self.bus.subscribe_events() => match r {
                    Ok(events) => return Some(events),
                    Err(BusError::Closed) => return None,
                    Err(e) => e,
                },
            };
            self.role.set(match refusal {
                BusError::AlreadyConsumed(_) => Holding::Standby,
                _ => Holding::Asking,
            });
            debug!(shard = self.role.shard, error = %refusal, "the shard is not ours yet");
            let kind = std::mem::discriminant(&refusal);
            if said != Some(kind) {
                match &refusal {
                    BusError::AlreadyConsumed(_) => info!(
                        shard = self.role.shard,
                        "standby for shard {}: another game serves it; taking over when it goes",
                        self.role.shard
                    ),
                    e => {
                        warn!(shard = self.role.shard, error = %e, "waiting for the shard: the bus refused")
                    }
                }
                said = Some(kind);
            }
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                _ = tokio::time::sleep(STANDBY_POLL) => {}
            }
        }
    }
}
