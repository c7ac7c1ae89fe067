//! The admin page's staff accounts and sessions, in config-svc's store.

use sqlx::Row;

use super::{Store, now_ms};
use crate::ConfigError;

/// A signed-in staff member's session, as stored.
#[derive(Clone, Debug)]
pub struct StaffSession {
    pub username: String,
    pub csrf: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl Store {
    /// Adds a staff account, or sets the password of an existing one;
    /// returns whether it was new.
    pub async fn put_staff(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<bool, ConfigError> {
        let updated = sqlx::query("UPDATE staff_users SET password_hash = $1 WHERE username = $2")
            .bind(password_hash)
            .bind(username)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if updated == 1 {
            sqlx::query("DELETE FROM staff_sessions WHERE username = $1")
                .bind(username)
                .execute(&self.pool)
                .await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO staff_users (username, password_hash, created_at_ms) VALUES ($1, $2, $3)",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    pub async fn staff_count(&self) -> Result<i64, ConfigError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM staff_users")
            .fetch_one(&self.pool)
            .await?)
    }

    pub(crate) async fn staff_password_hash(
        &self,
        username: &str,
    ) -> Result<Option<String>, ConfigError> {
        Ok(
            sqlx::query_scalar("SELECT password_hash FROM staff_users WHERE username = $1")
                .bind(username)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub(crate) async fn create_session(
        &self,
        id_hash: &str,
        session: &StaffSession,
    ) -> Result<(), ConfigError> {
        sqlx::query(
            "INSERT INTO staff_sessions (id_hash, username, csrf, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(&session.username)
        .bind(&session.csrf)
        .bind(session.created_at_ms)
        .bind(session.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A live session (expired ones are deleted on sight).
    pub async fn session(&self, id_hash: &str) -> Result<Option<StaffSession>, ConfigError> {
        let row = sqlx::query("SELECT * FROM staff_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let s = StaffSession {
            username: r.try_get("username")?,
            csrf: r.try_get("csrf")?,
            created_at_ms: r.try_get("created_at_ms")?,
            expires_at_ms: r.try_get("expires_at_ms")?,
        };
        if s.expires_at_ms <= now_ms() {
            self.end_session(id_hash).await?;
            return Ok(None);
        }
        Ok(Some(s))
    }

    pub(crate) async fn extend_session(
        &self,
        id_hash: &str,
        expires_at_ms: i64,
    ) -> Result<(), ConfigError> {
        sqlx::query("UPDATE staff_sessions SET expires_at_ms = $1 WHERE id_hash = $2")
            .bind(expires_at_ms)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn end_session(&self, id_hash: &str) -> Result<(), ConfigError> {
        sqlx::query("DELETE FROM staff_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes expired sessions; returns how many.
    pub(crate) async fn purge_sessions(&self) -> Result<u64, ConfigError> {
        Ok(
            sqlx::query("DELETE FROM staff_sessions WHERE expires_at_ms <= $1")
                .bind(now_ms())
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
