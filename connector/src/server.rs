//! The accept loop, the push pump and graceful shutdown.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{Instrument, debug, error, info, warn};
use warren_bus::{Bus, BusError, Subscription};
use warren_kit::tls::Tls;
use warren_proto::{
    BusEvent, BusPush, ConnId, ConnectorId, EventKind, Frame, PushKind, Target, Uid,
};

use crate::{
    TokenVerifier, connection,
    registry::{ConnHandle, Exit, Registry},
    settings::ConnectorSettings,
    stats::{Stats, StatsSnapshot},
};

/// What every connection task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: ConnectorId,
    pub(crate) settings: ConnectorSettings,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) verifier: Arc<TokenVerifier>,
    pub(crate) registry: Registry,
    pub(crate) stats: Stats,
    /// Cancelled when the connector shuts down; every socket's stop token is
    /// a child of it.
    pub(crate) shutdown: CancellationToken,
    /// The watchers of detached sessions (each ends its session's wait).
    pub(crate) watchers: TaskTracker,
    /// Cancelled once a stopping connector has waited `drain_ms` for its
    /// detached sessions to resume elsewhere: those left end.
    pub(crate) drained: CancellationToken,
    /// Cancelled last: the push pump runs while sessions drain (a hand-over
    /// comes through it).
    pub(crate) pumping: CancellationToken,
    next_conn: AtomicU64,
    /// Identifies this run of the connector (unix ms at start).
    boot: u64,
    /// The push subscription, once taken ([`Connector::subscribe`]).
    pushes: std::sync::Mutex<Option<warren_bus::Subscription<warren_proto::BusPush>>>,
}

/// A connector: build it, then [`Connector::run`] it on a bound listener.
/// Cloning gives another handle to the same connector (for stats).
#[derive(Clone, Debug)]
pub struct Connector {
    shared: Arc<Shared>,
}

impl Connector {
    pub fn new(
        settings: ConnectorSettings,
        bus: Arc<dyn Bus>,
        verifier: Arc<TokenVerifier>,
    ) -> Result<Self, String> {
        let id = match &settings.id {
            Some(id) => ConnectorId::parse(id)?,
            None => ConnectorId::parse(&format!("connector-{}", std::process::id()))?,
        };
        Ok(Connector {
            shared: Arc::new(Shared {
                id,
                settings,
                bus,
                verifier,
                registry: Registry::default(),
                stats: Stats::default(),
                shutdown: CancellationToken::new(),
                watchers: TaskTracker::new(),
                drained: CancellationToken::new(),
                pumping: CancellationToken::new(),
                next_conn: AtomicU64::new(1),
                boot: warren_proto::time::unix_ms().max(1),
                pushes: std::sync::Mutex::new(None),
            }),
        })
    }

    pub fn id(&self) -> &ConnectorId {
        &self.shared.id
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Logged-in sockets right now.
    pub fn online(&self) -> usize {
        self.shared.registry.len()
    }

    /// Takes this connector's pushes from the bus now, before it serves
    /// (so a process can say it is ready only once its pushes flow: on the
    /// gRPC gateway, once its games have registered); [`Connector::run`]
    /// takes them itself otherwise.
    pub async fn subscribe(&self) -> Result<(), BusError> {
        let pushes = self.shared.bus.subscribe_pushes(&self.shared.id).await?;
        *self.shared.pushes.lock().unwrap_or_else(|p| p.into_inner()) = Some(pushes);
        Ok(())
    }

    /// The services registered with this connector (the gRPC gateway).
    pub fn registrations(&self) -> Vec<warren_bus::Registration> {
        self.shared.bus.registrations()
    }

    /// The bus as the debug console shows it.
    pub fn bus_state(&self) -> warren_bus::BusState {
        self.shared.bus.state()
    }

    /// Serves websockets on `listener` (with TLS when given) until
    /// `shutdown` resolves, then kicks every socket with `shutdown`, waits
    /// for them to close (up to `shutdown_grace_ms`) and returns. Fails
    /// only if the push queue cannot be consumed.
    pub async fn run(
        &self,
        listener: TcpListener,
        tls: Option<Tls>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), BusError> {
        let shared = &self.shared;
        let taken = shared
            .pushes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let pushes = match taken {
            Some(pushes) => pushes,
            None => shared.bus.subscribe_pushes(&shared.id).await?,
        };
        let pump = tokio::spawn(push_pump(shared.clone(), pushes));
        let alive = tokio::spawn(alive_loop(shared.clone()));
        let tracker = TaskTracker::new();
        info!(
            connector = %shared.id,
            addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            path = %shared.settings.path,
            "connector accepting websockets"
        );
        tokio::select! {
            _ = accept_loop(shared, &listener, tls, &tracker) => {}
            _ = shutdown => info!("connector shutting down"),
        }
        drop(listener);
        shared.shutdown.cancel();
        tracker.close();
        let grace = shared.settings.shutdown_grace_ms;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!(
                remaining = tracker.len(),
                "sockets still open after the shutdown grace period"
            );
        }
        drain(shared).await;
        shared.pumping.cancel();
        let _ = pump.await;
        alive.abort();
        info!(stats = ?shared.stats.snapshot(), "connector stopped");
        Ok(())
    }
}

/// Why [`run`] could not serve.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("the connector's admin endpoint failed: {0}")]
    Admin(#[from] std::io::Error),
}

/// The connector's two listeners.
#[derive(Debug)]
pub struct Listeners {
    /// Players' websockets ...
    pub ws: TcpListener,
    /// ... with TLS (`wss://`) when given.
    pub tls: Option<Tls>,
    /// The operators' endpoint (counters, Prometheus).
    pub admin: warren_http::Listener,
}

/// The connector's entry point: serves players on `listeners.ws` and the
/// admin endpoint (behind `admin_token`) until `shutdown`, then kicks every
/// player with `shutdown` and returns.
pub async fn run(
    listeners: Listeners,
    connector: Connector,
    admin_token: String,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let stop = tokio_util::sync::CancellationToken::new();
    let admin = tokio::spawn(crate::admin::serve_admin(
        listeners.admin,
        connector.clone(),
        admin_token,
        stop.clone().cancelled_owned(),
    ));
    let served = connector.run(listeners.ws, listeners.tls, shutdown).await;
    stop.cancel();
    let admin = admin.await.map_err(std::io::Error::other)?;
    served?;
    Ok(admin?)
}

async fn accept_loop(
    shared: &Arc<Shared>,
    listener: &TcpListener,
    tls: Option<Tls>,
    tracker: &TaskTracker,
) {
    let limit = Arc::new(Semaphore::new(shared.settings.max_connections));
    let mut backoff = Duration::from_millis(10);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(e) => {
                // Out of file descriptors, usually: wait, do not spin.
                error!(error = %e, retry_in = ?backoff, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        Stats::inc(&shared.stats.accepted);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            Stats::inc(&shared.stats.refused_full);
            warn!(%peer, max = shared.settings.max_connections, "connection limit reached, refusing");
            drop(tcp);
            continue;
        };
        let id = ConnId(shared.next_conn.fetch_add(1, Ordering::Relaxed));
        let (shared, tls) = (shared.clone(), tls.clone());
        let span = tracing::debug_span!("socket", conn = %id, %peer);
        tracker.spawn(connection::serve(shared, tcp, tls, peer, id, permit).instrument(span));
    }
}

/// A stopping connector's last duty: its detached sessions (every
/// resumable client was just told to `reconnect`) wait up to `drain_ms` to
/// be resumed on another connector, which takes them over through the
/// game; those left then end, and the game hears each Close.
async fn drain(shared: &Arc<Shared>) {
    shared.watchers.close();
    let waiting = shared.watchers.len();
    if waiting > 0 {
        let drain_ms = shared.settings.drain_ms.as_millis() as u64;
        info!(
            sessions = waiting,
            drain_ms, "waiting for detached sessions to resume elsewhere"
        );
    }
    let drain = shared.settings.drain_ms;
    if tokio::time::timeout(drain, shared.watchers.wait())
        .await
        .is_err()
    {
        info!(
            sessions = shared.watchers.len(),
            "drain time over: ending the sessions not resumed elsewhere"
        );
    }
    shared.drained.cancel();
    let grace = shared.settings.shutdown_grace_ms;
    if tokio::time::timeout(grace, shared.watchers.wait())
        .await
        .is_err()
    {
        warn!(
            remaining = shared.watchers.len(),
            "detached sessions not closed after the shutdown grace period"
        );
    }
}

/// Tells the game this connector is alive, so it can tell a dead one apart
/// and forget its players.
async fn alive_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(
        shared
            .settings
            .alive_interval_ms
            .max(Duration::from_millis(100)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ev = BusEvent {
            connector: shared.id.clone(),
            conn: ConnId(0),
            uid: Uid(0),
            kind: EventKind::Alive { boot: shared.boot },
        };
        if let Err(e) = connection::publish(&shared, ev).await {
            warn!(error = %e, "could not tell the game this connector is alive");
        }
    }
}

/// Delivers the pushes from the bus to the sockets they target, until the
/// connector shuts down.
async fn push_pump(shared: Arc<Shared>, mut pushes: Subscription<BusPush>) {
    loop {
        let push = tokio::select! {
            _ = shared.pumping.cancelled() => break,
            push = pushes.next() => push,
        };
        match push {
            Some(push) => deliver(&shared, push),
            None => {
                error!(
                    "the push queue consumer ended: pushes no longer reach this connector's sockets"
                );
                return;
            }
        }
    }
    pushes.close().await;
}

fn deliver(shared: &Arc<Shared>, push: BusPush) {
    match (&push.kind, &push.target) {
        (
            PushKind::Revoke {
                not_before_ms,
                sid,
                reason,
            },
            target,
        ) => return revoke(shared, target, *not_before_ms, sid.as_deref(), reason),
        (PushKind::HandOver { .. }, Target::Conn { conn, .. }) => {
            return crate::handover::hand_over(shared, *conn, push.kind);
        }
        _ => {}
    }
    let targets: Vec<Arc<ConnHandle>> = match &push.target {
        Target::Uid(uid) => shared.registry.by_uid(*uid).into_iter().collect(),
        Target::Uids(uids) => uids
            .iter()
            .filter_map(|uid| shared.registry.by_uid(*uid))
            .collect(),
        Target::Conn { connector, conn } if connector == &shared.id => {
            shared.registry.by_conn(*conn).into_iter().collect()
        }
        Target::Conn { .. } => Vec::new(),
        Target::All => shared.registry.all(),
    };
    if targets.is_empty() && !matches!(push.target, Target::All) {
        Stats::inc(&shared.stats.undeliverable_pushes);
        return;
    }
    match push.kind {
        PushKind::Frame { seq, cmd, body } => {
            let bytes: Bytes = Frame::new(seq, cmd, body).encode().into();
            for handle in targets {
                if seq != 0 && !handle.answered(seq) {
                    debug!(seq, conn = %handle.id(), "a reply to a request no longer waited for (answered, or timed out)");
                }
                handle.send(bytes.clone(), &shared.stats);
            }
        }
        PushKind::Kick { reason } => {
            for handle in targets {
                kick(shared, &handle, &reason);
            }
        }
        PushKind::Session { state } => {
            for handle in targets {
                if let Some(session) = handle.session() {
                    session.arrive(state.clone());
                }
            }
        }
        PushKind::Revoke { .. } | PushKind::HandOver { .. } => {}
    }
}

/// A logout or a ban: the player's older tokens no longer log in here, and
/// its socket, if here and of that sign-in, is kicked with `reason`.
fn revoke(shared: &Shared, target: &Target, not_before_ms: u64, sid: Option<&str>, reason: &str) {
    let Target::Uid(uid) = target else {
        warn!(?target, "a revocation names no single player; ignored");
        return;
    };
    shared.verifier.revoke(*uid, not_before_ms, reason);
    Stats::inc(&shared.stats.revocations);
    if let Some(handle) = shared.registry.by_uid(*uid)
        && handle.signed_in_as(sid)
    {
        info!(%uid, reason, "kicked: revoked");
        kick(shared, &handle, reason);
    }
}

/// Kicks a socket for the game; a resumable session ends with it (and one
/// whose socket has dropped ends now: its watcher announces the Close).
pub(crate) fn kick(shared: &Shared, handle: &ConnHandle, reason: &str) {
    if handle.stop(Exit::Kick(reason.to_owned())) {
        Stats::inc(&shared.stats.kicked_by_game);
    }
    if let Some(session) = handle.session() {
        session.end("kicked");
    }
}
