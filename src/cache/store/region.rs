//! The bookkeeping of one shard's region: which segment slots are free, open
//! or sealed, the order they were sealed in, which index buckets each holds,
//! and the eviction decisions. Pure state with no I/O, so the storage engine
//! and the trace-replay benchmark run exactly the same code; the caller moves
//! the bytes that a `ReclaimPlan` asks for.

use super::layout::Queue;
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

/// What a reclaim wants done: entries whose bytes must be copied forward
/// before the slot is reused. Everything else in the slot is already gone
/// from the index.
#[derive(Debug)]
pub struct ReclaimPlan {
    pub slot: u32,
    pub seq: u64,
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
    pub slot: u32,
    pub seq: u64,
    pub offset: u32,
}

/// What a rotation of the write head did: the segment it sealed (now to be
/// flushed), the one it opened, and a reclaim that keeps a slot free.
#[derive(Debug)]
pub struct Rotation {
    pub sealed: Option<u32>,
    pub opened: (u32, u64),
    pub reclaim: Option<ReclaimPlan>,
}

#[derive(Clone, Copy, Debug)]
struct WriteHead {
    slot: u32,
    seq: u64,
    cursor: u64,
}

pub struct Region {
    pub index: Index,
    segment_size: u64,
    head: Option<WriteHead>,
    segs: Vec<SegmentMeta>,
    free: VecDeque<u32>,
    sealed: VecDeque<u32>,
    next_seq: u64,
    stats: RegionStats,
}

impl Region {
    pub fn new(index: Index, segments: u32, segment_size: u64, first_seq: u64) -> Region {
        Region {
            index,
            segment_size,
            head: None,
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
            sealed: VecDeque::new(),
            next_seq: first_seq.max(1),
            stats: RegionStats::default(),
        }
    }

    pub fn segments(&self) -> u32 {
        self.segs.len() as u32
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

    /// Opens a free slot for writing under a fresh sequence number.
    pub fn open_free(&mut self, queue: Queue) -> Option<(u32, u64)> {
        let slot = self.free.pop_front()?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let s = &mut self.segs[slot as usize];
        s.seq = seq;
        s.state = SegState::Open;
        s.queue = queue;
        s.members.clear();
        s.chunk_owners.clear();
        Some((slot, seq))
    }

    pub fn seal(&mut self, slot: u32) {
        let s = &mut self.segs[slot as usize];
        debug_assert_eq!(s.state, SegState::Open);
        s.state = SegState::Sealed;
        s.members.shrink_to_fit();
        s.chunk_owners.shrink_to_fit();
        self.sealed.push_back(slot);
    }

    /// Reserves `len` bytes (a multiple of the unit) in the open segment.
    pub fn place(&mut self, len: u64) -> Option<Placement> {
        let head = self.head.as_mut()?;
        if head.cursor + len > self.segment_size {
            return None;
        }
        let p = Placement {
            slot: head.slot,
            seq: head.seq,
            offset: head.cursor as u32,
        };
        head.cursor += len;
        Some(p)
    }

    /// The open segment and how many bytes of it are used.
    pub fn write_head(&self) -> Option<(u32, u64, u64)> {
        self.head.map(|h| (h.slot, h.seq, h.cursor))
    }

    /// Seals the open segment, opens the next one, and reclaims the oldest
    /// segment if that used the last free slot, so one slot is always free.
    pub fn rotate(&mut self, queue: Queue) -> Rotation {
        let sealed = self.head.take().map(|h| {
            self.seal(h.slot);
            h.slot
        });
        if self.free.is_empty() {
            // Only reachable if an earlier reclaim could not run; drop its copies.
            if let Some(plan) = self.plan_reclaim() {
                self.stats.evicted += plan.reinsert.len() as u64;
                self.finish_reclaim(plan.slot);
            }
        }
        let opened = self
            .open_free(queue)
            .expect("a slot is free after a reclaim");
        self.head = Some(WriteHead {
            slot: opened.0,
            seq: opened.1,
            cursor: super::layout::SEGMENT_HEADER_SIZE as u64,
        });
        let reclaim = if self.free.is_empty() {
            self.plan_reclaim()
        } else {
            None
        };
        Rotation {
            sealed,
            opened,
            reclaim,
        }
    }

    /// Entries of a reclaim that could not be copied forward are evicted.
    pub fn drop_reinsert(&mut self, n: u64) {
        self.stats.evicted += n;
    }

    /// Forgets everything in a sealed segment whose bytes never reached the
    /// device (a failed flush): nothing may point at it.
    pub fn discard(&mut self, slot: u32) {
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
            }
        }
        self.stats.evicted += taken.len() as u64;
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
        self.index
            .insert_at(t.bucket, t.tag, loc, t.freq.saturating_sub(1));
        self.stats.reinserted += 1;
        true
    }

    /// Takes the oldest sealed segment for reuse. Entries hit since they were
    /// written are returned for reinsertion (FIFO with reinsertion: popular
    /// objects survive); the rest are dropped from the index now.
    pub fn plan_reclaim(&mut self) -> Option<ReclaimPlan> {
        let slot = self.sealed.pop_front()?;
        self.stats.reclaims += 1;
        let seg = &mut self.segs[slot as usize];
        let members = std::mem::take(&mut seg.members);
        let owners = std::mem::take(&mut seg.chunk_owners);
        let seq = seg.seq;
        let mut taken = Vec::new();
        for b in members {
            self.index.take_in_slot(b, slot, &mut taken);
        }
        // A large object that loses any chunk is gone, wherever its manifest is.
        for h in owners {
            if let Some((loc, _)) = self.index.peek(h)
                && loc.manifest
            {
                self.index.remove(h);
                self.stats.evicted += 1;
            }
        }
        let mut reinsert = Vec::new();
        for t in taken {
            if t.freq > 0 {
                reinsert.push(t);
            } else {
                self.stats.evicted += 1;
            }
        }
        Some(ReclaimPlan {
            slot,
            seq,
            reinsert,
        })
    }

    /// Returns a reclaimed slot to the free list once its bytes were copied.
    pub fn finish_reclaim(&mut self, slot: u32) {
        let s = &mut self.segs[slot as usize];
        s.state = SegState::Free;
        self.free.push_back(slot);
    }

    /// Memory held by segment bookkeeping (for the bytes-per-object figure).
    pub fn bookkeeping_bytes(&self) -> usize {
        self.segs
            .iter()
            .map(|s| s.members.capacity() * 4 + s.chunk_owners.capacity() * 8)
            .sum::<usize>()
            + self.segs.len() * std::mem::size_of::<SegmentMeta>()
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

    #[test]
    fn fifo_reclaim_keeps_hit_objects() {
        let mut r = region(3);
        let (s0, q0) = r.open_free(Queue::Main).unwrap();
        assert_eq!(q0, 1);
        r.insert(h(1), loc(s0, 4096));
        r.insert(h(2), loc(s0, 4608));
        r.seal(s0);
        let (s1, _) = r.open_free(Queue::Main).unwrap();
        r.insert(h(3), loc(s1, 4096));
        r.seal(s1);
        assert_eq!(r.index.lookup(h(2)), Some(loc(s0, 4608)));

        let plan = r.plan_reclaim().unwrap();
        assert_eq!(plan.slot, s0);
        assert_eq!(plan.reinsert.len(), 1);
        assert!(r.index.peek(h(1)).is_none(), "unhit object is evicted");
        let (s2, _) = r.open_free(Queue::Main).unwrap();
        assert!(r.reinsert(&plan.reinsert[0], loc(s2, 4096)));
        r.finish_reclaim(plan.slot);
        assert_eq!(r.index.peek(h(2)), Some((loc(s2, 4096), 0)));
        assert_eq!(r.stats().evicted, 1);
        assert_eq!(r.stats().reinserted, 1);
        // Sequence numbers never repeat, so an old location can't match a new write.
        let (s3, q3) = r.open_free(Queue::Main).unwrap();
        assert_eq!(s3, s0);
        assert_eq!(q3, 4);
    }

    #[test]
    fn write_head_rotates_and_keeps_a_slot_free() {
        let mut r = region(4);
        assert!(r.place(512).is_none(), "nothing is open yet");
        let rot = r.rotate(Queue::Main);
        assert_eq!((rot.sealed, rot.opened.1), (None, 1));
        let p = r.place(1 << 19).unwrap();
        assert_eq!(p.offset, 4096);
        r.insert(h(1), loc(p.slot, p.offset));
        assert!(r.place(1 << 19).is_none(), "segment is full");
        let mut reclaims = 0;
        for _ in 0..10 {
            let rot = r.rotate(Queue::Main);
            assert!(rot.sealed.is_some());
            if let Some(plan) = rot.reclaim {
                reclaims += 1;
                r.finish_reclaim(plan.slot);
            }
            assert!(r.free_slots() >= 1);
        }
        assert_eq!(reclaims, 8);
        assert!(r.index.peek(h(1)).is_none());
    }

    #[test]
    fn reinsertion_yields_to_newer_versions() {
        let mut r = region(3);
        let (s0, _) = r.open_free(Queue::Main).unwrap();
        r.insert(h(1), loc(s0, 4096));
        r.index.lookup(h(1));
        r.seal(s0);
        let plan = r.plan_reclaim().unwrap();
        let (s1, _) = r.open_free(Queue::Main).unwrap();
        r.insert(h(1), loc(s1, 4096)); // a new fill landed meanwhile
        assert!(!r.reinsert(&plan.reinsert[0], loc(s1, 8192)));
        assert_eq!(r.index.peek(h(1)).unwrap().0, loc(s1, 4096));
    }

    #[test]
    fn losing_a_chunk_drops_the_large_object() {
        let mut r = region(3);
        let (s0, _) = r.open_free(Queue::Main).unwrap();
        r.note_chunk(s0, h(9));
        r.seal(s0);
        let (s1, _) = r.open_free(Queue::Main).unwrap();
        let m = Location {
            manifest: true,
            ..loc(s1, 4096)
        };
        r.insert(h(9), m);
        r.seal(s1);
        assert!(r.index.peek(h(9)).is_some());
        let plan = r.plan_reclaim().unwrap();
        assert_eq!(plan.slot, s0);
        assert!(r.index.peek(h(9)).is_none());
    }
}
