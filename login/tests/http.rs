//! login over real HTTP, with a real gold (SQLite) behind it.

#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warren_connector::TokenVerifier;
use warren_gold::{GoldSettings, Store};
use warren_login::{JwtSettings, LoginSettings, TokenSigner, keys};
use warren_proto::Uid;
use warren_test_support::{Db, TestDb, http::request_http};

struct Stack {
    login: SocketAddr,
    public_pem: String,
    stop: CancellationToken,
    _db: TestDb,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start(gold_reachable: bool) -> Stack {
    let stop = CancellationToken::new();
    let db = TestDb::new(Db::Sqlite).await;
    let gold_url = if gold_reachable {
        let store = Store::connect(&db.url, 1).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let signal = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            warren_gold::run(listener, store, &GoldSettings::default(), signal)
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
        ..LoginSettings::default()
    };
    let signal = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        warren_login::run(listener, &settings, &gold_url, signer, signal)
            .await
            .unwrap();
    });
    Stack {
        login,
        public_pem,
        stop,
        _db: db,
    }
}

/// One request (GET, or POST with `body`); returns the status and the
/// JSON body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let body = (method == "POST").then(|| String::from_utf8(body.to_vec()).unwrap());
    let (status, body) = request_http(addr, path, None, body).await;
    let json = serde_json::from_str(&body);
    (
        status,
        json.unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}")),
    )
}

async fn post(addr: SocketAddr, path: &str, value: Value) -> (u16, Value) {
    http(addr, "POST", path, value.to_string().as_bytes()).await
}

fn error_code(body: &Value) -> &str {
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error shape: {body}"
    );
    e["code"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_get_the_same_uid_per_device_and_a_token_the_connector_accepts() {
    let s = start(true).await;
    let (status, a) = post(s.login, "/v1/guest", json!({"device_id": "phone-1"})).await;
    assert_eq!(status, 200, "{a}");
    let (_, again) = post(s.login, "/v1/guest", json!({"device_id": "phone-1"})).await;
    let (_, other) = post(s.login, "/v1/guest", json!({"device_id": "phone-2"})).await;
    assert_eq!(a["uid"], again["uid"]);
    assert_ne!(a["uid"], other["uid"]);
    let now = keys::unix_now();
    let expires = a["expires_at"].as_u64().unwrap();
    assert!(expires > now + 29 * 24 * 3600 && expires <= now + 30 * 24 * 3600 + 5);

    let jwt = JwtSettings::default();
    let verifier = TokenVerifier::from_ed_pem(
        s.public_pem.as_bytes(),
        &jwt.issuer,
        &jwt.audience,
        jwt.leeway_secs,
    )
    .unwrap();
    let uid = verifier.verify(a["token"].as_str().unwrap()).unwrap();
    assert_eq!(uid, Uid(a["uid"].as_u64().unwrap()));
    // A token from another key is refused by that same connector key.
    let (foreign, _) = keys::generate().unwrap();
    let forged = TokenSigner::from_pem(foreign.as_bytes(), &jwt)
        .unwrap()
        .sign(uid)
        .unwrap()
        .0;
    assert!(verifier.verify(&forged).is_err());

    for bad in [
        json!({"device_id": ""}),
        json!({"device_id": "x".repeat(129)}),
    ] {
        let (status, body) = post(s.login, "/v1/guest", bad).await;
        assert_eq!((status, error_code(&body)), (400, "invalid_device_id"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_login_and_every_refusal_is_clear() {
    let s = start(true).await;
    let creds = json!({"username": "alice", "password": "correct horse"});
    let (status, reg) = post(s.login, "/v1/register", creds.clone()).await;
    assert_eq!(status, 201, "{reg}");
    let (status, body) = post(s.login, "/v1/register", creds.clone()).await;
    assert_eq!((status, error_code(&body)), (409, "username_taken"));
    let (status, logged) = post(s.login, "/v1/login", creds).await;
    assert_eq!(status, 200, "{logged}");
    assert_eq!(logged["uid"], reg["uid"]);

    let (status, wrong) = post(
        s.login,
        "/v1/login",
        json!({"username": "alice", "password": "wrong horse"}),
    )
    .await;
    let (status2, nobody) = post(
        s.login,
        "/v1/login",
        json!({"username": "nobody", "password": "whatever1"}),
    )
    .await;
    assert_eq!((status, status2), (401, 401));
    // The same answer whichever part was wrong.
    assert_eq!(wrong, nobody);
    assert_eq!(error_code(&wrong), "invalid_credentials");

    for (body, code) in [
        (
            json!({"username": "al", "password": "long enough"}),
            "invalid_username",
        ),
        (
            json!({"username": "bad name", "password": "long enough"}),
            "invalid_username",
        ),
        (
            json!({"username": "bob", "password": "short"}),
            "weak_password",
        ),
    ] {
        let (status, reply) = post(s.login, "/v1/register", body).await;
        assert_eq!((status, error_code(&reply)), (400, code));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_get_json_errors() {
    let s = start(true).await;
    let (status, body) = http(s.login, "POST", "/v1/guest", b"{not json").await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"));
    let (status, body) = http(s.login, "POST", "/v1/guest", b"{\"device\": \"x\"}").await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"));
    let (status, body) = http(s.login, "POST", "/v1/login", b"").await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"));
    let huge = format!("{{\"device_id\": \"{}\"}}", "x".repeat(64 * 1024));
    let (status, body) = http(s.login, "POST", "/v1/guest", huge.as_bytes()).await;
    assert_eq!((status, error_code(&body)), (413, "body_too_large"));
    let (status, body) = http(s.login, "GET", "/v1/guest", b"").await;
    assert_eq!((status, error_code(&body)), (405, "method_not_allowed"));
    let (status, body) = http(s.login, "POST", "/v2/nothing", b"{}").await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gold_down_is_503_not_a_hang() {
    let s = start(false).await;
    let (status, body) = post(s.login, "/v1/guest", json!({"device_id": "d"})).await;
    assert_eq!((status, error_code(&body)), (503, "unavailable"));
}
