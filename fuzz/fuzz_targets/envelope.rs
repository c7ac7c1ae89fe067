//! Any bytes on the bus: the event and push decoders either decode or
//! return an error — never panic — and what decodes round-trips.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_proto::{decode_event, decode_push, encode_event, encode_push};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = decode_event(data) {
        let again = decode_event(&encode_event(&event)).expect("an encoded event decodes");
        assert_eq!(again, event);
    }
    if let Ok(push) = decode_push(data) {
        let again = decode_push(&encode_push(&push)).expect("an encoded push decodes");
        assert_eq!(again, push);
    }
});
