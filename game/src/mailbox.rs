//! A service's bounded mailbox: a std sync channel (the service thread
//! blocks on it) plus its depth, with skynet's overload warning — logged
//! when the depth passes a threshold, then again each time it doubles.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering::Relaxed},
    mpsc::{self, Receiver, SyncSender, TrySendError},
};

use tracing::warn;

use crate::{SendError, service::Mail, stats::Counters};

#[derive(Clone, Debug)]
pub(crate) struct MailboxTx {
    pub(crate) name: &'static str,
    tx: SyncSender<Mail>,
    pub(crate) counters: Arc<Counters>,
    warn_at: Arc<AtomicUsize>,
    warn_base: usize,
}

pub(crate) fn mailbox(
    name: &'static str,
    capacity: usize,
    warn_base: usize,
) -> (MailboxTx, Receiver<Mail>, Arc<Counters>) {
    let (tx, rx) = mpsc::sync_channel(capacity.max(1));
    let counters = Arc::new(Counters::default());
    let warn_base = warn_base.max(1);
    let tx = MailboxTx {
        name,
        tx,
        counters: counters.clone(),
        warn_at: Arc::new(AtomicUsize::new(warn_base)),
        warn_base,
    };
    (tx, rx, counters)
}

impl MailboxTx {
    /// Queues `mail` if there is room; hands it back if the mailbox is full
    /// or the service is gone.
    pub(crate) fn try_send(&self, mail: Mail) -> Result<(), TrySendError<Mail>> {
        let depth = self.counters.depth.fetch_add(1, Relaxed) + 1;
        match self.tx.try_send(mail) {
            Ok(()) => {
                let warn_at = self.warn_at.load(Relaxed);
                if depth >= warn_at
                    && self
                        .warn_at
                        .compare_exchange(warn_at, warn_at * 2, Relaxed, Relaxed)
                        .is_ok()
                {
                    warn!(service = self.name, depth, "mailbox is backing up");
                }
                Ok(())
            }
            Err(e) => {
                self.counters.depth.fetch_sub(1, Relaxed);
                Err(e)
            }
        }
    }

    /// Queues a message from another service (or an operator's tool); a full
    /// mailbox is an error, never a wait.
    pub(crate) fn send_mail(
        &self,
        from: &'static str,
        msg: Box<dyn std::any::Any + Send>,
    ) -> Result<(), SendError> {
        self.try_send(Mail::Peer { from, msg })
            .map_err(|e| match e {
                TrySendError::Full(_) => SendError::Full(self.name),
                TrySendError::Disconnected(_) => SendError::Stopped(self.name),
            })
    }

    /// Queues `mail`, blocking the calling thread while the mailbox is full.
    /// Never call from an async task.
    pub(crate) fn send_blocking(&self, mail: Mail) -> bool {
        self.counters.depth.fetch_add(1, Relaxed);
        let ok = self.tx.send(mail).is_ok();
        if !ok {
            self.counters.depth.fetch_sub(1, Relaxed);
        }
        ok
    }

    /// Called by the service thread for each message it takes out.
    pub(crate) fn taken(counters: &Counters, warn_at: &AtomicUsize, warn_base: usize) {
        let depth = counters.depth.fetch_sub(1, Relaxed).saturating_sub(1);
        counters.messages.fetch_add(1, Relaxed);
        if depth < warn_base {
            warn_at.store(warn_base, Relaxed);
        }
    }

    pub(crate) fn warn_state(&self) -> (Arc<AtomicUsize>, usize) {
        (self.warn_at.clone(), self.warn_base)
    }
}
