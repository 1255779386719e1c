//! A segment's summary and superblock decoders on any tail, with the
//! trailer's checksum made right as well.
#![no_main]
use edgeslab::cache::store::layout::{Superblock, TRAILER_SIZE, read_summary, summary_count};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Superblock::decode(data);
    if data.len() < 8 {
        return;
    }
    let seq = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
    let tail = &data[8..];
    let _ = read_summary(tail, seq, 1 << 20);
    if let Some(n) = summary_count(tail, seq) {
        let trailer_at = tail.len() - TRAILER_SIZE;
        if let Some(start) = n.checked_mul(16).and_then(|len| trailer_at.checked_sub(len)) {
            let mut fixed = tail.to_vec();
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(&fixed[start..trailer_at]);
            h.update(&fixed[trailer_at..trailer_at + 56]);
            let sum = h.digest();
            fixed[trailer_at + 56..trailer_at + 64].copy_from_slice(&sum.to_le_bytes());
            let _ = read_summary(&fixed, seq, 1 << 20);
        }
    }
});
