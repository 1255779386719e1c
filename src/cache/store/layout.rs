//! On-device formats: the superblock, segment headers and entry headers, and
//! their checksums. Pure byte encoding and decoding, no I/O. Every decoder
//! checks magic, version and checksum and returns `None` on any mismatch, so a
//! torn or foreign block is never taken for data.
//!
//! Device:  [superblock 4 KiB][pad to 1 MiB][region 0][region 1]...
//! Region:  [segment 0][segment 1]...           (one region per shard)
//! Segment: [segment header 4 KiB][entry][entry]...[summary][trailer 64 B]
//!          (entries 512-aligned; the summary lists every entry, so a scan
//!          after a crash reads a few blocks per segment, not all of it)
//! Entry:   [entry header 64 B][key][response head][body | chunk table]
//!
//! Entry header: magic u32, kind u8, format version u8, key length u16,
//! head length u32, chunk index/count u32, body length u64, key hash u64,
//! segment sequence u64, born (unix ms, age zero) u64, expires (unix ms)
//! u64, xxh3-64 checksum over the header and the whole payload.

use xxhash_rust::xxh3::Xxh3;

pub const FORMAT_VERSION: u32 = 2;
pub const SUPERBLOCK_SIZE: usize = 4096;
/// Regions start here, so the data area stays aligned for any device.
pub const DATA_START: u64 = 1 << 20;
pub const SEGMENT_HEADER_SIZE: usize = 4096;
pub const ENTRY_HEADER_SIZE: usize = 64;

const SUPER_MAGIC: &[u8; 8] = b"EDGESLAB";
const SEGMENT_MAGIC: &[u8; 8] = b"ESSEGMNT";
const ENTRY_MAGIC: u32 = 0x4553_4531; // "ESE1"

fn xxh3_parts(parts: &[&[u8]]) -> u64 {
    let mut h = Xxh3::new();
    for p in parts {
        h.update(p);
    }
    h.digest()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// What a device was formatted for. A mismatch with the running config means
/// the regions cannot be read as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    pub version: u32,
    pub device_size: u64,
    pub segment_size: u64,
    pub shards: u32,
    pub segments_per_region: u32,
    /// Objects each shard's index was sized for (from cache.avg_object_size).
    pub index_objects: u64,
    /// Random per format: ties segments and checkpoints to this formatting.
    pub format_id: u64,
}

impl Superblock {
    pub fn encode(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        b[0..8].copy_from_slice(SUPER_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&self.shards.to_le_bytes());
        b[16..24].copy_from_slice(&self.device_size.to_le_bytes());
        b[24..32].copy_from_slice(&self.segment_size.to_le_bytes());
        b[32..40].copy_from_slice(&self.format_id.to_le_bytes());
        b[40..48].copy_from_slice(&self.index_objects.to_le_bytes());
        b[48..52].copy_from_slice(&self.segments_per_region.to_le_bytes());
        let sum = xxh3_parts(&[&b[..120]]);
        b[120..128].copy_from_slice(&sum.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> SuperblockRead {
        if b.len() < 128 || &b[0..8] != SUPER_MAGIC {
            return SuperblockRead::Absent;
        }
        // The version sits at the same place in every format; a device of
        // another version is not read any further.
        let version = u32_at(b, 8);
        if version != FORMAT_VERSION {
            return SuperblockRead::OtherVersion(version);
        }
        if xxh3_parts(&[&b[..120]]) != u64_at(b, 120) {
            return SuperblockRead::Corrupt;
        }
        SuperblockRead::Valid(Superblock {
            version: u32_at(b, 8),
            shards: u32_at(b, 12),
            device_size: u64_at(b, 16),
            segment_size: u64_at(b, 24),
            format_id: u64_at(b, 32),
            index_objects: u64_at(b, 40),
            segments_per_region: u32_at(b, 48),
        })
    }

    /// What differs between the layout on the device and the one wanted, in
    /// words for the log; empty when the device can be used as it is.
    pub fn differences(&self, wanted: &Superblock) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |what: &str, old: u64, new: u64| {
            if old != new {
                d.push(format!("{what} {old} -> {new}"));
            }
        };
        cmp("format version", self.version as u64, wanted.version as u64);
        cmp("device size", self.device_size, wanted.device_size);
        cmp("segment size", self.segment_size, wanted.segment_size);
        cmp(
            "shard count (cores)",
            self.shards as u64,
            wanted.shards as u64,
        );
        cmp(
            "index objects per shard (cache.avg_object_size)",
            self.index_objects,
            wanted.index_objects,
        );
        cmp(
            "segments per shard",
            self.segments_per_region as u64,
            wanted.segments_per_region as u64,
        );
        d
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuperblockRead {
    /// No edgeslab superblock: a new or foreign device.
    Absent,
    /// Our magic with a bad checksum.
    Corrupt,
    /// Formatted by a version of edgeslab with another on-device format.
    OtherVersion(u32),
    Valid(Superblock),
}

/// One use of a segment slot: the slot and the sequence number it was opened
/// with. Slots are reused; the pair names one segment's contents, and an
/// entry whose header carries another sequence is from another use.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct SegmentId {
    pub slot: u32,
    pub seq: u64,
}

/// Which queue a segment belongs to (S3-FIFO's small and main queues).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    Small = 0,
    Main = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub format_id: u64,
    pub shard: u32,
    pub slot: u32,
    pub seq: u64,
    pub queue: Queue,
}

impl SegmentHeader {
    pub fn encode_into(&self, b: &mut [u8]) {
        b[..SEGMENT_HEADER_SIZE].fill(0);
        b[0..8].copy_from_slice(SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.shard.to_le_bytes());
        b[16..20].copy_from_slice(&self.slot.to_le_bytes());
        b[20..24].copy_from_slice(&(self.queue as u32).to_le_bytes());
        b[24..32].copy_from_slice(&self.seq.to_le_bytes());
        b[32..40].copy_from_slice(&self.format_id.to_le_bytes());
        let sum = xxh3_parts(&[&b[..56]]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
    }

    pub fn decode(b: &[u8]) -> Option<SegmentHeader> {
        if b.len() < 64 || &b[0..8] != SEGMENT_MAGIC || u32_at(b, 8) != FORMAT_VERSION {
            return None;
        }
        if xxh3_parts(&[&b[..56]]) != u64_at(b, 56) {
            return None;
        }
        Some(SegmentHeader {
            shard: u32_at(b, 12),
            slot: u32_at(b, 16),
            queue: if u32_at(b, 20) == 0 {
                Queue::Small
            } else {
                Queue::Main
            },
            seq: u64_at(b, 24),
            format_id: u64_at(b, 32),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Key, head and the whole body.
    Object = 1,
    /// A piece of a large object's body.
    Chunk = 2,
    /// Key, head and the table of a large object's chunks.
    Manifest = 3,
}

/// Fixed 64-byte header in front of every entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    pub kind: EntryKind,
    pub key_len: u16,
    pub head_len: u32,
    /// Chunk: its index in the object. Manifest: number of chunks. Object: 0.
    pub chunk_index: u32,
    /// Object: body bytes here. Chunk: data bytes here. Manifest: whole body.
    pub body_len: u64,
    pub key_hash: u64,
    /// Sequence number of the segment the entry was written into; a reader
    /// that finds another value is looking at an overwritten segment.
    pub seq: u64,
    /// Object/manifest: unix ms when the response's age was zero.
    /// Chunk: the fill id that ties it to its manifest.
    pub born_ms: u64,
    /// Object/manifest: unix ms when it stops being fresh. Chunk: 0.
    pub expires_ms: u64,
}

impl EntryHeader {
    /// Bytes the payload occupies after the header. Saturating: a corrupt
    /// header's lengths can be anything (found by fuzzing), and a sum that
    /// wrapped would pass the bounds checks that use it.
    pub fn payload_len(&self) -> u64 {
        let named = (self.key_len as u64).saturating_add(self.head_len as u64);
        match self.kind {
            EntryKind::Object | EntryKind::Chunk => named.saturating_add(self.body_len),
            EntryKind::Manifest => named
                .saturating_add(16)
                .saturating_add(self.chunk_index as u64 * CHUNK_REF_SIZE as u64),
        }
    }

    fn encode_unsummed(&self, b: &mut [u8]) {
        b[0..4].copy_from_slice(&ENTRY_MAGIC.to_le_bytes());
        b[4] = self.kind as u8;
        b[5] = FORMAT_VERSION as u8;
        b[6..8].copy_from_slice(&self.key_len.to_le_bytes());
        b[8..12].copy_from_slice(&self.head_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.chunk_index.to_le_bytes());
        b[16..24].copy_from_slice(&self.body_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.key_hash.to_le_bytes());
        b[32..40].copy_from_slice(&self.seq.to_le_bytes());
        b[40..48].copy_from_slice(&self.born_ms.to_le_bytes());
        b[48..56].copy_from_slice(&self.expires_ms.to_le_bytes());
    }

    /// Writes header and payload into `b` (which must hold both) and seals
    /// them with one checksum. Returns the bytes used.
    pub fn write_entry(&self, b: &mut [u8], payload: &[&[u8]]) -> usize {
        let mut at = ENTRY_HEADER_SIZE;
        for p in payload {
            b[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        debug_assert_eq!((at - ENTRY_HEADER_SIZE) as u64, self.payload_len());
        self.encode_unsummed(&mut b[..ENTRY_HEADER_SIZE]);
        let sum = xxh3_parts(&[&b[..56], &b[ENTRY_HEADER_SIZE..at]]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
        at
    }

    /// Decodes a header without checking the payload (the scan of a segment
    /// uses this to find the next entry).
    pub fn decode_header(b: &[u8]) -> Option<EntryHeader> {
        if b.len() < ENTRY_HEADER_SIZE
            || u32_at(b, 0) != ENTRY_MAGIC
            || b[5] != FORMAT_VERSION as u8
        {
            return None;
        }
        let kind = match b[4] {
            1 => EntryKind::Object,
            2 => EntryKind::Chunk,
            3 => EntryKind::Manifest,
            _ => return None,
        };
        Some(EntryHeader {
            kind,
            key_len: u16::from_le_bytes([b[6], b[7]]),
            head_len: u32_at(b, 8),
            chunk_index: u32_at(b, 12),
            body_len: u64_at(b, 16),
            key_hash: u64_at(b, 24),
            seq: u64_at(b, 32),
            born_ms: u64_at(b, 40),
            expires_ms: u64_at(b, 48),
        })
    }

    /// The header of an entry already verified once, when `b` holds all
    /// of it: `verify` without hashing the payload again.
    pub fn decode_whole(b: &[u8]) -> Option<EntryHeader> {
        let h = Self::decode_header(b)?;
        (h.total_len() <= b.len() as u64).then_some(h)
    }

    /// Decodes and verifies a whole entry held in `b`.
    pub fn verify(b: &[u8]) -> Option<EntryHeader> {
        let h = Self::decode_whole(b)?;
        let end = h.total_len() as usize;
        let sum = xxh3_parts(&[&b[..56], &b[ENTRY_HEADER_SIZE..end]]);
        (sum == u64_at(b, 56)).then_some(h)
    }

    pub fn total_len(&self) -> u64 {
        (ENTRY_HEADER_SIZE as u64).saturating_add(self.payload_len())
    }
}

const SUMMARY_MAGIC: &[u8; 8] = b"ESSUMMRY";
/// The trailer at the very end of a segment.
pub const TRAILER_SIZE: usize = 64;
/// One summary record per entry.
pub const SUMMARY_RECORD: usize = 16;

/// Bytes the summary of a segment with `entries` entries takes at its end.
pub fn summary_len(entries: u64) -> u64 {
    TRAILER_SIZE as u64 + SUMMARY_RECORD as u64 * entries
}

/// An entry as the segment summary lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SummaryRecord {
    pub offset: u32,
    /// Allocated length (a multiple of 512).
    pub len: u32,
    pub kind: EntryKind,
    pub key_hash: u64,
}

/// Writes the summary of `records` so that it ends at the end of `seg`.
pub fn write_summary(seg: &mut [u8], seq: u64, records: &[SummaryRecord]) {
    let end = seg.len();
    let trailer_at = end - TRAILER_SIZE;
    let start = trailer_at - records.len() * SUMMARY_RECORD;
    for (i, r) in records.iter().enumerate() {
        let at = start + i * SUMMARY_RECORD;
        seg[at..at + 8].copy_from_slice(&r.key_hash.to_le_bytes());
        seg[at + 8..at + 12].copy_from_slice(&(r.offset / 512).to_le_bytes());
        let len_kind = (r.len / 512) << 8 | r.kind as u32;
        seg[at + 12..at + 16].copy_from_slice(&len_kind.to_le_bytes());
    }
    let t = &mut seg[trailer_at..];
    t.fill(0);
    t[0..8].copy_from_slice(SUMMARY_MAGIC);
    t[8..16].copy_from_slice(&seq.to_le_bytes());
    t[16..20].copy_from_slice(&(records.len() as u32).to_le_bytes());
    let sum = xxh3_parts(&[&seg[start..trailer_at], &seg[trailer_at..trailer_at + 56]]);
    seg[trailer_at + 56..end].copy_from_slice(&sum.to_le_bytes());
}

/// Reads the trailer at the end of `tail` (the last bytes of a segment):
/// the number of summary records, if the trailer is intact and of `seq`.
pub fn summary_count(tail: &[u8], seq: u64) -> Option<usize> {
    let t = tail.get(tail.len().checked_sub(TRAILER_SIZE)?..)?;
    if &t[0..8] != SUMMARY_MAGIC || u64_at(t, 8) != seq {
        return None;
    }
    Some(u32_at(t, 16) as usize)
}

/// Decodes the summary that ends at the end of `tail`, which must hold it
/// whole; None if anything does not check.
pub fn read_summary(tail: &[u8], seq: u64, segment_size: u64) -> Option<Vec<SummaryRecord>> {
    let n = summary_count(tail, seq)?;
    let trailer_at = tail.len() - TRAILER_SIZE;
    let start = trailer_at.checked_sub(n.checked_mul(SUMMARY_RECORD)?)?;
    let sum = xxh3_parts(&[&tail[start..trailer_at], &tail[trailer_at..trailer_at + 56]]);
    if sum != u64_at(tail, trailer_at + 56) {
        return None;
    }
    (0..n)
        .map(|i| {
            let at = start + i * SUMMARY_RECORD;
            let len_kind = u32_at(tail, at + 12);
            let kind = match len_kind & 0xFF {
                1 => EntryKind::Object,
                2 => EntryKind::Chunk,
                3 => EntryKind::Manifest,
                _ => return None,
            };
            let r = SummaryRecord {
                key_hash: u64_at(tail, at),
                offset: u32_at(tail, at + 8).checked_mul(512)?,
                len: (len_kind >> 8).checked_mul(512)?,
                kind,
            };
            let fits = r.offset as u64 >= SEGMENT_HEADER_SIZE as u64
                && r.len > 0
                && r.offset as u64 + r.len as u64 <= segment_size - summary_len(n as u64);
            fits.then_some(r)
        })
        .collect()
}

/// A chunk's place, as listed in its manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub slot: u32,
    pub offset: u32,
    /// Entry length (header included), rounded up to the allocation unit.
    pub len: u32,
    pub seq: u64,
    /// Body bytes in this chunk.
    pub data_len: u32,
}

pub const CHUNK_REF_SIZE: usize = 24;

impl ChunkRef {
    /// The segment the chunk was written into.
    pub fn segment(&self) -> SegmentId {
        SegmentId {
            slot: self.slot,
            seq: self.seq,
        }
    }

    pub fn encode(refs: &[ChunkRef], fill_id: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&fill_id.to_le_bytes());
        out.extend_from_slice(&(refs.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        for r in refs {
            out.extend_from_slice(&r.slot.to_le_bytes());
            out.extend_from_slice(&r.offset.to_le_bytes());
            out.extend_from_slice(&r.len.to_le_bytes());
            out.extend_from_slice(&r.data_len.to_le_bytes());
            out.extend_from_slice(&r.seq.to_le_bytes());
        }
    }

    /// Returns the fill id and the chunk list.
    pub fn decode(b: &[u8]) -> Option<(u64, Vec<ChunkRef>)> {
        if b.len() < 16 {
            return None;
        }
        let fill_id = u64_at(b, 0);
        let n = u32_at(b, 8) as usize;
        if b.len() != 16 + n.checked_mul(CHUNK_REF_SIZE)? {
            return None;
        }
        let refs = (0..n)
            .map(|i| {
                let at = 16 + i * CHUNK_REF_SIZE;
                ChunkRef {
                    slot: u32_at(b, at),
                    offset: u32_at(b, at + 4),
                    len: u32_at(b, at + 8),
                    data_len: u32_at(b, at + 12),
                    seq: u64_at(b, at + 16),
                }
            })
            .collect();
        Some((fill_id, refs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_round_trip_and_corruption() {
        let sb = Superblock {
            version: FORMAT_VERSION,
            device_size: 1 << 30,
            segment_size: 16 << 20,
            shards: 2,
            segments_per_region: 30,
            index_objects: 1000,
            format_id: 42,
        };
        let mut b = sb.encode();
        assert_eq!(Superblock::decode(&b), SuperblockRead::Valid(sb));
        assert!(sb.differences(&sb).is_empty());
        let other = Superblock { shards: 4, ..sb };
        assert_eq!(
            sb.differences(&other),
            vec!["shard count (cores) 2 -> 4".to_string()]
        );
        b[20] ^= 1;
        assert_eq!(Superblock::decode(&b), SuperblockRead::Corrupt);
        b[8] = 1;
        assert_eq!(Superblock::decode(&b), SuperblockRead::OtherVersion(1));
        assert_eq!(Superblock::decode(&[0u8; 4096]), SuperblockRead::Absent);
    }

    #[test]
    fn segment_header_round_trip() {
        let h = SegmentHeader {
            format_id: 7,
            shard: 1,
            slot: 3,
            seq: 99,
            queue: Queue::Main,
        };
        let mut b = vec![0u8; SEGMENT_HEADER_SIZE];
        h.encode_into(&mut b);
        assert_eq!(SegmentHeader::decode(&b), Some(h));
        b[30] ^= 0x80;
        assert_eq!(SegmentHeader::decode(&b), None);
    }

    #[test]
    fn entry_checksum_catches_any_flipped_byte() {
        let h = EntryHeader {
            kind: EntryKind::Object,
            key_len: 3,
            head_len: 4,
            chunk_index: 0,
            body_len: 5,
            key_hash: 0xABCD,
            seq: 12,
            born_ms: 1000,
            expires_ms: 2000,
        };
        let mut b = vec![0u8; 512];
        let n = h.write_entry(&mut b, &[b"key", b"head", b"body!"]);
        assert_eq!(n as u64, h.total_len());
        assert_eq!(EntryHeader::verify(&b), Some(h));
        for i in 0..n {
            let mut c = b.clone();
            c[i] ^= 0x01;
            assert_eq!(EntryHeader::verify(&c), None, "flip at {i} went unnoticed");
        }
        // A truncated read is not an entry either.
        assert_eq!(EntryHeader::verify(&b[..n - 1]), None);
    }

    #[test]
    fn summary_round_trip_and_refusals() {
        let recs = vec![
            SummaryRecord {
                offset: 4096,
                len: 1024,
                kind: EntryKind::Object,
                key_hash: 7,
            },
            SummaryRecord {
                offset: 5120,
                len: 512,
                kind: EntryKind::Chunk,
                key_hash: 9,
            },
        ];
        let mut seg = vec![0u8; 1 << 16];
        write_summary(&mut seg, 42, &recs);
        assert_eq!(summary_count(&seg[seg.len() - 4096..], 42), Some(2));
        assert_eq!(read_summary(&seg, 42, 1 << 16), Some(recs.clone()));
        assert_eq!(read_summary(&seg, 41, 1 << 16), None, "another sequence");
        let last = seg.len() - 70;
        seg[last] ^= 1;
        assert_eq!(read_summary(&seg, 42, 1 << 16), None, "a flipped byte");
    }

    #[test]
    fn chunk_table_round_trip() {
        let refs = vec![
            ChunkRef {
                slot: 1,
                offset: 4096,
                len: 1 << 20,
                seq: 5,
                data_len: 1000,
            },
            ChunkRef {
                slot: 2,
                offset: 8192,
                len: 512,
                seq: 6,
                data_len: 10,
            },
        ];
        let mut out = Vec::new();
        ChunkRef::encode(&refs, 77, &mut out);
        assert_eq!(ChunkRef::decode(&out), Some((77, refs)));
        assert_eq!(ChunkRef::decode(&out[..out.len() - 1]), None);
    }

    /// Found by fuzzing: lengths that overflow a u64 sum are rejected, not
    /// wrapped into a small `end` that passes the bounds check.
    #[test]
    fn a_header_whose_lengths_overflow_is_rejected() {
        let mut b = vec![0u8; 128];
        b[0..4].copy_from_slice(&ENTRY_MAGIC.to_le_bytes());
        b[4] = 1;
        b[5] = FORMAT_VERSION as u8;
        b[6..8].copy_from_slice(&10u16.to_le_bytes());
        b[16..24].copy_from_slice(&(u64::MAX - 5).to_le_bytes());
        let h = EntryHeader::decode_header(&b).expect("a header");
        assert_eq!(h.payload_len(), u64::MAX);
        assert!(EntryHeader::verify(&b).is_none());
    }
}
