//! Fills: a response body arriving in pieces (from this shard or, by
//! message, from another) becomes one entry, or for a large object a run of
//! chunk entries and a manifest. Only a complete body is ever indexed, and a
//! fill never holds more than one chunk of its body in memory.

use super::layout::{self, ChunkRef, EntryHeader, EntryKind, Queue};
use super::{FillId, FillMeta, FillState, MAX_HEAD, MAX_KEY, SegmentId, ShardStore, StoreError};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// A fill that hears nothing for this long lost its sender.
const FILL_IDLE_LIMIT: Duration = Duration::from_secs(300);

impl ShardStore {
    pub fn fill_begin(&self, id: FillId, meta: FillMeta) {
        let nonce = self.next_nonce.get();
        self.next_nonce.set(nonce.wrapping_add(1));
        let failed = meta.head.len() > MAX_HEAD || meta.key.len() > MAX_KEY;
        let mut fills = self.fills.borrow_mut();
        let now = Instant::now();
        fills.retain(|_, f| now.duration_since(f.touched) < FILL_IDLE_LIMIT);
        fills.insert(
            id,
            FillState {
                meta,
                nonce,
                staged: Vec::new(),
                chunks: Vec::new(),
                total: 0,
                failed,
                touched: now,
            },
        );
    }

    /// Takes the next piece of a fill's body. Full chunks go to the log at
    /// once, so a fill holds at most one chunk in memory.
    pub async fn fill_data(&self, id: FillId, data: &[u8]) {
        let Some(mut st) = self.fills.borrow_mut().remove(&id) else {
            return;
        };
        st.touched = Instant::now();
        st.total += data.len() as u64;
        if st.total > self.max_object {
            st.failed = true;
            st.staged = Vec::new();
        }
        if !st.failed {
            st.staged.extend_from_slice(data);
        }
        while st.staged.len() >= self.chunk && !st.failed {
            let rest = st.staged.split_off(self.chunk);
            let piece = std::mem::replace(&mut st.staged, rest);
            if let Err(e) = self.write_chunk(&mut st, &piece).await {
                crate::warn_limited!(shard = self.shard, "cache chunk write failed: {e}");
                st.failed = true;
            }
        }
        self.fills.borrow_mut().insert(id, st);
    }

    /// Large objects skip the small queue: their chunks could not be copied
    /// forward from it, and one chunk lost loses the object.
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
        let loc = self.write_entry(Queue::Main, header, &[data]).await?;
        let mut region = self.region.borrow_mut();
        let seq = region.seg(loc.slot).seq;
        region.note_chunk(loc.slot, st.meta.hash);
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
        let key = std::mem::take(&mut st.meta.key);
        let head = std::mem::take(&mut st.meta.head);
        let hash = st.meta.hash;
        let result = if st.chunks.is_empty() {
            let header = EntryHeader {
                kind: EntryKind::Object,
                key_len: key.len() as u16,
                head_len: head.len() as u32,
                chunk_index: 0,
                body_len: st.staged.len() as u64,
                key_hash: hash,
                seq: 0,
                born_ms: st.meta.born_ms,
                expires_ms: st.meta.expires_ms,
            };
            let queue = self.region.borrow_mut().queue_for_new(hash);
            self.write_entry(queue, header, &[key.as_bytes(), &head, &st.staged])
                .await
        } else {
            self.write_manifest(&mut st, key.as_bytes(), &head).await
        };
        match result {
            Ok(loc) => {
                self.region.borrow_mut().insert(hash, loc);
                self.keep_in_ram(hash, loc);
                self.stats.fills_completed.fetch_add(1, Relaxed);
                self.publish_region_stats();
            }
            Err(e) => {
                crate::warn_limited!(shard = self.shard, "cache write failed: {e}");
                self.stats.fills_abandoned.fetch_add(1, Relaxed);
            }
        }
    }

    /// A small object just written also goes to the RAM tier; anything else
    /// stored under this key leaves it.
    fn keep_in_ram(&self, hash: u64, loc: crate::cache::index::Location) {
        let seq = self.region.borrow().seg(loc.slot).seq;
        let segment = SegmentId {
            slot: loc.slot,
            seq,
        };
        let bytes = (!loc.manifest && self.ram_accepts(loc.len as usize))
            .then(|| self.read_buffered(segment, loc.offset, loc.len))
            .flatten()
            .and_then(|b| {
                let total = EntryHeader::decode_header(&b)?.total_len() as usize;
                Some(b[..total].to_vec())
            });
        let mut ram = self.ram.borrow_mut();
        match bytes {
            Some(b) => ram.insert(hash, b.into(), seq),
            None => ram.remove(hash),
        }
        drop(ram);
        self.publish_ram_stats();
    }

    async fn write_manifest(
        &self,
        st: &mut FillState,
        key: &[u8],
        head: &[u8],
    ) -> Result<crate::cache::index::Location, StoreError> {
        let last = std::mem::take(&mut st.staged);
        if !last.is_empty() {
            self.write_chunk(st, &last).await?;
        }
        let mut table = Vec::with_capacity(16 + st.chunks.len() * layout::CHUNK_REF_SIZE);
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
        self.write_entry(Queue::Main, header, &[key, head, &table])
            .await
    }
}
