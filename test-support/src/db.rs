//! Databases that exist for one test: a fresh PostgreSQL database on the
//! local server (dropped afterwards) or a SQLite file (deleted afterwards).
//! Used by the test suites of gold and config-svc.

use std::path::PathBuf;

use sqlx::{Connection, Executor, postgres::PgConnection};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Postgres,
    Sqlite,
}

/// The server the tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("WARREN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A name part of digits and underscores only (PostgreSQL database names
/// are made of it).
fn unique() -> String {
    crate::unique("x")
        .trim_start_matches("x-")
        .replace('-', "_")
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    file: Option<PathBuf>,
}

impl TestDb {
    pub async fn new(db: Db) -> TestDb {
        match db {
            Db::Postgres => {
                let name = format!("warren_test_{}", unique());
                let mut admin = PgConnection::connect(&admin_url())
                    .await
                    .expect("PostgreSQL reachable (scripts/test.sh starts it)");
                // Test-made names only: warren_test_<digits>.
                let sql = sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"));
                admin.execute(sql).await.unwrap();
                admin.close().await.unwrap();
                let base = admin_url();
                let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
                TestDb {
                    url,
                    pg_name: Some(name),
                    file: None,
                }
            }
            Db::Sqlite => {
                let file = std::env::temp_dir().join(format!("warren-test-{}.db", unique()));
                let url = format!("sqlite://{}?mode=rwc", file.display());
                TestDb {
                    url,
                    pg_name: None,
                    file: Some(file),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
                    let sql =
                        sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                    admin.execute(sql).await.unwrap();
                });
            })
            .join()
            .unwrap();
        }
        if let Some(file) = self.file.take() {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}
