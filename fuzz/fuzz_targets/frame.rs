//! Any bytes a client sends: the frame decoder, and the login body decoder
//! behind it, either decode or return an error — never panic — and what
//! decodes encodes back to a frame that decodes to the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_proto::{Frame, LoginRequest, decode_body};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        let again = Frame::decode(&frame.encode()).expect("an encoded frame decodes");
        assert_eq!(again, frame);
        let _ = decode_body::<LoginRequest>("a login body", &frame.body);
    }
});
