//! The Redis bus's settings, the names it gives keys and channels in a
//! namespace, and the Lua scripts that make a check and a write one step.

use std::time::Duration;

use warren_kit::SecretUrl;
use warren_proto::ConnectorId;

/// How to reach Redis and how to name things on it.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// `redis://[user:pass@]host:port[/db]`; printed without its password.
    pub url: SecretUrl,
    /// Inside every key's hash tag, and the prefix of every channel.
    pub namespace: String,
    /// List elements a game pops at once (each a message or a batch).
    pub prefetch: u16,
    /// Bound of every request list, in elements (a batch is one); a push
    /// beyond it is refused.
    pub max_queue_length: i64,
    /// Shown by `CLIENT LIST`.
    pub client_name: String,
    /// Game shards of the namespace: every process on it must agree.
    pub shards: u16,
    /// The shard whose requests this process consumes (game processes).
    pub shard: u16,
    /// Pushes a connector holds between Redis and its sockets; what
    /// arrives beyond it is dropped and counted.
    pub push_buffer: usize,
    /// How long the batcher collects messages for one Redis write (zero:
    /// only what is already waiting; see the `batch` module).
    pub batch_window: Duration,
}

impl RedisSettings {
    /// The defaults for the server at `url` and the namespace `namespace`.
    pub fn new(url: &str, namespace: &str) -> RedisSettings {
        RedisSettings {
            url: url.into(),
            namespace: namespace.to_owned(),
            prefetch: 64,
            max_queue_length: 100_000,
            client_name: "warren".to_owned(),
            shards: 1,
            shard: 0,
            push_buffer: 65_536,
            batch_window: Duration::ZERO,
        }
    }
}

/// The keys and channels of one namespace. Every key carries the
/// namespace as its hash tag (`{ns}`), so a Redis Cluster keeps a
/// namespace in one slot; channels are not slotted.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    tag: String,
    /// The shard count every process of the namespace must agree on.
    pub(crate) marker: String,
    pub(crate) broadcast: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Keys {
        let tag = format!("{{{namespace}}}");
        Keys {
            marker: format!("{tag}:shards"),
            broadcast: format!("{tag}:broadcast"),
            tag,
        }
    }

    /// One shard's request list.
    pub(crate) fn requests(&self, shard: u16) -> String {
        format!("{}:requests:{shard}", self.tag)
    }

    /// One connector's push channel.
    pub(crate) fn push(&self, connector: &ConnectorId) -> String {
        format!("{}:push:{connector}", self.tag)
    }

    /// The lease of whoever consumes a shard's requests.
    pub(crate) fn shard_lease(&self, shard: u16) -> String {
        format!("{}:lease:shard:{shard}", self.tag)
    }

    /// The lease of whoever holds a connector id.
    pub(crate) fn connector_lease(&self, connector: &ConnectorId) -> String {
        format!("{}:lease:connector:{connector}", self.tag)
    }
}

/// Appends ARGV[1] to the list KEYS[1] unless it already holds ARGV[2]
/// elements: the new length, or -1 when full.
pub(crate) const PUSH_BOUNDED: &str = "\
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
return redis.call('RPUSH', KEYS[1], ARGV[1])";

/// Takes or renews the lease KEYS[1] for the holder ARGV[1] (value
/// ARGV[1] .. ARGV[2], expiring in ARGV[3] ms): 1 if it is ours now, else
/// the value of whoever holds it.
pub(crate) const LEASE_TAKE: &str = "\
local v = redis.call('GET', KEYS[1])
if v == false or string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1] .. ARGV[2], 'PX', ARGV[3])
  return 1
end
return v";

/// Deletes the lease KEYS[1] if the holder ARGV[1] has it.
pub(crate) const LEASE_RELEASE: &str = "\
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Sets KEYS[1] to ARGV[1] if it is unset; returns what it holds.
pub(crate) const MARKER: &str = "\
local v = redis.call('GET', KEYS[1])
if v == false then redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1] end
return v";
