//! Forged tokens never reach the game: each is refused with `unauthorized`
//! and the socket closed, before any Connect event is published.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ed25519_dalek::{
    SigningKey,
    pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use warren_proto::cmd;

use crate::helpers::{Harness, now, start};

fn signed(h: &Harness, claims: &Value) -> String {
    encode(&Header::new(Algorithm::EdDSA), claims, &h.signing).unwrap()
}

fn good_claims() -> Value {
    json!({"sub": "1", "exp": now() + 600, "iat": now(), "iss": "warren", "aud": "warren"})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn forged(h: &Harness) -> Vec<(&'static str, String)> {
    let good = good_claims();
    let payload = B64.encode(good.to_string());
    let other_key = {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        EncodingKey::from_ed_pem(pem.as_bytes()).unwrap()
    };
    let valid = signed(h, &good);
    let parts: Vec<&str> = valid.split('.').collect();
    vec![
        (
            "alg none",
            format!("{}.{payload}.", B64.encode(r#"{"alg":"none","typ":"JWT"}"#)),
        ),
        (
            "HS256 signed with the public key",
            encode(
                &Header::new(Algorithm::HS256),
                &good,
                &EncodingKey::from_secret(h.public_pem.as_bytes()),
            )
            .unwrap(),
        ),
        (
            "expired beyond the leeway",
            signed(h, &with(good.clone(), "exp", json!(now() - 3600))),
        ),
        (
            "exp a string",
            signed(
                h,
                &with(good.clone(), "exp", json!((now() + 600).to_string())),
            ),
        ),
        (
            "nbf a string",
            signed(h, &with(good.clone(), "nbf", json!("0"))),
        ),
        (
            "not valid before an hour from now",
            signed(h, &with(good.clone(), "nbf", json!(now() + 3600))),
        ),
        ("no iss", signed(h, &without(good.clone(), "iss"))),
        (
            "a foreign iss",
            signed(h, &with(good.clone(), "iss", json!("someone-else"))),
        ),
        ("no aud", signed(h, &without(good.clone(), "aud"))),
        (
            "a foreign aud",
            signed(h, &with(good.clone(), "aud", json!("another-game"))),
        ),
        ("no sub", signed(h, &without(good.clone(), "sub"))),
        ("no exp", signed(h, &without(good.clone(), "exp"))),
        (
            "a sub that is not a uid",
            signed(h, &with(good.clone(), "sub", json!("admin"))),
        ),
        (
            "a tampered payload",
            format!(
                "{}.{}.{}",
                parts[0],
                B64.encode(with(good.clone(), "sub", json!("2")).to_string()),
                parts[2]
            ),
        ),
        (
            "a token from another key",
            encode(&Header::new(Algorithm::EdDSA), &good, &other_key).unwrap(),
        ),
        ("garbage", "not-a-token".into()),
        ("empty", String::new()),
    ]
}

#[tokio::test]
async fn forged_tokens_are_refused_before_any_connect_is_published() {
    let mut h = start().await;
    for (what, token) in forged(&h) {
        let (_ws, reply) = h.try_login(token).await;
        assert_eq!(reply.cmd, cmd::ERROR, "{what}: {reply:?}");
        let code: Value = rmp_serde::from_slice(&reply.body).unwrap();
        assert_eq!(code["code"], "unauthorized", "{what}");
    }
    assert_eq!(h.connector.stats().auth_failures, 17);
    assert_eq!(h.connector.stats().logins, 0);
    // The first socket event the game ever sees is this real login's
    // Connect: `player` fails on any other.
    let _ws = h.player(7).await;
}
