//! The RAM tier of one shard: verified copies of small hot entries, kept by
//! S3-FIFO (a small probation queue, a main queue with reinsertion, and a
//! ghost of keys recently dropped from probation). A hit here does no disk
//! I/O. Entries are the exact bytes of the on-device entry (header, key,
//! head, body), so they are served through the same verification as a read.
//!
//! Entries of a block or more are held in blocks of one size. The tier
//! churns entries of every size, and a general-purpose allocator left to
//! place them would fragment: the resident set would creep above what the
//! tier holds. Blocks of one size class are reused whatever the mix, so the
//! tier's memory stays at its capacity; the capacity counts the blocks
//! whole, so it is what the tier really occupies.

use std::collections::{HashMap, HashSet, VecDeque};

/// Size of the blocks entries of this size or more are held in.
const BLOCK: usize = 4096;

/// An entry's bytes as held.
enum Held {
    /// Below a block: exactly the bytes.
    Whole(Box<[u8]>),
    /// `len` bytes over whole blocks (the last one padded).
    Blocks {
        len: usize,
        blocks: Box<[Box<[u8]>]>,
    },
}

impl Held {
    fn new(bytes: &[u8]) -> Held {
        if bytes.len() < BLOCK {
            return Held::Whole(bytes.into());
        }
        let blocks = bytes
            .chunks(BLOCK)
            .map(|chunk| {
                let mut b = Vec::with_capacity(BLOCK);
                b.extend_from_slice(chunk);
                b.resize(BLOCK, 0);
                b.into_boxed_slice()
            })
            .collect();
        Held::Blocks {
            len: bytes.len(),
            blocks,
        }
    }

    /// Bytes of memory it occupies (what the capacity counts).
    fn footprint(&self) -> usize {
        match self {
            Held::Whole(b) => b.len(),
            Held::Blocks { blocks, .. } => blocks.len() * BLOCK,
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        match self {
            Held::Whole(b) => b.to_vec(),
            Held::Blocks { len, blocks } => {
                let mut v = Vec::with_capacity(*len);
                for b in blocks.iter() {
                    let take = (*len - v.len()).min(BLOCK);
                    v.extend_from_slice(&b[..take]);
                }
                v
            }
        }
    }
}

const FREQ_MAX: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

struct Entry {
    bytes: Held,
    /// Sequence number in the entry's header (what a reader checks).
    seq: u64,
    freq: u8,
    queue: Queue,
    /// Distinguishes this entry from an older one of the same key still
    /// listed in a queue.
    generation: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RamStats {
    pub objects: u64,
    pub bytes: u64,
    pub hits: u64,
    pub inserts: u64,
    pub evictions: u64,
}

pub struct RamTier {
    capacity: usize,
    max_object: usize,
    map: HashMap<u64, Entry>,
    small: VecDeque<(u64, u64)>,
    main: VecDeque<(u64, u64)>,
    small_bytes: usize,
    main_bytes: usize,
    ghost: VecDeque<u64>,
    ghost_set: HashSet<u64>,
    next_generation: u64,
    stats: RamStats,
}

impl RamTier {
    /// `capacity` bytes in all; entries above `max_object` bytes are never kept.
    pub fn new(capacity: usize, max_object: usize) -> RamTier {
        RamTier {
            capacity,
            max_object: max_object.min(capacity),
            map: HashMap::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_bytes: 0,
            main_bytes: 0,
            ghost: VecDeque::new(),
            ghost_set: HashSet::new(),
            next_generation: 0,
            stats: RamStats::default(),
        }
    }

    pub fn stats(&self) -> RamStats {
        RamStats {
            objects: self.map.len() as u64,
            bytes: (self.small_bytes + self.main_bytes) as u64,
            ..self.stats
        }
    }

    pub fn accepts(&self, len: usize) -> bool {
        len > 0 && len <= self.max_object
    }

    /// A copy of the entry of `hash` and its header's sequence number,
    /// counting the hit.
    pub fn get(&mut self, hash: u64) -> Option<(Vec<u8>, u64)> {
        let e = self.map.get_mut(&hash)?;
        e.freq = (e.freq + 1).min(FREQ_MAX);
        self.stats.hits += 1;
        Some((e.bytes.to_vec(), e.seq))
    }

    pub fn remove(&mut self, hash: u64) {
        if let Some(e) = self.map.remove(&hash) {
            match e.queue {
                Queue::Small => self.small_bytes -= e.bytes.footprint(),
                Queue::Main => self.main_bytes -= e.bytes.footprint(),
            }
        }
    }

    /// Stores (or replaces) the entry of `hash`.
    pub fn insert(&mut self, hash: u64, bytes: &[u8], seq: u64) {
        self.remove(hash);
        if !self.accepts(bytes.len()) {
            return;
        }
        let bytes = Held::new(bytes);
        let queue = if self.ghost_set.remove(&hash) {
            Queue::Main
        } else {
            Queue::Small
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        let len = bytes.footprint();
        match queue {
            Queue::Small => {
                self.small.push_back((hash, generation));
                self.small_bytes += len;
            }
            Queue::Main => {
                self.main.push_back((hash, generation));
                self.main_bytes += len;
            }
        }
        self.map.insert(
            hash,
            Entry {
                bytes,
                seq,
                freq: 0,
                queue,
                generation,
            },
        );
        self.stats.inserts += 1;
        self.evict();
    }

    fn evict(&mut self) {
        while self.small_bytes + self.main_bytes > self.capacity {
            if self.small_bytes > self.capacity / 10 || self.main.is_empty() {
                self.evict_small();
            } else {
                self.evict_main();
            }
        }
    }

    /// Is this queue item the live entry of its key, in `queue`?
    fn live(&self, hash: u64, generation: u64, queue: Queue) -> bool {
        self.map
            .get(&hash)
            .is_some_and(|e| e.generation == generation && e.queue == queue)
    }

    fn evict_small(&mut self) {
        let Some((hash, generation)) = self.small.pop_front() else {
            return;
        };
        if !self.live(hash, generation, Queue::Small) {
            return;
        }
        let e = self.map.get_mut(&hash).expect("live entry");
        let len = e.bytes.footprint();
        self.small_bytes -= len;
        if e.freq > 0 {
            e.freq = 0;
            e.queue = Queue::Main;
            self.main_bytes += len;
            self.main.push_back((hash, generation));
        } else {
            self.map.remove(&hash);
            self.stats.evictions += 1;
            self.ghost.push_back(hash);
            self.ghost_set.insert(hash);
            while self.ghost.len() > self.map.len().max(64) {
                if let Some(old) = self.ghost.pop_front() {
                    self.ghost_set.remove(&old);
                }
            }
        }
    }

    fn evict_main(&mut self) {
        let Some((hash, generation)) = self.main.pop_front() else {
            return;
        };
        if !self.live(hash, generation, Queue::Main) {
            return;
        }
        let e = self.map.get_mut(&hash).expect("live entry");
        if e.freq > 0 {
            e.freq -= 1;
            self.main.push_back((hash, generation));
        } else {
            self.main_bytes -= e.bytes.footprint();
            self.map.remove(&hash);
            self.stats.evictions += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, v: u8) -> Vec<u8> {
        vec![v; n]
    }

    #[test]
    fn keeps_what_is_hit_and_respects_capacity() {
        let mut r = RamTier::new(10_000, 2_000);
        r.insert(1, &bytes(1000, 1), 7);
        assert_eq!(r.get(1).map(|(b, s)| (b.len(), s)), Some((1000, 7)));
        for k in 2..100 {
            r.insert(k, &bytes(1000, k as u8), 1);
            r.get(1);
            assert!(r.stats().bytes <= 10_000);
        }
        assert!(r.get(1).is_some(), "the hot entry stays");
        assert!(r.get(2).is_none(), "cold ones leave");
        assert!(r.stats().evictions > 80);
    }

    #[test]
    fn too_large_entries_are_not_kept_and_replacement_works() {
        let mut r = RamTier::new(10_000, 2_000);
        r.insert(1, &bytes(3000, 1), 1);
        assert!(r.get(1).is_none());
        r.insert(2, &bytes(100, 1), 1);
        r.insert(2, &bytes(200, 2), 2);
        let (b, seq) = r.get(2).unwrap();
        assert_eq!((b.len(), b[0], seq), (200, 2, 2));
        assert_eq!(r.stats().bytes, 200);
        r.remove(2);
        assert_eq!(r.stats().bytes, 0);
        assert!(r.get(2).is_none());
    }

    #[test]
    fn large_entries_come_back_whole_and_count_their_blocks() {
        let mut r = RamTier::new(1 << 20, 1 << 20);
        let big: Vec<u8> = (0..3 * BLOCK + 5).map(|i| (i % 251) as u8).collect();
        r.insert(9, &big, 3);
        assert_eq!(r.get(9), Some((big.clone(), 3)));
        assert_eq!(r.stats().bytes, 4 * BLOCK as u64, "four blocks held");
        let exact: Vec<u8> = vec![7; 2 * BLOCK];
        r.insert(10, &exact, 1);
        assert_eq!(r.get(10).unwrap().0, exact);
        assert_eq!(r.stats().bytes, 6 * BLOCK as u64);
        r.remove(9);
        assert_eq!(r.stats().bytes, 2 * BLOCK as u64);
    }

    #[test]
    fn ghost_hits_enter_main() {
        let mut r = RamTier::new(1000, 100);
        for k in 0..50 {
            r.insert(k, &bytes(100, 0), 1);
        }
        // Key 0 was dropped from probation unhit; back again it goes to main
        // and survives a burst of new keys that a probation entry would not.
        r.insert(0, &bytes(100, 0), 1);
        for k in 100..108 {
            r.insert(k, &bytes(100, 0), 1);
        }
        assert!(r.get(0).is_some());
    }
}
