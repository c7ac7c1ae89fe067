//! Fresh databases and a gold server on port 0.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use sqlx::{Connection, Executor, postgres::PgConnection};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warren_gold::{GoldSettings, Store};

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

fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A database that exists for one test.
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

    pub async fn store(&self) -> Store {
        Store::connect(&self.url, 16).await.unwrap()
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

/// A gold server on 127.0.0.1:0; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Server {
    pub async fn start(store: Store) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let signal = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            warren_gold::serve(listener, store, &GoldSettings::default(), signal)
                .await
                .unwrap();
        });
        Server { addr, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Runs the scenario `$name(Db)` once per database.
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
