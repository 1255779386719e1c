//! Recovery after a crash: rebuild a shard's index by reading every segment
//! of its region. A segment counts only if its header carries this device's
//! format id, this shard and this slot; an entry counts only if its
//! checksum holds and its sequence number is its segment's, so torn writes
//! and bytes left from a slot's earlier use are never indexed. Newer copies
//! of a key win over older ones; a large object counts only if every chunk
//! its manifest lists is in a segment of the right sequence.

use super::device::{Device, Geometry};
use super::layout::{
    ChunkRef, ENTRY_HEADER_SIZE, EntryHeader, EntryKind, SEGMENT_HEADER_SIZE, SegmentHeader,
};
use super::region::{EvictionParams, Region, SegmentRecord};
use crate::cache::index::{EntryLayout, Index, Location, UNIT};

/// What a scan found, for the log.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanReport {
    pub segments: usize,
    pub entries: usize,
    pub dropped: usize,
    pub read_errors: usize,
}

struct Found {
    seq: u64,
    hash: u64,
    loc: Location,
    chunks: Option<Vec<ChunkRef>>,
}

pub async fn scan(
    device: &Device,
    geo: &Geometry,
    shard: u32,
    format_id: u64,
    layout: EntryLayout,
    params: EvictionParams,
) -> (Region, ScanReport) {
    let nsegs = geo.segments_per_region as usize;
    let seg_size = geo.segment_size as usize;
    let mut report = ScanReport::default();
    let mut records: Vec<Option<SegmentRecord>> = vec![None; nsegs];
    let mut found: Vec<Found> = Vec::new();
    let mut owners: Vec<(u32, u64)> = Vec::new();
    for slot in 0..nsegs as u32 {
        let base = geo.segment_offset(shard, slot);
        let header = match device.read(base, SEGMENT_HEADER_SIZE).await {
            Ok(h) => SegmentHeader::decode(&h),
            Err(_) => {
                report.read_errors += 1;
                continue;
            }
        };
        let Some(sh) =
            header.filter(|h| h.format_id == format_id && h.shard == shard && h.slot == slot)
        else {
            continue;
        };
        let seg = match device.read(base, seg_size).await {
            Ok(s) => s,
            Err(_) => {
                report.read_errors += 1;
                continue;
            }
        };
        records[slot as usize] = Some(SegmentRecord {
            seq: sh.seq,
            queue: sh.queue,
        });
        report.segments += 1;
        let mut off = SEGMENT_HEADER_SIZE;
        while off + ENTRY_HEADER_SIZE <= seg_size {
            let Some(eh) = EntryHeader::decode_header(&seg[off..]) else {
                break;
            };
            let total = eh.total_len() as usize;
            let alloc = (total as u64).div_ceil(UNIT) as usize * UNIT as usize;
            if off + total > seg_size {
                break;
            }
            let entry = &seg[off..off + total];
            if eh.seq != sh.seq || EntryHeader::verify(entry).is_none() {
                report.dropped += 1;
                off += alloc;
                continue;
            }
            let loc = Location {
                slot,
                offset: off as u32,
                len: alloc as u32,
                manifest: eh.kind == EntryKind::Manifest,
            };
            match eh.kind {
                EntryKind::Chunk => owners.push((slot, eh.key_hash)),
                EntryKind::Object => found.push(Found {
                    seq: sh.seq,
                    hash: eh.key_hash,
                    loc,
                    chunks: None,
                }),
                EntryKind::Manifest => {
                    let start = ENTRY_HEADER_SIZE + eh.key_len as usize + eh.head_len as usize;
                    match ChunkRef::decode(&entry[start..]) {
                        Some((_, refs)) => found.push(Found {
                            seq: sh.seq,
                            hash: eh.key_hash,
                            loc,
                            chunks: Some(refs),
                        }),
                        None => report.dropped += 1,
                    }
                }
            }
            off += alloc;
        }
    }
    found.sort_by_key(|f| (f.seq, f.loc.offset));
    let index = Index::new(layout, geo.index_objects);
    let mut region = Region::restore(index, geo.segment_size, &records, None, &owners, params);
    for f in found {
        let chunks_intact = f.chunks.as_ref().is_none_or(|refs| {
            refs.iter().all(|c| {
                records
                    .get(c.slot as usize)
                    .copied()
                    .flatten()
                    .is_some_and(|r| r.seq == c.seq)
            })
        });
        if chunks_intact {
            region.insert(f.hash, f.loc);
            report.entries += 1;
        } else {
            // The newest version of this key is broken: older versions must
            // not come back in its place.
            region.index.remove(f.hash);
            report.dropped += 1;
        }
    }
    (region, report)
}
