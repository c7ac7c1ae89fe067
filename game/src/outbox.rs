//! Publishes what services send, in the order they sent it.
//!
//! Targets are resolved here: a reply goes to the connector of its socket, a
//! push to a uid to the connector that holds the uid (players offline are
//! skipped), a push to several uids is split by connector, a broadcast goes
//! to every connector once. Confirms are awaited in a bounded window, so
//! order is kept without a broker round trip per message.

use std::{collections::BTreeMap, sync::Arc};

use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio::sync::mpsc;
use tracing::{debug, warn};
use warren_bus::{Bus, Route};
use warren_proto::{BusEvent, BusPush, Target};

use crate::sessions::Sessions;

/// What services hand the outbox.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A frame or kick for sockets.
    Push(BusPush),
    /// A request for the shard that owns what it touches.
    Forward(BusEvent, u16),
}

pub(crate) async fn run(
    mut rx: mpsc::Receiver<Outgoing>,
    bus: Arc<dyn Bus>,
    sessions: Arc<Sessions>,
    window: usize,
) {
    let window = window.max(1);
    let mut inflight = FuturesUnordered::new();
    loop {
        tokio::select! {
            Some(result) = inflight.next(), if !inflight.is_empty() => {
                if let Err(e) = result {
                    warn!(error = %e, "a push was not confirmed by the bus");
                }
            }
            out = rx.recv(), if inflight.len() < window => {
                match out {
                    None => break,
                    Some(Outgoing::Push(push)) => {
                        for (route, push) in resolve(&sessions, push) {
                            match bus.publish_push(&route, &push).await {
                                Ok(confirm) => inflight.push(confirm),
                                Err(e) => warn!(error = %e, ?route, "a push could not be published"),
                            }
                        }
                    }
                    Some(Outgoing::Forward(event, shard)) => match bus.forward_event(&event, shard).await {
                        Ok(confirm) => inflight.push(confirm),
                        Err(e) => warn!(error = %e, shard, "a request could not be forwarded"),
                    },
                }
            }
        }
    }
    while let Some(result) = inflight.next().await {
        if let Err(e) = result {
            warn!(error = %e, "a push was not confirmed by the bus");
        }
    }
}

fn resolve(sessions: &Sessions, push: BusPush) -> Vec<(Route, BusPush)> {
    match &push.target {
        Target::Conn { connector, .. } => vec![(Route::Connector(connector.clone()), push)],
        Target::All => vec![(Route::AllConnectors, push)],
        Target::Uid(uid) => match sessions.connector_of(*uid) {
            Some(connector) => vec![(Route::Connector(connector), push)],
            None => {
                debug!(%uid, "push for a player who is offline, dropped");
                Vec::new()
            }
        },
        Target::Uids(uids) => {
            let mut by_connector = BTreeMap::new();
            for uid in uids {
                if let Some(connector) = sessions.connector_of(*uid) {
                    by_connector
                        .entry(connector)
                        .or_insert_with(Vec::new)
                        .push(*uid);
                }
            }
            by_connector
                .into_iter()
                .map(|(connector, uids)| {
                    let part = BusPush {
                        target: Target::Uids(uids),
                        kind: push.kind.clone(),
                    };
                    (Route::Connector(connector), part)
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use warren_proto::{ConnId, ConnectorId, PushKind, Uid};

    use super::*;

    #[test]
    fn pushes_to_several_uids_split_by_connector_and_skip_offline_players() {
        let sessions = Sessions::default();
        let a = ConnectorId::parse("a").expect("id");
        let b = ConnectorId::parse("b").expect("id");
        sessions.connected(Uid(1), a.clone(), ConnId(1));
        sessions.connected(Uid(2), b.clone(), ConnId(1));
        sessions.connected(Uid(3), a.clone(), ConnId(2));
        let kind = PushKind::Frame {
            seq: 0,
            cmd: 2003,
            body: Bytes::new(),
        };
        let push = BusPush {
            target: Target::Uids(vec![Uid(1), Uid(2), Uid(3), Uid(4)]),
            kind: kind.clone(),
        };
        let routed = resolve(&sessions, push);
        assert_eq!(
            routed,
            vec![
                (
                    Route::Connector(a),
                    BusPush {
                        target: Target::Uids(vec![Uid(1), Uid(3)]),
                        kind: kind.clone()
                    }
                ),
                (
                    Route::Connector(b),
                    BusPush {
                        target: Target::Uids(vec![Uid(2)]),
                        kind
                    }
                ),
            ]
        );
    }
}
