//! The viewer's request head parser: any bytes, any limits; never a panic,
//! and a head it accepts never claims more bytes than it was given.
#![no_main]
use edgeslab::http::{Limits, parse_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for limits in [Limits::default(), Limits { max_header_bytes: 256, max_uri_bytes: 64, max_headers: 4 }] {
        if let Ok(Some((head, n))) = parse_request(data, &limits) {
            assert!(n <= data.len());
            let _ = (head.path(), head.query());
        }
    }
});
