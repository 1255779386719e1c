//! Refreshing a stored response after a 304 (RFC 9111 §4.3.4): the
//! updated head and freshness are written with the body already stored. A
//! large object gets a new manifest listing the same chunks, so no body byte
//! is written again; a small one is a single entry and is written again
//! whole. Nothing is written over a newer copy.

use super::layout::ChunkRef;
use super::{FillMeta, MAX_HEAD, MAX_KEY, ShardStore};
use crate::cache::index::Location;

/// The body a refreshed entry keeps.
#[derive(Clone, Debug)]
pub enum RefreshBody {
    /// A small object's whole body, written again with the new head.
    Inline(Vec<u8>),
    /// A large object's chunks, listed again by a new manifest.
    Chunks {
        nonce: u64,
        chunks: Vec<ChunkRef>,
        total: u64,
    },
}

impl ShardStore {
    /// Stores a revalidated response (RFC 9111 §4.3.4): the updated head and
    /// freshness with the body already stored. A large object gets a new
    /// manifest listing the same chunks (no body byte is written again); a
    /// small one is one entry, written again whole. Nothing is written if
    /// the index no longer points at `expect` (a newer copy won).
    pub async fn refresh(&self, meta: FillMeta, expect: Location, body: RefreshBody) -> bool {
        let current = self
            .region
            .borrow()
            .index
            .peek(meta.hash)
            .is_some_and(|(loc, _)| loc == expect);
        if !current || meta.head.len() > MAX_HEAD || meta.key.len() > MAX_KEY {
            return false;
        }
        let hash = meta.hash;
        let written = match body {
            RefreshBody::Inline(bytes) => self.write_object(&meta, &bytes).await,
            RefreshBody::Chunks {
                nonce,
                chunks,
                total,
            } => {
                self.write_manifest_entry(&meta, nonce, &chunks, total)
                    .await
            }
        };
        // The write may have waited: only a copy still current is replaced.
        let still_current = self
            .region
            .borrow()
            .index
            .peek(hash)
            .is_some_and(|(loc, _)| loc == expect);
        match written {
            Ok(loc) if still_current => {
                self.region.borrow_mut().insert(hash, loc);
                self.keep_in_ram(hash, loc);
                self.publish_region_stats();
                true
            }
            Ok(_) => false,
            Err(e) => {
                crate::warn_limited!(shard = self.shard, "cache refresh write failed: {e}");
                false
            }
        }
    }
}
