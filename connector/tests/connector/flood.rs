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

/// A flooder kicked `rate_limited` cannot log in again at once.
#[tokio::test]
async fn a_kicked_flooder_cools_down_before_logging_in_again() {
    use warren_connector::ConnectorSettings;
    let mut h = crate::helpers::start_with(ConnectorSettings {
        rate_limit_per_sec: 10,
        rate_limit_burst: 10,
        kick_cooldown_ms: std::time::Duration::from_millis(1_500),
        ..Default::default()
    })
    .await;
    let mut ws = h.player(7).await;
    for seq in 1..=30u64 {
        let frame = warren_proto::Frame::new(seq, cmd_echo(), bytes::Bytes::from_static(b"\x80"));
        let msg = tokio_tungstenite::tungstenite::Message::Binary(frame.encode().into());
        if futures_util::SinkExt::send(&mut ws, msg).await.is_err() {
            break;
        }
    }
    loop {
        let f = crate::helpers::recv(&mut ws).await;
        if f.cmd == warren_proto::cmd::KICK {
            break;
        }
    }
    // At once: refused, with the reason and the wait.
    let (_ws, reply) = h.try_login(h.token(7)).await;
    assert_eq!(reply.cmd, warren_proto::cmd::ERROR);
    let e: warren_proto::ErrorBody = warren_proto::decode_body("error", &reply.body).unwrap();
    assert_eq!(e.code, "rate_limited", "{e:?}");
    assert!(e.message.contains("log in again in"), "{e:?}");
    assert_eq!(h.connector.stats().refused_cooling, 1);
    // What the flood forwarded, then the kicked socket's Close.
    loop {
        let ev = h.event().await;
        if matches!(ev.kind, warren_proto::EventKind::Close { .. }) {
            break;
        }
    }
    // Another player is not held back; after the cool-down, 7 is welcome.
    let _eight = h.player(8).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_600)).await;
    h.player(7).await;
}

fn cmd_echo() -> u32 {
    warren_proto::cmd::ECHO
}
