//! Stored-entry decoding: any bytes, and the same bytes with the checksum
//! made right (so the decoders behind it see mutated content), are either
//! rejected or decoded without a panic.
#![no_main]
use edgeslab::cache::parts::PartsMarker;
use edgeslab::cache::store::layout::{ChunkRef, EntryHeader};
use edgeslab::cache::vary::Marker;
use libfuzzer_sys::fuzz_target;

const HEADER: usize = 64;

fn exercise(b: &[u8]) {
    let _ = EntryHeader::decode_header(b);
    let Some(h) = EntryHeader::verify(b) else { return };
    let key_end = HEADER + h.key_len as usize;
    let head_end = key_end + h.head_len as usize;
    if let Some(head) = b.get(key_end..head_end) {
        let _ = PartsMarker::decode(head);
        let _ = Marker::decode(head);
        let _ = edgeslab::http::parse_response(head, &edgeslab::http::Limits::default(), false);
    }
    if let Some(rest) = b.get(head_end..) {
        let _ = ChunkRef::decode(rest);
    }
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    if data.len() >= HEADER && EntryHeader::decode_header(data).is_some() {
        let mut fixed = data.to_vec();
        if let Some(h) = EntryHeader::decode_header(&fixed) {
            let end = (HEADER as u64).saturating_add(h.payload_len()).min(fixed.len() as u64) as usize;
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            hasher.update(&fixed[..56]);
            hasher.update(&fixed[HEADER..end]);
            let sum = hasher.digest();
            fixed[56..64].copy_from_slice(&sum.to_le_bytes());
            exercise(&fixed);
        }
    }
});
