//! A login with a real gold (SQLite) behind it, and HTTP calls to it.

use std::{net::SocketAddr, time::Duration};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warren_gold::{GoldSettings, Store};
use warren_login::{JwtSettings, LoginSettings, TokenSigner, keys};
use warren_test_support::{Db, TestDb, http::request_http};

/// The operators' token of the login under test (its `/metrics`).
pub(crate) const METRICS_TOKEN: &str = "metrics-token";

pub(crate) struct Stack {
    pub(crate) login: SocketAddr,
    pub(crate) public_pem: String,
    stop: CancellationToken,
    pub(crate) db: TestDb,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// login with its default settings; gold reachable or not.
pub(crate) async fn start(gold_reachable: bool) -> Stack {
    start_with(gold_reachable, LoginSettings::default()).await
}

pub(crate) async fn start_with(gold_reachable: bool, settings: LoginSettings) -> Stack {
    let stop = CancellationToken::new();
    let db = TestDb::new(Db::Sqlite).await;
    let gold_url = if gold_reachable {
        let store = Store::connect(&db.url, 1).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let signal = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            let listener = warren_kit::grpc::Listener::new(listener, None).unwrap();
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
        format!("http://{addr}")
    } else {
        // Nothing listens there.
        let unused = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        format!("http://{unused}")
    };
    let (private, public_pem) = keys::generate().unwrap();
    let signer = TokenSigner::from_pem(private.as_bytes(), &JwtSettings::default()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let login = listener.local_addr().unwrap();
    let settings = LoginSettings {
        gold_timeout_ms: Duration::from_millis(2_000),
        ..settings
    };
    let signal = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        let listener = warren_http::Listener::new(listener, None).unwrap();
        let timeout = settings.gold_timeout_ms;
        let channel = warren_kit::grpc::lazy(&gold_url, &Default::default(), timeout).unwrap();
        let gold = warren_proto::gold::Gold::new(channel, timeout);
        warren_login::run(
            listener,
            &settings,
            gold,
            signer,
            None,
            Some(METRICS_TOKEN.to_owned()),
            signal,
        )
        .await
        .unwrap();
    });
    Stack {
        login,
        public_pem,
        stop,
        db,
    }
}

/// One request (GET, or POST with `body`); returns the status and the
/// JSON body.
pub(crate) async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let body = (method == "POST").then(|| String::from_utf8(body.to_vec()).unwrap());
    let (status, body) = request_http(addr, path, None, body).await;
    let json = serde_json::from_str(&body);
    (
        status,
        json.unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}")),
    )
}

pub(crate) async fn post(addr: SocketAddr, path: &str, value: Value) -> (u16, Value) {
    http(addr, "POST", path, value.to_string().as_bytes()).await
}

pub(crate) fn error_code(body: &Value) -> &str {
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error shape: {body}"
    );
    e["code"].as_str().unwrap()
}

impl Stack {
    /// A second handle on gold's database, for what no HTTP route does
    /// (bans).
    pub(crate) async fn store(&self) -> Store {
        Store::connect(&self.db.url, 1).await.unwrap()
    }
}
