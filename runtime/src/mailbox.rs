//! A service's bounded mailbox: a std `sync_channel` (the service thread
//! blocks on it, until its next timer at most) with a [`Notify`] through
//! which the thread tells an async sender waiting for room that there is
//! some — so the dispatcher awaits room without polling — plus its depth,
//! with skynet's overload warning: logged when the depth passes a
//! threshold, then again each time it doubles.
//!
//! (A flume channel, which both sides could use directly, cost the
//! in-process closed loop 8% of its throughput: BENCHMARKS.md.)

use std::{
    any::TypeId,
    sync::{
        Arc,
        atomic::{
            AtomicUsize,
            Ordering::{Relaxed, SeqCst},
        },
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;
use tracing::warn;

use crate::{SendError, mail::Mail, stats::Counters};

/// The sending side, cheap to clone: held by the dispatcher, by every
/// service's context (mail between services) and by the game's handle.
#[derive(Clone, Debug)]
pub(crate) struct MailboxTx {
    pub(crate) name: &'static str,
    tx: SyncSender<Mail>,
    pub(crate) counters: Arc<Counters>,
    warn: Arc<Warn>,
    room: Arc<Room>,
    /// The service's `Service::Mail` type, which peer mail must be of.
    mail_type: (TypeId, &'static str),
}

/// The receiving side, on the service's thread.
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: Receiver<Mail>,
    pub(crate) counters: Arc<Counters>,
    warn: Arc<Warn>,
    room: Arc<Room>,
}

/// How a sender waiting for room learns there is some.
#[derive(Debug, Default)]
struct Room {
    /// Async senders waiting now: the thread notifies only when there are.
    waiting: AtomicUsize,
    notify: Notify,
}

/// Where the next overload warning is due.
#[derive(Debug)]
struct Warn {
    at: AtomicUsize,
    base: usize,
}

/// Why the thread's wait for mail ended without any.
pub(crate) enum Empty {
    /// The deadline passed (a timer is due).
    Timeout,
    /// Every sender is gone: the process is stopping.
    Closed,
}

pub(crate) fn mailbox<M: 'static>(
    name: &'static str,
    capacity: usize,
    warn_base: usize,
) -> (MailboxTx, Inbox) {
    let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
    let counters = Arc::new(Counters::default());
    let room = Arc::new(Room::default());
    let base = warn_base.max(1);
    let warn = Arc::new(Warn {
        at: AtomicUsize::new(base),
        base,
    });
    let tx = MailboxTx {
        name,
        tx,
        counters: counters.clone(),
        warn: warn.clone(),
        room: room.clone(),
        mail_type: (TypeId::of::<M>(), std::any::type_name::<M>()),
    };
    (
        tx,
        Inbox {
            rx,
            counters,
            warn,
            room,
        },
    )
}

impl MailboxTx {
    /// Queues `mail` if there is room; hands it back if the mailbox is full
    /// or the service is gone.
    pub(crate) fn try_send(&self, mail: Mail) -> Result<(), TrySendError<Mail>> {
        let depth = self.counters.depth.fetch_add(1, Relaxed) + 1;
        match self.tx.try_send(mail) {
            Ok(()) => {
                self.queued(depth);
                Ok(())
            }
            Err(e) => {
                self.counters.depth.fetch_sub(1, Relaxed);
                Err(e)
            }
        }
    }

    /// Queues `mail`, waiting for room while the mailbox is full (logged
    /// once the wait passes a second); false if the service is gone.
    pub(crate) async fn send(&self, mail: Mail) -> bool {
        let mut mail = match self.try_send(mail) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(mail)) => mail,
        };
        let warn_at = Instant::now() + Duration::from_secs(1);
        let mut warned = false;
        loop {
            // Registered before trying again: room made after the attempt
            // wakes this wait.
            let notified = self.room.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.room.waiting.fetch_add(1, SeqCst);
            let tried = self.try_send(mail);
            mail = match tried {
                Ok(()) => {
                    self.room.waiting.fetch_sub(1, SeqCst);
                    return true;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.room.waiting.fetch_sub(1, SeqCst);
                    return false;
                }
                Err(TrySendError::Full(mail)) => mail,
            };
            if warned {
                notified.await;
            } else {
                tokio::select! {
                    () = &mut notified => {}
                    () = tokio::time::sleep_until(warn_at.into()) => {
                        warn!(service = self.name, "mailbox full: waiting for room");
                        warned = true;
                        notified.await;
                    }
                }
            }
            self.room.waiting.fetch_sub(1, SeqCst);
        }
    }

    /// Queues `mail` from a service's thread, blocking it while the mailbox
    /// is full (session events: never dropped, so they wait). Never call
    /// from an async task.
    pub(crate) fn send_blocking(&self, mail: Mail) -> bool {
        let mail = match self.try_send(mail) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(mail)) => mail,
        };
        warn!(
            service = self.name,
            "mailbox full: session events are waiting"
        );
        let depth = self.counters.depth.fetch_add(1, Relaxed) + 1;
        if self.tx.send(mail).is_ok() {
            self.queued(depth);
            true
        } else {
            self.counters.depth.fetch_sub(1, Relaxed);
            false
        }
    }

    /// Queues mail from another service (or an operator's tool), which must
    /// be of the service's mail type; a full mailbox is an error, never a
    /// wait.
    pub(crate) fn send_mail<M: Send + 'static>(
        &self,
        from: &'static str,
        msg: M,
    ) -> Result<(), SendError> {
        if TypeId::of::<M>() != self.mail_type.0 {
            return Err(SendError::WrongType {
                service: self.name,
                takes: self.mail_type.1,
                given: std::any::type_name::<M>(),
            });
        }
        let msg = Box::new(msg);
        self.try_send(Mail::Peer { from, msg })
            .map_err(|e| match e {
                TrySendError::Full(_) => SendError::Full(self.name),
                TrySendError::Disconnected(_) => SendError::Stopped(self.name),
            })
    }

    /// The overload warning, for a message just queued at `depth`.
    fn queued(&self, depth: usize) {
        let at = self.warn.at.load(Relaxed);
        if depth >= at
            && self
                .warn
                .at
                .compare_exchange(at, at * 2, Relaxed, Relaxed)
                .is_ok()
        {
            warn!(service = self.name, depth, "mailbox is backing up");
        }
    }
}

impl Inbox {
    /// The next mail, waiting at most until `deadline` (none: as long as it
    /// takes).
    pub(crate) fn next(&self, deadline: Option<Instant>) -> Result<Mail, Empty> {
        let mail = match deadline {
            Some(at) => self
                .rx
                .recv_timeout(at.saturating_duration_since(Instant::now()))
                .map_err(|e| match e {
                    RecvTimeoutError::Timeout => Empty::Timeout,
                    RecvTimeoutError::Disconnected => Empty::Closed,
                })?,
            None => self.rx.recv().map_err(|_| Empty::Closed)?,
        };
        if self.room.waiting.load(SeqCst) > 0 {
            self.room.notify.notify_waiters();
        }
        let depth = self.counters.depth.fetch_sub(1, Relaxed).saturating_sub(1);
        self.counters.messages.fetch_add(1, Relaxed);
        if depth < self.warn.base {
            self.warn.at.store(self.warn.base, Relaxed);
        }
        Ok(mail)
    }
}
