//! Game process settings.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use serde::{Deserialize, Serialize};
use warren_runtime::RuntimeSettings;

/// A secret setting: usable (`expose_secret`), never printed, never
/// written back out.
pub use secrecy::SecretString as Secret;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GameSettings {
    /// Messages a service's mailbox holds. When full, a request is answered
    /// with error `overloaded` at once; session events wait for room.
    pub mailbox: usize,
    /// Pushes and replies waiting to be published. When full, services
    /// wait (backpressure) until the bus catches up.
    pub outbox: usize,
    /// Messages handed to the bus and not yet confirmed by it, at most;
    /// when reached, the outbox waits for confirms.
    pub confirm_window: usize,
    /// A mailbox deeper than this is logged, then at twice the depth, and so
    /// on (skynet's overload warning).
    pub mailbox_warn: usize,
    /// Longest accepted chat message, in characters, until config-svc's
    /// `chat` document says otherwise (its `max_message_len`).
    pub chat_max_text: usize,
    /// A connector not heard from for this long, while others are, is taken
    /// for dead and its players for offline (connectors say they are alive
    /// every 2 s).
    #[serde(with = "warren_kit::duration::ms")]
    pub connector_expiry_ms: Duration,
    /// A service that panics this many times within `restart_period_ms` is
    /// restarted with fresh state (0: never restarted).
    pub restart_intensity: u32,
    #[serde(with = "warren_kit::duration::ms")]
    pub restart_period_ms: Duration,
    /// More restarts than this (of one service) within
    /// `restart_storm_period_ms` stop the process with exit code 70, so its
    /// orchestrator sees it (0: never).
    pub restart_storm: u32,
    #[serde(with = "warren_kit::duration::ms")]
    pub restart_storm_period_ms: Duration,
    /// A handler running longer than this is reported (once) by the
    /// watchdog, with the service's name and the cmd.
    #[serde(with = "warren_kit::duration::ms")]
    pub stuck_threshold_ms: Duration,
    /// Which game shard this process is, from 0 to `bus.shards` - 1. It
    /// serves the players whose uid % shards is this, and the chat rooms
    /// whose name hashes to it.
    pub shard: u16,
    /// A hot standby for the shard: when another game process already
    /// serves it, this one starts everything but waits, and takes the
    /// shard's requests over the moment that one goes (its console and
    /// `warren debug` say "standby for shard N"). Without it a second game
    /// for a shard is refused at start. Give both games of a shard this
    /// setting: whichever starts first serves. Needs a networked bus.
    pub standby: bool,
    /// Where the operators' admin endpoint (announcements) listens.
    pub admin_listen: SocketAddr,
    /// The bearer token the admin endpoint requires. Unset: the one in
    /// `<data_dir>/admin-token`, generated on first use.
    #[serde(skip_serializing)]
    pub admin_token: Option<Secret>,
    /// How long one call to gold may take.
    #[serde(with = "warren_kit::duration::ms")]
    pub gold_timeout_ms: Duration,
    /// Gold granted by the daily reward, until config-svc's `economy`
    /// document says otherwise (its `daily_reward`).
    pub daily_reward: i64,
    /// The shop: item name → price in gold.
    pub shop_items: BTreeMap<String, i64>,
    /// Where the last known configuration is saved, so the game starts on
    /// it while config-svc is down. Unset: `<data_dir>/config-cache`.
    pub config_cache: Option<std::path::PathBuf>,
    /// Registers the `faults` service (cmds 9990–9992), which panics on
    /// demand. For tests of fault isolation only: never in production.
    pub fault_injection: bool,
    /// Fault injection only: the process aborts when its outbox takes the
    /// `abort_at_reply`-th reply, 200 ms later and before handing it to the
    /// bus, as a crash between a handler and its confirm would (0: never).
    pub abort_at_reply: u64,
}

impl Default for GameSettings {
    fn default() -> Self {
        GameSettings {
            mailbox: 1024,
            outbox: 8192,
            confirm_window: 1024,
            mailbox_warn: 256,
            chat_max_text: 1024,
            connector_expiry_ms: Duration::from_millis(15_000),
            shard: 0,
            standby: false,
            restart_intensity: 10,
            restart_period_ms: Duration::from_millis(5_000),
            restart_storm: 5,
            restart_storm_period_ms: Duration::from_millis(60_000),
            stuck_threshold_ms: Duration::from_millis(5_000),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 7005)),
            admin_token: None,
            gold_timeout_ms: Duration::from_millis(3_000),
            daily_reward: 100,
            shop_items: [("potion", 50), ("shield", 200), ("sword", 300)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            config_cache: None,
            fault_injection: false,
            abort_at_reply: 0,
        }
    }
}

impl GameSettings {
    /// What the service runtime takes from these settings.
    pub fn runtime(&self) -> RuntimeSettings {
        RuntimeSettings {
            shard: self.shard,
            standby: self.standby,
            mailbox: self.mailbox,
            mailbox_warn: self.mailbox_warn,
            outbox: self.outbox,
            confirm_window: self.confirm_window,
            restart_intensity: self.restart_intensity,
            restart_period: self.restart_period_ms,
            restart_storm: self.restart_storm,
            restart_storm_period: self.restart_storm_period_ms,
            stuck_threshold: self.stuck_threshold_ms,
            abort_at_reply: if self.fault_injection {
                self.abort_at_reply
            } else {
                0
            },
        }
    }
}
