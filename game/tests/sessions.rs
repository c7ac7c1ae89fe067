//! The session service (the game's sessions keeper) on the in-process bus.
//! The test plays the connector: it publishes events and reads the pushes
//! for its connector id.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use warren_bus::{Bus, MemoryBus, Subscription};
use warren_game::{
    Context, GameBuilder, GameSettings, NoMail, Request, Service, SessionEvent, services::Session,
};
use warren_proto::{BusEvent, BusPush, ConnId, ConnectorId, EventKind, Uid};
use warren_test_support::connector::{next_frame, publish, test_connector};

/// The seq of the next frame pushed.
async fn next_seq(pushes: &mut Subscription<BusPush>) -> u64 {
    next_frame(pushes).await.0
}

/// Records the session events it is told, in order, for the test to read.
struct Listener {
    seen: Arc<Mutex<Vec<SessionEvent>>>,
}

impl Service for Listener {
    type Mail = NoMail;
    const WANTS_SESSIONS: bool = true;

    fn handle(&mut self, ctx: &mut Context, req: Request) {
        ctx.reply_bytes(&req, Bytes::new());
    }

    fn session(&mut self, _ctx: &mut Context, event: &SessionEvent) {
        self.seen.lock().unwrap().push(event.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_elsewhere_kicks_the_old_socket_and_services_see_the_old_one_leave_first() {
    use SessionEvent::{Connected, Disconnected};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let settings = GameSettings::default();
    let builder = GameBuilder::new(settings.runtime())
        .service("listener", [7200], move || Listener { seen: log.clone() })
        .sessions("session", Session::CMDS, || {
            Session::new(Duration::from_secs(15))
        });
    let bus = Arc::new(MemoryBus::new(1024));
    let mut pushes = bus.subscribe_pushes(&test_connector()).await.unwrap();
    let game = builder.start(bus.clone()).await.unwrap();
    let other = ConnectorId::parse("other-connector").unwrap();
    let on = |connector: ConnectorId, conn: u64, kind: EventKind| BusEvent {
        connector,
        conn: ConnId(conn),
        uid: Uid(5),
        kind,
    };
    let connect = || EventKind::Connect { peer: "p".into() };
    // uid 5 on the other connector, then on this test's connector.
    publish(&*bus, on(other.clone(), 1, connect())).await;
    publish(&*bus, on(test_connector(), 2, connect())).await;
    // The other connector's socket is kicked (its push queue is not this
    // test's, so the kick is not seen here); the late Close it then sends
    // is stale and must not be taken for the new socket's.
    let close = EventKind::Close {
        reason: "duplicate_login".into(),
    };
    publish(&*bus, on(other, 1, close)).await;
    // A barrier: a request answered after all of the above was recorded.
    let request = EventKind::Message {
        seq: 1,
        cmd: 7200,
        body: Bytes::from_static(b"\x80"),
    };
    publish(&*bus, on(test_connector(), 2, request)).await;
    assert_eq!(next_seq(&mut pushes).await, 1);
    let events = seen.lock().unwrap().clone();
    assert_eq!(
        events,
        vec![
            Connected { uid: Uid(5) },
            Disconnected {
                uid: Uid(5),
                reason: "duplicate_login".into()
            },
            Connected { uid: Uid(5) },
        ],
        "the old socket leaves before the new one arrives, and only once"
    );
    assert_eq!(game.online(), 1);
    game.shutdown().await;
}
