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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let signal = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let listener = warren_kit::grpc::Listener::new(listener, None).unwrap();
            warren_gold::run(listener, store, &GoldSettings::default(), signal)
                .await
                .unwrap();
        });
        Server { addr, stop }
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
