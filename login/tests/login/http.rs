//! login over real HTTP, with a real gold (SQLite) behind it.

use serde_json::json;
use warren_connector::TokenVerifier;
use warren_login::{JwtSettings, TokenSigner, keys};
use warren_proto::Uid;

use warren_test_support::http::request_http;

use crate::helpers::{METRICS_TOKEN, error_code, http, post, start};

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
    // An access token for 15 minutes, a refresh token for 30 days.
    let expires = a["expires_at"].as_u64().unwrap();
    assert!(expires > now + 14 * 60 && expires <= now + 15 * 60 + 5);
    let refresh_expires = a["refresh_expires_at"].as_u64().unwrap();
    assert!(refresh_expires > now + 29 * 24 * 3600 && refresh_expires <= now + 30 * 24 * 3600 + 5);

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

/// `/metrics` behind the operators' token: each call counted under its
/// route as taken, refused (4xx) or failed (5xx).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_call_by_route_and_outcome() {
    let stack = start(true).await;
    let (status, _) = post(stack.login, "/v1/guest", json!({"device_id": "metrics-1"})).await;
    assert_eq!(status, 200);
    let (status, _) = post(stack.login, "/v1/login", json!({"username": "nobody"})).await;
    assert!((400..500).contains(&status), "{status}");
    let (status, _) = request_http(stack.login, "/metrics", None, None).await;
    assert_eq!(status, 401, "no token, no metrics");
    let (status, text) = request_http(stack.login, "/metrics", Some(METRICS_TOKEN), None).await;
    assert_eq!(status, 200, "{text}");
    for line in [
        "warren_rpc_calls_total{method=\"/v1/guest\"} 1",
        "warren_rpc_calls_total{method=\"/v1/login\"} 1",
        "warren_rpc_refused_total{method=\"/v1/login\"} 1",
        "warren_rpc_errors_total{method=\"/v1/guest\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}
