//! Starting and stopping a game process: one named OS thread per service,
//! the dispatcher and the outbox.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
        mpsc::{Receiver, RecvTimeoutError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use warren_bus::{Bus, BusError};
use warren_config::{ClientSettings, ConfigClient, Live};
use warren_proto::cmd;

use crate::{
    Context, GameSettings, Request, Service, ServiceStats,
    dispatcher::{self, Routes},
    mailbox::{MailboxTx, mailbox},
    outbox::{self, AbortAt, Settle},
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

/// Builds a fresh instance of a service: at start, and after a restart.
type Make = Box<dyn FnMut() -> Box<dyn Service> + Send>;

struct Spec {
    name: &'static str,
    cmds: Vec<u32>,
    make: Make,
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

/// The configuration the built-in services read: from config-svc when
/// `config_url` is set (watched, so a publish reaches them without a
/// restart), else fixed from the settings. The settings' values are also
/// the defaults used until config-svc has been reached once.
fn live_config(
    s: &GameSettings,
) -> (
    Live<services::chat::ChatConfig>,
    Live<services::wallet::EconomyConfig>,
) {
    let chat = services::chat::ChatConfig {
        max_message_len: s.chat_max_text,
    };
    let economy = services::wallet::EconomyConfig {
        daily_reward: s.daily_reward,
    };
    if s.config_url.is_empty() {
        return (Live::fixed(chat), Live::fixed(economy));
    }
    let client = ConfigClient::start(ClientSettings {
        url: s.config_url.clone(),
        cache_dir: s.config_cache.clone(),
        names: vec!["chat".into(), "economy".into()],
    });
    (client.typed("chat", chat), client.typed("economy", economy))
}

impl GameBuilder {
    pub fn new(settings: GameSettings) -> Self {
        GameBuilder {
            settings,
            specs: Vec::new(),
        }
    }

    /// Registers a service under `name` as the owner of `cmds` (each >=
    /// 1000, each owned by one service). `make` builds it with fresh state:
    /// once at start, and again whenever it is restarted after too many
    /// panics. The name becomes its thread's name; Linux shows the first 15
    /// bytes.
    pub fn service<S: Service>(
        mut self,
        name: &'static str,
        cmds: impl IntoIterator<Item = u32>,
        mut make: impl FnMut() -> S + Send + 'static,
    ) -> Self {
        self.specs.push(Spec {
            name,
            cmds: cmds.into_iter().collect(),
            make: Box::new(move || Box::new(make()) as Box<dyn Service>),
        });
        self
    }

    /// The services every Warren game runs: echo, chat and wallet, plus
    /// `faults` when `fault_injection` is on. Call inside a tokio runtime
    /// (the wallet's gold client needs one).
    pub fn with_builtin_services(self) -> Result<Self, GameError> {
        let s = &self.settings;
        let (chat, economy) = live_config(s);
        let wallet = services::Wallet::new(
            &s.gold_url,
            economy,
            s.shop_items.clone(),
            std::time::Duration::from_millis(s.gold_timeout_ms),
        )
        .map_err(GameError::Setup)?;
        let fault_injection = s.fault_injection;
        let b = self
            .service("echo", [cmd::ECHO], || services::Echo)
            .service(
                "chat",
                [cmd::CHAT_JOIN, cmd::CHAT_SEND, cmd::CHAT_LEAVE],
                move || services::Chat::new(chat.clone()),
            )
            .service("announce", [], services::Announce::default)
            .service(
                "wallet",
                [
                    services::wallet::BALANCE,
                    services::wallet::DAILY,
                    services::wallet::BUY,
                    services::wallet::ITEMS,
                ],
                move || wallet.clone(),
            );
        Ok(if fault_injection {
            b.service("faults", services::Faults::CMDS, || services::Faults)
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
            make: Box::new(|| Box::new(Pending)),
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
        for mut spec in specs {
            let (tx, rx, counters) = mailbox(spec.name, settings.mailbox, settings.mailbox_warn);
            let first = (spec.make)();
            boxes.push((spec, first, tx, rx, counters));
        }
        let listeners: Vec<MailboxTx> = boxes
            .iter()
            .filter(|(_, first, ..)| first.wants_sessions())
            .map(|(_, _, tx, ..)| tx.clone())
            .collect();
        let expiry = std::time::Duration::from_millis(settings.connector_expiry_ms.max(1));
        for (spec, first, ..) in &mut boxes {
            if spec.name == SESSION {
                let (table, listeners) = (sessions.clone(), listeners.clone());
                spec.make = Box::new(move || {
                    Box::new(Session::new(table.clone(), listeners.clone(), expiry))
                });
                *first = (spec.make)();
            }
        }
        let directory: Arc<HashMap<&'static str, MailboxTx>> = Arc::new(
            boxes
                .iter()
                .map(|(spec, _, tx, _, _)| (spec.name, tx.clone()))
                .collect(),
        );
        let mut routes = Routes {
            by_cmd: HashMap::new(),
            session: directory[SESSION].clone(),
        };
        let mut threads = Vec::new();
        let policy = RestartPolicy::from(&settings);
        for (spec, first, tx, rx, counters) in boxes {
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
            let make = spec.make;
            let handle = std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    let mailbox = Inbox {
                        rx,
                        counters: thread_counters,
                        warn_at,
                        warn_base,
                    };
                    service_main(first, make, ctx, mailbox, policy)
                })
                .map_err(|source| GameError::Thread { name, source })?;
            threads.push(Running {
                name,
                mailbox: tx,
                counters,
                thread: Some(handle),
            });
        }

        let watchdog_stop = Arc::new(AtomicBool::new(false));
        let watched: Vec<(&'static str, Arc<Counters>)> = threads
            .iter()
            .map(|t| (t.name, t.counters.clone()))
            .collect();
        let threshold = Duration::from_millis(settings.stuck_threshold_ms.max(1));
        let stop_flag = watchdog_stop.clone();
        let watchdog = std::thread::Builder::new()
            .name("watchdog".to_owned())
            .spawn(move || watchdog(watched, threshold, stop_flag))
            .map_err(|source| GameError::Thread {
                name: "watchdog",
                source,
            })?;
        let events = bus.subscribe_events().await?;
        let stop = CancellationToken::new();
        let dispatcher = tokio::spawn(dispatcher::run(events, routes, outbox_tx, stop.clone()));
        let outbox = tokio::spawn(outbox::run(
            outbox_rx,
            bus.clone(),
            sessions.clone(),
            settings.confirm_window,
            AbortAt::new(if settings.fault_injection {
                settings.abort_at_reply
            } else {
                0
            }),
        ));
        info!(
            services = ?threads.iter().map(|t| t.name).collect::<Vec<_>>(),
            "game serving"
        );
        Ok(Game {
            bus,
            services: threads,
            sessions,
            dispatcher: Some(dispatcher),
            outbox: Some(outbox),
            stop,
            watchdog: Some((watchdog_stop, watchdog)),
        })
    }
}

/// Mails services of a running game from outside it, and reads their
/// counters; cheap to clone.
#[derive(Clone, Debug)]
pub struct GameHandle {
    mailboxes: Arc<HashMap<&'static str, MailboxTx>>,
    counters: Arc<Vec<(&'static str, Arc<Counters>)>>,
    bus: Arc<dyn Bus>,
}

impl GameHandle {
    /// The bus as the debug console shows it.
    pub fn bus_state(&self) -> warren_bus::BusState {
        self.bus.state()
    }

    /// Every service's counters, in start order.
    pub fn stats(&self) -> Vec<ServiceStats> {
        self.counters
            .iter()
            .map(|(name, c)| c.snapshot(name))
            .collect()
    }

    /// Asks a service for its state summary ([`Service::summary`]),
    /// computed on its own thread. None if there is no such service, or it
    /// does not answer within 5 s (busy, or its mailbox is full).
    pub async fn summary(&self, service: &str) -> Option<serde_json::Value> {
        let mailbox = self.mailboxes.get(service)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        mailbox.try_send(Mail::Inspect(tx)).ok()?;
        tokio::time::timeout(std::time::Duration::from_secs(5), rx)
            .await
            .ok()?
            .ok()
    }

    /// Turns the logging of every message one service handles on or off
    /// (target `warren::trace`, level INFO). False if there is no such
    /// service.
    pub fn set_tracing(&self, service: &str, on: bool) -> bool {
        match self.counters.iter().find(|(name, _)| *name == service) {
            Some((_, c)) => {
                c.trace.store(on, Relaxed);
                info!(service, on, "per-service tracing switched");
                true
            }
            None => false,
        }
    }

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
    bus: Arc<dyn Bus>,
    services: Vec<Running>,
    sessions: Arc<Sessions>,
    dispatcher: Option<tokio::task::JoinHandle<()>>,
    outbox: Option<tokio::task::JoinHandle<()>>,
    stop: CancellationToken,
    watchdog: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
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
            bus: self.bus.clone(),
            mailboxes: Arc::new(
                self.services
                    .iter()
                    .map(|s| (s.name, s.mailbox.clone()))
                    .collect(),
            ),
            counters: Arc::new(
                self.services
                    .iter()
                    .map(|s| (s.name, s.counters.clone()))
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
        if let Some((stop, thread)) = self.watchdog.take() {
            stop.store(true, Relaxed);
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
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

/// Runs `f`, catching a panic; returns whether it completed. While it
/// runs, the service is marked busy with `cmd` for the watchdog.
fn guarded(
    counters: &Counters,
    service: &'static str,
    what: std::fmt::Arguments<'_>,
    cmd: u32,
    f: impl FnOnce(),
) -> bool {
    counters.begin(cmd);
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(f));
    counters.end(started.elapsed());
    match result {
        Ok(()) => true,
        Err(payload) => {
            counters.panics.fetch_add(1, Relaxed);
            error!(service, what = %what, panic = %panic_message(payload.as_ref()), "handler panicked; the service goes on");
            false
        }
    }
}

/// When a service that keeps panicking is restarted, and when restarts are a
/// storm that should stop the process (Erlang's intensity and period).
#[derive(Clone, Copy, Debug)]
struct RestartPolicy {
    intensity: usize,
    period: Duration,
    storm: usize,
    storm_period: Duration,
}

impl From<&GameSettings> for RestartPolicy {
    fn from(s: &GameSettings) -> Self {
        RestartPolicy {
            intensity: s.restart_intensity as usize,
            period: Duration::from_millis(s.restart_period_ms),
            storm: s.restart_storm as usize,
            storm_period: Duration::from_millis(s.restart_storm_period_ms),
        }
    }
}

/// The exit code of a process stopped by a restart storm.
pub const RESTART_STORM_EXIT: i32 = 70;

/// Remembers recent panics and restarts of one service.
#[derive(Debug)]
struct Restarts {
    policy: RestartPolicy,
    panics: VecDeque<Instant>,
    restarts: VecDeque<Instant>,
}

enum Verdict {
    GoOn,
    Restart,
    Storm,
}

impl Restarts {
    fn panicked(&mut self, now: Instant) -> Verdict {
        if self.policy.intensity == 0 {
            return Verdict::GoOn;
        }
        self.panics.push_back(now);
        while self
            .panics
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.policy.period)
        {
            self.panics.pop_front();
        }
        if self.panics.len() < self.policy.intensity {
            return Verdict::GoOn;
        }
        self.panics.clear();
        self.restarts.push_back(now);
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.policy.storm_period)
        {
            self.restarts.pop_front();
        }
        if self.policy.storm > 0 && self.restarts.len() > self.policy.storm {
            Verdict::Storm
        } else {
            Verdict::Restart
        }
    }
}

/// A service's mailbox, as its thread sees it.
struct Inbox {
    rx: Receiver<Mail>,
    counters: Arc<Counters>,
    warn_at: Arc<AtomicUsize>,
    warn_base: usize,
}

/// The body of a service's thread.
fn service_main(
    mut service: Box<dyn Service>,
    mut make: Make,
    mut ctx: Context,
    inbox: Inbox,
    policy: RestartPolicy,
) {
    let name = ctx.name();
    let counters = inbox.counters.clone();
    counters.record_thread();
    let mut restarts = Restarts {
        policy,
        panics: VecDeque::new(),
        restarts: VecDeque::new(),
    };
    guarded(&counters, name, format_args!("init"), 0, || {
        service.init(&mut ctx)
    });
    loop {
        let mut ok = true;
        while let Some(timer) = ctx.timers.pop_due(Instant::now()) {
            counters.messages.fetch_add(1, Relaxed);
            ok &= guarded(&counters, name, format_args!("timer"), 0, || {
                service.timer(&mut ctx, timer)
            });
        }
        if ok {
            let mail = match ctx.timers.next_deadline() {
                Some(at) => match inbox
                    .rx
                    .recv_timeout(at.saturating_duration_since(Instant::now()))
                {
                    Ok(mail) => Some(mail),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => inbox.rx.recv().ok(),
            };
            let Some(mail) = mail else { break };
            MailboxTx::taken(&counters, &inbox.warn_at, inbox.warn_base);
            ok = match mail {
                Mail::Stop => break,
                Mail::Request(mut req) => {
                    let ack = std::mem::take(&mut req.ack);
                    // Durable mode: acknowledged once what the handler
                    // sends is confirmed (see `outbox::Settle`).
                    ctx.settle = ack.is_manual().then(|| Settle::new(ack));
                    let (origin, seq, cmd, uid) = (req.origin.clone(), req.seq, req.cmd, req.uid);
                    let _span =
                        tracing::debug_span!("request", service = name, cmd, %uid, seq).entered();
                    let what = format_args!("request cmd {cmd} from uid {uid}");
                    let started = Instant::now();
                    let done =
                        guarded(&counters, name, what, cmd, || service.handle(&mut ctx, req));
                    if counters.trace.load(Relaxed) {
                        info!(target: "warren::trace", service = name, cmd, %uid, seq, ok = done, us = started.elapsed().as_micros() as u64, "request handled");
                    }
                    if !done {
                        ctx.error_to(&origin, seq, cmd::code::INTERNAL, "internal error");
                        // Durable mode: another attempt, up to the delivery
                        // limit, then the dead-letter queue.
                        if let Some(settle) = &ctx.settle {
                            settle.retry();
                        }
                    }
                    ctx.settle = None;
                    done
                }
                Mail::Inspect(answer) => {
                    let mut summary = serde_json::Value::Null;
                    let ok = guarded(&counters, name, format_args!("summary"), 0, || {
                        summary = service.summary();
                    });
                    let _ = answer.send(summary);
                    ok
                }
                Mail::Session(event) => {
                    if counters.trace.load(Relaxed) {
                        info!(target: "warren::trace", service = name, event = ?event, "session event");
                    }
                    guarded(&counters, name, format_args!("session event"), 0, || {
                        service.session(&mut ctx, &event)
                    })
                }
                Mail::Peer { from, msg } => {
                    if counters.trace.load(Relaxed) {
                        info!(target: "warren::trace", service = name, from, "mail");
                    }
                    guarded(&counters, name, format_args!("mail"), 0, || {
                        service.mail(&mut ctx, from, msg)
                    })
                }
            };
        }
        if ok {
            continue;
        }
        match restarts.panicked(Instant::now()) {
            Verdict::GoOn => {}
            Verdict::Restart => {
                counters.restarts.fetch_add(1, Relaxed);
                warn!(
                    service = name,
                    "too many panics: restarting the service with fresh state"
                );
                guarded(&counters, name, format_args!("stop"), 0, || {
                    service.stop(&mut ctx)
                });
                ctx.timers = Default::default();
                service = make();
                guarded(&counters, name, format_args!("init"), 0, || {
                    service.init(&mut ctx)
                });
            }
            Verdict::Storm => {
                error!(
                    service = name,
                    restarts = policy.storm + 1,
                    within = ?policy.storm_period,
                    exit_code = RESTART_STORM_EXIT,
                    "restart storm: stopping the process"
                );
                std::process::exit(RESTART_STORM_EXIT);
            }
        }
    }
    guarded(&counters, name, format_args!("stop"), 0, || {
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

/// Reports handlers that run longer than `threshold`, once each, with the
/// service's name and the cmd it is stuck in.
fn watchdog(
    services: Vec<(&'static str, Arc<Counters>)>,
    threshold: Duration,
    stop: Arc<AtomicBool>,
) {
    let tick = (threshold / 4).clamp(Duration::from_millis(10), Duration::from_millis(500));
    while !stop.load(Relaxed) {
        std::thread::sleep(tick);
        for (name, c) in &services {
            if let Some((busy_for, cmd)) = c.busy()
                && busy_for > threshold
                && !c.stuck_reported.swap(true, Relaxed)
            {
                c.stuck.fetch_add(1, Relaxed);
                warn!(service = name, cmd, busy_for = ?busy_for, "a handler is stuck");
            }
        }
    }
}
