//! The index checkpoint a shard writes at a clean stop, into its region's
//! metadata area: the segment table, the raw index table, the ghost and the
//! chunk owners, sealed with one checksum and tied to the device's format id.
//! A start that loads it invalidates it before writing anything, so a
//! checkpoint is only ever trusted if nothing was written after it.
//!
//! Area: [header 4 KiB][segments 16 B each][index u64 each][ghost][owners 12 B each]

use super::layout::Queue;
use super::region::{ChunkOwner, Region, SegmentRecord};
use xxhash_rust::xxh3::Xxh3;

const MAGIC: &[u8; 8] = b"ESCKPT01";
pub const HEADER: usize = 4096;

/// What a loaded checkpoint gives back.
pub struct Image {
    pub records: Vec<Option<SegmentRecord>>,
    pub table: Vec<u64>,
    pub ghost: Vec<u8>,
    pub owners: Vec<ChunkOwner>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Bytes the checkpoint of `region` takes.
pub fn encoded_len(region: &Region) -> usize {
    HEADER
        + region.segments() as usize * 16
        + region.index.table().len() * 8
        + region.ghost_bytes().len()
        + region.chunk_owner_list().len() * 12
}

/// Writes the checkpoint into `out` (at least `encoded_len` bytes). Returns
/// the bytes used.
pub fn encode(region: &Region, format_id: u64, shard: u32, out: &mut [u8]) -> usize {
    let records = region.records();
    let table = region.index.table();
    let ghost = region.ghost_bytes();
    let owners = region.chunk_owner_list();
    let mut at = HEADER;
    for r in &records {
        let (seq, sealed, queue) = match r {
            Some(r) => (r.seq, 1u8, r.queue as u8),
            None => (0, 0, 0),
        };
        out[at..at + 8].copy_from_slice(&seq.to_le_bytes());
        out[at + 8] = sealed;
        out[at + 9] = queue;
        out[at + 10..at + 16].fill(0);
        at += 16;
    }
    for v in table {
        out[at..at + 8].copy_from_slice(&v.to_le_bytes());
        at += 8;
    }
    out[at..at + ghost.len()].copy_from_slice(ghost);
    at += ghost.len();
    for o in &owners {
        out[at..at + 4].copy_from_slice(&o.slot.to_le_bytes());
        out[at + 4..at + 12].copy_from_slice(&o.key_hash.to_le_bytes());
        at += 12;
    }
    let mut h = Xxh3::new();
    h.update(&out[HEADER..at]);
    let body_sum = h.digest();
    let hdr = &mut out[..HEADER];
    hdr.fill(0);
    hdr[0..8].copy_from_slice(MAGIC);
    hdr[8..16].copy_from_slice(&format_id.to_le_bytes());
    hdr[16..20].copy_from_slice(&shard.to_le_bytes());
    hdr[20..24].copy_from_slice(&region.segments().to_le_bytes());
    hdr[24..32].copy_from_slice(&(table.len() as u64).to_le_bytes());
    hdr[32..40].copy_from_slice(&(ghost.len() as u64).to_le_bytes());
    hdr[40..48].copy_from_slice(&(owners.len() as u64).to_le_bytes());
    hdr[48..56].copy_from_slice(&body_sum.to_le_bytes());
    let head_sum = xxhash_rust::xxh3::xxh3_64(&hdr[..120]);
    hdr[120..128].copy_from_slice(&head_sum.to_le_bytes());
    at
}

/// Lengths a valid header announces, checked against what this shard expects.
pub struct HeaderInfo {
    pub total: usize,
    segments: usize,
    table: usize,
    ghost: usize,
    owners: usize,
    body_sum: u64,
}

/// Reads a checkpoint header; None unless it is ours, intact and matches.
pub fn decode_header(
    b: &[u8],
    format_id: u64,
    shard: u32,
    segments: u32,
    table_len: usize,
) -> Option<HeaderInfo> {
    if b.len() < HEADER || &b[0..8] != MAGIC {
        return None;
    }
    if xxhash_rust::xxh3::xxh3_64(&b[..120]) != u64_at(b, 120) {
        return None;
    }
    if u64_at(b, 8) != format_id || u32_at(b, 16) != shard || u32_at(b, 20) != segments {
        return None;
    }
    if u64_at(b, 24) as usize != table_len {
        return None;
    }
    let (ghost, owners) = (u64_at(b, 32) as usize, u64_at(b, 40) as usize);
    let segments = segments as usize;
    Some(HeaderInfo {
        total: HEADER + segments * 16 + table_len * 8 + ghost + owners.checked_mul(12)?,
        segments,
        table: table_len,
        ghost,
        owners,
        body_sum: u64_at(b, 48),
    })
}

/// Decodes a whole checkpoint (header already checked) and verifies its body.
pub fn decode_body(b: &[u8], info: &HeaderInfo) -> Option<Image> {
    if b.len() < info.total {
        return None;
    }
    let mut h = Xxh3::new();
    h.update(&b[HEADER..info.total]);
    if h.digest() != info.body_sum {
        return None;
    }
    let mut at = HEADER;
    let mut records = Vec::with_capacity(info.segments);
    for _ in 0..info.segments {
        let seq = u64_at(b, at);
        records.push((b[at + 8] == 1).then_some(SegmentRecord {
            seq,
            queue: if b[at + 9] == 0 {
                Queue::Small
            } else {
                Queue::Main
            },
        }));
        at += 16;
    }
    let table = (0..info.table).map(|i| u64_at(b, at + i * 8)).collect();
    at += info.table * 8;
    let ghost = b[at..at + info.ghost].to_vec();
    at += info.ghost;
    let owners = (0..info.owners)
        .map(|i| ChunkOwner {
            slot: u32_at(b, at + i * 12),
            key_hash: u64_at(b, at + i * 12 + 4),
        })
        .collect();
    Some(Image {
        records,
        table,
        ghost,
        owners,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::index::{EntryLayout, Index};
    use crate::cache::store::eviction::EvictionParams;
    use crate::cache::store::placement::insert_without_device;

    #[test]
    fn round_trip_and_any_corruption_is_refused() {
        let layout = EntryLayout::new(8, 1 << 20, 1 << 20).unwrap();
        let mut r = Region::new(Index::new(layout, 500), 8, 1 << 20, 1);
        for i in 0..30u64 {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            insert_without_device(&mut r, h, 64 << 10).unwrap();
        }
        r.seal_heads();
        let mut buf = vec![0u8; encoded_len(&r) + 100];
        let n = encode(&r, 77, 1, &mut buf);
        assert_eq!(n, encoded_len(&r));
        let table_len = r.index.table().len();
        let info = decode_header(&buf, 77, 1, 8, table_len).unwrap();
        let img = decode_body(&buf, &info).unwrap();
        assert_eq!(img.records, r.records());
        assert_eq!(img.table, r.index.table());
        let restored = Region::restore(
            Index::from_table(layout, img.table).unwrap(),
            1 << 20,
            &img.records,
            Some(img.ghost),
            &img.owners,
            EvictionParams::default(),
        );
        assert_eq!(restored.index.len(), r.index.len());
        // Another format, another shard, a flipped byte: all refused.
        assert!(decode_header(&buf, 78, 1, 8, table_len).is_none());
        assert!(decode_header(&buf, 77, 0, 8, table_len).is_none());
        let mut bad = buf.clone();
        bad[HEADER + 20] ^= 1;
        let info = decode_header(&bad, 77, 1, 8, table_len).unwrap();
        assert!(decode_body(&bad, &info).is_none());
        let mut bad = buf;
        bad[30] ^= 1;
        assert!(decode_header(&bad, 77, 1, 8, table_len).is_none());
    }
}
