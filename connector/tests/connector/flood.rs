//! A client sending faster than the rate limit is kicked; others are not.

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use warren_connector::ConnectorSettings;
use warren_proto::{EventKind, Frame, KickBody, cmd, decode_body};

use crate::helpers::{recv, start_with};

#[tokio::test]
async fn a_flooding_client_is_kicked_rate_limited_and_a_calm_one_is_not() {
    let mut h = start_with(ConnectorSettings {
        rate_limit_per_sec: 20,
        rate_limit_burst: 40,
        ..ConnectorSettings::default()
    })
    .await;
    let mut flood = h.player(1).await;
    let mut calm = h.player(2).await;
    // The calm one: 10 heartbeats, well inside the burst.
    for seq in 1..=10 {
        let hb = Frame::new(seq, cmd::HEARTBEAT, vec![0x80]);
        calm.send(Message::Binary(hb.encode().into()))
            .await
            .unwrap();
        assert_eq!(recv(&mut calm).await.cmd, cmd::HEARTBEAT);
    }
    // The flood: 500 frames at once.
    for seq in 1..=500 {
        let frame = Frame::new(seq, 5000, vec![0x80]);
        if flood
            .send(Message::Binary(frame.encode().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let kick = loop {
        let f = recv(&mut flood).await;
        if f.cmd == cmd::KICK {
            break f;
        }
    };
    let body: KickBody = decode_body("kick", &kick.body).unwrap();
    assert_eq!(body.reason, "rate_limited");
    assert_eq!(h.connector.stats().kicked_rate, 1);
    // Only the flood's allowance reached the game, then its Close.
    let mut forwarded = 0;
    loop {
        let ev = h.event().await;
        match ev.kind {
            EventKind::Message { .. } => forwarded += 1,
            EventKind::Close { reason } => {
                assert_eq!(reason, "rate_limited");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        forwarded <= 45,
        "at most the burst (and what refilled) went through: {forwarded}"
    );
    // The calm client is unaffected.
    let hb = Frame::new(99, cmd::HEARTBEAT, vec![0x80]);
    calm.send(Message::Binary(hb.encode().into()))
        .await
        .unwrap();
    assert_eq!(recv(&mut calm).await.seq, 99);
}

/// Few frames, but huge ones: the byte budget kicks the sender too.
#[tokio::test]
async fn a_client_sending_too_many_bytes_is_kicked_rate_limited() {
    use warren_connector::ConnectorSettings;
    let mut h = crate::helpers::start_with(ConnectorSettings {
        byte_limit_per_sec: 10_000,
        byte_limit_burst: 50_000,
        ..Default::default()
    })
    .await;
    let mut ws = h.player(1).await;
    // 20 frames of 8 KiB: far under the frame rate, 3x the byte burst.
    for seq in 1..=20u64 {
        let frame = warren_proto::Frame::new(seq, 5000, bytes::Bytes::from(vec![0xc0; 8 * 1024]));
        if futures_util::SinkExt::send(
            &mut ws,
            tokio_tungstenite::tungstenite::Message::Binary(frame.encode().into()),
        )
        .await
        .is_err()
        {
            break;
        }
    }
    let kick = crate::helpers::recv(&mut ws).await;
    assert_eq!(kick.cmd, warren_proto::cmd::KICK);
    let body: warren_proto::KickBody = warren_proto::decode_body("kick", &kick.body).unwrap();
    assert_eq!(body.reason, "rate_limited");
    assert_eq!(h.connector.stats().kicked_rate, 1);
}
