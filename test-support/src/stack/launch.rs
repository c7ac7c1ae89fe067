//! Starting a stack's processes, in dependency order or (for the ZeroMQ
//! start-order tests) in another.

use std::net::SocketAddr;

use warren_login::{JwtSettings, TokenSigner};

use super::Stack;
use crate::{
    buses::{BusKind, amqp_url, redis_url},
    process::Proc,
    unique,
};

/// In which order a networked stack's bus processes start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Push server, games, call gateways, connectors (each waits for the
    /// one before it to be ready).
    GameFirst,
    /// Connectors and call gateways before the games.
    ConnectorsFirst,
    /// ZeroMQ's push server after everything else.
    PushServerLast,
}

/// The settings every process of a test stack gets.
fn base_env(dir: &std::path::Path) -> Vec<(String, String)> {
    let loopback = "127.0.0.1:0";
    let mut env: Vec<(String, String)> =
        vec![("WARREN_DATA_DIR".into(), dir.display().to_string())];
    for key in [
        "CONNECTOR__LISTEN",
        "GOLD__LISTEN",
        "GOLD__ADMIN_LISTEN",
        "LOGIN__LISTEN",
        "HTTP__LISTEN",
        "GAME__ADMIN_LISTEN",
        "CONNECTOR__ADMIN_LISTEN",
        "CONFIG_SVC__LISTEN",
        "CONFIG_SVC__ADMIN_LISTEN",
        "BUS__ZMQ__PUSH_SERVER_ADMIN",
    ] {
        env.push((format!("WARREN_{key}"), loopback.into()));
    }
    // Load patterns here (pipelined floods, closed-loop benches) are not
    // players; the rate limit has its own test in connector/.
    for (key, value) in [
        ("CONNECTOR__RATE_LIMIT_PER_SEC", "10000000"),
        ("CONNECTOR__RATE_LIMIT_BURST", "10000000"),
        ("CONNECTOR__BYTE_LIMIT_PER_SEC", "2000000000"),
        ("CONNECTOR__BYTE_LIMIT_BURST", "2000000000"),
        ("GAME__FAULT_INJECTION", "true"),
    ] {
        env.push((format!("WARREN_{key}"), value.into()));
    }
    env
}

/// What a launch has started so far.
#[derive(Default)]
struct Started {
    procs: Vec<Proc>,
    admin: Option<SocketAddr>,
    gateways: Vec<SocketAddr>,
    connectors: Vec<(SocketAddr, String)>,
    connector_admins: Vec<SocketAddr>,
    push_server: Option<SocketAddr>,
}

impl Stack {
    // Long: every process of every stack layout, started in order.
    pub(super) async fn launch(
        kind: BusKind,
        extra: &[(&str, &str)],
        full: bool,
        connectors_wanted: usize,
        order: Order,
    ) -> Stack {
        let dir = std::env::temp_dir().join(unique("warren-test"));
        std::fs::create_dir_all(&dir).unwrap();
        let (private, _public) = warren_login::keys::write_pair(&dir).unwrap();
        let signer = TokenSigner::from_file(&private, &JwtSettings::default()).unwrap();
        let mut env = base_env(&dir);
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // The broker: the shared one, or a test's own (its URL among the
        // extra settings: a private Redis, a RabbitMQ cluster's first node).
        let setting = |key: &str| extra.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let broker = match kind {
            BusKind::RabbitMq => {
                setting("WARREN_BUS__AMQP_URL").map_or_else(amqp_url, str::to_owned)
            }
            _ => setting("WARREN_BUS__REDIS__URL").map_or_else(redis_url, str::to_owned),
        };
        let quorum = setting("WARREN_BUS__QUORUM") == Some("true");
        let mut namespace = None;
        let tls = extra.iter().any(|(k, _)| *k == "WARREN_TLS__CERT");
        let shards: u16 = extra
            .iter()
            .find(|(k, _)| *k == "WARREN_BUS__SHARDS")
            .map_or(1, |(_, v)| v.parse().unwrap());
        let mut login = None;
        let mut gold_at = None;
        let mut gold_admin = None;
        let (mut config, mut config_page) = (None, None);
        let mut s = Started::default();
        if kind == BusKind::InProcess {
            let mut all = Proc::spawn("warren", &dir, &[] as &[&str], &env);
            let ready = all.wait_ready();
            config = Some(ready.addr("config"));
            config_page = Some(ready.addr("config_page"));
            login = Some(ready.addr("login"));
            gold_at = Some(ready.url("gold"));
            gold_admin = Some(ready.addr("gold_admin"));
            s.admin = Some(ready.addr("game_admin"));
            s.gateways.push(ready.addr("http"));
            s.connectors
                .push((ready.addr("connector"), ready.url("connector")));
            s.connector_admins.push(ready.addr("connector_admin"));
            s.procs.push(all);
        } else {
            let ns = unique("warren-test");
            env.push(("WARREN_BUS__NAMESPACE".into(), ns.clone()));
            env.extend(kind.env(shards, connectors_wanted));
            namespace = kind.brokered().then_some(ns);
            // In a full stack login sends logouts on to the first game's
            // admin endpoint, so that one's address is known in advance.
            let first_game_admin = full.then(crate::ports::unused);
            if let Some(admin) = first_game_admin {
                let scheme = if tls { "https" } else { "http" };
                env.push((
                    "WARREN_LOGIN__GAME_ADMIN".into(),
                    format!("{scheme}://{admin}"),
                ));
            }
            if full {
                let mut gold = Proc::spawn("gold", &dir, &["gold"], &env);
                let ready = gold.wait_ready();
                let gold_url = ready.url("gold");
                gold_admin = Some(ready.addr("gold_admin"));
                env.push(("WARREN_GOLD__URL".into(), gold_url.clone()));
                gold_at = Some(gold_url);
                let mut login_proc = Proc::spawn("login", &dir, &["login"], &env);
                login = Some(login_proc.wait_ready().addr("login"));
                s.procs.push(gold);
                s.procs.push(login_proc);
                let mut config_proc = Proc::spawn("config-svc", &dir, &["config-svc"], &env);
                let ready = config_proc.wait_ready();
                config = Some(ready.addr("config"));
                config_page = Some(ready.addr("config_page"));
                env.push(("WARREN_CONFIG_SVC__URL".into(), ready.url("config")));
                s.procs.push(config_proc);
            } else {
                // No config-svc in this stack: the game runs on its
                // settings (and never reaches for a default port).
                env.push(("WARREN_CONFIG_SVC__URL".into(), String::new()));
            }
            let bus = Bus {
                kind,
                broker: &broker,
                dir: &dir,
                env: &env,
                shards,
                connectors: connectors_wanted,
                first_game_admin,
            };
            let push_server = kind == BusKind::ZmqPushServer;
            if push_server && order != Order::PushServerLast {
                bus.push_server(&mut s);
            }
            if order == Order::ConnectorsFirst {
                bus.connectors(&mut s);
                bus.games(&mut s);
            } else {
                bus.games(&mut s);
                bus.connectors(&mut s);
            }
            if push_server && order == Order::PushServerLast {
                bus.push_server(&mut s);
            }
        }
        let (addr, url) = s.connectors[0].clone();
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
            gold: gold_at,
            gold_admin,
            admin: s.admin.expect("a game was started"),
            // The pair layout has no call gateway.
            http: s
                .gateways
                .first()
                .copied()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            gateways: s.gateways,
            push_server: s.push_server,
            shards,
            connector_admins: s.connector_admins,
            config,
            config_page,
            connectors: s.connectors,
            url,
            dir,
            signer,
            procs: s.procs,
            namespace,
            broker,
            quorum,
        }
    }
}

/// Starting the processes of a networked bus.
struct Bus<'a> {
    kind: BusKind,
    broker: &'a str,
    dir: &'a std::path::Path,
    env: &'a [(String, String)],
    shards: u16,
    connectors: usize,
    /// Where the first game serves its admin endpoint (default: any port).
    first_game_admin: Option<SocketAddr>,
}

impl Bus<'_> {
    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(self.kind.args(self.broker));
        all
    }

    /// The settings of the `i`th process that serves a gateway (the gRPC
    /// gateway's address; the same as every process's elsewhere).
    fn env_of(&self, i: usize) -> Vec<(String, String)> {
        let mut env = self.env.to_vec();
        env.extend(self.kind.gateway_of(self.env, i));
        env
    }

    fn push_server(&self, s: &mut Started) {
        let mut server = Proc::spawn("push-server", self.dir, &["push-server"], self.env);
        s.push_server = Some(server.wait_ready().addr("push_server"));
        s.procs.push(server);
    }

    fn games(&self, s: &mut Started) {
        let mut env = self.env.to_vec();
        if let Some(admin) = self.first_game_admin {
            env.push(("WARREN_GAME__ADMIN_LISTEN".into(), admin.to_string()));
        }
        let mut game = Proc::spawn("game", self.dir, &self.args(&["game"]), &env);
        s.admin = Some(game.wait_ready().addr("game_admin"));
        s.procs.push(game);
        for shard in 1..self.shards {
            let mut env = self.env.to_vec();
            env.push(("WARREN_GAME__SHARD".into(), shard.to_string()));
            let mut more = Proc::spawn("game", self.dir, &self.args(&["game"]), &env);
            more.wait_ready();
            s.procs.push(more);
        }
    }

    /// Call gateways (one per connector; none in the pair layout, which
    /// has room for one connector), then the connectors.
    fn connectors(&self, s: &mut Started) {
        let gateways = if self.kind == BusKind::ZmqPair {
            0
        } else {
            self.connectors
        };
        for i in 0..gateways {
            let id = format!("--id=h{i}");
            let env = self.env_of(i);
            let mut gateway = Proc::spawn("http", self.dir, &self.args(&["http", &id]), &env);
            s.gateways.push(gateway.wait_ready().addr("http"));
            s.procs.push(gateway);
        }
        for i in 0..self.connectors {
            let id = format!("--id=c{i}");
            let args = self.args(&["connector", &id]);
            let env = self.env_of(self.connectors + i);
            let mut conn = Proc::spawn("connector", self.dir, &args, &env);
            let ready = conn.wait_ready();
            s.connectors
                .push((ready.addr("connector"), ready.url("connector")));
            s.connector_admins.push(ready.addr("connector_admin"));
            s.procs.push(conn);
        }
    }
}
