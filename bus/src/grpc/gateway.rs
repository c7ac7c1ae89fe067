//! The connector's side: the `Gateway` service, the registrations it
//! holds, and routing a player's packets to the service that owns them.
//!
//! A registration is a lease: it lapses `lease` after its last renewal
//! and is forgotten. Per shard, each cmd has at most one live owner, and
//! one live service owns every cmd no other owns (Warren's game); a
//! service registering a cmd another live service of its shard owns is
//! refused, unless the other was registered from the same address (a
//! restart: the address is the new process's now).

use std::{
    sync::{
        Arc, Mutex, OnceLock, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{Notify, mpsc};
use tonic::{Request, Response, Status, transport::Channel};
use tracing::info;
use warren_proto::{
    BusEvent, BusPush, ConnectorId, EventKind,
    batch::seal,
    decode_event,
    gateway::{
        DeliverReply, DeliverRequest, Format, ForwardRequest, RegisterReply, RegisterRequest,
        SendReply, SendToPlayerRequest, gateway_server, upstream_client::UpstreamClient,
    },
};

use super::{
    convert,
    inbound::Inbound,
    outbound::{Call, Limits, Outbound},
};
use crate::{Address, BusError, Done, Registration};

/// One registered service.
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) cmds: Vec<u32>,
    pub(crate) shard: u16,
    pub(crate) boot: u64,
    pub(crate) events: bool,
    pub(crate) format: Format,
    since: Instant,
    renewed: Mutex<Instant>,
    pub(crate) outbound: Outbound,
}

impl Service {
    fn age(&self) -> Duration {
        self.renewed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    fn catch_all(&self) -> bool {
        self.cmds.is_empty()
    }

    /// Whether it and a registration for `cmds` would own a cmd both.
    fn overlaps(&self, cmds: &[u32]) -> bool {
        (self.catch_all() && cmds.is_empty()) || self.cmds.iter().any(|c| cmds.contains(c))
    }

    fn same(&self, r: &RegisterRequest) -> bool {
        self.address == r.address
            && self.boot == r.boot
            && self.cmds == r.cmds
            && self.events == r.events
            && self.format == r.format()
    }
}

/// What the gateway side of a bus shares with its server.
pub(crate) struct GatewaySide {
    pub(crate) id: OnceLock<ConnectorId>,
    /// When the id was set: a registration renewed after it knows it.
    id_at: OnceLock<Instant>,
    /// Per shard: whether any service of it ever registered here.
    ever: Vec<AtomicBool>,
    /// Every (shard, cmd) a service claimed here, and its name: when that
    /// service is gone, its cmd is refused (`unavailable`), not handed to
    /// the shard's game.
    claimed: RwLock<std::collections::HashMap<(u16, u32), String>>,
    pub(crate) boot: u64,
    shards: u16,
    lease: Duration,
    limits: Limits,
    services: RwLock<Vec<Arc<Service>>>,
    /// How `Deliver` reaches a service (TLS for an `https://` address).
    connector: warren_kit::grpc::Connector,
    /// Told whenever a registration comes or goes.
    pub(crate) changed: Notify,
    pub(crate) pushes: Inbound<BusPush>,
    pub(crate) pushes_rx: Mutex<Option<mpsc::Receiver<BusPush>>>,
}

impl GatewaySide {
    pub(crate) fn new(
        boot: u64,
        shards: u16,
        lease: Duration,
        limits: Limits,
        buffer: usize,
        connector: warren_kit::grpc::Connector,
    ) -> Self {
        let (pushes, rx) = Inbound::new(buffer, limits.deadline);
        GatewaySide {
            id: OnceLock::new(),
            id_at: OnceLock::new(),
            ever: (0..shards).map(|_| AtomicBool::new(false)).collect(),
            claimed: RwLock::new(std::collections::HashMap::new()),
            boot,
            shards,
            lease,
            limits,
            services: RwLock::new(Vec::new()),
            connector,
            changed: Notify::new(),
            pushes,
            pushes_rx: Mutex::new(Some(rx)),
        }
    }

    fn live(&self) -> Vec<Arc<Service>> {
        let services = self.services.read().unwrap_or_else(|p| p.into_inner());
        services
            .iter()
            .filter(|s| s.age() <= self.lease)
            .cloned()
            .collect()
    }

    /// Forgets what has lapsed.
    pub(crate) fn sweep(&self) {
        let mut services = self.services.write().unwrap_or_else(|p| p.into_inner());
        let before = services.len();
        services.retain(|s| {
            let live = s.age() <= self.lease;
            if !live {
                info!(service = %s.name, address = %s.address, shard = s.shard,
                      "forgot a service: no renewal for {} ms", self.lease.as_millis());
            }
            live
        });
        if services.len() != before {
            self.changed.notify_waiters();
        }
    }

    /// The services `event` goes to on `shard`: a request to the owner of
    /// its cmd, a connect or close to the shard's catch-all service and
    /// every service that asked for events, a connector's liveness to
    /// Warren's games.
    pub(crate) fn targets(
        &self,
        shard: u16,
        event: &BusEvent,
    ) -> Result<Vec<Arc<Service>>, BusError> {
        let live: Vec<Arc<Service>> = self
            .live()
            .into_iter()
            .filter(|s| s.shard == shard)
            .collect();
        let found: Vec<Arc<Service>> = match &event.kind {
            EventKind::Message { cmd, .. } | EventKind::Call { cmd, .. } => {
                if let Some(owner) = live.iter().find(|s| s.cmds.contains(cmd)) {
                    return Ok(vec![owner.clone()]);
                }
                let claimed = self.claimed.read().unwrap_or_else(|p| p.into_inner());
                if let Some(name) = claimed.get(&(shard, *cmd)) {
                    return Err(BusError::Unavailable(format!(
                        "cmd {cmd} of shard {shard} belongs to service '{name}', which is gone"
                    )));
                }
                live.iter()
                    .find(|s| s.catch_all())
                    .cloned()
                    .into_iter()
                    .collect()
            }
            EventKind::Alive { .. } => {
                return Ok(live
                    .into_iter()
                    .filter(|s| s.catch_all() && s.format == Format::Packed)
                    .collect());
            }
            _ => live
                .into_iter()
                .filter(|s| s.catch_all() || s.events)
                .collect(),
        };
        if found.is_empty() {
            let what = match &event.kind {
                EventKind::Message { cmd, .. } | EventKind::Call { cmd, .. } => {
                    format!("no live service owns cmd {cmd} on shard {shard}")
                }
                _ => format!("no live service serves shard {shard}"),
            };
            return Err(BusError::Unavailable(what));
        }
        Ok(found)
    }

    /// Whether a service of `shard` ever registered here.
    pub(crate) fn ever(&self, shard: u16) -> bool {
        self.ever
            .get(usize::from(shard))
            .is_some_and(|e| e.load(Ordering::Acquire))
    }

    /// Takes this gateway's connector id (once); false if it has another.
    pub(crate) fn name(&self, id: &ConnectorId) -> bool {
        let mine = self.id.get_or_init(|| {
            let _ = self.id_at.set(Instant::now());
            id.clone()
        });
        mine == id
    }

    /// Whether every shard's game registered here (`all_shards`, or at
    /// least those that did) knows this gateway's id: renewed since it
    /// was set.
    pub(crate) fn informed(&self, all_shards: bool) -> bool {
        let Some(at) = self.id_at.get() else {
            return false;
        };
        let live = self.live();
        (0..self.shards).all(|shard| {
            let games: Vec<&Arc<Service>> = live
                .iter()
                .filter(|s| s.shard == shard && s.catch_all())
                .collect();
            if games.is_empty() {
                return !all_shards;
            }
            games
                .iter()
                .all(|s| *s.renewed.lock().unwrap_or_else(|p| p.into_inner()) > *at)
        })
    }

    /// What the console shows.
    pub(crate) fn registrations(&self) -> Vec<Registration> {
        let services = self.services.read().unwrap_or_else(|p| p.into_inner());
        services
            .iter()
            .map(|s| {
                use std::sync::atomic::Ordering::Relaxed;
                let c = &s.outbound.counters;
                Registration {
                    name: s.name.clone(),
                    address: s.address.clone(),
                    shard: s.shard,
                    cmds: s.cmds.clone(),
                    events: s.events,
                    registered: s.since.elapsed(),
                    lease_age: s.age(),
                    live: s.age() <= self.lease,
                    calls: c.calls.load(Relaxed),
                    messages: c.messages.load(Relaxed),
                    in_flight: s.outbound.in_flight(),
                    errors: c.errors.load(Relaxed),
                    refused: c.refused.load(Relaxed),
                }
            })
            .collect()
    }

    fn register(&self, r: &RegisterRequest) -> Result<(), Status> {
        self.check(r)?;
        let mut services = self.services.write().unwrap_or_else(|p| p.into_inner());
        let lease = self.lease;
        services.retain(|s| s.age() <= lease);
        if r.leave {
            services.retain(|s| !(s.address == r.address && s.boot == r.boot));
            drop(services);
            info!(service = %r.name, address = %r.address, "a service left");
            self.changed.notify_waiters();
            return Ok(());
        }
        if let Some(s) = services.iter().find(|s| s.same(r)) {
            *s.renewed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            drop(services);
            self.changed.notify_waiters();
            return Ok(());
        }
        let shard = r.shard as u16;
        services.retain(|s| !(s.address == r.address && s.boot == r.boot));
        if let Some(owner) = services
            .iter()
            .find(|s| s.shard == shard && s.overlaps(&r.cmds) && s.address != r.address)
        {
            let what = if r.cmds.is_empty() {
                format!("shard {shard} already has a game (every cmd no other service owns)")
            } else {
                format!("cmds {:?} of shard {shard} already have an owner", r.cmds)
            };
            return Err(Status::already_exists(format!(
                "{what}: service '{}' at {}, registered {} s ago, renewed {} ms ago; stop it \
                 first (its lease lapses {} ms after its last renewal), or give this one another \
                 shard or other cmds",
                owner.name,
                owner.address,
                owner.since.elapsed().as_secs(),
                owner.age().as_millis(),
                self.lease.as_millis()
            )));
        }
        // The same address with a new boot: the old process is gone.
        services.retain(|s| !(s.shard == shard && s.overlaps(&r.cmds)));
        let service = self.service(r)?;
        info!(service = %r.name, address = %r.address, shard, cmds = ?r.cmds,
              "a service registered");
        services.push(Arc::new(service));
        drop(services);
        if let Some(ever) = self.ever.get(usize::from(shard)) {
            ever.store(true, Ordering::Release);
        }
        let mut claimed = self.claimed.write().unwrap_or_else(|p| p.into_inner());
        for cmd in &r.cmds {
            claimed.insert((shard, *cmd), r.name.clone());
        }
        self.changed.notify_waiters();
        Ok(())
    }

    fn check(&self, r: &RegisterRequest) -> Result<(), Status> {
        if r.shards != u32::from(self.shards) {
            return Err(Status::failed_precondition(format!(
                "this gateway serves {} shards but service '{}' says {}: every process of a \
                 deployment must say the same bus.shards",
                self.shards, r.name, r.shards
            )));
        }
        if r.shard >= u32::from(self.shards) {
            return Err(Status::invalid_argument(format!(
                "shard {} does not exist: there are {} (they count from 0)",
                r.shard, self.shards
            )));
        }
        if let Some(cmd) = r.cmds.iter().find(|c| **c < 1000) {
            return Err(Status::invalid_argument(format!(
                "cmd {cmd} is the protocol's own (service cmds are 1000 and above)"
            )));
        }
        if !r.address.starts_with("http://") && !r.address.starts_with("https://") {
            return Err(Status::invalid_argument(format!(
                "address '{}' is not a URL the gateway can call (http://host:port)",
                r.address
            )));
        }
        Ok(())
    }

    fn service(&self, r: &RegisterRequest) -> Result<Service, Status> {
        let channel = warren_kit::grpc::endpoint(&r.address)
            .map_err(|e| Status::invalid_argument(format!("address: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .connect_with_connector_lazy(self.connector.clone());
        let what = format!("service '{}' at {}", r.name, r.address);
        let limits = Limits {
            single: r.format() == Format::Single,
            ..self.limits
        };
        let outbound = Outbound::start(
            what.clone(),
            self.boot,
            limits,
            deliver(UpstreamClient::new(channel), r.format(), what),
        );
        Ok(Service {
            name: r.name.clone(),
            address: r.address.clone(),
            cmds: r.cmds.clone(),
            shard: r.shard as u16,
            boot: r.boot,
            events: r.events,
            format: r.format(),
            since: Instant::now(),
            renewed: Mutex::new(Instant::now()),
            outbound,
        })
    }

    /// Hands `event` to the services it goes to on the shards of `to`;
    /// `done` hears the first failure, or that every copy was taken.
    pub(crate) fn route(&self, to: &Address, event: &BusEvent, payload: Vec<u8>, done: Done) {
        let mut targets = Vec::new();
        let mut failure = None;
        for queue in to.clone().queues(self.shards) {
            let Address::Shard(shard) = queue else {
                continue;
            };
            match self.targets(shard, event) {
                Ok(found) => targets.extend(found),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        let copies = targets.len() + usize::from(failure.is_some());
        if copies == 0 {
            return done(Ok(()));
        }
        let mut dones = crate::fan(done, copies).into_iter();
        if let Some(e) = failure
            && let Some(d) = dones.next()
        {
            d(Err(e));
        }
        for (service, d) in targets.into_iter().zip(dones) {
            service.outbound.send(payload.clone(), d);
        }
    }
}

/// The call that hands a service its packets, in the form it asked for.
fn deliver(client: UpstreamClient<Channel>, format: Format, what: String) -> Call {
    Arc::new(move |parts, place, deadline| {
        let mut client = client.clone();
        let what = what.clone();
        Box::pin(async move {
            let mut req = DeliverRequest {
                order: Some(convert::order(place)),
                ..DeliverRequest::default()
            };
            if format == Format::Packed {
                req.packed = seal(parts);
            } else {
                let mut packets: Vec<_> = parts
                    .iter()
                    .filter_map(|p| decode_event(p).ok())
                    .filter_map(convert::packet)
                    .collect();
                if packets.is_empty() {
                    return Ok(());
                }
                if format == Format::Single && packets.len() == 1 {
                    let p = packets.remove(0);
                    req.kind = p.kind;
                    req.uid = p.uid;
                    req.cmd = p.cmd;
                    req.body = p.body;
                    req.connector = p.connector;
                    req.conn = p.conn;
                    req.seq = p.seq;
                } else {
                    req.packets = packets;
                }
            }
            let mut request = Request::new(req);
            request.set_timeout(deadline);
            client
                .deliver(request)
                .await
                .map(|_| ())
                .map_err(|s| convert::error(&what, &s))
        })
    })
}

/// The `Gateway` service a connector serves.
pub(crate) struct GatewayServer {
    pub(crate) side: Arc<GatewaySide>,
}

#[tonic::async_trait]
impl gateway_server::Gateway for GatewayServer {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterReply>, Status> {
        let r = request.into_inner();
        self.side.register(&r)?;
        Ok(Response::new(RegisterReply {
            connector: self
                .side
                .id
                .get()
                .map(|i| i.to_string())
                .unwrap_or_default(),
            boot: self.side.boot,
            lease_ms: self.side.lease.as_millis() as u32,
        }))
    }

    async fn send_to_player(
        &self,
        request: Request<SendToPlayerRequest>,
    ) -> Result<Response<SendReply>, Status> {
        let r = request.into_inner();
        let side = &self.side;
        let pushes = if !r.packed.is_empty() {
            convert::pushes(&r.packed)?
        } else {
            let me = side.id.get().ok_or_else(|| {
                Status::unavailable("this gateway is starting: it takes pushes in a moment")
            })?;
            let mut packets = r.packets;
            if packets.is_empty() {
                if r.uid == 0 {
                    return Err(Status::invalid_argument(
                        "nothing to send: give uid, cmd and body, packets, or packed",
                    ));
                }
                packets.push(warren_proto::gateway::Packet {
                    uid: r.uid,
                    cmd: r.cmd,
                    body: r.body,
                    ..Default::default()
                });
            }
            packets
                .into_iter()
                .map(|p| convert::push(me, p))
                .collect::<Result<Vec<_>, _>>()?
        };
        side.pushes
            .take(convert::place(r.order), pushes)
            .await
            .map_err(|e| convert::refused(e, "the gateway"))?;
        Ok(Response::new(SendReply {
            connector: side.id.get().map(|i| i.to_string()).unwrap_or_default(),
            boot: side.boot,
        }))
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<DeliverReply>, Status> {
        let r = request.into_inner();
        let mut outcomes = Vec::with_capacity(r.requests.len());
        for f in r.requests {
            let event = decode_event(&f.event)
                .map_err(|e| Status::invalid_argument(format!("a forwarded request: {e}")))?;
            let shard = u16::try_from(f.shard)
                .map_err(|_| Status::invalid_argument(format!("no shard {}", f.shard)))?;
            if shard >= self.side.shards {
                return Err(Status::invalid_argument(format!("no shard {shard}")));
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.side.route(
                &Address::Shard(shard),
                &event,
                f.event,
                Box::new(move |o| {
                    let _ = tx.send(o);
                }),
            );
            outcomes.push(rx);
        }
        for rx in outcomes {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(BusError::Rejected(m))) => return Err(Status::resource_exhausted(m)),
                Ok(Err(e)) => return Err(Status::unavailable(e.to_string())),
                Err(_) => return Err(Status::unavailable("the gateway is stopping")),
            }
        }
        Ok(Response::new(DeliverReply {}))
    }
}
