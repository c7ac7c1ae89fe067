//! What Warren's test suites share, instead of `#[path]` includes:
//!
//! - [`db`]: databases that exist for one test ([`TestDb`]: a fresh
//!   PostgreSQL database, dropped afterwards, or a SQLite file, deleted),
//!   and [`on_both_databases!`], which runs a scenario on each.
//! - [`load`]: busy loops on every core ([`Load`]), for fault tests that
//!   must also pass on a loaded host.
//! - [`eventually`] and [`until`]: waiting for what a test cannot be told
//!   of, with a deadline, instead of a fixed sleep.
//! - [`unique`]: names no other test (or test run) uses; [`TempDir`]: a
//!   directory of its own, removed afterwards.
//! - [`connector`]: playing the connector on a bus (its events in, the
//!   pushes to its id out), for the runtime's and the game's tests.
//! - [`ports`]: loopback ports for servers a test starts later, outside
//!   the ephemeral range so no outgoing connection takes them meanwhile.
//! - [`redis_server`]: a private `redis-server` a fault test may kill.
//! - [`stack`]: the whole stack started as real `warren` processes, on
//!   the buses of `buses` ([`on_every_bus!`], [`on_networked_buses!`]);
//!   [`client`]: a websocket client that speaks
//!   PROTOCOL.md.
//! - [`tls`]: certificates made for a test, and a TLS client.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]
// Test support: a failed set-up is a failed test.
#![allow(clippy::unwrap_used)]

mod buses;
pub mod client;
pub mod connector;
pub mod db;
pub mod http;
pub mod load;
pub mod ports;
mod process;
pub mod rabbit_cluster;
pub mod redis_server;
pub mod stack;
pub mod steady;
pub mod tls;

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

pub use db::{Db, TestDb};
pub use load::Load;
pub use redis_server::PrivateRedis;

/// `<prefix>-<pid>-<counter>-<nanos>`: unique across the tests of a run
/// and across runs.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `check` every 20 ms until it gives a value: for what a test must
/// wait on and cannot be told of (a published configuration reaching a
/// service, a counter moving). Panics after `within`, saying `what` it
/// waited for.
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "waited {within:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually`] for a condition: polls `ok` every 20 ms until it holds;
/// panics after `within`, saying `what` it waited for.
pub async fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    eventually(what, within, async || ok().then_some(())).await;
}

/// A directory of its own under the system's temporary directory, named
/// by [`unique`]; removed (with what is in it) when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the scenario `$name(Db)` once per database: a module `$name` with
/// the tests `postgres` and `sqlite`. `Db` must be in scope.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(Db::Postgres).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(Db::Sqlite).await;
                }
            }
        )*
    };
}
