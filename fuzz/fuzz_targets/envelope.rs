//! Any bytes on the bus: the event, push and batch decoders either decode
//! or return an error — never panic — and what decodes round-trips.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_proto::{batch, decode_event, decode_push, encode_event, encode_push};

fuzz_target!(|data: &[u8]| {
    if let Ok(parts) = batch::unpack(data) {
        assert_eq!(batch::pack(&parts), data, "a batch re-packs to the same bytes");
        for part in parts {
            let _ = decode_event(part);
            let _ = decode_push(part);
        }
    }
    if let Ok(event) = decode_event(data) {
        let again = decode_event(&encode_event(&event)).expect("an encoded event decodes");
        assert_eq!(again, event);
    }
    if let Ok(push) = decode_push(data) {
        let again = decode_push(&encode_push(&push)).expect("an encoded push decodes");
        assert_eq!(again, push);
    }
});
