// Long: the conformance suite: every case of the bus contract, one function each, read side by side.
//! One conformance suite for every `Bus` transport: the contract in
//! `bus/src/lib.rs`, checked the same way on each. A new transport adds one
//! line at the bottom (`conformance!(name: Type, groups…)`) and a
//! [`Transport`] that opens its buses.
//!
//! - `common`: order per player across shards, lifecycle events in order on
//!   every shard, misaddressed messages are refused, one consumer per
//!   shard.
//! - `fanout` (transports that serve several connectors): broadcast and
//!   single pushes in order.
//! - `bounded` (transports whose queue bound is a count of messages): a
//!   full transport refuses exactly past its bound. (ZeroMQ's high-water
//!   marks leave the TCP buffers between two sockets uncounted: its own
//!   test, `bus/tests/zmq.rs`, fills them and checks the refusal.)
//! - `ids` (transports with a server that holds names): one consumer per
//!   connector id.
//! - `marker` (transports where something holds the deployment's shard
//!   count: a broker, or the gRPC gateway a game registers with): a
//!   shard-count mismatch is refused.
//! - `networked` (transports over the network): a transport that is down
//!   refuses at once (`unavailable`) and its consumers resume once it is
//!   back, also under CPU load; closing is bounded while it is down.
//! - `durable` (transports that offer the durable mode): acknowledgement,
//!   retry and the dead-letter queue (or stream). (That the game acknowledges only
//!   after what a handler sent is confirmed is the game's part:
//!   `tests/e2e/durable.rs`.)
//! - `dials` (transports that connect to a server at start: the brokers):
//!   a bus opened while its server is down fails with `unavailable` within
//!   a bound instead of waiting unseen. (ZeroMQ and the gRPC gateway
//!   connect lazily: they start, and refuse sends while the peer is away.)

#![allow(clippy::unwrap_used)]

mod grpc;
mod proxy;
mod zeromq;

use warren_test_support::Load;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use bytes::Bytes;
use warren_bus::{
    Address, AmqpBus, AmqpSettings, Bus, BusError, MemoryBus, Message, RedisBus, RedisSettings,
    Subscription, send_and_confirm,
};
use warren_proto::{BusEvent, BusPush, ConnId, ConnectorId, EventKind, PushKind, Target, Uid};

/// What a test asks of one process's bus.
#[derive(Clone, Debug)]
struct Opts {
    shards: u16,
    shard: u16,
    max_queue_length: i64,
    durable: bool,
    delivery_limit: u32,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            shards: 1,
            shard: 0,
            max_queue_length: 10_000,
            durable: false,
            delivery_limit: 2,
        }
    }
}

/// Opens buses of one transport, each test in a namespace of its own.
#[async_trait]
trait Transport: Send + Sync + Sized + 'static {
    /// Most shards one namespace can have.
    const MAX_SHARDS: u16;
    /// A fresh namespace.
    async fn new() -> Self;
    /// The bus of one process: a connector, or the game of `opts.shard`.
    async fn bus(&self, opts: &Opts) -> Result<Arc<dyn Bus>, BusError>;
    /// The bus of the game of `opts.shard` (a transport without a broker
    /// gives a game the addresses it binds, and a connector those it
    /// connects to, which may differ).
    async fn game(&self, opts: &Opts) -> Result<Arc<dyn Bus>, BusError> {
        self.bus(opts).await
    }
    /// Takes the transport away (every connection cut, new ones refused).
    fn cut(&self) {}
    /// Gives it back.
    fn restore(&self) {}
    /// Closes every bus and removes what the namespace left behind.
    async fn cleanup(self);
    /// Messages in the dead-letter queue (the durable mode).
    async fn dead_letters(&self) -> u32 {
        0
    }
}

/// The in-process bus: one instance is the whole transport.
struct Memory(Mutex<Option<Arc<MemoryBus>>>);

#[async_trait]
impl Transport for Memory {
    const MAX_SHARDS: u16 = 1;

    async fn new() -> Self {
        Memory(Mutex::new(None))
    }

    async fn bus(&self, opts: &Opts) -> Result<Arc<dyn Bus>, BusError> {
        let mut bus = self.0.lock().unwrap();
        let bus =
            bus.get_or_insert_with(|| Arc::new(MemoryBus::new(opts.max_queue_length as usize)));
        Ok(bus.clone())
    }

    async fn cleanup(self) {
        let bus = self.0.lock().unwrap().take();
        if let Some(bus) = bus {
            bus.close().await;
        }
    }
}

/// RabbitMQ, through a proxy the test can cut.
struct Amqp {
    namespace: String,
    proxy: proxy::Proxy,
    opened: Mutex<Vec<(Arc<AmqpBus>, Opts)>>,
}

/// Deletes a namespace's queues and exchanges, over a connection of its
/// own (not through the proxy).
async fn delete_namespace(namespace: &str, opts: &Opts) {
    let upstream = std::env::var("WARREN_TEST_AMQP_ADDR").unwrap_or("127.0.0.1:5672".into());
    let bus = AmqpBus::connect(amqp_settings(amqp_url(&upstream), namespace, opts))
        .await
        .unwrap();
    bus.delete_topology().await.unwrap();
    bus.close().await;
}

/// A test that failed before its cleanup still leaves nothing on the
/// broker: what it opened is deleted here, on a runtime of its own.
impl Drop for Amqp {
    fn drop(&mut self) {
        let opened = std::mem::take(&mut *self.opened.lock().unwrap_or_else(|p| p.into_inner()));
        let Some(opts) = opened.first().map(|(_, o)| o.clone()) else {
            return;
        };
        let namespace = self.namespace.clone();
        let _ = std::thread::spawn(move || {
            drop(opened);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(delete_namespace(&namespace, &opts));
        })
        .join();
    }
}

fn amqp_url(addr: &str) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

fn amqp_settings(url: String, namespace: &str, o: &Opts) -> AmqpSettings {
    AmqpSettings {
        url: url.into(),
        nodes: Vec::new(),
        quorum: false,
        namespace: namespace.to_owned(),
        prefetch: 64,
        max_queue_length: o.max_queue_length,
        client_name: "warren-conformance".into(),
        shards: o.shards,
        shard: o.shard,
        durable: o.durable,
        delivery_limit: o.delivery_limit,
        batch_window: Duration::ZERO,
    }
}

#[async_trait]
impl Transport for Amqp {
    const MAX_SHARDS: u16 = 3;

    async fn new() -> Self {
        let upstream = std::env::var("WARREN_TEST_AMQP_ADDR").unwrap_or("127.0.0.1:5672".into());
        let proxy = proxy::Proxy::start(upstream.parse().unwrap()).await;
        Amqp {
            namespace: warren_test_support::unique("warren-conformance"),
            proxy,
            opened: Mutex::new(Vec::new()),
        }
    }

    async fn bus(&self, opts: &Opts) -> Result<Arc<dyn Bus>, BusError> {
        let url = amqp_url(&self.proxy.addr.to_string());
        let bus = Arc::new(AmqpBus::connect(amqp_settings(url, &self.namespace, opts)).await?);
        self.opened
            .lock()
            .unwrap()
            .push((bus.clone(), opts.clone()));
        Ok(bus)
    }

    fn cut(&self) {
        self.proxy.cut();
    }

    fn restore(&self) {
        self.proxy.restore();
    }

    async fn cleanup(self) {
        self.proxy.restore();
        let opened = std::mem::take(&mut *self.opened.lock().unwrap());
        let Some(opts) = opened.first().map(|(_, o)| o.clone()) else {
            return;
        };
        for (bus, _) in &opened {
            bus.close().await;
        }
        delete_namespace(&self.namespace, &opts).await;
    }

    async fn dead_letters(&self) -> u32 {
        let upstream = std::env::var("WARREN_TEST_AMQP_ADDR").unwrap_or("127.0.0.1:5672".into());
        let conn = lapin::Connection::connect(&amqp_url(&upstream), Default::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                format!("{}.dead", self.namespace).as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
        let _ = conn.close(200, "bye".into()).await;
        q.message_count()
    }
}

/// Redis, through a proxy the test can cut.
struct Redis {
    namespace: String,
    proxy: proxy::Proxy,
    opened: Mutex<Vec<Arc<RedisBus>>>,
}

fn redis_upstream() -> String {
    std::env::var("WARREN_TEST_REDIS_ADDR").unwrap_or("127.0.0.1:6379".into())
}

fn redis_settings(addr: &str, namespace: &str, o: &Opts) -> RedisSettings {
    RedisSettings {
        max_queue_length: o.max_queue_length,
        client_name: "warren-conformance".into(),
        shards: o.shards,
        shard: o.shard,
        durable: o.durable,
        delivery_limit: o.delivery_limit,
        ..RedisSettings::new(&format!("redis://{addr}"), namespace)
    }
}

/// Deletes a namespace's keys over a connection of its own.
async fn delete_redis_namespace(namespace: &str) {
    RedisBus::delete_namespace(&format!("redis://{}", redis_upstream()), namespace)
        .await
        .unwrap();
}

/// A test that failed before its cleanup still leaves no keys behind.
impl Drop for Redis {
    fn drop(&mut self) {
        let opened = std::mem::take(&mut *self.opened.lock().unwrap_or_else(|p| p.into_inner()));
        if opened.is_empty() {
            return;
        }
        let namespace = self.namespace.clone();
        let _ = std::thread::spawn(move || {
            drop(opened);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(delete_redis_namespace(&namespace));
        })
        .join();
    }
}

#[async_trait]
impl Transport for Redis {
    const MAX_SHARDS: u16 = 3;

    async fn new() -> Self {
        let proxy = proxy::Proxy::start(redis_upstream().parse().unwrap()).await;
        Redis {
            namespace: warren_test_support::unique("warren-conformance"),
            proxy,
            opened: Mutex::new(Vec::new()),
        }
    }

    async fn bus(&self, opts: &Opts) -> Result<Arc<dyn Bus>, BusError> {
        let settings = redis_settings(&self.proxy.addr.to_string(), &self.namespace, opts);
        let bus = Arc::new(RedisBus::connect(settings).await?);
        self.opened.lock().unwrap().push(bus.clone());
        Ok(bus)
    }

    fn cut(&self) {
        self.proxy.cut();
    }

    fn restore(&self) {
        self.proxy.restore();
    }

    async fn cleanup(self) {
        self.proxy.restore();
        let opened = std::mem::take(&mut *self.opened.lock().unwrap());
        if opened.is_empty() {
            return;
        }
        for bus in &opened {
            bus.close().await;
        }
        delete_redis_namespace(&self.namespace).await;
    }

    async fn dead_letters(&self) -> u32 {
        let url = format!("redis://{}", redis_upstream());
        RedisBus::dead_letters(&url, &self.namespace).await.unwrap() as u32
    }
}

fn connector(name: &str) -> ConnectorId {
    ConnectorId::parse(name).unwrap()
}

fn event(uid: u64, kind: EventKind) -> BusEvent {
    BusEvent {
        connector: connector("c1"),
        conn: ConnId(uid),
        uid: Uid(uid),
        kind,
    }
}

fn request(uid: u64, seq: u64) -> BusEvent {
    event(
        uid,
        EventKind::Message {
            seq,
            cmd: 1001,
            body: Bytes::new(),
        },
    )
}

fn push(cmd: u32) -> BusPush {
    BusPush {
        target: Target::All,
        kind: PushKind::Frame {
            seq: 0,
            cmd,
            body: Bytes::new(),
        },
    }
}

/// Sends where a connector would, and waits until the bus has taken it.
async fn send_event(bus: &dyn Bus, ev: BusEvent) -> Result<(), BusError> {
    let to = Address::of_event(&ev, bus.shards());
    send_and_confirm(bus, to, Message::Event(ev)).await
}

async fn next<T>(sub: &mut Subscription<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a message within 10 s")
        .expect("the subscription is open")
}

fn seq_of(ev: &BusEvent) -> Option<u64> {
    match ev.kind {
        EventKind::Message { seq, .. } => Some(seq),
        _ => None,
    }
}

fn cmd_of(p: &BusPush) -> u32 {
    match p.kind {
        PushKind::Frame { cmd, .. } => cmd,
        _ => 0,
    }
}

/// A connector's bus, and a game consuming each of `shards` shards.
async fn connector_and_shards<T: Transport>(
    t: &T,
    shards: u16,
) -> (Arc<dyn Bus>, Vec<Subscription<BusEvent>>) {
    let opts = |shard| Opts {
        shards,
        shard,
        ..Opts::default()
    };
    let conn = t.bus(&opts(0)).await.unwrap();
    let mut subs = Vec::new();
    for s in 0..shards {
        let game = t.game(&opts(s)).await.unwrap();
        subs.push(game.subscribe_events().await.unwrap());
    }
    (conn, subs)
}

async fn per_player_order_across_shards<T: Transport>() {
    let t = T::new().await;
    let shards = T::MAX_SHARDS.min(3);
    let (conn, mut subs) = connector_and_shards(&t, shards).await;
    const UIDS: u64 = 6;
    const SEQS: u64 = 50;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for seq in 1..=SEQS {
        for uid in 0..UIDS {
            let ev = request(uid, seq);
            let tx = tx.clone();
            conn.send(
                Address::of_event(&ev, shards),
                Message::Event(ev),
                Box::new(move |o| {
                    let _ = tx.send(o);
                }),
            )
            .await;
        }
    }
    for _ in 0..UIDS * SEQS {
        rx.recv().await.unwrap().expect("every request taken");
    }
    for (s, sub) in subs.iter_mut().enumerate() {
        let mine = (0..UIDS)
            .filter(|u| u % u64::from(shards) == s as u64)
            .count() as u64;
        let mut last: BTreeMap<u64, u64> = BTreeMap::new();
        for _ in 0..mine * SEQS {
            let ev = next(sub).await;
            assert_eq!(
                ev.uid.0 % u64::from(shards),
                s as u64,
                "on its owner's shard"
            );
            let seq = seq_of(&ev).unwrap();
            let prev = last.insert(ev.uid.0, seq).unwrap_or(0);
            assert_eq!(seq, prev + 1, "uid {} in order", ev.uid);
        }
    }
    drop(subs);
    t.cleanup().await;
}

async fn lifecycle_reaches_every_shard_in_order<T: Transport>() {
    let t = T::new().await;
    let shards = T::MAX_SHARDS.min(2);
    let (conn, mut subs) = connector_and_shards(&t, shards).await;
    let connect = event(1, EventKind::Connect { peer: "p".into() });
    let (last, last_uid) = (request(u64::from(shards) - 1, 1), u64::from(shards) - 1);
    for ev in [request(0, 1), connect, request(0, 2), last] {
        send_event(&*conn, ev).await.unwrap();
    }
    let kinds = |evs: Vec<BusEvent>| -> Vec<String> {
        evs.iter()
            .map(|e| match seq_of(e) {
                Some(seq) => format!("{}:{seq}", e.uid),
                None => "connect".into(),
            })
            .collect()
    };
    let mut got = Vec::new();
    for (s, sub) in subs.iter_mut().enumerate() {
        let n = if s == 0 {
            3 + usize::from(last_uid == 0)
        } else {
            2
        };
        let mut evs = Vec::new();
        for _ in 0..n {
            evs.push(next(sub).await);
        }
        got.push(kinds(evs));
    }
    if shards == 1 {
        assert_eq!(got, vec![vec!["0:1", "connect", "0:2", "0:1"]]);
    } else {
        assert_eq!(
            got,
            vec![vec!["0:1", "connect", "0:2"], vec!["connect", "1:1"]]
        );
    }
    drop(subs);
    t.cleanup().await;
}

async fn broadcast_and_single_pushes_keep_their_order<T: Transport>() {
    let t = T::new().await;
    let game = t.game(&Opts::default()).await.unwrap();
    // A game sends pushes once it consumes its shard.
    let _events = game.subscribe_events().await.unwrap();
    // Two connectors, each a process of its own.
    let (side1, side2) = (
        t.bus(&Opts::default()).await.unwrap(),
        t.bus(&Opts::default()).await.unwrap(),
    );
    let mut c1 = side1.subscribe_pushes(&connector("c1")).await.unwrap();
    let mut c2 = side2.subscribe_pushes(&connector("c2")).await.unwrap();
    let (one, two) = (
        Address::Connector(connector("c1")),
        Address::Connector(connector("c2")),
    );
    let sends = [
        (one.clone(), 1),
        (Address::EveryConnector, 2),
        (one.clone(), 3),
        (Address::EveryConnector, 4),
        (two, 5),
        (one, 6),
    ];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (to, cmd) in sends {
        let tx = tx.clone();
        game.send(
            to,
            Message::Push(push(cmd)),
            Box::new(move |o| {
                let _ = tx.send(o);
            }),
        )
        .await;
    }
    for _ in 0..6 {
        rx.recv().await.unwrap().expect("taken");
    }
    let mut got1 = Vec::new();
    for _ in 0..5 {
        got1.push(cmd_of(&next(&mut c1).await));
    }
    let mut got2 = Vec::new();
    for _ in 0..3 {
        got2.push(cmd_of(&next(&mut c2).await));
    }
    assert_eq!(got1, vec![1, 2, 3, 4, 6]);
    assert_eq!(got2, vec![2, 4, 5]);
    drop((c1, c2));
    t.cleanup().await;
}

async fn a_full_transport_refuses<T: Transport>() {
    let t = T::new().await;
    let opts = Opts {
        max_queue_length: 5,
        ..Opts::default()
    };
    // The game's bus declares the queue; nobody consumes it.
    let _game = t.game(&opts).await.unwrap();
    let conn = t.bus(&opts).await.unwrap();
    // One at a time, so each is a message of its own (a batch of several
    // is one message to the queue's bound).
    let mut outcomes = Vec::new();
    for seq in 1..=10 {
        outcomes.push(send_event(&*conn, request(0, seq)).await);
    }
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(BusError::Rejected(_))))
        .count();
    let taken = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!((taken, refused), (5, 5), "{outcomes:?}");
    t.cleanup().await;
}

async fn misaddressed_messages_are_refused<T: Transport>() {
    let t = T::new().await;
    let bus = t.bus(&Opts::default()).await.unwrap();
    let shards = bus.shards();
    let nowhere =
        send_and_confirm(&*bus, Address::Shard(shards), Message::Event(request(0, 1))).await;
    assert!(matches!(nowhere, Err(BusError::Mismatch(_))), "{nowhere:?}");
    let wrong = send_and_confirm(&*bus, Address::Shard(0), Message::Push(push(1))).await;
    assert!(matches!(wrong, Err(BusError::Mismatch(_))), "{wrong:?}");
    let wrong = send_and_confirm(
        &*bus,
        Address::EveryConnector,
        Message::Event(request(0, 1)),
    )
    .await;
    assert!(matches!(wrong, Err(BusError::Mismatch(_))), "{wrong:?}");
    t.cleanup().await;
}

async fn a_second_consumer_of_a_connector_id_is_refused<T: Transport>() {
    let t = T::new().await;
    let a = t.bus(&Opts::default()).await.unwrap();
    let b = t.bus(&Opts::default()).await.unwrap();
    let first = a.subscribe_pushes(&connector("twin")).await.unwrap();
    let second = b.subscribe_pushes(&connector("twin")).await;
    match second {
        Err(BusError::AlreadyConsumed(m)) => assert!(m.contains("twin"), "{m}"),
        other => panic!("{other:?}"),
    }
    drop(first);
    t.cleanup().await;
}

async fn a_second_owner_of_a_shard_is_refused<T: Transport>() {
    let t = T::new().await;
    let a = t.game(&Opts::default()).await.unwrap();
    let b = t.game(&Opts::default()).await.unwrap();
    let first = a.subscribe_events().await.unwrap();
    match b.subscribe_events().await {
        Err(BusError::AlreadyConsumed(m)) => assert!(m.contains("shard 0"), "{m}"),
        other => panic!("{other:?}"),
    }
    drop(first);
    t.cleanup().await;
}

async fn a_shard_count_mismatch_is_refused<T: Transport>() {
    let t = T::new().await;
    let two = Opts {
        shards: 2,
        ..Opts::default()
    };
    t.bus(&two).await.unwrap();
    let three = Opts {
        shards: 3,
        ..Opts::default()
    };
    // Refused when it opens the bus (a broker keeps the count), or at the
    // latest when it takes its shard (a gateway refuses its registration).
    let refused = match t.game(&three).await {
        Err(e) => Err(e),
        Ok(game) => game.subscribe_events().await.map(drop),
    };
    match refused {
        Err(BusError::Mismatch(m)) => assert!(m.contains("shards"), "{m}"),
        other => panic!("{other:?}"),
    }
    t.cleanup().await;
}

async fn down_refuses_at_once_and_consumers_resume<T: Transport>() {
    outage::<T>(false).await;
}

async fn down_refuses_at_once_and_consumers_resume_under_cpu_load<T: Transport>() {
    outage::<T>(true).await;
}

// Long: one scenario, told in order.
async fn outage<T: Transport>(loaded: bool) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warren_bus=info,lapin=warn".into()),
        )
        .with_test_writer()
        .try_init();
    let _load = loaded.then(Load::start);
    let t = T::new().await;
    let conn = t.bus(&Opts::default()).await.unwrap();
    let game = t.game(&Opts::default()).await.unwrap();
    let mut events = game.subscribe_events().await.unwrap();
    let mut pushes = conn.subscribe_pushes(&connector("c1")).await.unwrap();
    send_event(&*conn, request(0, 1)).await.unwrap();
    assert_eq!(seq_of(&next(&mut events).await), Some(1));
    for round in 0..10u64 {
        t.cut();
        // Once the bus has seen the cut, every send is refused at once.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(
                Instant::now() < deadline,
                "round {round}: still taking sends 10 s after the cut"
            );
            let sent =
                tokio::time::timeout(Duration::from_secs(8), send_event(&*conn, request(0, 0)))
                    .await
                    .expect("a send is answered within its bounds");
            if matches!(sent, Err(BusError::Unavailable(_))) {
                break;
            }
            tokio::task::yield_now().await;
        }
        let started = Instant::now();
        let refused = send_event(&*conn, request(0, 0)).await;
        assert!(
            matches!(refused, Err(BusError::Unavailable(_))),
            "{refused:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "refused at once, not after {:?}",
            started.elapsed()
        );
        t.restore();
        // Back: a request and a push go through again, and the consumers
        // that were there before the cut receive them.
        let seq = 100 + round;
        let deadline = Instant::now() + Duration::from_secs(30);
        while send_event(&*conn, request(0, seq)).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "round {round}: no service 30 s after the transport came back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        loop {
            let ev = next(&mut events).await;
            if seq_of(&ev) == Some(seq) {
                break;
            }
        }
        // A push to a connector's queue is lost while that queue is being
        // declared again (the broker drops what no queue is bound for, as
        // after a broker restart): the game sends again until it arrives.
        let to = Address::Connector(connector("c1"));
        'push: loop {
            assert!(
                Instant::now() < deadline,
                "round {round}: no push arrived 30 s after"
            );
            if send_and_confirm(&*game, to.clone(), Message::Push(push(seq as u32)))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            while let Ok(Some(p)) =
                tokio::time::timeout(Duration::from_secs(2), pushes.next()).await
            {
                if cmd_of(&p) == seq as u32 {
                    break 'push;
                }
            }
        }
    }
    drop((events, pushes));
    t.cleanup().await;
}

async fn closing_is_bounded_while_the_transport_is_down<T: Transport>() {
    let t = T::new().await;
    let conn = t.bus(&Opts::default()).await.unwrap();
    let game = t.game(&Opts::default()).await.unwrap();
    let events = game.subscribe_events().await.unwrap();
    let pushes = conn.subscribe_pushes(&connector("c1")).await.unwrap();
    // Something in flight when the transport goes.
    let to = Address::of_event(&request(0, 1), 1);
    conn.send(to, Message::Event(request(0, 1)), Box::new(|_| {}))
        .await;
    t.cut();
    // A subscription closes within a second, a bus within five.
    let started = Instant::now();
    events.close().await;
    pushes.close().await;
    let subscriptions = started.elapsed();
    assert!(subscriptions < Duration::from_secs(3), "{subscriptions:?}");
    for bus in [conn, game] {
        let started = Instant::now();
        bus.close().await;
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
    }
    t.cleanup().await;
}

/// A process started while its broker is down hears so within a bound
/// instead of waiting unseen (its supervisor starts it again).
async fn starting_while_the_transport_is_down_fails_in_bounded_time<T: Transport>() {
    let t = T::new().await;
    t.cut();
    let started = Instant::now();
    let opened = tokio::time::timeout(Duration::from_secs(30), t.bus(&Opts::default())).await;
    match opened {
        Err(_) => panic!("still connecting after {:?}", started.elapsed()),
        Ok(Ok(_)) => panic!("connected through a cut transport"),
        Ok(Err(e)) => assert!(matches!(e, BusError::Unavailable(_)), "{e}"),
    }
    t.cleanup().await;
}

async fn durable_acknowledgement<T: Transport>() {
    let t = T::new().await;
    let opts = Opts {
        durable: true,
        delivery_limit: 2,
        ..Opts::default()
    };
    let conn = t.bus(&opts).await.unwrap();
    let game = t.game(&opts).await.unwrap();
    let mut events = game.subscribe_events().await.unwrap();
    let delivery = async |events: &mut Subscription<BusEvent>| {
        tokio::time::timeout(Duration::from_secs(10), events.next_delivery())
            .await
            .expect("a delivery within 10 s")
            .unwrap()
    };
    // Settled: never seen again.
    send_event(&*conn, request(0, 1)).await.unwrap();
    let (ev, ack) = delivery(&mut events).await;
    assert_eq!(seq_of(&ev), Some(1));
    assert!(ack.is_manual());
    ack.done();
    // Handed back (a dropped ack is a retry too) until the delivery
    // limit, then dead-lettered.
    send_event(&*conn, request(0, 2)).await.unwrap();
    let mut attempts = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while t.dead_letters().await == 0 {
        assert!(
            Instant::now() < deadline,
            "not dead-lettered after {attempts} attempts"
        );
        let Ok(Some((ev, ack))) =
            tokio::time::timeout(Duration::from_millis(200), events.next_delivery()).await
        else {
            continue;
        };
        assert_eq!(seq_of(&ev), Some(2));
        attempts += 1;
        if attempts % 2 == 0 {
            ack.retry();
        } else {
            drop(ack);
        }
    }
    assert!(
        (2..=3).contains(&attempts),
        "{attempts} attempts for a limit of 2"
    );
    // Neither comes back: the next delivery is the next request.
    send_event(&*conn, request(0, 3)).await.unwrap();
    let (ev, ack) = delivery(&mut events).await;
    assert_eq!(seq_of(&ev), Some(3));
    ack.done();
    assert_eq!(t.dead_letters().await, 1);
    drop(events);
    t.cleanup().await;
}

macro_rules! case {
    ($t:ty; $($c:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $c() {
                super::$c::<$t>().await;
            }
        )*
    };
}

macro_rules! cases {
    ($t:ty; common) => {
        case!($t; per_player_order_across_shards, lifecycle_reaches_every_shard_in_order,
            misaddressed_messages_are_refused, a_second_owner_of_a_shard_is_refused);
    };
    ($t:ty; fanout) => {
        case!($t; broadcast_and_single_pushes_keep_their_order);
    };
    ($t:ty; bounded) => {
        case!($t; a_full_transport_refuses);
    };
    ($t:ty; ids) => {
        case!($t; a_second_consumer_of_a_connector_id_is_refused);
    };
    ($t:ty; marker) => {
        case!($t; a_shard_count_mismatch_is_refused);
    };
    ($t:ty; networked) => {
        case!($t; down_refuses_at_once_and_consumers_resume,
            down_refuses_at_once_and_consumers_resume_under_cpu_load,
            closing_is_bounded_while_the_transport_is_down);
    };
    ($t:ty; durable) => {
        case!($t; durable_acknowledgement);
    };
    ($t:ty; dials) => {
        case!($t; starting_while_the_transport_is_down_fails_in_bounded_time);
    };
}

macro_rules! conformance {
    ($name:ident: $t:ty $(, $group:ident)*) => {
        mod $name {
            cases!($t; common);
            $(cases!($t; $group);)*
        }
    };
}

conformance!(memory: crate::Memory, fanout, bounded, ids);
conformance!(amqp: crate::Amqp, fanout, bounded, ids, marker, networked, durable, dials);
conformance!(redis: crate::Redis, fanout, bounded, ids, marker, networked, durable, dials);
conformance!(zmq_pubsub: crate::zeromq::Zmq<{ crate::zeromq::PUBSUB }>, fanout, networked);
conformance!(zmq_push_server: crate::zeromq::Zmq<{ crate::zeromq::PUSH_SERVER }>, fanout, ids, networked);
conformance!(zmq_pair: crate::zeromq::Zmq<{ crate::zeromq::PAIR }>, networked);
conformance!(grpc_gateway: crate::grpc::Grpc, fanout, marker, networked);
