//! The `Service` trait and what a service receives.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warren_proto::{BusEvent, ConnId, ConnectorId, DecodeError, Uid, decode_body};

use crate::{Context, TimerId};

/// A logical service. It owns its state; nothing else touches it. Every
/// method runs on the service's own thread, one message at a time. A panic
/// in any of them is caught: the request (if any) is answered `internal`,
/// and the service goes on with its next message.
pub trait Service: Send + 'static {
    /// What other services (and operators' tools, through
    /// [`GameHandle::send`](crate::GameHandle::send)) may mail this one:
    /// a mail of another type is refused at the sender with
    /// [`SendError::WrongType`](crate::SendError::WrongType). [`NoMail`]
    /// for a service that takes none.
    type Mail: Send + 'static;

    /// Whether this service wants [`SessionEvent`]s (players coming and
    /// going), in the `session` callback.
    const WANTS_SESSIONS: bool = false;

    /// The cmds of this service a client may call over HTTP, without a
    /// session (PROTOCOL.md §4): only those whose answer depends on nothing
    /// a socket holds (echo, a balance — not joining a chat room). A call
    /// for any other cmd is answered `unknown_cmd`. Each must be one of the
    /// cmds the service is registered for.
    const HTTP_CMDS: &'static [u32] = &[];

    /// Runs once on the service's thread before any message.
    fn init(&mut self, _ctx: &mut Context) {}

    /// A client request for one of the cmds this service owns. Answer it with
    /// `ctx.reply*`; a request left unanswered gets no reply.
    fn handle(&mut self, ctx: &mut Context, req: Request);

    /// A player connected or disconnected (only if `WANTS_SESSIONS`).
    fn session(&mut self, _ctx: &mut Context, _event: &SessionEvent) {}

    /// A connector's lifecycle event (Connect, Close, Error, Alive), in bus
    /// order: only for the service registered with
    /// [`GameBuilder::sessions`](crate::GameBuilder::sessions), the keeper
    /// of [`Sessions`](crate::Sessions). The dispatcher routes nothing else
    /// until this returns, so whatever follows the event sees it recorded.
    fn lifecycle(&mut self, _ctx: &mut Context, _event: BusEvent) {}

    /// A message from another service (`ctx.send`).
    fn mail(&mut self, _ctx: &mut Context, _from: &'static str, _msg: Self::Mail) {}

    /// A timer set with `ctx.set_timer` fired.
    fn timer(&mut self, _ctx: &mut Context, _timer: TimerId) {}

    /// Runs once when the process stops, after the last message.
    fn stop(&mut self, _ctx: &mut Context) {}

    /// A short summary of this service's own state for the debug console
    /// (`warren debug --service NAME`): counts, sizes, settings in force —
    /// never a dump of everything. Runs on the service's thread, between
    /// messages. `null` by default.
    fn summary(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// Where a request came from: how its reply finds the socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) connector: ConnectorId,
    pub(crate) conn: ConnId,
}

/// One client request.
#[derive(Debug)]
pub struct Request {
    pub uid: Uid,
    pub seq: u64,
    pub cmd: u32,
    pub body: Bytes,
    pub(crate) origin: Origin,
    /// The durable mode: acknowledged by the runtime once the handler has
    /// run (handed back if it panicked). Empty otherwise.
    pub(crate) ack: warren_bus::Ack,
}

/// A copy carries no acknowledgement: that belongs to the delivery.
impl Clone for Request {
    fn clone(&self) -> Self {
        Request {
            uid: self.uid,
            seq: self.seq,
            cmd: self.cmd,
            body: self.body.clone(),
            origin: self.origin.clone(),
            ack: warren_bus::Ack::none(),
        }
    }
}

impl Request {
    /// This request's identity: its connector, connection and seq. Unique
    /// per request, the same when the bus delivers it again, so it can key
    /// an idempotent effect.
    pub fn identity(&self) -> String {
        format!(
            "{}:{}:{}",
            self.origin.connector, self.origin.conn, self.seq
        )
    }

    /// Decodes the body (a MessagePack map) into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        decode_body("a request body", &self.body)
    }
}

/// A player's socket came or went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    Connected {
        uid: Uid,
    },
    /// The socket closed; `reason` is the connector's (e.g. `client_closed`,
    /// `duplicate_login`, `idle_timeout`).
    Disconnected {
        uid: Uid,
        reason: String,
    },
    /// The socket of a resumable session dropped: the player is away, not
    /// gone. Keep its state (rooms, presence); pushes to it are kept for
    /// its return. `Disconnected` follows if it does not come back in
    /// time, `Reattached` if it does.
    Detached {
        uid: Uid,
        reason: String,
    },
    /// A detached player is back, with everything sent meanwhile.
    Reattached {
        uid: Uid,
    },
}

/// The mail type of a service that takes no mail: it has no values, so
/// nothing can be sent to it.
#[derive(Debug)]
pub enum NoMail {}
