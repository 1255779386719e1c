//! The index checkpoint decoder, with the header's and the body's checksums
//! made right, so the table, ghost and owner decoding see mutated bytes.
#![no_main]
use edgeslab::cache::store::checkpoint::{HEADER, decode_body, decode_header};
use libfuzzer_sys::fuzz_target;

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

fuzz_target!(|data: &[u8]| {
    let _ = decode_header(data, 0, 0, 0, 0);
    if data.len() < 64 {
        return;
    }
    // Small sizes, so that a body of that length can follow the header.
    let segments = (u64_at(data, 0) % 64) as u32;
    let table = (u64_at(data, 8) % 512) as usize;
    let ghost = (u64_at(data, 16) % 512) as usize;
    let owners = (u64_at(data, 24) % 64) as usize;
    let total = HEADER + segments as usize * 16 + table * 8 + ghost + owners * 12;
    let mut b = vec![0u8; total];
    for (i, byte) in data[32..].iter().enumerate() {
        let at = HEADER + i;
        if at < total {
            b[at] = *byte;
        }
    }
    b[0..8].copy_from_slice(b"ESCKPT01");
    b[8..16].copy_from_slice(&7u64.to_le_bytes());
    b[16..20].copy_from_slice(&0u32.to_le_bytes());
    b[20..24].copy_from_slice(&segments.to_le_bytes());
    b[24..32].copy_from_slice(&(table as u64).to_le_bytes());
    b[32..40].copy_from_slice(&(ghost as u64).to_le_bytes());
    b[40..48].copy_from_slice(&(owners as u64).to_le_bytes());
    let body = xxhash_rust::xxh3::xxh3_64(&b[HEADER..total]);
    b[48..56].copy_from_slice(&body.to_le_bytes());
    let head = xxhash_rust::xxh3::xxh3_64(&b[..120]);
    b[120..128].copy_from_slice(&head.to_le_bytes());
    let info = decode_header(&b, 7, 0, segments, table).expect("a header made right decodes");
    let _ = decode_body(&b, &info);
});
