//! Property tests: whatever bytes arrive, the decoders of client frames and
//! of bus envelopes either decode them or return an error — they never
//! panic — and everything encoded decodes back to itself.

use bytes::Bytes;
use proptest::prelude::*;
use warren_proto::{
    BusEvent, BusPush, ConnId, ConnectorId, EventKind, Frame, PushKind, Target, Uid, decode_event,
    decode_push, encode_event, encode_push,
};

fn connector() -> impl Strategy<Value = ConnectorId> {
    "[a-z0-9._-]{1,64}".prop_map(|s| ConnectorId::parse(&s).expect("generated ids are valid"))
}

fn event() -> impl Strategy<Value = BusEvent> {
    let kind = prop_oneof![
        ".{0,40}".prop_map(|peer| EventKind::Connect { peer }),
        (
            any::<u64>(),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..256)
        )
            .prop_map(|(seq, cmd, body)| EventKind::Message {
                seq,
                cmd,
                body: Bytes::from(body)
            }),
        ".{0,40}".prop_map(|reason| EventKind::Close { reason }),
        ".{0,40}".prop_map(|error| EventKind::Error { error }),
        any::<u64>().prop_map(|boot| EventKind::Alive { boot }),
    ];
    (connector(), any::<u64>(), any::<u64>(), kind).prop_map(|(connector, conn, uid, kind)| {
        BusEvent {
            connector,
            conn: ConnId(conn),
            uid: Uid(uid),
            kind,
        }
    })
}

fn push() -> impl Strategy<Value = BusPush> {
    let target = prop_oneof![
        any::<u64>().prop_map(|u| Target::Uid(Uid(u))),
        proptest::collection::vec(any::<u64>().prop_map(Uid), 0..20).prop_map(Target::Uids),
        (connector(), any::<u64>()).prop_map(|(connector, c)| Target::Conn {
            connector,
            conn: ConnId(c)
        }),
        Just(Target::All),
    ];
    let kind = prop_oneof![
        (
            any::<u64>(),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..256)
        )
            .prop_map(|(seq, cmd, body)| PushKind::Frame {
                seq,
                cmd,
                body: Bytes::from(body)
            }),
        ".{0,40}".prop_map(|reason| PushKind::Kick { reason }),
    ];
    (target, kind).prop_map(|(target, kind)| BusPush { target, kind })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_bytes_are_a_frame_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Frame::decode(&bytes);
        let _ = decode_event(&bytes);
        let _ = decode_push(&bytes);
    }

    #[test]
    fn any_bytes_are_a_batch_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(parts) = warren_proto::batch::unpack(&bytes) {
            prop_assert_eq!(warren_proto::batch::pack(&parts), bytes);
        }
    }

    #[test]
    fn batches_round_trip(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
        let body = warren_proto::batch::pack(&parts);
        let back = warren_proto::batch::unpack(&body).expect("a packed batch unpacks");
        prop_assert_eq!(back, parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }

    #[test]
    fn frames_round_trip(seq in any::<u64>(), cmd in any::<u32>(), body in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let f = Frame::new(seq, cmd, body);
        prop_assert_eq!(Frame::decode(&f.encode()).expect("own encoding decodes"), f);
    }

    #[test]
    fn events_and_pushes_round_trip(ev in event(), p in push()) {
        prop_assert_eq!(decode_event(&encode_event(&ev)).expect("decodes"), ev);
        prop_assert_eq!(decode_push(&encode_push(&p)).expect("decodes"), p);
    }

    #[test]
    fn damaged_encodings_never_panic(ev in event(), p in push(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        for mut bytes in [encode_event(&ev), encode_push(&p), Frame::new(1, 2, vec![3; 40]).encode()] {
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode_event(&bytes);
            let _ = decode_push(&bytes);
            let _ = Frame::decode(&bytes);
            bytes.truncate(cut.index(bytes.len()));
            let _ = decode_event(&bytes);
            let _ = decode_push(&bytes);
            let _ = Frame::decode(&bytes);
        }
    }
}
