//! The slab store of one shard: an append-only log of entries in fixed-size
//! segments of the shard's region, written with O_DIRECT one whole segment at
//! a time, with the compact index and FIFO-with-reinsertion eviction of
//! `region`. The owner shard alone writes its region; any shard may read any
//! region through its own `Device`. Never blocks the executor: all device I/O
//! goes through glommio's io_uring.

pub mod device;
mod fill;
pub mod layout;
pub mod region;
mod writer;

use crate::cache::index::{EntryLayout, Index, Location, UNIT};
use device::{Device, Geometry, PreparedDevice};
use glommio::io::DmaBuffer;
use glommio::sync::Semaphore;
use glommio::task::JoinHandle;
use layout::{ChunkRef, SEGMENT_HEADER_SIZE};
use region::Region;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Body bytes per chunk of a large object, and the largest body stored inline.
pub const MAX_CHUNK: usize = 1 << 20;
/// Largest stored response head and key.
pub const MAX_HEAD: usize = 64 << 10;
pub const MAX_KEY: usize = 8 << 10;

/// Counters read by the admin API from another thread.
#[derive(Debug, Default)]
pub struct StoreStats {
    pub objects: AtomicU64,
    pub bytes_written: AtomicU64,
    pub segments_written: AtomicU64,
    pub write_errors: AtomicU64,
    pub read_errors: AtomicU64,
    pub checksum_failures: AtomicU64,
    pub reclaims: AtomicU64,
    pub reinserted: AtomicU64,
    pub evicted: AtomicU64,
    pub fills_completed: AtomicU64,
    pub fills_abandoned: AtomicU64,
    pub index_bytes: AtomicU64,
}

/// Identifies a fill: the shard that streams it and its number there.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct FillId {
    pub from: u32,
    pub n: u64,
}

/// What the fetching shard knows when the origin's head arrives.
#[derive(Clone, Debug)]
pub struct FillMeta {
    pub key: String,
    pub hash: u64,
    /// The response head as it will be served (encoded, hop-by-hop removed).
    pub head: Vec<u8>,
    pub born_ms: u64,
    pub expires_ms: u64,
}

struct FillState {
    meta: FillMeta,
    nonce: u64,
    staged: Vec<u8>,
    chunks: Vec<ChunkRef>,
    total: u64,
    failed: bool,
    /// Last time a piece arrived: fills whose sender vanished are pruned.
    touched: std::time::Instant,
}

/// The answer to a lookup, as the owner gives it.
#[derive(Clone, Debug)]
pub enum Lookup {
    Miss,
    Found {
        loc: Location,
        seq: u64,
        /// The entry's bytes when it still sits in a segment buffer.
        bytes: Option<Vec<u8>>,
        /// Segments not yet on the device at the time of the lookup: chunks
        /// in them must be asked of the owner.
        buffered: Vec<(u32, u64)>,
    },
}

struct Flushing {
    slot: u32,
    seq: u64,
    buf: Rc<DmaBuffer>,
    task: Option<JoinHandle<io::Result<()>>>,
}

/// An open segment's buffer.
struct OpenBuf {
    slot: u32,
    seq: u64,
    buf: DmaBuffer,
}

struct Buffers {
    /// Per queue (small, main): the segment being filled.
    open: [Option<OpenBuf>; 2],
    flushing: Option<Flushing>,
    spare: Vec<DmaBuffer>,
}

pub struct ShardStore {
    shard: u32,
    geo: Geometry,
    format_id: u64,
    device: Rc<Device>,
    region: RefCell<Region>,
    buffers: RefCell<Buffers>,
    write_lock: Semaphore,
    fills: RefCell<HashMap<FillId, FillState>>,
    max_object: u64,
    chunk: usize,
    next_nonce: Cell<u64>,
    stats: Arc<StoreStats>,
}

#[derive(Debug)]
pub enum StoreError {
    TooLarge,
    Io(io::Error),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::TooLarge => f.write_str("entry larger than a segment"),
            StoreError::Io(e) => write!(f, "cache device I/O: {e}"),
        }
    }
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(UNIT) * UNIT
}

impl ShardStore {
    pub async fn open(
        dev: &PreparedDevice,
        shard: u32,
        avg_object_size: u64,
        max_object: u64,
        stats: Arc<StoreStats>,
    ) -> Result<Rc<ShardStore>, String> {
        let geo = dev.geometry;
        let device = Device::open(&dev.path).await.map_err(|e| e.to_string())?;
        let chunk = MAX_CHUNK.min(geo.segment_size as usize / 4);
        let max_entry = (geo.segment_size - SEGMENT_HEADER_SIZE as u64).min(4 << 20);
        let layout = EntryLayout::new(geo.segments_per_region as u64, geo.segment_size, max_entry)
            .map_err(|e| format!("cache.segment_size: {e}"))?;
        // A manifest lists 24 bytes per chunk; it must fit an entry.
        let max_chunks =
            (layout.max_entry_bytes().min(max_entry) as usize - MAX_HEAD - MAX_KEY - 1024) / 24;
        let max_object = max_object.min(max_chunks as u64 * chunk as u64);
        let objects = geo.region_size() / avg_object_size.max(64);
        let index = Index::new(layout, objects);
        stats
            .index_bytes
            .fetch_add(index.table_bytes() as u64, Relaxed);
        let region = Region::new(index, geo.segments_per_region, geo.segment_size, 1);
        Ok(Rc::new(ShardStore {
            shard,
            geo,
            format_id: dev.format_id,
            device: Rc::new(device),
            region: RefCell::new(region),
            buffers: RefCell::new(Buffers {
                open: [None, None],
                flushing: None,
                spare: Vec::new(),
            }),
            write_lock: Semaphore::new(1),
            fills: RefCell::new(HashMap::new()),
            max_object,
            chunk,
            next_nonce: Cell::new(device::random_u64()),
            stats,
        }))
    }

    pub fn device(&self) -> Rc<Device> {
        self.device.clone()
    }

    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    pub fn max_object(&self) -> u64 {
        self.max_object
    }

    fn buffered_slots(&self) -> Vec<(u32, u64)> {
        let b = self.buffers.borrow();
        b.open
            .iter()
            .flatten()
            .map(|o| (o.slot, o.seq))
            .chain(b.flushing.iter().map(|f| (f.slot, f.seq)))
            .collect()
    }

    /// Finds a key hash and counts the access.
    pub fn lookup(&self, hash: u64) -> Lookup {
        let mut region = self.region.borrow_mut();
        let Some(loc) = region.index.lookup(hash) else {
            return Lookup::Miss;
        };
        let seq = region.seg(loc.slot).seq;
        drop(region);
        Lookup::Found {
            loc,
            seq,
            bytes: self.read_buffered(loc.slot, seq, loc.offset, loc.len),
            buffered: self.buffered_slots(),
        }
    }

    pub fn remove(&self, hash: u64) -> bool {
        self.region.borrow_mut().index.remove(hash).is_some()
    }

    /// A copy of bytes from a segment still in memory, if it is.
    pub fn read_buffered(&self, slot: u32, seq: u64, offset: u32, len: u32) -> Option<Vec<u8>> {
        let b = self.buffers.borrow();
        let range = offset as usize..offset as usize + len as usize;
        if let Some(o) = b
            .open
            .iter()
            .flatten()
            .find(|o| (o.slot, o.seq) == (slot, seq))
        {
            return o.buf.as_bytes().get(range).map(<[u8]>::to_vec);
        }
        if let Some(f) = &b.flushing
            && (f.slot, f.seq) == (slot, seq)
        {
            return f.buf.as_bytes().get(range).map(<[u8]>::to_vec);
        }
        None
    }

    pub(super) fn publish_region_stats(&self) {
        let region = self.region.borrow();
        let s = region.stats();
        self.stats.reclaims.store(s.reclaims, Relaxed);
        self.stats.reinserted.store(s.reinserted, Relaxed);
        self.stats.evicted.store(s.evicted, Relaxed);
        self.stats.objects.store(region.index.len() as u64, Relaxed);
    }
}
