//! Starting the stack as real processes (the `warren` binary cargo built
//! beside the test, waited for through its ready file), reaching its HTTP
//! endpoints, and running a scenario on both buses: what the end-to-end
//! tests, the broker-restart test and the benches share. The protocol
//! client is [`crate::client`], re-exported here.

use crate::{buses::delete_namespace, process::warren_binary};
pub use crate::{
    buses::{BusKind, amqp_url, redis_url},
    client::{
        Client, ErrorBody, Event, KickBody, Presence, PresenceRequest, Room, Said, Say, body,
        decode,
    },
    http::{http_get, http_post},
};

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use warren_bus::RedisBus;
use warren_login::{JwtSettings, TokenSigner};
use warren_proto::{Uid, cmd};

use crate::{process::Proc, unique};

/// How long any single expected event may take before the test fails.
pub const STEP: Duration = Duration::from_secs(15);

/// The stack under test: a connector and a game, on one bus.
#[derive(Debug)]
pub struct Stack {
    pub kind: BusKind,
    pub addr: SocketAddr,
    /// The HTTP login, when the stack runs one.
    pub login: Option<SocketAddr>,
    /// The game's admin endpoint (of shard 0).
    pub admin: SocketAddr,
    /// The HTTP call gateway (in the all-in-one process, or its own).
    pub http: SocketAddr,
    /// Every call gateway: on a networked bus one per connector, side by
    /// side (`http` is the first).
    pub gateways: Vec<SocketAddr>,
    /// Game shards on the bus.
    pub shards: u16,
    /// Each connector's admin endpoint.
    pub connector_admins: Vec<SocketAddr>,
    /// config-svc's gRPC and its admin page, when the stack runs it (the
    /// all-in-one process, and the full stack on RabbitMQ).
    pub config: Option<SocketAddr>,
    pub config_page: Option<SocketAddr>,
    /// Every connector: (address, websocket URL). `addr`/`url` are the first.
    pub connectors: Vec<(SocketAddr, String)>,
    pub url: String,
    dir: PathBuf,
    /// Every process's settings (to start another game like the first).
    env: Vec<(String, String)>,
    /// The durable mode, and its delivery limit (cleanup declares the
    /// topology the same way).
    durable: Option<u32>,
    /// The queues' bound, if not the default (cleanup again).
    max_queue_length: Option<i64>,
    signer: TokenSigner,
    procs: Vec<Proc>,
    namespace: Option<String>,
    /// The Redis the stack runs on: the shared one, or a test's private
    /// server (`WARREN_BUS__REDIS__URL` among the extra settings).
    redis: String,
}

impl Stack {
    pub async fn start(kind: BusKind) -> Stack {
        Self::start_with(kind, &[]).await
    }

    /// Starts the stack with extra `WARREN_*` settings.
    pub async fn start_with(kind: BusKind, extra: &[(&str, &str)]) -> Stack {
        Self::launch(kind, extra, false, 1).await
    }

    /// One game and `n` connectors as separate processes on a networked
    /// bus.
    pub async fn start_connectors(kind: BusKind, n: usize, extra: &[(&str, &str)]) -> Stack {
        assert_ne!(
            kind,
            BusKind::InProcess,
            "separate connectors need a networked bus"
        );
        Self::launch(kind, extra, false, n).await
    }

    /// The whole stack: also gold (SQLite) and login, as processes of
    /// their own on RabbitMQ.
    pub async fn start_full(kind: BusKind) -> Stack {
        Self::launch(kind, &[], true, 1).await
    }

    /// The full stack with extra `WARREN_*` settings.
    pub async fn start_full_with(kind: BusKind, extra: &[(&str, &str)]) -> Stack {
        Self::launch(kind, extra, true, 1).await
    }

    // Long: every process of every stack layout, started in dependency order.
    async fn launch(
        kind: BusKind,
        extra: &[(&str, &str)],
        full: bool,
        connectors_wanted: usize,
    ) -> Stack {
        let dir = std::env::temp_dir().join(unique("warren-test"));
        std::fs::create_dir_all(&dir).unwrap();
        let (private, _public) = warren_login::keys::write_pair(&dir).unwrap();
        let signer = TokenSigner::from_file(&private, &JwtSettings::default()).unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("WARREN_DATA_DIR".into(), dir.display().to_string()),
            ("WARREN_CONNECTOR__LISTEN".into(), "127.0.0.1:0".into()),
            ("WARREN_GOLD__LISTEN".into(), "127.0.0.1:0".into()),
            ("WARREN_LOGIN__LISTEN".into(), "127.0.0.1:0".into()),
            ("WARREN_HTTP__LISTEN".into(), "127.0.0.1:0".into()),
            ("WARREN_GAME__ADMIN_LISTEN".into(), "127.0.0.1:0".into()),
            (
                "WARREN_CONNECTOR__ADMIN_LISTEN".into(),
                "127.0.0.1:0".into(),
            ),
            // Load patterns here (pipelined floods, closed-loop benches) are
            // not players; the rate limit has its own test in connector/.
            (
                "WARREN_CONNECTOR__RATE_LIMIT_PER_SEC".into(),
                "10000000".into(),
            ),
            (
                "WARREN_CONNECTOR__RATE_LIMIT_BURST".into(),
                "10000000".into(),
            ),
            (
                "WARREN_CONNECTOR__BYTE_LIMIT_PER_SEC".into(),
                "2000000000".into(),
            ),
            (
                "WARREN_CONNECTOR__BYTE_LIMIT_BURST".into(),
                "2000000000".into(),
            ),
            ("WARREN_GAME__FAULT_INJECTION".into(), "true".into()),
            ("WARREN_CONFIG_SVC__LISTEN".into(), "127.0.0.1:0".into()),
            (
                "WARREN_CONFIG_SVC__ADMIN_LISTEN".into(),
                "127.0.0.1:0".into(),
            ),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let redis = extra
            .iter()
            .find(|(k, _)| *k == "WARREN_BUS__REDIS__URL")
            .map_or_else(redis_url, |(_, v)| v.to_string());
        let mut procs = Vec::new();
        let mut namespace = None;
        let shards: u16 = extra
            .iter()
            .find(|(k, _)| *k == "WARREN_BUS__SHARDS")
            .map_or(1, |(_, v)| v.parse().unwrap());
        let mut login = None;
        let (mut config, mut config_page) = (None, None);
        let admin;
        let mut gateways = Vec::new();
        let mut connector_admins = Vec::new();
        let mut connectors: Vec<(SocketAddr, String)> = Vec::new();
        match kind {
            BusKind::InProcess => {
                let mut all = Proc::spawn("warren", &dir, &[] as &[&str], &env);
                let ready = all.wait_ready();
                config = Some(ready.addr("config"));
                config_page = Some(ready.addr("config_page"));
                login = Some(ready.addr("login"));
                admin = ready.addr("game_admin");
                gateways.push(ready.addr("http"));
                connectors.push((ready.addr("connector"), ready.url("connector")));
                connector_admins.push(ready.addr("connector_admin"));
                procs.push(all);
            }
            BusKind::RabbitMq | BusKind::Redis | BusKind::Zmq | BusKind::ZmqPair => {
                let bus_args = kind.args(&redis);
                let with_bus = |args: &[&str]| -> Vec<String> {
                    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                    all.extend(bus_args.iter().cloned());
                    all
                };
                let ns = unique("warren-test");
                env.push(("WARREN_BUS__NAMESPACE".into(), ns.clone()));
                env.extend(kind.env(shards));
                namespace = kind.brokered().then_some(ns);
                if full {
                    let mut gold = Proc::spawn("gold", &dir, &["gold"], &env);
                    let gold_url = gold.wait_ready().url("gold");
                    env.push(("WARREN_GOLD__URL".into(), gold_url));
                    let mut login_proc = Proc::spawn("login", &dir, &["login"], &env);
                    login = Some(login_proc.wait_ready().addr("login"));
                    procs.push(gold);
                    procs.push(login_proc);
                    let mut config_proc = Proc::spawn("config-svc", &dir, &["config-svc"], &env);
                    let ready = config_proc.wait_ready();
                    let grpc = ready.addr("config");
                    config_page = Some(ready.addr("config_page"));
                    config = Some(grpc);
                    env.push(("WARREN_CONFIG_SVC__URL".into(), format!("http://{grpc}")));
                    procs.push(config_proc);
                } else {
                    // No config-svc in this stack: the game runs on its
                    // settings (and never reaches for a default port).
                    env.push(("WARREN_CONFIG_SVC__URL".into(), String::new()));
                }
                let mut game = Proc::spawn("game", &dir, &with_bus(&["game"]), &env);
                admin = game.wait_ready().addr("game_admin");
                procs.push(game);
                for shard in 1..shards {
                    let mut shard_env = env.clone();
                    shard_env.push(("WARREN_GAME__SHARD".into(), shard.to_string()));
                    let mut more = Proc::spawn("game", &dir, &with_bus(&["game"]), &shard_env);
                    more.wait_ready();
                    procs.push(more);
                }
                // The pair layout has room for one connector, no gateway.
                let gateways_wanted = if kind == BusKind::ZmqPair {
                    0
                } else {
                    connectors_wanted
                };
                for i in 0..gateways_wanted {
                    let id = format!("--id=h{i}");
                    let mut gateway = Proc::spawn("http", &dir, &with_bus(&["http", &id]), &env);
                    gateways.push(gateway.wait_ready().addr("http"));
                    procs.push(gateway);
                }
                for i in 0..connectors_wanted {
                    let id = format!("--id=c{i}");
                    let mut conn =
                        Proc::spawn("connector", &dir, &with_bus(&["connector", &id]), &env);
                    let ready = conn.wait_ready();
                    connectors.push((ready.addr("connector"), ready.url("connector")));
                    connector_admins.push(ready.addr("connector_admin"));
                    procs.push(conn);
                }
            }
        };
        let (addr, url) = connectors[0].clone();
        let durable = extra.contains(&("WARREN_BUS__DURABLE", "true")).then(|| {
            extra
                .iter()
                .find(|(k, _)| *k == "WARREN_BUS__DELIVERY_LIMIT")
                .map_or(5, |(_, v)| v.parse().unwrap())
        });
        let max_queue_length = extra
            .iter()
            .find(|(k, _)| *k == "WARREN_BUS__MAX_QUEUE_LENGTH")
            .map(|(_, v)| v.parse().unwrap());
        Stack {
            env,
            durable,
            max_queue_length,
            kind,
            addr,
            login,
            admin,
            http: gateways
                .first()
                .copied()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            gateways,
            shards,
            connector_admins,
            config,
            config_page,
            connectors,
            url,
            dir,
            signer,
            procs,
            namespace,
            redis,
        }
    }

    pub fn token(&self, uid: u64) -> String {
        self.signer.sign(Uid(uid)).unwrap().0
    }

    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr, &self.url, None).await
    }

    /// A client of connector `i`.
    pub async fn client_on(&self, i: usize) -> Client {
        let (addr, url) = &self.connectors[i];
        Client::connect(*addr, url, None).await
    }

    /// A client of connector `i`, logged in as `uid`.
    pub async fn player_on(&self, i: usize, uid: u64) -> Client {
        let mut c = self.client_on(i).await;
        let reply = c.login(&self.token(uid)).await;
        assert_eq!(reply.cmd, cmd::LOGIN, "login reply: {reply:?}");
        c
    }

    /// Kills connector `i` with SIGKILL: no goodbye, no Close events.
    pub fn kill_connector(&mut self, i: usize) {
        let offset = self.procs.len() - self.connectors.len();
        let p = &mut self.procs[offset + i];
        p.child.kill().unwrap();
        p.child.wait().unwrap();
    }

    /// A client whose socket receive buffer is tiny, so it stops accepting
    /// data soon after it stops reading.
    pub async fn small_buffer_client(&self) -> Client {
        Client::connect(self.addr, &self.url, Some(4096)).await
    }

    /// A client on a JSON socket (`?format=json`), logged in as `uid`.
    pub async fn json_player(&self, uid: u64) -> Client {
        let mut c = Client::connect_json(self.addr, &self.url).await;
        let reply = c.login(&self.token(uid)).await;
        assert_eq!(reply.cmd, cmd::LOGIN, "login reply: {reply:?}");
        c
    }

    /// A client logged in as `uid`.
    pub async fn player(&self, uid: u64) -> Client {
        let mut c = self.client().await;
        let reply = c.login(&self.token(uid)).await;
        assert_eq!(reply.cmd, cmd::LOGIN, "login reply: {reply:?}");
        c
    }

    /// Runs `warren announce ARGS` against this stack's game; returns its
    /// exit status and what it printed.
    pub fn announce(&self, args: &[&str]) -> (bool, String) {
        self.warren_admin("announce", args)
    }

    /// Runs `warren COMMAND ARGS` against this stack's game admin endpoint.
    pub fn warren_admin(&self, command: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new(warren_binary())
            .arg(command)
            .args(args)
            .arg(format!("--admin=http://{}", self.admin))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WARREN_DATA_DIR", &self.dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Runs one more `warren game` on this stack's namespace with `extra`
    /// settings until it exits (or 30 s); returns whether it exited
    /// successfully, and its stderr.
    pub fn run_game_with(&self, extra: &[(&str, &str)]) -> (bool, String) {
        let mut cmd = Command::new(warren_binary());
        cmd.arg("game")
            .args(self.kind.args(&self.redis))
            .env_clear()
            .envs(
                self.env
                    .iter()
                    .filter(|(k, _)| k.starts_with("WARREN_BUS__"))
                    .map(|(k, v)| (k, v)),
            )
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WARREN_DATA_DIR", &self.dir)
            .env("WARREN_GAME__ADMIN_LISTEN", "127.0.0.1:0")
            .env("WARREN_CONFIG_SVC__URL", "")
            .env(
                "WARREN_BUS__NAMESPACE",
                self.namespace.as_deref().unwrap_or("warren"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                return (status.success(), err);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return (true, "still running after 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (up to 30 s) for the game process (the first one) to exit on
    /// its own; returns its exit code.
    pub fn wait_game_exit(&mut self) -> Option<i32> {
        let p = &mut self.procs[0];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = p.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "{} did not exit", p.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `warren config-admin add-user NAME --password-stdin` on this
    /// stack's data directory.
    pub fn add_staff(&self, name: &str, password: &str) {
        use std::io::Write;
        let mut child = Command::new(warren_binary())
            .args(["config-admin", "add-user", name, "--password-stdin"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WARREN_DATA_DIR", &self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// Kills the (first) game process with SIGKILL: no goodbye, nothing
    /// acknowledged that was not already.
    pub fn kill_game(&mut self) {
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.name == "game")
            .expect("a separate game process");
        p.child.kill().unwrap();
        p.child.wait().unwrap();
    }

    /// Starts another game process with the stack's settings.
    pub fn start_game(&mut self) {
        self.start_game_with(&[]);
    }

    /// Starts another game process with the stack's settings and `extra`
    /// on top.
    pub fn start_game_with(&mut self, extra: &[(&str, &str)]) {
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut args = vec!["game".to_owned()];
        args.extend(self.kind.args(&self.redis));
        let mut game = Proc::spawn("game-again", &self.dir, &args, &env);
        game.wait_ready();
        self.procs.push(game);
    }

    /// Waits until the game process (the first one named `game`) ends by
    /// itself, and says how.
    pub fn wait_game_end(&mut self) -> std::process::ExitStatus {
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.name == "game")
            .expect("a separate game process");
        tokio::task::block_in_place(|| p.child.wait().unwrap())
    }

    /// How many messages the namespace's dead-letter queue (Redis: stream)
    /// holds (durable mode).
    pub async fn dead_letters(&self) -> u32 {
        let ns = self
            .namespace
            .as_deref()
            .expect("a stack on a networked bus");
        if self.kind == BusKind::Redis {
            return RedisBus::dead_letters(&self.redis, ns).await.unwrap() as u32;
        }
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                format!("{ns}.dead").as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = conn.close(200, "bye".into()).await;
        q.message_count()
    }

    /// What the game process (the all-in-one process in process) has
    /// logged so far.
    pub fn game_log(&self) -> String {
        let p = self
            .procs
            .iter()
            .find(|p| p.name == "game" || p.name == "warren")
            .expect("a game process");
        std::fs::read_to_string(&p.log).unwrap_or_default()
    }

    /// The game admin endpoint's bearer token.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// A game service's own summary of its state (the debug console's
    /// `GET /v1/services/{name}`).
    pub async fn service_state(&self, name: &str) -> serde_json::Value {
        let path = format!("/v1/services/{name}");
        let (status, body) = http_get(self.admin, &path, &self.admin_token()).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["state"].clone()
    }

    /// (name, pid) of each process of the stack.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.procs.iter().map(|p| (p.name, p.child.id())).collect()
    }

    /// SIGTERMs the process that runs the connector; returns its exit status.
    pub fn terminate_connector(&mut self) -> ExitStatus {
        self.procs.last_mut().unwrap().terminate()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
            if std::thread::panicking() {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                let tail: Vec<&str> = log
                    .lines()
                    .rev()
                    .filter(|l| !l.contains("request not forwarded"))
                    .take(60)
                    .collect();
                eprintln!("---- last lines of {} ----", p.name);
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        if let Some(ns) = self.namespace.take() {
            delete_namespace(
                self.kind,
                &ns,
                &self.redis,
                self.shards,
                self.durable,
                self.max_queue_length,
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits up to [`STEP`] for `check` to give a value (see
/// [`crate::eventually`]).
pub async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    crate::eventually(what, STEP, check).await
}
