//! A running game process, and the handle that reaches it from outside.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    thread::JoinHandle,
    time::Duration,
};

use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use warren_bus::Bus;

use crate::{
    SendError, ServiceStats,
    mail::{Control, Mail},
    mailbox::MailboxTx,
    sessions::Sessions,
    shard::ShardRole,
    stats::Counters,
    watchdog::Watchdog,
};

/// One service's running thread.
pub(crate) struct Running {
    pub(crate) name: &'static str,
    mailbox: MailboxTx,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    pub(crate) fn new(name: &'static str, mailbox: MailboxTx, thread: JoinHandle<()>) -> Self {
        Running {
            name,
            mailbox,
            thread: Some(thread),
        }
    }

    pub(crate) fn watched(&self) -> (&'static str, Arc<Counters>) {
        (self.name, self.mailbox.counters.clone())
    }

    fn stats(&self) -> ServiceStats {
        self.mailbox.counters.snapshot(self.name)
    }
}

/// A running game process.
pub struct Game {
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) role: Arc<ShardRole>,
    pub(crate) services: Vec<Running>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) dispatcher: tokio::task::JoinHandle<()>,
    pub(crate) outbox: tokio::task::JoinHandle<()>,
    pub(crate) stop: CancellationToken,
    pub(crate) watchdog: Watchdog,
}

impl std::fmt::Debug for Game {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Game")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Game {
    /// Every service's counters: the built-in stat request.
    pub fn stats(&self) -> Vec<ServiceStats> {
        self.services.iter().map(Running::stats).collect()
    }

    /// A handle operators' tools (the admin endpoint) use to mail services.
    pub fn handle(&self) -> GameHandle {
        GameHandle {
            bus: self.bus.clone(),
            role: self.role.clone(),
            mailboxes: Arc::new(
                self.services
                    .iter()
                    .map(|s| (s.name, s.mailbox.clone()))
                    .collect(),
            ),
        }
    }

    /// Whether this process serves its shard now, or stands by.
    pub fn role(&self) -> &ShardRole {
        &self.role
    }

    /// Players this process knows to be online.
    pub fn online(&self) -> usize {
        self.sessions.online()
    }

    /// Stops reading requests, lets every service finish its mailbox and its
    /// `stop`, then publishes what they sent and returns.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.dispatcher.await;
        let stats = self.services.iter().map(Running::stats).collect::<Vec<_>>();
        for s in &self.services {
            s.mailbox.send(Mail::Control(Control::Stop)).await;
        }
        let services = self.services;
        let _ = tokio::task::spawn_blocking(move || {
            for mut s in services {
                if let Some(t) = s.thread.take()
                    && t.join().is_err()
                {
                    error!(
                        service = s.name,
                        "service thread ended by a panic outside a handler"
                    );
                }
            }
        })
        .await;
        self.watchdog.stop().await;
        let _ = self.outbox.await;
        info!(?stats, "game stopped");
    }
}

/// Mails services of a running game from outside it, and reads their
/// counters; cheap to clone.
#[derive(Clone, Debug)]
pub struct GameHandle {
    /// Every service's mailbox, in start order (a handful: found by a
    /// scan).
    mailboxes: Arc<Vec<(&'static str, MailboxTx)>>,
    bus: Arc<dyn Bus>,
    role: Arc<ShardRole>,
}

impl GameHandle {
    fn mailbox(&self, service: &str) -> Option<&MailboxTx> {
        self.mailboxes
            .iter()
            .find(|(name, _)| *name == service)
            .map(|(_, mailbox)| mailbox)
    }

    /// Whether this process serves its shard now, or stands by.
    pub fn role(&self) -> &ShardRole {
        &self.role
    }

    /// The bus as the debug console shows it.
    pub fn bus_state(&self) -> warren_bus::BusState {
        self.bus.state()
    }

    /// Every service's counters, in start order.
    pub fn stats(&self) -> Vec<ServiceStats> {
        self.mailboxes
            .iter()
            .map(|(name, mailbox)| mailbox.counters.snapshot(name))
            .collect()
    }

    /// Asks a service for its state summary ([`Service::summary`]),
    /// computed on its own thread. None if there is no such service, or it
    /// does not answer within 5 s (busy, or its mailbox is full).
    ///
    /// [`Service::summary`]: crate::Service::summary
    pub async fn summary(&self, service: &str) -> Option<serde_json::Value> {
        let mailbox = self.mailbox(service)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        mailbox.try_send(Mail::Control(Control::Inspect(tx))).ok()?;
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .ok()?
            .ok()
    }

    /// Turns the logging of every message one service handles on or off
    /// (target `warren::trace`, level INFO). False if there is no such
    /// service.
    pub fn set_tracing(&self, service: &str, on: bool) -> bool {
        match self.mailbox(service) {
            Some(mailbox) => {
                mailbox.counters.trace.store(on, Relaxed);
                info!(service, on, "per-service tracing switched");
                true
            }
            None => false,
        }
    }

    /// Tells every connector (and HTTP call gateway) that `uid`'s tokens
    /// issued before `not_before_ms` (unix ms) no longer log in, and to
    /// kick its socket with `reason` if it logged in with sign-in `sid`
    /// (any sign-in when None). Done once the bus has taken it.
    pub async fn revoke(
        &self,
        uid: warren_proto::Uid,
        not_before_ms: u64,
        sid: Option<String>,
        reason: &str,
    ) -> Result<(), warren_bus::BusError> {
        let push = warren_proto::BusPush {
            target: warren_proto::Target::Uid(uid),
            kind: warren_proto::PushKind::Revoke {
                not_before_ms,
                sid,
                reason: reason.to_owned(),
            },
        };
        warren_bus::send_and_confirm(
            &*self.bus,
            warren_bus::Address::EveryConnector,
            warren_bus::Message::Push(push),
        )
        .await
    }

    /// Sends `msg` to a service's mailbox, as another service would; it
    /// arrives in its `mail` callback, and must be of its `Service::Mail`
    /// type. Never blocks: a full mailbox is an error.
    pub fn send<M: Send + 'static>(&self, to: &str, msg: M) -> Result<(), SendError> {
        self.mailbox(to)
            .ok_or_else(|| SendError::NoSuchService(to.to_owned()))?
            .send_mail("admin", msg)
    }
}
