//! What gold and config-svc share about their databases (each has its own,
//! and its own SQL): which dialect a URL names, and opening a pool with the
//! service's embedded migrations run. PostgreSQL in production, SQLite for
//! the embedded default — through sqlx's `Any` driver, so one binary speaks
//! both.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use std::time::Duration;

use sqlx::{
    AnyPool,
    any::{AnyPoolOptions, install_default_drivers},
    migrate::{MigrateError, Migrator},
};
use tracing::info;

/// How long a caller waits for a pooled connection before the database is
/// taken for unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// The dialect `url` names: `postgres://…` (or `postgresql://…`) or
    /// `sqlite:…`.
    pub fn of(url: &str) -> Option<Dialect> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else {
            None
        }
    }
}

/// A service's embedded migrations, one set per dialect.
#[derive(Debug)]
pub struct Migrations {
    pub postgres: &'static Migrator,
    pub sqlite: &'static Migrator,
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the database URL must start with postgres:// or sqlite:")]
    BadUrl,
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("running the migrations: {0}")]
    Migrations(#[source] MigrateError),
}

/// Opens a pool on `url` (at most `max_connections` on PostgreSQL; one on
/// SQLite, which writes alone) and runs `migrations` for its dialect.
/// `what` names the database in the log.
pub async fn open(
    what: &str,
    url: &str,
    max_connections: u32,
    migrations: &Migrations,
) -> Result<(AnyPool, Dialect), OpenError> {
    install_default_drivers();
    let dialect = Dialect::of(url).ok_or(OpenError::BadUrl)?;
    let connections = match dialect {
        Dialect::Postgres => max_connections.max(1),
        Dialect::Sqlite => 1,
    };
    let pool = AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .map_err(OpenError::Unavailable)?;
    let migrator = match dialect {
        Dialect::Postgres => migrations.postgres,
        Dialect::Sqlite => migrations.sqlite,
    };
    migrator.run(&pool).await.map_err(OpenError::Migrations)?;
    info!(database = what, ?dialect, connections, "database ready");
    Ok((pool, dialect))
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn a_url_names_its_dialect() {
        assert_eq!(Dialect::of("postgres://u@h/db"), Some(Dialect::Postgres));
        assert_eq!(Dialect::of("postgresql://u@h/db"), Some(Dialect::Postgres));
        assert_eq!(Dialect::of("sqlite://x.db?mode=rwc"), Some(Dialect::Sqlite));
        assert_eq!(Dialect::of("mysql://u@h/db"), None);
    }
}
