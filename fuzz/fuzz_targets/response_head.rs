//! The origin's response head parser, for GET and HEAD requests alike.
#![no_main]
use edgeslab::http::{Limits, parse_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for head_request in [false, true] {
        if let Ok(Some((head, n))) = parse_response(data, &Limits::default(), head_request) {
            assert!(n <= data.len());
            let _ = head.has_non_chunked_transfer_coding();
        }
    }
});
