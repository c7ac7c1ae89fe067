//! A websocket test client that speaks PROTOCOL.md: log in, send frames,
//! wait for replies and pushes (stashing what comes in between), expect a
//! kick or a close.

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde::{Serialize, de::DeserializeOwned};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{
        Message,
        protocol::{CloseFrame, WebSocketConfig},
    },
};
use warren_proto::{Frame, cmd};

use crate::stack::STEP;

/// What a client saw next.
#[derive(Debug)]
pub enum Event {
    Frame(Frame),
    Closed(Option<CloseFrame>),
    /// The connection ended without a close frame (or with an error).
    Ended,
}

#[derive(Debug)]
pub struct Client {
    ws: WebSocketStream<TcpStream>,
    next_seq: u64,
    stash: std::collections::VecDeque<Frame>,
    /// Frames travel as JSON text (`?format=json`), converted here, so
    /// every helper works the same on a JSON socket.
    json: bool,
    /// The number of the last numbered frame received (a resumable
    /// session, PROTOCOL.md §3); a gap or a repeat fails the test.
    last_n: u64,
}

/// A resumable login's answer (PROTOCOL.md §3).
pub use warren_proto::LoginReply;

pub fn body<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).unwrap()
}

pub fn decode<T: DeserializeOwned>(frame: &Frame) -> T {
    rmp_serde::from_slice(&frame.body)
        .unwrap_or_else(|e| panic!("body of {frame:?} does not decode: {e}"))
}

/// Bodies of the service commands the tests use (PROTOCOL.md §3).
pub use warren_proto::body::{Presence, PresenceRequest, Room, Said, Say};

pub use warren_proto::{ErrorBody, KickBody};

impl Client {
    pub async fn connect(addr: SocketAddr, url: &str, recv_buffer: Option<u32>) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let tcp = socket.connect(addr).await.expect("connector reachable");
        // Small buffers: benches hold thousands of these.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = client_async_with_config(url, tcp, Some(config))
            .await
            .expect("websocket handshake");
        Client {
            ws,
            next_seq: 1,
            stash: Default::default(),
            json: false,
            last_n: 0,
        }
    }

    /// A client whose socket speaks JSON (PROTOCOL.md §4): `url` without a
    /// query; `?format=json` is added.
    pub async fn connect_json(addr: SocketAddr, url: &str) -> Client {
        let mut client = Client::connect(addr, &format!("{url}?format=json"), None).await;
        client.json = true;
        client
    }

    /// What one websocket message is to this client; `None`: skip it.
    fn event_of(
        &mut self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Option<Event> {
        let (frame, n) = match msg {
            Some(Ok(Message::Binary(b))) if !self.json => {
                Frame::decode_numbered(&b).expect("server frames decode")
            }
            Some(Ok(Message::Text(t))) if self.json => {
                Frame::from_json_numbered(&t).unwrap_or_else(|e| panic!("{t}: {e}"))
            }
            other => return self.other_event(other),
        };
        if let Some(n) = n {
            assert_eq!(
                n,
                self.last_n + 1,
                "numbered frames come in order, once, without gaps: {frame:?}"
            );
            self.last_n = n;
        }
        Some(Event::Frame(frame))
    }

    fn other_event(
        &self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Option<Event> {
        Some(match msg {
            Some(Ok(Message::Binary(_) | Message::Text(_))) => {
                panic!("a frame in the other encoding than this socket chose")
            }
            Some(Ok(Message::Close(frame))) => Event::Closed(frame),
            Some(Ok(_)) => return None,
            Some(Err(_)) | None => Event::Ended,
        })
    }

    /// The next websocket text message as it came (a JSON socket's frame).
    pub async fn next_text(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(STEP, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("nothing received within {STEP:?}"));
            match msg {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    pub fn seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    pub async fn send_frame(&mut self, seq: u64, cmd: u32, body: Vec<u8>) -> Result<(), String> {
        let frame = Frame::new(seq, cmd, body);
        let msg = if self.json {
            Message::Text(frame.to_json().map_err(|e| e.to_string())?.into())
        } else {
            Message::Binary(frame.encode().into())
        };
        self.ws.send(msg).await.map_err(|e| e.to_string())
    }

    pub async fn send_raw(&mut self, msg: Message) -> Result<(), String> {
        self.ws.send(msg).await.map_err(|e| e.to_string())
    }

    /// Sends a request with a fresh seq; returns the seq.
    pub async fn send<T: Serialize + ?Sized>(&mut self, cmd: u32, value: &T) -> u64 {
        let seq = self.seq();
        self.send_frame(seq, cmd, body(value)).await.unwrap();
        seq
    }

    pub async fn next_event(&mut self) -> Event {
        self.next_event_within(STEP).await
    }

    pub async fn next_event_within(&mut self, within: Duration) -> Event {
        loop {
            let msg = tokio::time::timeout(within, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("nothing received within {within:?}"));
            if let Some(event) = self.event_of(msg) {
                return event;
            }
        }
    }

    /// Keeps a frame received out of turn, for [`Client::next_push`].
    pub fn stash(&mut self, frame: Frame) {
        self.stash.push_back(frame);
    }

    pub fn stashed(&self) -> usize {
        self.stash.len()
    }

    /// The next frame, stashed ones first.
    pub async fn next_push(&mut self) -> Frame {
        match self.stash.pop_front() {
            Some(f) => f,
            None => self.recv().await,
        }
    }

    /// The next event, or `None` if nothing arrives within `within`.
    pub async fn try_next_event(&mut self, within: Duration) -> Option<Event> {
        loop {
            let msg = tokio::time::timeout(within, self.ws.next()).await.ok()?;
            if let Some(event) = self.event_of(msg) {
                return Some(event);
            }
        }
    }

    /// The next frame; fails the test on a close.
    pub async fn recv(&mut self) -> Frame {
        match self.next_event().await {
            Event::Frame(f) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Sends a request and returns the reply to it (frames for other seqs in
    /// between are returned too, in the second element).
    pub async fn request<T: Serialize + ?Sized>(
        &mut self,
        cmd: u32,
        value: &T,
    ) -> (Frame, Vec<Frame>) {
        let seq = self.send(cmd, value).await;
        let mut others = Vec::new();
        loop {
            let f = self.recv().await;
            if f.seq == seq {
                return (f, others);
            }
            others.push(f);
        }
    }

    /// Sends a request and returns the reply to it; frames for other seqs
    /// that come first (pushes) are stashed for [`Client::next_push`].
    pub async fn request_keeping_pushes<T: Serialize + ?Sized>(
        &mut self,
        cmd: u32,
        value: &T,
    ) -> Frame {
        let seq = self.send(cmd, value).await;
        loop {
            let f = self.recv().await;
            if f.seq == seq {
                return f;
            }
            self.stash(f);
        }
    }

    /// The number of the last numbered frame received.
    pub fn last_n(&self) -> u64 {
        self.last_n
    }

    /// Logs in to a resumable session (PROTOCOL.md §3), or (`resume`)
    /// resumes one from the last frame received; the login's answer.
    pub async fn login_resumable(&mut self, token: &str, resume: Option<&str>) -> LoginReply {
        let req = warren_proto::LoginRequest {
            token: token.to_owned(),
            resumable: true,
            resume: resume.map(str::to_owned),
            last: resume.map(|_| self.last_n),
        };
        let f = self.login_with(&req).await;
        assert_eq!(f.cmd, cmd::LOGIN, "a login answer: {f:?}");
        let reply: LoginReply = decode(&f);
        if reply.resumed == Some(false) {
            // A new session: numbers start again.
            self.last_n = 0;
        }
        reply
    }

    /// Drops this client's connection without a websocket close (a phone
    /// losing its network) and opens a new one to `addr`; the session's
    /// state (seqs, numbers, stashed frames) stays.
    pub async fn redial(&mut self, addr: SocketAddr, url: &str) {
        let fresh = Client::connect(addr, url, None).await;
        self.ws = fresh.ws;
    }

    pub async fn login(&mut self, token: &str) -> Frame {
        #[derive(Serialize)]
        struct Login<'a> {
            token: &'a str,
        }
        self.login_with(&Login { token }).await
    }

    async fn login_with<T: Serialize>(&mut self, body: &T) -> Frame {
        let seq = self.send(cmd::LOGIN, body).await;
        let f = self.recv().await;
        assert_eq!(f.seq, seq, "the login reply carries the login's seq");
        f
    }

    /// Echoes `payload` and checks it comes back byte for byte.
    pub async fn echo(&mut self, payload: &[u8]) {
        let seq = self.seq();
        self.send_frame(seq, cmd::ECHO, payload.to_vec())
            .await
            .unwrap();
        let f = self.recv().await;
        assert_eq!((f.seq, f.cmd), (seq, cmd::ECHO), "echo reply: {f:?}");
        assert_eq!(&f.body[..], payload);
    }

    /// After an outage of the bus: echoes every 100 ms until an echo comes
    /// back, panicking (naming `what`) if none has `within`. Every try must
    /// be answered within 5 s: the echo, `unavailable` while the bus is
    /// away, or `timeout` for a request lost with it (a late echo of an
    /// earlier try is skipped). Returns how many tries were answered
    /// `timeout`.
    pub async fn echo_until_served(&mut self, within: Duration, what: &str) -> usize {
        self.echo_until_served_or(within, Duration::from_secs(5), what, &[])
            .await
    }

    /// [`Client::echo_until_served`], each try answered within `per_try`
    /// (the connector's request time-out and some), taking the error codes
    /// in `also` as answers too (the durable mode on a cluster refuses a
    /// request the broker would not take with `overloaded`).
    pub async fn echo_until_served_or(
        &mut self,
        within: Duration,
        per_try: Duration,
        what: &str,
        also: &[&str],
    ) -> usize {
        let started = std::time::Instant::now();
        let mut timed_out = 0;
        loop {
            assert!(
                started.elapsed() < within,
                "{what}: no service {within:?} after the bus came back"
            );
            let seq = self.seq();
            self.send_frame(seq, cmd::ECHO, b"\x80".to_vec())
                .await
                .unwrap();
            let answer = loop {
                match self.next_event_within(per_try).await {
                    Event::Frame(f) if f.seq == seq => break f,
                    Event::Frame(f) if f.cmd == cmd::ECHO => {}
                    other => panic!("{what}: try {seq} unanswered: {other:?}"),
                }
            };
            if answer.cmd == cmd::ECHO {
                return timed_out;
            }
            match decode::<ErrorBody>(&answer).code.as_str() {
                "unavailable" => {}
                "timeout" => timed_out += 1,
                other if also.contains(&other) => {}
                other => panic!("{what}: {other}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends one echo and waits (at most `within`) for its answer: `Ok` for
    /// the echo, `Err(code)` for an error frame; anything else fails the
    /// test, with `what` in the message.
    pub async fn echo_or_error(&mut self, within: Duration, what: &str) -> Result<(), String> {
        let seq = self.seq();
        self.send_frame(seq, cmd::ECHO, b"\x80".to_vec())
            .await
            .unwrap();
        match self.next_event_within(within).await {
            Event::Frame(f) if f.seq == seq && f.cmd == cmd::ERROR => {
                Err(decode::<ErrorBody>(&f).code)
            }
            Event::Frame(f) if f.seq == seq && f.cmd == cmd::ECHO => Ok(()),
            other => panic!("{what}: {other:?}"),
        }
    }

    /// Expects a kick with `reason`, then the close.
    pub async fn expect_kick(&mut self, reason: &str) {
        let f = self.recv().await;
        assert_eq!(f.cmd, cmd::KICK, "expected a kick, got {f:?}");
        assert_eq!(decode::<KickBody>(&f).reason, reason);
        assert!(matches!(
            self.next_event().await,
            Event::Closed(_) | Event::Ended
        ));
    }

    /// Expects the connection to close with websocket close `code`.
    pub async fn expect_close(&mut self, code: u16) {
        loop {
            match self.next_event().await {
                Event::Closed(Some(frame)) => {
                    assert_eq!(u16::from(frame.code), code, "close frame {frame:?}");
                    return;
                }
                Event::Frame(_) => continue,
                other => panic!("expected close code {code}, got {other:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
