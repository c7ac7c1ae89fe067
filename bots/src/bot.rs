// Long: one bot's whole life: connect, log in, play its plan, measure every round trip.
//! One bot: it connects when its turn in the ramp comes, logs in like a
//! client, runs its group's scenario until the measured window ends, waits
//! briefly for the answers still owed, and closes.
//!
//! Latency is measured from the time a request was **meant** to be sent
//! (open loop): a bot that falls behind sends at once, and the delay counts
//! against the server, so a stall shows up in the figures instead of
//! silently lowering the load (no coordinated omission). In a closed loop
//! (rate 0) the intended time is the send time.

use std::{
    collections::VecDeque,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::{Semaphore, watch},
    time::{Instant, sleep_until, timeout},
};
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{Message, protocol::WebSocketConfig},
};
use warren_proto::{
    Claims, ErrorBody, Frame, KickBody,
    body::{Buy, Empty, Room, Say},
    cmd, decode_body, encode_body,
};

use crate::{
    pacer::Pacer,
    plan::{Auth, Group, Plan, Scenario},
    stats::Stats,
};

type Ws = WebSocketStream<TcpStream>;

/// Requests one bot may have waiting for an answer before it waits too
/// (the connector refuses more than 1,024 by default).
const MAX_OUTSTANDING: usize = 512;

/// How long a bot waits after the window for answers still owed.
const DRAIN: Duration = Duration::from_secs(3);

/// Shared by every bot of a process.
pub(crate) struct Ctx {
    pub plan: Plan,
    pub stats: Arc<Stats>,
    /// Where the ramp starts, and the measured window.
    pub start: Instant,
    pub begin: Instant,
    pub end: Instant,
    /// Resolved `plan.urls`.
    pub addrs: Vec<SocketAddr>,
    pub signer: Option<EncodingKey>,
    pub http: Option<ureq::Agent>,
    /// Bounds the connections being opened at once.
    pub connecting: Semaphore,
    /// Becomes true when the run is stopped early (Ctrl-C).
    pub stop: watch::Receiver<bool>,
    /// Wakes open-loop bots at their send times.
    pub pacer: Pacer,
    /// The flaky bots' count and their proxy.
    pub flaky: crate::flaky_bot::Book,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("addrs", &self.addrs)
            .field("start", &self.start)
            .field("begin", &self.begin)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

use warren_proto::time::unix_micros;

pub(crate) fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// Runs bot `i` (global index) to the end.
pub(crate) async fn run(ctx: Arc<Ctx>, i: u64) {
    let Some((g, member)) = ctx.plan.group_of(i) else {
        return;
    };
    let group = ctx.plan.groups[g].clone();
    if ctx.plan.ramp > 0.0 {
        sleep_until(ctx.start + Duration::from_secs_f64(i as f64 / ctx.plan.ramp)).await;
    }
    if *ctx.stop.borrow() || Instant::now() >= ctx.end {
        return;
    }
    if group.scenario == Scenario::HttpEcho {
        return crate::http_bot::run(ctx, i, g, group).await;
    }
    if group.scenario == Scenario::Flaky {
        return crate::flaky_bot::run(ctx, i, g, group).await;
    }
    let Some(ws) = connect_counted(&ctx, i, connect(&ctx, i)).await else {
        return;
    };
    let mut bot = Bot {
        ctx: ctx.clone(),
        i,
        g,
        member,
        group,
        ws,
        next_seq: 2,
        outstanding: VecDeque::new(),
        last_sent: Instant::now(),
        purchases: 0,
    };
    let ended = bot.scenario().await;
    ctx.stats.connected.fetch_sub(1, Relaxed);
    match ended {
        End::Done => {
            if Instant::now() >= ctx.end {
                // Stayed connected through the window.
                ctx.stats.connected_at_end.fetch_add(1, Relaxed);
            }
            let _ = timeout(Duration::from_secs(1), bot.ws.close(None)).await;
        }
        End::Kicked(reason) => ctx.stats.kick(&reason),
        End::Lost(kind) => ctx.stats.failure(kind),
    }
}

/// Runs bot `i`'s `connect` (at most `ctx.connecting` at once, within the
/// connect time-out) and counts it: its time and the bot connected, or the
/// kind of failure. `None`: the bot failed (counted) or the run stopped.
pub(crate) async fn connect_counted<T>(
    ctx: &Ctx,
    i: u64,
    connect: impl Future<Output = Result<T, String>>,
) -> Option<T> {
    let _permit = ctx.connecting.acquire().await.ok()?;
    let t0 = Instant::now();
    match timeout(ctx.plan.connect_timeout, connect).await {
        Ok(Ok(connected)) => {
            ctx.stats.connect.record(i, micros(t0.elapsed()));
            ctx.stats.connected.fetch_add(1, Relaxed);
            Some(connected)
        }
        Ok(Err(kind)) => {
            ctx.stats.failure(&kind);
            None
        }
        Err(_) => {
            ctx.stats.failure("connect_timeout");
            None
        }
    }
}

/// Opens the socket, does the websocket handshake and logs in. The error is
/// the kind of failure, as the report counts it.
async fn connect(ctx: &Ctx, i: u64) -> Result<Ws, String> {
    let token = token(ctx, i).await?;
    let n = ctx.plan.urls.len();
    let mut url = ctx.plan.urls[(i % n as u64) as usize].clone();
    if let Auth::Colyseus(base) = &ctx.plan.auth {
        url = colyseus_seat(ctx, base, &url).await?;
    }
    let addr = ctx.addrs[(i % n as u64) as usize];
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {}", io_kind(&e)))?;
    if !ctx.plan.source_ips.is_empty() {
        let k = (i / ctx.plan.per_source_ip.max(1)) as usize % ctx.plan.source_ips.len();
        let ip: Ipv4Addr = ctx.plan.source_ips[k];
        socket
            .bind(SocketAddr::from((ip, 0)))
            .map_err(|e| format!("bind {ip}: {}", io_kind(&e)))?;
    }
    let tcp = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {}", io_kind(&e)))?;
    let _ = tcp.set_nodelay(true);
    // Small buffers: one process holds thousands of these.
    let config = WebSocketConfig::default()
        .read_buffer_size(2048)
        .write_buffer_size(0);
    let (mut ws, _) = client_async_with_config(url.as_str(), tcp, Some(config))
        .await
        .map_err(|e| format!("handshake: {}", short(&e.to_string())))?;
    if matches!(ctx.plan.auth, Auth::Colyseus(_)) {
        colyseus_join(&mut ws).await?;
        return Ok(ws);
    }
    let Some(token) = token else {
        return Ok(ws);
    };
    #[derive(Serialize)]
    struct Login<'a> {
        token: &'a str,
    }
    let login = Frame::new(1, cmd::LOGIN, encode_body(&Login { token: &token }));
    ws.send(Message::Binary(login.encode().into()))
        .await
        .map_err(|_| "login: send failed".to_owned())?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                let frame = Frame::decode(&b).map_err(|_| "login: bad frame".to_owned())?;
                match frame.cmd {
                    cmd::LOGIN => return Ok(ws),
                    cmd::ERROR => {
                        let e: ErrorBody = decode_body("error", &frame.body)
                            .map_err(|_| "login: bad error frame".to_owned())?;
                        return Err(format!("login: {}", e.code));
                    }
                    cmd::KICK => {
                        let k: KickBody = decode_body("kick", &frame.body)
                            .map_err(|_| "login: bad kick frame".to_owned())?;
                        return Err(format!("login: kicked ({})", k.reason));
                    }
                    _ => continue,
                }
            }
            Some(Ok(Message::Close(_))) | None => return Err("login: closed".to_owned()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("login: {}", short(&e.to_string()))),
        }
    }
}

/// Colyseus: reserves a seat in an echo room over HTTP; returns the
/// websocket URL of the seat.
async fn colyseus_seat(ctx: &Ctx, base: &str, ws_base: &str) -> Result<String, String> {
    let url = format!("{base}/matchmake/joinOrCreate/echo");
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Seat {
        session_id: String,
        room_id: String,
        process_id: String,
    }
    let seat: Seat = post_json(ctx, url, serde_json::json!({}), "colyseus matchmake").await?;
    Ok(format!(
        "{ws_base}/{}/{}?sessionId={}",
        seat.process_id, seat.room_id, seat.session_id
    ))
}

/// POSTs JSON and reads a JSON answer, on a blocking thread (ureq); the
/// error names `what` failed, as the report counts it.
async fn post_json<T: serde::de::DeserializeOwned + Send + 'static>(
    ctx: &Ctx,
    url: String,
    body: serde_json::Value,
    what: &'static str,
) -> Result<T, String> {
    let Some(agent) = ctx.http.clone() else {
        return Err(format!("{what}: no HTTP client"));
    };
    tokio::task::spawn_blocking(move || {
        agent
            .post(&url)
            .send_json(body)
            .map_err(|e| match e {
                ureq::Error::StatusCode(code) => format!("{what}: HTTP {code}"),
                other => format!("{what}: {}", short(&other.to_string())),
            })?
            .body_mut()
            .read_json::<T>()
            .map_err(|_| format!("{what}: unexpected answer"))
    })
    .await
    .map_err(|_| format!("{what}: task failed"))?
}

/// Colyseus protocol codes (first byte of every message).
const COLYSEUS_JOIN_ROOM: u8 = 10;
const COLYSEUS_ERROR: u8 = 11;
const COLYSEUS_DATA_BYTES: u8 = 17;

/// Colyseus: waits for the room's JOIN_ROOM and confirms it.
async fn colyseus_join(ws: &mut Ws) -> Result<(), String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.first() == Some(&COLYSEUS_JOIN_ROOM) => {
                return ws
                    .send(Message::Binary(Bytes::from_static(&[COLYSEUS_JOIN_ROOM])))
                    .await
                    .map_err(|_| "colyseus join: send failed".to_owned());
            }
            Some(Ok(Message::Binary(b))) if b.first() == Some(&COLYSEUS_ERROR) => {
                return Err("colyseus join: refused".to_owned());
            }
            Some(Ok(Message::Close(_))) | None => return Err("colyseus join: closed".to_owned()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("colyseus join: {}", short(&e.to_string()))),
        }
    }
}

/// Resolves when the pacer's wake-up comes, and clears it.
pub(crate) async fn fired(wake: &mut Option<tokio::sync::oneshot::Receiver<()>>) {
    if let Some(rx) = wake.as_mut() {
        let _ = rx.await;
    }
    *wake = None;
}

fn io_kind(e: &std::io::Error) -> String {
    use rustix::io::Errno;
    match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::MFILE | Errno::NFILE) => "too many open files".to_owned(),
        Some(Errno::ADDRNOTAVAIL) => "no free local port (add source addresses)".to_owned(),
        Some(Errno::CONNREFUSED) => "refused".to_owned(),
        _ => e.kind().to_string(),
    }
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

pub(crate) async fn token(ctx: &Ctx, i: u64) -> Result<Option<String>, String> {
    match &ctx.plan.auth {
        Auth::None | Auth::Colyseus(_) => Ok(None),
        Auth::Key {
            issuer, audience, ..
        } => {
            let Some(key) = &ctx.signer else {
                return Err("token: no key".to_owned());
            };
            let now = unix_micros() / 1_000_000;
            let claims = Claims {
                sub: (ctx.plan.first_uid + i).to_string(),
                exp: now + 24 * 3600,
                iat: now,
                iss: issuer.clone(),
                aud: audience.clone(),
                sid: None,
                iat_ms: None,
            };
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, key)
                .map(Some)
                .map_err(|e| format!("token: {e}"))
        }
        Auth::Guest(base) => {
            let url = format!("{}/v1/guest", base.trim_end_matches('/'));
            let device = format!("{}-{i}", ctx.plan.id_prefix);
            #[derive(Deserialize)]
            struct Guest {
                token: String,
            }
            let body = serde_json::json!({ "device_id": device });
            let answer: Guest = post_json(ctx, url, body, "guest login").await?;
            Ok(Some(answer.token))
        }
    }
}

/// Why a bot stopped.
enum End {
    /// The window ended (or the run was stopped).
    Done,
    Kicked(String),
    /// The server closed the socket or it broke.
    Lost(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Counted in the group's figures.
    Request,
    /// A heartbeat: counted only for idle bots.
    Heartbeat,
}

#[derive(Debug)]
struct Waiting {
    seq: u64,
    intended: Instant,
    kind: Kind,
    /// Its intended time is in the measured window.
    counted: bool,
}

struct Bot {
    ctx: Arc<Ctx>,
    /// Global index; index within the group.
    i: u64,
    g: usize,
    member: u64,
    group: Group,
    ws: Ws,
    next_seq: u64,
    outstanding: VecDeque<Waiting>,
    last_sent: Instant,
    purchases: u64,
}

/// Only the send stamp of a chat push is read.
#[derive(Deserialize)]
struct ChatPush {
    text: String,
}

impl Bot {
    fn room(&self) -> String {
        format!(
            "{}-g{}-room-{}",
            self.ctx.plan.id_prefix,
            self.g,
            self.member / self.group.room_size
        )
    }

    async fn send(
        &mut self,
        cmd: u32,
        body: Bytes,
        intended: Instant,
        kind: Kind,
    ) -> Result<(), End> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let wire = if matches!(self.ctx.plan.auth, Auth::Colyseus(_)) {
            // [ROOM_DATA_BYTES][type 1][seq][the rest of the payload]
            let mut b = vec![COLYSEUS_DATA_BYTES, 1];
            b.extend_from_slice(&seq.to_be_bytes());
            b.resize(2 + body.len().max(8), b'x');
            b
        } else {
            Frame::new(seq, cmd, body).encode()
        };
        let counted = intended >= self.ctx.begin && intended < self.ctx.end;
        self.ws
            .send(Message::Binary(wire.into()))
            .await
            .map_err(|_| End::Lost("send_failed"))?;
        self.last_sent = Instant::now();
        self.ctx.stats.sent_all.fetch_add(1, Relaxed);
        if counted && kind == Kind::Request {
            let g = &self.ctx.stats.groups[self.g];
            g.sent.fetch_add(1, Relaxed);
            g.lag.record(
                self.i,
                micros(self.last_sent.saturating_duration_since(intended)),
            );
        }
        self.outstanding.push_back(Waiting {
            seq,
            intended,
            kind,
            counted,
        });
        Ok(())
    }

    /// The next request of the scenario, meant to be sent at `intended`.
    fn request(&mut self, intended: Instant) -> (u32, Bytes) {
        match self.group.scenario {
            Scenario::Echo | Scenario::Idle | Scenario::HttpEcho | Scenario::Flaky => {
                (cmd::ECHO, Bytes::from(vec![b'x'; self.group.payload]))
            }
            Scenario::Chat => {
                // Delivery is timed from the intended send time too.
                let ahead = micros(Instant::now().saturating_duration_since(intended));
                let mut text = format!("t{}:", unix_micros().saturating_sub(ahead));
                while text.len() < self.group.payload {
                    text.push('x');
                }
                let room = self.room();
                (cmd::CHAT_SEND, encode_body(&Say::new(room, text)))
            }
            Scenario::Shop => {
                self.purchases += 1;
                match self.purchases % 3 {
                    0 => {
                        let id =
                            format!("{}-{}-{}", self.ctx.plan.id_prefix, self.i, self.purchases);
                        (
                            3003,
                            encode_body(&Buy {
                                item: "potion".into(),
                                request_id: Some(id.into()),
                            }),
                        )
                    }
                    1 => (3004, encode_body(&Empty {})),
                    _ => (3001, encode_body(&Empty {})),
                }
            }
        }
    }

    /// Sends a set-up request (join a room, claim the reward) and waits for
    /// its answer; pushes that arrive meanwhile are handled as usual.
    async fn setup(&mut self, cmd: u32, body: Bytes) -> Result<(), End> {
        let now = Instant::now();
        self.send(cmd, body, now, Kind::Heartbeat).await?;
        let deadline = now + self.ctx.plan.connect_timeout;
        while !self.outstanding.is_empty() {
            tokio::select! {
                msg = self.ws.next() => self.receive(msg)?,
                _ = sleep_until(deadline) => return Err(End::Lost("setup_timeout")),
            }
        }
        Ok(())
    }

    async fn scenario(&mut self) -> End {
        match self.run().await {
            Ok(()) => End::Done,
            Err(end) => end,
        }
    }

    async fn run(&mut self) -> Result<(), End> {
        match self.group.scenario {
            Scenario::Chat => {
                let room = self.room();
                self.setup(cmd::CHAT_JOIN, encode_body(&Room::new(room)))
                    .await?;
            }
            Scenario::Shop => self.setup(3002, encode_body(&Empty {})).await?,
            _ => {}
        }
        let ctx = self.ctx.clone();
        let mut stop = ctx.stop.clone();
        let heartbeat = ctx.plan.heartbeat;
        let open = match self.group.scenario {
            Scenario::Idle => None,
            _ if self.group.rate > 0.0 => Some(Duration::from_secs_f64(1.0 / self.group.rate)),
            _ => None,
        };
        let closed = self.group.scenario != Scenario::Idle && open.is_none();
        // Spread the bots' phases over one interval, so a group does not
        // send in lock step.
        let mut next = Instant::now()
            + open.map_or(Duration::ZERO, |iv| {
                iv.mul_f64((self.i as f64 * 0.618_034) % 1.0)
            });
        // The pacer's wake-up for `next` (open loop).
        let mut wake = None;
        loop {
            let now = Instant::now();
            if now >= ctx.end || *stop.borrow() {
                break;
            }
            let room = self.outstanding.len() < MAX_OUTSTANDING;
            if open.is_some() && wake.is_none() {
                wake = Some(ctx.pacer.at(next));
            }
            let ready = closed && self.outstanding.is_empty();
            let beat_at = self.last_sent + heartbeat;
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                _ = sleep_until(ctx.end) => break,
                msg = self.ws.next() => self.receive(msg)?,
                () = fired(&mut wake), if room && wake.is_some() => {
                    let (cmd, body) = self.request(next);
                    self.send(cmd, body, next, Kind::Request).await?;
                    if let Some(iv) = open {
                        next += iv;
                    }
                }
                () = std::future::ready(()), if room && ready => {
                    let (cmd, body) = self.request(now);
                    self.send(cmd, body, now, Kind::Request).await?;
                }
                _ = sleep_until(beat_at) => {
                    let kind = if self.group.scenario == Scenario::Idle { Kind::Request } else { Kind::Heartbeat };
                    self.send(cmd::HEARTBEAT, encode_body(&Empty {}), Instant::now(), kind).await?;
                }
            }
        }
        // Answers still owed.
        let deadline = Instant::now() + DRAIN;
        while !self.outstanding.is_empty() {
            tokio::select! {
                msg = self.ws.next() => self.receive(msg)?,
                _ = sleep_until(deadline) => break,
            }
        }
        for w in self.outstanding.drain(..) {
            if w.counted && w.kind == Kind::Request {
                self.ctx.stats.failure("no_answer");
            }
        }
        Ok(())
    }

    // Long: one arm per kind of frame a bot can get.
    fn receive(
        &mut self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), End> {
        let data = match msg {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(_))) | None => return Err(End::Lost("closed_by_server")),
            Some(Ok(_)) => return Ok(()),
            Some(Err(_)) => return Err(End::Lost("socket_error")),
        };
        let now = Instant::now();
        let stats = &self.ctx.stats;
        let frame = if matches!(self.ctx.plan.auth, Auth::Colyseus(_)) {
            match (data.first().map(|b| b & 0x1f), data.get(2..10)) {
                (Some(COLYSEUS_DATA_BYTES), Some(seq)) => {
                    let seq = u64::from_be_bytes(seq.try_into().unwrap_or_default());
                    Ok(Frame::new(seq, cmd::ECHO, Bytes::new()))
                }
                (Some(COLYSEUS_ERROR), _) => Ok(Frame::new(
                    0,
                    cmd::KICK,
                    encode_body(&KickBody {
                        reason: "colyseus_error".to_owned(),
                    }),
                )),
                _ => return Ok(()),
            }
        } else {
            Frame::decode(&data)
        };
        let Ok(frame) = frame else {
            stats.failure("bad_frame");
            return Ok(());
        };
        if frame.seq == 0 {
            match frame.cmd {
                cmd::KICK => {
                    let reason = decode_body::<KickBody>("kick", &frame.body)
                        .map(|k| k.reason)
                        .unwrap_or_else(|_| "unknown".to_owned());
                    return Err(End::Kicked(reason));
                }
                cmd::CHAT_MESSAGE => {
                    let sent = decode_body::<ChatPush>("chat", &frame.body)
                        .ok()
                        .and_then(|p| {
                            p.text
                                .strip_prefix('t')?
                                .split(':')
                                .next()?
                                .parse::<u64>()
                                .ok()
                        });
                    if let Some(sent) = sent
                        && now >= self.ctx.begin
                        && now < self.ctx.end
                    {
                        let g = &stats.groups[self.g];
                        g.pushes.fetch_add(1, Relaxed);
                        g.push.record(self.i, unix_micros().saturating_sub(sent));
                    }
                }
                _ => {}
            }
            return Ok(());
        }
        let Some(pos) = self.outstanding.iter().position(|w| w.seq == frame.seq) else {
            // A late answer to a request already given up on.
            return Ok(());
        };
        let Some(w) = self.outstanding.remove(pos) else {
            return Ok(());
        };
        stats.received_all.fetch_add(1, Relaxed);
        let latency = micros(now.saturating_duration_since(w.intended));
        let error = if frame.cmd == cmd::ERROR {
            let code = decode_body::<ErrorBody>("error", &frame.body)
                .map(|e| e.code)
                .unwrap_or_else(|_| "unknown".to_owned());
            // Business answers of the shop scenario, not failures.
            let expected = matches!(code.as_str(), "insufficient_funds" | "already_claimed");
            (!expected).then_some(code)
        } else {
            None
        };
        if w.kind == Kind::Request {
            stats.live(self.i, latency);
        }
        if let Some(code) = &error {
            stats.error(code);
        }
        if w.counted && w.kind == Kind::Request {
            let g = &stats.groups[self.g];
            g.answered.fetch_add(1, Relaxed);
            if error.is_some() {
                g.failed.fetch_add(1, Relaxed);
            } else {
                g.reply.record(self.i, latency);
            }
        }
        Ok(())
    }
}
