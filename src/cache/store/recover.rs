//! Recovery after a crash: rebuild a shard's index from the segments of its
//! region. A segment counts only if its header carries this device's format
//! id, this shard and this slot. Its entries come from the summary at its end
//! (a few blocks read per segment) when that summary is intact and of the
//! segment's sequence; otherwise the whole segment is read and walked, and an
//! entry counts only if its checksum holds and its sequence is the segment's.
//! Either way every hit is verified again when read, so torn writes and bytes
//! left from a slot's earlier use are never served. Newer copies of a key win
//! over older ones; a large object counts only if every chunk its manifest
//! lists is in a segment of the right sequence.

use super::device::Device;
use super::eviction::EvictionParams;
use super::geometry::Geometry;
use super::layout::{
    ChunkRef, ENTRY_HEADER_SIZE, EntryHeader, EntryKind, SEGMENT_HEADER_SIZE, SegmentHeader,
};
use super::layout::{read_summary, summary_count, summary_len};
use super::region::{ChunkOwner, Region, SegmentRecord};
use crate::cache::index::{EntryLayout, Index, Location, UNIT};

/// What a scan found, for the log.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanReport {
    pub segments: usize,
    /// Segments whose summary was used (the rest were read whole).
    pub summarized: usize,
    pub entries: usize,
    pub dropped: usize,
    pub read_errors: usize,
}

/// Reads a segment's summary and, for manifests, the manifest entries.
/// Returns false (having added nothing) when the summary cannot be used.
#[allow(clippy::too_many_arguments)]
async fn read_summarized(
    device: &Device,
    geo: &Geometry,
    base: u64,
    slot: u32,
    seq: u64,
    found: &mut Vec<Found>,
    owners: &mut Vec<ChunkOwner>,
    report: &mut ScanReport,
) -> bool {
    let seg_size = geo.segment_size;
    let Ok(tail) = device.read(base + seg_size - 4096, 4096).await else {
        return false;
    };
    let Some(n) = summary_count(&tail, seq) else {
        return false;
    };
    let need = summary_len(n as u64).div_ceil(4096) * 4096;
    if need > seg_size - SEGMENT_HEADER_SIZE as u64 {
        return false;
    }
    let tail = if need > 4096 {
        match device.read(base + seg_size - need, need as usize).await {
            Ok(t) => t,
            Err(_) => return false,
        }
    } else {
        tail
    };
    let Some(summary) = read_summary(&tail, seq, seg_size) else {
        return false;
    };
    let mut mine = Vec::with_capacity(summary.len());
    let mut chunks = Vec::new();
    for r in summary {
        let loc = Location {
            slot,
            offset: r.offset,
            len: r.len,
            manifest: r.kind == EntryKind::Manifest,
        };
        let refs = match r.kind {
            EntryKind::Chunk => {
                chunks.push(ChunkOwner {
                    slot,
                    key_hash: r.key_hash,
                });
                continue;
            }
            EntryKind::Object => None,
            EntryKind::Manifest => {
                // The chunk list lives in the manifest itself.
                let Ok(bytes) = device.read(base + r.offset as u64, r.len as usize).await else {
                    report.read_errors += 1;
                    continue;
                };
                match EntryHeader::verify(&bytes)
                    .filter(|h| h.seq == seq && h.kind == EntryKind::Manifest)
                {
                    Some(h) => {
                        let start = ENTRY_HEADER_SIZE + h.key_len as usize + h.head_len as usize;
                        match ChunkRef::decode(&bytes[start..h.total_len() as usize]) {
                            Some((_, refs)) => Some(refs),
                            None => {
                                report.dropped += 1;
                                continue;
                            }
                        }
                    }
                    None => {
                        report.dropped += 1;
                        continue;
                    }
                }
            }
        };
        mine.push(Found {
            seq,
            hash: r.key_hash,
            loc,
            chunks: refs,
        });
    }
    found.extend(mine);
    owners.extend(chunks);
    true
}

/// Walks a whole segment's entries, keeping those that verify.
fn walk(
    seg: &[u8],
    slot: u32,
    seq: u64,
    found: &mut Vec<Found>,
    owners: &mut Vec<ChunkOwner>,
    report: &mut ScanReport,
) {
    let seg_size = seg.len();
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
        if eh.seq != seq || EntryHeader::verify(entry).is_none() {
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
            EntryKind::Chunk => owners.push(ChunkOwner {
                slot,
                key_hash: eh.key_hash,
            }),
            EntryKind::Object => found.push(Found {
                seq,
                hash: eh.key_hash,
                loc,
                chunks: None,
            }),
            EntryKind::Manifest => {
                let start = ENTRY_HEADER_SIZE + eh.key_len as usize + eh.head_len as usize;
                match ChunkRef::decode(&entry[start..]) {
                    Some((_, refs)) => found.push(Found {
                        seq,
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
    let mut owners: Vec<ChunkOwner> = Vec::new();
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
        records[slot as usize] = Some(SegmentRecord {
            seq: sh.seq,
            queue: sh.queue,
        });
        report.segments += 1;
        if read_summarized(
            device,
            geo,
            base,
            slot,
            sh.seq,
            &mut found,
            &mut owners,
            &mut report,
        )
        .await
        {
            report.summarized += 1;
            continue;
        }
        let seg = match device.read(base, seg_size).await {
            Ok(s) => s,
            Err(_) => {
                report.read_errors += 1;
                records[slot as usize] = None;
                continue;
            }
        };
        walk(&seg, slot, sh.seq, &mut found, &mut owners, &mut report);
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
