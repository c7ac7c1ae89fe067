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
    format!("tcp://{}", warren_test_support::ports::unused())
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
    // A full pipe refuses at once. On a busy host the first refusals may
    // only mean that libzmq's I/O thread has not yet moved the pipe into
    // TCP, so sending goes on until 100 refusals come in a row; what was
    // taken by then is bounded, and every answer, taken or refused, is
    // at once.
    let (mut taken, mut refusals, mut refused_in_a_row) = (0u64, 0u64, 0);
    while refused_in_a_row < 100 {
        let started = Instant::now();
        let sent = send_and_confirm(&connector, Address::Shard(0), request(taken)).await;
        assert!(started.elapsed() < Duration::from_millis(500));
        match sent {
            Ok(()) => {
                taken += 1;
                refused_in_a_row = 0;
            }
            Err(BusError::Rejected(_)) => {
                refusals += 1;
                refused_in_a_row += 1;
            }
            Err(e) => panic!("refused as full, not as gone: {e}"),
        }
        assert!(taken < 1_000_000, "a million 1 KiB requests and no refusal");
    }
    eprintln!("{taken} requests of 1 KiB taken, {refusals} refused, the last 100 in a row");
    connector.close().await;
    game.close().await;
}
