//! Placement of entries in one shard's region as a pure step machine: where
//! an entry goes, when a write head must be rotated (its segment sealed and
//! flushed, a free one opened) and when a segment must be reclaimed first.
//! It holds the one size limit, the one rotate/reclaim policy and the one
//! progress bound of the write path; it does no I/O.
//!
//! Two drivers run it. The store's writer (`writer.rs`) does the I/O each
//! step asks for: a rotation writes the sealed buffer, a reclaim reads the
//! entries the plan keeps and copies them forward, each placed by a
//! `CopyForward` machine. The null driver here (`place_without_device`,
//! `insert_without_device`) moves no bytes and is what the trace-replay and
//! index-memory benchmarks and the unit tests run, so their figures come
//! from the code that serves.

use super::eviction::ReclaimPlan;
use super::layout::{Queue, SEGMENT_HEADER_SIZE, SegmentId, summary_len};
use super::region::Region;
use crate::cache::index::Location;

/// Free slots kept in reserve, so the copies of a reclaim always have a
/// segment to go to.
pub const RESERVE: usize = 2;

/// Where an entry goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub segment: SegmentId,
    pub offset: u32,
}

impl Placement {
    /// `loc` moved here (a copy keeps its length and kind).
    pub fn relocate(&self, loc: Location) -> Location {
        Location {
            slot: self.segment.slot,
            offset: self.offset,
            ..loc
        }
    }
}

/// A segment a rotation sealed: the bytes used in it before its summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealedSegment {
    pub segment: SegmentId,
    pub used: u64,
}

/// A write head moved on: `sealed` (if the queue had an open segment) is
/// complete and must be written; `opened` is the queue's new segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub queue: Queue,
    pub sealed: Option<SealedSegment>,
    pub opened: SegmentId,
}

/// What the driver of a new entry does next.
#[derive(Debug)]
pub enum Step {
    /// The entry goes here: write it into the queue's open segment. Done.
    Placed(Placement),
    /// Write the sealed segment's buffer and start one for the opened one.
    Rotate(Rotation),
    /// Copy forward what the plan keeps (each through `CopyForward`), then
    /// hand the plan back with `Region::finish_reclaim`.
    Reclaim(ReclaimPlan),
}

/// What the driver of a reclaim's copy does next.
#[derive(Debug)]
pub enum CopyStep {
    /// The copy goes here, in the main queue's open segment. Done.
    Placed(Placement),
    /// As `Step::Rotate`, for the main queue.
    Rotate(Rotation),
}

/// Why an entry was not placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("an entry of {len} bytes does not fit a segment (at most {max} bytes)")]
    TooLarge { len: u64, max: u64 },
    #[error("no free cache segment")]
    NoFreeSegment,
}

/// The largest entry a segment of `segment_size` bytes holds: its header
/// and a summary of one record take the rest.
pub fn max_entry(segment_size: u64) -> u64 {
    segment_size.saturating_sub(SEGMENT_HEADER_SIZE as u64 + summary_len(1))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Try the write head.
    Place,
    /// Reclaim until the reserve is back, then rotate (or place, once the
    /// head was rotated).
    Reclaim {
        then_rotate: bool,
    },
    Rotate,
}

/// Places one new entry at a queue's write head. Call `step` until it
/// returns `Step::Placed`, doing what each other step asks in between.
#[derive(Debug)]
pub struct NewEntry {
    queue: Queue,
    len: u64,
    phase: Phase,
    reclaims: usize,
}

impl NewEntry {
    /// `len` is the entry's allocated length (a multiple of the unit). An
    /// entry that passes this check fits an empty segment.
    pub fn new(queue: Queue, len: u64, segment_size: u64) -> Result<NewEntry, Refused> {
        let max = max_entry(segment_size);
        if len > max {
            return Err(Refused::TooLarge { len, max });
        }
        Ok(NewEntry {
            queue,
            len,
            phase: Phase::Place,
            reclaims: 0,
        })
    }

    /// The next step. A `Reclaim` must be finished (`Region::finish_reclaim`)
    /// before the next call, or the reserve still looks short and another
    /// segment is reclaimed.
    pub fn step(&mut self, region: &mut Region) -> Result<Step, Refused> {
        loop {
            match self.phase {
                Phase::Place => {
                    if let Some(p) = region.place(self.queue, self.len) {
                        return Ok(Step::Placed(p));
                    }
                    self.phase = Phase::Reclaim { then_rotate: true };
                }
                Phase::Reclaim { then_rotate } => {
                    if region.free_slots() < RESERVE {
                        // Past one full turn of the region a reclaim keeps
                        // nothing: copies could otherwise take as many slots
                        // as reclaims free, forever.
                        let keep_any = self.reclaims < region.segments() as usize;
                        if let Some(plan) = region.plan_reclaim(keep_any) {
                            self.reclaims += 1;
                            return Ok(Step::Reclaim(plan));
                        }
                    }
                    self.phase = if then_rotate {
                        Phase::Rotate
                    } else {
                        Phase::Place
                    };
                }
                Phase::Rotate => {
                    let r = region.rotate(self.queue).ok_or(Refused::NoFreeSegment)?;
                    self.phase = Phase::Reclaim { then_rotate: false };
                    return Ok(Step::Rotate(r));
                }
            }
        }
    }
}

/// Places one entry a reclaim keeps at the main queue's write head. It may
/// rotate that head (into the reserve) but never reclaims: it is part of a
/// reclaim already.
#[derive(Debug)]
pub struct CopyForward {
    len: u64,
    rotated: bool,
}

impl CopyForward {
    pub fn new(len: u64) -> CopyForward {
        CopyForward {
            len,
            rotated: false,
        }
    }

    /// `Err` means the copy is dropped (evicted).
    pub fn step(&mut self, region: &mut Region) -> Result<CopyStep, Refused> {
        if let Some(p) = region.place(Queue::Main, self.len) {
            return Ok(CopyStep::Placed(p));
        }
        if self.rotated {
            let max = max_entry(region.segment_size());
            return Err(Refused::TooLarge { len: self.len, max });
        }
        self.rotated = true;
        let r = region.rotate(Queue::Main).ok_or(Refused::NoFreeSegment)?;
        Ok(CopyStep::Rotate(r))
    }
}

/// Places an entry of `len` bytes with no device: the same steps as the
/// store, with no bytes moved (a rotation writes nothing, a reclaim's copies
/// always read back).
pub fn place_without_device(
    region: &mut Region,
    queue: Queue,
    len: u64,
) -> Result<Placement, Refused> {
    let mut entry = NewEntry::new(queue, len, region.segment_size())?;
    loop {
        match entry.step(region)? {
            Step::Placed(p) => return Ok(p),
            Step::Rotate(_) => {}
            Step::Reclaim(plan) => copy_forward_without_device(region, plan),
        }
    }
}

/// Copies forward what a reclaim keeps, with no device.
fn copy_forward_without_device(region: &mut Region, plan: ReclaimPlan) {
    let mut dropped = 0;
    for t in &plan.reinsert {
        let mut copy = CopyForward::new(t.loc.len as u64);
        let placed = loop {
            match copy.step(region) {
                Ok(CopyStep::Placed(p)) => break Some(p),
                Ok(CopyStep::Rotate(_)) => {}
                Err(_) => break None,
            }
        };
        match placed {
            Some(p) => {
                region.reinsert(t, p.relocate(t.loc));
            }
            None => dropped += 1,
        }
    }
    region.finish_reclaim(&plan, dropped);
}

/// Stores a new object of `len` bytes (a multiple of the unit) with no
/// device, as the store would: picks its queue, places it, indexes it.
pub fn insert_without_device(
    region: &mut Region,
    hash: u64,
    len: u64,
) -> Result<Location, Refused> {
    let queue = region.queue_for_new(hash);
    let p = place_without_device(region, queue, len)?;
    let loc = Location {
        slot: p.segment.slot,
        offset: p.offset,
        len: len as u32,
        manifest: false,
    };
    region.insert(hash, loc);
    Ok(loc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::index::{EntryLayout, Index, UNIT};
    use crate::cache::store::eviction::EvictionParams;
    use crate::cache::store::region::SegmentRecord;

    const SEGMENT: u64 = 1 << 20;

    fn region(segs: u32) -> Region {
        let layout = EntryLayout::new(segs as u64, SEGMENT, SEGMENT).unwrap();
        Region::new(Index::new(layout, 4096), segs, SEGMENT, 1)
    }

    fn h(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// What one new entry's placement asked of its driver.
    #[derive(Debug, Default)]
    struct Trace {
        reclaims: Vec<usize>,
        rotations: usize,
    }

    /// The null driver, recording the steps and checking the reserve: a
    /// rotation finds it whole or one short, a placement after one whole.
    fn place_traced(r: &mut Region, queue: Queue, len: u64) -> (Placement, Trace) {
        let mut entry = NewEntry::new(queue, len, r.segment_size()).unwrap();
        let mut trace = Trace::default();
        loop {
            match entry.step(r).unwrap() {
                Step::Placed(p) => {
                    if trace.rotations > 0 {
                        assert!(r.free_slots() >= RESERVE, "{trace:?}");
                    }
                    return (p, trace);
                }
                Step::Rotate(_) => {
                    assert!(r.free_slots() + 1 >= RESERVE, "{trace:?}");
                    trace.rotations += 1;
                }
                Step::Reclaim(plan) => {
                    trace.reclaims.push(plan.reinsert.len());
                    copy_forward_without_device(r, plan);
                }
            }
        }
    }

    #[test]
    fn an_entry_too_large_for_a_segment_is_refused_before_any_step() {
        let largest = max_entry(SEGMENT) / UNIT * UNIT;
        // The limit leaves room for the segment header and a summary record.
        assert!(largest + (SEGMENT_HEADER_SIZE as u64) + summary_len(1) <= SEGMENT);
        let too_large = largest + UNIT;
        let refused = Refused::TooLarge {
            len: too_large,
            max: max_entry(SEGMENT),
        };
        // The store's writer starts every entry with `NewEntry::new`; the
        // null driver does too, and both get the same answer.
        assert_eq!(
            NewEntry::new(Queue::Small, too_large, SEGMENT).unwrap_err(),
            refused
        );
        let mut r = region(8);
        assert_eq!(
            place_without_device(&mut r, Queue::Small, too_large),
            Err(refused)
        );
        assert_eq!(r.free_slots(), 8, "nothing was rotated for it");
        // The largest accepted entry fits a segment, even one rotated to
        // because the open segment had no room left.
        place_without_device(&mut r, Queue::Small, UNIT).unwrap();
        let (p, trace) = place_traced(&mut r, Queue::Small, largest);
        assert_eq!(trace.rotations, 1);
        assert_eq!(p.offset as usize, SEGMENT_HEADER_SIZE);
    }

    #[test]
    fn a_full_restored_region_reclaims_first_then_writes() {
        let mut r = region(8);
        for i in 0..60 {
            insert_without_device(&mut r, h(i), 100 << 10).unwrap();
        }
        r.seal_heads();
        let mut records = r.records();
        for (slot, rec) in records.iter_mut().enumerate() {
            rec.get_or_insert(SegmentRecord {
                seq: 1000 + slot as u64,
                queue: Queue::Main,
            });
        }
        let layout = r.index.layout();
        let mut full = Region::restore(
            Index::from_table(layout, r.index.table().to_vec()).unwrap(),
            SEGMENT,
            &records,
            None,
            &[],
            EvictionParams::default(),
        );
        assert_eq!(full.free_slots(), 0);
        let mut entry = NewEntry::new(Queue::Small, 4096, SEGMENT).unwrap();
        assert!(
            matches!(entry.step(&mut full), Ok(Step::Reclaim(_))),
            "with no free slot the first step is a reclaim"
        );
        let l = insert_without_device(&mut full, h(999), 4096).unwrap();
        assert!(full.seg(l.slot).seq > 1000);
        assert!(full.free_slots() >= RESERVE);
    }

    #[test]
    fn reclaim_steps_come_before_the_free_reserve_runs_out() {
        let mut r = region(8);
        let mut reclaims = 0;
        for i in 0..2000u64 {
            // A popular tenth: read after each write, so reclaims keep and
            // copy them forward (copies rotate the main head too).
            let key = if i % 10 == 0 { h(i % 50) } else { h(i) };
            let queue = r.queue_for_new(key);
            let (p, trace) = place_traced(&mut r, queue, 24 << 10);
            r.insert(
                key,
                p.relocate(Location {
                    slot: 0,
                    offset: 0,
                    len: 24 << 10,
                    manifest: false,
                }),
            );
            r.index.lookup(h(i % 50));
            reclaims += trace.reclaims.len();
        }
        let stats = r.stats();
        assert!(reclaims > 30 && stats.reinserted > 30, "{stats:?}");
        assert_eq!(stats.reclaims as usize, reclaims);
    }

    #[test]
    fn reinsertions_yield_to_newer_versions() {
        let mut r = region(4);
        let old = Location {
            slot: 0,
            offset: 0,
            len: 512,
            manifest: false,
        };
        let p = place_without_device(&mut r, Queue::Main, 512).unwrap();
        r.insert(h(1), p.relocate(old));
        r.index.lookup(h(1));
        // Fill the rest of that main segment, so the next write rotates it.
        place_without_device(&mut r, Queue::Main, max_entry(SEGMENT) / UNIT * UNIT - 4096).unwrap();
        place_without_device(&mut r, Queue::Main, 4096).unwrap();
        // A new small head takes a slot; the reserve is short: reclaim.
        let mut entry = NewEntry::new(Queue::Small, 512, SEGMENT).unwrap();
        let plan = loop {
            match entry.step(&mut r).unwrap() {
                Step::Reclaim(plan) => break plan,
                Step::Rotate(_) => {}
                Step::Placed(p) => panic!("placed at {p:?} without a reclaim"),
            }
        };
        assert_eq!(plan.segment, p.segment);
        assert_eq!(plan.reinsert.len(), 1, "the hit object is kept");
        // While the writer reads it back, a new version is stored.
        let newer = place_without_device(&mut r, Queue::Main, 512).unwrap();
        r.insert(h(1), newer.relocate(old));
        let mut copy = CopyForward::new(512);
        let CopyStep::Placed(to) = copy.step(&mut r).unwrap() else {
            panic!("the main head has room");
        };
        assert!(!r.reinsert(&plan.reinsert[0], to.relocate(old)));
        r.finish_reclaim(&plan, 0);
        assert_eq!(r.index.peek(h(1)).unwrap().0, newer.relocate(old));
    }

    #[test]
    fn past_one_full_turn_of_the_region_a_reclaim_keeps_nothing() {
        let mut r = region(8);
        let len = 100 << 10;
        let loc = Location {
            slot: 0,
            offset: 0,
            len,
            manifest: false,
        };
        // Every object in the main queue and as hot as can be: each reclaim
        // keeps a whole segment, and its copies take the slot it frees.
        let mut bounded = 0;
        for k in 0..200 {
            let (p, trace) = place_traced(&mut r, Queue::Main, len as u64);
            r.insert(h(k), p.relocate(loc));
            for _ in 0..3 {
                r.index.lookup(h(k));
            }
            let turn = r.segments() as usize;
            assert!(trace.reclaims.len() <= turn + RESERVE + 1, "{trace:?}");
            if trace.reclaims.len() > turn {
                bounded += 1;
                assert!(trace.reclaims[..turn].iter().all(|&kept| kept > 0));
                assert!(trace.reclaims[turn..].iter().all(|&kept| kept == 0));
            }
        }
        assert!(bounded > 0, "the bound was reached");
    }
}
