//! Heap accounting: a global allocator wrapper that counts live heap bytes
//! and allocations, so `/metrics` can tell memory the program holds from
//! memory the allocator keeps, and a test can count a request's allocations
//! through the real binary.
//!
//! Each thread owns a counter slot and updates it with a plain load and
//! store (no locked instruction, no shared cache line); readers sum the
//! slots. A slot may go negative (memory freed on another thread than the one
//! that allocated it); the sum is exact once no allocation is in flight.
//! Threads beyond [`SLOTS`] share one overflow slot, updated atomically.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize};

/// Counter slots for the first threads; shards, the control thread and the
/// blocking pools fit with room to spare.
const SLOTS: usize = 128;
const OVERFLOW: usize = SLOTS;

#[repr(align(64))]
struct Slot {
    bytes: AtomicI64,
    allocations: AtomicU64,
}

static TABLE: [Slot; SLOTS + 1] = [const {
    Slot {
        bytes: AtomicI64::new(0),
        allocations: AtomicU64::new(0),
    }
}; SLOTS + 1];
static TAKEN: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Wraps the process allocator `A` and counts what passes through it.
pub struct Counting<A>(pub A);

impl<A> Counting<A> {
    fn count(bytes: i64, allocations: u64) {
        // `try_with` fails only while the thread's locals are being torn
        // down; those last frees go to the shared slot.
        let slot = MINE
            .try_with(|mine| {
                if mine.get() == usize::MAX {
                    INSTALLED.store(true, Relaxed);
                    let taken = TAKEN.fetch_add(1, Relaxed);
                    mine.set(taken.min(OVERFLOW));
                }
                mine.get()
            })
            .unwrap_or(OVERFLOW);
        let s = &TABLE[slot];
        if slot == OVERFLOW {
            s.bytes.fetch_add(bytes, Relaxed);
            s.allocations.fetch_add(allocations, Relaxed);
        } else {
            // Only this thread writes its slot: no read-modify-write needed.
            s.bytes.store(s.bytes.load(Relaxed) + bytes, Relaxed);
            s.allocations
                .store(s.allocations.load(Relaxed) + allocations, Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to `A`, which upholds the
// `GlobalAlloc` contract; counting touches no allocator state and never
// allocates (the thread-local is `const`-initialised and has no destructor).
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            Self::count(layout.size() as i64, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::count(layout.size() as i64, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { self.0.dealloc(ptr, layout) };
        Self::count(-(layout.size() as i64), 0);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s rules.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            Self::count(new_size as i64 - layout.size() as i64, 1);
        }
        p
    }
}

/// What the counting allocator has seen, summed over every thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapFigures {
    /// Bytes allocated and not yet freed.
    pub live_bytes: u64,
    /// Allocations (and reallocations) since start.
    pub allocations: u64,
}

/// The figures, or `None` when the process does not run [`Counting`] as its
/// global allocator (library tests, other binaries).
pub fn figures() -> Option<HeapFigures> {
    if !INSTALLED.load(Relaxed) {
        return None;
    }
    let used = TAKEN.load(Relaxed).min(SLOTS);
    let mut bytes = TABLE[OVERFLOW].bytes.load(Relaxed);
    let mut allocations = TABLE[OVERFLOW].allocations.load(Relaxed);
    for s in &TABLE[..used] {
        bytes += s.bytes.load(Relaxed);
        allocations += s.allocations.load(Relaxed);
    }
    Some(HeapFigures {
        live_bytes: bytes.max(0) as u64,
        allocations,
    })
}

/// Has mimalloc finish this thread's pending frees and hand empty pages,
/// once their purge delay is over, back to the OS. A shard calls it once a
/// second: the allocator would otherwise purge only when the thread next
/// allocates in the right size class, so memory freed by a burst could stay
/// resident through a quiet spell. Harmless when mimalloc is not the
/// process allocator (its heap for this thread is then empty).
pub fn return_freed() {
    // SAFETY: takes no pointers; mimalloc allows it on any thread at any
    // time outside its own calls, and this is never called from inside one.
    unsafe { libmimalloc_sys::mi_collect(false) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn counts_across_threads_including_frees_elsewhere() {
        let a = Counting(System);
        let layout = Layout::from_size_align(1000, 8).unwrap();
        let before = figures();
        // SAFETY: a valid layout; freed below with the same layout.
        let p = unsafe { a.alloc(layout) } as usize;
        let mid = figures().unwrap();
        std::thread::spawn(move || {
            // SAFETY: `p` came from `a.alloc(layout)` and is freed once.
            unsafe { Counting(System).dealloc(p as *mut u8, layout) }
        })
        .join()
        .unwrap();
        let after = figures().unwrap();
        assert_eq!(mid.allocations, before.map_or(0, |b| b.allocations) + 1);
        assert_eq!(
            mid.live_bytes,
            before.map_or(0, |b| b.live_bytes) + 1000,
            "only this test allocates through the wrapper"
        );
        assert_eq!(after.live_bytes, before.map_or(0, |b| b.live_bytes));
    }
}
