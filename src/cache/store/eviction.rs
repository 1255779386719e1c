//! Eviction of one shard's region: S3-FIFO at segment granularity. Pure
//! decisions with no I/O and no knowledge of bytes: which queue a new object
//! enters, which sealed segment is reclaimed next, and which of its entries
//! the reclaim keeps (copies forward) or evicts.
//!
//! New objects are written to the small queue's segments; reclaiming a small
//! segment moves the objects that were hit there to the main queue and
//! remembers the rest in a ghost table; an object whose key is in the ghost
//! goes straight to the main queue. Reclaiming a main segment reinserts the
//! objects hit since they were written (FIFO with reinsertion), so popular
//! objects survive and one-hit wonders leave after a short stay.

use super::layout::{Queue, SegmentId};
use crate::cache::index::Taken;
use std::collections::VecDeque;

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

/// The eviction state of one region: the two FIFO queues of sealed segments
/// and the ghost.
pub struct S3Fifo {
    params: EvictionParams,
    /// Sealed segments of each queue (small, main), oldest first.
    sealed: [VecDeque<u32>; 2],
    ghost: Ghost,
}

/// How a reclaim sorted the entries of its segment.
pub struct Sorted {
    /// To copy forward to the main queue, with their hit count spent.
    pub keep: Vec<Taken>,
    /// Left the cache.
    pub evicted: u64,
}

impl S3Fifo {
    /// `ghost_slots`: one per object the index expects.
    pub fn new(params: EvictionParams, ghost_slots: usize) -> S3Fifo {
        S3Fifo {
            params,
            sealed: [VecDeque::new(), VecDeque::new()],
            ghost: Ghost::new(ghost_slots),
        }
    }

    /// The queue a new object is written to: main if its key (bucket and
    /// tag) was recently evicted from the small queue (it came back), else
    /// small. A ghost entry is used once.
    pub fn queue_for_new(&mut self, bucket: u32, tag: u64) -> Queue {
        if self.ghost.take(ghost_key(bucket, tag)) {
            Queue::Main
        } else {
            Queue::Small
        }
    }

    /// A segment was sealed: it joins the end of its queue.
    pub fn push_sealed(&mut self, slot: u32, queue: Queue) {
        self.sealed[queue as usize].push_back(slot);
    }

    /// Picks and removes the segment to reclaim: the small queue's oldest
    /// while that queue holds more than its share, else the main queue's
    /// oldest.
    pub fn victim(&mut self) -> Option<(u32, Queue)> {
        let [small, main] = &mut self.sealed;
        let small_cap =
            (((small.len() + main.len()) as f64 * self.params.small_share).ceil() as usize).max(1);
        let from_small = !small.is_empty() && (small.len() > small_cap || main.is_empty());
        if from_small {
            small.pop_front().map(|s| (s, Queue::Small))
        } else {
            main.pop_front()
                .map(|s| (s, Queue::Main))
                .or_else(|| small.pop_front().map(|s| (s, Queue::Small)))
        }
    }

    /// Decides the fate of each entry of a reclaimed segment of `queue`:
    /// objects hit enough are kept (their count spent), the rest are
    /// evicted, and those leaving the small queue go to the ghost. With
    /// `keep_any` false every entry is evicted.
    pub fn sort_reclaimed(&mut self, queue: Queue, taken: Vec<Taken>, keep_any: bool) -> Sorted {
        let mut keep = Vec::new();
        let mut evicted = 0;
        for mut t in taken {
            let hit_enough = match queue {
                Queue::Small => t.freq >= self.params.promote_hits,
                Queue::Main => t.freq > 0,
            };
            if hit_enough && keep_any {
                t.freq = match queue {
                    Queue::Small => 0,
                    Queue::Main => t.freq - 1,
                };
                keep.push(t);
                continue;
            }
            if !hit_enough && queue == Queue::Small {
                self.ghost.insert(ghost_key(t.bucket, t.tag));
            }
            evicted += 1;
        }
        Sorted { keep, evicted }
    }

    pub fn ghost_bytes(&self) -> &[u8] {
        &self.ghost.slots
    }

    /// Takes back a ghost saved by a checkpoint, if it has this table's size.
    pub fn restore_ghost(&mut self, ghost: Vec<u8>) {
        if ghost.len() == self.ghost.slots.len() {
            self.ghost.slots = ghost;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::index::Location;

    fn taken(tag: u64, freq: u64) -> Taken {
        Taken {
            bucket: 3,
            tag,
            loc: Location {
                slot: 0,
                offset: 4096,
                len: 512,
                manifest: false,
            },
            freq,
        }
    }

    #[test]
    fn the_small_queue_is_reclaimed_only_beyond_its_share() {
        let mut e = S3Fifo::new(EvictionParams::default(), 64);
        for slot in 0..3 {
            e.push_sealed(slot, Queue::Small);
        }
        for slot in 3..40 {
            e.push_sealed(slot, Queue::Main);
        }
        // 40 sealed at 5%: the small queue may hold 2, it holds 3.
        assert_eq!(e.victim(), Some((0, Queue::Small)));
        assert_eq!(e.victim(), Some((3, Queue::Main)));
    }

    #[test]
    fn a_small_reclaim_promotes_hit_entries_and_ghosts_the_rest() {
        let mut e = S3Fifo::new(EvictionParams::default(), 64);
        let sorted = e.sort_reclaimed(Queue::Small, vec![taken(1, 0), taken(2, 2)], true);
        assert_eq!(sorted.evicted, 1);
        assert_eq!(sorted.keep.len(), 1);
        assert_eq!((sorted.keep[0].tag, sorted.keep[0].freq), (2, 0));
        assert_eq!(
            e.queue_for_new(3, 1),
            Queue::Main,
            "the unhit one is a ghost"
        );
        assert_eq!(e.queue_for_new(3, 1), Queue::Small, "used once");
        assert_eq!(e.queue_for_new(3, 2), Queue::Small);
    }

    #[test]
    fn a_main_reclaim_spends_one_hit_and_keep_nothing_evicts_all() {
        let mut e = S3Fifo::new(EvictionParams::default(), 64);
        let sorted = e.sort_reclaimed(Queue::Main, vec![taken(1, 0), taken(2, 3)], true);
        assert_eq!((sorted.keep.len(), sorted.evicted), (1, 1));
        assert_eq!(sorted.keep[0].freq, 2);
        let none = e.sort_reclaimed(Queue::Small, vec![taken(1, 0), taken(2, 3)], false);
        assert_eq!((none.keep.len(), none.evicted), (0, 2));
        assert_eq!(
            e.queue_for_new(3, 2),
            Queue::Small,
            "a hit entry evicted by the bound is not a ghost"
        );
    }
}
