//! What the runtime itself is tuned by (the game's settings file carries
//! these beside its services' own; see docs/settings.md).

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct RuntimeSettings {
    /// Which game shard this process is, from 0 to the bus's shards - 1.
    pub shard: u16,
    /// A hot standby: when another game already consumes this shard's
    /// requests, wait (its console says "standby for shard N") and take
    /// over when that one goes, instead of refusing to start.
    pub standby: bool,
    /// Messages a service's mailbox holds. When full, a request is answered
    /// with error `overloaded` at once; session events wait for room.
    pub mailbox: usize,
    /// A mailbox deeper than this is logged, then at twice the depth, and so
    /// on (skynet's overload warning).
    pub mailbox_warn: usize,
    /// Pushes and replies waiting to be published. When full, services
    /// wait (backpressure) until the bus catches up.
    pub outbox: usize,
    /// Messages handed to the bus and not yet confirmed by it, at most.
    pub confirm_window: usize,
    /// A service that panics `restart_intensity` times within
    /// `restart_period` is restarted with fresh state (0: never).
    pub restart_intensity: u32,
    pub restart_period: Duration,
    /// More restarts than `restart_storm` (of one service) within
    /// `restart_storm_period` stop the process with exit code 70 (0: never).
    pub restart_storm: u32,
    pub restart_storm_period: Duration,
    /// A handler running longer than this is reported once by the watchdog.
    pub stuck_threshold: Duration,
    /// Fault injection: the process aborts when its outbox takes this
    /// reply (0: never). See `outbox::AbortAt`.
    pub abort_at_reply: u64,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            shard: 0,
            standby: false,
            mailbox: 1024,
            mailbox_warn: 256,
            outbox: 8192,
            confirm_window: 1024,
            restart_intensity: 10,
            restart_period: Duration::from_secs(5),
            restart_storm: 5,
            restart_storm_period: Duration::from_secs(60),
            stuck_threshold: Duration::from_secs(5),
            abort_at_reply: 0,
        }
    }
}
