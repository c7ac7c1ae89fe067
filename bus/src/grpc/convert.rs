//! Between the wire forms of `gateway.proto` and the bus envelopes, and
//! between gRPC statuses and bus errors.

use bytes::Bytes;
use tonic::{Code, Status};
use warren_proto::{
    BusEvent, BusPush, ConnId, ConnectorId, EventKind, PushKind, Target, Uid,
    batch::open,
    decode_event, decode_push,
    gateway::{Kind, Order, Packet},
};

use super::{inbound::Refusal, outbound::Place};
use crate::BusError;

/// What a peer's failed call means to the messages it carried.
pub(crate) fn error(peer: &str, status: &Status) -> BusError {
    match status.code() {
        Code::ResourceExhausted => {
            BusError::Rejected(format!("{peer} is full: {}", status.message()))
        }
        Code::DeadlineExceeded => {
            BusError::Unavailable(format!("{peer} did not answer within the deadline"))
        }
        _ => BusError::Unavailable(format!("{peer}: {}", status.message())),
    }
}

/// What a call that was not taken is answered.
pub(crate) fn refused(refusal: Refusal, what: &str) -> Status {
    match refusal {
        Refusal::Full => Status::resource_exhausted(format!("{what}: the buffer is full")),
        Refusal::Late => Status::failed_precondition(format!(
            "{what}: a later call of this sender was taken first (order kept, this one refused)"
        )),
        Refusal::Closed => Status::unavailable(format!("{what}: not taking calls (stopping)")),
    }
}

pub(crate) fn order(place: Place) -> Order {
    Order {
        sender: place.sender,
        epoch: place.epoch,
        seq: place.seq,
    }
}

pub(crate) fn place(order: Option<Order>) -> Option<Place> {
    order.map(|o| Place {
        sender: o.sender,
        epoch: o.epoch,
        seq: o.seq,
    })
}

/// The envelopes in a packed body (a sealed batch, or one envelope).
pub(crate) fn unpack<T>(
    body: &[u8],
    decode: fn(&[u8]) -> Result<T, warren_proto::DecodeError>,
) -> Result<Vec<T>, Status> {
    let parts = open(body).map_err(|e| Status::invalid_argument(format!("packed: {e}")))?;
    parts
        .into_iter()
        .map(|p| decode(p).map_err(|e| Status::invalid_argument(format!("packed: {e}"))))
        .collect()
}

pub(crate) fn events(body: &[u8]) -> Result<Vec<BusEvent>, Status> {
    unpack(body, decode_event)
}

pub(crate) fn pushes(body: &[u8]) -> Result<Vec<BusPush>, Status> {
    unpack(body, decode_push)
}

/// A connector's event as a plain service sees it; `None` for what a
/// plain service is not told (a connector's liveness).
pub(crate) fn packet(event: BusEvent) -> Option<Packet> {
    let call = matches!(event.kind, EventKind::Call { .. });
    let mut p = Packet {
        kind: if call { Kind::Call } else { Kind::Message } as i32,
        uid: event.uid.0,
        connector: event.connector.to_string(),
        conn: event.conn.0,
        ..Packet::default()
    };
    match event.kind {
        EventKind::Message { seq, cmd, body } | EventKind::Call { seq, cmd, body } => {
            p.seq = seq;
            p.cmd = cmd;
            p.body = body.to_vec();
        }
        EventKind::Connect { peer } => {
            p.kind = Kind::Connect as i32;
            p.reason = peer;
        }
        EventKind::Close { reason } | EventKind::Error { error: reason } => {
            p.kind = Kind::Close as i32;
            p.reason = reason;
        }
        EventKind::Detached { reason } => {
            p.kind = Kind::Detached as i32;
            p.reason = reason;
        }
        EventKind::Attached { peer } => {
            p.kind = Kind::Attached as i32;
            p.reason = peer;
        }
        EventKind::Alive { .. } | EventKind::Resume { .. } | EventKind::Handed { .. } => {
            return None;
        }
    }
    Some(p)
}

/// A plain service's packet as a push from gateway `me`.
pub(crate) fn push(me: &ConnectorId, p: Packet) -> Result<BusPush, Status> {
    let target = if p.conn != 0 {
        Target::Conn {
            connector: me.clone(),
            conn: ConnId(p.conn),
        }
    } else if p.uid != 0 {
        Target::Uid(Uid(p.uid))
    } else {
        return Err(Status::invalid_argument(
            "a packet names no player: set uid (a push) or conn (a reply)",
        ));
    };
    let kind = match p.kind() {
        Kind::Message => PushKind::Frame {
            seq: p.seq,
            cmd: p.cmd,
            body: Bytes::from(p.body),
        },
        Kind::Kick => PushKind::Kick { reason: p.reason },
        other => {
            return Err(Status::invalid_argument(format!(
                "a packet to a player is KIND_MESSAGE or KIND_KICK, not {}",
                other.as_str_name()
            )));
        }
    };
    Ok(BusPush { target, kind })
}
