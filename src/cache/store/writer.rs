//! The store's driver of the placement step machine: it appends entries at a
//! queue's write head, writes sealed segments (one O_DIRECT write each, one
//! in flight at a time) and carries out the reclaims the machine plans,
//! reading the entries kept and copying them forward. Every decision (size
//! limit, when to rotate or reclaim, what to keep) is `placement`'s and
//! `eviction`'s; this file moves the bytes. Only the owner shard runs it; one
//! writer at a time (the write lock), never blocking the executor.

use super::eviction::ReclaimPlan;
use super::layout::{
    ENTRY_HEADER_SIZE, EntryHeader, EntryKind, Queue, SegmentHeader, SummaryRecord, write_summary,
};
use super::placement::{CopyForward, CopyStep, NewEntry, Placement, Rotation, Step};
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
        header: EntryHeader,
        payload: &[&[u8]],
    ) -> Result<Location, StoreError> {
        let len = round_up(header.total_len());
        let mut entry = NewEntry::new(queue, len, self.geo.segment_size)?;
        let _writer = self.write_lock.lock().await;
        loop {
            let step = entry.step(&mut self.region.borrow_mut())?;
            match step {
                Step::Placed(p) => {
                    self.append(queue, p, len, header, payload);
                    self.stats.bytes_written.fetch_add(len, Relaxed);
                    return Ok(Location {
                        slot: p.segment.slot,
                        offset: p.offset,
                        len: len as u32,
                        manifest: header.kind == EntryKind::Manifest,
                    });
                }
                Step::Rotate(r) => self.rotate_head(r).await,
                Step::Reclaim(plan) => {
                    self.reclaim(plan).await;
                    self.publish_region_stats();
                }
            }
        }
    }

    /// Writes an entry where the machine placed it, in `queue`'s open
    /// segment buffer, and lists it in that segment's summary.
    fn append(
        &self,
        queue: Queue,
        p: Placement,
        len: u64,
        mut header: EntryHeader,
        payload: &[&[u8]],
    ) {
        header.seq = p.segment.seq;
        let mut bufs = self.buffers.borrow_mut();
        let open = bufs.open[queue as usize]
            .as_mut()
            .expect("a placement is in the open segment of its queue");
        debug_assert_eq!(open.segment, p.segment);
        header.write_entry(&mut open.buf.as_bytes_mut()[p.offset as usize..], payload);
        open.summary.push(SummaryRecord {
            offset: p.offset,
            len: len as u32,
            kind: header.kind,
            key_hash: header.key_hash,
        });
    }

    /// Waits for the segment in flight to reach the device. Its buffer
    /// stays listed, so reads of it are answered from memory, until the
    /// write is done: a read sent to the device before then would find
    /// what the slot held before. A failed write unindexes everything in
    /// that segment: it must never be read. Callers hold the write lock.
    pub(super) async fn finish_flush(&self) {
        let task = match self.buffers.borrow_mut().flushing.as_mut() {
            Some(f) => f.task.take(),
            None => return,
        };
        let result = match task {
            Some(t) => t
                .await
                .unwrap_or_else(|| Err(io::Error::other("flush task cancelled"))),
            None => Ok(()),
        };
        let Some(f) = self.buffers.borrow_mut().flushing.take() else {
            return;
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

    /// Starts writing `queue`'s open buffer, sealed at `used` bytes; waits
    /// for the previous flush first, so at most one segment is in flight
    /// per shard. The buffer stays listed throughout (open while it waits,
    /// then flushing), so its entries are read from memory until they are
    /// on the device. Callers hold the write lock.
    pub(super) async fn start_flush(&self, queue: Queue, used: usize) {
        self.finish_flush().await;
        // No await from here on: the buffer moves from open to flushing at
        // once.
        let Some(OpenBuf {
            segment,
            mut buf,
            summary,
        }) = self.buffers.borrow_mut().open[queue as usize].take()
        else {
            return;
        };
        // A reused buffer holds an older segment's bytes past the cursor;
        // zeros there end any scan of this segment cleanly.
        buf.as_bytes_mut()[used..].fill(0);
        write_summary(buf.as_bytes_mut(), segment.seq, &summary);
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

    /// Starts writing the segment a rotation sealed and opens a buffer for
    /// the one it opened.
    async fn rotate_head(&self, r: Rotation) {
        match r.sealed {
            Some(s) => self.start_flush(r.queue, s.used as usize).await,
            None => drop(self.buffers.borrow_mut().open[r.queue as usize].take()),
        }
        let spare = self.buffers.borrow_mut().spare.pop();
        let mut buf = spare.unwrap_or_else(|| self.device.alloc(self.geo.segment_size as usize));
        SegmentHeader {
            format_id: self.format_id,
            shard: self.shard,
            slot: r.opened.slot,
            seq: r.opened.seq,
            queue: r.queue,
        }
        .encode_into(buf.as_bytes_mut());
        self.buffers.borrow_mut().open[r.queue as usize] = Some(OpenBuf {
            segment: r.opened,
            buf,
            summary: Vec::new(),
        });
    }

    /// Carries out a reclaim: reads each entry the plan keeps, verifies it
    /// and copies it to the main queue, then frees the slot. Entries that
    /// fail to read or verify, or find no room, are dropped (evicted).
    async fn reclaim(&self, plan: ReclaimPlan) {
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
        for t in &plan.reinsert {
            let bytes = match self
                .device
                .read(base + t.loc.offset as u64, t.loc.len as usize)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    crate::warn_limited!(
                        shard = self.shard,
                        "cache read during reclaim failed: {e}"
                    );
                    self.stats.read_errors.fetch_add(1, Relaxed);
                    dropped += 1;
                    continue;
                }
            };
            let Some(header) = EntryHeader::verify(&bytes).filter(|h| h.seq == plan.segment.seq)
            else {
                self.stats.checksum_failures.fetch_add(1, Relaxed);
                dropped += 1;
                continue;
            };
            let len = t.loc.len as u64;
            let Some(p) = self.place_copy(len).await else {
                dropped += 1;
                continue;
            };
            let payload = &bytes[ENTRY_HEADER_SIZE..header.total_len() as usize];
            self.append(Queue::Main, p, len, header, &[payload]);
            self.region.borrow_mut().reinsert(t, p.relocate(t.loc));
        }
        self.region.borrow_mut().finish_reclaim(&plan, dropped);
    }

    /// Drives a `CopyForward` machine: where a kept entry goes, or None if it
    /// finds no room.
    async fn place_copy(&self, len: u64) -> Option<Placement> {
        let mut copy = CopyForward::new(len);
        loop {
            let step = copy.step(&mut self.region.borrow_mut());
            match step {
                Ok(CopyStep::Placed(p)) => return Some(p),
                Ok(CopyStep::Rotate(r)) => self.rotate_head(r).await,
                Err(_) => return None,
            }
        }
    }
}
