//! The game's side: `Upstream` (the gateways deliver to it), its
//! registration with every gateway, and its calls towards them (pushes,
//! forwarded requests).
//!
//! A game registers with each gateway in `bus.grpc.gateways` and renews
//! every third of the lease. A gateway that cannot be reached is tried
//! again (every 100 ms at first, at most every 500 ms): start order does
//! not matter. A gateway that refuses (another live game owns the shard,
//! or the shard counts differ) stops the game at start with its reason;
//! when the refusal is "owned", the game first waits out the other's
//! lease, because a game that was just killed still holds it.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status, transport::Channel};
use tracing::{error, info, warn};
use warren_proto::{
    BusEvent, ConnectorId,
    batch::seal,
    gateway::{
        DeliverReply, DeliverRequest, ForwardRequest, Forwarded, RegisterRequest,
        SendToPlayerRequest, gateway_client::GatewayClient, upstream_server,
    },
};

use super::{
    convert,
    inbound::Inbound,
    outbound::{Call, Limits, Outbound},
};
use crate::BusError;

/// How long one registration call may take.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause before trying an unreachable gateway again, at most.
const RETRY_MAX: Duration = Duration::from_millis(500);

/// One gateway, as a game sees it.
pub(crate) struct Link {
    pub(crate) url: String,
    client: GatewayClient<Channel>,
    /// Its connector id, once it said (a registration reply, or a
    /// delivery from it).
    id: RwLock<Option<ConnectorId>>,
    boot: AtomicU64,
    registered: AtomicBool,
    /// Told (shared by every link of a bus) when a link learns its id.
    learned: Arc<tokio::sync::Notify>,
    pub(crate) pushes: Outbound,
    pub(crate) forwards: Outbound,
}

impl Link {
    pub(crate) fn new(
        url: &str,
        sender: u64,
        limits: Limits,
        learned: Arc<tokio::sync::Notify>,
        connector: warren_kit::grpc::Connector,
    ) -> Result<Self, BusError> {
        let channel = warren_kit::grpc::endpoint(url)
            .map_err(|e| BusError::Mismatch(format!("bus.grpc.gateways: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .connect_with_connector_lazy(connector);
        let client = GatewayClient::new(channel);
        let what = format!("the gateway at {url}");
        let pushes = Outbound::start(
            what.clone(),
            sender,
            limits,
            send_to_player(client.clone(), what.clone()),
        );
        // Forwards are rare; one call at a time keeps them in order.
        let one = Limits {
            in_flight: 1,
            ..limits
        };
        let forwards = Outbound::start(what.clone(), sender, one, forward(client.clone(), what));
        Ok(Link {
            url: url.to_owned(),
            client,
            id: RwLock::new(None),
            boot: AtomicU64::new(0),
            registered: AtomicBool::new(false),
            learned,
            pushes,
            forwards,
        })
    }

    pub(crate) fn id(&self) -> Option<ConnectorId> {
        self.id.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn learn(&self, id: &str, boot: u64) {
        self.boot.store(boot, Ordering::Release);
        if id.is_empty() {
            return;
        }
        if let Ok(id) = ConnectorId::parse(id) {
            let mut slot = self.id.write().unwrap_or_else(|p| p.into_inner());
            if slot.as_ref() != Some(&id) {
                *slot = Some(id);
                drop(slot);
                self.learned.notify_waiters();
            }
        }
    }

    pub(crate) fn registered(&self) -> bool {
        self.registered.load(Ordering::Acquire)
    }
}

fn send_to_player(client: GatewayClient<Channel>, what: String) -> Call {
    Arc::new(move |parts, place, deadline| {
        let mut client = client.clone();
        let what = what.clone();
        Box::pin(async move {
            let mut request = Request::new(SendToPlayerRequest {
                packed: seal(parts),
                order: Some(convert::order(place)),
                ..SendToPlayerRequest::default()
            });
            request.set_timeout(deadline);
            client
                .send_to_player(request)
                .await
                .map(|_| ())
                .map_err(|s| convert::error(&what, &s))
        })
    })
}

/// A forwarded request's part: its shard (two bytes) and its envelope.
pub(crate) fn forwarded(shard: u16, envelope: &[u8]) -> Vec<u8> {
    let mut part = Vec::with_capacity(2 + envelope.len());
    part.extend_from_slice(&shard.to_be_bytes());
    part.extend_from_slice(envelope);
    part
}

fn forward(client: GatewayClient<Channel>, what: String) -> Call {
    Arc::new(move |parts, place, deadline| {
        let mut client = client.clone();
        let what = what.clone();
        Box::pin(async move {
            let requests = parts
                .into_iter()
                .filter_map(|p| {
                    let (shard, event) = p.split_first_chunk::<2>()?;
                    Some(Forwarded {
                        shard: u32::from(u16::from_be_bytes(*shard)),
                        event: event.to_vec(),
                    })
                })
                .collect();
            let mut request = Request::new(ForwardRequest {
                requests,
                order: Some(convert::order(place)),
            });
            request.set_timeout(deadline);
            client
                .forward(request)
                .await
                .map(|_| ())
                .map_err(|s| convert::error(&what, &s))
        })
    })
}

/// How a gateway first answered a registration.
#[derive(Debug)]
pub(crate) enum First {
    Registered,
    Unreachable,
    Refused(Code, String),
}

// Long: a registration's whole life in one loop, each answer's handling side by side.
/// Registers with `link`'s gateway and renews until `stop`, then leaves.
/// `first` hears the first answer that settles it.
pub(crate) async fn keep_registered(
    link: Arc<Link>,
    request: RegisterRequest,
    lease: Duration,
    stop: CancellationToken,
    first: oneshot::Sender<First>,
) {
    let started = Instant::now();
    let mut first = Some(first);
    let mut backoff = Duration::from_millis(100);
    let mut refused = false;
    let mut client = link.client.clone();
    loop {
        let mut call = Request::new(request.clone());
        call.set_timeout(REGISTER_TIMEOUT);
        let answer = tokio::select! {
            a = tokio::time::timeout(REGISTER_TIMEOUT, client.register(call)) => a,
            () = stop.cancelled() => break,
        };
        let pause = match answer {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                link.learn(&reply.connector, reply.boot);
                if !link.registered.swap(true, Ordering::AcqRel) {
                    info!(gateway = %link.url, connector = %reply.connector, "registered with a gateway");
                }
                refused = false;
                if let Some(tx) = first.take() {
                    let _ = tx.send(First::Registered);
                }
                backoff = Duration::from_millis(100);
                if reply.connector.is_empty() {
                    // The gateway is starting: it names itself in a moment.
                    Duration::from_millis(50)
                } else {
                    lease / 3
                }
            }
            Ok(Err(status))
                if status.code() == Code::AlreadyExists
                    && first.is_some()
                    && started.elapsed() < lease + Duration::from_secs(1) =>
            {
                // Perhaps a game that just died: its lease lapses soon.
                Duration::from_millis(200)
            }
            Ok(Err(status))
                if matches!(
                    status.code(),
                    Code::AlreadyExists | Code::FailedPrecondition | Code::InvalidArgument
                ) =>
            {
                link.registered.store(false, Ordering::Release);
                if let Some(tx) = first.take() {
                    let _ = tx.send(First::Refused(status.code(), status.message().to_owned()));
                } else if !refused {
                    error!(gateway = %link.url, reason = %status.message(), "the gateway refuses this game; trying again");
                }
                refused = true;
                // Whoever holds it may be leaving: try again soon.
                Duration::from_millis(250)
            }
            _ => {
                if link.registered.swap(false, Ordering::AcqRel) {
                    warn!(gateway = %link.url, "a gateway does not answer; trying again");
                }
                if let Some(tx) = first.take() {
                    let _ = tx.send(First::Unreachable);
                }
                let pause = backoff;
                backoff = (backoff * 2).min(RETRY_MAX);
                pause
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => break,
        }
    }
    if link.registered() {
        let mut leave = Request::new(RegisterRequest {
            leave: true,
            ..request
        });
        leave.set_timeout(REGISTER_TIMEOUT / 2);
        let _ = tokio::time::timeout(REGISTER_TIMEOUT / 2, client.register(leave)).await;
    }
}

/// The `Upstream` service a game serves.
pub(crate) struct UpstreamServer {
    pub(crate) events: Inbound<BusEvent>,
    pub(crate) links: Arc<Vec<Arc<Link>>>,
}

impl UpstreamServer {
    /// Learns which gateway a delivery came from: its sender is the
    /// gateway's boot, its events name the gateway's connector id.
    fn learn(&self, sender: u64, events: &[BusEvent]) {
        let Some(first) = events.first() else { return };
        for link in self.links.iter() {
            if link.boot.load(Ordering::Acquire) == sender && link.id().is_none() {
                link.learn(first.connector.as_str(), sender);
            }
        }
    }
}

#[tonic::async_trait]
impl upstream_server::Upstream for UpstreamServer {
    async fn deliver(
        &self,
        request: Request<DeliverRequest>,
    ) -> Result<Response<DeliverReply>, Status> {
        let r = request.into_inner();
        if r.packed.is_empty() {
            return Err(Status::invalid_argument(
                "Warren's game takes packed deliveries (it registers FORMAT_PACKED)",
            ));
        }
        let events = convert::events(&r.packed)?;
        let place = convert::place(r.order);
        if let Some(p) = place {
            self.learn(p.sender, &events);
        }
        self.events
            .take(place, events)
            .await
            .map_err(|e| convert::refused(e, "the game"))?;
        Ok(Response::new(DeliverReply {}))
    }
}
