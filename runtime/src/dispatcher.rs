//! Reads events from the bus: a request goes to the one service that owns
//! its cmd; Connect, Close, Error and Alive go to the sessions keeper, which
//! records them and tells the services that asked.
//!
//! Policy when a mailbox is full: a request is answered `overloaded` at once
//! (the player may retry); a lifecycle event waits for room, because losing a
//! "player left" would leave a ghost behind. While it waits (the task parks
//! on the mailbox until there is room) the dispatcher reads no more, and the
//! bus holds the rest (bounded by its prefetch).
//!
//! In the durable mode a request is never refused for a full mailbox (that
//! would drop a message the broker promised to keep): the dispatcher waits
//! for room instead, the same as for lifecycle events. Each request's
//! acknowledgement travels with it to the service's thread; a lifecycle
//! event is acknowledged once recorded.

use std::collections::{HashMap, HashSet};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use warren_bus::Subscription;
use warren_proto::{BusEvent, BusPush, ErrorBody, EventKind, PushKind, Target, cmd, encode_body};

use crate::{
    mail::{Control, Mail},
    mailbox::MailboxTx,
    outbox::{Item, Outgoing, Settle},
    service::{Origin, Request},
};

pub(crate) struct Routes {
    pub(crate) by_cmd: HashMap<u32, MailboxTx>,
    /// The cmds services declared callable over HTTP (`Service::HTTP_CMDS`).
    pub(crate) http: HashSet<u32>,
    /// The sessions keeper: every Connect, Close, Error and Alive goes
    /// there. None: lifecycle events are only acknowledged.
    pub(crate) sessions: Option<MailboxTx>,
}

/// Routes events until `stop` or until the subscription ends (the bus
/// closed, or the shard's consumer was lost for good).
pub(crate) async fn run(
    mut events: Subscription<BusEvent>,
    routes: &Routes,
    outbox: &mpsc::Sender<Outgoing>,
    stop: &CancellationToken,
) {
    loop {
        let delivery = tokio::select! {
            _ = stop.cancelled() => {
                events.close().await;
                break;
            }
            delivery = events.next_delivery() => delivery,
        };
        let Some((event, ack)) = delivery else {
            if !stop.is_cancelled() {
                warn!("the request consumer ended");
            }
            break;
        };
        let (seq, cmd, body, http) = match event.kind {
            EventKind::Message { seq, cmd, body } => (seq, cmd, body, false),
            EventKind::Call { seq, cmd, body } => (seq, cmd, body, true),
            _ => {
                if let Some(keeper) = &routes.sessions {
                    record(keeper, event).await;
                }
                ack.done();
                continue;
            }
        };
        let origin = Origin {
            connector: event.connector,
            conn: event.conn,
        };
        let uid = event.uid;
        let owner = routes.by_cmd.get(&cmd);
        let refusal = match owner {
            None => Some(format!("no service owns cmd {cmd}")),
            Some(_) if http && !routes.http.contains(&cmd) => Some(format!(
                "cmd {cmd} is not callable over HTTP: it needs a session (use the websocket)"
            )),
            Some(_) => None,
        };
        let (Some(mailbox), None) = (owner, &refusal) else {
            let message = refusal.unwrap_or_default();
            debug!(%uid, cmd, http, %message, "request refused");
            error(outbox, &origin, seq, cmd::code::UNKNOWN_CMD, &message, ack).await;
            continue;
        };
        let durable = ack.is_manual();
        let req = Request {
            uid,
            seq,
            cmd,
            body,
            origin: origin.clone(),
            ack,
        };
        if durable {
            mailbox.send(Mail::Request(req)).await;
            continue;
        }
        if mailbox.try_send(Mail::Request(req)).is_err() {
            mailbox
                .counters
                .overloaded
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let message = format!("service {} is overloaded, try again", mailbox.name);
            let ack = warren_bus::Ack::none();
            error(outbox, &origin, seq, cmd::code::OVERLOADED, &message, ack).await;
        }
    }
}

/// Answers a request with an error, through the outbox like a service's
/// reply; a durable request is acknowledged once the answer is confirmed.
async fn error(
    outbox: &mpsc::Sender<Outgoing>,
    origin: &Origin,
    seq: u64,
    code: &str,
    message: &str,
    ack: warren_bus::Ack,
) {
    let push = BusPush {
        target: Target::Conn {
            connector: origin.connector.clone(),
            conn: origin.conn,
        },
        kind: PushKind::Frame {
            seq,
            cmd: cmd::ERROR,
            body: encode_body(&ErrorBody::new(code, message)),
        },
    };
    let settle = ack.is_manual().then(|| Settle::new(ack));
    let _ = outbox
        .send(Outgoing {
            item: Item::Push(push),
            settle,
        })
        .await;
}

/// Hands a lifecycle event to the sessions keeper, waiting for room, then
/// waits until it is recorded: whatever is routed next sees it.
async fn record(keeper: &MailboxTx, event: BusEvent) {
    let (recorded, done) = oneshot::channel();
    if !keeper
        .send(Mail::Control(Control::Lifecycle { event, recorded }))
        .await
    {
        return;
    }
    // An error means the keeper dropped it (its thread is gone).
    let _ = done.await;
}
