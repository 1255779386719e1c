//! The slab store of one shard: an append-only log of entries in fixed-size
//! segments of the shard's region, written with O_DIRECT one whole segment at
//! a time, with the compact index, the segment bookkeeping of `region`, the
//! S3-FIFO eviction of `eviction` and the placement steps of `placement`, a
//! RAM tier for hot small entries, a checkpoint at a clean stop and a scan after a
//! crash. The owner shard alone writes its region; any shard may read any
//! region through its own `Device`. Never blocks the executor: all device I/O
//! goes through the device layer's io_uring.

pub mod checkpoint;
pub mod device;
pub mod eviction;
mod faults;
mod fill;
mod follow;
mod refresh;
pub use follow::FillRead;
pub use refresh::RefreshBody;
pub mod geometry;
pub mod inflight;
pub mod layout;
pub mod placement;
pub mod recover;
pub mod region;
mod writer;

use crate::cache::index::{EntryLayout, Index, LayoutTooWide, Location, UNIT};
use crate::cache::ram::{EntryCopy, RamTier, SharedChunk};
use crate::cache::vary::Variant;
use crate::runtime::sync::AsyncLock;
use crate::runtime::task::Task;
use device::{Device, DeviceError, IoBuffer, PreparedDevice};
use eviction::EvictionParams;
use geometry::Geometry;
use inflight::InFlight;
use layout::SEGMENT_HEADER_SIZE;
pub use layout::SegmentId;
use placement::Refused;
use region::Region;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    /// Pieces of fills that waited for their writer: the device fell
    /// `MAX_STAGED_CHUNKS` chunks behind the origin.
    pub fill_waits: AtomicU64,
    pub index_bytes: AtomicU64,
    pub ram_hits: AtomicU64,
    pub ram_objects: AtomicU64,
    pub ram_bytes: AtomicU64,
    /// RAM hits on chunks of large objects (also in `ram_hits`).
    pub ram_chunk_hits: AtomicU64,
    /// Chunks of large objects the RAM tier holds (also in `ram_objects`).
    pub ram_chunks: AtomicU64,
    /// Their bytes (also in `ram_bytes`), mapped outside the heap.
    pub ram_chunk_bytes: AtomicU64,
    /// Objects found at start-up (checkpoint or scan).
    pub recovered: AtomicU64,
}

/// How a shard's store behaves, from the configuration.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_object: u64,
    /// RAM tier bytes for this shard (0: none).
    pub ram_bytes: usize,
    pub ram_max_object: usize,
    pub eviction: EvictionParams,
    /// How long misses for a key found uncacheable skip coalescing.
    pub hit_for_pass: std::time::Duration,
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
    /// The body length the origin declared (for followers' framing); not
    /// stored.
    pub declared_len: Option<u64>,
    /// Set when the response is one variant of a URL (`cache::vary`).
    pub variant: Option<VariantMeta>,
}

/// A fill that stores one variant of a URL. Variant keys are owned by
/// their URL's shard, so the variant and the URL's marker are written by
/// the same owner: the variant first, then (when asked) the marker, so a
/// marker never names a variant that was not indexed before it.
#[derive(Clone, Debug)]
pub struct VariantMeta {
    /// The URL's own key, where the marker goes.
    pub url_key: String,
    pub url_hash: u64,
    pub variant: Variant,
    /// Whether the URL's key gets this variant's marker (a new one, or one
    /// to freshen).
    pub write_marker: bool,
}

/// The answer to a lookup, as the owner gives it.
#[derive(Clone, Debug)]
pub enum Lookup {
    Miss,
    Found {
        loc: Location,
        seq: u64,
        /// The entry's bytes when they are in memory: in the RAM tier or in
        /// a segment buffer not yet written.
        bytes: Option<EntryCopy>,
        /// Segments not yet on the device at the time of the lookup: chunks
        /// in them must be asked of the owner.
        buffered: Vec<SegmentId>,
    },
}

struct Flushing {
    segment: SegmentId,
    buf: Rc<IoBuffer>,
    task: Option<Task<io::Result<()>>>,
}

/// An open segment's buffer, and the summary of the entries in it.
struct OpenBuf {
    segment: SegmentId,
    buf: IoBuffer,
    summary: Vec<layout::SummaryRecord>,
}

struct Buffers {
    /// Per queue (small, main): the segment being filled.
    open: [Option<OpenBuf>; 2],
    flushing: Option<Flushing>,
    spare: Vec<IoBuffer>,
}

pub struct ShardStore {
    shard: u32,
    geo: Geometry,
    format_id: u64,
    device: Rc<Device>,
    region: RefCell<Region>,
    buffers: RefCell<Buffers>,
    write_lock: AsyncLock,
    fills: RefCell<HashMap<FillId, fill::FillState>>,
    inflight: RefCell<InFlight>,
    ram: RefCell<RamTier>,
    max_object: u64,
    chunk: usize,
    next_nonce: Cell<u64>,
    stats: Arc<StoreStats>,
}

/// Why a shard's store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// This shard's handle on the device (see the kinds of `DeviceError`).
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The checkpoint of the last clean stop could not be erased, so the
    /// store must not write (a later crash would bring the checkpoint back).
    #[error("cache device {}: cannot clear the checkpoint: {source}", path.display())]
    CheckpointClear { path: PathBuf, source: io::Error },
    /// The segment size does not suit the region (the index would lose its
    /// tag bits).
    #[error("cache.segment_size: {0}")]
    SegmentSize(#[from] LayoutTooWide),
}

/// Why the store did not write an entry or a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("entry of {len} bytes is larger than a segment holds ({max} bytes)")]
    TooLarge { len: u64, max: u64 },
    #[error("no free cache segment")]
    NoFreeSegment,
    #[error("checkpoint needs {needed} bytes, the metadata area holds {room}")]
    CheckpointTooLarge { needed: u64, room: u64 },
    #[error("cache device I/O: {0}")]
    Io(#[from] io::Error),
}

impl From<Refused> for StoreError {
    fn from(r: Refused) -> StoreError {
        match r {
            Refused::TooLarge { len, max } => StoreError::TooLarge { len, max },
            Refused::NoFreeSegment => StoreError::NoFreeSegment,
        }
    }
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(UNIT) * UNIT
}

impl ShardStore {
    /// Opens a shard's store and brings back what the device holds: from the
    /// checkpoint of a clean stop if there is a valid one, else by scanning.
    pub async fn open(
        dev: &PreparedDevice,
        shard: u32,
        opts: &StoreOptions,
        stats: Arc<StoreStats>,
    ) -> Result<Rc<ShardStore>, OpenError> {
        let geo = dev.geometry;
        let device = Device::open(&dev.path).await?;
        let chunk = geometry::chunk_size(geo.segment_size) as usize;
        let max_entry = (geo.segment_size - SEGMENT_HEADER_SIZE as u64).min(4 << 20);
        let layout = EntryLayout::new(geo.segments_per_region as u64, geo.segment_size, max_entry)?;
        // A manifest lists 24 bytes per chunk; it must fit an entry.
        let max_chunks =
            (layout.max_entry_bytes().min(max_entry) as usize - MAX_HEAD - MAX_KEY - 1024) / 24;
        // An object larger than half the region would evict its own chunks.
        let max_object = opts
            .max_object
            .min(max_chunks as u64 * chunk as u64)
            .min(geo.region_size() / 2);
        let region = if dev.fresh {
            Region::with_params(
                Index::new(layout, geo.index_objects),
                geo.segments_per_region,
                geo.segment_size,
                1,
                opts.eviction,
            )
        } else {
            Self::recover(&device, dev, shard, layout, opts.eviction).await?
        };
        stats
            .index_bytes
            .store(region.index.table_bytes() as u64, Relaxed);
        stats.recovered.store(region.index.len() as u64, Relaxed);
        let store = Rc::new(ShardStore {
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
            write_lock: AsyncLock::new(),
            fills: RefCell::new(HashMap::new()),
            inflight: RefCell::new(InFlight::new(opts.hit_for_pass)),
            ram: RefCell::new(RamTier::new(opts.ram_bytes, opts.ram_max_object)),
            max_object,
            chunk,
            next_nonce: Cell::new(device::random_u64()),
            stats,
        });
        store.publish_region_stats();
        Ok(store)
    }

    async fn recover(
        device: &Device,
        dev: &PreparedDevice,
        shard: u32,
        layout: EntryLayout,
        params: EvictionParams,
    ) -> Result<Region, OpenError> {
        let geo = dev.geometry;
        let meta_at = geo.meta_offset(shard);
        let table_len =
            (Index::buckets_for(geo.index_objects) as usize) * crate::cache::index::BUCKET;
        let header = device.read(meta_at, checkpoint::HEADER).await.ok();
        let info = header.as_deref().and_then(|h| {
            checkpoint::decode_header(h, dev.format_id, shard, geo.segments_per_region, table_len)
        });
        let image = match info {
            Some(info) if info.total as u64 <= geo.meta_size => {
                let body = device.read(meta_at, info.total).await.ok();
                body.as_deref()
                    .and_then(|b| checkpoint::decode_body(b, &info))
            }
            _ => None,
        };
        // Whatever happens next, this checkpoint describes the past: erase it
        // before the first write, so a later crash cannot bring it back.
        let mut blank = device.alloc(checkpoint::HEADER);
        blank.as_bytes_mut().fill(0);
        let erased = async {
            device.write(Rc::new(blank), meta_at).await?;
            device.sync().await
        };
        erased.await.map_err(|source| OpenError::CheckpointClear {
            path: dev.path.clone(),
            source,
        })?;
        if let Some(img) = image
            && let Some(index) = Index::from_table(layout, img.table)
        {
            let region = Region::restore(
                index,
                geo.segment_size,
                &img.records,
                Some(img.ghost),
                &img.owners,
                params,
            );
            tracing::info!(
                shard,
                objects = region.index.len(),
                "warm start from the checkpoint of a clean stop"
            );
            return Ok(region);
        }
        let started = std::time::Instant::now();
        let (region, report) =
            recover::scan(device, &geo, shard, dev.format_id, layout, params).await;
        tracing::info!(
            shard,
            objects = region.index.len(),
            segments = report.segments,
            from_summaries = report.summarized,
            dropped_entries = report.dropped,
            read_errors = report.read_errors,
            millis = started.elapsed().as_millis() as u64,
            "no clean checkpoint: index rebuilt by scanning the segments"
        );
        Ok(region)
    }

    /// Writes every open segment and the index checkpoint (a clean stop).
    /// Returns the number of objects the checkpoint holds.
    pub async fn checkpoint(&self) -> Result<usize, StoreError> {
        let _writer = self.write_lock.lock().await;
        let sealed = self.region.borrow_mut().seal_heads();
        for (queue, s) in sealed {
            self.start_flush(queue, s.used as usize).await;
        }
        self.finish_flush().await;
        let (buf, objects) = {
            let region = self.region.borrow();
            let len = checkpoint::encoded_len(&region);
            if len as u64 > self.geo.meta_size {
                return Err(StoreError::CheckpointTooLarge {
                    needed: len as u64,
                    room: self.geo.meta_size,
                });
            }
            let mut buf = self
                .device
                .alloc((len as u64).div_ceil(4096) as usize * 4096);
            checkpoint::encode(&region, self.format_id, self.shard, buf.as_bytes_mut());
            (buf, region.index.len())
        };
        self.device.sync().await?;
        self.device
            .write(Rc::new(buf), self.geo.meta_offset(self.shard))
            .await?;
        self.device.sync().await?;
        Ok(objects)
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

    /// Body bytes per chunk of a large object (the same on every shard).
    pub fn chunk_size(&self) -> u64 {
        self.chunk as u64
    }

    /// Whether entries of this many bytes are kept in the RAM tier.
    pub fn ram_accepts(&self, len: usize) -> bool {
        self.ram.borrow().accepts(len)
    }

    fn buffered_segments(&self) -> Vec<SegmentId> {
        let b = self.buffers.borrow();
        b.open
            .iter()
            .flatten()
            .map(|o| o.segment)
            .chain(b.flushing.iter().map(|f| f.segment))
            .collect()
    }

    /// Finds a key hash and counts the access. The RAM tier answers first.
    pub fn lookup(&self, hash: u64) -> Lookup {
        let found = self.region.borrow_mut().index.lookup(hash);
        let in_ram = self.ram.borrow_mut().get(hash);
        if let Some((bytes, seq)) = in_ram {
            self.stats.ram_hits.fetch_add(1, Relaxed);
            let loc = found.unwrap_or(Location {
                slot: 0,
                offset: 0,
                len: bytes.len() as u32,
                manifest: false,
            });
            return Lookup::Found {
                loc,
                seq,
                bytes: Some(bytes),
                buffered: Vec::new(),
            };
        }
        let Some(loc) = found else {
            return Lookup::Miss;
        };
        let seq = self.region.borrow().seg(loc.slot).seq;
        let segment = SegmentId {
            slot: loc.slot,
            seq,
        };
        let bytes = self.read_buffered(segment, loc.offset, loc.len);
        if let Some(b) = &bytes {
            self.admit_buffered(hash, loc, seq, b);
        }
        Lookup::Found {
            loc,
            seq,
            bytes: bytes.map(EntryCopy::Copied),
            buffered: self.buffered_segments(),
        }
    }

    pub fn remove(&self, hash: u64) -> bool {
        self.ram.borrow_mut().remove(hash);
        self.region.borrow_mut().index.remove(hash).is_some()
    }

    /// Whether chunks of this many bytes (header included) may be held in
    /// the RAM tier.
    pub fn ram_accepts_chunk(&self, len: usize) -> bool {
        self.ram.borrow().accepts_chunk(len)
    }

    /// The chunk the RAM tier holds under `key` (`ram::chunk_key`), with
    /// its sequence number.
    pub fn ram_chunk(&self, key: u64) -> Option<(SharedChunk, u64)> {
        let found = self.ram.borrow_mut().get_chunk(key);
        if found.is_some() {
            self.stats.ram_hits.fetch_add(1, Relaxed);
            self.stats.ram_chunk_hits.fetch_add(1, Relaxed);
        }
        found
    }

    /// Offers a verified chunk just read from the device to the RAM tier
    /// (see `RamTier::offer_chunk`); the held bytes when it was let in.
    pub fn offer_ram_chunk(
        &self,
        key: u64,
        len: usize,
        seq: u64,
        bytes: impl FnOnce() -> Option<SharedChunk>,
    ) -> Option<SharedChunk> {
        let held = self.ram.borrow_mut().offer_chunk(key, len, seq, bytes);
        if held.is_some() {
            self.publish_ram_stats();
        }
        held
    }

    /// Keeps a verified entry read from the device in the RAM tier, if the
    /// index still holds that very copy.
    pub fn promote(&self, hash: u64, seq: u64, bytes: &[u8]) {
        let current = {
            let region = self.region.borrow();
            region
                .index
                .peek(hash)
                .is_some_and(|(loc, _)| region.seg(loc.slot).seq == seq)
        };
        if current {
            self.ram.borrow_mut().insert(hash, bytes, seq);
            self.publish_ram_stats();
        }
    }

    /// A copy of bytes from a segment still in memory, if it is.
    /// Whether `segment` may still be in place: false only when `owner` is
    /// this shard and its slot has since been rewritten under another
    /// sequence (another shard's region is not known here).
    pub fn holds_segment(&self, owner: u32, segment: SegmentId) -> bool {
        owner != self.shard || self.region.borrow().seg(segment.slot).seq == segment.seq
    }

    pub fn read_buffered(&self, segment: SegmentId, offset: u32, len: u32) -> Option<Vec<u8>> {
        let b = self.buffers.borrow();
        let range = offset as usize..offset as usize + len as usize;
        if let Some(o) = b.open.iter().flatten().find(|o| o.segment == segment) {
            return o.buf.as_bytes().get(range).map(<[u8]>::to_vec);
        }
        if let Some(f) = &b.flushing
            && f.segment == segment
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

    pub(super) fn publish_ram_stats(&self) {
        let s = self.ram.borrow().stats();
        self.stats.ram_objects.store(s.objects, Relaxed);
        self.stats.ram_bytes.store(s.bytes, Relaxed);
        self.stats.ram_chunks.store(s.chunks, Relaxed);
        self.stats.ram_chunk_bytes.store(s.chunk_bytes, Relaxed);
    }
}
