//! Reads events from the bus: a request goes to the one service that owns
//! its cmd; Connect, Close, Error and Alive go to the session service, which
//! records them and tells the services that asked.
//!
//! Policy when a mailbox is full: a request is answered `overloaded` at once
//! (the player may retry); a lifecycle event waits for room, because losing a
//! "player left" would leave a ghost behind. While it waits the dispatcher
//! reads no more, and the bus holds the rest (bounded by its prefetch).

use std::{collections::HashMap, time::Duration};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use warren_bus::Subscription;
use warren_proto::{BusEvent, BusPush, ErrorBody, EventKind, PushKind, Target, cmd, encode_body};

use crate::{
    mailbox::MailboxTx,
    outbox::Outgoing,
    service::{Mail, Origin, Request},
    services::session::Lifecycle,
};

pub(crate) struct Routes {
    pub(crate) by_cmd: HashMap<u32, MailboxTx>,
    /// The session service: every Connect, Close, Error and Alive goes there.
    pub(crate) session: MailboxTx,
}

pub(crate) async fn run(
    mut events: Subscription<BusEvent>,
    routes: Routes,
    outbox: mpsc::Sender<Outgoing>,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => {
                events.close().await;
                break;
            }
            event = events.next() => event,
        };
        let Some(event) = event else {
            if !stop.is_cancelled() {
                warn!("the request consumer ended: no more requests will be served");
            }
            break;
        };
        let EventKind::Message { seq, cmd, body } = event.kind else {
            record(&routes.session, event).await;
            continue;
        };
        let origin = Origin {
            connector: event.connector,
            conn: event.conn,
        };
        let uid = event.uid;
        let Some(mailbox) = routes.by_cmd.get(&cmd) else {
            debug!(%uid, cmd, "no service owns this cmd");
            let message = format!("no service owns cmd {cmd}");
            error(&outbox, &origin, seq, cmd::code::UNKNOWN_CMD, &message).await;
            continue;
        };
        let req = Request {
            uid,
            seq,
            cmd,
            body,
            origin: origin.clone(),
        };
        if mailbox.try_send(Mail::Request(req)).is_err() {
            mailbox
                .counters
                .overloaded
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let message = format!("service {} is overloaded, try again", mailbox.name);
            error(&outbox, &origin, seq, cmd::code::OVERLOADED, &message).await;
        }
    }
}

async fn error(
    outbox: &mpsc::Sender<Outgoing>,
    origin: &Origin,
    seq: u64,
    code: &str,
    message: &str,
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
    let _ = outbox.send(Outgoing::Push(push)).await;
}

/// Hands a lifecycle event to the session service, waiting for room, then
/// waits until it is recorded: whatever is routed next sees it.
async fn record(session: &MailboxTx, event: BusEvent) {
    let (done, recorded) = oneshot::channel();
    let mut mail = Mail::Peer {
        from: "dispatcher",
        msg: Box::new(Lifecycle { event, done }),
    };
    let mut waited = Duration::ZERO;
    loop {
        match session.try_send(mail) {
            Ok(()) => break,
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return,
            Err(std::sync::mpsc::TrySendError::Full(back)) => {
                mail = back;
                if waited == Duration::from_secs(1) {
                    warn!("the session service's mailbox is full: lifecycle events are waiting");
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                waited += Duration::from_millis(1);
            }
        }
    }
    // An error means the session service dropped it (a caught panic).
    let _ = recorded.await;
}
