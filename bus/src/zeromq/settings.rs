//! The ZeroMQ bus's settings and the layouts it runs.

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use crate::BusError;

/// Which of the design's brokerless layouts a deployment runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZmqLayout {
    /// Layout 1: every connector PUSHes requests to the PULL of the shard
    /// that owns the player, and SUBscribes to every shard's PUB, where
    /// the games publish pushes by connector id (or to all).
    #[default]
    #[serde(rename = "pubsub")]
    PubSub,
    /// Layout 2: requests as in `pubsub`; pushes go from every game to a
    /// push server (`warren push-server`), which forwards each to the
    /// connector it is for, at the address that connector registered.
    #[serde(rename = "push-server")]
    PushServer,
    /// Layout 3: one connector and one game, PUSH → PULL both ways.
    #[serde(rename = "pair")]
    Pair,
}

impl ZmqLayout {
    /// The names the settings use.
    pub const ALL: [&str; 3] = ["pubsub", "push-server", "pair"];
}

impl fmt::Display for ZmqLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ZmqLayout::PubSub => "pubsub",
            ZmqLayout::PushServer => "push-server",
            ZmqLayout::Pair => "pair",
        })
    }
}

/// Where the sockets are and how much each holds.
#[derive(Clone, Debug)]
pub struct ZmqSettings {
    pub layout: ZmqLayout,
    /// Each shard's request address (`tcp://host:port`), in shard order:
    /// the game of shard `i` binds `requests[i]`, every other process
    /// connects to it. Their number is the shard count.
    pub requests: Vec<String>,
    /// `pubsub`: each shard's publisher, in shard order (bound by its
    /// game). `pair`: the one game's push address.
    pub pushes: Vec<String>,
    /// `push-server`: where the push server takes the games' pushes (its
    /// PULL; the games connect).
    pub push_server: String,
    /// `push-server`: where the push server takes connectors'
    /// registrations (its ROUTER; each connector's DEALER connects).
    pub registry: String,
    /// `push-server`: where this connector takes its pushes (its PULL,
    /// registered with the push server, which connects to it); a `*`
    /// port is chosen at start. It must be an address the push server
    /// can reach.
    pub listen: String,
    /// What a game binds instead of the host of its addresses (`*` or
    /// `0.0.0.0` when the addresses name the host as others reach it);
    /// empty: the addresses as written.
    pub bind: String,
    /// The shard whose requests this process consumes (game processes).
    pub shard: u16,
    /// Messages one outgoing socket queues towards one peer (ZMQ_SNDHWM);
    /// a request beyond it is refused at once (the client hears
    /// `overloaded`), a push beyond it is dropped by the publisher.
    pub send_hwm: i32,
    /// Messages one incoming socket queues before its peers' queues fill
    /// (ZMQ_RCVHWM).
    pub receive_hwm: i32,
    /// How long the batcher collects messages for one ZeroMQ message (zero:
    /// the natural batching; see the `batch` module).
    pub batch_window: Duration,
    /// Refused: ZeroMQ keeps nothing across a restart.
    pub durable: bool,
}

impl ZmqSettings {
    /// One shard on loopback: requests on `7101`, pushes on `7102`.
    pub fn new() -> ZmqSettings {
        ZmqSettings {
            layout: ZmqLayout::PubSub,
            requests: vec!["tcp://127.0.0.1:7101".into()],
            pushes: vec!["tcp://127.0.0.1:7102".into()],
            push_server: "tcp://127.0.0.1:7103".into(),
            registry: "tcp://127.0.0.1:7104".into(),
            listen: "tcp://127.0.0.1:*".into(),
            bind: String::new(),
            shard: 0,
            send_hwm: 10_000,
            receive_hwm: 10_000,
            batch_window: Duration::ZERO,
            durable: false,
        }
    }

    /// How many shards the addresses name.
    pub fn shards(&self) -> u16 {
        u16::try_from(self.requests.len()).unwrap_or(u16::MAX)
    }

    /// `Mismatch` unless the settings describe a layout that can run.
    pub(crate) fn check(&self) -> Result<(), BusError> {
        let mismatch = |m: String| Err(BusError::Mismatch(m));
        if self.durable {
            return mismatch(
                "bus.durable = true needs a transport that keeps messages (bus.kind = \"amqp\" or \
                 \"redis\"): ZeroMQ delivers at most once and keeps nothing across a restart"
                    .into(),
            );
        }
        let shards = self.requests.len();
        if shards == 0 || shards > usize::from(u16::MAX) {
            return mismatch("bus.zmq.requests names no shard: give one address per shard".into());
        }
        if usize::from(self.shard) >= shards {
            return mismatch(format!(
                "shard {} does not exist: bus.zmq.requests names {shards} (shards count from 0)",
                self.shard
            ));
        }
        match self.layout {
            ZmqLayout::PubSub if self.pushes.len() != shards => mismatch(format!(
                "bus.zmq.pushes names {} publishers for {shards} shards: the pubsub layout needs \
                 one per shard, in the order of bus.zmq.requests",
                self.pushes.len()
            )),
            ZmqLayout::PushServer => [&self.push_server, &self.registry]
                .into_iter()
                .chain(&self.requests)
                .try_for_each(|a| endpoint_parts(a).map(drop)),
            ZmqLayout::Pair if shards != 1 || self.pushes.len() != 1 => mismatch(
                "the pair layout is one connector and one game: bus.zmq.requests and \
                 bus.zmq.pushes name one address each"
                    .into(),
            ),
            _ => self
                .requests
                .iter()
                .chain(&self.pushes)
                .try_for_each(|a| endpoint_parts(a).map(drop)),
        }
    }

    /// The address a game binds for `address` (see [`ZmqSettings::bind`]).
    pub(crate) fn bind_address(&self, address: &str) -> Result<String, BusError> {
        if self.bind.is_empty() {
            return Ok(address.to_owned());
        }
        let (scheme, _, port) = endpoint_parts(address)?;
        Ok(format!("{scheme}://{}:{port}", self.bind))
    }
}

impl Default for ZmqSettings {
    fn default() -> Self {
        ZmqSettings::new()
    }
}

/// `tcp://host:port` → (`tcp`, `host`, `port`); `Mismatch` otherwise.
fn endpoint_parts(address: &str) -> Result<(&str, &str, &str), BusError> {
    let bad = || {
        BusError::Mismatch(format!(
            "{address:?} is not a ZeroMQ TCP address: write tcp://host:port"
        ))
    };
    let rest = address.strip_prefix("tcp://").ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(("tcp", host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_addresses_are_checked() {
        assert!(ZmqSettings::new().check().is_ok());
        let two_shards_one_publisher = ZmqSettings {
            requests: vec!["tcp://a:1".into(), "tcp://b:2".into()],
            ..ZmqSettings::new()
        };
        let m = two_shards_one_publisher.check().unwrap_err().to_string();
        assert!(m.contains("one per shard"), "{m}");
        let bad = ZmqSettings {
            requests: vec!["127.0.0.1:7101".into()],
            ..ZmqSettings::new()
        };
        assert!(
            bad.check()
                .unwrap_err()
                .to_string()
                .contains("tcp://host:port")
        );
        let durable = ZmqSettings {
            durable: true,
            ..ZmqSettings::new()
        };
        assert!(
            durable
                .check()
                .unwrap_err()
                .to_string()
                .contains("at most once")
        );
        let pair = ZmqSettings {
            layout: ZmqLayout::Pair,
            requests: vec!["tcp://a:1".into(), "tcp://b:2".into()],
            pushes: vec!["tcp://a:3".into(), "tcp://b:4".into()],
            ..ZmqSettings::new()
        };
        assert!(
            pair.check()
                .unwrap_err()
                .to_string()
                .contains("one connector")
        );
    }

    #[test]
    fn a_game_binds_its_addresses_or_the_interface_it_is_told() {
        let mut s = ZmqSettings::new();
        assert_eq!(
            s.bind_address("tcp://game-1.internal:7101").unwrap(),
            "tcp://game-1.internal:7101"
        );
        s.bind = "*".into();
        assert_eq!(
            s.bind_address("tcp://game-1.internal:7101").unwrap(),
            "tcp://*:7101"
        );
    }
}
