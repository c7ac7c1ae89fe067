//! The gRPC gateway: no broker; connectors and services call each other
//! (`proto/proto/gateway.proto`).
//!
//! - A **connector** (or HTTP call gateway) serves `Gateway` at
//!   `bus.grpc.gateway` from the moment its bus opens. Services register
//!   there; a player's request goes to the live service of its shard that
//!   owns its cmd (`Deliver`), a connect or close to the shard's game and
//!   to the services that asked for events. A request whose owner has no
//!   live registration is refused at once (`unavailable`); in its first
//!   seconds a gateway waits up to [`SEND_WAIT`](crate::SEND_WAIT) for
//!   one, so start order does not matter.
//! - A **game** serves `Upstream` at `bus.grpc.listen` and registers with
//!   every gateway in `bus.grpc.gateways` (a lease, renewed every third of
//!   `bus.grpc.lease_ms`); its pushes go to the gateway that holds the
//!   connection (`SendToPlayer`), a broadcast to every gateway, a
//!   forwarded request through a gateway (`Forward`).
//!
//! **Bounds.** Towards each peer at most `in_flight` calls and a queue of
//! `queue` messages (a full queue refuses at once: `overloaded`), every
//! message answered within `deadline` of its send; a process holds at most
//! `buffer` messages it took and has not consumed, and refuses a call
//! that does not fit (`overloaded`). So a slow or stopped service costs
//! its own players an answer within the deadline, and nobody else
//! anything.
//!
//! **Order.** A peer's calls are numbered and taken in order (the
//! `outbound` and `inbound` modules).
//!
//! **What is promised.** At most once: what a process holds when it dies
//! is lost, and the connector's request time-out still answers every
//! request. The durable mode is refused.

use std::{
    fmt,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use warren_proto::{
    BusEvent, BusPush, ConnectorId,
    gateway::{Format, RegisterRequest, gateway_server::GatewayServer, upstream_server},
};

mod convert;
mod gateway;
mod inbound;
mod outbound;
mod settings;
mod upstream;

use gateway::GatewaySide;
pub use settings::GrpcSettings;
use upstream::{First, Link, UpstreamServer, keep_registered};

use crate::{
    Address, Bus, BusError, BusState, Done, Message, Open, Registration, SEND_WAIT, Subscription,
    fan,
};

/// How long after start a gateway waits for a missing registration.
const REGISTER_GRACE: Duration = Duration::from_secs(5);
/// The longest [`Bus::close`] takes.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Which side of the gateway this process is.
enum Side {
    Gateway(Arc<GatewaySide>),
    Service {
        links: Arc<Vec<Arc<Link>>>,
        consuming: AtomicBool,
        /// Told when a link learns its gateway's connector id.
        learned: Arc<tokio::sync::Notify>,
    },
}

pub struct GrpcBus {
    settings: GrpcSettings,
    side: Side,
    boot: u64,
    started: Instant,
    stop: CancellationToken,
    closed: Open,
    /// What the gateway serves on, once bound.
    bound: OnceLock<std::net::SocketAddr>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// A game's registrations: each leaves its gateway when stopped.
    registrations: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl fmt::Debug for GrpcBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcBus")
            .field("gateway", &matches!(self.side, Side::Gateway(_)))
            .field("bound", &self.bound.get())
            .finish_non_exhaustive()
    }
}

fn limits(s: &GrpcSettings) -> outbound::Limits {
    outbound::Limits {
        in_flight: s.in_flight,
        queue: s.queue,
        deadline: s.deadline,
        single: false,
    }
}

fn boot() -> u64 {
    use rand::Rng;
    rand::thread_rng().r#gen::<u64>() | 1
}

impl GrpcBus {
    /// A connector's (or call gateway's) bus: serves `Gateway` at
    /// `settings.gateway` from now on.
    pub async fn gateway(settings: GrpcSettings) -> Result<Self, BusError> {
        settings.check()?;
        let listener = TcpListener::bind(settings.gateway).await.map_err(|e| {
            BusError::Mismatch(format!(
                "cannot serve the gRPC gateway at {} (bus.grpc.gateway): {e}",
                settings.gateway
            ))
        })?;
        let listener = warren_kit::grpc::Listener::new(listener, settings.tls.as_ref())
            .map_err(|e| BusError::Mismatch(e.to_string()))?;
        let (bound, tls) = (listener.local_addr(), listener.tls().is_some());
        let boot = boot();
        let side = Arc::new(GatewaySide::new(
            boot,
            settings.shards,
            settings.lease,
            limits(&settings),
            settings.buffer,
            warren_kit::grpc::Connector::new(&settings.client_tls),
        ));
        let stop = CancellationToken::new();
        let server = tonic::transport::Server::builder()
            .add_service(GatewayServer::new(gateway::GatewayServer {
                side: side.clone(),
            }))
            .serve_with_incoming_shutdown(listener.incoming(), stop.clone().cancelled_owned());
        let server = tokio::spawn(async move {
            if let Err(e) = server.await {
                warn!(error = %e, "the gRPC gateway stopped");
            }
        });
        let sweeper = side.clone();
        let every = settings.lease / 3;
        let until = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => sweeper.sweep(),
                    () = until.cancelled() => break,
                }
            }
        });
        info!(%bound, tls, shards = settings.shards, "gRPC gateway serving");
        let bus = GrpcBus {
            settings,
            side: Side::Gateway(side),
            boot,
            started: Instant::now(),
            stop,
            closed: Open::default(),
            bound: OnceLock::new(),
            server: Mutex::new(Some(server)),
            registrations: Mutex::new(Vec::new()),
        };
        let _ = bus.bound.set(bound);
        Ok(bus)
    }

    /// A game's bus: registers with every gateway once it consumes its
    /// shard ([`Bus::subscribe_events`]).
    pub async fn service(settings: GrpcSettings) -> Result<Self, BusError> {
        settings.check()?;
        let boot = boot();
        let learned = Arc::new(tokio::sync::Notify::new());
        let links = settings
            .gateways
            .iter()
            .map(|url| {
                let connector = warren_kit::grpc::Connector::new(&settings.client_tls);
                Link::new(url, boot, limits(&settings), learned.clone(), connector).map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if links.is_empty() {
            return Err(BusError::Mismatch(
                "bus.grpc.gateways is empty: a game registers with every connector's gateway \
                 (--gateways URL,URL)"
                    .into(),
            ));
        }
        Ok(GrpcBus {
            settings,
            side: Side::Service {
                links: Arc::new(links),
                consuming: AtomicBool::new(false),
                learned,
            },
            boot,
            started: Instant::now(),
            stop: CancellationToken::new(),
            closed: Open::default(),
            bound: OnceLock::new(),
            server: Mutex::new(None),
            registrations: Mutex::new(Vec::new()),
        })
    }

    /// Where this process serves (the gateway, or a game's `Upstream`).
    pub fn bound(&self) -> Option<std::net::SocketAddr> {
        self.bound.get().copied()
    }

    /// A gateway's send: waits for a first registration shortly after
    /// start, then routes.
    async fn route(&self, side: &GatewaySide, to: Address, event: BusEvent, done: Done) {
        if self.started.elapsed() < REGISTER_GRACE {
            let deadline = tokio::time::Instant::now() + SEND_WAIT;
            loop {
                let changed = side.changed.notified();
                // Only a shard that never had a service here is waited
                // for: one whose service went away is refused at once.
                let missing = to.clone().queues(self.settings.shards).into_iter().any(|q| {
                    matches!(q, Address::Shard(s) if !side.ever(s) && side.targets(s, &event).is_err())
                });
                if !missing {
                    break;
                }
                if tokio::time::timeout_at(deadline, changed).await.is_err() {
                    break;
                }
            }
        }
        let payload = warren_proto::encode_event(&event);
        side.route(&to, &event, payload, done);
    }

    /// The link to connector `id`'s gateway. While some gateway has not
    /// named itself yet (it is starting, or unreachable), it may be that
    /// one: wait for it, at most [`SEND_WAIT`].
    async fn link_of(
        links: &[Arc<Link>],
        learned: &tokio::sync::Notify,
        id: &ConnectorId,
    ) -> Option<Arc<Link>> {
        let deadline = tokio::time::Instant::now() + SEND_WAIT;
        loop {
            let told = learned.notified();
            if let Some(link) = links.iter().find(|l| l.id().as_ref() == Some(id)) {
                return Some(link.clone());
            }
            if links.iter().all(|l| l.id().is_some())
                || tokio::time::timeout_at(deadline, told).await.is_err()
            {
                return None;
            }
        }
    }

    /// A game's push or forward.
    async fn towards_gateways(
        &self,
        links: &[Arc<Link>],
        learned: &tokio::sync::Notify,
        to: Address,
        msg: Message,
        done: Done,
    ) {
        match (to, msg) {
            (Address::Connector(id), msg @ Message::Push(_)) => {
                match Self::link_of(links, learned, &id).await {
                    Some(link) => link.pushes.send(msg.encode(), done),
                    None => done(Err(BusError::Unavailable(format!(
                        "connector {id} is not one of this game's gateways (bus.grpc.gateways), \
                         or has not answered yet"
                    )))),
                }
            }
            (Address::EveryConnector, msg @ Message::Push(_)) => {
                // Shortly after start a gateway may have taken this game's
                // registration before the game heard its answer: wait for
                // the gateways to name themselves (at most SEND_WAIT).
                if self.started.elapsed() < REGISTER_GRACE {
                    let deadline = tokio::time::Instant::now() + SEND_WAIT;
                    loop {
                        let told = learned.notified();
                        if links.iter().all(|l| l.id().is_some())
                            || tokio::time::timeout_at(deadline, told).await.is_err()
                        {
                            break;
                        }
                    }
                }
                let up: Vec<&Arc<Link>> = links
                    .iter()
                    .filter(|l| l.registered() || l.id().is_some())
                    .collect();
                if up.is_empty() {
                    return done(Ok(()));
                }
                let body = msg.encode();
                for (link, d) in up.iter().zip(fan(done, up.len())) {
                    link.pushes.send(body.clone(), d);
                }
            }
            (to, msg @ Message::Event(_)) => {
                let Some(link) = links.iter().find(|l| l.registered()) else {
                    return done(Err(BusError::Unavailable(
                        "no gateway to forward through: none of bus.grpc.gateways answers".into(),
                    )));
                };
                let body = msg.encode();
                let queues = to.queues(self.settings.shards);
                let n = queues.len();
                for (q, d) in queues.into_iter().zip(fan(done, n)) {
                    if let Address::Shard(s) = q {
                        link.forwards.send(upstream::forwarded(s, &body), d);
                    }
                }
            }
            (to, _) => done(Err(BusError::Mismatch(format!("nothing goes to {to:?}")))),
        }
    }

    /// Registers with every gateway and waits for their first answers: a
    /// refusal is this game's error (it leaves the gateways that took it
    /// first).
    async fn register_everywhere(
        &self,
        links: &Arc<Vec<Arc<Link>>>,
        request: RegisterRequest,
        attempt: &CancellationToken,
    ) -> Result<(), BusError> {
        let s = &self.settings;
        let mut answers = Vec::new();
        let mut tasks = Vec::new();
        for link in links.iter() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tasks.push(tokio::spawn(keep_registered(
                link.clone(),
                request.clone(),
                s.lease,
                attempt.clone(),
                tx,
            )));
            answers.push((link.url.clone(), rx));
        }
        for (url, rx) in answers {
            match rx.await {
                Ok(First::Refused(code, reason)) => {
                    // Leave the gateways that took it before saying so.
                    attempt.cancel();
                    let _ =
                        tokio::time::timeout(CLOSE_TIMEOUT, futures_util::future::join_all(tasks))
                            .await;
                    let message = format!("the gateway at {url} refuses this game: {reason}");
                    return Err(if code == tonic::Code::AlreadyExists {
                        BusError::AlreadyConsumed(message)
                    } else {
                        BusError::Mismatch(message)
                    });
                }
                Ok(First::Unreachable) => {
                    info!(gateway = %url, "not up yet; this game registers once it is")
                }
                Ok(First::Registered) | Err(_) => {}
            }
        }
        *self.registrations.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        Ok(())
    }

    /// Binds `Upstream`, registers with every gateway and waits for their
    /// first answers: a refusal is this game's error, after which nothing
    /// of the attempt is left (a standby asks again later).
    async fn serve_upstream(
        &self,
        links: &Arc<Vec<Arc<Link>>>,
    ) -> Result<Subscription<BusEvent>, BusError> {
        let s = &self.settings;
        let attempt = self.stop.child_token();
        let listener = TcpListener::bind(s.listen).await.map_err(|e| {
            BusError::Mismatch(format!(
                "cannot serve Upstream at {} (bus.grpc.listen): {e}",
                s.listen
            ))
        })?;
        let listener = warren_kit::grpc::Listener::new(listener, s.tls.as_ref())
            .map_err(|e| BusError::Mismatch(e.to_string()))?;
        let bound = listener.local_addr();
        let address = if s.advertise.is_empty() {
            format!("{}://{bound}", listener.scheme())
        } else {
            s.advertise.clone()
        };
        let (events, rx) = inbound::Inbound::new(s.buffer, s.deadline);
        let upstream = UpstreamServer {
            events,
            links: links.clone(),
        };
        let server = tonic::transport::Server::builder()
            .add_service(upstream_server::UpstreamServer::new(upstream))
            .serve_with_incoming_shutdown(listener.incoming(), attempt.clone().cancelled_owned());
        let server = tokio::spawn(async move {
            if let Err(e) = server.await {
                warn!(error = %e, "Upstream stopped");
            }
        });
        let request = RegisterRequest {
            name: "game".into(),
            address: address.clone(),
            cmds: Vec::new(),
            shard: u32::from(s.shard),
            shards: u32::from(s.shards),
            boot: self.boot,
            events: true,
            format: Format::Packed as i32,
            leave: false,
        };
        if let Err(e) = self.register_everywhere(links, request, &attempt).await {
            // The listener closes with the server.
            attempt.cancel();
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, server).await;
            return Err(e);
        }
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(server);
        let _ = self.bound.set(bound);
        info!(shard = s.shard, %address, "serving shard {}'s requests over the gRPC gateway", s.shard);
        Ok(Subscription::channel(rx))
    }
}

#[async_trait]
impl Bus for GrpcBus {
    fn shards(&self) -> u16 {
        self.settings.shards
    }

    async fn send(&self, to: Address, msg: Message, done: Done) {
        if let Err(e) = self.closed.sendable(&to, &msg, self.settings.shards) {
            return done(Err(e));
        }
        match (&self.side, msg) {
            (Side::Gateway(side), Message::Event(event)) => {
                self.route(side, to, event, done).await;
            }
            (Side::Gateway(_), Message::Push(_)) => done(Err(BusError::Mismatch(
                "on the gRPC gateway pushes come from services (SendToPlayer); a connector sends \
                 none"
                    .into(),
            ))),
            (Side::Service { links, learned, .. }, msg) => {
                self.towards_gateways(links, learned, to, msg, done).await;
            }
        }
    }

    async fn subscribe_pushes(
        &self,
        connector: &ConnectorId,
    ) -> Result<Subscription<BusPush>, BusError> {
        self.closed.ensure()?;
        let Side::Gateway(side) = &self.side else {
            return Err(BusError::Mismatch(
                "a game process takes no pushes on the gRPC gateway".into(),
            ));
        };
        if !side.name(connector) {
            let id = side.id.get().map(ToString::to_string).unwrap_or_default();
            return Err(BusError::AlreadyConsumed(format!(
                "this gateway serves connector {id}; {connector} needs a process of its own"
            )));
        }
        let rx = side
            .pushes_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                BusError::AlreadyConsumed(format!(
                    "this process already takes {connector}'s pushes"
                ))
            })?;
        // The games registered here learn the id at their next renewal
        // (soon: a registration answered without one renews at once); a
        // gateway that has just started also waits for its games.
        let all_shards = self.started.elapsed() < REGISTER_GRACE;
        let deadline = tokio::time::Instant::now() + SEND_WAIT;
        loop {
            let changed = side.changed.notified();
            if side.informed(all_shards) {
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                info!(%connector, "not every shard's game has registered yet; their pushes arrive once they have");
                break;
            }
        }
        Ok(Subscription::channel(rx))
    }

    async fn subscribe_events(&self) -> Result<Subscription<BusEvent>, BusError> {
        self.closed.ensure()?;
        let Side::Service {
            links, consuming, ..
        } = &self.side
        else {
            return Err(BusError::Mismatch(
                "a connector serves the gateway; games consume a shard (GrpcBus::service)".into(),
            ));
        };
        if consuming.swap(true, Ordering::AcqRel) {
            return Err(BusError::AlreadyConsumed(format!(
                "this process already consumes shard {}",
                self.settings.shard
            )));
        }
        let served = self.serve_upstream(links).await;
        if served.is_err() {
            consuming.store(false, Ordering::Release);
        }
        served
    }

    fn state(&self) -> BusState {
        let up = match &self.side {
            Side::Gateway(_) => true,
            Side::Service { links, .. } => links.iter().any(|l| l.registered()),
        };
        BusState {
            up,
            ..BusState::default()
        }
    }

    fn registrations(&self) -> Vec<Registration> {
        match &self.side {
            Side::Gateway(side) => side.registrations(),
            Side::Service { .. } => Vec::new(),
        }
    }

    async fn close(&self) {
        if !self.closed.close() {
            return;
        }
        self.stop.cancel();
        let registrations =
            std::mem::take(&mut *self.registrations.lock().unwrap_or_else(|p| p.into_inner()));
        let left = futures_util::future::join_all(registrations);
        if tokio::time::timeout(CLOSE_TIMEOUT, left).await.is_err() {
            warn!("the gateways were not told of this stop within {CLOSE_TIMEOUT:?}");
        }
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(server) = server
            && tokio::time::timeout(CLOSE_TIMEOUT, server).await.is_err()
        {
            warn!("the gRPC server did not stop within {CLOSE_TIMEOUT:?}");
        }
        info!("gRPC gateway bus closed");
    }
}
