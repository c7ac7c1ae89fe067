//! The command line.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};

const SETTINGS_HELP: &str = "\
SETTINGS
  Every setting has a default; a TOML file (--config, or WARREN_CONFIG) overrides
  them, WARREN_* environment variables override the file (sections are separated
  by a double underscore), and flags override everything. Examples:

    WARREN_BUS__KIND=memory|amqp|redis|zmq|grpc  the bus transport (default: the one whose URL is given)
    WARREN_BUS__AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f
    WARREN_BUS__REDIS__URL=redis://127.0.0.1:6379
    WARREN_BUS__NAMESPACE=warren          prefix of exchange and queue names
    WARREN_DATA_DIR=warren-data           dev keys and local data
    WARREN_JWT__PUBLIC_KEY=path.pem       Ed25519 public key (connector)
    WARREN_JWT__PRIVATE_KEY=path.pem      Ed25519 private key (token signing)
    WARREN_JWT__ISSUER=warren  WARREN_JWT__AUDIENCE=warren  WARREN_JWT__LEEWAY_SECS=30
    WARREN_CONNECTOR__LISTEN=0.0.0.0:7001  WARREN_CONNECTOR__PATH=/ws
    WARREN_CONNECTOR__ID=connector-1      names the connector's push queue
    WARREN_CONNECTOR__LOGIN_TIMEOUT_MS=10000  WARREN_CONNECTOR__IDLE_TIMEOUT_MS=30000
    WARREN_CONNECTOR__MAX_FRAME_BYTES=65536   WARREN_CONNECTOR__OUTBOUND_QUEUE=2048
    WARREN_CONNECTOR__MAX_CONNECTIONS=19000
    WARREN_GAME__MAILBOX=1024             per-service mailbox; full => `overloaded`
    WARREN_GAME__CHAT_MAX_TEXT=1024
    WARREN_GAME__DAILY_REWARD=100
    WARREN_GOLD__LISTEN=127.0.0.1:7002    WARREN_GOLD__URL=http://127.0.0.1:7002   (login's and the game's)
    WARREN_GOLD__DATABASE=postgres://user@host/db   (default: SQLite in the data dir)
    WARREN_LOGIN__LISTEN=0.0.0.0:7000
    WARREN_CONFIG_SVC__LISTEN=127.0.0.1:7003  WARREN_CONFIG_SVC__ADMIN_LISTEN=127.0.0.1:7004
    WARREN_CONFIG_SVC__DATABASE=postgres://user@host/db   (default: SQLite in the data dir)
    WARREN_CONFIG_SVC__URL=http://127.0.0.1:7003   (the game's; empty: no config-svc)

  docs/settings.md lists every setting with its meaning. Logs go to stderr;
  RUST_LOG (e.g. RUST_LOG=debug) sets their level.";

/// Warren game server. With no command, runs the whole stack in one process
/// (login, gold on SQLite, connector and game on the in-process bus; --amqp
/// puts the bus on RabbitMQ, --redis on Redis).
#[derive(Debug, Parser)]
#[command(name = "warren", version, after_long_help = SETTINGS_HELP)]
pub struct Cli {
    /// A TOML settings file.
    #[arg(long, global = true, env = "WARREN_CONFIG")]
    pub config: Option<PathBuf>,

    /// Where local files live (dev keys). Overrides `data_dir`.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,

    /// Once every part has started, write this file: JSON with the run
    /// mode, the pid and every listener's URL by role (docs/deploy.md,
    /// "Readiness"). Removed when the process stops cleanly.
    #[arg(long, global = true, env = "WARREN_READY_FILE")]
    pub ready_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connector and game in one process (the default).
    All(PartArgs),
    /// The websocket connector alone, on RabbitMQ.
    Connector(PartArgs),
    /// The game process alone, on RabbitMQ.
    Game(PartArgs),
    /// gold, the data service (gRPC), alone.
    Gold(PartArgs),
    /// The HTTP login alone.
    Login(PartArgs),
    /// The HTTP call gateway alone (POST /v1/call/{cmd}), on a networked
    /// bus: stateless, any number side by side.
    Http(PartArgs),
    /// The ZeroMQ push server alone (bus.zmq.layout = "push-server"):
    /// games send it pushes, connectors register with it, it forwards
    /// each push to its connector.
    PushServer,
    /// config-svc alone: the configuration gRPC service and the staff's
    /// admin page. --database is config-svc's own database.
    ConfigSvc(PartArgs),
    /// Manage the staff accounts of the config admin page.
    #[command(subcommand)]
    ConfigAdmin(ConfigAdmin),
    /// Print a signed token for a uid (alone on stdout).
    Token {
        /// The player's uid.
        #[arg(long)]
        uid: u64,
        /// Lifetime in seconds (default: jwt.ttl_secs, 15 min).
        #[arg(long)]
        ttl_secs: Option<u64>,
    },
    /// Send a marquee announcement (push 9001) to every player online, or to
    /// some, now or later, through the game's admin endpoint. Prints the
    /// outcome (how many players it went to) as JSON.
    Announce {
        /// What players read (1 to 512 characters).
        #[arg(long)]
        text: String,
        /// info or urgent.
        #[arg(long, default_value = "info")]
        level: String,
        /// Only these players: comma-separated uids.
        #[arg(long, value_delimiter = ',')]
        uids: Vec<u64>,
        /// Send it at the first whole second at least this many seconds from
        /// now instead of at once.
        #[arg(long)]
        in_secs: Option<u64>,
        /// The game's admin endpoint (default: http://<game.admin_listen>).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Ban a player (or lift a ban): gold records it with who and why (an
    /// audit row each time), ends the player's sign-ins and refuses new
    /// ones; every connector then refuses the player's tokens and kicks
    /// its socket (reason `banned`) through the game's admin endpoint.
    /// Prints the outcome as JSON.
    Ban(BanArgs),
    /// Show a running game's services: thread, mailbox depth, messages,
    /// handler times, CPU, panics, restarts, stuck handlers.
    Debug {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The game's admin endpoint (default: http://<game.admin_listen>).
        #[arg(long)]
        admin: Option<String>,
        /// Show a connector instead: its admin endpoint, e.g.
        /// http://127.0.0.1:7008.
        #[arg(long)]
        connector: Option<String>,
        /// Show a ZeroMQ push server instead: its console, e.g.
        /// http://127.0.0.1:7009.
        #[arg(long, conflicts_with = "connector")]
        push_server: Option<String>,
        /// Show one service: its counters and its own summary of its state.
        #[arg(long, conflicts_with_all = ["connector", "push_server"])]
        service: Option<String>,
        /// Log every message one service handles (target warren::trace), or
        /// stop: NAME=on or NAME=off.
        #[arg(long, value_name = "NAME=on|off", conflicts_with_all = ["connector", "push_server", "service"])]
        trace: Option<String>,
    },
    /// The health check of a container: exits 0 when the process behind
    /// the ready file (--ready-file or WARREN_READY_FILE) runs and every
    /// listener it names accepts a connection, 1 otherwise, saying why.
    Health,
    /// Write a new Ed25519 key pair for signing tokens.
    Keygen {
        /// Directory to write jwt-private.pem and jwt-public.pem into.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAdmin {
    /// Create a staff account (or set a new password for an existing one,
    /// which also signs it out everywhere). Without --password-stdin a
    /// strong password is generated and printed once.
    AddUser {
        /// 1 to 64 letters, digits, '.', '_', '-' or '@'.
        username: String,
        /// Read the password (10 to 256 characters) from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// config-svc's database (default: config_svc.database, or SQLite in
        /// the data directory).
        #[arg(long)]
        database: Option<String>,
    },
}

#[derive(Debug, Default, clap::Args)]
pub struct PartArgs {
    /// RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f. Required for
    /// `connector` and `game`; for `all`, switches from the in-process bus.
    #[arg(long, conflicts_with = "redis")]
    pub amqp: Option<String>,

    /// Redis URL, e.g. redis://127.0.0.1:6379: the bus on Redis instead
    /// (lists for requests, pub/sub for pushes).
    #[arg(long)]
    pub redis: Option<String>,

    /// `warren game` on the gRPC gateway: every connector's (and call
    /// gateway's) gateway URL, comma-separated; puts the bus on it.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["amqp", "redis"])]
    pub gateways: Option<Vec<String>>,

    /// Where the connector accepts websockets (`warren http`: calls).
    #[arg(long)]
    pub listen: Option<SocketAddr>,

    /// The connector's id (names its push queue; `warren http`: the
    /// gateway's, naming the queue its replies come to).
    #[arg(long)]
    pub id: Option<String>,

    /// gold's database (config-svc's, for `config-svc`): postgres://… or
    /// sqlite://path?mode=rwc (default: SQLite in the data directory).
    #[arg(long)]
    pub database: Option<String>,
}

/// What `warren ban` is asked.
#[derive(Debug, clap::Args)]
pub struct BanArgs {
    /// The player's uid.
    #[arg(long)]
    pub uid: u64,
    /// Why (1 to 200 characters); the player is told.
    #[arg(long, required_unless_present = "lift")]
    pub reason: Option<String>,
    /// Until when: unix seconds, or a duration from now ("7days",
    /// "12h"). Unset: for good.
    #[arg(long, conflicts_with = "lift")]
    pub until: Option<String>,
    /// Lift the player's ban instead.
    #[arg(long)]
    pub lift: bool,
    /// Who bans, for the audit (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
    /// The game's admin endpoint (default: http://<game.admin_listen>).
    #[arg(long)]
    pub admin: Option<String>,
}
