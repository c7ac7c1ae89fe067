//! Several bus envelopes in one transport message: the bus batches what
//! goes to one queue (see warren-bus's `batch` module). A batch body is the byte
//! [`BATCH_MARKER`], then the parts one after another, each a big-endian
//! `u32` length and that many bytes. The marker travels in-band, so a
//! transport without message properties carries batches too: an envelope
//! is a MessagePack array and never starts with `0xc1`, a byte MessagePack
//! never uses.

use crate::DecodeError;

/// Content type a transport with message properties also sets on a batch
/// (RabbitMQ), so the broker's tools show what it is.
pub const BATCH_CONTENT_TYPE: &str = "application/x-warren-batch";

/// The first byte of a batch body: never the first byte of an envelope.
pub const BATCH_MARKER: u8 = 0xc1;

/// One transport message for `parts`: the part itself when there is one,
/// else a marked batch.
pub fn seal<P: AsRef<[u8]>>(mut parts: Vec<P>) -> Vec<u8> {
    if parts.len() == 1
        && let Some(one) = parts.pop()
    {
        return one.as_ref().to_vec();
    }
    let mut body =
        Vec::with_capacity(1 + parts.iter().map(|p| 4 + p.as_ref().len()).sum::<usize>());
    body.push(BATCH_MARKER);
    pack_into(&parts, &mut body);
    body
}

/// The messages in one transport message: several for a marked batch,
/// else the body itself.
pub fn open(body: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    match body.split_first() {
        Some((&BATCH_MARKER, rest)) => unpack(rest),
        _ => Ok(vec![body]),
    }
}

/// Packs parts into one batch body.
pub fn pack<P: AsRef<[u8]>>(parts: &[P]) -> Vec<u8> {
    let len = parts.iter().map(|p| 4 + p.as_ref().len()).sum();
    let mut body = Vec::with_capacity(len);
    pack_into(parts, &mut body);
    body
}

fn pack_into<P: AsRef<[u8]>>(parts: &[P], body: &mut Vec<u8>) {
    for part in parts {
        let part = part.as_ref();
        let n = u32::try_from(part.len()).unwrap_or(u32::MAX);
        body.extend_from_slice(&n.to_be_bytes());
        body.extend_from_slice(&part[..n as usize]);
    }
}

/// The parts of a batch body, or what is wrong with it.
pub fn unpack(mut body: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    let mut parts = Vec::new();
    while !body.is_empty() {
        let Some((len, rest)) = body.split_first_chunk::<4>() else {
            return Err(DecodeError::Batch(format!(
                "it ends in a partial length ({} bytes)",
                body.len()
            )));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(DecodeError::Batch(format!(
                "a part says {len} bytes but {} are left",
                rest.len()
            )));
        }
        let (part, rest) = rest.split_at(len);
        parts.push(part);
        body = rest;
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_round_trip() {
        let parts: Vec<Vec<u8>> = vec![b"a".to_vec(), Vec::new(), vec![7; 300]];
        let body = pack(&parts);
        let back = unpack(&body).expect("unpacks");
        assert_eq!(back, parts.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert_eq!(unpack(&[]).expect("empty"), Vec::<&[u8]>::new());
    }

    #[test]
    fn a_sealed_body_opens_to_its_parts_and_an_envelope_is_never_taken_for_a_batch() {
        let parts = vec![b"a".to_vec(), b"bc".to_vec()];
        let body = seal(parts.clone());
        assert_eq!(body[0], BATCH_MARKER);
        assert_eq!(open(&body).expect("opens"), vec![&b"a"[..], &b"bc"[..]]);
        let one = seal(vec![b"x".to_vec()]);
        assert_eq!(one, b"x");
        let event = crate::encode_event(&crate::BusEvent {
            connector: crate::ConnectorId::parse("c").expect("id"),
            conn: crate::ConnId(1),
            uid: crate::Uid(1),
            kind: crate::EventKind::Alive { boot: 1 },
        });
        assert_eq!(open(&event).expect("one"), vec![event.as_slice()]);
    }

    #[test]
    fn a_truncated_batch_is_an_error_not_a_panic() {
        let body = pack(&[b"hello".to_vec(), b"world".to_vec()]);
        for cut in 1..body.len() {
            let r = unpack(&body[..cut]);
            let whole_parts = cut == 9;
            assert_eq!(r.is_ok(), whole_parts, "cut at {cut}: {r:?}");
        }
        assert!(unpack(&[0, 0, 0, 9, 1]).is_err());
    }
}
