//! The RAM tier of one shard: verified copies of small hot entries, kept by
//! S3-FIFO (a small probation queue, a main queue with reinsertion, and a
//! ghost of keys recently dropped from probation). A hit here does no disk
//! I/O. Entries are the exact bytes of the on-device entry (header, key,
//! head, body), so they are served through the same verification as a read.
//! An entry is let in by its first read from the device, not when it is
//! written (most objects are fetched once and never asked for again); a new
//! version of an entry held here replaces it as it is written.
//!
//! Chunks of large objects live here too, beside whole entries and under the
//! same capacity: a chunk is let in on its object's second request within
//! the ghost's memory (the fill that wrote it counts as the first, on the
//! shard that ran it; elsewhere a first read does), so a hot object's
//! chunks come from RAM while a long tail streams past without a copy. A
//! chunk is held apart from the heap, in a file of its own whose pages a
//! response lends to its socket (see `lend`), or else in an anonymous
//! mapping of its own, handed to every response that sends it: chunks are
//! about a megabyte each and churn as hot objects change, and a
//! general-purpose allocator leaves megabyte holes between the small
//! allocations placed around them, so the resident set would creep above
//! what the tier holds. Their pages go back to the system the moment the
//! last holder (a socket's, for lent pages) lets go.
//!
//! Entries of a block or more are held in blocks of one size, cut from one
//! mapping of the tier's capacity and reused from a free list. The tier
//! churns entries of every size in no fixed order, and a general-purpose
//! allocator left to place them fragments: a page of its blocks is freed
//! only when every block on it is, so the resident set creeps above what
//! the tier holds (by a quarter, measured over a soak). Blocks of the
//! tier's own are reused whatever the mix and order, so its resident set
//! rises to what it holds at most and stays there; the capacity counts the
//! blocks whole, so it is what the tier really occupies. Entries of
//! `MAPPED_ENTRY` (64 KiB) or more are held as chunks are, each in a file
//! or mapping of its own (4,096 at most, then in blocks), so that a hit
//! lends or shares them with its response instead of copying them out.

use crate::cache::lend::ChunkFile;
use crate::spare;
use std::collections::VecDeque;
use std::sync::Arc;

/// A chunk's bytes, outside the heap and returned to the system when
/// dropped: in an anonymous mapping of their own (see the module's notes),
/// or in a file whose pages a response may lend to its socket (see
/// `lend`), mapped to be read.
pub struct ChunkBytes {
    map: Mapped,
    file: Option<ChunkFile>,
}

enum Mapped {
    Anon(memmap2::MmapMut),
    File(memmap2::Mmap),
}

/// Chunks of this many bytes or more are held in files, to be lent; below
/// it, a copy costs less than the file.
const LEND_FROM: usize = 64 << 10;

impl ChunkBytes {
    /// A copy of `bytes` in anonymous memory; None when they are empty or
    /// the system will not map that much memory (the chunk is then simply
    /// not held).
    pub fn copy_of(bytes: &[u8]) -> Option<ChunkBytes> {
        let mut map = memmap2::MmapMut::map_anon(bytes.len()).ok()?;
        map.copy_from_slice(bytes);
        Some(ChunkBytes {
            map: Mapped::Anon(map),
            file: None,
        })
    }

    /// A copy of `bytes` that responses may lend to their sockets: in a
    /// file when they are large enough and one is to be had, else as
    /// `copy_of`.
    pub fn lendable_copy_of(bytes: &[u8]) -> Option<ChunkBytes> {
        if bytes.len() >= LEND_FROM
            && let Some(file) = ChunkFile::holding(bytes)
            // SAFETY: the file is this chunk's alone and never written again.
            && let Ok(map) = unsafe { memmap2::Mmap::map(file.file()) }
        {
            return Some(ChunkBytes {
                map: Mapped::File(map),
                file: Some(file),
            });
        }
        ChunkBytes::copy_of(bytes)
    }

    /// The file holding the bytes, when they are lendable.
    pub fn file(&self) -> Option<std::os::fd::RawFd> {
        self.file.as_ref().map(ChunkFile::fd)
    }
}

impl std::ops::Deref for ChunkBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.map {
            Mapped::Anon(m) => m,
            Mapped::File(m) => m,
        }
    }
}

/// A held chunk (or large entry), shared with the responses sending it;
/// atomically counted, since a lookup may answer another shard.
pub type SharedChunk = Arc<ChunkBytes>;

/// An entry's bytes held in memory, as a lookup hands them out: a copy (in
/// a reused buffer, see `spare`), or the tier's own bytes of a large entry
/// or a chunk, or of an entry below a block, shared.
#[derive(Clone)]
pub enum EntryCopy {
    Copied(Vec<u8>),
    Shared(SharedChunk),
    /// An entry below a block, shared with the tier.
    Small(Arc<[u8]>),
}

/// A copy's buffer is reused for the next.
impl Drop for EntryCopy {
    fn drop(&mut self) {
        if let EntryCopy::Copied(v) = self {
            spare::give(std::mem::take(v));
        }
    }
}

impl std::fmt::Debug for EntryCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            EntryCopy::Copied(_) => "Copied",
            EntryCopy::Shared(_) => "Shared",
            EntryCopy::Small(_) => "Small",
        };
        write!(f, "{kind}({} bytes)", self.len())
    }
}

impl std::ops::Deref for EntryCopy {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            EntryCopy::Copied(v) => v,
            EntryCopy::Shared(c) => c,
            EntryCopy::Small(b) => b,
        }
    }
}

/// Entries this large or larger are held in a mapping of their own, like a
/// chunk, and a hit shares it instead of copying it out (at 100 KiB the
/// copy was a sixth of a hit's time). Entries below a block are shared too;
/// those in between are copied out of their blocks.
const MAPPED_ENTRY: usize = 64 << 10;

/// Mappings of whole entries a tier holds at most (the system's limit on a
/// process's mappings is 65,530 by default, and chunks hold mappings too):
/// beyond it, large entries go to blocks.
const MAPPED_ENTRIES: usize = 4096;

/// Size of the blocks entries of this size or more are held in.
const BLOCK: usize = 4096;

/// The tier's blocks: one anonymous mapping of its capacity, made on first
/// use, handed out block by block. Blocks freed are reused first (most
/// recently freed first, their pages warm); blocks never used are untouched
/// pages, not resident.
struct Blocks {
    map: Option<memmap2::MmapMut>,
    /// Freed blocks, ready for reuse.
    free: Vec<u32>,
    /// Blocks from here on were never handed out.
    fresh: u32,
    total: u32,
}

impl Blocks {
    fn new(capacity: usize) -> Blocks {
        Blocks {
            map: None,
            free: Vec::new(),
            fresh: 0,
            total: (capacity / BLOCK).min(u32::MAX as usize) as u32,
        }
    }

    /// Blocks that can still be handed out.
    fn available(&self) -> usize {
        self.free.len() + (self.total - self.fresh) as usize
    }

    /// `n` blocks, or None (nothing taken) when there are not that many.
    fn take(&mut self, n: usize) -> Option<Box<[u32]>> {
        if n > self.available() {
            return None;
        }
        if self.map.is_none() {
            self.map = Some(memmap2::MmapMut::map_anon(self.total as usize * BLOCK).ok()?);
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.free.pop() {
                Some(b) => out.push(b),
                None => {
                    out.push(self.fresh);
                    self.fresh += 1;
                }
            }
        }
        Some(out.into_boxed_slice())
    }

    fn give_back(&mut self, blocks: &[u32]) {
        self.free.extend_from_slice(blocks);
    }

    fn block(&self, b: u32) -> &[u8] {
        let map = self.map.as_ref().expect("blocks were handed out");
        &map[b as usize * BLOCK..][..BLOCK]
    }

    fn block_mut(&mut self, b: u32) -> &mut [u8] {
        let map = self.map.as_mut().expect("blocks were handed out");
        &mut map[b as usize * BLOCK..][..BLOCK]
    }
}

/// Blocks needed to hold `len` bytes.
fn blocks_for(len: usize) -> usize {
    len.div_ceil(BLOCK)
}

/// An entry's bytes as held.
enum Held {
    /// Below a block: exactly the bytes, shared with the responses sending
    /// them.
    Whole(Arc<[u8]>),
    /// `len` bytes over whole blocks of the tier's `Blocks`.
    Blocks { len: usize, blocks: Box<[u32]> },
    /// A chunk of a large object, shared with the responses sending it.
    Chunk(SharedChunk),
    /// A whole entry of `MAPPED_ENTRY` bytes or more, shared likewise.
    Mapped(SharedChunk),
}

impl Held {
    /// A copy of `bytes`; None when the blocks it needs are not free.
    /// `mapped`: whether a large entry may take a mapping of its own.
    fn new(bytes: &[u8], store: &mut Blocks, mapped: bool) -> Option<Held> {
        if bytes.len() < BLOCK {
            return Some(Held::Whole(bytes.into()));
        }
        if mapped
            && bytes.len() >= MAPPED_ENTRY
            && let Some(map) = ChunkBytes::lendable_copy_of(bytes)
        {
            return Some(Held::Mapped(Arc::new(map)));
        }
        let blocks = store.take(blocks_for(bytes.len()))?;
        for (&b, part) in blocks.iter().zip(bytes.chunks(BLOCK)) {
            store.block_mut(b)[..part.len()].copy_from_slice(part);
        }
        Some(Held::Blocks {
            len: bytes.len(),
            blocks,
        })
    }

    /// What the capacity counts for an entry of `len` bytes.
    fn footprint_of(len: usize) -> usize {
        if len < BLOCK {
            len
        } else {
            blocks_for(len) * BLOCK
        }
    }

    /// Bytes of memory it occupies (what the capacity counts).
    fn footprint(&self) -> usize {
        match self {
            Held::Whole(b) => b.len(),
            Held::Blocks { blocks, .. } => blocks.len() * BLOCK,
            Held::Chunk(b) => b.len(),
            // Whole pages, as mapped.
            Held::Mapped(b) => blocks_for(b.len()) * BLOCK,
        }
    }

    /// A whole entry: a copy (in a reused buffer, see `spare`), or its
    /// mapping shared; None for a chunk.
    fn entry(&self, store: &Blocks) -> Option<EntryCopy> {
        match self {
            Held::Whole(b) => Some(EntryCopy::Small(b.clone())),
            Held::Mapped(b) => Some(EntryCopy::Shared(b.clone())),
            Held::Blocks { len, blocks } => {
                let mut v = spare::take(*len);
                for &b in blocks.iter() {
                    let take = (*len - v.len()).min(BLOCK);
                    v.extend_from_slice(&store.block(b)[..take]);
                }
                Some(EntryCopy::Copied(v))
            }
            Held::Chunk(_) => None,
        }
    }
}

/// The ghost remembers at least one key per this many bytes of capacity.
const GHOST_UNIT: usize = 64 << 10;

/// The probation queue's share of the capacity: one part in this many.
const SMALL_SHARE: usize = 10;

/// The key a chunk is held under: its object's key hash, fill and index.
/// Whoever takes a chunk out still checks its header names that very chunk.
pub fn chunk_key(hash: u64, fill_id: u64, index: u32) -> u64 {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&hash.to_le_bytes());
    b[8..16].copy_from_slice(&fill_id.to_le_bytes());
    b[16..].copy_from_slice(&index.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&b)
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
    /// Hits on chunks of large objects (also counted in `hits`).
    pub chunk_hits: u64,
    /// Chunks held now (also counted in `objects`).
    pub chunks: u64,
    /// Bytes of those chunks (also counted in `bytes`), held in mappings
    /// of their own rather than on the heap.
    pub chunk_bytes: u64,
}

pub struct RamTier {
    capacity: usize,
    max_object: usize,
    /// Keyed with a fast seeded hash: a lookup per hit.
    map: foldhash::HashMap<u64, Entry>,
    small: VecDeque<(u64, u64)>,
    main: VecDeque<(u64, u64)>,
    small_bytes: usize,
    main_bytes: usize,
    ghost: VecDeque<u64>,
    ghost_set: foldhash::HashSet<u64>,
    next_generation: u64,
    chunks: u64,
    chunk_bytes: usize,
    /// Whole entries held in mappings of their own (`Held::Mapped`).
    mapped: usize,
    blocks: Blocks,
    stats: RamStats,
}

impl RamTier {
    /// `capacity` bytes in all; entries above `max_object` bytes are never kept.
    pub fn new(capacity: usize, max_object: usize) -> RamTier {
        RamTier {
            capacity,
            max_object: max_object.min(capacity),
            map: foldhash::HashMap::default(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_bytes: 0,
            main_bytes: 0,
            ghost: VecDeque::new(),
            ghost_set: foldhash::HashSet::default(),
            next_generation: 0,
            chunks: 0,
            chunk_bytes: 0,
            mapped: 0,
            blocks: Blocks::new(capacity),
            stats: RamStats::default(),
        }
    }

    pub fn stats(&self) -> RamStats {
        RamStats {
            objects: self.map.len() as u64,
            bytes: (self.small_bytes + self.main_bytes) as u64,
            chunks: self.chunks,
            chunk_bytes: self.chunk_bytes as u64,
            ..self.stats
        }
    }

    pub fn accepts(&self, len: usize) -> bool {
        len > 0 && len <= self.max_object
    }

    /// Whether chunks of this many bytes may be held: the probation queue
    /// must have room for one.
    pub fn accepts_chunk(&self, len: usize) -> bool {
        len > 0 && len <= self.capacity / SMALL_SHARE
    }

    /// The entry of `hash` (copied, or shared when it is large) and its
    /// header's sequence number, counting the hit.
    pub fn get(&mut self, hash: u64) -> Option<(EntryCopy, u64)> {
        let e = self.map.get_mut(&hash)?;
        let bytes = e.bytes.entry(&self.blocks)?;
        e.freq = (e.freq + 1).min(FREQ_MAX);
        self.stats.hits += 1;
        Some((bytes, e.seq))
    }

    /// The chunk held under `key` (see [`chunk_key`]) and its sequence
    /// number, counting the hit. Shared, not copied.
    pub fn get_chunk(&mut self, key: u64) -> Option<(SharedChunk, u64)> {
        let e = self.map.get_mut(&key)?;
        let Held::Chunk(bytes) = &e.bytes else {
            return None;
        };
        e.freq = (e.freq + 1).min(FREQ_MAX);
        self.stats.hits += 1;
        self.stats.chunk_hits += 1;
        Some((bytes.clone(), e.seq))
    }

    /// Whether an entry (or chunk) is held under `hash`.
    pub fn holds(&self, hash: u64) -> bool {
        self.map.contains_key(&hash)
    }

    pub fn remove(&mut self, hash: u64) {
        if let Some(e) = self.map.remove(&hash) {
            match e.queue {
                Queue::Small => self.small_bytes -= e.bytes.footprint(),
                Queue::Main => self.main_bytes -= e.bytes.footprint(),
            }
            self.release(e.bytes);
        }
    }

    /// Lets go of a dropped entry's bytes (its queue's count is the
    /// caller's): blocks go back for reuse.
    fn release(&mut self, held: Held) {
        match held {
            Held::Chunk(b) => {
                self.chunks -= 1;
                self.chunk_bytes -= b.len();
            }
            Held::Blocks { blocks, .. } => self.blocks.give_back(&blocks),
            Held::Mapped(_) => self.mapped -= 1,
            Held::Whole(_) => {}
        }
    }

    /// Stores (or replaces) the entry of `hash`.
    pub fn insert(&mut self, hash: u64, bytes: &[u8], seq: u64) {
        self.remove(hash);
        if !self.accepts(bytes.len()) {
            return;
        }
        let queue = if self.ghost_set.remove(&hash) {
            Queue::Main
        } else {
            Queue::Small
        };
        // Room first: the blocks it needs are then free.
        self.evict_for(Held::footprint_of(bytes.len()));
        let mapped = self.mapped < MAPPED_ENTRIES;
        if let Some(held) = Held::new(bytes, &mut self.blocks, mapped) {
            self.mapped += usize::from(matches!(held, Held::Mapped(_)));
            self.admit(hash, held, seq, queue);
        }
    }

    /// A chunk a fill just wrote, `len` bytes: its object was asked for
    /// once, so the ghost remembers it and the chunk's first read lets it
    /// in (S3-FIFO keeps what is asked for twice). Nothing is copied here.
    pub fn saw_chunk(&mut self, key: u64, len: usize) {
        if self.accepts_chunk(len) && !self.map.contains_key(&key) {
            self.remember(key);
        }
    }

    /// Offers a chunk just read from the device. It is let in only when the
    /// ghost remembers its key (its fill, or a read before, in a while):
    /// `bytes` is asked for then, so a chunk read once costs no copy (and
    /// when it has none to give, nothing is held). Returns the held bytes
    /// when it was let in.
    pub fn offer_chunk(
        &mut self,
        key: u64,
        len: usize,
        seq: u64,
        bytes: impl FnOnce() -> Option<SharedChunk>,
    ) -> Option<SharedChunk> {
        if !self.accepts_chunk(len) || self.map.contains_key(&key) {
            return None;
        }
        if !self.ghost_set.remove(&key) {
            self.remember(key);
            return None;
        }
        // Seen before: popular enough for the main queue, as any ghost hit.
        let bytes = bytes()?;
        self.chunks += 1;
        self.chunk_bytes += bytes.len();
        self.admit(key, Held::Chunk(bytes.clone()), seq, Queue::Main);
        Some(bytes)
    }

    /// Lists `held` in `queue` under `key`, then evicts down to capacity.
    fn admit(&mut self, key: u64, held: Held, seq: u64, queue: Queue) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let len = held.footprint();
        match queue {
            Queue::Small => {
                self.small.push_back((key, generation));
                self.small_bytes += len;
            }
            Queue::Main => {
                self.main.push_back((key, generation));
                self.main_bytes += len;
            }
        }
        self.map.insert(
            key,
            Entry {
                bytes: held,
                seq,
                freq: 0,
                queue,
                generation,
            },
        );
        self.stats.inserts += 1;
        self.evict();
    }

    /// Puts a key in the ghost, forgetting the oldest beyond its bound.
    fn remember(&mut self, key: u64) {
        if self.ghost_set.insert(key) {
            self.ghost.push_back(key);
        }
        // As many keys as the tier holds objects, or could hold of 64 KiB
        // each: enough to see a large object's chunks come back.
        let bound = self.map.len().max(self.capacity / GHOST_UNIT).max(64);
        while self.ghost.len() > bound {
            if let Some(old) = self.ghost.pop_front() {
                self.ghost_set.remove(&old);
            }
        }
    }

    fn evict(&mut self) {
        self.evict_for(0);
    }

    /// Evicts until `room` more bytes fit within the capacity.
    fn evict_for(&mut self, room: usize) {
        while self.small_bytes + self.main_bytes + room > self.capacity
            && !(self.small.is_empty() && self.main.is_empty())
        {
            if self.small_bytes > self.capacity / SMALL_SHARE || self.main.is_empty() {
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
            let gone = self.map.remove(&hash).expect("live entry");
            self.release(gone.bytes);
            self.stats.evictions += 1;
            self.remember(hash);
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
            let gone = self.map.remove(&hash).expect("live entry");
            self.main_bytes -= gone.bytes.footprint();
            self.release(gone.bytes);
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
        assert_eq!(
            r.get(9).map(|(b, s)| (b.to_vec(), s)),
            Some((big.clone(), 3))
        );
        assert_eq!(r.stats().bytes, 4 * BLOCK as u64, "four blocks held");
        let exact: Vec<u8> = vec![7; 2 * BLOCK];
        r.insert(10, &exact, 1);
        assert_eq!(r.get(10).unwrap().0.to_vec(), exact);
        assert_eq!(r.stats().bytes, 6 * BLOCK as u64);
        r.remove(9);
        assert_eq!(r.stats().bytes, 2 * BLOCK as u64);
    }

    #[test]
    fn a_large_entry_is_mapped_and_shared_not_copied() {
        let mut r = RamTier::new(4 << 20, 1 << 20);
        let big: Vec<u8> = (0..MAPPED_ENTRY + 5).map(|i| (i % 253) as u8).collect();
        r.insert(1, &big, 4);
        let (first, seq) = r.get(1).unwrap();
        let (second, _) = r.get(1).unwrap();
        let (EntryCopy::Shared(a), EntryCopy::Shared(b)) = (&first, &second) else {
            panic!("a large entry is shared: {first:?}");
        };
        assert!(Arc::ptr_eq(a, b), "the same mapping each hit");
        assert!(a[..] == big[..] && seq == 4);
        let pages = (MAPPED_ENTRY / BLOCK + 1) * BLOCK;
        assert_eq!(r.stats().bytes, pages as u64, "counted in whole pages");
        // Dropped from the tier while a response still sends it: the
        // response's bytes stay whole, and the tier no longer counts them.
        r.remove(1);
        assert_eq!(r.stats().bytes, 0);
        assert!(a[..] == big[..], "the shared bytes stay whole");
        assert_eq!(r.mapped, 0);
        // Below the size, entries are copied out of blocks.
        r.insert(2, &big[..MAPPED_ENTRY - 1], 1);
        assert!(matches!(r.get(2), Some((EntryCopy::Copied(_), 1))));
        // Below a block, they are shared too.
        r.insert(3, &big[..100], 2);
        let (first, second) = (r.get(3), r.get(3));
        let (Some((EntryCopy::Small(a), 2)), Some((EntryCopy::Small(b), _))) = (&first, &second)
        else {
            panic!("a small entry is shared");
        };
        assert!(Arc::ptr_eq(a, b) && a[..] == big[..100]);
    }

    #[test]
    fn blocks_are_reused_whatever_the_order_entries_leave_in() {
        const HELD: usize = 64;
        let mut r = RamTier::new(HELD * BLOCK, 16 * BLOCK);
        let len_of = |k: u64| BLOCK + (k as usize * 7919) % (8 * BLOCK);
        let body = |k: u64| -> Vec<u8> { (0..len_of(k)).map(|i| (i as u64 ^ k) as u8).collect() };
        for k in 0..5000u64 {
            r.insert(k, &body(k), 1);
            if k % 3 == 0 {
                r.get(k);
            }
            if k % 5 == 0 {
                r.remove(k / 2);
            }
            assert!(r.stats().bytes <= (HELD * BLOCK) as u64);
        }
        assert!(
            r.blocks.fresh as usize <= HELD,
            "never more blocks than the capacity holds"
        );
        let mut found = 0;
        for k in 4000..5000 {
            if let Some((b, _)) = r.get(k) {
                assert!(*b == body(k), "entry {k} reads back whole");
                found += 1;
            }
        }
        assert!(found > 3, "the tier holds entries ({found})");
        // Every block in use or free is accounted for.
        let in_use: usize = r
            .map
            .values()
            .map(|e| match &e.bytes {
                Held::Blocks { blocks, .. } => blocks.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(in_use + r.blocks.free.len(), r.blocks.fresh as usize);
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

    #[test]
    fn a_chunk_a_fill_wrote_enters_on_its_first_read() {
        let mut r = RamTier::new(1 << 20, 1 << 10);
        let chunk = Arc::new(ChunkBytes::copy_of(&[6u8; 64 << 10]).unwrap());
        let k = chunk_key(1, 2, 0);
        r.saw_chunk(k, chunk.len());
        assert_eq!(r.stats().chunks, 0, "a fill copies nothing in");
        let held = r.offer_chunk(k, chunk.len(), 3, || Some(chunk.clone()));
        assert!(held.is_some(), "the object's second request lets it in");
        // A chunk too large for the tier is not remembered at all.
        let big = chunk_key(1, 2, 1);
        r.saw_chunk(big, 1 << 20);
        assert!(
            r.offer_chunk(big, 1 << 20, 3, || Some(chunk.clone()))
                .is_none()
        );
    }

    #[test]
    fn a_chunk_enters_on_its_second_read_and_is_shared_not_copied() {
        let mut r = RamTier::new(1 << 20, 1 << 10);
        let chunk = Arc::new(ChunkBytes::copy_of(&[5u8; 64 << 10]).unwrap());
        let k = chunk_key(1, 2, 0);
        assert_ne!(k, chunk_key(1, 2, 1));
        assert_ne!(k, chunk_key(1, 3, 0));
        let mut copies = 0;
        let mut offer = |r: &mut RamTier| {
            r.offer_chunk(k, chunk.len(), 9, || {
                copies += 1;
                Some(chunk.clone())
            })
        };
        assert!(offer(&mut r).is_none(), "a first read is only remembered");
        let held = offer(&mut r).expect("a second read lets it in");
        assert!(offer(&mut r).is_none(), "already held");
        assert_eq!(copies, 1);
        let (got, seq) = r.get_chunk(k).unwrap();
        assert!(Arc::ptr_eq(&got, &held));
        assert_eq!(seq, 9);
        assert!(r.get(k).is_none(), "a chunk is not an entry");
        let s = r.stats();
        assert_eq!(
            (s.chunks, s.chunk_hits, s.bytes, s.chunk_bytes),
            (1, 1, 64 << 10, 64 << 10)
        );
        assert!(!r.accepts_chunk((1 << 20) / SMALL_SHARE + 1));
        r.remove(k);
        let s = r.stats();
        assert_eq!((s.chunks, s.objects, s.bytes, s.chunk_bytes), (0, 0, 0, 0));
    }

    #[test]
    fn a_hot_set_of_chunks_stays_while_a_tail_streams_past() {
        const CHUNK: usize = 64 << 10;
        // Room for 64 chunks; 20 are hot, and 2,000 others are read once.
        let mut r = RamTier::new(64 * CHUNK, 1 << 10);
        let hot: Vec<u64> = (0..20).map(|i| chunk_key(7, 1, i)).collect();
        let mut tail = (0..2000u32).map(|i| chunk_key(8, 1, i));
        let mut misses_late = 0;
        for round in 0..100 {
            for &k in &hot {
                if r.get_chunk(k).is_none() {
                    misses_late += usize::from(round >= 2);
                    r.offer_chunk(k, CHUNK, 1, || {
                        ChunkBytes::copy_of(&[1u8; CHUNK]).map(Arc::new)
                    });
                }
            }
            for k in tail.by_ref().take(20) {
                assert!(
                    r.offer_chunk(k, CHUNK, 1, || {
                        ChunkBytes::copy_of(&[2u8; CHUNK]).map(Arc::new)
                    })
                    .is_none()
                );
            }
            assert!(r.stats().bytes <= (64 * CHUNK) as u64);
        }
        assert_eq!(
            misses_late, 0,
            "the hot set is served from RAM after two reads"
        );
        assert_eq!(r.stats().chunks, 20, "no chunk read once was copied in");
        assert_eq!(r.stats().chunk_bytes, (20 * CHUNK) as u64);
    }
}
