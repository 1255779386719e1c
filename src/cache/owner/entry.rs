//! Reading cache entries for a key, wherever its owner is: the entry's
//! bytes come from a segment buffer (asked of the owner) or from the device
//! through this shard's own handle, and are verified — sequence, checksum,
//! full key — before anything is served. A failure is a `ReadFailure`, which
//! callers turn into a miss.

use super::{OwnerMsg, OwnerRouter};
use crate::cache::index::Location;
use crate::cache::key::CacheKey;
use crate::cache::ram::{ChunkBytes, EntryCopy, chunk_key};
use crate::cache::store::SegmentId;
use crate::cache::store::device::DeviceBytes;
use crate::cache::store::layout::{ChunkRef, ENTRY_HEADER_SIZE, EntryHeader, EntryKind};
use futures_channel::oneshot;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// Tries of a device read before it counts as failed.
const READ_ATTEMPTS: u32 = 3;

/// Bytes of an entry: in memory (copied from a segment buffer, or the RAM
/// tier's), or read from the device.
pub enum EntryBytes {
    Mem(EntryCopy),
    Dev(DeviceBytes),
}

impl EntryBytes {
    /// The file holding these bytes from its start, when they are the RAM
    /// tier's in a file of their own (see `cache::lend`).
    fn file(&self) -> Option<std::os::fd::RawFd> {
        match self {
            EntryBytes::Mem(EntryCopy::Shared(held)) => held.file(),
            _ => None,
        }
    }
}

impl std::ops::Deref for EntryBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            EntryBytes::Mem(b) => b,
            EntryBytes::Dev(r) => r,
        }
    }
}

/// Why a hit could not be served; each becomes a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFailure {
    /// I/O error from the device.
    Io,
    /// Checksum, magic or length wrong: torn or corrupt bytes.
    Corrupt,
    /// The segment was rewritten since the lookup.
    Overwritten,
    /// Same hash, different key.
    OtherKey,
}

/// Whether an entry's checksum is computed on this read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checksum {
    /// Bytes from the device or a segment buffer: hashed and compared.
    Verify,
    /// A RAM tier copy: verified when it was let in (read from the device,
    /// or written by this process), so a hit does not hash the whole body
    /// again; the header, length, sequence and key are still checked.
    Verified,
}

/// A verified object or manifest entry.
pub struct StoredEntry {
    pub header: EntryHeader,
    bytes: EntryBytes,
}

impl StoredEntry {
    fn parse(
        bytes: EntryBytes,
        seq: u64,
        key: &CacheKey,
        sum: Checksum,
    ) -> Result<StoredEntry, ReadFailure> {
        let header = match sum {
            Checksum::Verify => EntryHeader::verify(&bytes),
            Checksum::Verified => EntryHeader::decode_whole(&bytes),
        };
        let Some(header) = header else {
            return Err(unverified(&bytes, seq));
        };
        if header.seq != seq {
            return Err(ReadFailure::Overwritten);
        }
        if header.kind == EntryKind::Chunk {
            return Err(ReadFailure::Corrupt);
        }
        let key_end = ENTRY_HEADER_SIZE + header.key_len as usize;
        if header.key_hash != key.hash()
            || &bytes[ENTRY_HEADER_SIZE..key_end] != key.as_str().as_bytes()
        {
            return Err(ReadFailure::OtherKey);
        }
        Ok(StoredEntry { header, bytes })
    }

    fn head_range(&self) -> std::ops::Range<usize> {
        let start = ENTRY_HEADER_SIZE + self.header.key_len as usize;
        start..start + self.header.head_len as usize
    }

    /// The stored response head, encoded as it is served.
    pub fn head(&self) -> &[u8] {
        &self.bytes[self.head_range()]
    }

    /// The whole body of a small object; None for a manifest.
    pub fn inline_body(&self) -> Option<&[u8]> {
        (self.header.kind == EntryKind::Object).then(|| {
            let start = self.head_range().end;
            &self.bytes[start..start + self.header.body_len as usize]
        })
    }

    /// A manifest's fill id and chunk list.
    pub fn chunks(&self) -> Option<(u64, Vec<ChunkRef>)> {
        if self.header.kind != EntryKind::Manifest {
            return None;
        }
        let start = self.head_range().end;
        ChunkRef::decode(&self.bytes[start..self.header.total_len() as usize])
    }

    /// The file whose pages hold `inline_body()`, and where in it the body
    /// starts, when the RAM tier holds the entry in a file of its own.
    pub fn inline_body_file(&self) -> Option<(std::os::fd::RawFd, u64)> {
        let fd = self.bytes.file()?;
        (self.header.kind == EntryKind::Object).then(|| (fd, self.head_range().end as u64))
    }

    pub fn body_len(&self) -> u64 {
        self.header.body_len
    }
}

/// A verified chunk of a large object.
pub struct StoredChunk {
    bytes: EntryBytes,
    len: usize,
}

impl StoredChunk {
    pub fn data(&self) -> &[u8] {
        &self.bytes[ENTRY_HEADER_SIZE..ENTRY_HEADER_SIZE + self.len]
    }

    /// The file whose pages hold `data()`, and where in it `data()` starts,
    /// when the chunk is one the RAM tier holds in a file of its own.
    pub fn file(&self) -> Option<(std::os::fd::RawFd, u64)> {
        self.bytes.file().map(|fd| (fd, ENTRY_HEADER_SIZE as u64))
    }
}

impl OwnerRouter {
    async fn read_buffered(
        &self,
        owner: u32,
        segment: SegmentId,
        offset: u32,
        len: u32,
    ) -> Option<Vec<u8>> {
        if owner == self.shard {
            return self.store.read_buffered(segment, offset, len);
        }
        let (reply, rx) = oneshot::channel();
        let msg = OwnerMsg::ReadBuffered {
            segment,
            offset,
            len,
            reply,
        };
        if !self.send(owner, msg).await {
            return None;
        }
        rx.await.ok().flatten()
    }

    pub(super) async fn read_bytes(
        &self,
        owner: u32,
        segment: SegmentId,
        offset: u32,
        len: u32,
        buffered: &[SegmentId],
    ) -> Result<EntryBytes, ReadFailure> {
        if buffered.contains(&segment)
            && let Some(b) = self.read_buffered(owner, segment, offset, len).await
        {
            return Ok(EntryBytes::Mem(EntryCopy::Copied(b)));
        }
        let pos = self.store.geometry().segment_offset(owner, segment.slot) + offset as u64;
        // An I/O error is tried again (it may pass); one that persists makes
        // the read fail, which callers turn into a miss.
        for attempt in 0..READ_ATTEMPTS {
            self.stats.device_reads.fetch_add(1, Relaxed);
            match self.device.read(pos, len as usize).await {
                Ok(r) => return Ok(EntryBytes::Dev(r)),
                Err(e) => {
                    crate::warn_limited!(
                        shard = self.shard,
                        attempt,
                        "cache read failed at {pos}: {e}"
                    );
                    self.stats.read_failures.fetch_add(1, Relaxed);
                }
            }
        }
        Err(ReadFailure::Io)
    }

    fn note_failure(&self, f: ReadFailure) {
        self.stats.read_failures.fetch_add(1, Relaxed);
        if f == ReadFailure::Corrupt {
            crate::warn_limited!(shard = self.shard, "corrupt cache entry ignored");
        }
    }

    /// Reads and verifies the entry a lookup found (`bytes`: the RAM tier's
    /// copy, when it holds one).
    pub async fn read_entry(
        &self,
        key: &CacheKey,
        loc: Location,
        seq: u64,
        bytes: Option<EntryCopy>,
        buffered: &[SegmentId],
    ) -> Result<StoredEntry, ReadFailure> {
        let owner = self.owner(key);
        let segment = SegmentId {
            slot: loc.slot,
            seq,
        };
        let (raw, sum) = match bytes {
            Some(b) => (EntryBytes::Mem(b), Checksum::Verified),
            None => {
                let read = self
                    .read_bytes(owner, segment, loc.offset, loc.len, buffered)
                    .await?;
                (read, Checksum::Verify)
            }
        };
        let from_device = matches!(raw, EntryBytes::Dev(_));
        let entry =
            StoredEntry::parse(raw, seq, key, sum).inspect_err(|&f| self.note_failure(f))?;
        if from_device {
            self.promote(owner, key.hash(), seq, &entry.bytes);
        }
        Ok(entry)
    }

    /// Offers an entry read from the device to its owner's RAM tier, so a
    /// hot small object stops costing a device read. Never waits: when the
    /// owner's queue is full, the copy is dropped.
    fn promote(&self, owner: u32, hash: u64, seq: u64, bytes: &[u8]) {
        if !self.store.ram_accepts(bytes.len()) {
            return;
        }
        if owner == self.shard {
            self.store.promote(hash, seq, bytes);
        } else if let Some(mesh) = &self.mesh {
            let bytes = bytes.to_vec();
            mesh.try_send_to(owner, OwnerMsg::Promote { hash, seq, bytes });
        }
    }

    /// Reads and verifies one chunk of a large object.
    pub async fn read_chunk(
        &self,
        key: &CacheKey,
        fill_id: u64,
        index: u32,
        c: &ChunkRef,
        buffered: &[SegmentId],
    ) -> Result<StoredChunk, ReadFailure> {
        let owner = self.owner(key);
        self.read_chunk_of(owner, key.hash(), fill_id, index, c, buffered)
            .await
    }

    /// Reads and verifies one chunk of the object stored under `hash` at
    /// `owner`: from this shard's RAM tier when it holds the chunk, else
    /// from the owner's segment buffer or the device. A chunk read so is
    /// offered to the RAM tier, which keeps it from its object's second
    /// request on (see `RamTier::saw_chunk`).
    pub(super) async fn read_chunk_of(
        &self,
        owner: u32,
        hash: u64,
        fill_id: u64,
        index: u32,
        c: &ChunkRef,
        buffered: &[SegmentId],
    ) -> Result<StoredChunk, ReadFailure> {
        let ram_key = chunk_key(hash, fill_id, index);
        if let Some((held, seq)) = self.store.ram_chunk(ram_key)
            && seq == c.seq
        {
            // Verified when it was let in; the header still has to name
            // this very chunk (the RAM key is a hash of its name).
            if let Some(len) = EntryHeader::decode_header(&held)
                .and_then(|h| chunk_is(&h, c, hash, fill_id, index).ok())
            {
                return Ok(StoredChunk {
                    bytes: EntryBytes::Mem(EntryCopy::Shared(held)),
                    len,
                });
            }
        }
        let raw = self
            .read_bytes(owner, c.segment(), c.offset, c.len, buffered)
            .await?;
        let checked = match EntryHeader::verify(&raw) {
            Some(h) => chunk_is(&h, c, hash, fill_id, index),
            None => Err(unverified(&raw, c.seq)),
        };
        let len = match checked {
            // A reclaim of this shard's own region may have rewritten the
            // segment since the manifest was read, leaving other bytes
            // where the chunk was: not corruption.
            Err(ReadFailure::Corrupt) if !self.store.holds_segment(owner, c.segment()) => {
                self.note_failure(ReadFailure::Overwritten);
                return Err(ReadFailure::Overwritten);
            }
            Ok(len) => len,
            Err(f) => {
                self.note_failure(f);
                return Err(f);
            }
        };
        let bytes = match self.store.offer_ram_chunk(ram_key, raw.len(), c.seq, || {
            ChunkBytes::lendable_copy_of(&raw).map(Arc::new)
        }) {
            Some(held) => EntryBytes::Mem(EntryCopy::Shared(held)),
            None => raw,
        };
        Ok(StoredChunk { bytes, len })
    }
}

/// Why bytes read where an entry of segment sequence `seq` should be do
/// not verify: another entry's header (the slot was rewritten since) or
/// anything else (corrupt).
fn unverified(bytes: &[u8], seq: u64) -> ReadFailure {
    match EntryHeader::decode_header(bytes) {
        Some(h) if h.seq != seq => ReadFailure::Overwritten,
        _ => ReadFailure::Corrupt,
    }
}

/// Checks that a verified header is chunk `index` of fill `fill_id` of the
/// object under `hash`, as `c` lists it; its body length if so.
fn chunk_is(
    h: &EntryHeader,
    c: &ChunkRef,
    hash: u64,
    fill_id: u64,
    index: u32,
) -> Result<usize, ReadFailure> {
    if h.seq != c.seq {
        return Err(ReadFailure::Overwritten);
    }
    let mine = h.kind == EntryKind::Chunk
        && h.key_hash == hash
        && h.born_ms == fill_id
        && h.chunk_index == index
        && h.body_len == c.data_len as u64;
    if !mine {
        return Err(ReadFailure::OtherKey);
    }
    Ok(h.body_len as usize)
}
