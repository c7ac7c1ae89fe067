//! Sessions (refresh-token families) and bans.
//!
//! A family is one sign-in: login makes its id and its tokens, gold keeps
//! the SHA-256 of the current token's secret. Rotation is a compare-and-
//! swap on that hash, so of two refreshes with the same token exactly one
//! wins and the other is a reuse, which deletes the family (the standard
//! defence when a refresh token is stolen: thief and owner both lose it,
//! and the owner signs in again). An ended family's row is deleted, so the
//! table holds at most [`MAX_SESSIONS`] live families per uid plus the
//! expired ones not yet swept (each new sign-in of the uid sweeps them).

use sqlx::Row;

use super::{Store, classify, now_ms};
use crate::{GoldError, domain};

/// Live families one uid keeps; a new sign-in beyond it ends the oldest.
pub const MAX_SESSIONS: i64 = 20;

fn now_s() -> i64 {
    now_ms() / 1000
}

/// A ban as stored: its reason and its end (None: for good).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    pub reason: String,
    pub until_s: Option<i64>,
}

impl Ban {
    /// What the banned player is told.
    pub fn refusal(&self) -> GoldError {
        let when = match self.until_s {
            None => "for good".to_owned(),
            Some(until) => format!(
                "until {until} (unix seconds; {} from now)",
                human((until - now_s()).max(0))
            ),
        };
        GoldError::Banned(format!("this account is banned {when}: {}", self.reason))
    }
}

/// One row of the ban audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanRecord {
    /// `ban` or `lift`.
    pub action: String,
    pub reason: String,
    pub until_s: Option<i64>,
    pub by: String,
    pub at_ms: i64,
}

/// "3 d 4 h", "5 h 2 min", "40 s".
fn human(secs: i64) -> String {
    match secs {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3_600),
        s if s >= 3_600 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

impl Store {
    /// The uid's ban in force now, if any.
    pub async fn ban_of(&self, uid: i64) -> Result<Option<Ban>, GoldError> {
        let row = sqlx::query(
            "SELECT reason, until_s FROM bans WHERE uid = $1 AND (until_s IS NULL OR until_s > $2)",
        )
        .bind(uid)
        .bind(now_s())
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|r| {
            Ok(Ban {
                reason: r.try_get(0).map_err(classify)?,
                until_s: r.try_get(1).map_err(classify)?,
            })
        })
        .transpose()
    }

    /// Starts a family for `uid`: refused if the uid is banned; sweeps the
    /// uid's expired families and ends the oldest beyond [`MAX_SESSIONS`].
    pub async fn start_session(
        &self,
        uid: i64,
        family: &str,
        token_hash: &str,
        expires_at_s: i64,
    ) -> Result<(), GoldError> {
        let family = domain::family(family)?;
        let token_hash = domain::token_hash(token_hash)?;
        if let Some(ban) = self.ban_of(uid).await? {
            return Err(ban.refusal());
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query("DELETE FROM sessions WHERE uid = $1 AND expires_at_s <= $2")
            .bind(uid)
            .bind(now_s())
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query(
            "INSERT INTO sessions (family, uid, token_hash, expires_at_s, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(family)
        .bind(uid)
        .bind(token_hash)
        .bind(expires_at_s)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "DELETE FROM sessions WHERE uid = $1 AND family NOT IN \
             (SELECT family FROM sessions WHERE uid = $1 \
              ORDER BY created_at_ms DESC, family LIMIT $2)",
        )
        .bind(uid)
        .bind(MAX_SESSIONS)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    /// Swaps `family`'s current token `token_hash` for `new_hash`; the uid.
    /// A token that is not the current one ends the family.
    pub async fn rotate_session(
        &self,
        family: &str,
        token_hash: &str,
        new_hash: &str,
        new_expires_at_s: i64,
    ) -> Result<i64, GoldError> {
        let family = domain::family(family)?;
        let token_hash = domain::token_hash(token_hash)?;
        let new_hash = domain::token_hash(new_hash)?;
        let row = sqlx::query("SELECT uid, expires_at_s FROM sessions WHERE family = $1")
            .bind(family)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        let Some(row) = row else {
            return Err(GoldError::InvalidRefresh);
        };
        let uid: i64 = row.try_get(0).map_err(classify)?;
        let expires_at_s: i64 = row.try_get(1).map_err(classify)?;
        if expires_at_s <= now_s() {
            self.end_family(family).await?;
            return Err(GoldError::InvalidRefresh);
        }
        if let Some(ban) = self.ban_of(uid).await? {
            self.end_family(family).await?;
            return Err(ban.refusal());
        }
        let swapped = sqlx::query(
            "UPDATE sessions SET token_hash = $1, expires_at_s = $2 \
             WHERE family = $3 AND token_hash = $4",
        )
        .bind(new_hash)
        .bind(new_expires_at_s)
        .bind(family)
        .bind(token_hash)
        .execute(&self.pool)
        .await
        .map_err(classify)?
        .rows_affected();
        if swapped == 1 {
            return Ok(uid);
        }
        self.end_family(family).await?;
        Err(GoldError::RefreshReused)
    }

    async fn end_family(&self, family: &str) -> Result<u64, GoldError> {
        Ok(sqlx::query("DELETE FROM sessions WHERE family = $1")
            .bind(family)
            .execute(&self.pool)
            .await
            .map_err(classify)?
            .rows_affected())
    }

    /// Logout: ends `family`, or with `everywhere` every family of its uid,
    /// if `token_hash` is the family's current token; the uid and how many
    /// families ended.
    pub async fn logout(
        &self,
        family: &str,
        token_hash: &str,
        everywhere: bool,
    ) -> Result<(i64, u64), GoldError> {
        let family = domain::family(family)?;
        let token_hash = domain::token_hash(token_hash)?;
        let uid: Option<i64> =
            sqlx::query_scalar("SELECT uid FROM sessions WHERE family = $1 AND token_hash = $2")
                .bind(family)
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(classify)?;
        let uid = uid.ok_or(GoldError::InvalidRefresh)?;
        let ended = self
            .end_sessions(uid, (!everywhere).then_some(family))
            .await?;
        Ok((uid, ended))
    }

    /// Ends `family` of `uid`, or every family of the uid; how many.
    pub async fn end_sessions(&self, uid: i64, family: Option<&str>) -> Result<u64, GoldError> {
        let query = match family {
            Some(family) => sqlx::query("DELETE FROM sessions WHERE uid = $1 AND family = $2")
                .bind(uid)
                .bind(domain::family(family)?),
            None => sqlx::query("DELETE FROM sessions WHERE uid = $1").bind(uid),
        };
        Ok(query
            .execute(&self.pool)
            .await
            .map_err(classify)?
            .rows_affected())
    }

    /// Bans `uid` (replacing a ban it has) and ends its sessions, with an
    /// audit row; how many sessions ended.
    pub async fn ban(
        &self,
        uid: i64,
        reason: &str,
        until_s: Option<i64>,
        by: &str,
    ) -> Result<u64, GoldError> {
        let reason = domain::ban_reason(reason)?;
        let by = domain::actor(by)?;
        if until_s.is_some_and(|u| u <= now_s()) {
            return Err(GoldError::BadRequest("until_s is in the past".into()));
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        sqlx::query(
            "INSERT INTO bans (uid, reason, until_s, by_whom, at_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (uid) DO UPDATE SET reason = excluded.reason, \
             until_s = excluded.until_s, by_whom = excluded.by_whom, at_ms = excluded.at_ms",
        )
        .bind(uid)
        .bind(reason)
        .bind(until_s)
        .bind(by)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        audit(&mut tx, uid, "ban", reason, until_s, by).await?;
        let ended = sqlx::query("DELETE FROM sessions WHERE uid = $1")
            .bind(uid)
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
        tx.commit().await.map_err(classify)?;
        Ok(ended)
    }

    /// Lifts `uid`'s ban, with an audit row; false if it had none.
    pub async fn lift_ban(&self, uid: i64, by: &str) -> Result<bool, GoldError> {
        let by = domain::actor(by)?;
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let lifted = sqlx::query("DELETE FROM bans WHERE uid = $1")
            .bind(uid)
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
        if lifted == 0 {
            return Ok(false);
        }
        audit(&mut tx, uid, "lift", "", None, by).await?;
        tx.commit().await.map_err(classify)?;
        Ok(true)
    }
}

impl Store {
    /// Every ban and lift of `uid`, oldest first.
    pub async fn ban_audit(&self, uid: i64) -> Result<Vec<BanRecord>, GoldError> {
        let rows = sqlx::query(
            "SELECT action, reason, until_s, by_whom, at_ms FROM ban_audit \
             WHERE uid = $1 ORDER BY id",
        )
        .bind(uid)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok(BanRecord {
                    action: r.try_get(0)?,
                    reason: r.try_get(1)?,
                    until_s: r.try_get(2)?,
                    by: r.try_get(3)?,
                    at_ms: r.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(classify)
    }
}

async fn audit(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    uid: i64,
    action: &str,
    reason: &str,
    until_s: Option<i64>,
    by: &str,
) -> Result<(), GoldError> {
    sqlx::query(
        "INSERT INTO ban_audit (uid, action, reason, until_s, by_whom, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uid)
    .bind(action)
    .bind(reason)
    .bind(until_s)
    .bind(by)
    .bind(now_ms())
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    Ok(())
}
