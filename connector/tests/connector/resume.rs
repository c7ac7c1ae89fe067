//! Resumable sessions (PROTOCOL.md §3) on one connector: numbered frames,
//! a dropped socket detached and resumed with everything sent meanwhile,
//! requests not applied twice, and `resync` when the promise cannot be
//! kept.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::{
    connect_async,
    tungstenite::{
        Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};
use warren_connector::ConnectorSettings;
use warren_proto::{
    BusEvent, EventKind, Frame, KickBody, LoginReply, LoginRequest, PushKind, Target, Uid, cmd,
    decode_body, encode_body,
};

use crate::helpers::{Harness, Ws, start, start_with};

/// A frame from the server with its number (None: not numbered).
async fn recv_n(ws: &mut Ws) -> (Frame, Option<u64>) {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("no error");
        match msg {
            Message::Binary(b) => return Frame::decode_numbered(&b).expect("decodes"),
            Message::Text(t) => panic!("a text frame on a binary socket: {t}"),
            _ => {}
        }
    }
}

async fn send(ws: &mut Ws, seq: u64, cmd: u32, body: Vec<u8>) {
    let frame = Frame::new(seq, cmd, body).encode();
    ws.send(Message::Binary(frame.into())).await.expect("sent");
}

/// Logs in with `req`; returns the socket and the login reply.
async fn login(h: &Harness, req: LoginRequest) -> (Ws, LoginReply) {
    let (mut ws, _) = connect_async(&h.url).await.expect("connects");
    send(&mut ws, 1, cmd::LOGIN, encode_body(&req).to_vec()).await;
    let (reply, n) = recv_n(&mut ws).await;
    assert_eq!(reply.cmd, cmd::LOGIN, "{reply:?}");
    assert_eq!(n, None, "a login reply is not numbered");
    (
        ws,
        decode_body("login reply", &reply.body).expect("login reply"),
    )
}

fn resumable(token: String) -> LoginRequest {
    LoginRequest {
        token,
        resumable: true,
        ..LoginRequest::default()
    }
}

fn resume(token: String, session: &str, last: u64) -> LoginRequest {
    LoginRequest {
        token,
        resumable: true,
        resume: Some(session.to_owned()),
        last: Some(last),
    }
}

fn push(text: &str) -> PushKind {
    PushKind::Frame {
        seq: 0,
        cmd: 9001,
        body: text.as_bytes().to_vec().into(),
    }
}

fn reply(seq: u64) -> PushKind {
    PushKind::Frame {
        seq,
        cmd: 1001,
        body: format!("answer {seq}").into_bytes().into(),
    }
}

fn conn(ev: &BusEvent) -> Target {
    Target::Conn {
        connector: ev.connector.clone(),
        conn: ev.conn,
    }
}

impl Harness {
    /// The next event, which must be of this kind.
    async fn expect(&mut self, what: &str) -> BusEvent {
        let ev = self.event().await;
        let name = match &ev.kind {
            EventKind::Connect { .. } => "connect",
            EventKind::Message { .. } => "message",
            EventKind::Close { .. } => "close",
            EventKind::Error { .. } => "error",
            EventKind::Detached { .. } => "detached",
            EventKind::Attached { .. } => "attached",
            EventKind::Resume { .. } => "resume",
            EventKind::Handed { .. } => "handed",
            EventKind::Alive { .. } | EventKind::Call { .. } => "other",
        };
        assert_eq!(name, what, "{ev:?}");
        ev
    }
}

// Long: one scenario, told in order.
#[tokio::test]
async fn a_dropped_socket_resumes_with_everything_sent_meanwhile_once() {
    let mut h = start().await;
    let (mut ws, r) = login(&h, resumable(h.token(1))).await;
    let session = r.session.expect("a resumable login names its session");
    assert_eq!(r.grace_ms, Some(30_000));
    assert_eq!(r.resumed, None, "not a resume");
    let connect = h.expect("connect").await;
    let me = conn(&connect);

    h.push(Target::Uid(Uid(1)), push("a")).await;
    assert_eq!(recv_n(&mut ws).await.1, Some(1));
    send(&mut ws, 5, 1001, vec![0x80]).await;
    let ev = h.expect("message").await;
    h.push(conn(&ev), reply(5)).await;
    let (f, n) = recv_n(&mut ws).await;
    assert_eq!((f.seq, n), (5, Some(2)));
    // A request in flight when the socket drops.
    send(&mut ws, 6, 1001, vec![0x80]).await;
    h.expect("message").await;
    drop(ws);
    let detached = h.expect("detached").await;
    assert_eq!(detached.conn, connect.conn);

    // While away: pushes, and the answer to the request in flight.
    h.push(Target::Uid(Uid(1)), push("b")).await;
    h.push(me.clone(), reply(6)).await;
    h.push(Target::All, push("c")).await;

    let (mut ws, r) = login(&h, resume(h.token(1), &session, 2)).await;
    assert_eq!(r.resumed, Some(true), "{r:?}");
    assert_eq!(r.session.as_deref(), Some(session.as_str()));
    let attached = h.expect("attached").await;
    assert_eq!(
        attached.conn, connect.conn,
        "the same connection to the game"
    );
    let mut got = Vec::new();
    for _ in 0..3 {
        let (f, n) = recv_n(&mut ws).await;
        got.push((n.expect("numbered"), f.seq, f.body.to_vec()));
    }
    assert_eq!(
        got,
        vec![
            (3, 0, b"b".to_vec()),
            (4, 6, b"answer 6".to_vec()),
            (5, 0, b"c".to_vec())
        ]
    );
    // The client sends again what it had no answer for: seq 6 was taken.
    send(&mut ws, 6, 1001, vec![0x80]).await;
    send(&mut ws, 7, 1001, vec![0x80]).await;
    let ev = h.expect("message").await;
    assert!(
        matches!(ev.kind, EventKind::Message { seq: 7, .. }),
        "seq 6 is not applied twice: {ev:?}"
    );
    h.push(me, reply(7)).await;
    let (f, n) = recv_n(&mut ws).await;
    assert_eq!((f.seq, n), (7, Some(6)));

    // Leaving on purpose ends the session at once.
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .expect("closes");
    h.expect("close").await;
    let stats = h.connector.stats();
    assert_eq!(
        (
            stats.resumed,
            stats.replayed_frames,
            stats.duplicate_requests
        ),
        (1, 3, 1)
    );
}

#[tokio::test]
async fn a_session_not_resumed_in_time_closes_and_a_late_resume_resyncs() {
    let mut h = start_with(ConnectorSettings {
        resume_grace_ms: Duration::from_millis(200),
        ..ConnectorSettings::default()
    })
    .await;
    let (ws, r) = login(&h, resumable(h.token(1))).await;
    let session = r.session.expect("session");
    let first = h.expect("connect").await;
    drop(ws);
    h.expect("detached").await;
    let close = h.expect("close").await;
    assert!(
        matches!(&close.kind, EventKind::Close { reason } if reason == "resume_grace_ended"),
        "{close:?}"
    );
    let (_ws, r) = login(&h, resume(h.token(1), &session, 0)).await;
    assert_eq!(r.resumed, Some(false));
    assert_eq!(r.reason.as_deref(), Some("resync"));
    let fresh = r.session.expect("a new session");
    assert_ne!(fresh, session);
    // Services see the player arrive again.
    let again = h.expect("connect").await;
    assert_ne!(again.conn, first.conn);
    assert_eq!(h.connector.stats().sessions_expired, 1);
}

#[tokio::test]
async fn more_than_the_buffer_holds_ends_a_detached_session() {
    let mut h = start_with(ConnectorSettings {
        resume_buffer_frames: 3,
        ..ConnectorSettings::default()
    })
    .await;
    let (ws, r) = login(&h, resumable(h.token(1))).await;
    let session = r.session.expect("session");
    h.expect("connect").await;
    drop(ws);
    h.expect("detached").await;
    for text in ["1", "2", "3", "4"] {
        h.push(Target::Uid(Uid(1)), push(text)).await;
    }
    let close = h.expect("close").await;
    assert!(
        matches!(&close.kind, EventKind::Close { reason } if reason == "session_overflow"),
        "{close:?}"
    );
    let (_ws, r) = login(&h, resume(h.token(1), &session, 0)).await;
    assert_eq!(r.reason.as_deref(), Some("resync"));
    h.expect("connect").await;
    assert_eq!(h.connector.stats().sessions_overflowed, 1);
}

#[tokio::test]
async fn a_kick_is_numbered_and_ends_the_session() {
    let mut h = start().await;
    let (mut ws, r) = login(&h, resumable(h.token(1))).await;
    let session = r.session.expect("session");
    let connect = h.expect("connect").await;
    h.push(Target::Uid(Uid(1)), push("a")).await;
    h.push(
        conn(&connect),
        PushKind::Kick {
            reason: "banned".into(),
        },
    )
    .await;
    assert_eq!(recv_n(&mut ws).await.1, Some(1));
    let (kick, n) = recv_n(&mut ws).await;
    assert_eq!((kick.cmd, n), (cmd::KICK, Some(2)));
    let body: KickBody = decode_body("kick", &kick.body).expect("kick");
    assert_eq!(body.reason, "banned");
    h.expect("close").await;
    let (_ws, r) = login(&h, resume(h.token(1), &session, 2)).await;
    assert_eq!(
        r.reason.as_deref(),
        Some("resync"),
        "a kicked session is over"
    );
}

#[tokio::test]
async fn a_resume_takes_the_session_from_a_socket_that_never_closed() {
    let mut h = start().await;
    let (mut old, r) = login(&h, resumable(h.token(1))).await;
    let session = r.session.expect("session");
    let connect = h.expect("connect").await;
    h.push(Target::Uid(Uid(1)), push("a")).await;
    assert_eq!(recv_n(&mut old).await.1, Some(1));
    // The client believes the socket dead (a half-open connection) and
    // resumes on a new one; the old one is closed, the game hears no
    // Detached, only that the player is attached again.
    let (mut ws, r) = login(&h, resume(h.token(1), &session, 1)).await;
    assert_eq!(r.resumed, Some(true));
    let attached = h.expect("attached").await;
    assert_eq!(attached.conn, connect.conn);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), old.next()).await {
            Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the old socket is closed"),
        }
    }
    h.push(Target::Uid(Uid(1)), push("b")).await;
    assert_eq!(recv_n(&mut ws).await.1, Some(2));
    // Nothing else happened to the session.
    h.push(conn(&connect), reply(0)).await;
    assert_eq!(recv_n(&mut ws).await.1, Some(3));
    assert_eq!(h.connector.stats().detached, 0);
}

#[tokio::test]
async fn a_json_socket_sees_the_numbers_as_n() {
    let mut h = start().await;
    let url = format!("{}?format=json", h.url);
    let (mut ws, _) = connect_async(&url).await.expect("connects");
    let login = serde_json::json!({
        "seq": 1, "cmd": 1, "body": {"token": h.token(1), "resumable": true}
    });
    ws.send(Message::Text(login.to_string().into()))
        .await
        .expect("sent");
    let text = |m: Message| match m {
        Message::Text(t) => serde_json::from_str::<serde_json::Value>(&t).expect("json"),
        other => panic!("{other:?}"),
    };
    let reply = text(ws.next().await.expect("reply").expect("ok"));
    assert!(reply["body"]["session"].is_string(), "{reply}");
    assert!(reply.get("n").is_none(), "{reply}");
    h.expect("connect").await;
    h.push(Target::Uid(Uid(1)), push("a")).await;
    let f = text(ws.next().await.expect("push").expect("ok"));
    assert_eq!(f["n"], 1, "{f}");
}

#[tokio::test]
async fn a_v1_login_is_unchanged() {
    let mut h = start().await;
    let (mut ws, r) = login(
        &h,
        LoginRequest {
            token: h.token(1),
            ..LoginRequest::default()
        },
    )
    .await;
    assert_eq!((r.session, r.grace_ms), (None, None));
    h.expect("connect").await;
    h.push(Target::Uid(Uid(1)), push("a")).await;
    assert_eq!(recv_n(&mut ws).await.1, None, "three elements");
    drop(ws);
    let ev = h.event().await;
    assert!(
        matches!(ev.kind, EventKind::Close { .. } | EventKind::Error { .. }),
        "no session kept: {ev:?}"
    );
}

/// A resume checks the token again: a player logged out (or banned) while
/// away cannot resume with the old token, and its session ends.
#[tokio::test]
async fn a_revoked_token_does_not_resume() {
    let mut h = start().await;
    let (ws, r) = login(&h, resumable(h.token(1))).await;
    let session = r.session.expect("session");
    h.expect("connect").await;
    drop(ws);
    h.expect("detached").await;
    let revoke = PushKind::Revoke {
        not_before_ms: warren_proto::time::unix_ms() + 1_000,
        sid: None,
        reason: "logged_out".into(),
    };
    h.push(Target::Uid(Uid(1)), revoke).await;
    let close = h.expect("close").await;
    assert!(
        matches!(&close.kind, EventKind::Close { reason } if reason == "session_kicked"),
        "{close:?}"
    );
    let (mut ws, _) = connect_async(&h.url).await.expect("connects");
    send(
        &mut ws,
        1,
        cmd::LOGIN,
        encode_body(&resume(h.token(1), &session, 0)).to_vec(),
    )
    .await;
    let (refused, _) = recv_n(&mut ws).await;
    assert_eq!(refused.cmd, cmd::ERROR);
    let e: warren_proto::ErrorBody = decode_body("error", &refused.body).expect("error");
    assert_eq!(e.code, "unauthorized");
}

/// A resume whose last frame is out of the session's range (ahead of it,
/// here) is answered `resync` at once; the game hears the old session
/// close and the new one connect (in either order: its session table
/// takes a late Close of an older connection for stale).
#[tokio::test]
async fn a_last_frame_out_of_range_resyncs_at_once() {
    let mut h = start().await;
    let (ws, r) = login(&h, resumable(h.token(1))).await;
    let session = r.session.expect("session");
    let first = h.expect("connect").await;
    drop(ws);
    h.expect("detached").await;
    let (_ws, r) = login(&h, resume(h.token(1), &session, 99)).await;
    assert_eq!(r.resumed, Some(false), "{r:?}");
    assert_eq!(r.reason.as_deref(), Some("resync"));
    let mut events = [h.event().await, h.event().await];
    events.sort_by_key(|ev| matches!(ev.kind, EventKind::Connect { .. }));
    let [close, again] = events;
    assert!(matches!(close.kind, EventKind::Close { .. }), "{close:?}");
    assert_eq!(close.conn, first.conn);
    assert!(matches!(again.kind, EventKind::Connect { .. }), "{again:?}");
    assert_ne!(again.conn, first.conn);
}
