//! Every request gets an answer: one the game does not answer in time is
//! answered `timeout` by the connector; a socket with too many requests
//! waiting gets `overloaded` for the next one, which is not forwarded.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use warren_bus::{Address, send_and_confirm};
use warren_connector::ConnectorSettings;
use warren_proto::{BusPush, ErrorBody, EventKind, Frame, PushKind, Target, Uid, cmd, decode_body};

use crate::helpers::{Harness, Ws, recv, start_with};

async fn request(ws: &mut Ws, seq: u64) {
    let frame = Frame::new(seq, 5000, Bytes::from_static(b"\x80"));
    ws.send(Message::Binary(frame.encode().into()))
        .await
        .unwrap();
}

fn error_code(f: &Frame) -> String {
    assert_eq!(f.cmd, cmd::ERROR, "{f:?}");
    decode_body::<ErrorBody>("error", &f.body).unwrap().code
}

impl Harness {
    /// Answers request `seq` of uid 1 as the game would.
    async fn answer(&self, seq: u64) {
        let push = BusPush {
            target: Target::Uid(Uid(1)),
            kind: PushKind::Frame {
                seq,
                cmd: 5000,
                body: Bytes::from_static(b"\x80"),
            },
        };
        let to = Address::Connector(self.connector.id().clone());
        send_and_confirm(&*self.bus, to, warren_bus::Message::Push(push))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_request_the_game_never_answers_gets_timeout() {
    let mut h = start_with(ConnectorSettings {
        request_timeout_ms: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut ws = h.player(1).await;
    let sent = Instant::now();
    request(&mut ws, 7).await;
    request(&mut ws, 8).await;
    for seq in [7, 8] {
        let ev = h.event().await;
        assert!(matches!(ev.kind, EventKind::Message { seq: s, .. } if s == seq));
    }
    // 8 is answered, 7 never is.
    h.answer(8).await;
    let f = recv(&mut ws).await;
    assert_eq!((f.seq, f.cmd), (8, 5000));
    let f = recv(&mut ws).await;
    assert_eq!((f.seq, error_code(&f).as_str()), (7, "timeout"));
    let waited = sent.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert_eq!(h.connector.stats().request_timeouts, 1);
    // Nothing else follows: 8 was answered, 7 is answered once.
    let quiet = tokio::time::timeout(Duration::from_millis(600), recv(&mut ws)).await;
    assert!(quiet.is_err(), "{quiet:?}");
}

#[tokio::test]
async fn too_many_requests_waiting_are_refused_without_forwarding() {
    let mut h = start_with(ConnectorSettings {
        max_in_flight: 2,
        ..Default::default()
    })
    .await;
    let mut ws = h.player(1).await;
    for seq in 1..=3 {
        request(&mut ws, seq).await;
    }
    let f = recv(&mut ws).await;
    assert_eq!((f.seq, error_code(&f).as_str()), (3, "overloaded"));
    for seq in [1, 2] {
        let ev = h.event().await;
        assert!(matches!(ev.kind, EventKind::Message { seq: s, .. } if s == seq));
    }
    assert_eq!(h.connector.stats().refused_in_flight, 1);
    // Once one is answered there is room again.
    h.answer(1).await;
    assert_eq!(recv(&mut ws).await.seq, 1);
    request(&mut ws, 4).await;
    let ev = h.event().await;
    assert!(matches!(ev.kind, EventKind::Message { seq: 4, .. }));
}
