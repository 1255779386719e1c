//! The write side of a shard's store: appending entries at a queue's write
//! head, sealing and flushing full segments (one O_DIRECT write each, one in
//! flight at a time), and reclaiming the segments eviction picks, copying
//! forward the entries it keeps. Only the owner shard runs this; one writer
//! at a time (the write lock), never blocking the executor.

use super::layout::{
    ENTRY_HEADER_SIZE, EntryHeader, EntryKind, Queue, SEGMENT_HEADER_SIZE, SegmentHeader,
    SummaryRecord, write_summary,
};
use super::region::ReclaimPlan;
use super::{Flushing, OpenBuf, ShardStore, StoreError, round_up};
use crate::cache::index::Location;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

impl ShardStore {
    /// Appends one entry at `queue`'s write head and returns where it went.
    pub(super) async fn write_entry(
        &self,
        queue: Queue,
        mut header: EntryHeader,
        payload: &[&[u8]],
    ) -> Result<Location, StoreError> {
        let alloc = round_up(header.total_len());
        if alloc > self.geo.segment_size - SEGMENT_HEADER_SIZE as u64 {
            return Err(StoreError::TooLarge);
        }
        let _writer = self.write_lock.lock().await;
        loop {
            let placed = self.region.borrow_mut().place(queue, alloc);
            if let Some(p) = placed {
                header.seq = p.segment.seq;
                let mut bufs = self.buffers.borrow_mut();
                let open = bufs.open[queue as usize]
                    .as_mut()
                    .expect("placement implies an open segment");
                header.write_entry(&mut open.buf.as_bytes_mut()[p.offset as usize..], payload);
                open.summary.push(SummaryRecord {
                    offset: p.offset,
                    len: alloc as u32,
                    kind: header.kind,
                    key_hash: header.key_hash,
                });
                self.stats.bytes_written.fetch_add(alloc, Relaxed);
                return Ok(Location {
                    slot: p.segment.slot,
                    offset: p.offset,
                    len: alloc as u32,
                    manifest: header.kind == EntryKind::Manifest,
                });
            }
            // A region restored full (after a restart) has no free slot yet.
            self.reclaim_until_reserved().await;
            self.rotate_head(queue).await.map_err(StoreError::Io)?;
            self.reclaim_until_reserved().await;
            self.publish_region_stats();
        }
    }

    /// Waits for the segment in flight to reach the device. A failed write
    /// unindexes everything in that segment: it must never be read.
    pub(super) async fn finish_flush(&self) {
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
                    slot = f.segment.slot,
                    "cache segment write failed: {e}"
                );
                self.stats.write_errors.fetch_add(1, Relaxed);
                self.region.borrow_mut().discard(f.segment.slot);
            }
        }
        if let Ok(buf) = Rc::try_unwrap(f.buf) {
            let mut b = self.buffers.borrow_mut();
            if b.spare.is_empty() {
                b.spare.push(buf);
            }
        }
    }

    /// Starts writing a sealed buffer; waits for the previous flush first,
    /// so at most one segment is in flight per shard.
    pub(super) async fn start_flush(&self, sealed: OpenBuf, used: usize) {
        let OpenBuf {
            segment,
            mut buf,
            summary,
        } = sealed;
        // A reused buffer holds an older segment's bytes past the cursor;
        // zeros there end any scan of this segment cleanly.
        buf.as_bytes_mut()[used..].fill(0);
        write_summary(buf.as_bytes_mut(), segment.seq, &summary);
        self.finish_flush().await;
        let buf = Rc::new(buf);
        let pos = self.geo.segment_offset(self.shard, segment.slot);
        let device = self.device.clone();
        let data = buf.clone();
        let task = crate::runtime::task::spawn(async move { device.write(data, pos).await });
        self.buffers.borrow_mut().flushing = Some(Flushing {
            segment,
            buf,
            task: Some(task),
        });
    }

    /// Seals `queue`'s open segment, starts its flush and opens a new one.
    pub(super) async fn rotate_head(&self, queue: Queue) -> io::Result<()> {
        let used = self
            .region
            .borrow()
            .write_head(queue)
            .map(|(_, cursor)| cursor as usize);
        let rotated = self.region.borrow_mut().rotate(queue);
        let Some((_, segment)) = rotated else {
            return Err(io::Error::other("no free cache segment"));
        };
        let sealed = self.buffers.borrow_mut().open[queue as usize].take();
        if let (Some(sealed), Some(used)) = (sealed, used) {
            self.start_flush(sealed, used).await;
        }
        let spare = self.buffers.borrow_mut().spare.pop();
        let mut buf = spare.unwrap_or_else(|| self.device.alloc(self.geo.segment_size as usize));
        SegmentHeader {
            format_id: self.format_id,
            shard: self.shard,
            slot: segment.slot,
            seq: segment.seq,
            queue,
        }
        .encode_into(buf.as_bytes_mut());
        self.buffers.borrow_mut().open[queue as usize] = Some(OpenBuf {
            segment,
            buf,
            summary: Vec::new(),
        });
        Ok(())
    }

    /// Reclaims segments until the free reserve is back.
    async fn reclaim_until_reserved(&self) {
        let mut rounds = 0;
        loop {
            let plan = {
                let mut region = self.region.borrow_mut();
                if !region.needs_reclaim() {
                    return;
                }
                region.plan_reclaim()
            };
            let Some(plan) = plan else { return };
            rounds += 1;
            // Past one full turn of the region, keep nothing: progress is guaranteed.
            let keep = rounds <= self.geo.segments_per_region as usize;
            self.reclaim(plan, keep).await;
        }
    }

    /// Copies the entries a reclaim kept to the main queue, then frees the
    /// slot. Entries that fail to read or verify are dropped.
    async fn reclaim(&self, plan: ReclaimPlan, keep: bool) {
        let in_flight = self
            .buffers
            .borrow()
            .flushing
            .as_ref()
            .is_some_and(|f| f.segment == plan.segment);
        if in_flight {
            self.finish_flush().await;
        }
        let base = self.geo.segment_offset(self.shard, plan.segment.slot);
        let mut dropped = 0u64;
        for t in plan.reinsert.iter().filter(|_| keep) {
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
            let Some(mut header) =
                EntryHeader::verify(&bytes).filter(|h| h.seq == plan.segment.seq)
            else {
                self.stats.checksum_failures.fetch_add(1, Relaxed);
                dropped += 1;
                continue;
            };
            let len = t.loc.len as u64;
            let mut placed = self.region.borrow_mut().place(Queue::Main, len);
            if placed.is_none()
                && self.region.borrow().free_slots() > 0
                && self.rotate_head(Queue::Main).await.is_ok()
            {
                placed = self.region.borrow_mut().place(Queue::Main, len);
            }
            let Some(p) = placed else {
                dropped += 1;
                continue;
            };
            header.seq = p.segment.seq;
            let payload = &bytes[ENTRY_HEADER_SIZE..header.total_len() as usize];
            {
                let mut bufs = self.buffers.borrow_mut();
                let open = bufs.open[Queue::Main as usize]
                    .as_mut()
                    .expect("main segment open");
                header.write_entry(
                    &mut open.buf.as_bytes_mut()[p.offset as usize..],
                    &[payload],
                );
                open.summary.push(SummaryRecord {
                    offset: p.offset,
                    len: t.loc.len,
                    kind: header.kind,
                    key_hash: header.key_hash,
                });
            }
            let loc = Location {
                slot: p.segment.slot,
                offset: p.offset,
                ..t.loc
            };
            self.region.borrow_mut().reinsert(t, loc);
        }
        if !keep {
            dropped += plan.reinsert.len() as u64;
        }
        let mut region = self.region.borrow_mut();
        region.drop_reinsert(dropped);
        region.finish_reclaim(plan.segment.slot);
    }
}
