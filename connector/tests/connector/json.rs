//! JSON sockets (PROTOCOL.md §4): the frames on the wire are JSON text, the
//! bus still carries MessagePack, and nothing a JSON client sends or gets
//! is interpreted on the way.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{connect_async, tungstenite::Message};
use warren_proto::{EventKind, PushKind, Target, Uid, json::json_to_body};

use crate::helpers::{Harness, Ws, start};

async fn text(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("no error");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).expect("a JSON frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("a JSON socket gets text, not {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// A JSON socket logged in as `uid`, its Connect seen.
async fn json_player(h: &mut Harness, uid: u64) -> Ws {
    let (mut ws, _) = connect_async(format!("{}?format=json", h.url))
        .await
        .unwrap();
    send(
        &mut ws,
        json!({"seq": 1, "cmd": 1, "body": {"token": h.token(uid)}}),
    )
    .await;
    assert_eq!(
        text(&mut ws).await,
        json!({"seq": 1, "cmd": 1, "body": {"uid": uid}})
    );
    let ev = h.event().await;
    assert!(matches!(ev.kind, EventKind::Connect { .. }), "{ev:?}");
    ws
}

// Long: one scenario, told in order.
#[tokio::test]
async fn json_frames_are_converted_both_ways_and_never_interpreted() {
    let mut h = start().await;
    let mut ws = json_player(&mut h, 7).await;

    send(&mut ws, json!({"seq": 2, "cmd": 2})).await;
    let beat = text(&mut ws).await;
    assert_eq!(
        (beat["seq"].clone(), beat["cmd"].clone()),
        (json!(2), json!(2))
    );
    assert!(beat["body"]["server_time_ms"].as_u64().is_some(), "{beat}");

    let body = json!({"room": "lobby", "n": [1, -2, 2.5], "big": 9_007_199_254_740_993u64});
    send(&mut ws, json!({"seq": 3, "cmd": 1001, "body": body})).await;
    let ev = h.event().await;
    let EventKind::Message {
        seq,
        cmd,
        body: got,
    } = ev.kind
    else {
        panic!("{ev:?}")
    };
    assert_eq!((seq, cmd), (3, 1001));
    assert_eq!(
        &got[..],
        &json_to_body(&body)[..],
        "the game gets MessagePack"
    );

    // The game answers with what JSON lacks: bytes, a large integer.
    #[derive(serde::Serialize)]
    struct Reply {
        #[serde(with = "serde_bytes")]
        raw: Vec<u8>,
        big: u64,
    }
    let reply = warren_proto::encode_body(&Reply {
        raw: vec![0, 255],
        big: u64::MAX,
    });
    h.push_frame(Target::Uid(Uid(7)), 3, 1001, reply.to_vec())
        .await;
    assert_eq!(
        text(&mut ws).await,
        json!({"seq": 3, "cmd": 1001, "body": {"raw": "AP8=", "big": "18446744073709551615"}})
    );

    // A body with an integer map key has no JSON form: the client hears so.
    let mut int_key = Vec::new();
    rmp::encode::write_map_len(&mut int_key, 1).unwrap();
    rmp::encode::write_uint(&mut int_key, 1).unwrap();
    rmp::encode::write_nil(&mut int_key).unwrap();
    h.push_frame(Target::Uid(Uid(7)), 0, 2003, int_key).await;
    let refused = text(&mut ws).await;
    assert_eq!(refused["cmd"], json!(4));
    assert_eq!(refused["body"]["code"], json!("not_json"));
    assert_eq!(h.connector.stats().not_json_frames, 1);

    // The kick at the end is JSON too.
    h.push(
        Target::Uid(Uid(7)),
        PushKind::Kick {
            reason: "banned".into(),
        },
    )
    .await;
    assert_eq!(
        text(&mut ws).await,
        json!({"seq": 0, "cmd": 3, "body": {"reason": "banned"}})
    );
}

#[tokio::test]
async fn what_is_not_a_json_frame_closes_the_socket_with_1007() {
    let mut h = start().await;
    for bad in [
        Message::Text("{\"seq\": 1}".into()),
        Message::Text("[5, 1001, {}]".into()),
        Message::Binary(vec![0x93, 1, 2, 0xc4, 0].into()),
    ] {
        let mut ws = json_player(&mut h, 8).await;
        ws.send(bad.clone()).await.unwrap();
        let close = loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("{bad:?}: expected a close, got {other:?}"),
            }
        };
        assert_eq!(u16::from(close.code), 1007, "{bad:?}");
        let ev = h.event().await;
        assert!(matches!(ev.kind, EventKind::Close { .. }), "{ev:?}");
    }
}

#[tokio::test]
async fn an_unknown_format_is_refused_at_the_handshake() {
    let h = start().await;
    let err = connect_async(format!("{}?format=xml", h.url))
        .await
        .expect_err("refused");
    let tokio_tungstenite::tungstenite::Error::Http(resp) = err else {
        panic!("expected an HTTP refusal, got {err:?}")
    };
    assert_eq!(resp.status(), 400);
    let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
    assert!(body.contains("format=json"), "{body}");
}
