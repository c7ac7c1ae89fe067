//! gold over TLS: with a certificate, off loopback, it serves TLS, and
//! with `tls.client_ca` only to clients whose certificate that authority
//! signed (mutual TLS between Warren's processes); on loopback it stays
//! plain text.

use std::time::Duration;

use warren_kit::tls::{Tls, TlsSettings};
use warren_proto::gold::{BalanceRequest, Gold};
use warren_test_support::{
    TempDir,
    tls::{make_ca, make_signed},
};

use crate::helpers::{Db, OpenStore, Server, TestDb};

type Pair = (std::path::PathBuf, std::path::PathBuf);

/// Asks gold at `url` for the balance of a player who does not exist,
/// as a client with `tls`: `unknown_user` means gold answered.
async fn balance(url: &str, tls: &TlsSettings) -> Result<i64, tonic::Status> {
    let timeout = Duration::from_secs(10);
    let channel = warren_kit::grpc::lazy(url, tls, timeout).unwrap();
    let gold = Gold::new(channel, timeout);
    let request = gold.request(BalanceRequest {
        uid: 1,
        currency: "gold".into(),
    });
    Ok(gold.client().balance(request).await?.into_inner().balance)
}

/// Whether the call failed in the connection, not in gold: what its
/// callers hear as `unavailable`.
fn transport_failed(status: &tonic::Status) -> bool {
    let failed = std::error::Error::source(status)
        .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some());
    failed && warren_proto::gold::failure(status) == warren_proto::gold::Failure::Unavailable
}

/// A client trusting `ca`, showing `identity` if any.
fn client(ca: &Pair, identity: Option<&Pair>) -> TlsSettings {
    TlsSettings {
        ca: Some(ca.0.clone()),
        client_cert: identity.map(|i| i.0.clone()),
        client_key: identity.map(|i| i.1.clone()),
        ..TlsSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_lets_in_only_clients_the_authority_signed() {
    let dir = TempDir::new("warren-gold-tls");
    let ca = make_ca(dir.path(), "ca", "warren-test-ca");
    let gold_cert = make_signed(dir.path(), "gold", "gold", &ca);
    let login_cert = make_signed(dir.path(), "login", "login", &ca);
    let rogue_ca = make_ca(dir.path(), "rogue-ca", "rogue-ca");
    let rogue_cert = make_signed(dir.path(), "rogue", "rogue", &rogue_ca);
    let settings = TlsSettings {
        cert: Some(gold_cert.0.clone()),
        key: Some(gold_cert.1.clone()),
        client_ca: Some(ca.0.clone()),
        ..TlsSettings::default()
    };
    let tls = Tls::load(&settings).unwrap().unwrap();
    let db = TestDb::new(Db::Sqlite).await;
    // Every address: not loopback, so TLS.
    let (server, serves_tls) = Server::start_on(db.store().await, "0.0.0.0:0", Some(&tls)).await;
    assert!(serves_tls);
    let port = server.addr.port();
    let url = format!("https://localhost:{port}");

    // A client the authority signed gets in (gold answers), by name and
    // by address.
    let by_ip = format!("https://127.0.0.1:{port}");
    for at in [&url, &by_ip] {
        let answer = balance(at, &client(&ca, Some(&login_cert))).await;
        assert_eq!(answer.unwrap_err().code(), tonic::Code::NotFound, "{at}");
    }

    // Without a certificate, or with one another authority signed: out.
    let refused = [
        ("no client certificate", client(&ca, None)),
        ("another authority's", client(&ca, Some(&rogue_cert))),
        // And a client that does not trust gold's certificate leaves.
        ("gold untrusted", client(&rogue_ca, Some(&login_cert))),
    ];
    for (what, tls) in refused {
        // Refused in the handshake (in TLS 1.3 the client may learn it
        // only on its first read): the connection fails, gold never
        // answers.
        let status = balance(&url, &tls).await.unwrap_err();
        assert!(transport_failed(&status), "{what}: {status}");
    }
    // Plain text to a TLS listener gets nothing either.
    let plain = format!("http://localhost:{port}");
    let status = balance(&plain, &TlsSettings::default()).await.unwrap_err();
    assert!(transport_failed(&status), "{status}");
    // An https:// URL with nothing to trust says what to set.
    let status = balance(&url, &TlsSettings::default()).await.unwrap_err();
    assert!(status.to_string().contains("tls.ca"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_gold_serves_plain_text_whatever_the_certificate() {
    let dir = TempDir::new("warren-gold-tls");
    let ca = make_ca(dir.path(), "ca", "warren-test-ca");
    let gold_cert = make_signed(dir.path(), "gold", "gold", &ca);
    let settings = TlsSettings {
        cert: Some(gold_cert.0),
        key: Some(gold_cert.1),
        client_ca: Some(ca.0),
        ..TlsSettings::default()
    };
    let tls = Tls::load(&settings).unwrap().unwrap();
    let db = TestDb::new(Db::Sqlite).await;
    let (server, serves_tls) = Server::start_on(db.store().await, "127.0.0.1:0", Some(&tls)).await;
    assert!(!serves_tls);
    assert_eq!(
        balance(&server.url(), &TlsSettings::default())
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
}
