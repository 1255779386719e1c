//! The bookkeeping of one shard's region: which segment slots are free, open
//! or sealed, the order they were sealed in, which index buckets each holds,
//! and every eviction decision. Pure state with no I/O, so the storage engine
//! and the trace-replay benchmark run exactly the same code; the caller moves
//! the bytes that a `ReclaimPlan` asks for.
//!
//! Eviction is S3-FIFO at segment granularity. New objects are written to the
//! small queue's segments; reclaiming a small segment moves the objects that
//! were hit there to the main queue and remembers the rest in a ghost table;
//! an object whose key is in the ghost goes straight to the main queue.
//! Reclaiming a main segment reinserts the objects hit since they were written
//! (FIFO with reinsertion), so popular objects survive and one-hit wonders
//! leave after a short stay.

use super::layout::{Queue, SegmentId};
use crate::cache::index::{Index, Location, Taken};
use std::collections::VecDeque;

/// Free slots kept in reserve, so the reinsertions of a reclaim always have a
/// segment to go to.
pub const RESERVE: usize = 2;

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

/// Tunables of the eviction policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvictionParams {
    /// Share of the sealed segments the small queue may hold.
    pub small_share: f64,
    /// Hits in the small queue needed to move to the main queue.
    pub promote_hits: u64,
}

impl Default for EvictionParams {
    fn default() -> Self {
        EvictionParams {
            small_share: 0.05,
            promote_hits: 1,
        }
    }
}

/// What a reclaim wants done: entries whose bytes must be copied to the main
/// queue before the slot is reused. Everything else in the slot is already
/// gone from the index.
#[derive(Debug)]
pub struct ReclaimPlan {
    pub segment: SegmentId,
    pub reinsert: Vec<Taken>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionStats {
    pub reclaims: u64,
    pub reinserted: u64,
    pub evicted: u64,
}

/// Where a new entry goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub segment: SegmentId,
    pub offset: u32,
}

#[derive(Clone, Copy, Debug)]
struct WriteHead {
    slot: u32,
    seq: u64,
    cursor: u64,
    /// Entries placed so far: the segment's summary needs room for each.
    entries: u64,
}

/// A direct-mapped table of 8-bit fingerprints of keys recently evicted from
/// the small queue: one byte per expected object, no allocation per key.
struct Ghost {
    slots: Vec<u8>,
}

impl Ghost {
    fn new(n: usize) -> Ghost {
        Ghost {
            slots: vec![0; n.max(1)],
        }
    }
    fn place(&self, key: u64) -> (usize, u8) {
        let mixed = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let at = ((mixed >> 32) * self.slots.len() as u64) >> 32;
        (at as usize, (mixed as u8) | 1)
    }
    fn insert(&mut self, key: u64) {
        let (at, fp) = self.place(key);
        self.slots[at] = fp;
    }
    /// Removes and reports the key if present.
    fn take(&mut self, key: u64) -> bool {
        let (at, fp) = self.place(key);
        let hit = self.slots[at] == fp;
        if hit {
            self.slots[at] = 0;
        }
        hit
    }
}

/// Ghost key of an index entry: its bucket and tag identify the key.
fn ghost_key(bucket: u32, tag: u64) -> u64 {
    (tag << 32) ^ bucket as u64
}

pub struct Region {
    pub index: Index,
    segment_size: u64,
    params: EvictionParams,
    heads: [Option<WriteHead>; 2],
    segs: Vec<SegmentMeta>,
    free: VecDeque<u32>,
    /// Sealed segments of each queue, oldest first.
    sealed: [VecDeque<u32>; 2],
    ghost: Ghost,
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
        let ghost = Ghost::new(index.capacity() * 17 / 20);
        Region {
            index,
            segment_size,
            params,
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
            sealed: [VecDeque::new(), VecDeque::new()],
            ghost,
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
            let q = r.segs[slot as usize].queue as usize;
            r.sealed[q].push_back(slot);
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
        // The ghost is sized from the index it serves, not from the empty
        // one the region was built with above.
        r.ghost = Ghost::new(index.capacity() * 17 / 20);
        if let Some(g) = ghost.filter(|g| g.len() == r.ghost.slots.len()) {
            r.ghost.slots = g;
        }
        r.index = index;
        r
    }

    /// Seals the open write heads (at a clean stop, after their buffers were
    /// written), so a checkpoint lists them as sealed.
    pub fn seal_heads(&mut self) -> Vec<u32> {
        let mut sealed = Vec::new();
        for q in 0..2 {
            if let Some(h) = self.heads[q].take() {
                self.seal(h.slot);
                sealed.push(h.slot);
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
        &self.ghost.slots
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

    /// The queue a new object with this key hash is written to: main if the
    /// key was recently evicted from the small queue (it came back), else small.
    pub fn queue_for_new(&mut self, hash: u64) -> Queue {
        let key = ghost_key(self.index.bucket_of(hash), self.index.tag_of(hash));
        if self.ghost.take(key) {
            Queue::Main
        } else {
            Queue::Small
        }
    }

    /// Reserves `len` bytes (a multiple of the unit) at a queue's write head.
    pub fn place(&mut self, queue: Queue, len: u64) -> Option<Placement> {
        let head = self.heads[queue as usize].as_mut()?;
        if head.cursor + len + super::layout::summary_len(head.entries + 1) > self.segment_size {
            return None;
        }
        let p = Placement {
            segment: SegmentId {
                slot: head.slot,
                seq: head.seq,
            },
            offset: head.cursor as u32,
        };
        head.cursor += len;
        head.entries += 1;
        Some(p)
    }

    /// A queue's open segment and the bytes used in it.
    pub fn write_head(&self, queue: Queue) -> Option<(SegmentId, u64)> {
        self.heads[queue as usize].map(|h| {
            let id = SegmentId {
                slot: h.slot,
                seq: h.seq,
            };
            (id, h.cursor)
        })
    }

    /// Seals a queue's open segment (the caller flushes it) and opens a free
    /// slot in its place. Returns (sealed slot, opened segment), or None when
    /// no slot is free.
    pub fn rotate(&mut self, queue: Queue) -> Option<(Option<u32>, SegmentId)> {
        if self.free.is_empty() {
            return None;
        }
        let sealed = self.heads[queue as usize].take().map(|h| {
            self.seal(h.slot);
            h.slot
        });
        let slot = self.free.pop_front().expect("checked non-empty");
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
            cursor: super::layout::SEGMENT_HEADER_SIZE as u64,
            entries: 0,
        });
        Some((sealed, SegmentId { slot, seq }))
    }

    /// Whether a reclaim must run before more writes (the reserve is short).
    pub fn needs_reclaim(&self) -> bool {
        self.free.len() < RESERVE
    }

    fn seal(&mut self, slot: u32) {
        let s = &mut self.segs[slot as usize];
        debug_assert_eq!(s.state, SegState::Open);
        s.state = SegState::Sealed;
        s.members.shrink_to_fit();
        s.chunk_owners.shrink_to_fit();
        let q = s.queue as usize;
        self.sealed[q].push_back(slot);
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
    pub fn reinsert(&mut self, t: &Taken, loc: Location) -> bool {
        if self.index.has_tag(t.bucket, t.tag) {
            return false;
        }
        self.segs[loc.slot as usize].members.push(t.bucket);
        self.index.insert_at(t.bucket, t.tag, loc, t.freq);
        self.stats.reinserted += 1;
        true
    }

    /// Picks the segment to reclaim: the small queue's oldest while that queue
    /// holds more than its share, else the main queue's oldest.
    fn victim(&mut self) -> Option<(u32, Queue)> {
        let sealed_total = self.sealed[0].len() + self.sealed[1].len();
        let small_cap = ((sealed_total as f64 * self.params.small_share).ceil() as usize).max(1);
        let from_small = !self.sealed[Queue::Small as usize].is_empty()
            && (self.sealed[Queue::Small as usize].len() > small_cap
                || self.sealed[Queue::Main as usize].is_empty());
        if from_small {
            self.sealed[Queue::Small as usize]
                .pop_front()
                .map(|s| (s, Queue::Small))
        } else {
            self.sealed[Queue::Main as usize]
                .pop_front()
                .map(|s| (s, Queue::Main))
                .or_else(|| {
                    self.sealed[Queue::Small as usize]
                        .pop_front()
                        .map(|s| (s, Queue::Small))
                })
        }
    }

    /// Takes a segment for reuse and decides the fate of each entry in it:
    /// objects hit enough are returned for copying to the main queue (with
    /// their count spent), the rest leave the index now.
    pub fn plan_reclaim(&mut self) -> Option<ReclaimPlan> {
        let (slot, queue) = self.victim()?;
        self.stats.reclaims += 1;
        let seq = self.segs[slot as usize].seq;
        let taken = self.unindex_slot(slot);
        let mut reinsert = Vec::new();
        for mut t in taken {
            let keep = match queue {
                Queue::Small => t.freq >= self.params.promote_hits,
                Queue::Main => t.freq > 0,
            };
            if keep {
                t.freq = match queue {
                    Queue::Small => 0,
                    Queue::Main => t.freq - 1,
                };
                reinsert.push(t);
            } else {
                if queue == Queue::Small {
                    self.ghost.insert(ghost_key(t.bucket, t.tag));
                }
                self.stats.evicted += 1;
            }
        }
        Some(ReclaimPlan {
            segment: SegmentId { slot, seq },
            reinsert,
        })
    }

    /// Returns a reclaimed slot to the free list once its bytes were copied.
    pub fn finish_reclaim(&mut self, slot: u32) {
        self.segs[slot as usize].state = SegState::Free;
        self.free.push_back(slot);
    }

    /// Entries of a reclaim that could not be copied forward are evicted.
    pub fn drop_reinsert(&mut self, n: u64) {
        self.stats.evicted += n;
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

    /// Places an entry as a null device would: the same rotations, reclaims
    /// and reinsertions as the store, with no bytes moved. Returns where the
    /// entry went, or None if it cannot fit a segment. Used by the trace
    /// replay and the index-memory benchmarks.
    pub fn place_without_device(&mut self, queue: Queue, len: u64) -> Option<Placement> {
        if len + super::layout::SEGMENT_HEADER_SIZE as u64 + super::layout::summary_len(1)
            > self.segment_size
        {
            return None;
        }
        loop {
            if let Some(p) = self.place(queue, len) {
                return Some(p);
            }
            let mut rounds = 0;
            if self.free.is_empty() {
                // A region restored full has no free slot yet.
                let plan = self.plan_reclaim()?;
                self.drop_reinsert(plan.reinsert.len() as u64);
                self.finish_reclaim(plan.segment.slot);
            }
            self.rotate(queue)?;
            while self.needs_reclaim() {
                rounds += 1;
                let Some(plan) = self.plan_reclaim() else {
                    break;
                };
                let mut dropped = 0;
                for t in &plan.reinsert {
                    // Beyond a bound, a reclaim keeps nothing: progress is guaranteed.
                    let placed = if rounds > self.segs.len() {
                        None
                    } else {
                        self.place(Queue::Main, t.loc.len as u64).or_else(|| {
                            self.rotate(Queue::Main)?;
                            self.place(Queue::Main, t.loc.len as u64)
                        })
                    };
                    match placed {
                        Some(p) => {
                            let loc = Location {
                                slot: p.segment.slot,
                                offset: p.offset,
                                ..t.loc
                            };
                            self.reinsert(t, loc);
                        }
                        None => dropped += 1,
                    }
                }
                self.drop_reinsert(dropped);
                self.finish_reclaim(plan.segment.slot);
            }
        }
    }

    /// Stores a new object of `len` bytes (a multiple of the unit) as a null
    /// device would: picks its queue, places it, indexes it. Returns where it
    /// went, or None if it cannot fit a segment.
    pub fn insert_without_device(&mut self, hash: u64, len: u64) -> Option<Location> {
        let queue = self.queue_for_new(hash);
        let p = self.place_without_device(queue, len)?;
        let loc = Location {
            slot: p.segment.slot,
            offset: p.offset,
            len: len as u32,
            manifest: false,
        };
        self.insert(hash, loc);
        Some(loc)
    }

    /// Memory held by segment bookkeeping and the ghost (for the
    /// bytes-per-object figure).
    pub fn bookkeeping_bytes(&self) -> usize {
        self.segs
            .iter()
            .map(|s| s.members.capacity() * 4 + s.chunk_owners.capacity() * 8)
            .sum::<usize>()
            + self.segs.len() * std::mem::size_of::<SegmentMeta>()
            + self.ghost.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::index::EntryLayout;

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
        r.insert_without_device(hash, len).unwrap()
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
    fn reinsertion_yields_to_newer_versions() {
        let mut r = region(8);
        let s0 = r.rotate(Queue::Main).unwrap().1.slot;
        r.insert(h(1), loc(s0, 4096));
        r.index.lookup(h(1));
        r.rotate(Queue::Main).unwrap();
        let plan = r.plan_reclaim().unwrap();
        assert_eq!(plan.segment.slot, s0);
        let p = r.place(Queue::Main, 512).unwrap();
        let slot = p.segment.slot;
        r.insert(h(1), loc(slot, p.offset)); // a new fill landed meanwhile
        assert!(!r.reinsert(&plan.reinsert[0], loc(slot, 8192)));
        assert_eq!(r.index.peek(h(1)).unwrap().0, loc(slot, p.offset));
    }

    #[test]
    fn losing_a_chunk_drops_the_large_object() {
        let mut r = region(8);
        let s0 = r.rotate(Queue::Main).unwrap().1.slot;
        r.note_chunk(s0, h(9));
        let s1 = r.rotate(Queue::Main).unwrap().1.slot;
        let m = Location {
            manifest: true,
            ..loc(s1, 4096)
        };
        r.insert(h(9), m);
        r.rotate(Queue::Main).unwrap();
        assert!(r.index.peek(h(9)).is_some());
        let plan = r.plan_reclaim().unwrap();
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
        assert_eq!(
            restored.ghost_bytes(),
            r.ghost_bytes(),
            "the ghost comes back"
        );
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
    fn a_region_restored_full_can_still_write() {
        let mut r = region(8);
        for i in 0..60 {
            write(&mut r, h(i), 100 << 10);
        }
        r.seal_heads();
        let mut records = r.records();
        for (slot, rec) in records.iter_mut().enumerate() {
            rec.get_or_insert(SegmentRecord {
                seq: 1000 + slot as u64,
                queue: Queue::Main,
            });
        }
        let layout = r.index.layout();
        let mut full = Region::restore(
            Index::from_table(layout, r.index.table().to_vec()).unwrap(),
            1 << 20,
            &records,
            None,
            &[],
            EvictionParams::default(),
        );
        assert_eq!(full.free_slots(), 0);
        let l = write(&mut full, h(999), 4096);
        assert!(full.seg(l.slot).seq > 1000);
        assert!(full.free_slots() >= RESERVE);
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
