//! The bookkeeping of one shard's region: which segment slots are free, open
//! or sealed, each queue's write head, which index buckets and large objects
//! each segment holds, and the region's counters. Pure state with no I/O.
//! Eviction decisions (which segment to reclaim, which entries it keeps) are
//! `eviction`'s; when to rotate or reclaim is `placement`'s step machine,
//! which both the store's writer and the benchmarks drive.

use super::eviction::{EvictionParams, ReclaimPlan, S3Fifo};
use super::layout::{Queue, SEGMENT_HEADER_SIZE, SegmentId, summary_len};
use super::placement::{Placement, Rotation, SealedSegment};
use crate::cache::index::{Index, Location, Taken};
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegState {
    Free,
    Open,
    Sealed,
}

#[derive(Clone, Debug)]
pub struct SegmentMeta {
    pub seq: u64,
    pub state: SegState,
    pub queue: Queue,
    /// Index bucket of every object or manifest written here.
    members: Vec<u32>,
    /// Key hashes of large objects that have a chunk here.
    chunk_owners: Vec<u64>,
}

/// A segment as a checkpoint or a scan of the device found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentRecord {
    pub seq: u64,
    pub queue: Queue,
}

/// A large object with a chunk in a segment slot: losing the slot loses the
/// object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkOwner {
    pub slot: u32,
    pub key_hash: u64,
}

/// What the region's reclaims did, counted since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionStats {
    pub reclaims: u64,
    pub reinserted: u64,
    pub evicted: u64,
}

/// A queue's open segment: where its next entry goes.
#[derive(Clone, Copy, Debug)]
struct WriteHead {
    slot: u32,
    seq: u64,
    cursor: u64,
    /// Entries placed so far: the segment's summary needs room for each.
    entries: u64,
}

pub struct Region {
    pub index: Index,
    segment_size: u64,
    heads: [Option<WriteHead>; 2],
    segs: Vec<SegmentMeta>,
    free: VecDeque<u32>,
    eviction: S3Fifo,
    next_seq: u64,
    stats: RegionStats,
}

impl Region {
    pub fn new(index: Index, segments: u32, segment_size: u64, first_seq: u64) -> Region {
        Self::with_params(
            index,
            segments,
            segment_size,
            first_seq,
            EvictionParams::default(),
        )
    }

    pub fn with_params(
        index: Index,
        segments: u32,
        segment_size: u64,
        first_seq: u64,
        params: EvictionParams,
    ) -> Region {
        let eviction = S3Fifo::new(params, ghost_slots(&index));
        Region {
            index,
            segment_size,
            heads: [None, None],
            segs: (0..segments)
                .map(|_| SegmentMeta {
                    seq: 0,
                    state: SegState::Free,
                    queue: Queue::Main,
                    members: Vec::new(),
                    chunk_owners: Vec::new(),
                })
                .collect(),
            free: (0..segments).collect(),
            eviction,
            next_seq: first_seq.max(1),
            stats: RegionStats::default(),
        }
    }

    /// Rebuilds a region from what was found on the device: the sealed
    /// segments (by slot; None is free), an index (empty after a scan, whole
    /// after a checkpoint), the ghost if it was saved, and the chunk owners.
    /// Segment membership is rebuilt from the index; entries that point at a
    /// segment that is not sealed are dropped.
    pub fn restore(
        mut index: Index,
        segment_size: u64,
        records: &[Option<SegmentRecord>],
        ghost: Option<Vec<u8>>,
        chunk_owners: &[ChunkOwner],
        params: EvictionParams,
    ) -> Region {
        let mut r = Region::with_params(
            Index::new(index.layout(), 0),
            records.len() as u32,
            segment_size,
            1,
            params,
        );
        // The ghost is sized from the index it serves, not from the empty
        // one the region was built with above.
        r.eviction = S3Fifo::new(params, ghost_slots(&index));
        if let Some(g) = ghost {
            r.eviction.restore_ghost(g);
        }
        let mut order: Vec<(u64, u32)> = Vec::new();
        r.free.clear();
        for (slot, rec) in records.iter().enumerate() {
            let seg = &mut r.segs[slot];
            match rec {
                Some(rec) => {
                    seg.seq = rec.seq;
                    seg.queue = rec.queue;
                    seg.state = SegState::Sealed;
                    order.push((rec.seq, slot as u32));
                }
                None => r.free.push_back(slot as u32),
            }
        }
        order.sort_unstable();
        for &(seq, slot) in &order {
            r.eviction.push_sealed(slot, r.segs[slot as usize].queue);
            r.next_seq = r.next_seq.max(seq + 1);
        }
        let stray: Vec<_> = index
            .iter()
            .filter(|t| {
                r.segs
                    .get(t.loc.slot as usize)
                    .is_none_or(|s| s.state != SegState::Sealed)
            })
            .collect();
        for t in stray {
            let mut out = Vec::new();
            index.take_in_slot(t.bucket, t.loc.slot, &mut out);
        }
        for t in index.iter() {
            r.segs[t.loc.slot as usize].members.push(t.bucket);
        }
        for owner in chunk_owners {
            if let Some(seg) = r
                .segs
                .get_mut(owner.slot as usize)
                .filter(|s| s.state == SegState::Sealed)
            {
                seg.chunk_owners.push(owner.key_hash);
            }
        }
        r.index = index;
        r
    }

    /// Seals the open write heads (at a clean stop), so a checkpoint lists
    /// them as sealed. Returns them, for their buffers to be written.
    pub fn seal_heads(&mut self) -> Vec<(Queue, SealedSegment)> {
        let mut sealed = Vec::new();
        for queue in [Queue::Small, Queue::Main] {
            if let Some(h) = self.heads[queue as usize].take() {
                self.seal(h.slot);
                sealed.push((queue, h.sealed()));
            }
        }
        sealed
    }

    /// Sealed segments by slot, for a checkpoint.
    pub fn records(&self) -> Vec<Option<SegmentRecord>> {
        self.segs
            .iter()
            .map(|s| {
                (s.state == SegState::Sealed).then_some(SegmentRecord {
                    seq: s.seq,
                    queue: s.queue,
                })
            })
            .collect()
    }

    pub fn ghost_bytes(&self) -> &[u8] {
        self.eviction.ghost_bytes()
    }

    /// Every segment holding a chunk of a large object, for a checkpoint.
    pub fn chunk_owner_list(&self) -> Vec<ChunkOwner> {
        self.segs
            .iter()
            .enumerate()
            .flat_map(|(slot, s)| {
                s.chunk_owners.iter().map(move |&key_hash| ChunkOwner {
                    slot: slot as u32,
                    key_hash,
                })
            })
            .collect()
    }

    pub fn segments(&self) -> u32 {
        self.segs.len() as u32
    }

    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    pub fn stats(&self) -> RegionStats {
        self.stats
    }

    pub fn free_slots(&self) -> usize {
        self.free.len()
    }

    pub fn seg(&self, slot: u32) -> &SegmentMeta {
        &self.segs[slot as usize]
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The queue a new object with this key hash is written to (see
    /// `S3Fifo::queue_for_new`).
    pub fn queue_for_new(&mut self, hash: u64) -> Queue {
        let (bucket, tag) = (self.index.bucket_of(hash), self.index.tag_of(hash));
        self.eviction.queue_for_new(bucket, tag)
    }

    /// Reserves `len` bytes (a multiple of the unit) at a queue's write head,
    /// leaving room for the summary. Only the placement machine calls this.
    pub(super) fn place(&mut self, queue: Queue, len: u64) -> Option<Placement> {
        let head = self.heads[queue as usize].as_mut()?;
        if head.cursor + len + summary_len(head.entries + 1) > self.segment_size {
            return None;
        }
        let p = Placement {
            segment: head.id(),
            offset: head.cursor as u32,
        };
        head.cursor += len;
        head.entries += 1;
        Some(p)
    }

    /// Seals a queue's open segment and opens a free slot in its place, or
    /// None when no slot is free. Only the placement machine calls this.
    pub(super) fn rotate(&mut self, queue: Queue) -> Option<Rotation> {
        let slot = self.free.pop_front()?;
        let sealed = self.heads[queue as usize].take().map(|h| {
            self.seal(h.slot);
            h.sealed()
        });
        let seq = self.next_seq;
        self.next_seq += 1;
        let s = &mut self.segs[slot as usize];
        s.seq = seq;
        s.state = SegState::Open;
        s.queue = queue;
        s.members.clear();
        s.chunk_owners.clear();
        self.heads[queue as usize] = Some(WriteHead {
            slot,
            seq,
            cursor: SEGMENT_HEADER_SIZE as u64,
            entries: 0,
        });
        Some(Rotation {
            queue,
            sealed,
            opened: SegmentId { slot, seq },
        })
    }

    fn seal(&mut self, slot: u32) {
        let s = &mut self.segs[slot as usize];
        debug_assert_eq!(s.state, SegState::Open);
        s.state = SegState::Sealed;
        s.members.shrink_to_fit();
        s.chunk_owners.shrink_to_fit();
        let queue = s.queue;
        self.eviction.push_sealed(slot, queue);
    }

    /// Records a new object or manifest and points the index at it. Returns
    /// the location it replaced, if any.
    pub fn insert(&mut self, hash: u64, loc: Location) -> Option<Location> {
        let bucket = self.index.bucket_of(hash);
        self.segs[loc.slot as usize].members.push(bucket);
        self.index.insert(hash, loc)
    }

    /// Records that `slot` holds a chunk of the large object `hash`.
    pub fn note_chunk(&mut self, slot: u32, hash: u64) {
        let owners = &mut self.segs[slot as usize].chunk_owners;
        if owners.last() != Some(&hash) {
            owners.push(hash);
        }
    }

    /// Puts back an entry a reclaim copied forward, unless a newer version of
    /// the object arrived meanwhile.
    pub(super) fn reinsert(&mut self, t: &Taken, loc: Location) -> bool {
        if self.index.has_tag(t.bucket, t.tag) {
            return false;
        }
        self.segs[loc.slot as usize].members.push(t.bucket);
        self.index.insert_at(t.bucket, t.tag, loc, t.freq);
        self.stats.reinserted += 1;
        true
    }

    /// Takes the segment eviction picks out of its queue and out of the
    /// index; the plan lists the entries to copy forward (none when
    /// `keep_any` is false). Only the placement machine calls this.
    pub(super) fn plan_reclaim(&mut self, keep_any: bool) -> Option<ReclaimPlan> {
        let (slot, queue) = self.eviction.victim()?;
        self.stats.reclaims += 1;
        let seq = self.segs[slot as usize].seq;
        let taken = self.unindex_slot(slot);
        let sorted = self.eviction.sort_reclaimed(queue, taken, keep_any);
        self.stats.evicted += sorted.evicted;
        Some(ReclaimPlan {
            segment: SegmentId { slot, seq },
            reinsert: sorted.keep,
        })
    }

    /// Ends a reclaim once its copies are made: `dropped` of the entries it
    /// kept could not be copied (evicted after all), and the slot is free.
    pub(super) fn finish_reclaim(&mut self, plan: &ReclaimPlan, dropped: u64) {
        self.stats.evicted += dropped;
        let slot = plan.segment.slot;
        self.segs[slot as usize].state = SegState::Free;
        self.free.push_back(slot);
    }

    /// Forgets everything in a sealed segment whose bytes never reached the
    /// device (a failed flush): nothing may point at it.
    pub fn discard(&mut self, slot: u32) {
        let taken = self.unindex_slot(slot);
        self.stats.evicted += taken.len() as u64;
    }

    /// Takes every index entry that points into `slot` out of the index and
    /// returns them; a large object with a chunk there is dropped as well,
    /// wherever its manifest is.
    fn unindex_slot(&mut self, slot: u32) -> Vec<Taken> {
        let seg = &mut self.segs[slot as usize];
        let members = std::mem::take(&mut seg.members);
        let owners = std::mem::take(&mut seg.chunk_owners);
        let mut taken = Vec::new();
        for b in members {
            self.index.take_in_slot(b, slot, &mut taken);
        }
        for h in owners {
            if self.index.peek(h).is_some_and(|(l, _)| l.manifest) {
                self.index.remove(h);
                self.stats.evicted += 1;
            }
        }
        taken
    }

    /// Memory held by segment bookkeeping and the ghost (for the
    /// bytes-per-object figure).
    pub fn bookkeeping_bytes(&self) -> usize {
        self.segs
            .iter()
            .map(|s| s.members.capacity() * 4 + s.chunk_owners.capacity() * 8)
            .sum::<usize>()
            + self.segs.len() * std::mem::size_of::<SegmentMeta>()
            + self.eviction.ghost_bytes().len()
    }
}

impl WriteHead {
    fn id(&self) -> SegmentId {
        SegmentId {
            slot: self.slot,
            seq: self.seq,
        }
    }

    fn sealed(&self) -> SealedSegment {
        SealedSegment {
            segment: self.id(),
            used: self.cursor,
        }
    }
}

/// Ghost entries for an index: one per object it holds at full occupancy.
fn ghost_slots(index: &Index) -> usize {
    index.capacity() * 17 / 20
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::index::EntryLayout;
    use crate::cache::store::placement::{RESERVE, insert_without_device};

    fn region(segs: u32) -> Region {
        let layout = EntryLayout::new(segs as u64, 1 << 20, 1 << 20).unwrap();
        Region::new(Index::new(layout, 1024), segs, 1 << 20, 1)
    }

    fn loc(slot: u32, offset: u32) -> Location {
        Location {
            slot,
            offset,
            len: 512,
            manifest: false,
        }
    }

    fn h(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Writes an object of `len` bytes the way the store does.
    fn write(r: &mut Region, hash: u64, len: u64) -> Location {
        insert_without_device(r, hash, len).unwrap()
    }

    #[test]
    fn new_objects_go_to_the_small_queue() {
        let mut r = region(8);
        let l = write(&mut r, h(1), 4096);
        assert_eq!(r.seg(l.slot).queue, Queue::Small);
        assert_eq!(r.seg(l.slot).seq, 1);
        assert_eq!(l.offset, 4096);
    }

    #[test]
    fn hit_objects_survive_and_one_hit_wonders_do_not() {
        let mut r = region(8);
        // Object 0 is read after every write; the rest are written once.
        write(&mut r, h(0), 64 << 10);
        for i in 1..500 {
            write(&mut r, h(i), 64 << 10);
            assert!(
                r.index.lookup(h(0)).is_some(),
                "popular object lost after {i} writes"
            );
        }
        let stats = r.stats();
        assert!(stats.reclaims > 20);
        assert!(stats.reinserted > 0);
        assert!(r.index.peek(h(1)).is_none());
        assert!(r.free_slots() >= RESERVE);
    }

    #[test]
    fn ghost_hits_go_straight_to_main() {
        let mut r = region(8);
        for i in 0..200 {
            write(&mut r, h(i), 64 << 10);
        }
        // Object 0 was evicted from the small queue unhit: it is in the ghost.
        assert!(r.index.peek(h(0)).is_none());
        assert_eq!(r.queue_for_new(h(0)), Queue::Main);
        assert_eq!(
            r.queue_for_new(h(0)),
            Queue::Small,
            "a ghost entry is used once"
        );
    }

    #[test]
    fn losing_a_chunk_drops_the_large_object() {
        let mut r = region(8);
        let s0 = r.rotate(Queue::Main).unwrap().opened.slot;
        r.note_chunk(s0, h(9));
        let s1 = r.rotate(Queue::Main).unwrap().opened.slot;
        let m = Location {
            manifest: true,
            ..loc(s1, 4096)
        };
        r.insert(h(9), m);
        r.rotate(Queue::Main).unwrap();
        assert!(r.index.peek(h(9)).is_some());
        let plan = r.plan_reclaim(true).unwrap();
        assert_eq!(plan.segment.slot, s0);
        assert!(r.index.peek(h(9)).is_none());
    }

    #[test]
    fn restore_rebuilds_queues_membership_and_sequence() {
        let mut r = region(8);
        let mut written = Vec::new();
        for i in 0..40 {
            let l = write(&mut r, h(i), 100 << 10);
            written.push((h(i), l));
        }
        r.note_chunk(written[39].1.slot, h(1000));
        r.seal_heads();
        let records = r.records();
        let table = r.index.table().to_vec();
        let layout = r.index.layout();
        let restored = Region::restore(
            Index::from_table(layout, table).unwrap(),
            1 << 20,
            &records,
            Some(r.ghost_bytes().to_vec()),
            &r.chunk_owner_list(),
            EvictionParams::default(),
        );
        assert_eq!(restored.index.len(), r.index.len());
        assert_eq!(restored.next_seq(), r.next_seq());
        assert_eq!(restored.records(), records);
        assert_eq!(restored.chunk_owner_list(), r.chunk_owner_list());
        for (hash, l) in written.iter().rev().take(5) {
            assert_eq!(restored.index.peek(*hash).map(|p| p.0), Some(*l));
        }
        // It keeps working: more writes reclaim the restored segments in order.
        let mut restored = restored;
        for i in 100..200 {
            write(&mut restored, h(i), 100 << 10);
        }
        assert!(restored.stats().reclaims > 0);
    }

    #[test]
    fn restore_drops_entries_in_segments_that_are_not_sealed() {
        let mut r = region(8);
        let l = write(&mut r, h(1), 4096);
        // The head holding it was never sealed (a crash before its flush).
        let records = r.records();
        assert!(records[l.slot as usize].is_none());
        let layout = r.index.layout();
        let restored = Region::restore(
            Index::from_table(layout, r.index.table().to_vec()).unwrap(),
            1 << 20,
            &records,
            None,
            &[],
            EvictionParams::default(),
        );
        assert!(restored.index.peek(h(1)).is_none());
        assert_eq!(restored.free_slots(), 8);
    }

    #[test]
    fn sequence_numbers_never_repeat() {
        let mut r = region(6);
        let mut last = 0;
        for i in 0..300 {
            let l = write(&mut r, h(i), 100 << 10);
            let seq = r.seg(l.slot).seq;
            assert!(seq >= last);
            last = seq;
        }
        assert!(last > 20);
    }
}
