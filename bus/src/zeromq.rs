//! The ZeroMQ bus: no broker, sockets straight between connectors and
//! games (the design's "no reconnection to write, start order does not
//! matter"), in one of two layouts ([`ZmqLayout`]):
//!
//! - **pubsub** (layout 1): the game of shard `i` binds a PULL at
//!   `requests[i]` and a PUB at `pushes[i]`. Every process keeps one PUSH
//!   per shard (a player's requests go to the shard that owns the uid,
//!   lifecycle events to every shard, a game's forwards to the owner), and
//!   every connector one SUB connected to every shard's PUB, subscribed to
//!   its own id's topic and the broadcast topic.
//! - **push-server** (layout 2): requests as in pubsub; every game PUSHes
//!   its pushes to one push server (`warren push-server`, [`PushServer`]),
//!   each connector binds a PULL of its own and registers its id and
//!   address with the push server (DEALER → ROUTER, renewed every second),
//!   and the push server forwards each push to the connector it names.
//!   There a duplicate connector id is refused.
//! - **pair** (layout 3): one connector and one game; the game binds a
//!   PULL for requests and a PUSH for pushes, the connector connects a
//!   PUSH and a PULL.
//!
//! One ZeroMQ message is one bus message or a sealed batch (the shared
//! batcher); a push on a PUB is `[topic, body]`, topics `c<id>\0` and `*`;
//! to the push server `[connector id or *, body]`.
//!
//! **Bounds and what is promised.** ZeroMQ delivers at most once: what a
//! socket holds when its process dies is lost, and the connector's request
//! time-out still answers every request. Every socket's queue is bounded
//! by its high-water marks (`send_hwm`, `receive_hwm`). A request towards
//! a full queue is refused (`Rejected`: the client hears `overloaded`)
//! after at most 100 ms, in which its game's monitor may still say the
//! game has just gone; towards a game that is not connected (`ZMQ_IMMEDIATE`:
//! nothing queues for a missing peer) it is refused at once too
//! (`Unavailable`), except that a bus that has just started waits up to
//! [`SEND_WAIT`](crate::SEND_WAIT) for its first connection to a shard,
//! so start order does not matter. A PUB drops what a slow subscriber
//! cannot take at its high-water mark; libzmq does not count those drops.
//! A subscription is not in force until the publisher has it: each game's
//! PUB welcomes a new subscriber (`ZMQ_XPUB_WELCOME_MSG`), and
//! `subscribe_pushes` waits for every running shard's welcome.
//!
//! **Owners.** A shard's addresses are bound by its game, so a second game
//! of a shard on the same host is refused (address in use). There is no
//! broker to hold connector ids in layouts 1 and 3: two connectors started
//! with one id both receive its pushes, which nothing here detects (the
//! push server of layout 2 refuses the second).
//!
//! **Outages.** ZeroMQ reconnects by itself (every 100 ms at first, at most
//! every second) and notices a silent peer by heartbeats (3 s); a monitor
//! on each PUSH tells the bus whether its game is there.

use std::{
    fmt,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use warren_proto::{BusEvent, BusPush, ConnectorId, decode_event, decode_push};

mod push_server;
mod registration;
mod settings;
mod sockets;
mod source;

pub use push_server::{PushServer, PushServerSettings, PushServerStats, Registered};
pub use settings::{ZmqLayout, ZmqSettings};
use sockets::{Peer, bind, connect, failed, socket, watch, wrap};
use source::Incoming;
pub(crate) use source::ZmqSource;

use crate::{
    Address, Bus, BusError, BusState, Confirm, Done, Message, Open, SEND_WAIT, Subscription,
    batch::{Batcher, Sink},
};

/// A publisher's welcome to a new subscriber: `~<shard>`.
const WELCOME: &str = "~";
/// The broadcast topic.
const BROADCAST: &[u8] = b"*";
/// How long `subscribe_pushes` waits for the shards' welcomes.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(1);
/// How long after start a send waits for a shard's first connection.
const CONNECT_GRACE: Duration = Duration::from_secs(5);
/// The longest [`Bus::close`] takes.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connector's topic on the games' publishers.
fn topic(connector: &ConnectorId) -> Vec<u8> {
    format!("c{connector}\0").into_bytes()
}

/// One shard's request socket, as every process holds it.
struct ShardLink {
    address: String,
    socket: Mutex<zmq::Socket>,
    peer: Arc<Peer>,
    /// The last send was refused as full: the next refusal is answered at
    /// once, without waiting [`PEER_SETTLE`] again.
    full: AtomicBool,
}

/// What the bus and its batcher's sink share.
struct Links {
    layout: ZmqLayout,
    shards: Vec<ShardLink>,
    /// The game's push socket, bound once it consumes its shard.
    out: OnceLock<Mutex<zmq::Socket>>,
}

fn lock(socket: &Mutex<zmq::Socket>) -> std::sync::MutexGuard<'_, zmq::Socket> {
    socket.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct ZmqBus {
    settings: ZmqSettings,
    ctx: zmq::Context,
    links: Arc<Links>,
    batcher: Batcher,
    started: Instant,
    stop: CancellationToken,
    closed: Open,
    /// The pair layout: whether this process's one push consumer exists.
    pair_consumer: AtomicBool,
}

impl fmt::Debug for ZmqBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZmqBus")
            .field("layout", &self.settings.layout)
            .field("requests", &self.settings.requests)
            .field("pushes", &self.settings.pushes)
            .finish_non_exhaustive()
    }
}

impl ZmqBus {
    /// Makes this process's sockets towards every shard (they connect in
    /// the background, whenever the games are there). `Mismatch` if the
    /// settings do not describe a layout that can run (the durable mode
    /// among them).
    pub async fn connect(settings: ZmqSettings) -> Result<Self, BusError> {
        settings.check()?;
        let ctx = zmq::Context::new();
        let stop = CancellationToken::new();
        let mut shards = Vec::new();
        for address in &settings.requests {
            let s = socket(
                &ctx,
                zmq::PUSH,
                settings.send_hwm,
                settings.receive_hwm,
                true,
            )?;
            // Watched before it connects, so no handshake goes unseen.
            let peer = watch(&ctx, &s, address.clone(), stop.clone())?;
            connect(&s, address)?;
            shards.push(ShardLink {
                address: address.clone(),
                socket: Mutex::new(s),
                peer,
                full: AtomicBool::new(false),
            });
        }
        let links = Arc::new(Links {
            layout: settings.layout,
            shards,
            out: OnceLock::new(),
        });
        let sink = ZmqSink {
            links: links.clone(),
        };
        let batcher = Batcher::start(Arc::new(sink), settings.shards(), settings.batch_window);
        info!(layout = %settings.layout, shards = settings.shards(), "ZeroMQ bus ready");
        Ok(ZmqBus {
            settings,
            ctx,
            links,
            batcher,
            started: Instant::now(),
            stop,
            closed: Open::default(),
            pair_consumer: AtomicBool::new(false),
        })
    }

    /// Shortly after start, waits (at most [`SEND_WAIT`]) for the first
    /// connection to each shard `to` names, so that a connector started
    /// before its games, or with them, does not refuse its first requests.
    async fn first_connections(&self, to: &Address) {
        if self.started.elapsed() > CONNECT_GRACE {
            return;
        }
        let shards: Vec<&ShardLink> = match to {
            Address::Shard(s) => self.links.shards.get(usize::from(*s)).into_iter().collect(),
            Address::EveryShard => self.links.shards.iter().collect(),
            _ => return,
        };
        for link in shards {
            if !link.peer.ever() {
                link.peer.wait_connected(SEND_WAIT).await;
            }
        }
    }

    /// The game's push socket for the layout, bound (or, towards a push
    /// server, connecting: with the peer to wait for).
    fn bind_out(&self, shard: u16) -> Result<(zmq::Socket, Option<Arc<Peer>>), BusError> {
        let s = &self.settings;
        let taken = format!("shard {shard}'s push address is held by another process");
        match s.layout {
            ZmqLayout::PubSub => {
                let out = socket(&self.ctx, zmq::PUB, s.send_hwm, s.receive_hwm, false)?;
                out.set_xpub_welcome_msg(Some(&format!("{WELCOME}{shard}")))
                    .map_err(|e| failed("setting the welcome", e))?;
                bind(
                    &out,
                    &s.bind_address(&s.pushes[usize::from(shard)])?,
                    &taken,
                )?;
                Ok((out, None))
            }
            ZmqLayout::PushServer => {
                let out = socket(&self.ctx, zmq::PUSH, s.send_hwm, s.receive_hwm, true)?;
                let peer = watch(&self.ctx, &out, s.push_server.clone(), self.stop.clone())?;
                connect(&out, &s.push_server)?;
                Ok((out, Some(peer)))
            }
            ZmqLayout::Pair => {
                let out = socket(&self.ctx, zmq::PUSH, s.send_hwm, s.receive_hwm, true)?;
                bind(&out, &s.bind_address(&s.pushes[0])?, &taken)?;
                Ok((out, None))
            }
        }
    }

    /// Layout 2: a PULL of this connector's own, registered with the push
    /// server, which connects to it.
    async fn pushes_from_the_push_server(
        &self,
        connector: &ConnectorId,
    ) -> Result<Subscription<BusPush>, BusError> {
        let s = &self.settings;
        let pull = socket(&self.ctx, zmq::PULL, s.send_hwm, s.receive_hwm, false)?;
        let peer = watch(&self.ctx, &pull, s.listen.clone(), self.stop.clone())?;
        bind(
            &pull,
            &s.listen,
            "another process holds this connector's push address",
        )?;
        let address = match pull.get_last_endpoint() {
            Ok(Ok(address)) => address,
            _ => s.listen.clone(),
        };
        let dealer = socket(&self.ctx, zmq::DEALER, 4, s.receive_hwm, true)?;
        connect(&dealer, &s.registry)?;
        let guard = registration::register(
            wrap(dealer)?,
            connector.to_string(),
            address.clone(),
            SUBSCRIBE_WAIT,
        )
        .await?;
        // Registered: the push server is connecting to us.
        if !peer.wait_connected(SUBSCRIBE_WAIT).await {
            info!(%connector, "the push server is not up yet; pushes arrive once it is");
        }
        info!(%connector, %address, "taking pushes from the push server");
        let what = format!("pushes for connector {connector}");
        let source = ZmqSource::new(what, Incoming::Pull(wrap(pull)?), decode_push).holding(guard);
        Ok(Subscription::zmq(source))
    }
}

#[async_trait]
impl Bus for ZmqBus {
    fn shards(&self) -> u16 {
        self.settings.shards()
    }

    async fn send(&self, to: Address, msg: Message, done: Done) {
        if let Err(e) = self.closed.sendable(&to, &msg, self.settings.shards()) {
            return done(Err(e));
        }
        self.first_connections(&to).await;
        self.batcher.send(to, msg.encode(), done).await;
    }

    async fn subscribe_pushes(
        &self,
        connector: &ConnectorId,
    ) -> Result<Subscription<BusPush>, BusError> {
        self.closed.ensure()?;
        let s = &self.settings;
        let what = format!("pushes for connector {connector}");
        match s.layout {
            ZmqLayout::PubSub => {
                let sub = socket(&self.ctx, zmq::SUB, s.send_hwm, s.receive_hwm, false)?;
                for topic in [WELCOME.as_bytes(), &topic(connector)] {
                    sub.set_subscribe(topic)
                        .map_err(|e| failed("subscribing", e))?;
                }
                for address in &s.pushes {
                    connect(&sub, address)?;
                }
                let sub: tmq::subscribe::SubscribeWithoutTopic = wrap(sub)?;
                let sub = sub
                    .subscribe(BROADCAST)
                    .map_err(|e| failed("subscribing", e))?;
                let mut source = ZmqSource::new(what, Incoming::Sub(sub), decode_push);
                let missing = source
                    .welcomed_by((0..s.shards()).collect(), SUBSCRIBE_WAIT)
                    .await;
                if !missing.is_empty() {
                    info!(%connector, shards = ?missing, "these shards' games are not up yet; their pushes arrive once they are");
                }
                Ok(Subscription::zmq(source))
            }
            ZmqLayout::PushServer => self.pushes_from_the_push_server(connector).await,
            ZmqLayout::Pair => {
                if self.pair_consumer.swap(true, Ordering::AcqRel) {
                    return Err(BusError::AlreadyConsumed(format!(
                        "the pair layout serves one connector, and this process has it: \
                         {connector} needs the pubsub layout (bus.zmq.layout = \"pubsub\"), as \
                         does the HTTP call gateway"
                    )));
                }
                let pull = socket(&self.ctx, zmq::PULL, s.send_hwm, s.receive_hwm, false)?;
                let peer = watch(&self.ctx, &pull, s.pushes[0].clone(), self.stop.clone())?;
                connect(&pull, &s.pushes[0])?;
                if !peer.wait_connected(SUBSCRIBE_WAIT).await {
                    info!(%connector, "the game is not up yet; its pushes arrive once it is");
                }
                let source = ZmqSource::new(what, Incoming::Pull(wrap(pull)?), decode_push);
                Ok(Subscription::zmq(source))
            }
        }
    }

    async fn subscribe_events(&self) -> Result<Subscription<BusEvent>, BusError> {
        self.closed.ensure()?;
        let s = &self.settings;
        let shard = s.shard;
        if self.links.out.get().is_some() {
            return Err(BusError::AlreadyConsumed(format!(
                "this process already consumes shard {shard}"
            )));
        }
        let pull = socket(&self.ctx, zmq::PULL, s.send_hwm, s.receive_hwm, false)?;
        let address = s.bind_address(&s.requests[usize::from(shard)])?;
        bind(
            &pull,
            &address,
            &format!(
                "shard {shard} already has a game process consuming its requests: stop that one \
                 first, or start this one with another game.shard"
            ),
        )?;
        let (out, push_server) = self.bind_out(shard)?;
        if self.links.out.set(Mutex::new(out)).is_err() {
            return Err(BusError::AlreadyConsumed(format!(
                "this process already consumes shard {shard}"
            )));
        }
        // This process's own link to the shard (its forwards, and what
        // the console calls the bus's state) tried before the bind: it is
        // up within a reconnection pause.
        self.links.shards[usize::from(shard)]
            .peer
            .wait_connected(SEND_WAIT)
            .await;
        if let Some(peer) = push_server
            && !peer.wait_connected(SEND_WAIT).await
        {
            info!(address = %s.push_server, "the push server is not up yet; pushes are dropped until it is");
        }
        info!(shard, requests = %address, "consuming shard {shard}'s requests over ZeroMQ");
        let what = format!("shard {shard}'s requests");
        Ok(Subscription::zmq(ZmqSource::new(
            what,
            Incoming::Pull(wrap(pull)?),
            decode_event,
        )))
    }

    fn state(&self) -> BusState {
        BusState {
            up: self.links.shards.iter().all(|l| l.peer.connected()),
            ..BusState::default()
        }
    }

    async fn close(&self) {
        if !self.closed.close() {
            return;
        }
        let bound = CLOSE_TIMEOUT / 2;
        if !self.batcher.flush(bound).await {
            warn!(?bound, "ZeroMQ did not take the last writes in time");
        }
        self.stop.cancel();
        info!("ZeroMQ bus closed");
    }
}

/// How long a send refused while its game still reads as connected waits
/// for the monitor to say the game has gone, or for room, before it is
/// refused as full (the first refusal of a run only).
const PEER_SETTLE: Duration = Duration::from_millis(100);

/// Writes the batcher's bodies: waits only for [`PEER_SETTLE`] on a
/// refused send, so a full or missing peer is an answer at once.
struct ZmqSink {
    links: Arc<Links>,
}

fn taken() -> Confirm {
    Box::pin(std::future::ready(Ok(())))
}

#[async_trait]
impl Sink for ZmqSink {
    async fn write(&self, to: &Address, body: Vec<u8>, _parts: usize) -> Result<Confirm, BusError> {
        let refused = |e: zmq::Error, full: BusError, gone: BusError| match e {
            zmq::Error::EAGAIN => Err(full),
            zmq::Error::EHOSTUNREACH => Err(gone),
            e => Err(failed("sending", e)),
        };
        match to {
            Address::Shard(s) => {
                let link = self
                    .links
                    .shards
                    .get(usize::from(*s))
                    .ok_or_else(|| BusError::Mismatch(format!("no shard {s}")))?;
                let gone = || {
                    Err(BusError::Unavailable(format!(
                        "shard {s}'s game is not connected ({})",
                        link.address
                    )))
                };
                let mut sent = lock(&link.socket).send(&body[..], zmq::DONTWAIT);
                if matches!(sent, Err(zmq::Error::EAGAIN)) && !link.full.load(Ordering::Relaxed) {
                    // Full, or the game has just gone and the monitor has
                    // not said so yet: wait a moment for either to show
                    // (once: while it stays full, refusals are at once).
                    if !link.peer.still_connected(PEER_SETTLE).await {
                        return gone();
                    }
                    sent = lock(&link.socket).send(&body[..], zmq::DONTWAIT);
                }
                link.full
                    .store(matches!(sent, Err(zmq::Error::EAGAIN)), Ordering::Relaxed);
                match sent {
                    Ok(()) => Ok(taken()),
                    Err(e) if link.peer.connected() => refused(
                        e,
                        BusError::Rejected(format!("shard {s}'s queue is full (bus.zmq.send_hwm)")),
                        BusError::Unavailable(format!("shard {s} is not connected")),
                    ),
                    Err(_) => gone(),
                }
            }
            Address::Connector(_) | Address::EveryConnector => {
                let out = self.links.out.get().ok_or_else(|| {
                    BusError::Mismatch(
                        "on ZeroMQ only a game that consumes its shard sends pushes".into(),
                    )
                })?;
                let sent = match (self.links.layout, to) {
                    (ZmqLayout::PubSub, Address::Connector(id)) => {
                        lock(out).send_multipart([topic(id), body], zmq::DONTWAIT)
                    }
                    (ZmqLayout::PubSub, _) => {
                        lock(out).send_multipart([BROADCAST.to_vec(), body], zmq::DONTWAIT)
                    }
                    (ZmqLayout::PushServer, Address::Connector(id)) => lock(out)
                        .send_multipart([id.as_str().as_bytes().to_vec(), body], zmq::DONTWAIT),
                    (ZmqLayout::PushServer, _) => lock(out)
                        .send_multipart([push_server::EVERYONE.to_vec(), body], zmq::DONTWAIT),
                    (ZmqLayout::Pair, _) => lock(out).send(body, zmq::DONTWAIT),
                };
                match sent {
                    Ok(()) => Ok(taken()),
                    Err(e) => refused(
                        e,
                        BusError::Rejected(
                            "the connector (or the push server) is not connected, or its queue is \
                             full"
                                .into(),
                        ),
                        BusError::Unavailable("the connector is not connected".into()),
                    ),
                }
            }
            Address::EveryShard => Err(BusError::Mismatch(
                "the batcher copies a message for every shard".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_do_not_prefix_each_other() {
        let a = topic(&ConnectorId::parse("c1").unwrap());
        let b = topic(&ConnectorId::parse("c10").unwrap());
        assert!(!b.starts_with(&a));
        assert!(!a.starts_with(BROADCAST) && !a.starts_with(WELCOME.as_bytes()));
    }
}
