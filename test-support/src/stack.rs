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
use warren_login::TokenSigner;
use warren_proto::{Uid, cmd};

use crate::process::Proc;

mod launch;

pub use launch::Order;

/// How long any single expected event may take before the test fails.
pub const STEP: Duration = Duration::from_secs(15);

/// The stack under test: a connector and a game, on one bus.
#[derive(Debug)]
pub struct Stack {
    pub kind: BusKind,
    pub addr: SocketAddr,
    /// The HTTP login, when the stack runs one.
    pub login: Option<SocketAddr>,
    /// gold's URL, where the stack runs one (`warren ban` reaches it).
    pub gold: Option<String>,
    /// gold's `/metrics` endpoint, where the stack runs gold.
    pub gold_admin: Option<SocketAddr>,
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
    /// ZeroMQ's push server's console (layout 2).
    pub push_server: Option<SocketAddr>,
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
    broker: String,
    /// The namespace's queues are quorum queues (cleanup declares them so).
    quorum: bool,
}

impl Stack {
    pub async fn start(kind: BusKind) -> Stack {
        Self::start_with(kind, &[]).await
    }

    /// Starts the stack with extra `WARREN_*` settings.
    pub async fn start_with(kind: BusKind, extra: &[(&str, &str)]) -> Stack {
        Self::launch(kind, extra, false, 1, Order::GameFirst).await
    }

    /// One game and `n` connectors as separate processes on a networked
    /// bus.
    pub async fn start_connectors(kind: BusKind, n: usize, extra: &[(&str, &str)]) -> Stack {
        assert_ne!(
            kind,
            BusKind::InProcess,
            "separate connectors need a networked bus"
        );
        Self::launch(kind, extra, false, n, Order::GameFirst).await
    }

    /// The whole stack: also gold (SQLite) and login, as processes of
    /// their own on RabbitMQ.
    pub async fn start_full(kind: BusKind) -> Stack {
        Self::launch(kind, &[], true, 1, Order::GameFirst).await
    }

    /// One game and `n` connectors on a networked bus, started in `order`
    /// (ZeroMQ's "start order does not matter").
    pub async fn start_in_order(
        kind: BusKind,
        n: usize,
        order: Order,
        extra: &[(&str, &str)],
    ) -> Stack {
        Self::launch(kind, extra, false, n, order).await
    }

    /// The full stack with `n` connectors (and as many call gateways).
    pub async fn start_full_connectors(kind: BusKind, n: usize) -> Stack {
        Self::launch(kind, &[], true, n, Order::GameFirst).await
    }

    /// The full stack with extra `WARREN_*` settings.
    pub async fn start_full_with(kind: BusKind, extra: &[(&str, &str)]) -> Stack {
        Self::launch(kind, extra, true, 1, Order::GameFirst).await
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

    /// A client logged in as `uid` in a resumable session
    /// (PROTOCOL.md §3), with the login's answer.
    pub async fn resumable_player(&self, uid: u64) -> (Client, crate::client::LoginReply) {
        let mut c = self.client().await;
        let reply = c.login_resumable(&self.token(uid), None).await;
        (c, reply)
    }

    /// Drops `client`'s connection without a close and opens a new one to
    /// connector `i` (it must then log in or resume).
    pub async fn redial(&self, client: &mut Client, i: usize) {
        let (addr, url) = &self.connectors[i];
        client.redial(*addr, url).await;
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

    /// Runs `warren ARGS` on its own (no stack) with `env` in a clean
    /// environment; whether it exited successfully, and its stderr.
    pub fn warren_alone(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
        let out = Command::new(warren_binary())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `warren COMMAND ARGS` against this stack's game admin endpoint
    /// (and its gold, in a full stack), with the stack's TLS settings.
    pub fn warren_admin(&self, command: &str, args: &[&str]) -> (bool, String) {
        self.warren_admin_at(self.admin, command, args)
    }

    /// Runs `warren COMMAND ARGS` against the game admin endpoint at
    /// `admin` (another game of this stack).
    pub fn warren_admin_at(
        &self,
        admin: SocketAddr,
        command: &str,
        args: &[&str],
    ) -> (bool, String) {
        let scheme = match self.setting("WARREN_TLS__CERT") {
            Some(_) => "https",
            None => "http",
        };
        let tls = self
            .env
            .iter()
            .filter(|(k, _)| k.starts_with("WARREN_TLS__"));
        let out = Command::new(warren_binary())
            .arg(command)
            .args(args)
            .arg(format!("--admin={scheme}://{admin}"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WARREN_DATA_DIR", &self.dir)
            .envs(self.gold.iter().map(|url| ("WARREN_GOLD__URL", url)))
            .envs(tls.map(|(k, v)| (k, v)))
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
            .args(self.kind.args(&self.broker))
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

    /// Kills a game with SIGKILL (no goodbye, nothing acknowledged that
    /// was not already): the last one started again, else the first
    /// (shard 0's).
    pub fn kill_game(&mut self) {
        let i = self
            .procs
            .iter()
            .rposition(|p| p.name == "game-again")
            .or_else(|| self.procs.iter().position(|p| p.name == "game"))
            .expect("a separate game process");
        self.kill_proc(i);
    }

    /// Kills the stack's own first game (shard 0's) with SIGKILL, however
    /// many were started again.
    pub fn kill_first_game(&mut self) {
        let i = self
            .procs
            .iter()
            .position(|p| p.name == "game")
            .expect("a separate game process");
        self.kill_proc(i);
    }

    fn kill_proc(&mut self, i: usize) {
        let p = &mut self.procs[i];
        p.child.kill().unwrap();
        p.child.wait().unwrap();
        p.name = "killed";
    }

    /// Kills ZeroMQ's push server (SIGKILL) and starts it again on the same
    /// addresses.
    pub fn restart_push_server(&mut self) {
        let p = self
            .procs
            .iter_mut()
            .find(|p| p.name == "push-server")
            .expect("a push server");
        p.child.kill().unwrap();
        p.child.wait().unwrap();
        p.name = "killed";
        let mut server = Proc::spawn("push-server", &self.dir, &["push-server"], &self.env);
        self.push_server = Some(server.wait_ready().addr("push_server"));
        self.procs.push(server);
    }

    /// Starts another game process with the stack's settings.
    pub fn start_game(&mut self) {
        let _ = self.start_game_with(&[]);
    }

    /// Starts another game process with the stack's settings and `extra`
    /// on top; where it is.
    pub fn start_game_with(&mut self, extra: &[(&str, &str)]) -> AddedGame {
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut args = vec!["game".to_owned()];
        args.extend(self.kind.args(&self.broker));
        let mut game = Proc::spawn("game-again", &self.dir, &args, &env);
        let added = AddedGame {
            admin: game.wait_ready().addr("game_admin"),
            console: game.console.clone(),
        };
        self.procs.push(game);
        added
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
            return RedisBus::dead_letters(&self.broker, ns).await.unwrap() as u32;
        }
        let conn = lapin::Connection::connect(&self.broker, lapin::ConnectionProperties::default())
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

    /// The `i`th connector's counters and state (its console's
    /// `GET /v1/stats`).
    pub async fn connector_stats(&self, i: usize) -> serde_json::Value {
        let admin = self.connector_admins[i];
        let (status, body) = http_get(admin, "/v1/stats", &self.admin_token()).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
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
    /// A setting every process of the stack was given (`WARREN_…`).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.procs.iter().map(|p| (p.name, p.child.id())).collect()
    }

    /// SIGTERMs connector `i` (of those started by `start_connectors`)
    /// without waiting for it to exit.
    pub fn signal_connector(&self, i: usize) {
        let offset = self.procs.len() - self.connectors.len();
        self.procs[offset + i].signal_term();
    }

    /// Waits (at most 20 s) for connector `i` to exit.
    pub fn wait_connector(&mut self, i: usize) -> ExitStatus {
        let offset = self.procs.len() - self.connectors.len();
        self.procs[offset + i].wait_exit()
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
                &self.broker,
                self.shards,
                self.durable,
                self.max_queue_length,
                self.quorum,
            );
        }
        // WARREN_TEST_KEEP=1: a failed test's logs stay, for a look.
        if std::thread::panicking() && std::env::var_os("WARREN_TEST_KEEP").is_some() {
            eprintln!("---- the logs stay in {} ----", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A game started again by [`Stack::start_game_with`].
#[derive(Debug)]
pub struct AddedGame {
    /// Its admin endpoint (`warren debug --admin`).
    pub admin: SocketAddr,
    /// Its stdout: what its console said.
    pub console: std::path::PathBuf,
}

impl AddedGame {
    /// What its console has said so far.
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }
}

/// Waits up to [`STEP`] for `check` to give a value (see
/// [`crate::eventually`]).
pub async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    crate::eventually(what, STEP, check).await
}
