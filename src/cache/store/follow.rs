//! Followers of a fill: misses for a key that did not fetch (see
//! `inflight`) read the fill as it grows. Bytes still in memory are copied
//! to them, bytes already in the log are named by their chunk so the
//! follower reads them itself, and a follower asking past the end waits for
//! the next piece. A fill stays readable after it ends until its last
//! follower leaves. This file also answers a miss's question — lead, follow
//! or fetch alone — and the end of a lead.

use super::inflight::{FetchRole, FollowerJoined, Release};
use super::layout::ChunkRef;
use super::{FillId, SegmentId, ShardStore};
use crate::cache::index::Location;
use futures_channel::oneshot;
use std::time::Instant;

/// What a follower gets for the offset it asked.
#[derive(Debug)]
pub enum FillRead {
    /// Body bytes starting at the offset asked for.
    Bytes(Vec<u8>),
    /// The offset lies in a chunk already in the log: read it there (the
    /// chunk's header carries `nonce`).
    Chunk {
        index: u32,
        chunk: ChunkRef,
        nonce: u64,
        buffered: Vec<SegmentId>,
    },
    /// No byte at or past the offset will come. `complete`: the body ended
    /// whole at `total` bytes; otherwise it was cut short or not kept.
    End { complete: bool, total: u64 },
    /// The fill is unknown (it never existed here, or was dropped).
    Gone,
}

impl ShardStore {
    /// A miss for `hash` asks what to do (see `inflight`). `seen` is where
    /// the index pointed when the miss was decided (a stale copy), if anywhere.
    /// Without `wait`, a fetch already under way answers `Busy` at once
    /// instead of parking the miss (a background revalidation needs no
    /// second fetch).
    pub fn begin_fetch(
        &self,
        hash: u64,
        seen: Option<Location>,
        wait: bool,
        reply: oneshot::Sender<FetchRole>,
    ) {
        let indexed = self.region.borrow().index.peek(hash).map(|(loc, _)| loc);
        let joined =
            self.inflight
                .borrow_mut()
                .begin(hash, indexed, seen, wait, Instant::now(), reply);
        if let Some(FollowerJoined(fill)) = joined
            && let Some(st) = self.fills.borrow_mut().get_mut(&fill)
        {
            st.followers += 1;
        }
    }

    /// A lead ended without a fill.
    pub fn release_lead(&self, hash: u64, lead: u64, how: Release) {
        self.inflight
            .borrow_mut()
            .release(hash, lead, how, Instant::now());
    }

    /// A follower asks for the fill's bytes from `offset`: answered now, or
    /// when the next piece arrives or the fill ends.
    pub fn fill_read(&self, id: FillId, offset: u64, reply: oneshot::Sender<FillRead>) {
        let mut fills = self.fills.borrow_mut();
        let Some(st) = fills.get_mut(&id) else {
            let _ = reply.send(FillRead::Gone);
            return;
        };
        st.touched = Instant::now();
        match st.read_at(offset, self.chunk as u64, &|| self.buffered_segments()) {
            Some(answer) => {
                let _ = reply.send(answer);
            }
            None => st.waiters.push((offset, reply)),
        }
    }

    /// A follower is done with the fill.
    pub fn fill_detach(&self, id: FillId) {
        if let Some(st) = self.fills.borrow_mut().get_mut(&id) {
            st.followers = st.followers.saturating_sub(1);
        }
        self.drop_if_unread(id);
    }

    pub(super) fn drop_if_unread(&self, id: FillId) {
        let mut fills = self.fills.borrow_mut();
        if fills
            .get(&id)
            .is_some_and(|st| st.ended.is_some() && st.followers == 0)
        {
            fills.remove(&id);
        }
    }

    /// Answers the followers waiting on a fill that has moved on.
    pub(super) fn wake_followers(&self, id: FillId) {
        let mut fills = self.fills.borrow_mut();
        let Some(st) = fills.get_mut(&id) else { return };
        if st.waiters.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut st.waiters);
        let chunk = self.chunk as u64;
        for (offset, reply) in waiting {
            match st.read_at(offset, chunk, &|| self.buffered_segments()) {
                Some(answer) => {
                    let _ = reply.send(answer);
                }
                None => st.waiters.push((offset, reply)),
            }
        }
    }
}
