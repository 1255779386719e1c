//! Routing to a key's owner shard: lookups, hit reads, fills and request
//! coalescing for any key, whichever shard owns it. A key owned here is
//! served by the local store; a key owned elsewhere becomes a message to its
//! owner over the shard mesh, never a lock. Hit bytes are read through this
//! shard's own device handle and verified (sequence, checksum, full key)
//! before a single byte is served. A miss asks the owner whether to lead,
//! follow or fetch alone (`begin_fetch`); leads and followers are handles
//! whose drop tells the owner, so no waiter is left hanging.

use super::index::Location;
use super::key::CacheKey;
use super::store::device::{Device, DeviceBytes};
use super::store::inflight::{FetchRole, FollowInfo, LeadRef, Release};
use super::store::layout::{ChunkRef, ENTRY_HEADER_SIZE, EntryHeader, EntryKind};
use super::store::{FillId, FillMeta, FillRead, Lookup, RefreshBody, SegmentId, ShardStore};
use crate::runtime::mesh::ShardPeers;
use futures_channel::oneshot;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Tries of a device read before it counts as failed.
const READ_ATTEMPTS: u32 = 3;

/// Messages between shards. Replies travel on one-shot channels, so a shard
/// that handles a request never blocks on its peer's queue.
pub enum OwnerMsg {
    Lookup {
        hash: u64,
        reply: oneshot::Sender<Lookup>,
    },
    ReadBuffered {
        segment: SegmentId,
        offset: u32,
        len: u32,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    Remove {
        hash: u64,
    },
    /// A small entry read from the device, for the owner's RAM tier.
    Promote {
        hash: u64,
        seq: u64,
        bytes: Vec<u8>,
    },
    FillBegin {
        id: FillId,
        meta: FillMeta,
        /// The lead this fill answers, when the fetch led.
        lead: Option<LeadRef>,
    },
    BeginFetch {
        hash: u64,
        seen: Option<Location>,
        wait: bool,
        reply: oneshot::Sender<FetchRole>,
    },
    Refresh {
        meta: FillMeta,
        expect: Location,
        body: RefreshBody,
        reply: oneshot::Sender<bool>,
    },
    ReleaseLead {
        hash: u64,
        lead: u64,
        how: Release,
    },
    FillRead {
        id: FillId,
        offset: u64,
        reply: oneshot::Sender<FillRead>,
    },
    FillDetach {
        id: FillId,
    },
    FillData {
        id: FillId,
        data: Vec<u8>,
    },
    FillEnd {
        id: FillId,
        complete: bool,
        /// Answered once the object is indexed (or dropped).
        done: Option<oneshot::Sender<()>>,
    },
}

/// Bytes of an entry: copied from a segment buffer or read from the device.
pub enum EntryBytes {
    Mem(Vec<u8>),
    Dev(DeviceBytes),
}

impl std::ops::Deref for EntryBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            EntryBytes::Mem(v) => v,
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

/// A verified object or manifest entry.
pub struct StoredEntry {
    pub header: EntryHeader,
    bytes: EntryBytes,
}

impl StoredEntry {
    fn parse(bytes: EntryBytes, seq: u64, key: &CacheKey) -> Result<StoredEntry, ReadFailure> {
        let Some(header) = EntryHeader::verify(&bytes) else {
            return Err(match EntryHeader::decode_header(&bytes) {
                Some(h) if h.seq != seq => ReadFailure::Overwritten,
                _ => ReadFailure::Corrupt,
            });
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
}

/// One shard's way to the cache: every call goes to the key's owner shard,
/// here or over the mesh.
pub struct OwnerRouter {
    pub shard: u32,
    pub shards: u32,
    store: Rc<ShardStore>,
    device: Rc<Device>,
    mesh: Option<Rc<ShardPeers<OwnerMsg>>>,
    next_fill: Cell<u64>,
    stats: Arc<CacheStats>,
}

/// Read-side counters, per shard.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub remote_lookups: std::sync::atomic::AtomicU64,
    pub read_failures: std::sync::atomic::AtomicU64,
    /// Hit reads that went to the device (RAM and buffer hits do not).
    pub device_reads: std::sync::atomic::AtomicU64,
}

impl OwnerRouter {
    pub fn new(
        store: Rc<ShardStore>,
        mesh: Option<Rc<ShardPeers<OwnerMsg>>>,
        shard: u32,
        shards: u32,
        stats: Arc<CacheStats>,
    ) -> Self {
        OwnerRouter {
            shard,
            shards,
            device: store.device(),
            store,
            mesh,
            next_fill: Cell::new(0),
            stats,
        }
    }

    pub fn store(&self) -> &Rc<ShardStore> {
        &self.store
    }

    pub fn max_object(&self) -> u64 {
        self.store.max_object()
    }

    fn owner(&self, key: &CacheKey) -> u32 {
        key.owner(self.shards as usize) as u32
    }

    async fn send(&self, to: u32, msg: OwnerMsg) -> bool {
        match &self.mesh {
            Some(m) => m.send_to(to, msg).await,
            None => false,
        }
    }

    pub async fn lookup(&self, key: &CacheKey) -> Lookup {
        let owner = self.owner(key);
        if owner == self.shard {
            return self.store.lookup(key.hash());
        }
        self.stats.remote_lookups.fetch_add(1, Relaxed);
        let (tx, rx) = oneshot::channel();
        if !self
            .send(
                owner,
                OwnerMsg::Lookup {
                    hash: key.hash(),
                    reply: tx,
                },
            )
            .await
        {
            return Lookup::Miss;
        }
        rx.await.unwrap_or(Lookup::Miss)
    }

    pub async fn remove(&self, key: &CacheKey) {
        let owner = self.owner(key);
        if owner == self.shard {
            self.store.remove(key.hash());
        } else {
            self.send(owner, OwnerMsg::Remove { hash: key.hash() })
                .await;
        }
    }

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

    async fn read_bytes(
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
            return Ok(EntryBytes::Mem(b));
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

    /// Reads and verifies the entry a lookup found.
    pub async fn read_entry(
        &self,
        key: &CacheKey,
        loc: Location,
        seq: u64,
        bytes: Option<Vec<u8>>,
        buffered: &[SegmentId],
    ) -> Result<StoredEntry, ReadFailure> {
        let owner = self.owner(key);
        let segment = SegmentId {
            slot: loc.slot,
            seq,
        };
        let raw = match bytes {
            Some(b) => EntryBytes::Mem(b),
            None => {
                self.read_bytes(owner, segment, loc.offset, loc.len, buffered)
                    .await?
            }
        };
        StoredEntry::parse(raw, seq, key).inspect_err(|&f| self.note_failure(f))
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
    /// `owner`.
    async fn read_chunk_of(
        &self,
        owner: u32,
        hash: u64,
        fill_id: u64,
        index: u32,
        c: &ChunkRef,
        buffered: &[SegmentId],
    ) -> Result<StoredChunk, ReadFailure> {
        let raw = self
            .read_bytes(owner, c.segment(), c.offset, c.len, buffered)
            .await?;
        let check = || {
            let h = EntryHeader::verify(&raw).ok_or(ReadFailure::Corrupt)?;
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
        };
        match check() {
            Ok(len) => Ok(StoredChunk { bytes: raw, len }),
            Err(f) => {
                self.note_failure(f);
                Err(f)
            }
        }
    }

    /// Starts storing a response; the handle carries its body to the owner.
    /// With the lead of a coalesced fetch, the misses waiting on it follow,
    /// also when the lead was given for another key of the same URL (its
    /// variant, or its own key): such keys share their owner.
    pub async fn fill(
        &self,
        key: &CacheKey,
        meta: FillMeta,
        lead: Option<LeadTicket<'_>>,
    ) -> FillHandle<'_> {
        let n = self.next_fill.get();
        self.next_fill.set(n + 1);
        let id = FillId {
            from: self.shard,
            n,
        };
        let owner = self.owner(key);
        debug_assert!(lead.as_ref().is_none_or(|l| l.owner == owner));
        let lead = lead.map(LeadTicket::into_filled);
        if owner == self.shard {
            self.store.fill_begin(id, meta, lead);
        } else {
            self.send(owner, OwnerMsg::FillBegin { id, meta, lead })
                .await;
        }
        FillHandle {
            router: self,
            owner,
            id,
            ended: false,
        }
    }

    /// A miss for `key` asks its owner what to do: lead the fetch, follow
    /// one under way, or fetch alone. `seen` is where the lookup found the
    /// (stale) copy, if it found one. Waiting for a leader's head is bounded
    /// by `wait`; past it the miss fetches alone.
    pub async fn begin_fetch(
        &self,
        key: &CacheKey,
        seen: Option<Location>,
        wait: Duration,
    ) -> Fetch<'_> {
        self.ask_to_fetch(key, seen, Some(wait)).await
    }

    /// Leads a fetch of `key` only if none is under way (a background
    /// revalidation): `Fetch::Busy` otherwise, at once.
    pub async fn lead_if_idle(&self, key: &CacheKey, seen: Option<Location>) -> Fetch<'_> {
        self.ask_to_fetch(key, seen, None).await
    }

    async fn ask_to_fetch(
        &self,
        key: &CacheKey,
        seen: Option<Location>,
        wait: Option<Duration>,
    ) -> Fetch<'_> {
        let owner = self.owner(key);
        let hash = key.hash();
        let (reply, rx) = oneshot::channel();
        let parks = wait.is_some();
        if owner == self.shard {
            self.store.begin_fetch(hash, seen, parks, reply);
        } else if !self
            .send(
                owner,
                OwnerMsg::BeginFetch {
                    hash,
                    seen,
                    wait: parks,
                    reply,
                },
            )
            .await
        {
            return Fetch::Alone;
        }
        let wait = wait.unwrap_or(Duration::ZERO).max(Duration::from_millis(1));
        let timeout = async {
            crate::runtime::task::sleep(wait).await;
            Err(oneshot::Canceled)
        };
        let role = futures_lite::future::or(rx, timeout).await;
        match role {
            Ok(FetchRole::Lead(lead)) => Fetch::Lead(LeadTicket {
                router: self,
                owner,
                hash,
                lead,
                done: false,
            }),
            Ok(FetchRole::Follow(info)) => Fetch::Follow(FillReader {
                router: self,
                owner,
                offset: 0,
                info,
            }),
            Ok(FetchRole::Retry) => Fetch::Retry,
            Ok(FetchRole::Stored) => Fetch::Stored,
            Ok(FetchRole::Alone) => Fetch::Alone,
            Ok(FetchRole::Busy) => Fetch::Busy,
            // The owner did not answer in time (a follow handed out after
            // this is dropped by the owner's idle pruning).
            Err(_) => Fetch::TimedOut,
        }
    }

    async fn fill_read(&self, owner: u32, id: FillId, offset: u64) -> FillRead {
        let (reply, rx) = oneshot::channel();
        if owner == self.shard {
            self.store.fill_read(id, offset, reply);
        } else if !self
            .send(owner, OwnerMsg::FillRead { id, offset, reply })
            .await
        {
            return FillRead::Gone;
        }
        rx.await.unwrap_or(FillRead::Gone)
    }

    /// Stores a revalidated response with the body already stored (see
    /// `ShardStore::refresh`). Returns whether the stored copy was replaced.
    pub async fn refresh(
        &self,
        key: &CacheKey,
        meta: FillMeta,
        expect: Location,
        body: RefreshBody,
    ) -> bool {
        let owner = self.owner(key);
        if owner == self.shard {
            return self.store.refresh(meta, expect, body).await;
        }
        let (reply, rx) = oneshot::channel();
        let msg = OwnerMsg::Refresh {
            meta,
            expect,
            body,
            reply,
        };
        self.send(owner, msg).await && rx.await.unwrap_or(false)
    }

    /// Serves a message from another shard. Fill messages are handled in
    /// arrival order (the caller awaits each), the rest answer at once.
    pub async fn handle(&self, msg: OwnerMsg) {
        match msg {
            OwnerMsg::Lookup { hash, reply } => {
                let _ = reply.send(self.store.lookup(hash));
            }
            OwnerMsg::ReadBuffered {
                segment,
                offset,
                len,
                reply,
            } => {
                let _ = reply.send(self.store.read_buffered(segment, offset, len));
            }
            OwnerMsg::Remove { hash } => {
                self.store.remove(hash);
            }
            OwnerMsg::Promote { hash, seq, bytes } => self.store.promote(hash, seq, bytes),
            OwnerMsg::FillBegin { id, meta, lead } => self.store.fill_begin(id, meta, lead),
            OwnerMsg::BeginFetch {
                hash,
                seen,
                wait,
                reply,
            } => self.store.begin_fetch(hash, seen, wait, reply),
            OwnerMsg::Refresh {
                meta,
                expect,
                body,
                reply,
            } => {
                let _ = reply.send(self.store.refresh(meta, expect, body).await);
            }
            OwnerMsg::ReleaseLead { hash, lead, how } => self.store.release_lead(hash, lead, how),
            OwnerMsg::FillRead { id, offset, reply } => self.store.fill_read(id, offset, reply),
            OwnerMsg::FillDetach { id } => self.store.fill_detach(id),
            OwnerMsg::FillData { id, data } => self.store.fill_data(id, &data).await,
            OwnerMsg::FillEnd { id, complete, done } => {
                self.store.fill_end(id, complete).await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        }
    }
}

/// The writing end of one fill. Dropping it without `finish(true)` abandons
/// the fill: nothing of it is ever indexed.
pub struct FillHandle<'a> {
    router: &'a OwnerRouter,
    owner: u32,
    id: FillId,
    ended: bool,
}

impl FillHandle<'_> {
    pub async fn data(&self, data: &[u8]) {
        if self.owner == self.router.shard {
            self.router.store.fill_data(self.id, data).await;
        } else {
            let msg = OwnerMsg::FillData {
                id: self.id,
                data: data.to_vec(),
            };
            self.router.send(self.owner, msg).await;
        }
    }

    /// Ends the fill. Returns once the owner has indexed the object (or
    /// dropped it), so a viewer told the response is complete finds it stored.
    pub async fn finish(mut self, complete: bool) {
        self.ended = true;
        if self.owner == self.router.shard {
            self.router.store.fill_end(self.id, complete).await;
        } else {
            let (tx, rx) = oneshot::channel();
            let msg = OwnerMsg::FillEnd {
                id: self.id,
                complete,
                done: Some(tx),
            };
            if self.router.send(self.owner, msg).await {
                let _ = rx.await;
            }
        }
    }
}

impl Drop for FillHandle<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Cancelled mid-fill (viewer gone, task dropped): tell the owner
        // without waiting, so its staged bytes are released.
        if self.owner == self.router.shard {
            let store = self.router.store.clone();
            let id = self.id;
            crate::runtime::task::spawn_detached(async move { store.fill_end(id, false).await });
        } else if let Some(m) = &self.router.mesh {
            let _ = m.try_send_to(
                self.owner,
                OwnerMsg::FillEnd {
                    id: self.id,
                    complete: false,
                    done: None,
                },
            );
        }
    }
}

/// What a miss does, with the handle it needs.
pub enum Fetch<'a> {
    /// Fetch from the origin; fill with this ticket or release it.
    Lead(LeadTicket<'a>),
    /// Read another request's fill as it grows.
    Follow(FillReader<'a>),
    /// Fetch from the origin without coalescing: the key was just found
    /// uncacheable (hit-for-pass).
    Alone,
    /// No answer from the owner in time: fetch without coalescing.
    TimedOut,
    /// A fetch is under way (asked with `lead_if_idle`).
    Busy,
    /// The leader failed: ask again.
    Retry,
    /// A newer copy was indexed: look it up again.
    Stored,
}

/// The right (and duty) to fetch a key for every miss waiting on it. Hand
/// it to `fill`, or `release` it; dropped, it releases as failed, so the
/// waiters ask again rather than hang.
pub struct LeadTicket<'a> {
    router: &'a OwnerRouter,
    owner: u32,
    hash: u64,
    lead: u64,
    done: bool,
}

impl LeadTicket<'_> {
    /// The lead a fill carries to its owner.
    fn into_filled(mut self) -> LeadRef {
        self.done = true;
        LeadRef {
            hash: self.hash,
            lead: self.lead,
        }
    }

    /// Ends the lead without a fill.
    pub async fn release(mut self, how: Release) {
        self.done = true;
        let (hash, lead) = (self.hash, self.lead);
        if self.owner == self.router.shard {
            self.router.store.release_lead(hash, lead, how);
        } else {
            self.router
                .send(self.owner, OwnerMsg::ReleaseLead { hash, lead, how })
                .await;
        }
    }
}

impl Drop for LeadTicket<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (hash, lead, how) = (self.hash, self.lead, Release::Failed);
        if self.owner == self.router.shard {
            self.router.store.release_lead(hash, lead, how);
        } else if let Some(m) = &self.router.mesh {
            // A full queue loses this message; the owner then replaces the
            // lead once it is older than `inflight::LEAD_TIMEOUT`.
            let _ = m.try_send_to(self.owner, OwnerMsg::ReleaseLead { hash, lead, how });
        }
    }
}

/// Why a follower could not go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowFailure {
    /// The fill ended short (the origin cut the body) or was not kept.
    Truncated,
    /// The fill is gone, or a chunk of it could not be read.
    Unreadable,
}

/// A piece of a followed fill.
pub enum FollowPiece {
    Mem(Vec<u8>),
    Chunk { chunk: StoredChunk, skip: usize },
}

impl FollowPiece {
    pub fn data(&self) -> &[u8] {
        match self {
            FollowPiece::Mem(v) => v,
            FollowPiece::Chunk { chunk, skip } => &chunk.data()[*skip..],
        }
    }
}

/// Reads another request's fill from the start, as it grows. Dropping it
/// tells the owner this follower left.
pub struct FillReader<'a> {
    router: &'a OwnerRouter,
    owner: u32,
    offset: u64,
    info: FollowInfo,
}

impl FillReader<'_> {
    /// The stored head and freshness of what is being filled.
    pub fn info(&self) -> &FollowInfo {
        &self.info
    }

    /// Where the next read starts (body bytes from the start).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Starts reading at `offset` instead of where the reader is: a
    /// follower that wants one range skips what comes before it.
    pub fn seek(&mut self, offset: u64) {
        self.offset = offset;
    }

    /// The next piece of the body, `None` once it ended whole. Waits for the
    /// origin's next bytes at most `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<FollowPiece>, FollowFailure> {
        let read = self
            .router
            .fill_read(self.owner, self.info.fill, self.offset);
        let timeout = async {
            crate::runtime::task::sleep(wait).await;
            FillRead::Gone
        };
        let piece = match futures_lite::future::or(read, timeout).await {
            FillRead::Bytes(b) => FollowPiece::Mem(b),
            FillRead::Chunk {
                index,
                chunk,
                nonce,
                buffered,
            } => {
                let start = index as u64 * self.router.store.chunk_size();
                let stored = self
                    .router
                    .read_chunk_of(self.owner, self.info.hash, nonce, index, &chunk, &buffered)
                    .await
                    .map_err(|_| FollowFailure::Unreadable)?;
                let skip = (self.offset - start) as usize;
                if skip >= stored.data().len() {
                    return Err(FollowFailure::Unreadable);
                }
                FollowPiece::Chunk {
                    chunk: stored,
                    skip,
                }
            }
            FillRead::End { complete, total } => {
                return if complete && total == self.offset {
                    Ok(None)
                } else {
                    Err(FollowFailure::Truncated)
                };
            }
            FillRead::Gone => return Err(FollowFailure::Unreadable),
        };
        self.offset += piece.data().len() as u64;
        Ok(Some(piece))
    }
}

impl Drop for FillReader<'_> {
    fn drop(&mut self) {
        let id = self.info.fill;
        if self.owner == self.router.shard {
            self.router.store.fill_detach(id);
        } else if let Some(m) = &self.router.mesh {
            let _ = m.try_send_to(self.owner, OwnerMsg::FillDetach { id });
        }
    }
}
