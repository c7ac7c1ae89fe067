//! The life of one socket: handshake, login, serving, closing.
//!
//! Two tasks per socket: this one reads (and decides), a writer drains the
//! bounded outbound queue into the socket. Anything that wants the socket to
//! end calls [`ConnHandle::stop`] with a reason; both tasks see it, the writer
//! says goodbye (kick frame or close code), and this task announces the Close
//! on the bus if the socket still held its uid.

use std::{net::SocketAddr, pin::Pin, sync::Arc, time::Instant};

use bytes::Bytes;
use futures_util::{StreamExt, stream::SplitStream};
use tokio::{
    net::TcpStream,
    sync::OwnedSemaphorePermit,
    time::{Sleep, timeout},
};
use tokio_tungstenite::{
    WebSocketStream, accept_hdr_async_with_config,
    tungstenite::{
        self, Message,
        handshake::server::{ErrorResponse, Request, Response},
        http::StatusCode,
        protocol::{WebSocketConfig, frame::coding::CloseCode},
    },
};
use tracing::{debug, warn};
use warren_bus::{Address, BusError, Done, send_and_confirm};
use warren_kit::{
    rate::Bucket,
    tls::{Stream, Tls},
};
use warren_proto::{
    BusEvent, ConnId, ErrorBody, EventKind, Frame, HeartbeatReply, HeartbeatRequest, Uid,
    cmd::{self, code, kick},
    decode_body, encode_body,
};

mod format;
mod login;
mod resume;
mod writer;

use format::Format;
use writer::{linger, write_loop};

use crate::{
    registry::{ConnHandle, Exit},
    server::Shared,
    stats::Stats,
};

type Ws = WebSocketStream<Stream>;

/// One socket's life: the task the accept loop spawns, inside the socket's
/// `socket` span (conn id and peer); `permit` is its place under the
/// connection limit. Written as a function around an `async move` block
/// rather than as an `async fn`, which would keep its arguments (the TCP
/// stream, the TLS acceptor) in every socket's task for its whole life,
/// and a second copy of those it uses; `#[tracing::instrument]` would hold
/// the whole future twice over.
pub(crate) fn serve(
    shared: Arc<Shared>,
    tcp: TcpStream,
    tls: Option<Tls>,
    peer: SocketAddr,
    id: ConnId,
    permit: OwnedSemaphorePermit,
) -> impl Future<Output = ()> + Send {
    // The handshake, the login, the end and the goodbye are boxed: they run
    // once, and inline they would make every socket's long-lived task as
    // large as their biggest state for its whole life.
    let handshake = Box::pin(handshake(shared.clone(), tcp, tls, peer));
    async move {
        let Some((ws, format)) = handshake.await else {
            Stats::inc(&shared.stats.handshake_failures);
            return;
        };
        let (sink, stream) = ws.split();
        let handle = Arc::new(ConnHandle::new(
            id,
            shared.shutdown.child_token(),
            shared.settings.outbound_queue,
            shared.settings.outbound_queue_bytes,
        ));
        if format == Format::Json {
            Stats::inc(&shared.stats.json_sockets);
        }
        let writer = tokio::spawn(write_loop(sink, handle.clone(), format, shared.clone()));

        let mut conn = Conn {
            shared: &shared,
            handle: &handle,
            peer,
            format,
            uid: None,
            left: false,
        };
        let (stream, event) = conn.read_loop(stream).await;

        if let Some(uid) = conn.uid {
            Box::pin(conn.socket_gone(uid, event)).await;
        }
        handle.stop(Exit::Gone);
        let Ok(sink) = writer.await else { return };
        Box::pin(linger(stream, sink, shared.settings.close_timeout_ms)).await;
        drop(permit);
    }
}

/// The TLS handshake (when the connector has a certificate), then the
/// websocket's, both within `connector.handshake_timeout_ms`.
async fn handshake(
    shared: Arc<Shared>,
    tcp: TcpStream,
    tls: Option<Tls>,
    peer: SocketAddr,
) -> Option<(Ws, Format)> {
    let _ = tcp.set_nodelay(true);
    let path = shared.settings.path.clone();
    let mut format = Format::default();
    // The error type is tungstenite's `Callback` contract, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let refuse = |status, why: String| {
            let mut err = ErrorResponse::new(Some(why));
            *err.status_mut() = status;
            Err(err)
        };
        if req.uri().path() != path {
            return refuse(
                StatusCode::NOT_FOUND,
                format!("no websocket at {}", req.uri().path()),
            );
        }
        match Format::from_query(req.uri().query()) {
            Ok(chosen) => {
                format = chosen;
                Ok(resp)
            }
            Err(why) => refuse(StatusCode::BAD_REQUEST, why),
        }
    };
    let max = shared.settings.max_frame_bytes;
    let config = WebSocketConfig::default()
        .read_buffer_size(shared.settings.read_buffer_bytes)
        .write_buffer_size(0)
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let deadline = shared.settings.handshake_timeout_ms;
    let ws = match timeout(deadline, async {
        let stream = Stream::accept(tcp, tls.as_ref())
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        accept_hdr_async_with_config(stream, check, Some(config))
            .await
            .map_err(|e| e.to_string())
    })
    .await
    {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "websocket handshake failed");
            return None;
        }
        Err(_) => {
            debug!(%peer, "websocket handshake timed out");
            return None;
        }
    };
    Some((ws, format))
}

/// A request on its way to the game: the bus's send, to be awaited, and
/// when its answer is due.
struct Forward<'a> {
    send: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    answer_by: Instant,
}

struct Conn<'a> {
    shared: &'a Arc<Shared>,
    handle: &'a Arc<ConnHandle>,
    peer: SocketAddr,
    format: Format,
    uid: Option<Uid>,
    /// The client closed with 1000: it left on purpose (its session, if
    /// resumable, ends at once).
    left: bool,
}

impl Conn<'_> {
    fn reply(&self, seq: u64, cmd: u32, body: Bytes) {
        reply(self.handle, &self.shared.stats, seq, cmd, body);
    }

    fn reply_error(&self, seq: u64, code: &str, message: impl Into<String>) {
        reply_error(self.handle, &self.shared.stats, seq, code, message);
    }

    // Long: one select over frames, the socket's timer and shutdown; each arm calls out, and splitting the loop would pass its state around.
    /// Reads until the socket must end; returns the read half and the event
    /// that announces the end on the bus.
    async fn read_loop(&mut self, mut stream: SplitStream<Ws>) -> (SplitStream<Ws>, EventKind) {
        let settings = &self.shared.settings;
        let stats = &self.shared.stats;
        let login_deadline = Instant::now() + settings.login_timeout_ms;
        let mut last_seen = Instant::now();
        let mut bucket = Bucket::new(
            settings.rate_limit_per_sec,
            settings.rate_limit_burst,
            last_seen,
        );
        let mut byte_bucket = Bucket::new(
            settings.byte_limit_per_sec,
            settings.byte_limit_burst,
            last_seen,
        );
        // One wait for the stop and one timer for the whole life of the
        // socket: registering either anew for every frame cost more than the
        // rest of the frame's handling. The timer is armed at the earliest
        // deadline known when it was set; deadlines only move later as
        // frames arrive (the idle one) or are answered (the requests'), so
        // a timer that fires early just checks and re-arms.
        let stop = self.handle.stopped().clone();
        let mut stopped = std::pin::pin!(stop.cancelled());
        let mut timer = Timer::new(login_deadline);
        loop {
            let msg = tokio::select! {
                biased;
                _ = &mut stopped => return (stream, closed(&self.handle.exit())),
                _ = timer.fired() => {
                    let now = Instant::now();
                    for seq in self.handle.expired(now) {
                        Stats::inc(&stats.request_timeouts);
                        debug!(uid = ?self.uid, seq, "no answer in time: timeout");
                        self.reply_error(
                            seq,
                            code::TIMEOUT,
                            format!(
                                "no answer from the game within {} ms; the request may still have been carried out",
                                settings.request_timeout_ms.as_millis()
                            ),
                        );
                    }
                    let deadline = match self.uid {
                        None => login_deadline,
                        Some(_) => last_seen + settings.idle_timeout_ms,
                    };
                    if deadline <= now {
                        let exit = if self.uid.is_some() {
                            Stats::inc(&stats.kicked_idle);
                            if self.handle.session().is_some() {
                                // Most likely a dead network: the session
                                // waits for the client to resume.
                                Exit::Close(CloseCode::Away, kick::IDLE_TIMEOUT)
                            } else {
                                Exit::Kick(kick::IDLE_TIMEOUT.to_owned())
                            }
                        } else {
                            Stats::inc(&stats.login_timeouts);
                            Exit::Close(CloseCode::Policy, "login timeout")
                        };
                        self.handle.stop(exit.clone());
                        return (stream, closed(&exit));
                    }
                    let next = self.handle.next_deadline().map_or(deadline, |d| d.min(deadline));
                    timer.arm(next);
                    continue;
                }
                msg = stream.next() => msg,
            };
            // Every frame the client sends costs a token, pings included.
            let over = match &msg {
                Some(Ok(m)) => {
                    let now = Instant::now();
                    !bucket.take(now) || !byte_bucket.take_n(m.len(), now)
                }
                _ => false,
            };
            if over {
                Stats::inc(&stats.kicked_rate);
                if let Some(uid) = self.uid {
                    let until = Instant::now() + settings.kick_cooldown_ms;
                    self.shared.registry.cool_down(uid, until);
                }
                let exit = Exit::Kick(kick::RATE_LIMITED.to_owned());
                self.handle.stop(exit.clone());
                return (stream, closed(&exit));
            }
            if let Some(Ok(m)) = &msg {
                Stats::add(&stats.bytes_in, m.len());
            }
            let msg = match msg {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    last_seen = Instant::now();
                    continue;
                }
                Some(Ok(Message::Frame(_))) => continue,
                Some(Ok(Message::Close(_))) | None => {
                    // Only a close with 1000 is leaving on purpose.
                    self.left = matches!(&msg, Some(Ok(Message::Close(Some(c)))) if c.code == CloseCode::Normal);
                    self.handle.stop(Exit::Gone);
                    return (
                        stream,
                        EventKind::Close {
                            reason: "client_closed".into(),
                        },
                    );
                }
                Some(Ok(msg)) => msg,
                Some(Err(tungstenite::Error::Capacity(e))) => {
                    Stats::inc(&stats.oversize_frames);
                    debug!(peer = %self.peer, error = %e, "frame over the limit");
                    let exit = Exit::Close(CloseCode::Size, "frame too large");
                    self.handle.stop(exit.clone());
                    return (stream, closed(&exit));
                }
                Some(Err(e)) => {
                    self.handle.stop(Exit::Gone);
                    return (
                        stream,
                        EventKind::Error {
                            error: e.to_string(),
                        },
                    );
                }
            };
            let frame = match self.format.read(msg) {
                Ok(frame) => frame,
                Err(why) => {
                    debug!(peer = %self.peer, why, "invalid frame");
                    return (stream, self.invalid_frame(why));
                }
            };
            match self.uid {
                None if frame.cmd == cmd::LOGIN => {
                    if let Err(exit) = Box::pin(self.login(frame)).await {
                        self.handle.stop(exit.clone());
                        return (stream, closed(&exit));
                    }
                    last_seen = Instant::now();
                    // The idle deadline replaces the login one, and may
                    // come first (an idle time-out shorter than the login's);
                    // a resumed session may have requests waiting.
                    timer.at_most(last_seen + settings.idle_timeout_ms);
                    if let Some(answer_by) = self.handle.next_deadline() {
                        timer.at_most(answer_by);
                    }
                }
                None => Stats::inc(&stats.dropped_before_login),
                Some(uid) => {
                    last_seen = Instant::now();
                    if let Some(forward) = self.on_frame(uid, frame) {
                        forward.send.await;
                        timer.at_most(forward.answer_by);
                    }
                }
            }
        }
    }

    fn invalid_frame(&self, why: &'static str) -> EventKind {
        Stats::inc(&self.shared.stats.invalid_frames);
        let exit = Exit::Close(CloseCode::Invalid, why);
        self.handle.stop(exit.clone());
        closed(&exit)
    }

    /// Serves one frame of a logged-in socket; returns the request it
    /// forwards, if it does. Not async itself: the read loop awaits only the
    /// bus's send, so the frame and the event are not kept in every
    /// socket's task for its whole life (200 bytes).
    fn on_frame(&self, uid: Uid, frame: Frame) -> Option<Forward<'_>> {
        match frame.cmd {
            cmd::LOGIN => {
                self.reply_error(frame.seq, code::BAD_REQUEST, "already logged in");
                None
            }
            cmd::HEARTBEAT => {
                if let Some(session) = self.handle.session()
                    && let Ok(HeartbeatRequest { last: Some(last) }) =
                        decode_body("a heartbeat", &frame.body)
                {
                    session.ack(last);
                }
                let now = warren_proto::time::unix_ms();
                self.reply(
                    frame.seq,
                    cmd::HEARTBEAT,
                    encode_body(&HeartbeatReply {
                        server_time_ms: now,
                    }),
                );
                None
            }
            c if c < cmd::FIRST_SERVICE_CMD => {
                self.reply_error(frame.seq, code::UNKNOWN_CMD, format!("no command {c}"));
                None
            }
            _ => {
                if let Some(session) = self.handle.session()
                    && !session.take(frame.seq)
                {
                    // Sent again after a resume: its answer is (or will be)
                    // among the session's numbered frames.
                    Stats::inc(&self.shared.stats.duplicate_requests);
                    debug!(%uid, seq = frame.seq, "a request this session took already: not applied again");
                    return None;
                }
                let settings = &self.shared.settings;
                let answer_by = Instant::now() + settings.request_timeout_ms;
                if !self
                    .handle
                    .expect_reply(frame.seq, answer_by, settings.max_in_flight.max(1))
                {
                    Stats::inc(&self.shared.stats.refused_in_flight);
                    let message = format!(
                        "{} requests are already waiting for an answer on this connection",
                        settings.max_in_flight
                    );
                    self.reply_error(frame.seq, code::OVERLOADED, message);
                    return None;
                }
                let (seq, cmd) = (frame.seq, frame.cmd);
                let ev = self.event(
                    uid,
                    EventKind::Message {
                        seq,
                        cmd,
                        body: frame.body,
                    },
                );
                // The socket reads on while the broker confirms: nobody
                // waits for a confirm, and a refusal still reaches the
                // client as an error reply (a request is never lost
                // silently).
                let (shared, handle) = (self.shared.clone(), self.handle.clone());
                let done: Done = Box::new(move |outcome| {
                    if let Err(e) = outcome {
                        not_forwarded(&shared, &handle, uid, seq, cmd, e);
                    }
                });
                let to = Address::of_event(&ev, self.shared.bus.shards());
                Stats::inc(&self.shared.stats.frames_in);
                let send = self
                    .shared
                    .bus
                    .send(to, warren_bus::Message::Event(ev), done);
                Some(Forward { send, answer_by })
            }
        }
    }

    fn event(&self, uid: Uid, kind: EventKind) -> BusEvent {
        self.event_for(self.handle.id(), uid, kind)
    }

    fn event_for(&self, conn: ConnId, uid: Uid, kind: EventKind) -> BusEvent {
        BusEvent {
            connector: self.shared.id.clone(),
            conn,
            uid,
            kind,
        }
    }

    async fn publish_lifecycle(&self, uid: Uid, kind: EventKind) {
        let ev = self.event(uid, kind);
        if let Err(e) = publish(self.shared, ev).await {
            warn!(%uid, error = %e, "could not announce a closed socket");
        }
    }
}

/// A request the bus did not take: it is no longer awaited, and the client
/// hears why, unless it was already answered (the refusal came after the
/// request's time-out, which the client heard instead: one answer each).
fn not_forwarded(shared: &Shared, handle: &ConnHandle, uid: Uid, seq: u64, cmd: u32, e: BusError) {
    Stats::inc(&shared.stats.bus_errors);
    warn!(%uid, cmd, error = %e, "request not forwarded");
    if !handle.answered(seq) {
        debug!(%uid, seq, "the request was answered already (timed out): no second answer");
        return;
    }
    let (code, message) = match e {
        BusError::Rejected(_) => (code::OVERLOADED, "the game is overloaded, try again"),
        _ => (code::UNAVAILABLE, "the game is unavailable, try again"),
    };
    reply_error(handle, &shared.stats, seq, code, message);
}

/// Queues a frame for the socket (see [`ConnHandle::send`]).
fn reply(handle: &ConnHandle, stats: &Stats, seq: u64, cmd: u32, body: Bytes) {
    handle.send(Frame::new(seq, cmd, body).encode().into(), stats);
}

/// Queues an error answer to request `seq`.
fn reply_error(
    handle: &ConnHandle,
    stats: &Stats,
    seq: u64,
    code: &str,
    message: impl Into<String>,
) {
    handle.send(error_frame(seq, code, message), stats);
}

/// An error answer to request `seq`, encoded.
fn error_frame(seq: u64, code: &str, message: impl Into<String>) -> Bytes {
    let body = encode_body(&ErrorBody::new(code, message));
    Frame::new(seq, cmd::ERROR, body).encode().into()
}

/// One socket's timer: armed at an instant, and re-armed only when it fires
/// or an earlier deadline comes up.
struct Timer {
    sleep: Pin<Box<Sleep>>,
}

impl Timer {
    fn new(at: Instant) -> Self {
        Timer {
            sleep: Box::pin(tokio::time::sleep_until(at.into())),
        }
    }

    fn arm(&mut self, at: Instant) {
        self.sleep.as_mut().reset(at.into());
    }

    /// Brings the timer forward to `at` if it is set later.
    fn at_most(&mut self, at: Instant) {
        if tokio::time::Instant::from_std(at) < self.sleep.deadline() {
            self.arm(at);
        }
    }

    fn fired(&mut self) -> &mut Pin<Box<Sleep>> {
        &mut self.sleep
    }
}

/// The bus event that announces a socket ending for `exit`.
fn closed(exit: &Exit) -> EventKind {
    let reason = match exit {
        Exit::Kick(reason) => reason.clone(),
        Exit::Close(_, reason) => reason.replace(' ', "_"),
        Exit::Gone => "client_closed".to_owned(),
    };
    EventKind::Close { reason }
}

/// Sends an event and waits until the bus has taken it (bounded: the bus
/// answers within its own bounds, refusing at once while it is down).
pub(crate) async fn publish(shared: &Shared, ev: BusEvent) -> Result<(), BusError> {
    let to = Address::of_event(&ev, shared.bus.shards());
    send_and_confirm(&*shared.bus, to, warren_bus::Message::Event(ev)).await
}
