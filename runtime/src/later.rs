//! Answering a request after its handler returned: a service that waits
//! on something slow (a call to gold) hands the wait to an async task and
//! goes on with its next message; the task answers through a [`Later`].

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use warren_proto::{BusPush, ErrorBody, PushKind, Target, Uid, cmd, encode_body};

use crate::{
    outbox::{Item, Outgoing, Settle},
    service::{Origin, Request},
};

/// The answer to one request, to be given later from any task or thread
/// (made by [`Context::later`](crate::Context::later)). It goes through the
/// same bounded outbox as everything the service sends, so an answer never
/// overtakes what the handler sent before handing it over.
///
/// In the durable mode the request stays unacknowledged until the answer
/// is confirmed: dropped unanswered (or if the process dies first), it is
/// acknowledged when dropped, or delivered again after a crash. A `Later`
/// dropped without an answer leaves the client to its request timeout.
#[derive(Debug)]
#[must_use = "a request handed to a Later is answered only through it"]
pub struct Later {
    outbox: mpsc::Sender<Outgoing>,
    origin: Origin,
    uid: Uid,
    seq: u64,
    cmd: u32,
    settle: Option<Arc<Settle>>,
}

impl Later {
    pub(crate) fn new(
        outbox: mpsc::Sender<Outgoing>,
        req: &Request,
        settle: Option<Arc<Settle>>,
    ) -> Self {
        Later {
            outbox,
            origin: req.origin.clone(),
            uid: req.uid,
            seq: req.seq,
            cmd: req.cmd,
            settle,
        }
    }

    /// The player who asked.
    pub fn uid(&self) -> Uid {
        self.uid
    }

    /// The request's cmd.
    pub fn cmd(&self) -> u32 {
        self.cmd
    }

    /// Replies with the request's own cmd and `body` encoded as a map;
    /// waits for room in the outbox when the bus is behind.
    pub async fn reply<T: Serialize + ?Sized>(self, body: &T) {
        let cmd = self.cmd;
        self.send(cmd, encode_body(body)).await;
    }

    /// Replies with error frame (cmd 4) `{code, message}`.
    pub async fn reply_error(self, code: &str, message: &str) {
        self.send(cmd::ERROR, encode_body(&ErrorBody::new(code, message)))
            .await;
    }

    async fn send(self, cmd: u32, body: Bytes) {
        let push = BusPush {
            target: Target::Conn {
                connector: self.origin.connector,
                conn: self.origin.conn,
            },
            kind: PushKind::Frame {
                seq: self.seq,
                cmd,
                body,
            },
        };
        // Closed only while the process stops; nothing is left to tell.
        let _ = self
            .outbox
            .send(Outgoing {
                item: Item::Push(push),
                settle: self.settle,
            })
            .await;
    }
}
