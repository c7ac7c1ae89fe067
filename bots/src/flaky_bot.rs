//! The `flaky` scenario: bots in resumable sessions (PROTOCOL.md §5) whose
//! connections are cut every `cut_every` seconds while chat flows, half by
//! closing the socket without a websocket close, half by a proxy that stalls
//! it (nothing passes; the bot notices the silence by its heartbeats). Each
//! bot then resumes — on the next connector of the list — and checks what
//! it gets:
//!
//! - every numbered frame once, in order: a number skipped is a frame lost,
//!   a number again a frame duplicated;
//! - every chat line of every member of its room once, in each sender's
//!   order: a sender's line that does not arrive is lost (counted at the
//!   end, for the lines whose sender had its answer), one that arrives
//!   twice was applied twice (a request sent again after a resume must not
//!   be), one after a later line of its sender is out of order;
//! - every reply once.
//!
//! Rooms stay within one process (their names carry the worker), so the
//! process can tell lost lines apart at the end. Resume latency is timed
//! from the cut to the `resumed` answer. A resume answered `resync` is
//! counted (and the bot's figures for that session are not).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::{
    net::{TcpSocket, TcpStream},
    time::{Instant, sleep, sleep_until, timeout},
};
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{
        Message,
        protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode},
    },
};
use warren_proto::{
    ErrorBody, Frame, HeartbeatRequest, KickBody, LoginReply, LoginRequest,
    body::{Room, Say},
    cmd, decode_body, encode_body,
};

use crate::{
    bot::{Ctx, micros, token},
    plan::Group,
};

mod book;

pub(crate) use book::Book;
use book::Proxy;

type Ws = WebSocketStream<TcpStream>;

/// A connection silent for this many heartbeats is taken as dead.
const SILENT_BEATS: f64 = 2.5;
/// After the window: how long a bot waits for the answers still owed.
const DRAIN: Duration = Duration::from_secs(5);

/// Why a connection ended.
enum Gone {
    /// Cut (on purpose, or found silent, or the connector is stopping):
    /// resume.
    Cut,
    /// Kicked for another reason: the bot stops.
    Kicked(String),
}

/// One flaky bot.
struct Bot {
    ctx: Arc<Ctx>,
    i: u64,
    group: Group,
    token: String,
    ws: Option<Ws>,
    /// The socket's local address (the proxy knows it by it).
    local: Option<SocketAddr>,
    session: Option<String>,
    last_n: u64,
    last_heard: Instant,
    next_seq: u64,
    /// Chat lines sent so far (each carries its number).
    lines: u64,
    /// Requests without an answer: seq → (chat line number, when it was
    /// first sent, frame).
    owed: BTreeMap<u64, (Option<u64>, Instant, Vec<u8>)>,
    /// The connection is stalled (cut in the proxy, not yet noticed).
    stalled: bool,
    g: usize,
    /// Seqs answered, to see an answer come twice.
    answered: BTreeSet<u64>,
    /// Own lines answered without error.
    acked: BTreeSet<u64>,
    /// Lines heard from each sender, and the highest.
    heard: HashMap<u64, BTreeSet<u64>>,
    highest: HashMap<u64, u64>,
    /// Its session had to start again (its figures are not counted).
    resynced: bool,
    dials: u64,
    cuts: u64,
    room: String,
    members: Vec<u64>,
}

#[derive(Deserialize)]
struct Said {
    text: String,
}

/// Runs flaky bot `i` of group `g` to the end.
pub(crate) async fn run(ctx: Arc<Ctx>, i: u64, g: usize, group: Group) {
    let stats = ctx.stats.clone();
    let proxy = ctx
        .flaky
        .proxy
        .get_or_try_init(|| Proxy::start(&ctx.addrs))
        .await;
    if proxy.is_err() {
        return stats.failure("flaky: proxy");
    }
    let token = match token(&ctx, i).await {
        Ok(Some(token)) => token,
        Ok(None) => return stats.failure("flaky: needs tokens (--key)"),
        Err(kind) => return stats.failure(&kind),
    };
    let (room, members) = room_of(&ctx, i, g, &group);
    let mut bot = Bot {
        ctx: ctx.clone(),
        i,
        group,
        token,
        ws: None,
        local: None,
        session: None,
        last_n: 0,
        last_heard: Instant::now(),
        next_seq: 1,
        lines: 0,
        owed: BTreeMap::new(),
        answered: BTreeSet::new(),
        acked: BTreeSet::new(),
        heard: HashMap::new(),
        highest: HashMap::new(),
        resynced: false,
        stalled: false,
        g,
        dials: 0,
        cuts: 0,
        room,
        members,
    };
    bot.play().await;
}

/// The room of bot `i` and its members' uids: bots of the same process
/// (`i % workers`), `room_size` at a time, within the group.
fn room_of(ctx: &Ctx, i: u64, g: usize, group: &Group) -> (String, Vec<u64>) {
    let plan = &ctx.plan;
    let workers = plan.workers.max(1);
    let (worker, rank) = (i % workers, i / workers);
    let bucket = rank / group.room_size;
    let members = (bucket * group.room_size..(bucket + 1) * group.room_size)
        .map(|r| r * workers + worker)
        .filter(|&j| plan.group_of(j).is_some_and(|(jg, _)| jg == g))
        .map(|j| plan.first_uid + j)
        .collect();
    (
        format!("{}-flaky-w{worker}-{bucket}", plan.id_prefix),
        members,
    )
}

impl Bot {
    fn uid(&self) -> u64 {
        self.ctx.plan.first_uid + self.i
    }

    fn count(&self, what: &str, n: u64) {
        if n > 0 {
            self.ctx.stats.flaky(what, n);
        }
    }

    async fn play(&mut self) {
        let ctx = self.ctx.clone();
        let t0 = Instant::now();
        if let Err(kind) = self.dial().await {
            return ctx.stats.failure(&kind);
        }
        ctx.stats.connect.record(self.i, micros(t0.elapsed()));
        ctx.stats.connected.fetch_add(1, Relaxed);
        let beat = ctx.plan.heartbeat;
        let every = Duration::from_secs_f64(1.0 / self.group.rate.max(0.001));
        let mut next_send = Instant::now() + every.mul_f64((self.i as f64 * 0.618_034) % 1.0);
        let mut next_beat = Instant::now() + beat;
        let mut next_cut = self.next_cut();
        loop {
            let outcome = self
                .until_gone(&mut next_send, &mut next_beat, &mut next_cut)
                .await;
            match outcome {
                None if self.stalled => {
                    // The window ended on a stalled connection: resume, to
                    // get what was sent meanwhile.
                    self.stalled = false;
                    if !self.redial().await {
                        ctx.stats.connected.fetch_sub(1, Relaxed);
                        return;
                    }
                    break;
                }
                None => break,
                Some(Gone::Kicked(reason)) => {
                    ctx.stats.kick(&reason);
                    ctx.stats.connected.fetch_sub(1, Relaxed);
                    return;
                }
                Some(Gone::Cut) => {
                    let t0 = Instant::now();
                    self.stalled = false;
                    if !self.redial().await {
                        ctx.stats.connected.fetch_sub(1, Relaxed);
                        return;
                    }
                    ctx.stats.resume.record(self.i, micros(t0.elapsed()));
                    next_cut = self.next_cut();
                    next_beat = Instant::now() + beat;
                }
            }
        }
        self.drain().await;
        ctx.stats.connected.fetch_sub(1, Relaxed);
        ctx.stats.connected_at_end.fetch_add(1, Relaxed);
        self.file();
    }

    /// When to cut next: `cut_every` on average, spread.
    fn next_cut(&self) -> Instant {
        let every = Duration::from_secs_f64(self.group.cut_every.max(0.5));
        let phase = ((self.i + self.cuts) as f64 * 0.618_034) % 1.0;
        Instant::now() + every.mul_f64(0.5 + phase)
    }

    // Long: one select over the socket, the send and heartbeat clocks, the cut and the window's end.
    /// Plays until the connection is cut (or kicked), or the window ends
    /// (None).
    async fn until_gone(
        &mut self,
        next_send: &mut Instant,
        next_beat: &mut Instant,
        next_cut: &mut Instant,
    ) -> Option<Gone> {
        let ctx = self.ctx.clone();
        let beat = ctx.plan.heartbeat;
        let every = Duration::from_secs_f64(1.0 / self.group.rate.max(0.001));
        loop {
            let stalled = self.stalled;
            let ws = self.ws.as_mut()?;
            tokio::select! {
                biased;
                () = sleep_until(ctx.end) => return None,
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(data))) => {
                        if let Some(gone) = self.on_frame(&data) {
                            return Some(gone);
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return Some(Gone::Cut),
                    Some(Ok(_)) => {}
                },
                () = sleep_until(*next_cut), if !stalled => {
                    self.cuts += 1;
                    if self.cuts % 2 == 1 {
                        // Dropped: no websocket close.
                        self.count("cuts_closed", 1);
                        self.ws = None;
                        return Some(Gone::Cut);
                    }
                    self.count("cuts_stalled", 1);
                    if let (Some(proxy), Some(local)) = (ctx.flaky.proxy.get(), self.local) {
                        proxy.stall(local);
                    }
                    self.stalled = true;
                }
                () = sleep_until(*next_send), if !stalled => {
                    *next_send += every;
                    self.say().await;
                }
                () = sleep_until(*next_beat) => {
                    *next_beat += beat;
                    if self.last_heard.elapsed() > beat.mul_f64(SILENT_BEATS) {
                        // Silent: a stalled or half-open connection.
                        self.ws = None;
                        return Some(Gone::Cut);
                    }
                    let last = Some(self.last_n);
                    self.send(cmd::HEARTBEAT, encode_body(&HeartbeatRequest { last }).to_vec(), None).await;
                }
            }
        }
    }

    async fn send(&mut self, cmd: u32, body: Vec<u8>, line: Option<u64>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let frame = Frame::new(seq, cmd, body).encode();
        if cmd != cmd::HEARTBEAT {
            self.owed.insert(seq, (line, Instant::now(), frame.clone()));
            let now = Instant::now();
            if line.is_some() && now >= self.ctx.begin && now < self.ctx.end {
                self.ctx.stats.groups[self.g].sent.fetch_add(1, Relaxed);
            }
        }
        if let Some(ws) = self.ws.as_mut() {
            // A failed send shows as a closed socket on the next read.
            let _ = ws.send(Message::Binary(frame.into())).await;
        }
    }

    async fn say(&mut self) {
        self.lines += 1;
        let (uid, k) = (self.uid(), self.lines);
        let mut text = format!("f{uid}:{k}:{}:", warren_proto::time::unix_micros());
        while text.len() < self.group.payload {
            text.push('x');
        }
        let body = encode_body(&Say::new(self.room.clone(), text)).to_vec();
        self.send(cmd::CHAT_SEND, body, Some(k)).await;
    }

    /// Takes one frame in; `Some` if the connection is over.
    fn on_frame(&mut self, data: &[u8]) -> Option<Gone> {
        self.last_heard = Instant::now();
        let Ok((frame, n)) = Frame::decode_numbered(data) else {
            self.ctx.stats.failure("bad_frame");
            return None;
        };
        if let Some(n) = n {
            if n <= self.last_n {
                self.count("frames_duplicated", 1);
                return None;
            }
            self.count("frames_lost", n - self.last_n - 1);
            self.last_n = n;
        }
        match (frame.seq, frame.cmd) {
            (0, cmd::KICK) => {
                let reason = decode_body::<KickBody>("kick", &frame.body)
                    .map_or_else(|_| "unknown".to_owned(), |k| k.reason);
                if reason == cmd::kick::RECONNECT {
                    self.count("reconnect_kicks", 1);
                    return Some(Gone::Cut);
                }
                return Some(Gone::Kicked(reason));
            }
            (0, cmd::CHAT_MESSAGE) => self.heard_line(&frame.body),
            (0, _) => {}
            (seq, c) => self.answer(seq, c, &frame.body),
        }
        None
    }

    fn heard_line(&mut self, body: &[u8]) {
        let Ok(said) = decode_body::<Said>("chat", body) else {
            return;
        };
        let mut parts = said.text.strip_prefix('f').unwrap_or("").split(':');
        let (Some(Ok(from)), Some(Ok(k))) = (
            parts.next().map(str::parse::<u64>),
            parts.next().map(str::parse::<u64>),
        ) else {
            return;
        };
        if let Some(Ok(at)) = parts.next().map(str::parse::<u64>) {
            let now = Instant::now();
            if now >= self.ctx.begin && now < self.ctx.end {
                let g = &self.ctx.stats.groups[self.g];
                g.pushes.fetch_add(1, Relaxed);
                let late = warren_proto::time::unix_micros().saturating_sub(at);
                g.push.record(self.i, late);
            }
        }
        let highest = self.highest.get(&from).copied().unwrap_or(0);
        if k < highest && !self.heard.get(&from).is_some_and(|s| s.contains(&k)) {
            self.count("lines_out_of_order", 1);
        }
        self.highest.insert(from, highest.max(k));
        if !self.heard.entry(from).or_default().insert(k) {
            self.count("lines_duplicated", 1);
            if from == self.uid() {
                self.count("requests_applied_twice", 1);
            }
        }
    }

    fn answer(&mut self, seq: u64, c: u32, body: &[u8]) {
        let Some((line, sent, _)) = self.owed.remove(&seq) else {
            if !self.answered.insert(seq) && seq < self.next_seq {
                self.count("replies_duplicated", 1);
            }
            return;
        };
        self.answered.insert(seq);
        if c == cmd::ERROR {
            let code = decode_body::<ErrorBody>("error", body)
                .map_or_else(|_| "unknown".to_owned(), |e| e.code);
            self.ctx.stats.error(&code);
            return;
        }
        // Only lines of the window count: before it, members may still be
        // joining the room.
        if let Some(k) = line
            && sent >= self.ctx.begin
            && sent < self.ctx.end
        {
            self.acked.insert(k);
            {
                let g = &self.ctx.stats.groups[self.g];
                g.answered.fetch_add(1, Relaxed);
                g.reply.record(self.i, micros(sent.elapsed()));
            }
        }
    }

    /// Opens a connection through the proxy (the next connector in turn)
    /// and logs in, resuming the session if there is one.
    async fn dial(&mut self) -> Result<(), String> {
        let ctx = self.ctx.clone();
        let proxy = ctx.flaky.proxy.get().ok_or("flaky: no proxy")?;
        let k = ((self.i + self.dials) % proxy.addrs.len() as u64) as usize;
        self.dials += 1;
        let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
        let tcp = timeout(ctx.plan.connect_timeout, socket.connect(proxy.addrs[k]))
            .await
            .map_err(|_| "connect_timeout".to_owned())?
            .map_err(|e| format!("connect: {}", e.kind()))?;
        let _ = tcp.set_nodelay(true);
        self.local = tcp.local_addr().ok();
        let config = WebSocketConfig::default()
            .read_buffer_size(2048)
            .write_buffer_size(0);
        let url = &ctx.plan.urls[k % ctx.plan.urls.len()];
        let (mut ws, _) = timeout(
            ctx.plan.connect_timeout,
            client_async_with_config(url.as_str(), tcp, Some(config)),
        )
        .await
        .map_err(|_| "handshake_timeout".to_owned())?
        .map_err(|_| "handshake".to_owned())?;
        let login = LoginRequest {
            token: self.token.clone(),
            resumable: true,
            resume: self.session.clone(),
            last: self.session.as_ref().map(|_| self.last_n),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let frame = Frame::new(seq, cmd::LOGIN, encode_body(&login)).encode();
        ws.send(Message::Binary(frame.into()))
            .await
            .map_err(|_| "login: send failed".to_owned())?;
        let reply = timeout(ctx.plan.connect_timeout, login_reply(&mut ws))
            .await
            .map_err(|_| "login_timeout".to_owned())??;
        self.ws = Some(ws);
        self.last_heard = Instant::now();
        let resuming = self.session.is_some();
        self.session = reply.session;
        match (resuming, reply.resumed) {
            (false, _) => {
                let join = encode_body(&Room::new(self.room.clone())).to_vec();
                self.send(cmd::CHAT_JOIN, join, None).await;
            }
            (true, Some(true)) => {
                self.count("resumes", 1);
                // Everything unanswered, again, with its seq.
                let owed: Vec<Vec<u8>> = self.owed.values().map(|(_, _, f)| f.clone()).collect();
                for frame in owed {
                    if let Some(ws) = self.ws.as_mut() {
                        let _ = ws.send(Message::Binary(frame.into())).await;
                    }
                }
            }
            (true, _) => {
                // A new session: what was owed may or may not have been
                // done; the room is to be joined again.
                self.count("resyncs", 1);
                self.resynced = true;
                self.last_n = 0;
                self.owed.clear();
                let join = encode_body(&Room::new(self.room.clone())).to_vec();
                self.send(cmd::CHAT_JOIN, join, None).await;
            }
        }
        Ok(())
    }

    /// Dials until it is back (or the window ends); false if it gave up.
    async fn redial(&mut self) -> bool {
        self.ws = None;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.dial().await {
                Ok(()) => return true,
                Err(kind) if kind.starts_with("login: ") && !kind.contains("unavailable") => {
                    self.ctx.stats.failure(&kind);
                    return false;
                }
                Err(_) if Instant::now() >= self.ctx.end => return false,
                Err(_) => {
                    self.count("redials_failed", 1);
                    sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// After the window: reads what is still coming (the last lines of the
    /// room, the answers owed) for [`DRAIN`], then leaves (close 1000).
    async fn drain(&mut self) {
        let until = Instant::now() + DRAIN;
        while let Some(ws) = self.ws.as_mut() {
            tokio::select! {
                () = sleep_until(until) => break,
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(data))) => {
                        if self.on_frame(&data).is_some() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
            }
        }
        let lines = self
            .owed
            .values()
            .filter(|(line, ..)| line.is_some())
            .count() as u64;
        self.count("lines_unanswered", lines);
        if let Some(mut ws) = self.ws.take() {
            let bye = CloseFrame {
                code: CloseCode::Normal,
                reason: "done".into(),
            };
            let _ = timeout(Duration::from_secs(1), ws.close(Some(bye))).await;
        }
    }

    /// Leaves this bot's figures for the count of lost lines.
    fn file(&mut self) {
        let book = &self.ctx.flaky;
        book.acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.uid(), std::mem::take(&mut self.acked));
        if !self.resynced {
            book.heard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((self.members.clone(), std::mem::take(&mut self.heard)));
        }
    }
}

/// The login's answer (frames before it are not expected: a login reply
/// comes first).
async fn login_reply(ws: &mut Ws) -> Result<LoginReply, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => {
                let (frame, _) =
                    Frame::decode_numbered(&b).map_err(|_| "login: bad frame".to_owned())?;
                return match frame.cmd {
                    cmd::LOGIN => {
                        decode_body("login", &frame.body).map_err(|_| "login: bad reply".to_owned())
                    }
                    cmd::ERROR => {
                        let e: ErrorBody = decode_body("error", &frame.body)
                            .map_err(|_| "login: bad error".to_owned())?;
                        Err(format!("login: {}", e.code))
                    }
                    _ => Err("login: unexpected frame".to_owned()),
                };
            }
            Some(Ok(Message::Close(_))) | None => return Err("login: closed".to_owned()),
            Some(Ok(_)) => {}
            Some(Err(_)) => return Err("login: socket error".to_owned()),
        }
    }
}
