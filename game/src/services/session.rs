//! session: who is online and where — the game's sessions keeper
//! (registered with `GameBuilder::sessions`). The only writer of the session
//! table (uid → connector, connection), fed by the runtime's dispatcher with
//! every Connect, Close, Error and connector Alive event, in bus order; the
//! dispatcher waits until each is recorded before it routes anything else,
//! so a push that follows a login always finds it.
//!
//! - A login for a uid that is live on **another connector** kicks the old
//!   socket there (`duplicate_login`); services see the old socket's
//!   disconnection before the new connection. The old socket's own Close,
//!   arriving later, is recognised as stale and ignored.
//! - A connector not heard from (Alive events, or any event) for
//!   `connector_expiry` is taken for dead: its players are forgotten, and
//!   services see them disconnect — but only while other connectors are
//!   heard from, so a stalled game or bus never forgets live players. A
//!   connector that comes back with a new `boot` has restarted: its old
//!   players are forgotten at once.
//! - A resumable session whose socket dropped stays in the table
//!   (Detached): pushes to it go on to its connector, which keeps them for
//!   its return; services see `Detached`, then `Reattached` or, once the
//!   grace period ends, `Disconnected`.
//! - A session resuming on another connector (`Resume`) moves there at
//!   once; the old connector is asked to hand it over (`HandOver`, from
//!   every shard, after all that shard sent it), answers with the state
//!   (`Handed`), which the player's shard passes on (`Session`).
//! - cmd 1010 presence `{uids: [u64]}` (at most 1,000) → `{online: [u64]}`.
//!
//! Session events reach the services that asked for them in order; when one
//! of their mailboxes is full this thread waits for room (never drops one).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tracing::info;
use warren_proto::{
    BusEvent, BusPush, ConnId, ConnectorId, EventKind, PushKind, Target, Uid,
    body::{Presence, PresenceRequest},
    cmd,
};
use warren_runtime::{Context, NoMail, Request, Service, SessionEvent, TimerId};

#[derive(Debug)]
pub struct Session {
    /// connector → (boot, last heard from)
    connectors: HashMap<ConnectorId, (u64, Instant)>,
    expiry: Duration,
    /// When any connector was last heard alive: proof that events flow.
    last_alive: Option<Instant>,
    /// Players online when last recorded (for the summary, which has no
    /// context).
    online: usize,
}

const MAX_PRESENCE: usize = 1_000;

impl Session {
    /// The cmds it owns.
    pub const CMDS: [u32; 1] = [cmd::PRESENCE];

    /// A connector not heard from for `expiry`, while others are, is taken
    /// for dead.
    pub fn new(expiry: Duration) -> Self {
        Session {
            connectors: HashMap::new(),
            expiry,
            last_alive: None,
            online: 0,
        }
    }

    fn forget(&mut self, ctx: &Context, connector: &ConnectorId, why: &str) {
        let gone = ctx.sessions().forget_connector(connector);
        if !gone.is_empty() {
            info!(%connector, players = gone.len(), why, "forgetting a connector's players");
        }
        for uid in gone {
            ctx.tell_sessions(SessionEvent::Disconnected {
                uid,
                reason: why.to_owned(),
            });
        }
    }

    fn heard_from(&mut self, ctx: &Context, connector: &ConnectorId, boot: Option<u64>) {
        let now = Instant::now();
        match (self.connectors.get_mut(connector), boot) {
            (Some((known, _)), Some(boot)) if *known != boot => {
                // 0: known only from a socket event so far, not a restart.
                let restarted = *known != 0;
                self.connectors.insert(connector.clone(), (boot, now));
                if restarted {
                    self.forget(ctx, connector, "connector_restarted");
                }
            }
            (Some((_, seen)), _) => *seen = now,
            (None, boot) => {
                self.connectors
                    .insert(connector.clone(), (boot.unwrap_or(0), now));
            }
        }
    }

    fn record(&mut self, ctx: &mut Context, event: BusEvent) {
        let BusEvent {
            connector,
            conn,
            uid,
            kind,
        } = event;
        match kind {
            EventKind::Alive { boot } => {
                self.last_alive = Some(Instant::now());
                self.heard_from(ctx, &connector, Some(boot));
            }
            EventKind::Connect { .. } => {
                self.heard_from(ctx, &connector, None);
                if let Some((old_connector, old_conn)) =
                    ctx.sessions().connected(uid, connector.clone(), conn)
                {
                    // Every shard records it; shard 0 alone kicks.
                    if old_connector != connector && ctx.shard() == 0 {
                        // The connector that holds the old socket does not
                        // know of the new login: tell it.
                        ctx.kick_conn(old_connector, old_conn, cmd::kick::DUPLICATE_LOGIN);
                    }
                    ctx.tell_sessions(SessionEvent::Disconnected {
                        uid,
                        reason: cmd::kick::DUPLICATE_LOGIN.to_owned(),
                    });
                }
                ctx.tell_sessions(SessionEvent::Connected { uid });
            }
            EventKind::Close { reason } => {
                self.heard_from(ctx, &connector, None);
                if ctx.sessions().disconnected(uid, &connector, conn) {
                    ctx.tell_sessions(SessionEvent::Disconnected { uid, reason });
                }
            }
            EventKind::Error { error } => {
                self.heard_from(ctx, &connector, None);
                if ctx.sessions().disconnected(uid, &connector, conn) {
                    let reason = format!("error: {error}");
                    ctx.tell_sessions(SessionEvent::Disconnected { uid, reason });
                }
            }
            EventKind::Detached { reason } => {
                self.heard_from(ctx, &connector, None);
                if ctx.sessions().holds(uid, &connector, conn) {
                    ctx.tell_sessions(SessionEvent::Detached { uid, reason });
                }
            }
            EventKind::Attached { .. } => {
                self.heard_from(ctx, &connector, None);
                if ctx.sessions().holds(uid, &connector, conn) {
                    ctx.tell_sessions(SessionEvent::Reattached { uid });
                }
            }
            EventKind::Resume {
                from,
                from_conn,
                session,
            } => self.resume(ctx, uid, (from, from_conn), (connector, conn), session),
            EventKind::Handed { to, to_conn, state } => {
                // The shard of the player passes the state on.
                ctx.relay(BusPush {
                    target: Target::Conn {
                        connector: to,
                        conn: to_conn,
                    },
                    kind: PushKind::Session { state: Some(state) },
                });
            }
            EventKind::Message { .. } | EventKind::Call { .. } => {}
        }
    }

    /// A session resumes on another connector: the player is that
    /// connection's from now on (replies to the old one follow it), and
    /// the old connection is asked to hand the session over, after
    /// everything this shard sent it. A session no shard knows is answered
    /// at once (by shard 0): its client resyncs.
    fn resume(
        &mut self,
        ctx: &Context,
        uid: Uid,
        from: (ConnectorId, ConnId),
        to: (ConnectorId, ConnId),
        session: String,
    ) {
        self.heard_from(ctx, &to.0, None);
        if ctx.sessions().moved(uid, from.clone(), to.clone()) {
            ctx.tell_sessions(SessionEvent::Reattached { uid });
            ctx.relay(BusPush {
                target: Target::Conn {
                    connector: from.0,
                    conn: from.1,
                },
                kind: PushKind::HandOver {
                    uid,
                    to: to.0,
                    to_conn: to.1,
                    session,
                    shard: ctx.shard(),
                },
            });
        } else if ctx.shard() == 0 {
            ctx.relay(BusPush {
                target: Target::Conn {
                    connector: to.0,
                    conn: to.1,
                },
                kind: PushKind::Session { state: None },
            });
        }
    }

    /// Forgets connectors silent for longer than the expiry — but only while
    /// events demonstrably flow (some connector was heard alive within half
    /// the expiry): a stalled game or bus must not forget live players.
    fn expire(&mut self, ctx: &Context) {
        let now = Instant::now();
        let flowing = self
            .last_alive
            .is_some_and(|at| now.duration_since(at) < self.expiry / 2);
        if !flowing {
            return;
        }
        let dead: Vec<ConnectorId> = self
            .connectors
            .iter()
            .filter(|(_, (_, seen))| now.duration_since(*seen) > self.expiry)
            .map(|(c, _)| c.clone())
            .collect();
        for connector in dead {
            self.connectors.remove(&connector);
            self.forget(ctx, &connector, "connector_lost");
        }
    }
}

impl Service for Session {
    type Mail = NoMail;

    fn summary(&self) -> serde_json::Value {
        let now = Instant::now();
        let connectors: serde_json::Map<String, serde_json::Value> = self
            .connectors
            .iter()
            .map(|(id, (boot, heard))| {
                let ago = now.duration_since(*heard).as_millis() as u64;
                (
                    id.to_string(),
                    serde_json::json!({"boot": boot, "heard_ms_ago": ago}),
                )
            })
            .collect();
        serde_json::json!({
            "online": self.online,
            "connectors": connectors,
            "connector_expiry_ms": self.expiry.as_millis() as u64,
        })
    }

    fn init(&mut self, ctx: &mut Context) {
        ctx.set_timer(self.expiry / 3);
    }

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        match req.decode::<PresenceRequest>() {
            Ok(PresenceRequest { uids }) if uids.len() <= MAX_PRESENCE => {
                let online = uids
                    .into_iter()
                    .filter(|u| ctx.is_online(Uid(*u)))
                    .collect();
                ctx.reply(&req, &Presence { online });
            }
            Ok(_) => ctx.reply_error(&req, cmd::code::BAD_REQUEST, "at most 1000 uids at once"),
            Err(_) => ctx.reply_error(&req, cmd::code::BAD_REQUEST, "expected {uids: [uid, ...]}"),
        }
    }

    fn lifecycle(&mut self, ctx: &mut Context, event: BusEvent) {
        self.record(ctx, event);
        self.online = ctx.online_count();
    }

    fn timer(&mut self, ctx: &mut Context, _timer: TimerId) {
        self.expire(ctx);
        self.online = ctx.online_count();
        ctx.set_timer(self.expiry / 3);
    }
}
