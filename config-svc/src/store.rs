//! config-svc's own storage (SQLite by default, PostgreSQL with
//! `--database`), through sqlx's `Any` driver. The game database is gold's
//! alone; nothing here touches it.
//!
//! A publish is one transaction: the document row is locked (PostgreSQL) or
//! the single connection serializes it (SQLite), the next version is
//! written, and the audit row with the diff goes in with it — so the history
//! and the audit log can never disagree.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::{AnyPool, Row, any::AnyRow, migrate::Migrator};
use tracing::info;
use warren_proto::config::{AuditEntry, Document, DocumentInfo, VersionInfo};

use crate::{ConfigError, schema};

mod staff;

pub use staff::StaffSession;

static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

pub use warren_db::Dialect;

static MIGRATIONS: warren_db::Migrations = warren_db::Migrations {
    postgres: &POSTGRES,
    sqlite: &SQLITE,
};

pub(crate) fn now_ms() -> i64 {
    warren_proto::time::unix_ms() as i64
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

fn document(row: &AnyRow) -> Result<Document, sqlx::Error> {
    Ok(Document {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        body: row.try_get("body")?,
        author: row.try_get("author")?,
        published_at_ms: row.try_get("published_at_ms")?,
        comment: row.try_get("comment")?,
    })
}

/// What a publish does besides writing the version.
enum Action<'a> {
    Publish { expected: Option<i64> },
    Rollback { from: i64 },
    Create { schema: Option<&'a str> },
}

impl Store {
    /// Connects and runs the embedded migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, ConfigError> {
        let (pool, dialect) = warren_db::open("config-svc", url, max_connections, &MIGRATIONS)
            .await
            .map_err(|e| match e {
                warren_db::OpenError::BadUrl => ConfigError::BadRequest(format!("config: {e}")),
                warren_db::OpenError::Unavailable(e) => ConfigError::Unavailable(e),
                warren_db::OpenError::Migrations(e) => {
                    ConfigError::Internal(format!("migrations: {e}"))
                }
            })?;
        Ok(Store { pool, dialect })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Every document with its latest version, by name.
    pub async fn list(&self) -> Result<Vec<DocumentInfo>, ConfigError> {
        let rows = sqlx::query(
            "SELECT d.name, d.latest, d.schema, v.author, v.published_at_ms \
             FROM config_documents d JOIN config_versions v ON v.name = d.name AND v.version = d.latest \
             ORDER BY d.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DocumentInfo {
                    name: r.try_get("name")?,
                    version: r.try_get("latest")?,
                    author: r.try_get("author")?,
                    published_at_ms: r.try_get("published_at_ms")?,
                    has_schema: r.try_get::<Option<String>, _>("schema")?.is_some(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The latest version number of every document.
    pub(crate) async fn latest_versions(&self) -> Result<BTreeMap<String, i64>, ConfigError> {
        let rows = sqlx::query("SELECT name, latest FROM config_documents WHERE latest > 0")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("latest")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// A document at `version`, or its latest.
    pub async fn get(&self, name: &str, version: Option<i64>) -> Result<Document, ConfigError> {
        schema::check_name(name)?;
        let row = match version {
            Some(v) => {
                sqlx::query("SELECT * FROM config_versions WHERE name = $1 AND version = $2")
                    .bind(name)
                    .bind(v)
                    .fetch_optional(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(
                    "SELECT v.* FROM config_versions v JOIN config_documents d \
                     ON v.name = d.name AND v.version = d.latest WHERE d.name = $1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        match row {
            Some(r) => Ok(document(&r)?),
            None => Err(ConfigError::NotFound(match version {
                Some(v) => format!("document {name:?} has no version {v}"),
                None => format!("no document named {name:?}"),
            })),
        }
    }

    /// A document's versions, newest first.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, ConfigError> {
        schema::check_name(name)?;
        let rows = sqlx::query(
            "SELECT version, author, published_at_ms, comment FROM config_versions \
             WHERE name = $1 ORDER BY version DESC",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(ConfigError::NotFound(format!("no document named {name:?}")));
        }
        rows.iter()
            .map(|r| {
                Ok(VersionInfo {
                    version: r.try_get("version")?,
                    author: r.try_get("author")?,
                    published_at_ms: r.try_get("published_at_ms")?,
                    comment: r.try_get("comment")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The document's schema, if it has one.
    pub async fn schema(&self, name: &str) -> Result<Option<String>, ConfigError> {
        schema::check_name(name)?;
        let row = sqlx::query("SELECT schema FROM config_documents WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(r.try_get("schema")?),
            None => Err(ConfigError::NotFound(format!("no document named {name:?}"))),
        }
    }

    /// Checks `body` as a publish would, without publishing: the parsed
    /// value and its canonical text.
    pub async fn check(&self, name: &str, body: &str) -> Result<(Value, String), ConfigError> {
        schema::check_name(name)?;
        let value = schema::parse("document", body)?;
        let schema_text = match self.schema(name).await {
            Ok(s) => s,
            Err(ConfigError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        if let Some(s) = schema_text {
            schema::validate(&schema::parse("schema", &s)?, &value)?;
        }
        let text = schema::canonical(&value);
        Ok((value, text))
    }

    /// Publishes `body` as the next version of `name` (created if new).
    pub async fn publish(
        &self,
        name: &str,
        body: &str,
        author: &str,
        comment: &str,
        expected: Option<i64>,
    ) -> Result<Document, ConfigError> {
        self.write_version(name, body, author, comment, Action::Publish { expected })
            .await
    }

    /// Publishes version `to`'s body again, as a new version.
    pub async fn rollback(
        &self,
        name: &str,
        to: i64,
        author: &str,
    ) -> Result<Document, ConfigError> {
        let old = self.get(name, Some(to)).await?;
        let latest = self.get(name, None).await?;
        if to == latest.version {
            return Err(ConfigError::BadRequest(format!(
                "version {to} is already the live version of {name:?}"
            )));
        }
        let comment = format!("rollback to version {to}");
        self.write_version(
            name,
            &old.body,
            author,
            &comment,
            Action::Rollback { from: to },
        )
        .await
    }

    /// Creates document `name` with its first version and, optionally, a
    /// schema (which the body must match). Conflict if it exists.
    pub async fn create(
        &self,
        name: &str,
        schema_text: Option<&str>,
        body: &str,
        author: &str,
    ) -> Result<Document, ConfigError> {
        let schema_text = match schema_text {
            Some(s) => {
                let value = schema::parse("schema", s)?;
                schema::compile(&value)?;
                Some(schema::canonical(&value))
            }
            None => None,
        };
        self.write_version(
            name,
            body,
            author,
            "first version",
            Action::Create {
                schema: schema_text.as_deref(),
            },
        )
        .await
    }

    /// Creates `name` with `schema` and `body` if there is no such
    /// document yet; returns whether it did.
    pub async fn seed(
        &self,
        name: &str,
        schema_text: &str,
        body: &str,
    ) -> Result<bool, ConfigError> {
        match self.create(name, Some(schema_text), body, "system").await {
            Ok(doc) => {
                info!(
                    name,
                    version = doc.version,
                    "config document created from the built-in seed"
                );
                Ok(true)
            }
            Err(ConfigError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // Long: one publish is one transaction (lock, validate, write, audit), read top to bottom.
    async fn write_version(
        &self,
        name: &str,
        body: &str,
        author: &str,
        comment: &str,
        action: Action<'_>,
    ) -> Result<Document, ConfigError> {
        schema::check_name(name)?;
        let author = author.trim();
        if author.is_empty() || author.len() > 128 {
            return Err(ConfigError::BadRequest(
                "the author must be 1 to 128 bytes".into(),
            ));
        }
        if comment.len() > 1024 {
            return Err(ConfigError::BadRequest(
                "the comment must be at most 1024 bytes".into(),
            ));
        }
        let value = schema::parse("document", body)?;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let created = sqlx::query(
            "INSERT INTO config_documents (name, schema, latest, created_at_ms) VALUES ($1, $2, 0, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(match action {
            Action::Create { schema } => schema,
            _ => None,
        })
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let lock = match self.dialect {
            Dialect::Postgres => {
                "SELECT schema, latest FROM config_documents WHERE name = $1 FOR UPDATE"
            }
            Dialect::Sqlite => "SELECT schema, latest FROM config_documents WHERE name = $1",
        };
        let row = sqlx::query(lock).bind(name).fetch_one(&mut *tx).await?;
        let schema_text: Option<String> = row.try_get("schema")?;
        let latest: i64 = row.try_get("latest")?;
        if matches!(action, Action::Create { .. }) && !created {
            return Err(ConfigError::Conflict(format!(
                "a document named {name:?} already exists"
            )));
        }
        if let Action::Publish { expected: Some(e) } = action
            && e != latest
        {
            return Err(ConfigError::Conflict(format!(
                "{name:?} changed while you were editing it: you started from version {e}, \
                 the live version is now {latest}. Reload to see it."
            )));
        }
        if let Some(s) = &schema_text {
            schema::validate(&schema::parse("schema", s)?, &value)?;
        }
        let text = schema::canonical(&value);
        let previous: String = if latest > 0 {
            sqlx::query_scalar("SELECT body FROM config_versions WHERE name = $1 AND version = $2")
                .bind(name)
                .bind(latest)
                .fetch_one(&mut *tx)
                .await?
        } else {
            String::new()
        };
        if latest > 0 && previous == text {
            return Err(ConfigError::BadRequest(format!(
                "nothing to publish: this is the same as the live version {latest}"
            )));
        }
        let version = latest + 1;
        sqlx::query(
            "INSERT INTO config_versions (name, version, body, author, comment, published_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(name)
        .bind(version)
        .bind(&text)
        .bind(author)
        .bind(comment)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE config_documents SET latest = $1 WHERE name = $2")
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let (kind, from_label) = match action {
            Action::Rollback { from } => (
                "rollback",
                format!("{name} v{latest} (rolled back to v{from})"),
            ),
            _ if created => ("create", "(new document)".to_owned()),
            _ => ("publish", format!("{name} v{latest}")),
        };
        let change =
            schema::unified_diff(&previous, &text, &from_label, &format!("{name} v{version}"));
        Self::audit_row(&mut tx, now, author, kind, name, latest, version, &change).await?;
        tx.commit().await?;
        info!(name, version, author, action = kind, "config published");
        Ok(Document {
            name: name.to_owned(),
            version,
            body: text,
            author: author.to_owned(),
            published_at_ms: now,
            comment: comment.to_owned(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn audit_row(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        at_ms: i64,
        actor: &str,
        action: &str,
        name: &str,
        from: i64,
        to: i64,
        change: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO config_audit (at_ms, actor, action, name, from_version, to_version, change) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(at_ms)
        .bind(actor)
        .bind(action)
        .bind(name)
        .bind(from)
        .bind(to)
        .bind(change)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Sets (`Some`) or clears (`None`) a document's schema. The live
    /// version must validate against the new schema.
    pub async fn set_schema(
        &self,
        name: &str,
        schema_text: Option<&str>,
        author: &str,
    ) -> Result<(), ConfigError> {
        schema::check_name(name)?;
        let canonical = match schema_text {
            Some(s) => {
                let value = schema::parse("schema", s)?;
                schema::compile(&value)?;
                Some(schema::canonical(&value))
            }
            None => None,
        };
        let live = self.get(name, None).await?;
        if let Some(s) = &canonical {
            let value = schema::parse("schema", s)?;
            let body = schema::parse("document", &live.body)?;
            schema::validate(&value, &body).map_err(|e| match e {
                ConfigError::Invalid(p) => ConfigError::Invalid(
                    std::iter::once(format!(
                        "the live version {} does not match this schema:",
                        live.version
                    ))
                    .chain(p)
                    .collect(),
                ),
                other => other,
            })?;
        }
        let mut tx = self.pool.begin().await?;
        let old: Option<String> =
            sqlx::query_scalar("SELECT schema FROM config_documents WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("UPDATE config_documents SET schema = $1 WHERE name = $2")
            .bind(canonical.as_deref())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let change = schema::unified_diff(
            old.as_deref().unwrap_or(""),
            canonical.as_deref().unwrap_or(""),
            &format!("{name} schema (before)"),
            &format!("{name} schema (after)"),
        );
        Self::audit_row(
            &mut tx,
            now_ms(),
            author,
            "schema",
            name,
            live.version,
            live.version,
            &change,
        )
        .await?;
        tx.commit().await?;
        info!(name, author, "config schema changed");
        Ok(())
    }

    /// The audit log, newest first; `name` filters it to one document.
    pub async fn audit(
        &self,
        name: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, ConfigError> {
        let limit = i64::from(limit.clamp(1, 1000));
        let rows = match name {
            Some(n) => {
                schema::check_name(n)?;
                sqlx::query("SELECT * FROM config_audit WHERE name = $1 ORDER BY id DESC LIMIT $2")
                    .bind(n)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM config_audit ORDER BY id DESC LIMIT $1")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at_ms: r.try_get("at_ms")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    name: r.try_get("name")?,
                    from_version: r.try_get("from_version")?,
                    to_version: r.try_get("to_version")?,
                    change: r.try_get("change")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
