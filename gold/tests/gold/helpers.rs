//! Fresh databases and a gold server on port 0.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warren_gold::{GoldSettings, Store};

pub(crate) use warren_test_support::{Db, TestDb};

/// Opens gold's store on a test database.
pub(crate) trait OpenStore {
    async fn store(&self) -> Store;
}

impl OpenStore for TestDb {
    async fn store(&self) -> Store {
        Store::connect(&self.url, 16).await.unwrap()
    }
}

/// A gold server on 127.0.0.1:0; stops when dropped.
pub(crate) struct Server {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Server {
    pub(crate) async fn start(store: Store) -> Server {
        Self::start_on(store, "127.0.0.1:0", None).await.0
    }

    /// On `addr`, serving `tls` where `warren_kit::grpc::Listener` does
    /// (off loopback); also whether it does.
    pub(crate) async fn start_on(
        store: Store,
        addr: &str,
        tls: Option<&warren_kit::tls::Tls>,
    ) -> (Server, bool) {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = warren_kit::grpc::Listener::new(listener, tls).unwrap();
        let serves_tls = listener.tls().is_some();
        let stop = CancellationToken::new();
        let signal = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            warren_gold::run(
                listener,
                store,
                &GoldSettings::default(),
                &Default::default(),
                signal,
            )
            .await
            .unwrap();
        });
        (Server { addr, stop }, serves_tls)
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
