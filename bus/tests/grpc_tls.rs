//! The gRPC gateway over mutual TLS: off loopback a gateway and a game
//! with a certificate serve TLS, the game registers over `https://`
//! showing its certificate, and a request and a push go through; a game
//! whose certificate another authority signed cannot register.

#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use warren_bus::{Address, Bus, GrpcBus, GrpcSettings, Message, Subscription, send_and_confirm};
use warren_kit::tls::{Tls, TlsSettings};
use warren_proto::{BusEvent, BusPush, ConnId, ConnectorId, EventKind, PushKind, Target, Uid};
use warren_test_support::{
    TempDir, ports,
    tls::{make_ca, make_signed},
};

type Pair = (std::path::PathBuf, std::path::PathBuf);

fn settings(cert: &Pair, ca: &Pair) -> TlsSettings {
    TlsSettings {
        cert: Some(cert.0.clone()),
        key: Some(cert.1.clone()),
        ca: Some(ca.0.clone()),
        client_ca: Some(ca.0.clone()),
        ..TlsSettings::default()
    }
}

/// A bus's settings on every address (so TLS), with the gateway at
/// `gateway`.
fn bus(gateway: SocketAddr, tls: &TlsSettings) -> GrpcSettings {
    let upstream = SocketAddr::from(([0, 0, 0, 0], ports::unused().port()));
    GrpcSettings {
        gateway: SocketAddr::from(([0, 0, 0, 0], gateway.port())),
        gateways: vec![format!("https://localhost:{}", gateway.port())],
        listen: upstream,
        advertise: format!("https://localhost:{}", upstream.port()),
        lease: Duration::from_secs(1),
        tls: Some(Tls::load(tls).unwrap().unwrap()),
        client_tls: tls.clone(),
        ..GrpcSettings::new()
    }
}

/// The next message of `sub`, within 10 s.
async fn next<T>(sub: &mut Subscription<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a message within 10 s")
        .expect("the subscription is open")
}

fn request(seq: u64) -> BusEvent {
    BusEvent {
        connector: ConnectorId::parse("c1").unwrap(),
        conn: ConnId(7),
        uid: Uid(7),
        kind: EventKind::Message {
            seq,
            cmd: 1001,
            body: Bytes::from_static(b"over tls"),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_registers_and_serves_over_mutual_tls() {
    let dir = TempDir::new("warren-grpc-tls");
    let ca = make_ca(dir.path(), "ca", "warren-test-ca");
    let cert = make_signed(dir.path(), "warren", "warren", &ca);
    let tls = settings(&cert, &ca);
    let gateway_at = ports::unused();
    let gateway: Arc<dyn Bus> = Arc::new(GrpcBus::gateway(bus(gateway_at, &tls)).await.unwrap());
    let mut pushes = gateway
        .subscribe_pushes(&ConnectorId::parse("c1").unwrap())
        .await
        .unwrap();
    let game: Arc<dyn Bus> = Arc::new(GrpcBus::service(bus(gateway_at, &tls)).await.unwrap());
    let mut events = game.subscribe_events().await.unwrap();

    // subscribe_events returned once the gateway took the registration:
    // a request goes through.
    send_and_confirm(&*gateway, Address::Shard(0), Message::Event(request(1)))
        .await
        .unwrap();
    let got = next(&mut events).await;
    assert!(
        matches!(&got.kind, EventKind::Message { body, .. } if &body[..] == b"over tls"),
        "{got:?}"
    );

    // And a push back to the connector.
    let push = BusPush {
        target: Target::All,
        kind: PushKind::Frame {
            seq: 0,
            cmd: 1002,
            body: Bytes::new(),
        },
    };
    send_and_confirm(&*game, Address::EveryConnector, Message::Push(push))
        .await
        .unwrap();
    let got = next(&mut pushes).await;
    assert!(
        matches!(got.kind, PushKind::Frame { cmd: 1002, .. }),
        "{got:?}"
    );
    game.close().await;
    gateway.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_another_authority_signed_cannot_register() {
    let dir = TempDir::new("warren-grpc-tls");
    let ca = make_ca(dir.path(), "ca", "warren-test-ca");
    let cert = make_signed(dir.path(), "warren", "warren", &ca);
    let rogue_ca = make_ca(dir.path(), "rogue-ca", "rogue-ca");
    let rogue = make_signed(dir.path(), "rogue", "rogue", &rogue_ca);
    let gateway_at = ports::unused();
    let gateway = GrpcBus::gateway(bus(gateway_at, &settings(&cert, &ca)))
        .await
        .unwrap();
    // The rogue game trusts the gateway, but shows its own certificate.
    let rogue_tls = TlsSettings {
        ca: Some(ca.0.clone()),
        ..settings(&rogue, &rogue_ca)
    };
    let game = GrpcBus::service(bus(gateway_at, &rogue_tls)).await.unwrap();
    // subscribe_events returns after the first attempt to register has
    // ended; it failed in the handshake, so the gateway knows no service
    // (the game keeps trying, as it would while a gateway is down).
    let subscribed = game.subscribe_events().await;
    assert!(subscribed.is_ok(), "{subscribed:?}");
    let registered = gateway.registrations();
    assert!(registered.is_empty(), "{registered:?}");
    game.close().await;
    gateway.close().await;
}
