//! A connector that stops reading its push subscription is disconnected by
//! Redis (`client-output-buffer-limit pubsub`), and comes back by itself,
//! with the loss counted.
//!
//! The connector's Redis connections go through a proxy that can stop
//! reading from Redis on the subscriber connection only (the one that sent
//! `SUBSCRIBE`), so the connector's leases and health probe keep working
//! while its subscription falls behind. Redis is a private server with a
//! small pub/sub output limit.

#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use warren_bus::{Address, Bus, BusError, Message, RedisBus, RedisSettings, send_and_confirm};
use warren_proto::{BusPush, ConnectorId, PushKind, Target};
use warren_test_support::{PrivateRedis, eventually, unique};

/// A proxy whose subscriber connections can stop reading from upstream.
struct Proxy {
    addr: SocketAddr,
    paused: watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (paused, _) = watch::channel(false);
        let pause = paused.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, pause.subscribe()));
            }
        });
        Proxy { addr, paused }
    }

    /// Subscriber connections stop reading from Redis.
    fn pause(&self) {
        self.paused.send_replace(true);
    }

    fn resume(&self) {
        self.paused.send_replace(false);
    }
}

/// Copies both ways; once the client has sent `SUBSCRIBE`, the way back
/// stops while paused.
async fn relay(client: TcpStream, server: TcpStream, mut paused: watch::Receiver<bool>) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let subscriber = Arc::new(AtomicBool::new(false));
    let marks = subscriber.clone();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if buf[..n]
                .windows(9)
                .any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"))
            {
                marks.store(true, Ordering::SeqCst);
            }
            if server_tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_tx.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if subscriber.load(Ordering::SeqCst) {
            // Stop reading while paused.
            if paused.wait_for(|p| !*p).await.is_err() {
                break;
            }
        }
        let n = match server_rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if client_tx.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = client_tx.shutdown().await;
    up.abort();
}

fn push(cmd: u32, body: &[u8]) -> BusPush {
    BusPush {
        target: Target::All,
        kind: PushKind::Frame {
            seq: 0,
            cmd,
            body: Bytes::copy_from_slice(body),
        },
    }
}

fn cmd_of(p: &BusPush) -> u32 {
    match p.kind {
        PushKind::Frame { cmd, .. } => cmd,
        _ => 0,
    }
}

async fn send(bus: &dyn Bus, to: &ConnectorId, p: BusPush) -> Result<(), BusError> {
    send_and_confirm(bus, Address::Connector(to.clone()), Message::Push(p)).await
}

/// Publishes 4 KiB pushes (cmd 2) to `id` until Redis's log says it
/// dropped a subscriber over its output buffer limit; returns how many.
async fn publish_until_dropped(game: &dyn Bus, id: &ConnectorId, redis: &PrivateRedis) -> u64 {
    let body = vec![7u8; 4096];
    let mut published = 0u64;
    let log = redis.log();
    eventually(
        "Redis to disconnect the subscriber that fell behind",
        Duration::from_secs(30),
        async || {
            for _ in 0..100 {
                send(game, id, push(2, &body)).await.unwrap();
                published += 1;
            }
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            log.contains("output buffer limits").then_some(())
        },
    )
    .await;
    published
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_disconnected_and_comes_back_with_the_loss_counted() {
    let redis =
        PrivateRedis::start(&["--client-output-buffer-limit", "pubsub 256kb 128kb 1"]).await;
    let proxy = Proxy::start(redis.addr).await;
    let ns = unique("warren-slow");
    let id = ConnectorId::parse("slow").unwrap();
    let connector = RedisBus::connect(RedisSettings::new(&format!("redis://{}", proxy.addr), &ns))
        .await
        .unwrap();
    let mut pushes = connector.subscribe_pushes(&id).await.unwrap();
    let game = RedisBus::connect(RedisSettings::new(&redis.url(), &ns))
        .await
        .unwrap();

    send(&game, &id, push(1, b"hello")).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), pushes.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cmd_of(&first), 1);

    // The connector stops reading; pushes pile up in Redis until it
    // drops the subscriber.
    proxy.pause();
    let published = publish_until_dropped(&game, &id, &redis).await;
    assert_eq!(
        connector.state().subscriber_disconnects,
        0,
        "not noticed while paused"
    );
    proxy.resume();

    // What was delivered before the disconnect comes through, then the
    // subscription comes back by itself and new pushes arrive again.
    let mut received = 0u64;
    let mut marker = 100u32;
    eventually(
        "the subscription to come back",
        Duration::from_secs(20),
        async || {
            marker += 1;
            send(&game, &id, push(marker, b"again")).await.unwrap();
            while let Ok(Some(p)) =
                tokio::time::timeout(Duration::from_millis(200), pushes.next()).await
            {
                match cmd_of(&p) {
                    2 => received += 1,
                    c if c > 100 && connector.state().subscriber_disconnects > 0 => {
                        return Some(());
                    }
                    _ => {}
                }
            }
            None
        },
    )
    .await;
    let state = connector.state();
    eprintln!(
        "published {published} pushes to a subscriber that stopped reading; it got {received} before Redis dropped it; {} disconnect(s) counted",
        state.subscriber_disconnects
    );
    assert_eq!(state.subscriber_disconnects, 1, "the disconnect is counted");
    assert!(received < published, "Redis dropped what it held");
    assert!(state.up, "the connector's bus stays up throughout");
    pushes.close().await;
    connector.close().await;
    game.close().await;
    RedisBus::delete_namespace(&redis.url(), &ns).await.unwrap();
}
