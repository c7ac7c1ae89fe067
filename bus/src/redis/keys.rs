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
    /// the natural batching; see the `batch` module).
    pub batch_window: Duration,
    /// The durable mode: requests go to a stream per shard, read through a
    /// consumer group and acknowledged once handled (see `stream`).
    pub durable: bool,
    /// Durable mode: deliveries of one request before it goes to the
    /// dead-letter stream.
    pub delivery_limit: u32,
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
            durable: false,
            delivery_limit: 5,
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
    /// Durable mode: requests that failed `delivery_limit` times.
    pub(crate) dead: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Keys {
        let tag = format!("{{{namespace}}}");
        Keys {
            marker: format!("{tag}:shards"),
            broadcast: format!("{tag}:broadcast"),
            dead: format!("{tag}:dead"),
            tag,
        }
    }

    /// One shard's request list.
    pub(crate) fn requests(&self, shard: u16) -> String {
        format!("{}:requests:{shard}", self.tag)
    }

    /// One shard's request stream (the durable mode).
    pub(crate) fn stream(&self, shard: u16) -> String {
        format!("{}:stream:{shard}", self.tag)
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

/// Appends ARGV[1] to the stream KEYS[1] (field `b`) unless it already
/// holds ARGV[2] entries (acknowledged entries are deleted, so these are
/// the unsettled ones): 1, or -1 when full. Never trims.
pub(crate) const XADD_BOUNDED: &str = "\
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
redis.call('XADD', KEYS[1], '*', 'b', ARGV[1])
return 1";

/// Delivers again the entries ARGV[5..] of the stream KEYS[1]: claims
/// each for the consumer ARGV[2] of the group ARGV[1] (which counts a
/// delivery), and returns `{id, body, deliveries}` for each that is still
/// within the limit ARGV[3]; one past it goes to the dead-letter stream
/// KEYS[2] (bounded to about ARGV[4] entries, oldest out first) and is
/// acknowledged and deleted. Entries deleted meanwhile are forgotten.
pub(crate) const REDELIVER: &str = "\
local out = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local e = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id)
  if #e > 0 and e[1] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    local n = p[1][4]
    local body = e[1][2][2]
    if n > tonumber(ARGV[3]) then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'b', body, 'from', KEYS[1],
        'id', id, 'deliveries', n - 1)
      redis.call('XACK', KEYS[1], ARGV[1], id)
      redis.call('XDEL', KEYS[1], id)
    else
      table.insert(out, {id, body, n})
    end
  else
    redis.call('XACK', KEYS[1], ARGV[1], id)
  end
end
return out";

/// Moves the entry ARGV[2] of the stream KEYS[1] to the dead-letter stream
/// KEYS[2] (bounded to about ARGV[3] entries) and acknowledges it for the
/// group ARGV[1].
pub(crate) const DEAD_LETTER: &str = "\
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #e > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'b', e[1][2][2], 'from', KEYS[1],
    'id', ARGV[2])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return #e";

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
