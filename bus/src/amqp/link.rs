//! The RabbitMQ connections of one bus, and the watch kept on them.
//!
//! A bus has two sides, each one connection: publishing (with a channel in
//! confirm mode) and consuming. lapin recovers a lost connection by itself,
//! but a recovery can stall (seen here in 9 of 10 broker restarts under CPU
//! load with publishes in flight: the connection stays "reconnecting" long
//! after the broker is back; lapin issue #450 reports recovery that never
//! completes). So a
//! watcher looks at both sides every 50 ms:
//! - it logs when a side is lost and when it is back;
//! - while the publishing side is down, sends are refused at once
//!   ([`Health::ready`]), and writes or confirms caught by the loss fail at
//!   once (lapin would hold them until it recovers, or forever);
//! - a side still down [`REBUILD_AFTER`] (3 s) after it was lost, once the broker
//!   answers TCP again, is torn down and rebuilt on a new connection, said
//!   in the log; consumers follow their side to the new connection
//!   ([`Side::generation`]).
//!
//! A cluster's nodes ([`Nodes`]): every connection and every recovery
//! attempt dials the node that answered last, then the others in turn,
//! so a connection lost with its node comes back on another one through
//! lapin's own recovery.

use std::{
    future::Future,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use lapin::{Channel, Connection, ConnectionProperties, options::ConfirmSelectOptions};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::{BusError, Open};

use super::unavailable;

/// How often the sides are looked at.
const WATCH_TICK: Duration = Duration::from_millis(50);

/// How long a side may stay down while the broker answers before it is
/// rebuilt on a new connection.
pub(crate) const REBUILD_AFTER: Duration = Duration::from_secs(3);

/// The longest a TCP connection to one node may take before the next
/// node is tried (a host that is gone does not answer at all).
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest the first connection of a side may take once a node
/// answers TCP (lapin's recovery would retry a failing handshake forever).
const FIRST_CONNECT: Duration = Duration::from_secs(10);

/// The nodes of one RabbitMQ (a cluster's, or one), dialled in turn.
#[derive(Debug)]
pub(crate) struct Nodes {
    uris: Vec<lapin::uri::AMQPUri>,
    /// The node to dial first: the one that answered last.
    next: AtomicUsize,
}

impl Nodes {
    /// `urls` (at least one), which must name the same user and vhost:
    /// lapin logs in with the first one's whatever node it dials.
    pub(crate) fn new(urls: &[&str]) -> Result<Nodes, BusError> {
        let uris = urls
            .iter()
            .map(|url| {
                url.parse::<lapin::uri::AMQPUri>()
                    .map_err(|e| BusError::Mismatch(format!("a RabbitMQ URL does not parse: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = uris.first() else {
            return Err(BusError::Mismatch("no RabbitMQ URL".into()));
        };
        if let Some(other) = uris
            .iter()
            .find(|u| u.vhost != first.vhost || u.authority.userinfo != first.authority.userinfo)
        {
            return Err(BusError::Mismatch(format!(
                "the RabbitMQ URLs of one cluster differ only in host and port: {}:{} has another \
                 user or vhost than {}:{}",
                other.authority.host,
                other.authority.port,
                first.authority.host,
                first.authority.port
            )));
        }
        Ok(Nodes {
            uris,
            next: AtomicUsize::new(0),
        })
    }

    /// The node that answered last, then the others, in turn; each attempt
    /// within [`DIAL_TIMEOUT`].
    async fn dial<RK>(
        &self,
        runtime: &async_rs::Runtime<RK>,
    ) -> lapin::Result<lapin::AsyncTcpStream<<RK as async_rs::traits::Reactor>::TcpStream>>
    where
        RK: async_rs::traits::RuntimeKit + Send + Sync + Clone + 'static,
    {
        use lapin::tcp::{AMQPUriTcpExt, OwnedTLSConfig};
        let start = self.next.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.uris.len() {
            let at = (start + i) % self.uris.len();
            let uri = &self.uris[at];
            let tls = OwnedTLSConfig::default();
            let dialled = tokio::time::timeout(
                DIAL_TIMEOUT,
                uri.connect_with_config_async(tls.as_ref(), runtime),
            )
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
            match dialled {
                Ok(stream) => {
                    if at != start {
                        info!(node = %format!("{}:{}", uri.authority.host, uri.authority.port), "connecting to another RabbitMQ node");
                    }
                    self.next.store(at, Ordering::Relaxed);
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| std::io::ErrorKind::NotFound.into())
            .into())
    }

    /// The nodes' addresses, for messages.
    fn addresses(&self) -> String {
        self.uris
            .iter()
            .map(|u| format!("{}:{}", u.authority.host, u.authority.port))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether any node accepts TCP connections.
    async fn reachable(&self) -> bool {
        for uri in &self.uris {
            let addr = (uri.authority.host.clone(), uri.authority.port);
            let dialled =
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr));
            if matches!(dialled.await, Ok(Ok(_))) {
                return true;
            }
        }
        false
    }
}

/// One connection, and the publishing side's confirm-mode channel.
pub(crate) struct Link {
    pub(crate) conn: Connection,
    pub(crate) channel: Option<Channel>,
}

impl Link {
    fn connected(&self) -> bool {
        self.conn.status().connected()
            && self.channel.as_ref().is_none_or(|c| c.status().connected())
    }
}

/// One side of the bus: its current connection, replaced when rebuilt.
pub(crate) struct Side {
    pub(crate) role: &'static str,
    nodes: Arc<Nodes>,
    client_name: String,
    link: RwLock<Arc<Link>>,
    /// Bumped by every rebuild: consumers re-open on the new connection.
    pub(crate) generation: watch::Sender<u64>,
    /// Set when the bus closes: nothing is rebuilt or re-opened after.
    pub(crate) closed: Arc<Open>,
    /// The connection says it is connected but did not answer an
    /// operation in time (lapin's recovery can leave it so): the watcher
    /// rebuilds it at its next look.
    wedged: AtomicBool,
}

fn properties(client_name: &str, role: &str) -> ConnectionProperties {
    // If the broker goes away, lapin reconnects (every 0.2 s at first,
    // backing off to every 2 s, never giving up) and replays the topology,
    // consumers, publisher confirms and QoS.
    ConnectionProperties::default()
        .with_connection_name(format!("{client_name}-{role}").into())
        .configure_backoff(|b| {
            b.with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(2))
                .with_max_times(usize::MAX)
        })
        .enable_auto_recover()
}

async fn open(
    nodes: &Arc<Nodes>,
    client_name: &str,
    role: &str,
    confirm: bool,
) -> Result<Link, BusError> {
    let runtime = lapin::runtime::default_runtime().map_err(unavailable)?;
    let dialler = nodes.clone();
    let conn = Connection::connector(
        nodes.uris[0].clone(),
        runtime,
        async move |_uri, runtime| dialler.dial(&runtime).await,
        properties(client_name, role),
    )
    .await
    .map_err(unavailable)?;
    let channel = if confirm {
        let channel = conn.create_channel().await.map_err(unavailable)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        Some(channel)
    } else {
        None
    };
    Ok(Link { conn, channel })
}

impl Side {
    /// Connects one side; the publishing side (`confirm`) also opens its
    /// channel in confirm mode. Fails at once if no node answers TCP, and
    /// after [`FIRST_CONNECT`] if one does but the connection is not made:
    /// a process started while its broker is down says so and stops
    /// (its supervisor starts it again) rather than waiting unseen.
    pub(crate) async fn connect(
        role: &'static str,
        nodes: Arc<Nodes>,
        client_name: &str,
        confirm: bool,
        closed: Arc<Open>,
    ) -> Result<Side, BusError> {
        if !nodes.reachable().await {
            return Err(BusError::Unavailable(format!(
                "no RabbitMQ node accepts connections at {}",
                nodes.addresses()
            )));
        }
        let link = tokio::time::timeout(FIRST_CONNECT, open(&nodes, client_name, role, confirm))
            .await
            .map_err(|_| {
                BusError::Unavailable(format!(
                    "RabbitMQ at {} accepted TCP but no AMQP connection was made within \
                     {FIRST_CONNECT:?}",
                    nodes.addresses()
                ))
            })??;
        Ok(Side {
            role,
            nodes,
            client_name: client_name.to_owned(),
            link: RwLock::new(Arc::new(link)),
            generation: watch::channel(0).0,
            closed,
            wedged: AtomicBool::new(false),
        })
    }

    pub(crate) fn link(&self) -> Arc<Link> {
        self.link.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn connected(&self) -> bool {
        self.link().connected()
    }

    /// Reports that the connection did not answer in time though it says
    /// it is connected: it is rebuilt at the watcher's next look.
    pub(crate) fn wedged(&self) {
        self.wedged.store(true, Ordering::Release);
    }

    /// Replaces the connection with a new one. The old one is left to
    /// lapin (a connection in recovery cannot be closed); if it ever comes
    /// back, it is closed then.
    async fn rebuild(&self) -> Result<(), BusError> {
        let confirm = self.link().channel.is_some();
        let new = open(&self.nodes, &self.client_name, self.role, confirm).await?;
        let old = std::mem::replace(
            &mut *self.link.write().unwrap_or_else(|p| p.into_inner()),
            Arc::new(new),
        );
        self.generation.send_modify(|g| *g += 1);
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(600);
            while Instant::now() < deadline {
                if old.conn.status().connected() {
                    let _ = old.conn.close(200, "replaced".into()).await;
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            debug!("an abandoned RabbitMQ connection never came back");
        });
        Ok(())
    }
}

/// Whether the publishing side can take messages, as the watcher sees it.
#[derive(Clone)]
pub(crate) struct Health {
    pub(crate) publish: Arc<Side>,
    /// Up for two looks in a row (lapin says "connected" for a moment
    /// while a recovery attempt is still failing).
    steady: Arc<AtomicBool>,
    /// The broker blocks publishers (a memory or disk alarm).
    blocked: Arc<AtomicBool>,
    /// Bumped each time the publishing side is lost.
    lost: watch::Sender<u64>,
}

impl Health {
    pub(crate) fn new(publish: Arc<Side>) -> Health {
        Health {
            publish,
            steady: Arc::new(AtomicBool::new(true)),
            blocked: Arc::new(AtomicBool::new(false)),
            lost: watch::channel(0).0,
        }
    }

    /// `Ok` if a message may be written now: refused at once while the
    /// connection is down or recovering, whatever state the recovery is in.
    /// Two atomic loads (it runs for every message): the watcher looks at
    /// the connection every 50 ms, and a write in the moment between a loss
    /// and its look fails when the watcher sees it.
    pub(crate) fn ready(&self) -> Result<(), BusError> {
        if !self.steady.load(Ordering::Acquire) {
            return Err(BusError::Unavailable(
                "the connection to RabbitMQ is down or recovering".into(),
            ));
        }
        if self.blocked.load(Ordering::Acquire) {
            return Err(BusError::Rejected(
                "RabbitMQ is blocking publishers (a memory or disk alarm)".into(),
            ));
        }
        Ok(())
    }

    /// Resolves at the next loss of the publishing side after the call.
    pub(crate) fn next_loss(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.subscribe();
        async move {
            let _ = lost.changed().await;
        }
    }
}

/// What the watcher remembers of one side.
#[derive(Default)]
struct Watch {
    down_since: Option<Instant>,
    up_looks: u32,
    tried_at: Option<Instant>,
}

/// Watches both sides until the bus closes (see the module documentation).
pub(crate) async fn watch(health: Health, consume: Arc<Side>) {
    let mut tick = tokio::time::interval(WATCH_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let listen =
        |side: &Side| -> std::pin::Pin<Box<dyn futures_util::Stream<Item = lapin::Event> + Send>> {
            Box::pin(side.link().conn.events_listener())
        };
    let mut events = listen(&health.publish);
    let mut generation = health.publish.generation.subscribe();
    let (mut publishing, mut consuming) = (Watch::default(), Watch::default());
    publishing.up_looks = 2;
    loop {
        tokio::select! {
            event = events.next() => match event {
                None => events = Box::pin(futures_util::stream::pending()),
                Some(lapin::Event::ConnectionBlocked(reason)) => {
                    warn!(%reason, "RabbitMQ blocks publishers: requests are refused (overloaded)");
                    health.blocked.store(true, Ordering::Release);
                }
                Some(lapin::Event::ConnectionUnblocked) => {
                    info!("RabbitMQ takes publishes again");
                    health.blocked.store(false, Ordering::Release);
                }
                Some(_) => {}
            },
            _ = generation.changed() => {
                events = listen(&health.publish);
                health.blocked.store(false, Ordering::Release);
            }
            _ = tick.tick() => {
                if health.publish.closed.is_closed() {
                    return;
                }
                let was_down = publishing.down_since.is_some();
                let up = look(&health.publish, &mut publishing).await;
                health.steady.store(up, Ordering::Release);
                if !was_down && publishing.down_since.is_some() {
                    health.lost.send_modify(|n| *n += 1);
                }
                look(&consume, &mut consuming).await;
            }
        }
    }
}

/// One look at one side: logs a loss and a recovery, rebuilds a side that
/// stays down while the broker answers. Returns whether it is up (steadily
/// for two looks).
async fn look(side: &Side, w: &mut Watch) -> bool {
    if side.wedged.swap(false, Ordering::AcqRel) && side.nodes.reachable().await {
        warn!(
            side = side.role,
            "RabbitMQ does not answer on this connection, though it says it is connected: rebuilding it"
        );
        if !rebuilt(side).await {
            side.wedged();
        }
    }
    if side.connected() {
        w.up_looks += 1;
        if w.up_looks >= 2
            && let Some(since) = w.down_since.take()
        {
            info!(side = side.role, after = ?since.elapsed(), "RabbitMQ connection recovered");
            w.tried_at = None;
        }
        return w.up_looks >= 2;
    }
    w.up_looks = 0;
    let Some(since) = w.down_since else {
        warn!(
            side = side.role,
            "lost RabbitMQ: requests are refused (unavailable) until the connection recovers"
        );
        w.down_since = Some(Instant::now());
        return false;
    };
    let due = w.tried_at.unwrap_or(since).elapsed() >= REBUILD_AFTER;
    if due {
        w.tried_at = Some(Instant::now());
        // Rebuilt only while some node answers: while the broker is away,
        // lapin's own retries are the right thing.
        if side.nodes.reachable().await {
            warn!(
                side = side.role,
                down_for = ?since.elapsed(),
                "RabbitMQ answers again but this connection has not recovered: rebuilding it"
            );
            rebuilt(side).await;
        }
    }
    false
}

/// Rebuilds `side` on a new connection, saying how it went; whether it
/// worked.
async fn rebuilt(side: &Side) -> bool {
    match side.rebuild().await {
        Ok(()) => {
            info!(side = side.role, "RabbitMQ connection rebuilt");
            true
        }
        Err(e) => {
            warn!(side = side.role, error = %e, "rebuilding the RabbitMQ connection failed; trying again");
            false
        }
    }
}
