//! Fresh databases, and config-svc (gRPC and the admin page) on port 0.

use std::{net::SocketAddr, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, transport::Channel};
use warren_config::{ConfigService, ConfigSettings, Hub, Store, web::Web};
use warren_proto::config::config_client::ConfigClient;

pub(crate) use warren_test_support::{Db, TestDb};

pub(crate) const TOKEN: &str = "test-admin-token";

/// config-svc serving one database; stops when dropped.
pub(crate) struct Server {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub store: Store,
    stop: CancellationToken,
}

impl Server {
    pub(crate) async fn start(url: &str) -> Server {
        Server::start_with(
            url,
            "127.0.0.1:0".parse().unwrap(),
            ConfigSettings::default(),
        )
        .await
    }

    /// On a given gRPC address (to come back on the same one), with
    /// `settings` for the admin page.
    pub(crate) async fn start_with(
        url: &str,
        addr: SocketAddr,
        settings: ConfigSettings,
    ) -> Server {
        let store = Store::connect(url, 4).await.unwrap();
        warren_config::seed(&store).await.unwrap();
        let hub = Hub::new(&store).await.unwrap();
        let stop = CancellationToken::new();
        let listener = bind_retrying(addr).await;
        let addr = listener.local_addr().unwrap();
        let service = ConfigService::new(store.clone(), hub.clone(), TOKEN);
        let signal = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let listener = warren_kit::grpc::Listener::new(listener, None).unwrap();
            warren_config::serve_grpc(listener, service, &Default::default(), signal)
                .await
                .unwrap();
        });
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = admin_listener.local_addr().unwrap();
        let web = Web::new(store.clone(), hub.clone(), &settings).unwrap();
        let signal = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let admin_listener = warren_http::Listener::new(admin_listener, None).unwrap();
            warren_config::web::serve(admin_listener, web, signal)
                .await
                .unwrap();
        });
        let (poll_store, poll_stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = hub.poll(poll_store) => {}
                () = poll_stop.cancelled() => {}
            }
        });
        Server {
            addr,
            admin,
            store,
            stop,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn page(&self) -> String {
        format!("http://{}", self.admin)
    }

    pub(crate) async fn client(&self) -> ConfigClient<Channel> {
        ConfigClient::connect(self.url()).await.unwrap()
    }

    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn bind_retrying(addr: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("cannot bind {addr}");
}

/// A request carrying the admin token.
pub(crate) fn authed<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    r
}
