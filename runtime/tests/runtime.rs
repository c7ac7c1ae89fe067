//! The game runtime on the in-process bus: mailbox policy, timers, mail
//! between services, set-up validation, restarts, the watchdog. The test
//! plays the connector: it publishes events and reads the pushes for its
//! connector id.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use bytes::Bytes;
use warren_bus::{Bus, MemoryBus, Subscription};
use warren_proto::{BusEvent, BusPush, ConnId, EventKind, PushKind, Target, Uid};
use warren_runtime::{
    Context, GameBuilder, GameError, NoMail, Request, RuntimeSettings, SendError, Service, TimerId,
};
use warren_test_support::connector::{next_push, publish, test_connector};

async fn setup(
    builder: GameBuilder,
) -> (Arc<MemoryBus>, Subscription<BusPush>, warren_runtime::Game) {
    let bus = Arc::new(MemoryBus::new(1024));
    let pushes = bus.subscribe_pushes(&test_connector()).await.unwrap();
    let game = builder.start(bus.clone()).await.unwrap();
    (bus, pushes, game)
}

async fn send(bus: &MemoryBus, uid: u64, kind: EventKind) {
    let ev = BusEvent {
        connector: test_connector(),
        conn: ConnId(uid),
        uid: Uid(uid),
        kind,
    };
    publish(bus, ev).await;
}

async fn request(bus: &MemoryBus, uid: u64, seq: u64, cmd: u32) {
    send(
        bus,
        uid,
        EventKind::Message {
            seq,
            cmd,
            body: Bytes::from_static(b"\x80"),
        },
    )
    .await;
}

/// (seq, cmd, error code if cmd 4) of the next push.
async fn next(pushes: &mut Subscription<BusPush>) -> (u64, u32, Option<String>, Target) {
    let push = next_push(pushes).await;
    match push.kind {
        PushKind::Frame { seq, cmd, body } => {
            let code = (cmd == 4).then(|| {
                #[derive(serde::Deserialize)]
                struct E {
                    code: String,
                }
                rmp_serde::from_slice::<E>(&body).unwrap().code
            });
            (seq, cmd, code, push.target)
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Blocks in its handler until the test opens the gate.
struct Gated {
    entered: mpsc::Sender<u64>,
    gate: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl Service for Gated {
    type Mail = NoMail;

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        self.entered.send(req.seq).unwrap();
        self.gate.lock().unwrap().recv().unwrap();
        ctx.reply_bytes(&req, req.body.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mailbox_answers_overloaded_and_loses_nothing_it_accepted() {
    let (entered_tx, entered) = mpsc::channel();
    let (open, gate) = mpsc::channel();
    let settings = RuntimeSettings {
        mailbox: 2,
        ..RuntimeSettings::default()
    };
    let gate = Arc::new(Mutex::new(gate));
    let builder = GameBuilder::new(settings).service("gated", [5000], move || Gated {
        entered: entered_tx.clone(),
        gate: gate.clone(),
    });
    let (bus, mut pushes, game) = setup(builder).await;
    request(&bus, 1, 1, 5000).await;
    // The service is now stuck in seq 1: two more fit, the rest are refused.
    let (first, _entered) = tokio::task::spawn_blocking(move || (entered.recv().unwrap(), entered))
        .await
        .unwrap();
    assert_eq!(first, 1);
    for seq in 2..=6 {
        request(&bus, 1, seq, 5000).await;
    }
    for seq in 4..=6 {
        let (s, cmd, code, _) = next(&mut pushes).await;
        assert_eq!((s, cmd, code.as_deref()), (seq, 4, Some("overloaded")));
    }
    for _ in 1..=3 {
        open.send(()).unwrap();
    }
    for seq in 1..=3 {
        let (s, cmd, code, target) = next(&mut pushes).await;
        assert_eq!((s, cmd, code), (seq, 5000, None));
        assert_eq!(
            target,
            Target::Conn {
                connector: test_connector(),
                conn: ConnId(1)
            }
        );
    }
    let stats = game.stats();
    assert_eq!(stats[0].overloaded, 3);
    assert_eq!(stats[0].mailbox_depth, 0);
    game.shutdown().await;
}

/// On request: sets a timer; when it fires, mails `relay`.
struct Timed;
/// On mail: pushes to the uid it was given.
struct Relay;

impl Service for Timed {
    type Mail = NoMail;

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        ctx.set_timer(Duration::from_millis(20)).unwrap();
        let cancelled = ctx.set_timer(Duration::from_millis(10)).unwrap();
        ctx.cancel_timer(cancelled);
        ctx.reply_bytes(&req, req.body.clone());
        assert!(ctx.send("nobody", ()).is_err());
        // Mail of another type than the service takes is refused here,
        // at the sender.
        assert!(matches!(
            ctx.send("relay", "not a uid"),
            Err(SendError::WrongType { .. })
        ));
    }

    fn timer(&mut self, ctx: &mut Context, _timer: TimerId) {
        ctx.send("relay", Uid(7)).unwrap();
    }
}

impl Service for Relay {
    type Mail = Uid;

    fn handle(&mut self, _ctx: &mut Context, _req: Request) {}

    fn mail(&mut self, ctx: &mut Context, from: &'static str, uid: Uid) {
        assert_eq!(from, "timed");
        ctx.push(uid, 6001, &std::collections::BTreeMap::<String, u8>::new());
    }
}

/// The smallest sessions keeper: records logins and logouts.
struct Keeper;

impl Service for Keeper {
    type Mail = NoMail;

    fn handle(&mut self, _ctx: &mut Context, _req: Request) {}

    fn lifecycle(&mut self, ctx: &mut Context, event: BusEvent) {
        match event.kind {
            EventKind::Connect { .. } => {
                ctx.sessions()
                    .connected(event.uid, event.connector, event.conn);
            }
            EventKind::Close { .. } => {
                ctx.sessions()
                    .disconnected(event.uid, &event.connector, event.conn);
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_once_and_services_mail_each_other() {
    let builder = GameBuilder::new(RuntimeSettings::default())
        .service("timed", [6000], || Timed)
        .service("relay", [6002], || Relay)
        .sessions("keeper", [], || Keeper);
    let (bus, mut pushes, game) = setup(builder).await;
    send(
        &bus,
        7,
        EventKind::Connect {
            peer: "test".into(),
        },
    )
    .await;
    request(&bus, 7, 1, 6000).await;
    let (seq, cmd, _, _) = next(&mut pushes).await;
    assert_eq!((seq, cmd), (1, 6000));
    let (seq, cmd, _, target) = next(&mut pushes).await;
    assert_eq!((seq, cmd, target), (0, 6001, Target::Uid(Uid(7))));
    // Exactly one timer fired: the cancelled one did not. A barrier request
    // proves nothing else was pushed in between.
    request(&bus, 7, 2, 6000).await;
    let (seq, cmd, _, _) = next(&mut pushes).await;
    assert_eq!((seq, cmd), (2, 6000));
    game.shutdown().await;
}

struct Nop;
impl Service for Nop {
    type Mail = NoMail;

    fn handle(&mut self, _ctx: &mut Context, _req: Request) {}
}

#[tokio::test]
async fn bad_service_set_ups_are_refused_at_start() {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(8));
    let low = GameBuilder::new(RuntimeSettings::default()).service("low", [999], || Nop);
    assert!(matches!(
        low.start(bus.clone()).await,
        Err(GameError::Setup(_))
    ));
    let twice = GameBuilder::new(RuntimeSettings::default())
        .service("a", [5000], || Nop)
        .service("b", [5000], || Nop);
    assert!(matches!(
        twice.start(bus.clone()).await,
        Err(GameError::Setup(_))
    ));
    let same_name = GameBuilder::new(RuntimeSettings::default())
        .service("a", [5000], || Nop)
        .service("a", [5001], || Nop);
    assert!(matches!(
        same_name.start(bus.clone()).await,
        Err(GameError::Setup(_))
    ));
    let http_not_owned =
        GameBuilder::new(RuntimeSettings::default()).service("h", [5003], || Callable);
    assert!(matches!(
        http_not_owned.start(bus).await,
        Err(GameError::Setup(m)) if m.contains("5002")
    ));
}

/// Answers everything; 5002 is callable over HTTP, 5003 is not.
struct Callable;

impl Service for Callable {
    type Mail = NoMail;
    const HTTP_CMDS: &'static [u32] = &[5002];

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        ctx.reply_bytes(&req, req.body.clone());
    }
}

#[tokio::test]
async fn over_http_only_the_cmds_a_service_declares_are_served() {
    let builder =
        GameBuilder::new(RuntimeSettings::default()).service("h", [5002, 5003], || Callable);
    let (bus, mut pushes, game) = setup(builder).await;
    let call = |seq, cmd| EventKind::Call {
        seq,
        cmd,
        body: Bytes::from_static(b"\x80"),
    };
    send(&bus, 1, call(1, 5002)).await;
    let (seq, cmd, code, _) = next(&mut pushes).await;
    assert_eq!((seq, cmd, code), (1, 5002, None));
    send(&bus, 1, call(2, 5003)).await;
    let (seq, cmd, code, _) = next(&mut pushes).await;
    assert_eq!((seq, cmd, code.as_deref()), (2, 4, Some("unknown_cmd")));
    send(&bus, 1, call(3, 5004)).await;
    let (seq, _, code, _) = next(&mut pushes).await;
    assert_eq!((seq, code.as_deref()), (3, Some("unknown_cmd")));
    // The same cmd from a socket is served.
    request(&bus, 1, 4, 5003).await;
    assert_eq!(next(&mut pushes).await.1, 5003);
    game.shutdown().await;
}

/// Counts its requests; panics on cmd 7001.
#[derive(Default)]
struct Counter {
    seen: u64,
}

impl Service for Counter {
    type Mail = NoMail;

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        if req.cmd == 7001 {
            panic!("asked to");
        }
        self.seen += 1;
        ctx.reply_bytes(&req, Bytes::from(self.seen.to_be_bytes().to_vec()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_keeps_panicking_is_restarted_with_fresh_state() {
    let settings = RuntimeSettings {
        restart_intensity: 3,
        restart_period: Duration::from_secs(60),
        restart_storm: 0,
        ..RuntimeSettings::default()
    };
    let builder = GameBuilder::new(settings).service("counter", [7000, 7001], Counter::default);
    let (bus, mut pushes, game) = setup(builder).await;
    let count = |body: &[u8]| u64::from_be_bytes(body.try_into().unwrap());
    let mut seq = 0;
    let mut ask = async |cmd: u32, pushes: &mut Subscription<BusPush>| {
        seq += 1;
        request(&bus, 1, seq, cmd).await;
        let push = tokio::time::timeout(Duration::from_secs(10), pushes.next())
            .await
            .unwrap()
            .unwrap();
        match push.kind {
            PushKind::Frame { cmd, body, .. } => (cmd, body),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(count(&ask(7000, &mut pushes).await.1), 1);
    assert_eq!(count(&ask(7000, &mut pushes).await.1), 2);
    // Two panics: contained, the state survives.
    for _ in 0..2 {
        assert_eq!(ask(7001, &mut pushes).await.0, 4);
    }
    assert_eq!(count(&ask(7000, &mut pushes).await.1), 3);
    // The third within the period: restarted, fresh state.
    assert_eq!(ask(7001, &mut pushes).await.0, 4);
    assert_eq!(count(&ask(7000, &mut pushes).await.1), 1);
    let stats = game
        .stats()
        .into_iter()
        .find(|s| s.name == "counter")
        .unwrap();
    assert_eq!((stats.panics, stats.restarts), (3, 1));
    game.shutdown().await;
}

/// Sleeps in its handler.
struct Sleepy;

impl Service for Sleepy {
    type Mail = NoMail;

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        std::thread::sleep(Duration::from_millis(600));
        ctx.reply_bytes(&req, req.body.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_reports_a_stuck_handler_once() {
    let settings = RuntimeSettings {
        stuck_threshold: Duration::from_millis(100),
        ..RuntimeSettings::default()
    };
    let builder = GameBuilder::new(settings).service("sleepy", [7100], || Sleepy);
    let (bus, mut pushes, game) = setup(builder).await;
    request(&bus, 1, 1, 7100).await;
    let (seq, cmd, _, _) = next(&mut pushes).await;
    assert_eq!((seq, cmd), (1, 7100));
    let stats = game
        .stats()
        .into_iter()
        .find(|s| s.name == "sleepy")
        .unwrap();
    assert_eq!(stats.stuck, 1, "reported once, not at every watchdog tick");
    game.shutdown().await;
}

/// Replies with the request's body.
struct Echo;

impl Service for Echo {
    type Mail = NoMail;

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        ctx.reply_bytes(&req, req.body.clone());
    }
}

/// A sessions keeper that owns cmd 5100 and holds each of its requests
/// until the test's word; records the uid of each lifecycle event.
struct GatedKeeper {
    entered: mpsc::Sender<u64>,
    gate: Arc<Mutex<mpsc::Receiver<()>>>,
    recorded: mpsc::Sender<u64>,
}

impl Service for GatedKeeper {
    type Mail = NoMail;

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        self.entered.send(req.seq).unwrap();
        self.gate.lock().unwrap().recv().unwrap();
        ctx.reply_bytes(&req, req.body.clone());
    }

    fn lifecycle(&mut self, _ctx: &mut Context, event: BusEvent) {
        self.recorded.send(event.uid.0).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lifecycle_event_waits_for_room_and_is_never_dropped() {
    let (entered_tx, entered) = mpsc::channel();
    let (open, gate) = mpsc::channel();
    let (recorded_tx, recorded) = mpsc::channel();
    let settings = RuntimeSettings {
        mailbox: 1,
        ..RuntimeSettings::default()
    };
    let gate = Arc::new(Mutex::new(gate));
    let builder = GameBuilder::new(settings)
        .service("echo", [5000], || Echo)
        .sessions("keeper", [5100], move || GatedKeeper {
            entered: entered_tx.clone(),
            gate: gate.clone(),
            recorded: recorded_tx.clone(),
        });
    let (bus, mut pushes, game) = setup(builder).await;
    // The keeper is held in request 1; request 2 fills its mailbox.
    request(&bus, 1, 1, 5100).await;
    let (first, entered) = tokio::task::spawn_blocking(move || (entered.recv().unwrap(), entered))
        .await
        .unwrap();
    assert_eq!(first, 1);
    request(&bus, 1, 2, 5100).await;
    // A login now finds the keeper's mailbox full: the dispatcher waits for
    // room (a login is never dropped), and routes nothing meanwhile.
    send(&bus, 7, EventKind::Connect { peer: "p".into() }).await;
    request(&bus, 1, 3, 5000).await;
    open.send(()).unwrap();
    open.send(()).unwrap();
    for (seq, cmd) in [(1, 5100), (2, 5100), (3, 5000)] {
        let (s, c, _, _) = next(&mut pushes).await;
        assert_eq!((s, c), (seq, cmd));
    }
    assert_eq!(recorded.try_recv().ok(), Some(7), "the login was recorded");
    drop(entered);
    game.shutdown().await;
}
