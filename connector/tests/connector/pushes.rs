//! Every push target, kicks from the game, and Close events at shutdown.

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use warren_bus::{Address, send_and_confirm};
use warren_proto::{BusPush, EventKind, Frame, PushKind, Target, Uid, cmd};

use crate::helpers::{Harness, recv, start};

impl Harness {
    pub(crate) async fn push_frame(&self, target: Target, seq: u64, cmd: u32, body: Vec<u8>) {
        let body = Bytes::from(body);
        self.push(target, PushKind::Frame { seq, cmd, body }).await;
    }

    pub(crate) async fn push(&self, target: Target, kind: PushKind) {
        let push = BusPush { target, kind };
        let to = Address::Connector(self.connector.id().clone());
        send_and_confirm(&*self.bus, to, warren_bus::Message::Push(push))
            .await
            .unwrap();
    }
}

fn frame(cmd: u32, text: &'static str) -> PushKind {
    PushKind::Frame {
        seq: 0,
        cmd,
        body: Bytes::from_static(text.as_bytes()),
    }
}

// Long: one scenario, told in order.
#[tokio::test]
async fn pushes_reach_exactly_their_targets_and_kicks_close() {
    let mut h = start().await;
    let mut a = h.player(1).await;
    let mut b = h.player(2).await;
    let mut c = h.player(3).await;

    h.push(Target::All, frame(9001, "all")).await;
    h.push(
        Target::Uids(vec![Uid(1), Uid(3), Uid(99)]),
        frame(9002, "some"),
    )
    .await;
    h.push(Target::Uid(Uid(2)), frame(9003, "one")).await;
    // A barrier everyone gets last: anything misrouted would show before it.
    h.push(Target::All, frame(9009, "end")).await;
    let got = |frames: Vec<Frame>| frames.iter().map(|f| f.cmd).collect::<Vec<_>>();
    let mut seen = Vec::new();
    for ws in [&mut a, &mut b, &mut c] {
        let mut frames = Vec::new();
        loop {
            let f = recv(ws).await;
            let last = f.cmd == 9009;
            frames.push(f);
            if last {
                break;
            }
        }
        seen.push(got(frames));
    }
    assert_eq!(
        seen,
        vec![
            vec![9001, 9002, 9009],
            vec![9001, 9003, 9009],
            vec![9001, 9002, 9009]
        ]
    );

    // A kick from the game: kick frame, close, and a Close event.
    h.push(
        Target::Uid(Uid(2)),
        PushKind::Kick {
            reason: "banned".into(),
        },
    )
    .await;
    let kick = recv(&mut b).await;
    assert_eq!(kick.cmd, cmd::KICK);
    let ev = h.event().await;
    assert_eq!(
        (ev.uid, ev.kind),
        (
            Uid(2),
            EventKind::Close {
                reason: "banned".into()
            }
        )
    );
    assert_eq!(h.connector.online(), 2);
    assert_eq!(h.connector.stats().kicked_by_game, 1);

    // Requests from a logged-in socket become Message events, body untouched.
    let req = Frame::new(5, 4242, Bytes::from_static(b"\x01\x02"));
    a.send(Message::Binary(req.encode().into())).await.unwrap();
    let ev = h.event().await;
    assert_eq!(
        ev.kind,
        EventKind::Message {
            seq: 5,
            cmd: 4242,
            body: Bytes::from_static(b"\x01\x02")
        }
    );

    h.stop.cancel();
    (&mut h.task).await.unwrap();
    for ws in [&mut a, &mut c] {
        let f = recv(ws).await;
        assert_eq!(f.cmd, cmd::KICK);
    }
    // Every socket's end was announced.
    let mut closed = Vec::new();
    while closed.len() < 2 {
        if let EventKind::Close { reason } = h.event().await.kind {
            closed.push(reason);
        }
    }
    assert_eq!(closed, vec!["shutdown", "shutdown"]);
}
