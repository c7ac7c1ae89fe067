//! Reads events from the bus and routes each to the services that want it:
//! a request to the one service that owns its cmd, a session event to every
//! service that asked for them.
//!
//! Policy when a mailbox is full: a request is answered `overloaded` at once
//! (the player may retry); a session event waits for room, because losing a
//! "player left" would leave a ghost behind. While it waits the dispatcher
//! reads no more, and the bus holds the rest (bounded by its prefetch).

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use warren_bus::Subscription;
use warren_proto::{BusEvent, BusPush, ErrorBody, EventKind, PushKind, Target, cmd, encode_body};

use crate::{
    mailbox::MailboxTx,
    service::{Mail, Origin, Request, SessionEvent},
    sessions::Sessions,
};

pub(crate) struct Routes {
    pub(crate) by_cmd: HashMap<u32, MailboxTx>,
    pub(crate) session_listeners: Vec<MailboxTx>,
}

pub(crate) async fn run(
    mut events: Subscription<BusEvent>,
    routes: Routes,
    sessions: Arc<Sessions>,
    outbox: mpsc::Sender<BusPush>,
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
        let BusEvent {
            connector,
            conn,
            uid,
            kind,
        } = event;
        let origin = Origin { connector, conn };
        match kind {
            EventKind::Message { seq, cmd, body } => {
                let Some(mailbox) = routes.by_cmd.get(&cmd) else {
                    debug!(%uid, cmd, "no service owns this cmd");
                    error(
                        &outbox,
                        &origin,
                        seq,
                        cmd::code::UNKNOWN_CMD,
                        &format!("no service owns cmd {cmd}"),
                    )
                    .await;
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
            EventKind::Connect { .. } => {
                sessions.connected(uid, origin.connector.clone(), origin.conn);
                broadcast(&routes, SessionEvent::Connected { uid }).await;
            }
            EventKind::Close { reason } => {
                sessions.disconnected(uid, &origin.connector, origin.conn);
                broadcast(&routes, SessionEvent::Disconnected { uid, reason }).await;
            }
            EventKind::Error { error } => {
                sessions.disconnected(uid, &origin.connector, origin.conn);
                let reason = format!("error: {error}");
                broadcast(&routes, SessionEvent::Disconnected { uid, reason }).await;
            }
        }
    }
}

async fn error(
    outbox: &mpsc::Sender<BusPush>,
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
    let _ = outbox.send(push).await;
}

/// Delivers a session event to every listener, waiting for room.
async fn broadcast(routes: &Routes, event: SessionEvent) {
    for mailbox in &routes.session_listeners {
        let mut mail = Mail::Session(event.clone());
        let mut waited = Duration::ZERO;
        loop {
            match mailbox.try_send(mail) {
                Ok(()) => break,
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => break,
                Err(std::sync::mpsc::TrySendError::Full(back)) => {
                    mail = back;
                    if waited == Duration::from_secs(1) {
                        warn!(
                            service = mailbox.name,
                            "mailbox full: session events are waiting"
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    waited += Duration::from_millis(1);
                }
            }
        }
    }
}
