//! Registering services and starting a game process: a mailbox and a named
//! thread per service, the watchdog, the dispatcher and the outbox.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    thread::JoinHandle,
};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;
use warren_bus::{Bus, BusError};
use warren_proto::cmd;

use crate::{
    Context, Game, RuntimeSettings, Service,
    context::Directory,
    dispatcher::Routes,
    game::Running,
    mailbox::{Inbox, MailboxTx, mailbox},
    outbox::{self, AbortAt, Outgoing},
    sessions::Sessions,
    shard::{Serving, ShardRole},
    supervisor::RestartPolicy,
    thread::ServiceThread,
    watchdog::Watchdog,
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

/// What a service's thread is started with.
struct Parts {
    ctx: Context,
    inbox: Inbox,
    policy: RestartPolicy,
}

/// Starts one service's thread; erases the service's type.
type Launch = Box<dyn FnOnce(Parts) -> std::io::Result<JoinHandle<()>> + Send>;

struct Spec {
    name: &'static str,
    cmds: Vec<u32>,
    wants_sessions: bool,
    /// The cmds callable over HTTP (`Service::HTTP_CMDS`).
    http_cmds: &'static [u32],
    keeps_sessions: bool,
    /// Makes the mailbox, typed by the service's mail.
    mailbox: fn(&'static str, usize, usize) -> (MailboxTx, Inbox),
    launch: Launch,
}

/// Collects the services of a game process.
pub struct GameBuilder {
    settings: RuntimeSettings,
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
    pub fn new(settings: RuntimeSettings) -> Self {
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
        self,
        name: &'static str,
        cmds: impl IntoIterator<Item = u32>,
        make: impl FnMut() -> S + Send + 'static,
    ) -> Self {
        self.register(name, cmds, make, false)
    }

    /// Registers the sessions keeper: like [`service`](Self::service), and
    /// it alone receives the connectors' lifecycle events (its `lifecycle`
    /// callback), writes [`Sessions`] and tells the services that want them
    /// of players coming and going. Without one, lifecycle events are only
    /// acknowledged and no player is known to be online.
    pub fn sessions<S: Service>(
        self,
        name: &'static str,
        cmds: impl IntoIterator<Item = u32>,
        make: impl FnMut() -> S + Send + 'static,
    ) -> Self {
        self.register(name, cmds, make, true)
    }

    fn register<S: Service>(
        mut self,
        name: &'static str,
        cmds: impl IntoIterator<Item = u32>,
        mut make: impl FnMut() -> S + Send + 'static,
        keeps_sessions: bool,
    ) -> Self {
        let launch: Launch = Box::new(move |parts: Parts| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    let service = make();
                    ServiceThread {
                        service,
                        make,
                        ctx: parts.ctx,
                        inbox: parts.inbox,
                        policy: parts.policy,
                    }
                    .run()
                })
        });
        self.specs.push(Spec {
            name,
            cmds: cmds.into_iter().collect(),
            wants_sessions: S::WANTS_SESSIONS,
            http_cmds: S::HTTP_CMDS,
            keeps_sessions,
            mailbox: mailbox::<S::Mail>,
            launch,
        });
        self
    }

    /// Starts every service thread, then consumes requests from `bus`.
    pub async fn start(self, bus: Arc<dyn Bus>) -> Result<Game, GameError> {
        validate(&self.specs)?;
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
        let shared = Shared {
            settings: &settings,
            shards,
            outbox: &outbox_tx,
            sessions: &sessions,
        };
        let (threads, routes) = launch(self.specs, shared)?;
        let watched = threads.iter().map(Running::watched).collect();
        let watchdog = Watchdog::start(watched, settings.stuck_threshold).map_err(|source| {
            GameError::Thread {
                name: "watchdog",
                source,
            }
        })?;
        // A game whose shard another one serves is refused now, unless it
        // is a standby: that one waits for the shard in the background.
        let first = match bus.subscribe_events().await {
            Ok(events) => Some(events),
            Err(BusError::AlreadyConsumed(_)) if settings.standby => None,
            Err(e) => return Err(e.into()),
        };
        let stop = CancellationToken::new();
        let role = Arc::new(ShardRole::new(settings.shard));
        let serving = Serving {
            bus: bus.clone(),
            routes,
            outbox: outbox_tx,
            stop: stop.clone(),
            role: role.clone(),
        };
        let dispatcher = tokio::spawn(serving.run(first));
        let outbox = tokio::spawn(outbox::run(
            outbox_rx,
            bus.clone(),
            sessions.clone(),
            settings.confirm_window,
            AbortAt::new(settings.abort_at_reply),
        ));
        info!(
            services = ?threads.iter().map(|t| t.name).collect::<Vec<_>>(),
            standby = settings.standby,
            "game started"
        );
        Ok(Game {
            bus,
            role,
            services: threads,
            sessions,
            dispatcher,
            outbox,
            stop,
            watchdog,
        })
    }
}

/// What every service's context shares.
struct Shared<'a> {
    settings: &'a RuntimeSettings,
    shards: u16,
    outbox: &'a mpsc::Sender<Outgoing>,
    sessions: &'a Arc<Sessions>,
}

/// Makes every mailbox, then starts every service's thread; returns the
/// threads and the dispatcher's routes.
fn launch(specs: Vec<Spec>, shared: Shared<'_>) -> Result<(Vec<Running>, Routes), GameError> {
    let settings = shared.settings;
    let boxes: Vec<(Spec, MailboxTx, Inbox)> = specs
        .into_iter()
        .map(|spec| {
            let (tx, rx) = (spec.mailbox)(spec.name, settings.mailbox, settings.mailbox_warn);
            (spec, tx, rx)
        })
        .collect();
    let directory = Arc::new(Directory {
        by_name: boxes
            .iter()
            .map(|(s, tx, _)| (s.name, tx.clone()))
            .collect(),
        listeners: boxes
            .iter()
            .filter(|(s, ..)| s.wants_sessions)
            .map(|(_, tx, _)| tx.clone())
            .collect(),
    });
    let mut routes = Routes {
        by_cmd: HashMap::new(),
        http: HashSet::new(),
        sessions: boxes
            .iter()
            .find(|(s, ..)| s.keeps_sessions)
            .map(|(_, tx, _)| tx.clone()),
    };
    let policy = RestartPolicy::from(settings);
    let mut threads = Vec::new();
    for (spec, tx, inbox) in boxes {
        for &c in &spec.cmds {
            routes.by_cmd.insert(c, tx.clone());
        }
        routes.http.extend(spec.http_cmds);
        let ctx = Context::new(
            spec.name,
            shared.outbox.clone(),
            directory.clone(),
            shared.sessions.clone(),
            (settings.shard, shared.shards),
        );
        let name = spec.name;
        let thread = (spec.launch)(Parts { ctx, inbox, policy })
            .map_err(|source| GameError::Thread { name, source })?;
        threads.push(Running::new(name, tx, thread));
    }
    Ok((threads, routes))
}

fn validate(specs: &[Spec]) -> Result<(), GameError> {
    let mut names = HashSet::new();
    let mut owners: HashMap<u32, &str> = HashMap::new();
    if specs.iter().filter(|s| s.keeps_sessions).count() > 1 {
        return Err(GameError::Setup(
            "more than one sessions keeper is registered".to_owned(),
        ));
    }
    for spec in specs {
        if spec.name.is_empty() || !names.insert(spec.name) {
            return Err(GameError::Setup(format!(
                "service name {:?} is empty or used twice",
                spec.name
            )));
        }
        if let Some(c) = spec.http_cmds.iter().find(|c| !spec.cmds.contains(c)) {
            return Err(GameError::Setup(format!(
                "service {} declares cmd {c} callable over HTTP, but is not registered for it",
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
