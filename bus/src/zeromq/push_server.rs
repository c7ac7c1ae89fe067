//! Layout 2's push server (`warren push-server`): games send it pushes,
//! connectors register with it, and it forwards each push to the connector
//! it names, or to every registered one.
//!
//! - **Pushes in**: a PULL at `pushes`, which every game's PUSH connects
//!   to; a message is `[target, body]`, the target a connector id or `*`.
//! - **Registrations**: a ROUTER at `registry`. A connector's DEALER sends
//!   `["register", id, address]` every second; the server answers `["ok"]`,
//!   or `["taken", address]` while another address holds that id, and
//!   connects a PUSH to the address. A registration lapses when it is not
//!   renewed for [`LEASE`] (the connector is gone), or at once on
//!   `["leave", id]`. A DEALER/ROUTER pair never wedges on a lost reply the
//!   way lock-step REQ/REP does, and a restarted push server learns every
//!   connector again within a second.
//! - **Bounds**: each connector's PUSH holds `send_hwm` messages; a push
//!   for a connector that is full, not connected or not registered is
//!   dropped and counted (ZeroMQ delivers at most once). At most
//!   [`MAX_CONNECTORS`] registrations; more are refused.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::sockets::{bind, failed, socket, wrap};
use crate::BusError;

/// How long a registration lives without being renewed.
pub(super) const LEASE: Duration = Duration::from_secs(3);
/// How often a connector renews its registration.
pub(super) const RENEW: Duration = Duration::from_secs(1);
/// Most connectors one push server serves.
pub(super) const MAX_CONNECTORS: usize = 10_000;
/// The broadcast target.
pub(super) const EVERYONE: &[u8] = b"*";

/// Where the push server listens and how much each queue holds.
#[derive(Clone, Debug)]
pub struct PushServerSettings {
    /// Where games send pushes (its PULL).
    pub pushes: String,
    /// Where connectors register (its ROUTER).
    pub registry: String,
    /// Messages queued towards one connector before pushes for it drop.
    pub send_hwm: i32,
    /// Messages queued from the games.
    pub receive_hwm: i32,
}

/// A registered connector, as the console shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registered {
    pub id: String,
    pub address: String,
    /// When it registered, in Unix milliseconds.
    pub since_unix_ms: u64,
}

/// What the console shows of a push server.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PushServerStats {
    pub connectors: Vec<Registered>,
    /// Pushes (ZeroMQ messages, one batch each) handed to a connector's
    /// socket; a broadcast counts once per connector.
    pub forwarded: u64,
    /// Pushes dropped: for no registered connector, or one that is full or
    /// not connected.
    pub dropped: u64,
    /// Registrations refused (an id held by another address, or too many).
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    refused: AtomicU64,
    connectors: Mutex<Vec<Registered>>,
}

/// A running push server.
#[derive(Debug)]
pub struct PushServer {
    counters: Arc<Counters>,
    stop: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Registration {
    address: String,
    socket: zmq::Socket,
    since_unix_ms: u64,
    expires: Instant,
}

impl PushServer {
    /// Binds both sockets (an address in use is an error) and serves.
    pub async fn start(settings: PushServerSettings) -> Result<PushServer, BusError> {
        let ctx = zmq::Context::new();
        let pull = socket(
            &ctx,
            zmq::PULL,
            settings.send_hwm,
            settings.receive_hwm,
            false,
        )?;
        bind(&pull, &settings.pushes, "another push server holds it")?;
        let router = socket(
            &ctx,
            zmq::ROUTER,
            settings.send_hwm,
            settings.receive_hwm,
            false,
        )?;
        bind(&router, &settings.registry, "another push server holds it")?;
        let (pull, router): (tmq::pull::Pull, tmq::router::Router) = (wrap(pull)?, wrap(router)?);
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let serving = Serving {
            ctx,
            settings: settings.clone(),
            registered: HashMap::new(),
            counters: counters.clone(),
        };
        let task = tokio::spawn(serving.run(pull, router, stop.clone()));
        info!(pushes = %settings.pushes, registry = %settings.registry, "push server serving");
        Ok(PushServer {
            counters,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    pub fn stats(&self) -> PushServerStats {
        let c = &self.counters;
        PushServerStats {
            connectors: c
                .connectors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            forwarded: c.forwarded.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }

    /// Stops serving (what the sockets hold is dropped after a short
    /// linger).
    pub async fn stop(&self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

struct Serving {
    ctx: zmq::Context,
    settings: PushServerSettings,
    registered: HashMap<Vec<u8>, Registration>,
    counters: Arc<Counters>,
}

impl Serving {
    async fn run(
        mut self,
        mut pull: tmq::pull::Pull,
        mut router: tmq::router::Router,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(RENEW);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => self.expire(),
                msg = pull.next() => match msg {
                    Some(Ok(msg)) => self.forward(msg),
                    other => {
                        warn!(?other, "the push server's PULL ended");
                        break;
                    }
                },
                msg = router.next() => match msg {
                    Some(Ok(msg)) => {
                        if let Some(reply) = self.register(msg)
                            && let Err(e) = router.send(reply).await
                        {
                            warn!(error = %e, "could not answer a registration");
                        }
                    }
                    other => {
                        warn!(?other, "the push server's ROUTER ended");
                        break;
                    }
                },
            }
        }
        info!("push server stopped");
    }

    /// `[target, body]` → the target's socket, or every one.
    fn forward(&mut self, mut msg: tmq::Multipart) {
        let c = &self.counters;
        let (Some(target), Some(body), 2) = (msg.pop_front(), msg.pop_front(), msg.len() + 2)
        else {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let send = |r: &Registration| match r.socket.send(&*body, zmq::DONTWAIT) {
            Ok(()) => c.forwarded.fetch_add(1, Ordering::Relaxed),
            Err(_) => c.dropped.fetch_add(1, Ordering::Relaxed),
        };
        if &*target == EVERYONE {
            self.registered.values().for_each(|r| {
                send(r);
            });
        } else if let Some(r) = self.registered.get(&*target) {
            send(r);
        } else {
            c.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `[identity, "register", id, address]` or `[identity, "leave", id]`
    /// → the reply to send, if any.
    fn register(&mut self, msg: tmq::Multipart) -> Option<tmq::Multipart> {
        let frames: Vec<Vec<u8>> = msg.iter().map(|f| f.to_vec()).collect();
        let [identity, verb, id, rest @ ..] = frames.as_slice() else {
            return None;
        };
        let answer = |words: &[&[u8]]| {
            let mut reply = vec![identity.clone()];
            reply.extend(words.iter().map(|w| w.to_vec()));
            Some(tmq::Multipart::from(reply))
        };
        match (verb.as_slice(), rest) {
            (b"leave", []) => {
                if self.registered.remove(id).is_some() {
                    info!(id = %String::from_utf8_lossy(id), "connector left");
                    self.publish();
                }
                None
            }
            (b"register", [address]) => {
                let address = String::from_utf8_lossy(address).into_owned();
                match self.renew(id, &address) {
                    Ok(()) => answer(&[b"ok"]),
                    Err(holder) => {
                        self.counters.refused.fetch_add(1, Ordering::Relaxed);
                        answer(&[b"taken", holder.as_bytes()])
                    }
                }
            }
            _ => None,
        }
    }

    /// Renews `id` at `address`, or registers it; the holder's address if
    /// another one holds the id.
    fn renew(&mut self, id: &[u8], address: &str) -> Result<(), String> {
        let now = Instant::now();
        if let Some(r) = self.registered.get_mut(id) {
            if r.address == address {
                r.expires = now + LEASE;
                return Ok(());
            }
            if r.expires > now {
                return Err(r.address.clone());
            }
        }
        if self.registered.len() >= MAX_CONNECTORS && !self.registered.contains_key(id) {
            return Err(format!(
                "none: this push server serves {MAX_CONNECTORS} connectors"
            ));
        }
        let s = &self.settings;
        let push = socket(&self.ctx, zmq::PUSH, s.send_hwm, s.receive_hwm, true)
            .map_err(|e| e.to_string())?;
        push.connect(address)
            .map_err(|e| failed(&format!("connecting to {address}"), e).to_string())?;
        info!(id = %String::from_utf8_lossy(id), %address, "connector registered");
        self.registered.insert(
            id.to_vec(),
            Registration {
                address: address.to_owned(),
                socket: push,
                since_unix_ms: warren_proto::time::unix_ms(),
                expires: now + LEASE,
            },
        );
        self.publish();
        Ok(())
    }

    /// Forgets registrations that were not renewed.
    fn expire(&mut self) {
        let now = Instant::now();
        let before = self.registered.len();
        self.registered.retain(|id, r| {
            let live = r.expires > now;
            if !live {
                info!(id = %String::from_utf8_lossy(id), "connector's registration lapsed");
            }
            live
        });
        if self.registered.len() != before {
            self.publish();
        }
    }

    /// What the console shows.
    fn publish(&self) {
        let mut list: Vec<Registered> = self
            .registered
            .iter()
            .map(|(id, r)| Registered {
                id: String::from_utf8_lossy(id).into_owned(),
                address: r.address.clone(),
                since_unix_ms: r.since_unix_ms,
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        *self
            .counters
            .connectors
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = list;
    }
}
