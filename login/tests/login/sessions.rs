//! Sessions over HTTP: refresh rotation and reuse, logout, bans, and the
//! rate limits on every sign-in route.

use serde_json::{Value, json};
use warren_connector::TokenVerifier;
use warren_login::{JwtSettings, LoginSettings};
use warren_proto::Uid;

use crate::helpers::{Stack, error_code, http, post, start, start_with};

async fn guest(s: &Stack, device: &str) -> Value {
    let (status, reply) = post(s.login, "/v1/guest", json!({"device_id": device})).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

async fn refresh(s: &Stack, token: &Value) -> (u16, Value) {
    post(s.login, "/v1/refresh", json!({"refresh_token": token})).await
}

fn verifier(s: &Stack) -> TokenVerifier {
    let jwt = JwtSettings::default();
    TokenVerifier::from_ed_pem(
        s.public_pem.as_bytes(),
        &jwt.issuer,
        &jwt.audience,
        jwt.leeway_secs,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_a_reused_token_ends_the_sign_in() {
    let s = start(true).await;
    let first = guest(&s, "phone").await;
    let (status, second) = refresh(&s, &first["refresh_token"]).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["uid"], first["uid"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let uid = Uid(first["uid"].as_u64().unwrap());
    assert_eq!(
        verifier(&s)
            .verify(second["token"].as_str().unwrap())
            .unwrap(),
        uid
    );
    let (status, third) = refresh(&s, &second["refresh_token"]).await;
    assert_eq!(status, 200, "{third}");
    // The first token again: someone kept a copy. The sign-in ends, so
    // even the newest token is refused.
    let (status, reused) = refresh(&s, &first["refresh_token"]).await;
    assert_eq!((status, error_code(&reused)), (401, "refresh_reused"));
    let (status, ended) = refresh(&s, &third["refresh_token"]).await;
    assert_eq!((status, error_code(&ended)), (401, "invalid_refresh"));
    // Not a token at all; no token.
    let (status, body) = refresh(&s, &json!("nonsense")).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_refresh"));
    let (status, body) = http(s.login, "POST", "/v1/refresh", b"{}").await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"));
    // Another sign-in of the same device is a session of its own.
    let again = guest(&s, "phone").await;
    let (status, _) = refresh(&s, &again["refresh_token"]).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_one_sign_in_or_every_one() {
    let s = start(true).await;
    let phone = guest(&s, "family-device").await;
    let tablet = guest(&s, "family-device").await;
    let logout = |token: &Value, everywhere: bool| {
        let body = json!({"refresh_token": token, "everywhere": everywhere});
        post(s.login, "/v1/logout", body)
    };
    let (status, reply) = logout(&phone["refresh_token"], false).await;
    assert_eq!(
        (status, &reply),
        (200, &json!({"ended": 1, "revoked": false}))
    );
    let (status, body) = refresh(&s, &phone["refresh_token"]).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_refresh"));
    // The tablet's sign-in is untouched.
    let (status, tablet) = refresh(&s, &tablet["refresh_token"]).await;
    assert_eq!(status, 200, "{tablet}");
    let laptop = guest(&s, "family-device").await;
    let (status, reply) = logout(&tablet["refresh_token"], true).await;
    assert_eq!(
        (status, &reply),
        (200, &json!({"ended": 2, "revoked": false}))
    );
    let (status, body) = refresh(&s, &laptop["refresh_token"]).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_refresh"));
    let (status, body) = logout(&tablet["refresh_token"], false).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_refresh"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_player_cannot_sign_in_or_refresh_until_the_ban_is_lifted() {
    let s = start(true).await;
    let creds = json!({"username": "cheater", "password": "aimbot forever"});
    let (status, signed) = post(s.login, "/v1/register", creds.clone()).await;
    assert_eq!(status, 201, "{signed}");
    let device = guest(&s, "cheater-phone").await;
    let store = s.store().await;
    for uid in [&signed["uid"], &device["uid"]] {
        let uid = i64::try_from(uid.as_u64().unwrap()).unwrap();
        store.ban(uid, "aimbot", None, "test").await.unwrap();
    }
    let (status, refused) = post(s.login, "/v1/login", creds.clone()).await;
    assert_eq!((status, error_code(&refused)), (403, "banned"));
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("aimbot") && message.contains("for good"),
        "{message}"
    );
    let (status, refused) = post(s.login, "/v1/guest", json!({"device_id": "cheater-phone"})).await;
    assert_eq!((status, error_code(&refused)), (403, "banned"));
    // The ban ended the sign-ins it found.
    let (status, body) = refresh(&s, &signed["refresh_token"]).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_refresh"));
    // A wrong password still hears only that.
    let wrong = json!({"username": "cheater", "password": "not the one"});
    let (status, body) = post(s.login, "/v1/login", wrong).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_credentials"));

    let uid = i64::try_from(signed["uid"].as_u64().unwrap()).unwrap();
    assert!(store.lift_ban(uid, "test").await.unwrap());
    let (status, back) = post(s.login, "/v1/login", creds).await;
    assert_eq!(status, 200, "{back}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_are_rate_limited_per_account_and_per_address() {
    let s = start_with(
        true,
        LoginSettings {
            unlimited_addresses: Vec::new(),
            address_per_min: 1,
            address_burst: 5,
            account_per_min: 1,
            account_burst: 3,
            ..LoginSettings::default()
        },
    )
    .await;
    let nobody = json!({"username": "nobody", "password": "guess guess"});
    for _ in 0..3 {
        let (status, body) = post(s.login, "/v1/login", nobody.clone()).await;
        assert_eq!((status, error_code(&body)), (401, "invalid_credentials"));
    }
    // The account's allowance is spent, whatever the password.
    let (status, body) = post(s.login, "/v1/login", nobody.clone()).await;
    assert_eq!((status, error_code(&body)), (429, "rate_limited"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("account")
    );
    // Other accounts go on until the address's allowance (every attempt
    // counts, refused ones too) is spent.
    let (status, _) = post(s.login, "/v1/guest", json!({"device_id": "d-1"})).await;
    assert_eq!(status, 200);
    let (status, body) = post(s.login, "/v1/guest", json!({"device_id": "d-2"})).await;
    assert_eq!((status, error_code(&body)), (429, "rate_limited"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("address")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_not_limited_per_address_by_default() {
    let s = start(true).await;
    let burst = LoginSettings::default().address_burst;
    for i in 0..burst + 10 {
        guest(&s, &format!("bot-{i}")).await;
    }
}
