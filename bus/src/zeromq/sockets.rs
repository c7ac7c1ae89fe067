//! Making ZeroMQ sockets with the bus's options, and watching whether a
//! connecting socket has its peer.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use tmq::FromZmqSocket;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::BusError;

/// How long a closed socket may still try to send what it holds: short,
/// so that stopping never hangs on a peer that is gone.
const LINGER: Duration = Duration::from_millis(200);
/// First and longest pause between attempts to reach a peer (ZeroMQ
/// reconnects by itself, doubling the pause up to the longest).
const RECONNECT: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(1);
/// ZMTP heartbeats: a peer that answers none for the time-out is taken as
/// gone, even when TCP has not noticed.
const HEARTBEAT: Duration = Duration::from_secs(1);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

pub(super) fn failed(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(format!("ZeroMQ: {what}: {e}"))
}

/// A socket of `kind` with the bus's options: bounded queues both ways,
/// a short linger, automatic reconnection, heartbeats, and (for
/// `immediate`) nothing queued towards a peer that is not connected.
pub(super) fn socket(
    ctx: &zmq::Context,
    kind: zmq::SocketType,
    send_hwm: i32,
    receive_hwm: i32,
    immediate: bool,
) -> Result<zmq::Socket, BusError> {
    let make = || -> Result<zmq::Socket, zmq::Error> {
        let s = ctx.socket(kind)?;
        s.set_sndhwm(send_hwm)?;
        s.set_rcvhwm(receive_hwm)?;
        s.set_linger(ms(LINGER))?;
        s.set_reconnect_ivl(ms(RECONNECT))?;
        s.set_reconnect_ivl_max(ms(RECONNECT_MAX))?;
        s.set_heartbeat_ivl(ms(HEARTBEAT))?;
        s.set_heartbeat_timeout(ms(HEARTBEAT_TIMEOUT))?;
        s.set_immediate(immediate)?;
        Ok(s)
    };
    make().map_err(|e| failed("making a socket", e))
}

/// Binds `socket` to `address`; an address in use means another process
/// holds it (for a shard's addresses: another game of that shard).
pub(super) fn bind(socket: &zmq::Socket, address: &str, taken: &str) -> Result<(), BusError> {
    match socket.bind(address) {
        Ok(()) => Ok(()),
        Err(zmq::Error::EADDRINUSE) => Err(BusError::AlreadyConsumed(format!(
            "{taken} ({address} is in use)"
        ))),
        Err(e) => Err(BusError::Mismatch(format!("cannot bind {address}: {e}"))),
    }
}

pub(super) fn connect(socket: &zmq::Socket, address: &str) -> Result<(), BusError> {
    socket
        .connect(address)
        .map_err(|e| BusError::Mismatch(format!("cannot connect to {address}: {e}")))
}

/// An asynchronous wrapper (tmq) of a configured socket.
pub(super) fn wrap<T: FromZmqSocket<T>>(socket: zmq::Socket) -> Result<T, BusError> {
    T::from_zmq_socket(socket).map_err(|e| failed("watching a socket", e))
}

/// Whether a connecting socket has its peer, as its monitor reports: up
/// from a completed handshake until a disconnect.
#[derive(Debug, Default)]
pub(super) struct Peer {
    connected: AtomicBool,
    /// Whether it was ever connected.
    ever: AtomicBool,
    changed: Notify,
}

impl Peer {
    pub(super) fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub(super) fn ever(&self) -> bool {
        self.ever.load(Ordering::Acquire)
    }

    /// Waits until connected, at most `bound`; whether it is.
    pub(super) async fn wait_connected(&self, bound: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let changed = self.changed.notified();
            if self.connected() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.connected();
            }
        }
    }

    /// Whether the peer is still connected after `bound`, or after its
    /// monitor reports a change, whichever comes first. A send refused
    /// the moment a peer dies is refused before the monitor has said so;
    /// this tells "gone" from "full" without guessing.
    pub(super) async fn still_connected(&self, bound: Duration) -> bool {
        let changed = self.changed.notified();
        if !self.connected() {
            return false;
        }
        let _ = tokio::time::timeout(bound, changed).await;
        self.connected()
    }

    fn set(&self, up: bool) {
        self.connected.store(up, Ordering::Release);
        if up {
            self.ever.store(true, Ordering::Release);
        }
        self.changed.notify_waiters();
    }
}

/// Names the monitors' in-process endpoints apart.
static MONITORS: AtomicU64 = AtomicU64::new(0);

/// Watches `socket`'s connection events until `stop`, keeping `peer` up
/// to date; `name` is for the log (the address).
pub(super) fn watch(
    ctx: &zmq::Context,
    socket: &zmq::Socket,
    name: String,
    stop: CancellationToken,
) -> Result<Arc<Peer>, BusError> {
    let endpoint = format!(
        "inproc://warren-monitor-{}",
        MONITORS.fetch_add(1, Ordering::Relaxed)
    );
    let events = zmq::SocketEvent::HANDSHAKE_SUCCEEDED as i32
        | zmq::SocketEvent::DISCONNECTED as i32
        | zmq::SocketEvent::MONITOR_STOPPED as i32;
    socket
        .monitor(&endpoint, events)
        .map_err(|e| failed("monitoring a socket", e))?;
    let pair = ctx
        .socket(zmq::PAIR)
        .and_then(|p| p.connect(&endpoint).map(|()| p))
        .map_err(|e| failed("monitoring a socket", e))?;
    let mut pair: tmq::pair::Pair = wrap(pair)?;
    let peer = Arc::new(Peer::default());
    let watched = peer.clone();
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                () = stop.cancelled() => break,
                msg = pair.next() => msg,
            };
            let Some(Ok(msg)) = msg else { break };
            let Some(head) = msg.iter().next().filter(|f| f.len() >= 2) else {
                continue;
            };
            let event = u16::from_ne_bytes([head[0], head[1]]);
            if event == zmq::SocketEvent::HANDSHAKE_SUCCEEDED as u16 {
                if !watched.connected() {
                    info!(peer = %name, "ZeroMQ peer connected");
                }
                watched.set(true);
            } else if event == zmq::SocketEvent::DISCONNECTED as u16 {
                if watched.connected() {
                    info!(peer = %name, "lost the ZeroMQ peer; ZeroMQ reconnects by itself");
                }
                watched.set(false);
            } else if event == zmq::SocketEvent::MONITOR_STOPPED as u16 {
                break;
            }
        }
        watched.set(false);
        debug!(peer = %name, "monitor stopped");
    });
    Ok(peer)
}
