//! The SQL. One implementation for PostgreSQL (production) and SQLite (the
//! embedded default), through sqlx's `Any` driver; where the dialects differ
//! the [`Dialect`] says so.
//!
//! Concurrency is the database's job:
//! - PostgreSQL: wallet rows are locked (`SELECT … FOR UPDATE`) in uid order
//!   inside the transaction; a transaction that loses a race on an
//!   idempotency key (unique violation), a serialization failure or a
//!   deadlock is retried from the start.
//! - SQLite: one connection serves the pool, so transactions run one at a
//!   time.
//!
//! Every money movement is one transaction writing the wallet(s), a ledger
//! row per wallet and an idempotency row holding the result. A balance never
//! goes below zero (checked here, and by a CHECK constraint underneath).

use std::time::Duration;

use sqlx::{Any, AnyPool, Row, Transaction, error::ErrorKind, migrate::Migrator};
use tracing::debug;

use crate::{GoldError, domain};

mod sessions;

pub use sessions::{Ban, BanRecord, MAX_SESSIONS};

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

/// Attempts of one money movement before giving up on lost races.
const ATTEMPTS: u32 = 8;

pub use warren_db::Dialect;

static MIGRATIONS: warren_db::Migrations = warren_db::Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};

/// Reads a wallet's balance, locking the row where the dialect can.
fn lock_wallet_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => {
            "SELECT balance FROM wallets WHERE uid = $1 AND currency = $2 FOR UPDATE"
        }
        Dialect::Sqlite => "SELECT balance FROM wallets WHERE uid = $1 AND currency = $2",
    }
}

/// The result of an applied (or replayed) delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    pub balance: i64,
    pub entry_id: i64,
    pub replayed: bool,
}

/// The result of an applied (or replayed) transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transferred {
    pub from_balance: i64,
    pub to_balance: i64,
    pub replayed: bool,
}

/// One ledger row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    pub uid: i64,
    pub currency: String,
    pub delta: i64,
    pub balance_after: i64,
    pub reason: String,
    pub idempotency_key: String,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

fn now_ms() -> i64 {
    warren_proto::time::unix_ms() as i64
}

fn db_kind(e: &sqlx::Error) -> Option<ErrorKind> {
    match e {
        sqlx::Error::Database(d) => Some(d.kind()),
        _ => None,
    }
}

/// A transaction that lost a race and may simply run again.
fn retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.kind() == ErrorKind::UniqueViolation
                || matches!(d.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

fn classify(e: sqlx::Error) -> GoldError {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            GoldError::Unavailable(e)
        }
        _ if db_kind(&e) == Some(ErrorKind::ForeignKeyViolation) => GoldError::UnknownUser,
        _ => GoldError::Internal(e),
    }
}

/// A failure inside a movement: either final, or a lost race to retry.
enum Step {
    Fail(GoldError),
    Retry(sqlx::Error),
}

impl From<sqlx::Error> for Step {
    fn from(e: sqlx::Error) -> Step {
        if retryable(&e) {
            Step::Retry(e)
        } else {
            Step::Fail(classify(e))
        }
    }
}

impl From<GoldError> for Step {
    fn from(e: GoldError) -> Step {
        Step::Fail(e)
    }
}

/// Runs one money movement (`$attempt`, using the transaction `$tx`) and
/// commits it; runs it again from the start after a lost race.
macro_rules! movement {
    ($store:expr, $what:literal, |$tx:ident| $attempt:expr) => {{
        let mut outcome = Err(GoldError::Internal(sqlx::Error::PoolTimedOut));
        for n in 0..ATTEMPTS {
            let mut $tx = $store.pool.begin().await.map_err(classify)?;
            let lost = match $attempt.await {
                Ok(value) => match $tx.commit().await {
                    Ok(()) => {
                        outcome = Ok(value);
                        break;
                    }
                    Err(e) if retryable(&e) => e,
                    Err(e) => return Err(classify(e)),
                },
                Err(Step::Fail(e)) => return Err(e),
                Err(Step::Retry(e)) => e,
            };
            debug!(what = $what, attempt = n + 1, error = %lost, "transaction lost a race, retrying");
            outcome = Err(GoldError::Internal(lost));
            tokio::time::sleep(Duration::from_millis(u64::from(n) * 2)).await;
        }
        outcome
    }};
}

struct Remembered {
    request: String,
    balance: i64,
    balance_to: Option<i64>,
    entry_id: i64,
}

impl Store {
    /// Connects and runs the embedded migrations. `url` is `postgres://…`
    /// or `sqlite://path?mode=rwc`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, GoldError> {
        let (pool, dialect) = warren_db::open("gold", url, max_connections, &MIGRATIONS)
            .await
            .map_err(|e| match e {
                warren_db::OpenError::BadUrl => GoldError::BadRequest(e.to_string()),
                warren_db::OpenError::Unavailable(e) => GoldError::Unavailable(e),
                warren_db::OpenError::Migrations(e) => GoldError::Internal(e.into()),
            })?;
        Ok(Store { pool, dialect })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The uid of a device's guest account, created on first use.
    pub async fn guest_account(&self, device_id: &str) -> Result<(i64, bool), GoldError> {
        let device_id = domain::device_id(device_id)?;
        let created: Option<i64> = sqlx::query_scalar(
            "INSERT INTO accounts (device_id, created_at_ms) VALUES ($1, $2) \
             ON CONFLICT (device_id) DO NOTHING RETURNING uid",
        )
        .bind(device_id)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        if let Some(uid) = created {
            return Ok((uid, true));
        }
        let uid: i64 = sqlx::query_scalar("SELECT uid FROM accounts WHERE device_id = $1")
            .bind(device_id)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok((uid, false))
    }

    pub async fn create_user(&self, username: &str, password_hash: &str) -> Result<i64, GoldError> {
        let username = domain::username(username)?;
        let password_hash = domain::password_hash(password_hash)?;
        let uid: Option<i64> = sqlx::query_scalar(
            "INSERT INTO accounts (username, password_hash, created_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (username) DO NOTHING RETURNING uid",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        uid.ok_or(GoldError::UsernameTaken)
    }

    pub async fn credentials(&self, username: &str) -> Result<(i64, String), GoldError> {
        let row = sqlx::query(
            "SELECT uid, password_hash FROM accounts WHERE username = $1 AND password_hash IS NOT NULL",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?
        .ok_or(GoldError::UnknownUser)?;
        Ok((
            row.try_get(0).map_err(classify)?,
            row.try_get(1).map_err(classify)?,
        ))
    }

    pub async fn balance(&self, uid: i64, currency: &str) -> Result<i64, GoldError> {
        let currency = domain::currency(currency)?;
        let balance: Option<i64> =
            sqlx::query_scalar("SELECT balance FROM wallets WHERE uid = $1 AND currency = $2")
                .bind(uid)
                .bind(currency)
                .fetch_optional(&self.pool)
                .await
                .map_err(classify)?;
        if let Some(balance) = balance {
            return Ok(balance);
        }
        let exists: Option<i64> = sqlx::query_scalar("SELECT uid FROM accounts WHERE uid = $1")
            .bind(uid)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        exists.map(|_| 0).ok_or(GoldError::UnknownUser)
    }

    async fn remembered(
        tx: &mut Transaction<'static, Any>,
        key: &str,
    ) -> Result<Option<Remembered>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT request, balance, balance_to, entry_id FROM idempotency WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
        row.map(|r| {
            Ok(Remembered {
                request: r.try_get(0)?,
                balance: r.try_get(1)?,
                balance_to: r.try_get(2)?,
                entry_id: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Locks the wallet (creating it at 0 the first time), returns its
    /// balance. The common case, an existing wallet, is one round trip.
    async fn lock_wallet(
        &self,
        tx: &mut Transaction<'static, Any>,
        uid: i64,
        currency: &str,
    ) -> Result<i64, sqlx::Error> {
        let lock = lock_wallet_sql(self.dialect);
        let found: Option<i64> = sqlx::query_scalar(lock)
            .bind(uid)
            .bind(currency)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(balance) = found {
            return Ok(balance);
        }
        // Two first movements racing: one inserts, the other does nothing
        // (after waiting for the first), and both then lock the one row.
        sqlx::query(
            "INSERT INTO wallets (uid, currency, balance) VALUES ($1, $2, 0) \
             ON CONFLICT (uid, currency) DO NOTHING",
        )
        .bind(uid)
        .bind(currency)
        .execute(&mut **tx)
        .await?;
        sqlx::query_scalar(lock)
            .bind(uid)
            .bind(currency)
            .fetch_one(&mut **tx)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn write(
        tx: &mut Transaction<'static, Any>,
        uid: i64,
        currency: &str,
        delta: i64,
        balance: i64,
        reason: &str,
        key: &str,
        at: i64,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query("UPDATE wallets SET balance = $1 WHERE uid = $2 AND currency = $3")
            .bind(balance)
            .bind(uid)
            .bind(currency)
            .execute(&mut **tx)
            .await?;
        sqlx::query_scalar(
            "INSERT INTO ledger (uid, currency, delta, balance_after, reason, idempotency_key, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(uid)
        .bind(currency)
        .bind(delta)
        .bind(balance)
        .bind(reason)
        .bind(key)
        .bind(at)
        .fetch_one(&mut **tx)
        .await
    }

    async fn remember(
        tx: &mut Transaction<'static, Any>,
        key: &str,
        request: &str,
        balance: i64,
        balance_to: Option<i64>,
        entry_id: i64,
        at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO idempotency (key, request, balance, balance_to, entry_id, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key)
        .bind(request)
        .bind(balance)
        .bind(balance_to)
        .bind(entry_id)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Adds `delta` to a wallet: one transaction, one ledger row, applied
    /// once per idempotency key.
    pub async fn apply_delta(
        &self,
        uid: i64,
        currency: &str,
        delta: i64,
        reason: &str,
        key: &str,
    ) -> Result<Applied, GoldError> {
        let currency = domain::currency(currency)?;
        let delta = domain::delta(delta)?;
        let reason = domain::reason(reason)?;
        let key = domain::idempotency_key(key)?;
        let request = format!("delta\n{uid}\n{currency}\n{delta}\n{reason}");
        movement!(self, "apply_delta", |tx| self.try_apply_delta(
            &mut tx, uid, currency, delta, reason, key, &request
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn try_apply_delta(
        &self,
        tx: &mut Transaction<'static, Any>,
        uid: i64,
        currency: &str,
        delta: i64,
        reason: &str,
        key: &str,
        request: &str,
    ) -> Result<Applied, Step> {
        if let Some(r) = Self::remembered(tx, key).await? {
            return if r.request == request {
                Ok(Applied {
                    balance: r.balance,
                    entry_id: r.entry_id,
                    replayed: true,
                })
            } else {
                Err(GoldError::KeyReused.into())
            };
        }
        let balance = self.lock_wallet(tx, uid, currency).await?;
        let after = balance.checked_add(delta).ok_or(GoldError::Overflow)?;
        if after < 0 {
            return Err(GoldError::InsufficientFunds { balance }.into());
        }
        let at = now_ms();
        let entry_id = Self::write(tx, uid, currency, delta, after, reason, key, at).await?;
        Self::remember(tx, key, request, after, None, entry_id, at).await?;
        Ok(Applied {
            balance: after,
            entry_id,
            replayed: false,
        })
    }

    /// Moves `amount` between two wallets: one transaction, two ledger rows
    /// (same key), applied once per idempotency key. Wallets are locked in
    /// uid order, so two opposite transfers cannot deadlock.
    pub async fn transfer(
        &self,
        from: i64,
        to: i64,
        currency: &str,
        amount: i64,
        reason: &str,
        key: &str,
    ) -> Result<Transferred, GoldError> {
        if from == to {
            return Err(GoldError::BadRequest(
                "a transfer needs two different uids".into(),
            ));
        }
        let currency = domain::currency(currency)?;
        let amount = domain::amount(amount)?;
        let reason = domain::reason(reason)?;
        let key = domain::idempotency_key(key)?;
        let request = format!("transfer\n{from}\n{to}\n{currency}\n{amount}\n{reason}");
        movement!(self, "transfer", |tx| self.try_transfer(
            &mut tx, from, to, currency, amount, reason, key, &request
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn try_transfer(
        &self,
        tx: &mut Transaction<'static, Any>,
        from: i64,
        to: i64,
        currency: &str,
        amount: i64,
        reason: &str,
        key: &str,
        request: &str,
    ) -> Result<Transferred, Step> {
        if let Some(r) = Self::remembered(tx, key).await? {
            return match (r.request == request, r.balance_to) {
                (true, Some(to_balance)) => Ok(Transferred {
                    from_balance: r.balance,
                    to_balance,
                    replayed: true,
                }),
                _ => Err(GoldError::KeyReused.into()),
            };
        }
        let (first, second) = if from < to { (from, to) } else { (to, from) };
        let first_balance = self.lock_wallet(tx, first, currency).await?;
        let second_balance = self.lock_wallet(tx, second, currency).await?;
        let (from_balance, to_balance) = if from < to {
            (first_balance, second_balance)
        } else {
            (second_balance, first_balance)
        };
        if from_balance < amount {
            return Err(GoldError::InsufficientFunds {
                balance: from_balance,
            }
            .into());
        }
        let to_after = to_balance.checked_add(amount).ok_or(GoldError::Overflow)?;
        let from_after = from_balance - amount;
        let at = now_ms();
        let entry_id =
            Self::write(tx, from, currency, -amount, from_after, reason, key, at).await?;
        Self::write(tx, to, currency, amount, to_after, reason, key, at).await?;
        Self::remember(tx, key, request, from_after, Some(to_after), entry_id, at).await?;
        Ok(Transferred {
            from_balance: from_after,
            to_balance: to_after,
            replayed: false,
        })
    }

    /// A uid's ledger, newest first: at most `limit` entries older than
    /// `before_id` (0: from the newest), optionally of one currency.
    pub async fn history(
        &self,
        uid: i64,
        currency: &str,
        before_id: i64,
        limit: i64,
    ) -> Result<Vec<Entry>, GoldError> {
        if !currency.is_empty() {
            domain::currency(currency)?;
        }
        let rows = sqlx::query(
            "SELECT id, uid, currency, delta, balance_after, reason, idempotency_key, created_at_ms \
             FROM ledger WHERE uid = $1 AND ($2 = '' OR currency = $2) AND ($3 = 0 OR id < $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(uid)
        .bind(currency)
        .bind(before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok(Entry {
                    id: r.try_get(0)?,
                    uid: r.try_get(1)?,
                    currency: r.try_get(2)?,
                    delta: r.try_get(3)?,
                    balance_after: r.try_get(4)?,
                    reason: r.try_get(5)?,
                    idempotency_key: r.try_get(6)?,
                    created_at_ms: r.try_get(7)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(classify)
    }
}
