//! A connector's registration with the push server (layout 2): a DEALER
//! that says `["register", id, address]` every [`RENEW`] for as long as
//! the connector's push subscription lives, and `["leave", id]` when it
//! ends. Renewing is also how a restarted push server learns the connector
//! again.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, warn};

use super::push_server::{LEASE, RENEW};
use crate::BusError;

/// How long one registration message may wait to be sent (the push server
/// is not there: this renewal is skipped, the next one tries again).
const SEND_BOUND: Duration = Duration::from_millis(200);

/// The push server's last answer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Ok,
    /// Another connector, at this address, holds the id.
    Taken(String),
}

/// Registers `id` at `address` through `dealer` (connected to the
/// registry) until the returned guard is dropped. Waits for the first
/// answer: `AlreadyConsumed` if another live connector holds the id for
/// longer than a lease (a connector that restarts gets its id back once
/// its old registration lapses); no answer within `bound` (the push server
/// is not up) is fine: the registration is renewed until it is.
pub(super) async fn register(
    dealer: tmq::dealer::Dealer,
    id: String,
    address: String,
    bound: Duration,
) -> Result<DropGuard, BusError> {
    let stop = CancellationToken::new();
    let (answers, mut heard) = watch::channel(None);
    tokio::spawn(renew(dealer, id.clone(), address, answers, stop.clone()));
    let guard = stop.drop_guard();
    let first = tokio::time::timeout(bound, heard.changed()).await;
    if first.is_err() {
        info!(%id, "the push server has not answered yet; registering every second until it does");
        return Ok(guard);
    }
    let deadline = tokio::time::Instant::now() + LEASE + RENEW;
    loop {
        let answer = heard.borrow_and_update().clone();
        match answer {
            Some(Answer::Ok) | None => return Ok(guard),
            Some(Answer::Taken(holder)) => {
                let changed = tokio::time::timeout_at(deadline, heard.changed()).await;
                if changed.is_err() {
                    return Err(BusError::AlreadyConsumed(format!(
                        "connector id {id} is held by another running connector (at {holder}) on \
                         the push server"
                    )));
                }
            }
        }
    }
}

async fn renew(
    mut dealer: tmq::dealer::Dealer,
    id: String,
    address: String,
    answers: watch::Sender<Option<Answer>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(RENEW);
    let register = || {
        tmq::Multipart::from(vec![
            b"register".to_vec(),
            id.clone().into_bytes(),
            address.clone().into_bytes(),
        ])
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {
                let _ = tokio::time::timeout(SEND_BOUND, dealer.send(register())).await;
            }
            msg = dealer.next() => {
                let Some(Ok(msg)) = msg else { break };
                let words: Vec<Vec<u8>> = msg.iter().map(|f| f.to_vec()).collect();
                let answer = match words.as_slice() {
                    [ok] if ok == b"ok" => Answer::Ok,
                    [taken, holder] if taken == b"taken" => {
                        Answer::Taken(String::from_utf8_lossy(holder).into_owned())
                    }
                    _ => continue,
                };
                if answer != Answer::Ok && answers.borrow().as_ref() != Some(&answer) {
                    warn!(%id, ?answer, "the push server refuses this connector's registration");
                }
                answers.send_replace(Some(answer));
            }
        }
    }
    let leave = tmq::Multipart::from(vec![b"leave".to_vec(), id.into_bytes()]);
    let _ = tokio::time::timeout(SEND_BOUND, dealer.send(leave)).await;
}
