//! Starting and stopping a game process: one named OS thread per service,
//! the dispatcher and the outbox.

use std::{
    collections::{HashMap, HashSet},
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
        mpsc::{Receiver, RecvTimeoutError},
    },
    thread::JoinHandle,
    time::Instant,
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use warren_bus::{Bus, BusError};
use warren_proto::cmd;

use crate::{
    Context, GameSettings, Request, Service, ServiceStats,
    dispatcher::{self, Routes},
    mailbox::{MailboxTx, mailbox},
    outbox,
    service::Mail,
    services::{self, session::Session},
    sessions::Sessions,
    stats::Counters,
};

#[derive(Debug, thiserror::Error)]
pub enum GameError {
    #[error("invalid service set-up: {0}")]
    Setup(String),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("could not start the thread of service {name}: {source}")]
    Thread {
        name: &'static str,
        source: std::io::Error,
    },
}

struct Spec {
    name: &'static str,
    cmds: Vec<u32>,
    service: Box<dyn Service>,
}

/// Collects the services of a game process.
pub struct GameBuilder {
    settings: GameSettings,
    specs: Vec<Spec>,
}

impl std::fmt::Debug for GameBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GameBuilder")
            .field("settings", &self.settings)
            .field(
                "services",
                &self.specs.iter().map(|s| s.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl GameBuilder {
    pub fn new(settings: GameSettings) -> Self {
        GameBuilder {
            settings,
            specs: Vec::new(),
        }
    }

    /// Registers `service` under `name` as the owner of `cmds` (each >= 1000,
    /// each owned by one service). The name becomes its thread's name; Linux
    /// shows the first 15 bytes.
    pub fn service(
        mut self,
        name: &'static str,
        cmds: impl IntoIterator<Item = u32>,
        service: impl Service,
    ) -> Self {
        self.specs.push(Spec {
            name,
            cmds: cmds.into_iter().collect(),
            service: Box::new(service),
        });
        self
    }

    /// The services every Warren game runs: echo, chat and wallet, plus
    /// `faults` when `fault_injection` is on. Call inside a tokio runtime
    /// (the wallet's gold client needs one).
    pub fn with_builtin_services(self) -> Result<Self, GameError> {
        let s = &self.settings;
        let wallet = services::Wallet::new(
            &s.gold_url,
            s.daily_reward,
            s.shop_items.clone(),
            std::time::Duration::from_millis(s.gold_timeout_ms),
        )
        .map_err(GameError::Setup)?;
        let max_text = s.chat_max_text;
        let fault_injection = s.fault_injection;
        let b = self
            .service("echo", [cmd::ECHO], services::Echo)
            .service(
                "chat",
                [cmd::CHAT_JOIN, cmd::CHAT_SEND, cmd::CHAT_LEAVE],
                services::Chat::new(max_text),
            )
            .service("announce", [], services::Announce::default())
            .service(
                "wallet",
                [
                    services::wallet::BALANCE,
                    services::wallet::DAILY,
                    services::wallet::BUY,
                    services::wallet::ITEMS,
                ],
                wallet,
            );
        Ok(if fault_injection {
            b.service("faults", services::Faults::CMDS, services::Faults)
        } else {
            b
        })
    }

    /// Starts every service thread, then consumes requests from `bus`.
    pub async fn start(self, bus: Arc<dyn Bus>) -> Result<Game, GameError> {
        let mut specs = self.specs;
        // The session service is always there; it is built below, once the
        // mailboxes of the services it informs exist.
        specs.push(Spec {
            name: SESSION,
            cmds: vec![cmd::PRESENCE],
            service: Box::new(Pending),
        });
        validate(&specs)?;
        let settings = self.settings;
        let shards = bus.shards();
        if settings.shard >= shards {
            return Err(GameError::Setup(format!(
                "this is shard {} but the bus has {shards} (shards count from 0)",
                settings.shard
            )));
        }
        let (outbox_tx, outbox_rx) = mpsc::channel(settings.outbox.max(1));
        let sessions = Arc::new(Sessions::default());

        let mut boxes = Vec::new();
        for spec in specs {
            let (tx, rx, counters) = mailbox(spec.name, settings.mailbox, settings.mailbox_warn);
            boxes.push((spec, tx, rx, counters));
        }
        let listeners: Vec<MailboxTx> = boxes
            .iter()
            .filter(|(spec, ..)| spec.service.wants_sessions())
            .map(|(_, tx, ..)| tx.clone())
            .collect();
        let expiry = std::time::Duration::from_millis(settings.connector_expiry_ms.max(1));
        for (spec, ..) in &mut boxes {
            if spec.name == SESSION {
                spec.service = Box::new(Session::new(sessions.clone(), listeners.clone(), expiry));
            }
        }
        let directory: Arc<HashMap<&'static str, MailboxTx>> = Arc::new(
            boxes
                .iter()
                .map(|(spec, tx, _, _)| (spec.name, tx.clone()))
                .collect(),
        );
        let mut routes = Routes {
            by_cmd: HashMap::new(),
            session: directory[SESSION].clone(),
        };
        let mut threads = Vec::new();
        for (spec, tx, rx, counters) in boxes {
            for &c in &spec.cmds {
                routes.by_cmd.insert(c, tx.clone());
            }
            let ctx = Context::new(
                spec.name,
                outbox_tx.clone(),
                directory.clone(),
                sessions.clone(),
                (settings.shard, shards),
            );
            let (warn_at, warn_base) = tx.warn_state();
            let thread_counters = counters.clone();
            let name = spec.name;
            let service = spec.service;
            let handle = std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || service_main(service, ctx, rx, thread_counters, warn_at, warn_base))
                .map_err(|source| GameError::Thread { name, source })?;
            threads.push(Running {
                name,
                mailbox: tx,
                counters,
                thread: Some(handle),
            });
        }

        let events = bus.subscribe_events().await?;
        let stop = CancellationToken::new();
        let dispatcher = tokio::spawn(dispatcher::run(events, routes, outbox_tx, stop.clone()));
        let outbox = tokio::spawn(outbox::run(
            outbox_rx,
            bus,
            sessions.clone(),
            settings.confirm_window,
        ));
        info!(
            services = ?threads.iter().map(|t| t.name).collect::<Vec<_>>(),
            "game serving"
        );
        Ok(Game {
            services: threads,
            sessions,
            dispatcher: Some(dispatcher),
            outbox: Some(outbox),
            stop,
        })
    }
}

/// Mails services of a running game from outside it; cheap to clone.
#[derive(Clone, Debug)]
pub struct GameHandle {
    mailboxes: Arc<HashMap<&'static str, MailboxTx>>,
}

impl GameHandle {
    /// Sends `msg` to a service's mailbox, as another service would; it
    /// arrives in its `mail` callback. Never blocks: a full mailbox is an
    /// error.
    pub fn send<M: std::any::Any + Send>(&self, to: &str, msg: M) -> Result<(), crate::SendError> {
        self.mailboxes
            .get(to)
            .ok_or_else(|| crate::SendError::NoSuchService(to.to_owned()))?
            .send_mail("admin", Box::new(msg))
    }
}

/// The name of the built-in session service.
const SESSION: &str = "session";

/// Stands in for the session service until it can be built.
struct Pending;

impl Service for Pending {
    fn handle(&mut self, _ctx: &mut Context, _req: Request) {}
}

fn validate(specs: &[Spec]) -> Result<(), GameError> {
    let mut names = HashSet::new();
    let mut owners: HashMap<u32, &str> = HashMap::new();
    for spec in specs {
        if spec.name.is_empty() || !names.insert(spec.name) {
            return Err(GameError::Setup(format!(
                "service name {:?} is empty or used twice",
                spec.name
            )));
        }
        for &c in &spec.cmds {
            if c < cmd::FIRST_SERVICE_CMD {
                return Err(GameError::Setup(format!(
                    "service {} claims cmd {c}, but cmds below {} belong to the connector",
                    spec.name,
                    cmd::FIRST_SERVICE_CMD
                )));
            }
            if let Some(other) = owners.insert(c, spec.name) {
                return Err(GameError::Setup(format!(
                    "cmd {c} is claimed by both {other} and {}",
                    spec.name
                )));
            }
        }
    }
    Ok(())
}

struct Running {
    name: &'static str,
    mailbox: MailboxTx,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

/// A running game process.
pub struct Game {
    services: Vec<Running>,
    sessions: Arc<Sessions>,
    dispatcher: Option<tokio::task::JoinHandle<()>>,
    outbox: Option<tokio::task::JoinHandle<()>>,
    stop: CancellationToken,
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
        self.services
            .iter()
            .map(|s| s.counters.snapshot(s.name))
            .collect()
    }

    /// A handle operators' tools (the admin endpoint) use to mail services.
    pub fn handle(&self) -> GameHandle {
        GameHandle {
            mailboxes: Arc::new(
                self.services
                    .iter()
                    .map(|s| (s.name, s.mailbox.clone()))
                    .collect(),
            ),
        }
    }

    /// Players this process knows to be online.
    pub fn online(&self) -> usize {
        self.sessions.online()
    }

    /// Stops reading requests, lets every service finish its mailbox and its
    /// `stop`, then publishes what they sent and returns.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(d) = self.dispatcher.take() {
            let _ = d.await;
        }
        let services = std::mem::take(&mut self.services);
        let stats: Vec<ServiceStats> = services
            .iter()
            .map(|s| s.counters.snapshot(s.name))
            .collect();
        let joined = tokio::task::spawn_blocking(move || {
            for s in &services {
                s.mailbox.send_blocking(Mail::Stop);
            }
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
        });
        let _ = joined.await;
        if let Some(o) = self.outbox.take() {
            let _ = o.await;
        }
        info!(?stats, "game stopped");
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// Runs `f`, catching a panic; returns whether it completed.
fn guarded(
    counters: &Counters,
    service: &'static str,
    what: std::fmt::Arguments<'_>,
    f: impl FnOnce(),
) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(payload) => {
            counters.panics.fetch_add(1, Relaxed);
            error!(service, what = %what, panic = %panic_message(payload.as_ref()), "handler panicked; the service goes on");
            false
        }
    }
}

/// The body of a service's thread.
fn service_main(
    mut service: Box<dyn Service>,
    mut ctx: Context,
    rx: Receiver<Mail>,
    counters: Arc<Counters>,
    warn_at: Arc<AtomicUsize>,
    warn_base: usize,
) {
    let name = ctx.name();
    counters.record_thread();
    guarded(&counters, name, format_args!("init"), || {
        service.init(&mut ctx)
    });
    loop {
        while let Some(timer) = ctx.timers.pop_due(Instant::now()) {
            counters.messages.fetch_add(1, Relaxed);
            guarded(&counters, name, format_args!("timer"), || {
                service.timer(&mut ctx, timer)
            });
        }
        let mail = match ctx.timers.next_deadline() {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(mail) => mail,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(mail) => mail,
                Err(_) => break,
            },
        };
        MailboxTx::taken(&counters, &warn_at, warn_base);
        match mail {
            Mail::Stop => break,
            Mail::Request(req) => {
                let (origin, seq, cmd, uid) = (req.origin.clone(), req.seq, req.cmd, req.uid);
                let _span =
                    tracing::debug_span!("request", service = name, cmd, %uid, seq).entered();
                let what = format_args!("request cmd {cmd} from uid {uid}");
                if !guarded(&counters, name, what, || service.handle(&mut ctx, req)) {
                    ctx.error_to(&origin, seq, cmd::code::INTERNAL, "internal error");
                }
            }
            Mail::Session(event) => {
                guarded(&counters, name, format_args!("session event"), || {
                    service.session(&mut ctx, &event)
                });
            }
            Mail::Peer { from, msg } => {
                guarded(&counters, name, format_args!("mail"), || {
                    service.mail(&mut ctx, from, msg)
                });
            }
        }
    }
    guarded(&counters, name, format_args!("stop"), || {
        service.stop(&mut ctx)
    });
    if counters.panics.load(Relaxed) > 0 {
        warn!(
            service = name,
            panics = counters.panics.load(Relaxed),
            "service stopped after caught panics"
        );
    }
}
