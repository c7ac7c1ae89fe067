//! What a service may do: reply, push, talk to other services, set timers.
//!
//! Everything a service sends goes through the bounded outbox; when the bus
//! falls behind and the outbox is full, the service thread waits.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use warren_proto::{
    BusEvent, BusPush, ConnId, ConnectorId, ErrorBody, EventKind, PushKind, Target, Uid, cmd,
    encode_body,
};

use crate::{
    Later, SessionEvent,
    mail::Mail,
    mailbox::MailboxTx,
    outbox::{Item, Outgoing, Settle},
    service::{Origin, Request},
    sessions::Sessions,
    timers::{TimerId, Timers},
};

/// Why `ctx.send` did not deliver.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no service named {0}")]
    NoSuchService(String),
    #[error("the mailbox of {0} is full")]
    Full(&'static str),
    #[error("service {0} has stopped")]
    Stopped(&'static str),
    #[error("service {service} takes mail of type {takes}, not {given}")]
    WrongType {
        service: &'static str,
        takes: &'static str,
        given: &'static str,
    },
}

/// Every service's mailbox by name, and those that want session events.
#[derive(Debug)]
pub(crate) struct Directory {
    pub(crate) by_name: HashMap<&'static str, MailboxTx>,
    pub(crate) listeners: Vec<MailboxTx>,
}

/// A service's handle on the world, passed to every callback.
#[derive(Debug)]
pub struct Context {
    name: &'static str,
    outbox: mpsc::Sender<Outgoing>,
    directory: Arc<Directory>,
    sessions: Arc<Sessions>,
    shard: u16,
    shards: u16,
    pub(crate) timers: Timers,
    /// The durable request being handled: what the handler sends carries
    /// it, so the request is acknowledged once all of that is confirmed.
    pub(crate) settle: Option<Arc<Settle>>,
}

impl Context {
    pub(crate) fn new(
        name: &'static str,
        outbox: mpsc::Sender<Outgoing>,
        directory: Arc<Directory>,
        sessions: Arc<Sessions>,
        (shard, shards): (u16, u16),
    ) -> Self {
        Context {
            name,
            outbox,
            directory,
            sessions,
            shard,
            shards,
            timers: Timers::default(),
            settle: None,
        }
    }

    /// This game process's shard (0-based).
    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// How many game shards there are.
    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// Hands `req` to the service of the same name on game shard `shard`
    /// (the owner of what it touches); that shard answers the player.
    pub fn forward(&self, req: &Request, shard: u16) {
        let event = BusEvent {
            connector: req.origin.connector.clone(),
            conn: req.origin.conn,
            uid: req.uid,
            kind: EventKind::Message {
                seq: req.seq,
                cmd: req.cmd,
                body: req.body.clone(),
            },
        };
        self.hand(Item::Forward(event, shard));
    }

    /// Who is online where: read by any service, written only by the
    /// sessions keeper (the service registered with
    /// [`GameBuilder::sessions`](crate::GameBuilder::sessions)).
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Delivers a session event to every service that wants them, in
    /// order; when one's mailbox is full this thread waits for room (a
    /// session event is never dropped). For the sessions keeper.
    pub fn tell_sessions(&self, event: SessionEvent) {
        for mailbox in &self.directory.listeners {
            mailbox.send_blocking(Mail::Session(event.clone()));
        }
    }

    /// Whether `uid` is online (on any connector), as the sessions keeper
    /// last recorded.
    pub fn is_online(&self, uid: Uid) -> bool {
        self.sessions.connector_of(uid).is_some()
    }

    /// Players online now, on every connector.
    pub fn online_count(&self) -> usize {
        self.sessions.online()
    }

    /// This service's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn emit(&self, push: BusPush) {
        self.hand(Item::Push(push));
    }

    fn hand(&self, item: Item) {
        // Closed only while the process stops; nothing is left to tell.
        let _ = self.outbox.blocking_send(Outgoing {
            item,
            settle: self.settle.clone(),
        });
    }

    pub(crate) fn frame_to(&self, origin: &Origin, seq: u64, cmd: u32, body: Bytes) {
        self.emit(BusPush {
            target: Target::Conn {
                connector: origin.connector.clone(),
                conn: origin.conn,
            },
            kind: PushKind::Frame { seq, cmd, body },
        });
    }

    pub(crate) fn error_to(&self, origin: &Origin, seq: u64, code: &str, message: &str) {
        self.frame_to(
            origin,
            seq,
            cmd::ERROR,
            encode_body(&ErrorBody::new(code, message)),
        );
    }

    /// Replies to `req` with its own cmd and `body` encoded as a map.
    pub fn reply<T: Serialize + ?Sized>(&self, req: &Request, body: &T) {
        self.reply_bytes(req, encode_body(body));
    }

    /// Replies to `req` with its own cmd and these exact body bytes.
    pub fn reply_bytes(&self, req: &Request, body: Bytes) {
        self.frame_to(&req.origin, req.seq, req.cmd, body);
    }

    /// Replies to `req` with error frame (cmd 4) `{code, message}`.
    pub fn reply_error(&self, req: &Request, code: &str, message: &str) {
        self.error_to(&req.origin, req.seq, code, message);
    }

    /// Pushes a frame (seq 0) to one player, wherever they are connected.
    pub fn push<T: Serialize + ?Sized>(&self, uid: Uid, cmd: u32, body: &T) {
        self.push_to(Target::Uid(uid), cmd, encode_body(body));
    }

    /// Pushes one frame to several players; each gets it once.
    pub fn push_many<T: Serialize + ?Sized>(&self, uids: Vec<Uid>, cmd: u32, body: &T) {
        if !uids.is_empty() {
            self.push_to(Target::Uids(uids), cmd, encode_body(body));
        }
    }

    /// Pushes a frame to every connected player.
    pub fn broadcast<T: Serialize + ?Sized>(&self, cmd: u32, body: &T) {
        self.push_to(Target::All, cmd, encode_body(body));
    }

    fn push_to(&self, target: Target, cmd: u32, body: Bytes) {
        self.emit(BusPush {
            target,
            kind: PushKind::Frame { seq: 0, cmd, body },
        });
    }

    /// Hands the answer to `req` over to be given later, from a task or
    /// another thread, so this service need not wait (on a call to gold,
    /// say) before its next message. See [`Later`].
    pub fn later(&self, req: &Request) -> Later {
        Later::new(self.outbox.clone(), req, self.settle.clone())
    }

    /// Kicks a player: they get a kick frame with `reason`, then the socket
    /// closes.
    pub fn kick(&self, uid: Uid, reason: &str) {
        self.emit(BusPush {
            target: Target::Uid(uid),
            kind: PushKind::Kick {
                reason: reason.to_owned(),
            },
        });
    }

    /// Kicks one socket on one connector.
    pub fn kick_conn(&self, connector: ConnectorId, conn: ConnId, reason: &str) {
        self.emit(BusPush {
            target: Target::Conn { connector, conn },
            kind: PushKind::Kick {
                reason: reason.to_owned(),
            },
        });
    }

    /// Sends `push` as it is, in order with everything this service sent
    /// before: the sessions keeper's part in moving a session between
    /// connectors (PROTOCOL.md §3).
    pub fn relay(&self, push: BusPush) {
        self.emit(push);
    }

    /// Sends `msg` to another service's mailbox; it arrives in its `mail`
    /// callback. `M` must be that service's `Service::Mail` type. Never
    /// blocks: a full mailbox is an error.
    pub fn send<M: Send + 'static>(&self, to: &str, msg: M) -> Result<(), SendError> {
        let mailbox = self
            .directory
            .by_name
            .get(to)
            .ok_or_else(|| SendError::NoSuchService(to.to_owned()))?;
        mailbox.send_mail(self.name, msg)
    }

    /// Fires this service's `timer` callback once, `after` from now. `None`
    /// if the service already holds the maximum number of timers (65,536).
    pub fn set_timer(&mut self, after: Duration) -> Option<TimerId> {
        self.timers.set(Instant::now(), after)
    }

    pub fn cancel_timer(&mut self, timer: TimerId) {
        self.timers.cancel(timer);
    }
}
