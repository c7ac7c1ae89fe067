//! Several bus envelopes in one broker message: the RabbitMQ bus batches
//! what goes to one queue (see `warren_bus::batch`). The body is the parts
//! one after another, each a big-endian `u32` length and that many bytes;
//! the message's content type says it is a batch.

use crate::DecodeError;

/// Content type of a broker message that carries several bus messages.
pub const BATCH_CONTENT_TYPE: &str = "application/x-warren-batch";

/// Packs parts into one batch body.
pub fn pack<P: AsRef<[u8]>>(parts: &[P]) -> Vec<u8> {
    let len = parts.iter().map(|p| 4 + p.as_ref().len()).sum();
    let mut body = Vec::with_capacity(len);
    for part in parts {
        let part = part.as_ref();
        let n = u32::try_from(part.len()).unwrap_or(u32::MAX);
        body.extend_from_slice(&n.to_be_bytes());
        body.extend_from_slice(&part[..n as usize]);
    }
    body
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
