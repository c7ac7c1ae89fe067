//! The connector alone, on the in-process bus, with real websocket clients:
//! the test plays the game, reading events and publishing pushes, to reach
//! every push target and the kick command.

#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use ed25519_dalek::{
    SigningKey,
    pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use tokio::net::TcpListener;
use tokio_tungstenite::{connect_async, tungstenite::Message};
use tokio_util::sync::CancellationToken;
use warren_bus::{Bus, MemoryBus, Route, Subscription};
use warren_connector::{Connector, ConnectorSettings, TokenVerifier};
use warren_proto::{
    BusEvent, BusPush, Claims, EventKind, Frame, LoginRequest, PushKind, Target, Uid, cmd,
    encode_body,
};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Harness {
    bus: Arc<MemoryBus>,
    events: Subscription<BusEvent>,
    connector: Connector,
    url: String,
    signing: EncodingKey,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start() -> Harness {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let verifier = TokenVerifier::from_ed_pem(public.as_bytes(), "warren", "warren", 30).unwrap();
    let bus = Arc::new(MemoryBus::new(64));
    let events = bus.subscribe_events().await.unwrap();
    let settings = ConnectorSettings {
        id: Some("c1".into()),
        ..ConnectorSettings::default()
    };
    let connector = Connector::new(settings, bus.clone(), Arc::new(verifier)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let task = {
        let (connector, stop) = (connector.clone(), stop.clone());
        tokio::spawn(async move {
            connector
                .run(listener, stop.cancelled_owned())
                .await
                .unwrap();
        })
    };
    Harness {
        bus,
        events,
        connector,
        url,
        signing: EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
        stop,
        task,
    }
}

impl Harness {
    /// Connects and logs in `uid`; waits for the Connect event.
    async fn player(&mut self, uid: u64) -> Ws {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = Claims {
            sub: uid.to_string(),
            exp: now + 600,
            iat: now,
            iss: "warren".into(),
            aud: "warren".into(),
        };
        let token = encode(&Header::new(Algorithm::EdDSA), &claims, &self.signing).unwrap();
        let (mut ws, _) = connect_async(&self.url).await.unwrap();
        let login = Frame::new(1, cmd::LOGIN, encode_body(&LoginRequest { token }));
        ws.send(Message::Binary(login.encode().into()))
            .await
            .unwrap();
        assert_eq!(recv(&mut ws).await.cmd, cmd::LOGIN);
        let ev = self.event().await;
        assert_eq!(
            (ev.uid, &ev.kind),
            (Uid(uid), &EventKind::Connect { peer: ev_peer(&ev) })
        );
        ws
    }

    /// The next socket event (the connector's periodic Alive is skipped).
    async fn event(&mut self) -> BusEvent {
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(10), self.events.next())
                .await
                .unwrap()
                .unwrap();
            if !matches!(ev.kind, EventKind::Alive { .. }) {
                return ev;
            }
        }
    }

    async fn push(&self, target: Target, kind: PushKind) {
        let push = BusPush { target, kind };
        let route = Route::Connector(self.connector.id().clone());
        self.bus
            .publish_push(&route, &push)
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

fn ev_peer(ev: &BusEvent) -> String {
    match &ev.kind {
        EventKind::Connect { peer } => peer.clone(),
        other => panic!("expected Connect, got {other:?}"),
    }
}

fn frame(cmd: u32, text: &'static str) -> PushKind {
    PushKind::Frame {
        seq: 0,
        cmd,
        body: Bytes::from_static(text.as_bytes()),
    }
}

async fn recv(ws: &mut Ws) -> Frame {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("no error");
        if let Message::Binary(b) = msg {
            return Frame::decode(&b).unwrap();
        }
    }
}

#[tokio::test]
async fn pushes_reach_exactly_their_targets_and_kicks_close() {
    let mut h = start().await;
    let mut a = h.player(1).await;
    let mut b = h.player(2).await;
    let mut c = h.player(3).await;

    h.push(Target::All, frame(9001, "all")).await;
    h.push(
        Target::Uids(vec![Uid(1), Uid(3), Uid(99)]),
        frame(9002, "some"),
    )
    .await;
    h.push(Target::Uid(Uid(2)), frame(9003, "one")).await;
    // A barrier everyone gets last: anything misrouted would show before it.
    h.push(Target::All, frame(9009, "end")).await;
    let got = |frames: Vec<Frame>| frames.iter().map(|f| f.cmd).collect::<Vec<_>>();
    let mut seen = Vec::new();
    for ws in [&mut a, &mut b, &mut c] {
        let mut frames = Vec::new();
        loop {
            let f = recv(ws).await;
            let last = f.cmd == 9009;
            frames.push(f);
            if last {
                break;
            }
        }
        seen.push(got(frames));
    }
    assert_eq!(
        seen,
        vec![
            vec![9001, 9002, 9009],
            vec![9001, 9003, 9009],
            vec![9001, 9002, 9009]
        ]
    );

    // A kick from the game: kick frame, close, and a Close event.
    h.push(
        Target::Uid(Uid(2)),
        PushKind::Kick {
            reason: "banned".into(),
        },
    )
    .await;
    let kick = recv(&mut b).await;
    assert_eq!(kick.cmd, cmd::KICK);
    let ev = h.event().await;
    assert_eq!(
        (ev.uid, ev.kind),
        (
            Uid(2),
            EventKind::Close {
                reason: "banned".into()
            }
        )
    );
    assert_eq!(h.connector.online(), 2);
    assert_eq!(h.connector.stats().kicked_by_game, 1);

    // Requests from a logged-in socket become Message events, body untouched.
    let req = Frame::new(5, 4242, Bytes::from_static(b"\x01\x02"));
    a.send(Message::Binary(req.encode().into())).await.unwrap();
    let ev = h.event().await;
    assert_eq!(
        ev.kind,
        EventKind::Message {
            seq: 5,
            cmd: 4242,
            body: Bytes::from_static(b"\x01\x02")
        }
    );

    h.stop.cancel();
    (&mut h.task).await.unwrap();
    for ws in [&mut a, &mut c] {
        let f = recv(ws).await;
        assert_eq!(f.cmd, cmd::KICK);
    }
    // Every socket's end was announced.
    let mut closed = Vec::new();
    while closed.len() < 2 {
        if let EventKind::Close { reason } = h.event().await.kind {
            closed.push(reason);
        }
    }
    assert_eq!(closed, vec!["shutdown", "shutdown"]);
}
