//! ZeroMQ's bound: a game that stops reading fills the high-water marks
//! (and the TCP buffers between the two sockets, which libzmq does not
//! count), and then every request is refused at once as `Rejected` (the
//! client hears `overloaded`), never `Unavailable`, and never waits.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use warren_bus::{Address, Bus, BusError, Message, ZmqBus, ZmqSettings, send_and_confirm};
use warren_proto::{BusEvent, ConnId, ConnectorId, EventKind, Uid};

fn free_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("tcp://{}", l.local_addr().unwrap())
}

fn request(seq: u64) -> Message {
    Message::Event(BusEvent {
        connector: ConnectorId::parse("c1").unwrap(),
        conn: ConnId(1),
        uid: Uid(1),
        kind: EventKind::Message {
            seq,
            cmd: 1001,
            body: Bytes::from(vec![7u8; 1024]),
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_that_stops_reading_makes_every_request_refused_at_once() {
    let settings = ZmqSettings {
        requests: vec![free_address()],
        pushes: vec![free_address()],
        send_hwm: 100,
        receive_hwm: 100,
        ..ZmqSettings::new()
    };
    let game = ZmqBus::connect(settings.clone()).await.unwrap();
    // Consumed, never read.
    let _events = game.subscribe_events().await.unwrap();
    let connector = ZmqBus::connect(settings).await.unwrap();
    let mut taken = 0u64;
    let refused = loop {
        let sent = send_and_confirm(&connector, Address::Shard(0), request(taken)).await;
        match sent {
            Ok(()) => taken += 1,
            Err(e) => break e,
        }
        assert!(taken < 1_000_000, "a million 1 KiB requests and no refusal");
    };
    assert!(
        matches!(refused, BusError::Rejected(_)),
        "refused as full, not as gone: {refused}"
    );
    eprintln!("{taken} requests of 1 KiB taken before the first refusal");
    // Full stays full, and each refusal is at once.
    for seq in 0..100 {
        let started = Instant::now();
        let sent = send_and_confirm(&connector, Address::Shard(0), request(taken + seq)).await;
        assert!(matches!(sent, Err(BusError::Rejected(_))), "{sent:?}");
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    connector.close().await;
    game.close().await;
}
