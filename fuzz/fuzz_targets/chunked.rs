//! The chunked decoder, fed the input whole and in two pieces: both ways
//! give the same bytes and the same verdict, and never a panic.
#![no_main]
use edgeslab::http::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

fn run(pieces: &[&[u8]]) -> (Vec<u8>, bool, bool) {
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for p in pieces {
        pending.extend_from_slice(p);
        match dec.decode(&pending, &mut out) {
            Ok(used) => {
                assert!(used <= pending.len());
                pending.drain(..used);
            }
            Err(_) => return (out, false, true),
        }
        if dec.is_done() {
            break;
        }
    }
    (out, dec.is_done(), false)
}

fuzz_target!(|data: &[u8]| {
    let whole = run(&[data]);
    let mid = data.len() / 2;
    let split = run(&[&data[..mid], &data[mid..]]);
    if whole.1 && split.1 {
        assert_eq!(whole.0, split.0);
    }
    assert_eq!(whole.2 && !split.2, false, "an error only when whole");
});
