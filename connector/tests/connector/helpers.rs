//! A connector on the in-process bus, with the test playing the game.

use std::{sync::Arc, time::Duration};

use ed25519_dalek::{
    SigningKey,
    pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use tokio::net::TcpListener;
use tokio_tungstenite::{connect_async, tungstenite::Message};
use tokio_util::sync::CancellationToken;
use warren_bus::{Bus, MemoryBus, Subscription};
use warren_connector::{Connector, ConnectorSettings, TokenVerifier};
use warren_proto::{BusEvent, Claims, EventKind, Frame, LoginRequest, Uid, cmd, encode_body};

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) struct Harness {
    pub bus: Arc<MemoryBus>,
    pub events: Subscription<BusEvent>,
    pub connector: Connector,
    pub url: String,
    pub signing: EncodingKey,
    /// The connector's public key (PEM).
    pub public_pem: String,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

pub(crate) async fn start() -> Harness {
    start_with(ConnectorSettings::default()).await
}

/// A connector with these settings (its id is set here).
pub(crate) async fn start_with(settings: ConnectorSettings) -> Harness {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let verifier = TokenVerifier::from_ed_pem(
        public.as_bytes(),
        "warren",
        "warren",
        Duration::from_secs(30),
    )
    .unwrap();
    let bus = Arc::new(MemoryBus::new(64));
    let events = bus.subscribe_events().await.unwrap();
    let settings = ConnectorSettings {
        id: Some("c1".into()),
        ..settings
    };
    let connector = Connector::new(settings, bus.clone(), Arc::new(verifier)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let task = {
        let (connector, stop) = (connector.clone(), stop.clone());
        tokio::spawn(async move {
            connector
                .run(listener, None, stop.cancelled_owned())
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
        public_pem: public,
        stop,
        task,
    }
}

pub(crate) use warren_proto::time::unix_secs as now;

impl Harness {
    /// A valid token for `uid`.
    pub(crate) fn token(&self, uid: u64) -> String {
        let claims = Claims {
            sub: uid.to_string(),
            exp: now() + 600,
            iat: now(),
            iss: "warren".into(),
            aud: "warren".into(),
            sid: None,
            iat_ms: None,
        };
        encode(&Header::new(Algorithm::EdDSA), &claims, &self.signing).unwrap()
    }

    /// Opens a socket and sends a login frame with `token`; returns the
    /// socket and the first frame the connector answers.
    pub(crate) async fn try_login(&self, token: String) -> (Ws, Frame) {
        let (mut ws, _) = connect_async(&self.url).await.unwrap();
        let login = Frame::new(
            1,
            cmd::LOGIN,
            encode_body(&LoginRequest {
                token,
                ..LoginRequest::default()
            }),
        );
        ws.send(Message::Binary(login.encode().into()))
            .await
            .unwrap();
        let reply = recv(&mut ws).await;
        (ws, reply)
    }

    /// Connects and logs in `uid`; waits for the Connect event.
    pub(crate) async fn player(&mut self, uid: u64) -> Ws {
        let (ws, reply) = self.try_login(self.token(uid)).await;
        assert_eq!(reply.cmd, cmd::LOGIN);
        let ev = self.event().await;
        assert_eq!(ev.uid, Uid(uid));
        assert!(matches!(ev.kind, EventKind::Connect { .. }), "{ev:?}");
        ws
    }

    /// The next socket event (the connector's periodic Alive is skipped).
    pub(crate) async fn event(&mut self) -> BusEvent {
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
}

pub(crate) async fn recv(ws: &mut Ws) -> Frame {
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
