//! The slab store of one shard: an append-only log of entries in fixed-size
//! segments of the shard's region, written with O_DIRECT one whole segment at
//! a time, with the compact index and FIFO-with-reinsertion eviction of
//! `region`. The owner shard alone writes its region; any shard may read any
//! region through its own `Device`. Never blocks the executor: all device I/O
//! goes through glommio's io_uring.

pub mod device;
pub mod layout;
pub mod region;

use crate::cache::index::{EntryLayout, Index, Location, UNIT};
use device::{Device, Geometry, PreparedDevice};
use glommio::io::DmaBuffer;
use glommio::sync::Semaphore;
use glommio::task::JoinHandle;
use layout::{
    ChunkRef, ENTRY_HEADER_SIZE, EntryHeader, EntryKind, Queue, SEGMENT_HEADER_SIZE, SegmentHeader,
};
use region::{ReclaimPlan, Region};
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

struct Buffers {
    open: Option<(u32, u64, DmaBuffer)>,
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
                open: None,
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
            .map(|(s, q, _)| (*s, *q))
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
        if let Some((s, q, buf)) = &b.open
            && (*s, *q) == (slot, seq)
        {
            return buf.as_bytes().get(range).map(<[u8]>::to_vec);
        }
        if let Some(f) = &b.flushing
            && (f.slot, f.seq) == (slot, seq)
        {
            return f.buf.as_bytes().get(range).map(<[u8]>::to_vec);
        }
        None
    }

    /// Appends one entry to the log and returns where it went.
    async fn write_entry(
        &self,
        mut header: EntryHeader,
        payload: &[&[u8]],
    ) -> Result<Location, StoreError> {
        let alloc = round_up(header.total_len());
        if alloc > self.geo.segment_size - SEGMENT_HEADER_SIZE as u64 {
            return Err(StoreError::TooLarge);
        }
        let _permit = self
            .write_lock
            .acquire_permit(1)
            .await
            .map_err(|e| StoreError::Io(io::Error::other(e.to_string())))?;
        loop {
            let placed = self.region.borrow_mut().place(alloc);
            if let Some(p) = placed {
                header.seq = p.seq;
                let mut bufs = self.buffers.borrow_mut();
                let (_, _, buf) = bufs
                    .open
                    .as_mut()
                    .expect("placement implies an open segment");
                header.write_entry(&mut buf.as_bytes_mut()[p.offset as usize..], payload);
                self.stats.bytes_written.fetch_add(alloc, Relaxed);
                return Ok(Location {
                    slot: p.slot,
                    offset: p.offset,
                    len: alloc as u32,
                    manifest: header.kind == EntryKind::Manifest,
                });
            }
            self.rotate().await.map_err(StoreError::Io)?;
        }
    }

    /// Waits for the segment in flight to reach the device. A failed write
    /// unindexes everything in that segment: it must never be read.
    async fn finish_flush(&self) {
        let flushing = self.buffers.borrow_mut().flushing.take();
        let Some(mut f) = flushing else { return };
        let result = match f.task.take() {
            Some(t) => t
                .await
                .unwrap_or_else(|| Err(io::Error::other("flush task cancelled"))),
            None => Ok(()),
        };
        match result {
            Ok(()) => {
                self.stats.segments_written.fetch_add(1, Relaxed);
            }
            Err(e) => {
                tracing::error!(
                    shard = self.shard,
                    slot = f.slot,
                    "cache segment write failed: {e}"
                );
                self.stats.write_errors.fetch_add(1, Relaxed);
                self.region.borrow_mut().discard(f.slot);
            }
        }
        if let Ok(buf) = Rc::try_unwrap(f.buf) {
            let mut b = self.buffers.borrow_mut();
            if b.spare.is_empty() {
                b.spare.push(buf);
            }
        }
    }

    async fn rotate(&self) -> io::Result<()> {
        let used = self
            .region
            .borrow()
            .write_head()
            .map(|(_, _, cursor)| cursor);
        let rot = self.region.borrow_mut().rotate(Queue::Main);
        let mut sealed = self.buffers.borrow_mut().open.take();
        if let (Some((_, _, buf)), Some(used)) = (sealed.as_mut(), used) {
            // A reused buffer holds an older segment's bytes past the cursor;
            // zeros there end any scan of this segment cleanly.
            buf.as_bytes_mut()[used as usize..].fill(0);
        }
        self.finish_flush().await;
        if let Some((slot, seq, buf)) = sealed {
            debug_assert_eq!(Some(slot), rot.sealed);
            let buf = Rc::new(buf);
            let pos = self.geo.segment_offset(self.shard, slot);
            let device = self.device.clone();
            let data = buf.clone();
            let task = glommio::spawn_local(async move { device.write(data, pos).await }).detach();
            self.buffers.borrow_mut().flushing = Some(Flushing {
                slot,
                seq,
                buf,
                task: Some(task),
            });
        }
        let (slot, seq) = rot.opened;
        let spare = self.buffers.borrow_mut().spare.pop();
        let mut buf = spare.unwrap_or_else(|| self.device.alloc(self.geo.segment_size as usize));
        SegmentHeader {
            format_id: self.format_id,
            shard: self.shard,
            slot,
            seq,
            queue: Queue::Main,
        }
        .encode_into(buf.as_bytes_mut());
        self.buffers.borrow_mut().open = Some((slot, seq, buf));
        if let Some(plan) = rot.reclaim {
            self.reclaim(plan).await;
        }
        self.publish_region_stats();
        Ok(())
    }

    /// Copies the entries a reclaim kept into the open segment, then frees
    /// the slot. Entries that fail to read or verify are dropped.
    async fn reclaim(&self, plan: ReclaimPlan) {
        let base = self.geo.segment_offset(self.shard, plan.slot);
        let mut dropped = 0u64;
        for t in &plan.reinsert {
            let bytes = match self
                .device
                .read(base + t.loc.offset as u64, t.loc.len as usize)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(shard = self.shard, "cache read during reclaim failed: {e}");
                    self.stats.read_errors.fetch_add(1, Relaxed);
                    dropped += 1;
                    continue;
                }
            };
            let Some(mut header) = EntryHeader::verify(&bytes).filter(|h| h.seq == plan.seq) else {
                self.stats.checksum_failures.fetch_add(1, Relaxed);
                dropped += 1;
                continue;
            };
            let mut region = self.region.borrow_mut();
            let Some(p) = region.place(t.loc.len as u64) else {
                dropped += 1;
                continue;
            };
            header.seq = p.seq;
            let payload = &bytes[ENTRY_HEADER_SIZE..header.total_len() as usize];
            let mut bufs = self.buffers.borrow_mut();
            let (_, _, buf) = bufs.open.as_mut().expect("open segment during reclaim");
            header.write_entry(&mut buf.as_bytes_mut()[p.offset as usize..], &[payload]);
            let loc = Location {
                slot: p.slot,
                offset: p.offset,
                len: t.loc.len,
                manifest: t.loc.manifest,
            };
            region.reinsert(t, loc);
        }
        let mut region = self.region.borrow_mut();
        region.drop_reinsert(dropped);
        region.finish_reclaim(plan.slot);
    }

    fn publish_region_stats(&self) {
        let region = self.region.borrow();
        let s = region.stats();
        self.stats.reclaims.store(s.reclaims, Relaxed);
        self.stats.reinserted.store(s.reinserted, Relaxed);
        self.stats.evicted.store(s.evicted, Relaxed);
        self.stats.objects.store(region.index.len() as u64, Relaxed);
    }

    pub fn fill_begin(&self, id: FillId, meta: FillMeta) {
        let nonce = self.next_nonce.get();
        self.next_nonce.set(nonce.wrapping_add(1));
        let failed = meta.head.len() > MAX_HEAD || meta.key.len() > MAX_KEY;
        self.fills.borrow_mut().insert(
            id,
            FillState {
                meta,
                nonce,
                staged: Vec::new(),
                chunks: Vec::new(),
                total: 0,
                failed,
            },
        );
    }

    /// Takes the next piece of a fill's body. Full chunks go to the log at once,
    /// so a fill holds at most one chunk in memory.
    pub async fn fill_data(&self, id: FillId, data: &[u8]) {
        let Some(mut st) = self.fills.borrow_mut().remove(&id) else {
            return;
        };
        if st.failed {
            self.fills.borrow_mut().insert(id, st);
            return;
        }
        st.total += data.len() as u64;
        if st.total > self.max_object {
            st.failed = true;
            st.staged = Vec::new();
            self.fills.borrow_mut().insert(id, st);
            return;
        }
        st.staged.extend_from_slice(data);
        while st.staged.len() >= self.chunk && !st.failed {
            let rest = st.staged.split_off(self.chunk);
            let piece = std::mem::replace(&mut st.staged, rest);
            if let Err(e) = self.write_chunk(&mut st, &piece).await {
                tracing::warn!(shard = self.shard, "cache chunk write failed: {e}");
                st.failed = true;
            }
        }
        self.fills.borrow_mut().insert(id, st);
    }

    async fn write_chunk(&self, st: &mut FillState, data: &[u8]) -> Result<(), StoreError> {
        let header = EntryHeader {
            kind: EntryKind::Chunk,
            key_len: 0,
            head_len: 0,
            chunk_index: st.chunks.len() as u32,
            body_len: data.len() as u64,
            key_hash: st.meta.hash,
            seq: 0,
            born_ms: st.nonce,
            expires_ms: 0,
        };
        let loc = self.write_entry(header, &[data]).await?;
        let seq = self.region.borrow().seg(loc.slot).seq;
        self.region.borrow_mut().note_chunk(loc.slot, st.meta.hash);
        st.chunks.push(ChunkRef {
            slot: loc.slot,
            offset: loc.offset,
            len: loc.len,
            seq,
            data_len: data.len() as u32,
        });
        Ok(())
    }

    /// Ends a fill. Only a complete body is indexed; anything else leaves
    /// dead bytes that no index entry points at.
    pub async fn fill_end(&self, id: FillId, complete: bool) {
        let Some(mut st) = self.fills.borrow_mut().remove(&id) else {
            return;
        };
        if !complete || st.failed {
            self.stats.fills_abandoned.fetch_add(1, Relaxed);
            return;
        }
        let key = st.meta.key.clone();
        let head = std::mem::take(&mut st.meta.head);
        let result = if st.chunks.is_empty() {
            let header = EntryHeader {
                kind: EntryKind::Object,
                key_len: key.len() as u16,
                head_len: head.len() as u32,
                chunk_index: 0,
                body_len: st.staged.len() as u64,
                key_hash: st.meta.hash,
                seq: 0,
                born_ms: st.meta.born_ms,
                expires_ms: st.meta.expires_ms,
            };
            self.write_entry(header, &[key.as_bytes(), &head, &st.staged])
                .await
        } else {
            let last = std::mem::take(&mut st.staged);
            let tail = if last.is_empty() {
                Ok(())
            } else {
                self.write_chunk(&mut st, &last).await
            };
            match tail {
                Err(e) => Err(e),
                Ok(()) => {
                    let mut table =
                        Vec::with_capacity(16 + st.chunks.len() * layout::CHUNK_REF_SIZE);
                    ChunkRef::encode(&st.chunks, st.nonce, &mut table);
                    let header = EntryHeader {
                        kind: EntryKind::Manifest,
                        key_len: key.len() as u16,
                        head_len: head.len() as u32,
                        chunk_index: st.chunks.len() as u32,
                        body_len: st.total,
                        key_hash: st.meta.hash,
                        seq: 0,
                        born_ms: st.meta.born_ms,
                        expires_ms: st.meta.expires_ms,
                    };
                    self.write_entry(header, &[key.as_bytes(), &head, &table])
                        .await
                }
            }
        };
        match result {
            Ok(loc) => {
                self.region.borrow_mut().insert(st.meta.hash, loc);
                self.stats.fills_completed.fetch_add(1, Relaxed);
                self.publish_region_stats();
            }
            Err(e) => {
                tracing::warn!(shard = self.shard, "cache write failed: {e}");
                self.stats.fills_abandoned.fetch_add(1, Relaxed);
            }
        }
    }
}
