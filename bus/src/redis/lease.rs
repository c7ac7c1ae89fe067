//! One owner per shard and per connector id: a lease in Redis that its
//! holder renews while it lives.
//!
//! The lease is a key whose value names the holder and counts its
//! renewals, expiring [`TTL`] after the last one; the holder renews it
//! every [`RENEW_EVERY`]. A second process that finds it held watches it:
//! renewed means the holder lives, and the newcomer is refused
//! (`AlreadyConsumed`); not renewed means the holder died, and the
//! newcomer takes the lease once it expires (at most [`TTL`] after the
//! crash). A Redis restart loses the key; the next renewal takes it again.

use std::time::Duration;

use redis::{Value, aio::ConnectionManager};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::keys::{LEASE_RELEASE, LEASE_TAKE, MARKER};
use crate::BusError;

/// How long a lease outlives its last renewal.
pub(super) const TTL: Duration = Duration::from_secs(3);
/// How often its holder renews it.
pub(super) const RENEW_EVERY: Duration = Duration::from_secs(1);
/// The longest a release waits: a lease not released expires anyway.
const RELEASE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a newcomer looks at a lease held by another.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// A lease this process holds; renewed until dropped or released.
#[derive(Debug)]
pub(super) struct Lease {
    key: String,
    holder: String,
    conn: ConnectionManager,
    stop: CancellationToken,
    /// Cancelled when another process took the lease: this one must stop.
    lost: CancellationToken,
}

/// The outcome of one attempt.
enum Taken {
    Ours,
    Held(String),
}

async fn take(
    conn: &mut ConnectionManager,
    key: &str,
    holder: &str,
    n: u64,
) -> Result<Taken, BusError> {
    let v: Value = redis::cmd("EVAL")
        .arg(LEASE_TAKE)
        .arg(1)
        .arg(key)
        .arg(holder)
        .arg(n)
        .arg(TTL.as_millis() as u64)
        .query_async(conn)
        .await
        .map_err(super::link::unavailable)?;
    Ok(match v {
        Value::Int(1) => Taken::Ours,
        Value::BulkString(b) => Taken::Held(String::from_utf8_lossy(&b).into_owned()),
        other => Taken::Held(format!("{other:?}")),
    })
}

/// The holder part of a lease value (without the renewal count).
fn who(value: &str) -> &str {
    value.rsplit_once(' ').map_or(value, |(who, _)| who)
}

impl Lease {
    /// Takes the lease `key` for this process, waiting out a holder that
    /// has stopped renewing; `Err(AlreadyConsumed(refusal + holder))` if
    /// the holder lives. `marker` (key, value) is set again with every
    /// renewal, so a Redis restart does not lose it.
    pub(super) async fn acquire(
        mut conn: ConnectionManager,
        key: String,
        refusal: &str,
        marker: (String, String),
    ) -> Result<Lease, BusError> {
        let holder = format!(
            "{} pid {} #{:08x} ",
            hostname(),
            std::process::id(),
            rand_u32()
        );
        let deadline = Instant::now() + TTL + RENEW_EVERY;
        let mut seen: Option<String> = None;
        loop {
            match take(&mut conn, &key, &holder, 0).await? {
                Taken::Ours => break,
                Taken::Held(v) => {
                    match &seen {
                        // Renewed since we first looked: its holder lives.
                        Some(first) if *first != v => {
                            return Err(BusError::AlreadyConsumed(format!(
                                "{refusal} (held by {})",
                                who(&v)
                            )));
                        }
                        None => seen = Some(v),
                        Some(_) => {}
                    }
                    if Instant::now() > deadline {
                        return Err(BusError::AlreadyConsumed(format!(
                            "{refusal} (held by {}, which has not let it go)",
                            who(seen.as_deref().unwrap_or_default())
                        )));
                    }
                    tokio::time::sleep(WATCH_EVERY).await;
                }
            }
        }
        let stop = CancellationToken::new();
        let lost = CancellationToken::new();
        tokio::spawn(renew(
            conn.clone(),
            key.clone(),
            holder.clone(),
            marker,
            stop.clone(),
            lost.clone(),
        ));
        Ok(Lease {
            key,
            holder,
            conn,
            stop,
            lost,
        })
    }

    /// Who holds it: this process, unique among every holder there was.
    pub(super) fn holder(&self) -> &str {
        self.holder.trim()
    }

    /// Cancelled once another process has taken the lease.
    pub(super) fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Stops renewing and deletes the lease, so the next holder need not
    /// wait for it to expire. Bounded.
    pub(super) async fn release(mut self) {
        self.stop.cancel();
        let mut release = redis::cmd("EVAL");
        release
            .arg(LEASE_RELEASE)
            .arg(1)
            .arg(&self.key)
            .arg(&self.holder);
        let release = release.query_async::<i64>(&mut self.conn);
        match tokio::time::timeout(RELEASE_TIMEOUT, release).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => debug!(key = %self.key, error = %e, "lease not released; it expires"),
            Err(_) => debug!(key = %self.key, "lease not released in time; it expires"),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn renew(
    mut conn: ConnectionManager,
    key: String,
    holder: String,
    (marker_key, marker): (String, String),
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let mut n = 0u64;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RENEW_EVERY) => {}
        }
        n += 1;
        let renewed = async {
            let taken = take(&mut conn, &key, &holder, n).await?;
            redis::cmd("EVAL")
                .arg(MARKER)
                .arg(1)
                .arg(&marker_key)
                .arg(&marker)
                .query_async::<String>(&mut conn)
                .await
                .map_err(super::link::unavailable)?;
            Ok::<_, BusError>(taken)
        };
        match tokio::time::timeout(super::link::RESPONSE_TIMEOUT, renewed).await {
            Ok(Ok(Taken::Ours)) => {
                if failing {
                    warn!(%key, "lease renewed again");
                    failing = false;
                }
            }
            Ok(Ok(Taken::Held(v))) => {
                error!(%key, holder = who(&v), "another process took this lease: stopping");
                lost.cancel();
                return;
            }
            Ok(Err(e)) => {
                if !failing {
                    warn!(%key, error = %e, "lease not renewed; trying again every second");
                    failing = true;
                }
            }
            Err(_) => {
                if !failing {
                    warn!(%key, "lease not renewed in time; trying again every second");
                    failing = true;
                }
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into())
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) as u32
}
