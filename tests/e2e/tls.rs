//! TLS in Warren itself: `wss://` on the connector and HTTPS on login with
//! a certificate from the settings, a wrong hostname refused, the
//! certificate swapped under a live socket, a logout forwarded to the
//! game's admin endpoint over HTTPS, plain text refused off loopback, and
//! the full stack's gRPC (gold, config-svc) over mutual TLS.

use std::path::Path;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message};
use warren_proto::{Frame, LoginReply, cmd};
use warren_test_support::{
    TempDir,
    stack::{STEP, eventually},
    tls::{cert_der, client_config, connect, make_ca, make_cert, make_signed, peer_cert},
};

use crate::helpers::{BusKind, KickBody, Stack, body, decode};

/// `POST path` with a JSON body over an open connection; the JSON answer
/// of a 200.
async fn post_json(io: impl AsyncRead + AsyncWrite + Unpin, path: &str, json: &str) -> Value {
    let response = post_any(io, path, json).await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap()
}

/// `POST path` with a JSON body over an open connection; the whole
/// response.
async fn post_any(mut io: impl AsyncRead + AsyncWrite + Unpin, path: &str, json: &str) -> String {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    io.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    io.read_to_string(&mut response).await.unwrap();
    response
}

/// The next binary frame on `ws`.
async fn next_frame(ws: &mut WebSocketStream<impl AsyncRead + AsyncWrite + Unpin>) -> Frame {
    loop {
        if let Message::Binary(bytes) = ws.next().await.unwrap().unwrap() {
            return Frame::decode(&bytes).unwrap();
        }
    }
}

/// Sends a frame on `ws`; the next binary frame.
async fn exchange(
    ws: &mut WebSocketStream<impl AsyncRead + AsyncWrite + Unpin>,
    seq: u64,
    cmd: u32,
    payload: Vec<u8>,
) -> Frame {
    let frame = Frame::new(seq, cmd, bytes::Bytes::from(payload)).encode();
    ws.send(Message::Binary(frame.into())).await.unwrap();
    next_frame(ws).await
}

/// Writes `from`'s certificate and key over `to`'s, each file replaced at
/// once (renamed into place), the key first.
fn swap(
    from: &(std::path::PathBuf, std::path::PathBuf),
    to: &(std::path::PathBuf, std::path::PathBuf),
) {
    for (src, dst) in [(&from.1, &to.1), (&from.0, &to.0)] {
        let tmp = dst.with_extension("new");
        std::fs::copy(src, &tmp).unwrap();
        std::fs::rename(&tmp, dst).unwrap();
    }
}

fn joined(dir: &Path, a: &Path, b: &Path) -> std::path::PathBuf {
    let both = dir.join("both.pem");
    let pem = std::fs::read_to_string(a).unwrap() + &std::fs::read_to_string(b).unwrap();
    std::fs::write(&both, pem).unwrap();
    both
}

// Long: one connection's story, told in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_and_https_serve_and_a_swapped_certificate_reaches_new_connections_only() {
    let dir = TempDir::new("warren-tls");
    let live = make_cert(dir.path(), "live", "warren-first");
    let first = cert_der(&live.0);
    let (cert, key) = (live.0.display().to_string(), live.1.display().to_string());
    let env = [
        ("WARREN_TLS__CERT", cert.as_str()),
        ("WARREN_TLS__KEY", key.as_str()),
    ];
    let stack = Stack::start_with(BusKind::InProcess, &env).await;
    assert!(stack.url.starts_with("wss://"), "{}", stack.url);
    let trusts_first = client_config(&live.0);

    // HTTPS: a guest token from login.
    let login = stack.login.unwrap();
    let io = connect(login, "localhost", trusts_first.clone())
        .await
        .unwrap();
    let reply = post_json(io, "/v1/guest", r#"{"device_id": "tls-phone"}"#).await;
    let token = reply["token"].as_str().unwrap().to_owned();
    let refresh = reply["refresh_token"].as_str().unwrap().to_owned();

    // wss: log in and echo.
    let io = connect(stack.addr, "localhost", trusts_first.clone())
        .await
        .unwrap();
    assert_eq!(peer_cert(&io), first);
    let (mut ws, _) = tokio_tungstenite::client_async(stack.url.clone(), io)
        .await
        .unwrap();
    let hello = exchange(
        &mut ws,
        1,
        cmd::LOGIN,
        body(&serde_json::json!({"token": token})),
    )
    .await;
    assert_eq!(hello.cmd, cmd::LOGIN, "{hello:?}");
    assert_eq!(
        exchange(&mut ws, 2, cmd::ECHO, b"\x80".to_vec())
            .await
            .body
            .as_ref(),
        b"\x80"
    );

    // The staff's config page is HTTPS too, its cookies marked secure.
    let page = stack
        .config_page
        .expect("the embedded default runs config-svc");
    let mut io = connect(page, "localhost", trusts_first.clone())
        .await
        .unwrap();
    io.write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    io.read_to_string(&mut response).await.unwrap();
    let (head, _) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(cookie.contains("Secure"), "{cookie}");

    // Every listener of the process shakes hands under the certificate,
    // which names localhost and 127.0.0.1, nothing else.
    let listeners = [
        ("connector", stack.addr),
        ("login", login),
        ("call gateway", stack.http),
        ("game admin", stack.admin),
        ("connector admin", stack.connector_admins[0]),
        ("config page", page),
    ];
    for (what, addr) in listeners {
        let io = connect(addr, "localhost", trusts_first.clone()).await;
        assert_eq!(peer_cert(&io.unwrap()), first, "{what}");
        let wrong = connect(addr, "wrong.example", trusts_first.clone()).await;
        assert!(wrong.is_err(), "{what} passed as wrong.example");
    }

    // A renewed certificate replaces the files: new connections get it...
    let next = make_cert(dir.path(), "next", "warren-second");
    let second = cert_der(&next.0);
    assert_ne!(first, second);
    let trusts_both = client_config(&joined(dir.path(), &live.0, &next.0));
    swap(&next, &live);
    eventually("the new certificate in service", async || {
        let io = connect(stack.addr, "localhost", trusts_both.clone())
            .await
            .ok()?;
        (peer_cert(&io) == second).then_some(())
    })
    .await;
    let io = connect(login, "localhost", trusts_both.clone())
        .await
        .unwrap();
    assert_eq!(peer_cert(&io), second);
    // ...and the socket opened before goes on as it was.
    assert_eq!(
        exchange(&mut ws, 3, cmd::ECHO, b"\x81".to_vec())
            .await
            .body
            .as_ref(),
        b"\x81"
    );

    // A logout goes from login to the game's admin endpoint over HTTPS
    // too (trusting the renewed certificate), and kicks the socket.
    let io = connect(login, "localhost", trusts_both.clone())
        .await
        .unwrap();
    let json = format!(r#"{{"refresh_token": "{refresh}"}}"#);
    let reply = post_json(io, "/v1/logout", &json).await;
    assert_eq!(reply["revoked"], true, "{reply}");
    let kick = next_frame(&mut ws).await;
    assert_eq!(kick.cmd, cmd::KICK, "{kick:?}");
    assert_eq!(decode::<KickBody>(&kick).reason, "logged_out");
}

#[test]
fn plain_text_off_loopback_is_refused() {
    let dir = TempDir::new("warren-plain");
    warren_login::keys::write_pair(dir.path()).unwrap();
    let data = dir.path().display().to_string();
    let public = [
        ("WARREN_DATA_DIR", data.as_str()),
        ("WARREN_LOGIN__LISTEN", "0.0.0.0:0"),
    ];
    let (ok, stderr) = Stack::warren_alone(&["login"], &public);
    assert!(!ok);
    assert!(
        stderr.contains("not loopback") && stderr.contains("tls.allow_plain"),
        "{stderr}"
    );
}

// Long: one stack's story, told in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_stack_talks_grpc_over_mutual_tls() {
    let dir = TempDir::new("warren-mtls");
    let ca = make_ca(dir.path(), "ca", "warren-test-ca");
    let cert = make_signed(dir.path(), "warren", "warren", &ca);
    let paths = [&cert.0, &cert.1, &ca.0].map(|p| p.display().to_string());
    // gold and config-svc on every address (so TLS), clients of either
    // showing the certificate the authority signed.
    let env = [
        ("WARREN_TLS__CERT", paths[0].as_str()),
        ("WARREN_TLS__KEY", paths[1].as_str()),
        ("WARREN_TLS__CA", paths[2].as_str()),
        ("WARREN_TLS__CLIENT_CA", paths[2].as_str()),
        ("WARREN_GOLD__LISTEN", "0.0.0.0:0"),
        ("WARREN_CONFIG_SVC__LISTEN", "0.0.0.0:0"),
        ("WARREN_TLS__ALLOW_PLAIN", "false"),
    ];
    let stack = Stack::start_full_with(BusKind::RabbitMq, &env).await;
    let gold = stack.gold.clone().unwrap();
    assert!(gold.starts_with("https://"), "{gold}");
    let trusts = client_config(&ca.0);

    // login → gold: a guest sign-in.
    let login = stack.login.unwrap();
    let io = connect(login, "localhost", trusts.clone()).await.unwrap();
    let reply = post_json(io, "/v1/guest", r#"{"device_id": "mtls-phone"}"#).await;
    let token = reply["token"].as_str().unwrap().to_owned();

    // wss → game → gold: the wallet's balance.
    let io = connect(stack.addr, "localhost", trusts.clone())
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(stack.url.clone(), io)
        .await
        .unwrap();
    let hello = exchange(
        &mut ws,
        1,
        cmd::LOGIN,
        body(&serde_json::json!({"token": token})),
    )
    .await;
    let uid = decode::<LoginReply>(&hello).uid;
    let balance = exchange(&mut ws, 2, 3001, body(&serde_json::json!({}))).await;
    assert_eq!(balance.cmd, 3001, "{balance:?}");
    let balance: Value = decode(&balance);
    assert_eq!(balance["balance"], 0, "{balance}");

    // game → config-svc: the game watches its documents.
    eventually("the game watching config-svc", async || {
        stack
            .game_log()
            .contains("watching config-svc")
            .then_some(())
    })
    .await;

    // The command line → gold: a ban, then login refuses the player.
    let uid_arg = uid.to_string();
    let (ok, out) = stack.warren_admin("ban", &["--uid", &uid_arg, "--reason", "e2e"]);
    assert!(ok, "warren ban failed: {out}");
    let io = connect(login, "localhost", trusts.clone()).await.unwrap();
    let refused = post_any(io, "/v1/guest", r#"{"device_id": "mtls-phone"}"#).await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");

    // A client without a certificate reaches neither gold nor config-svc.
    let bare = warren_kit::tls::TlsSettings {
        ca: Some(ca.0.clone()),
        ..Default::default()
    };
    let config = format!("https://127.0.0.1:{}", stack.config.unwrap().port());
    for url in [gold, config] {
        let channel = warren_kit::grpc::lazy(&url, &bare, STEP).unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let checked = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await;
        assert!(checked.is_err(), "{url}: {checked:?}");
        // The same with the certificate: serving.
        let channel = warren_kit::grpc::lazy(&url, &signed(&ca, &cert), STEP).unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let checked = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await;
        assert!(checked.is_ok(), "{url}: {checked:?}");
    }
}

/// A client trusting `ca` and showing `cert`.
fn signed(
    ca: &(std::path::PathBuf, std::path::PathBuf),
    cert: &(std::path::PathBuf, std::path::PathBuf),
) -> warren_kit::tls::TlsSettings {
    warren_kit::tls::TlsSettings {
        ca: Some(ca.0.clone()),
        client_cert: Some(cert.0.clone()),
        client_key: Some(cert.1.clone()),
        ..Default::default()
    }
}
