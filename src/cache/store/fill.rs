//! Fills: a response body arriving in pieces (from this shard or, by
//! message, from another) becomes one entry, or for a large object a run of
//! chunk entries and a manifest; a `Vary` variant is followed by its URL's
//! marker when asked. Only a complete body is ever indexed. A fill's
//! chunks are written by a task of its own, so taking a piece does not wait
//! for the device; it holds at most `MAX_STAGED_CHUNKS` full chunks in
//! memory (plus the one being written and the one filling), and waits for
//! its writer beyond that. Each piece's bytes are copied once, into the
//! chunk they belong to; a full chunk then goes to the writer as it is.
//!
//! While a fill grows, followers read it (`follow`); a fill therefore keeps
//! its state — staged bytes, the chunk being written, the chunks written —
//! where they can see it, and stays until its last follower leaves.

use super::follow::FillRead;
use super::inflight::{FollowInfo, LeadRef};
use super::layout::{self, ChunkRef, EntryHeader, EntryKind, Queue};
use super::{FillId, FillMeta, MAX_HEAD, MAX_KEY, SegmentId, ShardStore, StoreError, VariantMeta};
use crate::cache::index::Location;
use crate::cache::ram::chunk_key;
use futures_channel::oneshot;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Full chunks a fill may have staged, waiting for its writer, before the
/// next piece waits for the writer: the bound on a fill's memory when the
/// device is slower than its origin.
const MAX_STAGED_CHUNKS: usize = 8;

/// A body this long or shorter grows its buffer as it comes; past it, the
/// buffer takes its whole chunk at once.
const STAGE_SMALL: usize = 64 << 10;

/// A fill that hears nothing for this long lost its sender.
const FILL_IDLE_LIMIT: Duration = Duration::from_secs(300);

/// An ended fill that no follower has read for this long is dropped, even
/// if a follower never said it left.
const ENDED_LINGER: Duration = Duration::from_secs(30);

/// A fill in progress (or ended and still read by followers).
pub(super) struct FillState {
    pub(super) meta: FillMeta,
    /// The key hash of the lead this fill answers, when it is not the
    /// fill's own (see `inflight::LeadRef`).
    pub(super) lead_hash: Option<u64>,
    pub(super) nonce: u64,
    /// Full chunks waiting for the writer, in order.
    pub(super) full: VecDeque<Rc<Vec<u8>>>,
    /// Bytes after the last full chunk (fewer than a chunk); shared (not
    /// copied) with the write of the final entry.
    pub(super) staged: Rc<Vec<u8>>,
    /// A full chunk on its way to the log; read from here until listed.
    pub(super) writing: Option<Rc<Vec<u8>>>,
    pub(super) chunks: Vec<ChunkRef>,
    pub(super) total: u64,
    /// The body exceeded what may be stored, or a write failed: nothing
    /// more is kept and followers are cut off.
    pub(super) failed: bool,
    /// Set when the fill ended: whether its body arrived whole and is
    /// readable in full.
    pub(super) ended: Option<bool>,
    pub(super) followers: u32,
    /// Followers waiting for bytes past the end: (offset, reply).
    pub(super) waiters: Vec<(u64, oneshot::Sender<FillRead>)>,
    /// Last time a piece arrived or a follower read.
    pub(super) touched: Instant,
    /// A writer task is writing the staged full chunks.
    pub(super) writer: bool,
    /// Told when the writer stops (`fill_end` waits for it).
    pub(super) writer_done: Vec<oneshot::Sender<()>>,
    /// Told when the writer has written a chunk (`fill_data` waits for it
    /// when the fill is too far behind).
    pub(super) room_waiters: Vec<oneshot::Sender<()>>,
}

impl FillState {
    fn fail(&mut self) {
        self.failed = true;
        self.full.clear();
        self.staged = Rc::new(Vec::new());
    }

    /// Adds a piece of the body: into the chunk filling, which joins the
    /// full ones when it is `chunk` bytes long.
    fn stage(&mut self, mut data: &[u8], chunk: usize) {
        while !data.is_empty() {
            let staged = Rc::make_mut(&mut self.staged);
            let take = (chunk - staged.len()).min(data.len());
            // A small body grows its buffer as any; one that passes a
            // small size takes room for its whole chunk at once, so that a
            // chunk's buffer is exactly a chunk.
            if staged.len() + take > staged.capacity() && staged.len() + take > STAGE_SMALL {
                staged.reserve_exact(chunk - staged.len());
            }
            staged.extend_from_slice(&data[..take]);
            data = &data[take..];
            if staged.len() == chunk {
                let full = std::mem::replace(&mut self.staged, Rc::new(Vec::new()));
                self.full.push_back(full);
            }
        }
    }

    /// The answer for `offset`, or None when the follower must wait.
    pub(super) fn read_at(
        &self,
        offset: u64,
        chunk: u64,
        buffered: &dyn Fn() -> Vec<SegmentId>,
    ) -> Option<FillRead> {
        if self.failed {
            return Some(FillRead::End {
                complete: false,
                total: self.total,
            });
        }
        // Every chunk but the last written at the end is exactly `chunk` long.
        let index = offset / chunk;
        if let Some(c) = self.chunks.get(index as usize)
            && offset < index * chunk + c.data_len as u64
        {
            return Some(FillRead::Chunk {
                index: index as u32,
                chunk: *c,
                nonce: self.nonce,
                buffered: buffered(),
            });
        }
        let mut pos: u64 = self.chunks.iter().map(|c| c.data_len as u64).sum();
        let parts = self.writing.iter().chain(self.full.iter());
        for part in parts.chain(std::iter::once(&self.staged)) {
            let end = pos + part.len() as u64;
            if offset >= pos && offset < end {
                return Some(FillRead::Bytes(part[(offset - pos) as usize..].to_vec()));
            }
            pos = end;
        }
        self.ended.map(|complete| FillRead::End {
            complete,
            total: self.total,
        })
    }
}

impl ShardStore {
    /// Starts a fill. With `lead`, the fill answers the misses that waited
    /// for that lead: they become its followers.
    pub fn fill_begin(&self, id: FillId, meta: FillMeta, lead: Option<LeadRef>) {
        let nonce = self.next_nonce.get();
        self.next_nonce.set(nonce.wrapping_add(1));
        let failed = meta.head.len() > MAX_HEAD || meta.key.len() > MAX_KEY;
        self.prune_fills();
        let lead_hash = lead.map(|l| l.hash).filter(|&h| h != meta.hash);
        let followers = match lead {
            Some(lead) => {
                let info = FollowInfo::of(id, &meta);
                let mut inflight = self.inflight.borrow_mut();
                if lead_hash.is_some() {
                    inflight.adopt(meta.hash, info.clone());
                }
                inflight.filling(lead.hash, lead.lead, info)
            }
            None => 0,
        };
        self.fills.borrow_mut().insert(
            id,
            FillState {
                meta,
                lead_hash,
                nonce,
                full: VecDeque::new(),
                staged: Rc::new(Vec::new()),
                writing: None,
                chunks: Vec::new(),
                total: 0,
                failed,
                ended: None,
                followers,
                waiters: Vec::new(),
                touched: Instant::now(),
                writer: false,
                writer_done: Vec::new(),
                room_waiters: Vec::new(),
            },
        );
    }

    /// Drops fills whose sender vanished and ended fills nobody reads.
    fn prune_fills(&self) {
        let now = Instant::now();
        let mut gone = Vec::new();
        self.fills.borrow_mut().retain(|&id, f| {
            let idle = now.duration_since(f.touched);
            let keep = match f.ended {
                None => idle < FILL_IDLE_LIMIT,
                Some(_) => idle < ENDED_LINGER,
            };
            if !keep && f.ended.is_none() {
                gone.push((f.meta.hash, f.lead_hash, id));
            }
            keep
        });
        let mut inflight = self.inflight.borrow_mut();
        for (hash, lead_hash, id) in gone {
            inflight.fill_ended(hash, id);
            if let Some(h) = lead_hash {
                inflight.fill_ended(h, id);
            }
        }
    }

    /// Takes the next piece of a fill's body. Full chunks go to the log from
    /// a writer task of the fill's own, so a piece is taken without waiting
    /// for the device, and the viewer its bytes also go to, and the peers
    /// whose messages this shard answers, do not wait behind a segment write.
    /// Only a fill whose writer is `MAX_STAGED_CHUNKS` chunks behind (a
    /// device slower than the origin, not a write's latency) waits here for
    /// it: the bound on a fill's memory.
    pub async fn fill_data(self: &Rc<Self>, id: FillId, data: &[u8]) {
        let start_writer = {
            let mut fills = self.fills.borrow_mut();
            let Some(st) = fills.get_mut(&id) else { return };
            st.touched = Instant::now();
            st.total += data.len() as u64;
            if st.total > self.max_object && !st.failed {
                st.fail();
            }
            if !st.failed {
                st.stage(data, self.chunk);
            }
            let start = !st.failed && !st.writer && !st.full.is_empty();
            st.writer |= start;
            start
        };
        self.wake_followers(id);
        if start_writer {
            let store = self.clone();
            crate::runtime::task::spawn_detached(async move { store.write_staged(id).await });
        }
        loop {
            let behind = {
                let mut fills = self.fills.borrow_mut();
                let Some(st) = fills.get_mut(&id) else { return };
                (!st.failed && st.full.len() >= MAX_STAGED_CHUNKS).then(|| {
                    let (tx, rx) = oneshot::channel();
                    st.room_waiters.push(tx);
                    rx
                })
            };
            match behind {
                Some(rx) => {
                    self.stats.fill_waits.fetch_add(1, Relaxed);
                    let _ = rx.await;
                }
                None => return,
            }
        }
    }

    /// The fill's writer: writes its staged full chunks until fewer than a
    /// chunk are left, then tells whoever waits for it (`fill_end`).
    async fn write_staged(&self, id: FillId) {
        loop {
            let next = {
                let mut fills = self.fills.borrow_mut();
                let Some(st) = fills.get_mut(&id) else { return };
                if st.failed || st.full.is_empty() {
                    st.writer = false;
                    for w in st.writer_done.drain(..) {
                        let _ = w.send(());
                    }
                    break;
                }
                let piece = st.full.pop_front().expect("checked above");
                st.writing = Some(piece.clone());
                (piece, st.meta.hash, st.nonce, st.chunks.len() as u32)
            };
            let (piece, hash, nonce, index) = next;
            let written = self.write_chunk(hash, nonce, index, &piece).await;
            if let Some(st) = self.fills.borrow_mut().get_mut(&id) {
                st.writing = None;
                match written {
                    Ok(c) => st.chunks.push(c),
                    Err(e) => {
                        crate::warn_limited!(shard = self.shard, "cache chunk write failed: {e}");
                        st.fail();
                    }
                }
                for w in st.room_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            self.wake_followers(id);
        }
    }

    /// Waits until the fill has no writer running, then writes what full
    /// chunks are still staged, so that only the last, partial one is left.
    async fn drain_writes(&self, id: FillId) {
        let waiting = {
            let mut fills = self.fills.borrow_mut();
            let Some(st) = fills.get_mut(&id) else { return };
            st.writer.then(|| {
                let (tx, rx) = oneshot::channel();
                st.writer_done.push(tx);
                rx
            })
        };
        if let Some(rx) = waiting {
            let _ = rx.await;
        }
        let more = {
            let mut fills = self.fills.borrow_mut();
            let Some(st) = fills.get_mut(&id) else { return };
            let more = !st.failed && !st.writer && !st.full.is_empty();
            st.writer |= more;
            more
        };
        if more {
            self.write_staged(id).await;
        }
    }

    /// Large objects skip the small queue: their chunks could not be copied
    /// forward from it, and one chunk lost loses the object.
    async fn write_chunk(
        &self,
        hash: u64,
        nonce: u64,
        index: u32,
        data: &[u8],
    ) -> Result<ChunkRef, StoreError> {
        let header = EntryHeader {
            kind: EntryKind::Chunk,
            key_len: 0,
            head_len: 0,
            chunk_index: index,
            body_len: data.len() as u64,
            key_hash: hash,
            seq: 0,
            born_ms: nonce,
            expires_ms: 0,
        };
        let loc = self.write_entry(Queue::Main, header, &[data]).await?;
        // The request filling the object is its first: the next read of
        // this chunk may keep it in RAM.
        self.ram
            .borrow_mut()
            .saw_chunk(chunk_key(hash, nonce, index), loc.len as usize);
        let mut region = self.region.borrow_mut();
        let seq = region.seg(loc.slot).seq;
        region.note_chunk(loc.slot, hash);
        Ok(ChunkRef {
            slot: loc.slot,
            offset: loc.offset,
            len: loc.len,
            seq,
            data_len: data.len() as u32,
        })
    }

    /// Ends a fill. Only a complete body is indexed; anything else leaves
    /// dead bytes that no index entry points at. Returns once the object is
    /// indexed (or dropped).
    pub async fn fill_end(&self, id: FillId, complete: bool) {
        // A whole body's full chunks must all be written before its last
        // entry; one that will not be stored waits for nothing.
        let failed = self.fills.borrow().get(&id).is_none_or(|st| st.failed);
        if complete && !failed {
            self.drain_writes(id).await;
        }
        let whole = {
            let mut fills = self.fills.borrow_mut();
            let Some(st) = fills.get_mut(&id) else { return };
            st.touched = Instant::now();
            complete && !st.failed
        };
        let stored = if whole {
            self.store_fill(id).await
        } else {
            self.stats.fills_abandoned.fetch_add(1, Relaxed);
            false
        };
        if stored {
            self.stats.fills_completed.fetch_add(1, Relaxed);
            self.publish_region_stats();
        }
        let (hash, lead_hash) = {
            let mut fills = self.fills.borrow_mut();
            let Some(st) = fills.get_mut(&id) else { return };
            st.ended = Some(whole);
            (st.meta.hash, st.lead_hash)
        };
        let mut inflight = self.inflight.borrow_mut();
        inflight.fill_ended(hash, id);
        if let Some(h) = lead_hash {
            inflight.fill_ended(h, id);
        }
        drop(inflight);
        self.wake_followers(id);
        self.drop_if_unread(id);
    }

    /// Writes a whole fill's final entry (the object, or the last chunk and
    /// the manifest) and indexes it. The fill's bytes stay readable for its
    /// followers meanwhile.
    async fn store_fill(&self, id: FillId) -> bool {
        let Some((meta, nonce, body, chunks)) = self.fills.borrow().get(&id).map(|st| {
            (
                st.meta.clone(),
                st.nonce,
                st.staged.clone(),
                st.chunks.clone(),
            )
        }) else {
            return false;
        };
        let hash = meta.hash;
        let result = if chunks.is_empty() {
            self.write_object(&meta, &body).await
        } else {
            self.write_manifest(id, &meta, nonce, body).await
        };
        match result {
            Ok(loc) => {
                self.region.borrow_mut().insert(hash, loc);
                self.keep_in_ram(hash, loc);
                if let Some(v) = meta.variant.as_ref().filter(|v| v.write_marker) {
                    self.write_marker(v, &meta).await;
                }
                true
            }
            Err(e) => {
                crate::warn_limited!(shard = self.shard, "cache write failed: {e}");
                self.stats.fills_abandoned.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// Writes a URL's Vary marker: an ordinary small object under the URL's
    /// key whose head is the encoded marker (see `cache::vary`), with the
    /// variant's freshness. It replaces whatever the key held. A marker that
    /// cannot be written leaves the variant unreachable, never wrong.
    async fn write_marker(&self, v: &VariantMeta, meta: &FillMeta) {
        let head = v.variant.marker.encode();
        let header = EntryHeader {
            kind: EntryKind::Object,
            key_len: v.url_key.len() as u16,
            head_len: head.len() as u32,
            chunk_index: 0,
            body_len: 0,
            key_hash: v.url_hash,
            seq: 0,
            born_ms: meta.born_ms,
            expires_ms: meta.expires_ms,
        };
        let queue = self.region.borrow_mut().queue_for_new(v.url_hash);
        match self
            .write_entry(queue, header, &[v.url_key.as_bytes(), &head])
            .await
        {
            Ok(loc) => {
                self.region.borrow_mut().insert(v.url_hash, loc);
                self.keep_in_ram(v.url_hash, loc);
            }
            Err(e) => {
                crate::warn_limited!(shard = self.shard, "cache marker write failed: {e}");
            }
        }
    }

    /// Writes the last chunk (the staged tail) and the manifest that lists
    /// every chunk.
    async fn write_manifest(
        &self,
        id: FillId,
        meta: &FillMeta,
        nonce: u64,
        tail: Rc<Vec<u8>>,
    ) -> Result<Location, StoreError> {
        if !tail.is_empty() {
            let index = self.fills.borrow().get(&id).map_or(0, |st| st.chunks.len());
            let c = self
                .write_chunk(meta.hash, nonce, index as u32, &tail)
                .await?;
            if let Some(st) = self.fills.borrow_mut().get_mut(&id) {
                st.chunks.push(c);
                st.staged = Rc::new(Vec::new());
            }
        }
        let (chunks, total) = self
            .fills
            .borrow()
            .get(&id)
            .map(|st| (st.chunks.clone(), st.total))
            .unwrap_or_default();
        self.write_manifest_entry(meta, nonce, &chunks, total).await
    }

    /// Writes a small object as one entry: key, head and the whole body,
    /// in the queue the placement policy picks for a new key.
    pub(super) async fn write_object(
        &self,
        meta: &FillMeta,
        body: &[u8],
    ) -> Result<Location, StoreError> {
        let header = EntryHeader {
            kind: EntryKind::Object,
            key_len: meta.key.len() as u16,
            head_len: meta.head.len() as u32,
            chunk_index: 0,
            body_len: body.len() as u64,
            key_hash: meta.hash,
            seq: 0,
            born_ms: meta.born_ms,
            expires_ms: meta.expires_ms,
        };
        let queue = self.region.borrow_mut().queue_for_new(meta.hash);
        self.write_entry(queue, header, &[meta.key.as_bytes(), &meta.head, body])
            .await
    }

    /// Writes the manifest of a large object: key, head and the table of
    /// its `chunks` (already on the device), `total` body bytes in all.
    pub(super) async fn write_manifest_entry(
        &self,
        meta: &FillMeta,
        nonce: u64,
        chunks: &[ChunkRef],
        total: u64,
    ) -> Result<Location, StoreError> {
        let mut table = Vec::with_capacity(16 + chunks.len() * layout::CHUNK_REF_SIZE);
        ChunkRef::encode(chunks, nonce, &mut table);
        let header = EntryHeader {
            kind: EntryKind::Manifest,
            key_len: meta.key.len() as u16,
            head_len: meta.head.len() as u32,
            chunk_index: chunks.len() as u32,
            body_len: total,
            key_hash: meta.hash,
            seq: 0,
            born_ms: meta.born_ms,
            expires_ms: meta.expires_ms,
        };
        self.write_entry(
            Queue::Main,
            header,
            &[meta.key.as_bytes(), &meta.head, &table],
        )
        .await
    }

    /// An entry just written under a key whose older copy the RAM tier
    /// holds replaces it there (that key is evidently asked for), or takes
    /// it out when it is not one the tier keeps. A key the tier does not
    /// hold is let in by its first read instead (see `promote`), as a
    /// chunk is: most objects are fetched once and never asked for again,
    /// and copying each into memory as it is written would cost every miss
    /// a copy, an allocation and an eviction, and push out what is asked for.
    pub(super) fn keep_in_ram(&self, hash: u64, loc: Location) {
        if !self.ram.borrow().holds(hash) {
            return;
        }
        let seq = self.region.borrow().seg(loc.slot).seq;
        let segment = SegmentId {
            slot: loc.slot,
            seq,
        };
        let bytes = (!loc.manifest && self.ram_accepts(loc.len as usize))
            .then(|| self.read_buffered(segment, loc.offset, loc.len))
            .flatten();
        match bytes.as_deref().and_then(whole_entry) {
            Some(b) => self.ram.borrow_mut().insert(hash, b, seq),
            None => self.ram.borrow_mut().remove(hash),
        }
        self.publish_ram_stats();
    }

    /// Lets an entry a lookup found still in a segment buffer (`bytes`, as
    /// read there) into the RAM tier: its first read, as `promote` is for
    /// one read from the device.
    pub(super) fn admit_buffered(&self, hash: u64, loc: Location, seq: u64, bytes: &[u8]) {
        if loc.manifest || !self.ram_accepts(loc.len as usize) {
            return;
        }
        if let Some(b) = whole_entry(bytes) {
            self.ram.borrow_mut().insert(hash, b, seq);
            self.publish_ram_stats();
        }
    }
}

/// The entry at the start of `bytes` (a segment's bytes from an entry's
/// offset, which may run past its end), as its header gives its length.
fn whole_entry(bytes: &[u8]) -> Option<&[u8]> {
    let total = EntryHeader::decode_header(bytes)?.total_len() as usize;
    bytes.get(..total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(staged: &[u8], chunks: usize, chunk: u64) -> FillState {
        FillState {
            meta: FillMeta {
                key: "k".into(),
                hash: 1,
                head: Vec::new(),
                born_ms: 0,
                expires_ms: 0,
                declared_len: None,
                variant: None,
            },
            lead_hash: None,
            nonce: 5,
            full: VecDeque::new(),
            staged: Rc::new(staged.to_vec()),
            writing: None,
            chunks: (0..chunks)
                .map(|i| ChunkRef {
                    slot: i as u32,
                    offset: 4096,
                    len: 8192,
                    seq: 1,
                    data_len: chunk as u32,
                })
                .collect(),
            total: chunks as u64 * chunk + staged.len() as u64,
            failed: false,
            ended: None,
            followers: 0,
            waiters: Vec::new(),
            writer: false,
            writer_done: Vec::new(),
            room_waiters: Vec::new(),
            touched: Instant::now(),
        }
    }

    fn none() -> Vec<SegmentId> {
        Vec::new()
    }

    #[test]
    fn offsets_map_to_chunks_the_piece_in_flight_and_the_staged_tail() {
        let mut st = state(b"tail", 2, 10);
        assert!(matches!(
            st.read_at(0, 10, &none),
            Some(FillRead::Chunk { index: 0, .. })
        ));
        assert!(matches!(
            st.read_at(19, 10, &none),
            Some(FillRead::Chunk {
                index: 1,
                nonce: 5,
                ..
            })
        ));
        assert!(matches!(st.read_at(22, 10, &none), Some(FillRead::Bytes(b)) if b == b"il"));
        assert!(st.read_at(24, 10, &none).is_none(), "past the end: wait");
        st.writing = Some(Rc::new(b"0123456789".to_vec()));
        assert!(matches!(st.read_at(23, 10, &none), Some(FillRead::Bytes(b)) if b == b"3456789"));
        assert!(matches!(st.read_at(31, 10, &none), Some(FillRead::Bytes(b)) if b == b"ail"));
        st.ended = Some(true);
        assert!(matches!(
            st.read_at(34, 10, &none),
            Some(FillRead::End {
                complete: true,
                total: 24
            })
        ));
    }

    #[test]
    fn pieces_fill_chunks_of_exactly_a_chunk_each_read_in_order() {
        let chunk = STAGE_SMALL * 2;
        let mut st = state(b"", 0, chunk as u64);
        let body: Vec<u8> = (0..chunk * 3 + 5).map(|i| (i % 251) as u8).collect();
        // Pieces that straddle the chunks' ends.
        for piece in body.chunks(7_777) {
            st.stage(piece, chunk);
        }
        st.total = body.len() as u64;
        assert_eq!(st.full.len(), 3);
        for c in &st.full {
            assert_eq!(
                (c.len(), c.capacity()),
                (chunk, chunk),
                "a chunk's buffer is a chunk"
            );
        }
        assert_eq!(st.staged.as_slice(), &body[chunk * 3..]);
        st.writing = st.full.pop_front();
        for at in [0, chunk - 1, chunk, 2 * chunk + 3, 3 * chunk + 4] {
            let Some(FillRead::Bytes(b)) = st.read_at(at as u64, chunk as u64, &none) else {
                panic!("bytes at {at}");
            };
            assert_eq!(b[0], body[at], "at {at}");
        }
        // A small body keeps a small buffer.
        let mut small = state(b"", 0, chunk as u64);
        small.stage(b"hello", chunk);
        assert!(small.staged.capacity() < STAGE_SMALL && small.full.is_empty());
    }

    #[test]
    fn a_failed_fill_ends_every_read() {
        let mut st = state(b"abc", 1, 10);
        st.fail();
        assert!(matches!(
            st.read_at(0, 10, &none),
            Some(FillRead::End {
                complete: false,
                ..
            })
        ));
        assert!(st.staged.is_empty());
    }

    #[test]
    fn the_short_last_chunk_of_an_ended_fill_is_found() {
        let mut st = state(b"", 2, 10);
        st.chunks[1].data_len = 4;
        st.total = 14;
        st.ended = Some(true);
        assert!(matches!(
            st.read_at(13, 10, &none),
            Some(FillRead::Chunk { index: 1, .. })
        ));
        assert!(matches!(
            st.read_at(14, 10, &none),
            Some(FillRead::End { complete: true, .. })
        ));
    }
}
