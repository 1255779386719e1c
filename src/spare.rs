//! Buffers a thread reuses: a small hit copies its entry out of the RAM
//! tier, encodes its response, and names its target, authority and cache
//! key in buffers taken here and given back when done with, so that
//! serving it allocates nothing once the shard has served a few. Per
//! thread (shared-nothing: a buffer given back on another thread joins
//! that thread's spares), bounded in count, in bytes and in the size of
//! the buffers kept, the oldest making room for the newest ([`Pool`], which
//! the header lists' own spares use too). Never blocks, never does I/O.

use std::alloc::Layout;
use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};
use std::thread::LocalKey;

/// A thread's kept buffers of one kind, bounded in count and in bytes: the
/// oldest make room for the newest, so what the thread serves now decides
/// which sizes it keeps. Each kind (byte buffers, read buffers, header
/// lists) has a `thread_local!` pool of its own.
pub struct Pool<T> {
    /// Kept items and the bytes each holds, oldest first.
    list: Vec<(T, usize)>,
    bytes: usize,
    max_count: usize,
    max_bytes: usize,
}

impl<T> Pool<T> {
    pub const fn new(max_count: usize, max_bytes: usize) -> Self {
        Pool {
            list: Vec::new(),
            bytes: 0,
            max_count,
            max_bytes,
        }
    }

    /// The most recently kept item that `fits`, taken out.
    fn take_where(&mut self, fits: impl Fn(&T) -> bool) -> Option<T> {
        let at = self.list.iter().rposition(|(item, _)| fits(item))?;
        Some(self.take_at(at))
    }

    fn take_at(&mut self, at: usize) -> T {
        let (item, size) = self.list.swap_remove(at);
        self.bytes -= size;
        item
    }

    /// The most recently kept item whose `len` is at least `want` and at
    /// most twice that; else the smallest that fits; else (none is that
    /// large) the largest, which has the least to grow. Taken out.
    fn take_nearest(&mut self, len: impl Fn(&T) -> usize, want: usize) -> Option<T> {
        // Fitting items rank first, the smallest of them; then the largest.
        let rank = |l: usize| {
            if l >= want {
                (0, l)
            } else {
                (1, usize::MAX - l)
            }
        };
        let mut best: Option<(usize, (u8, usize))> = None;
        for (at, (item, _)) in self.list.iter().enumerate().rev() {
            let l = len(item);
            if l >= want && l / 2 <= want {
                best = Some((at, (0, l)));
                break;
            }
            if best.is_none_or(|(_, r)| rank(l) < r) {
                best = Some((at, rank(l)));
            }
        }
        let (at, _) = best?;
        Some(self.take_at(at))
    }

    /// Keeps `item`, which holds `size` bytes, evicting the oldest as the
    /// bounds require (an item above the byte bound is not kept at all).
    fn keep(&mut self, item: T, size: usize) {
        if size > self.max_bytes || self.max_count == 0 {
            return;
        }
        let mut evict = 0;
        while evict < self.list.len()
            && (self.list.len() - evict >= self.max_count || self.bytes + size > self.max_bytes)
        {
            self.bytes -= self.list[evict].1;
            evict += 1;
        }
        self.list.drain(..evict);
        // Room for the bound at once: keeping never allocates after that.
        let room = self.max_count - self.list.len();
        self.list.reserve_exact(room);
        self.bytes += size;
        self.list.push((item, size));
    }
}

/// Takes from a thread's pool (None during thread teardown or when empty).
pub fn take_from<T: 'static>(
    pool: &'static LocalKey<RefCell<Pool<T>>>,
    fits: impl Fn(&T) -> bool,
) -> Option<T> {
    take_with(pool, |p| p.take_where(fits))
}

/// Runs `take` on a thread's pool (None during thread teardown).
fn take_with<T: 'static>(
    pool: &'static LocalKey<RefCell<Pool<T>>>,
    take: impl FnOnce(&mut Pool<T>) -> Option<T>,
) -> Option<T> {
    pool.try_with(|p| take(&mut *p.try_borrow_mut().ok()?))
        .ok()
        .flatten()
}

/// Gives to a thread's pool; during thread teardown the item is dropped.
pub fn keep_in<T: 'static>(pool: &'static LocalKey<RefCell<Pool<T>>>, item: T, size: usize) {
    let _ = pool.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            p.keep(item, size);
        }
    });
}

/// Larger buffers are freed when given back: a large object goes out
/// chunk by chunk, never in one of these.
const MAX_KEPT: usize = 1 << 20;

/// The largest read buffer kept (a connection's read chunk plus what it
/// held before).
const MAX_READ_KEPT: usize = 256 << 10;

/// Byte buffers kept per thread, and the bytes they may hold in all.
const SPARES: usize = 64;
const SPARE_BYTES: usize = 4 << 20;

thread_local! {
    static SPARE: RefCell<Pool<Vec<u8>>> = const { RefCell::new(Pool::new(SPARES, SPARE_BYTES)) };
    /// Enough for a shard's origin exchanges in flight at once under load
    /// (each holds a 64 KiB read buffer) beside as many viewers' small
    /// ones: fewer, and the ones beyond were freed and allocated (zeroed,
    /// faulted in) again on every miss.
    static READ_BUFFERS: RefCell<Pool<Vec<u8>>> = const { RefCell::new(Pool::new(256, 8 << 20)) };
}

/// An empty buffer with room for at least `capacity` bytes: the most
/// recently kept spare that is large enough, else a new one.
pub fn take(capacity: usize) -> Vec<u8> {
    take_from(&SPARE, |v| v.capacity() >= capacity).unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// Keeps `v` for a later `take` (emptied), unless it is too large.
pub fn give(mut v: Vec<u8>) {
    if v.capacity() == 0 || v.capacity() > MAX_KEPT {
        return;
    }
    v.clear();
    let size = v.capacity();
    keep_in(&SPARE, v, size);
}

/// A socket read buffer of at least `len` bytes, all of them initialised
/// (what they hold is stale: the caller tracks its own data), so that a
/// connection starting to read again neither zeroes nor faults in fresh
/// memory. The buffer's length is its initialised part. The kept buffer
/// nearest in size is taken: a viewer waiting for a small request head
/// takes a small one and leaves the large ones to origin reads, which
/// would otherwise zero a fresh 64 KiB each time they grew a small one.
pub fn take_read_buffer(len: usize) -> Vec<u8> {
    let mut v = take_with(&READ_BUFFERS, |p| p.take_nearest(Vec::len, len)).unwrap_or_default();
    if v.len() < len {
        v.resize(len, 0);
    }
    v
}

/// Keeps a read buffer, its initialised length and all, for a later
/// `take_read_buffer`, unless it is too large.
pub fn give_read_buffer(v: Vec<u8>) {
    if v.is_empty() || v.capacity() > MAX_READ_KEPT {
        return;
    }
    let size = v.capacity();
    keep_in(&READ_BUFFERS, v, size);
}

/// An empty string with room for at least `capacity` bytes (see `take`).
pub fn take_string(capacity: usize) -> String {
    String::from_utf8(take(capacity)).unwrap_or_default()
}

/// `give` for a string's buffer.
pub fn give_string(s: String) {
    give(s.into_bytes());
}

/// `take_string` holding a copy of `s`.
pub fn string_of(s: &str) -> String {
    let mut out = take_string(s.len());
    out.push_str(s);
    out
}

/// A heap block of one layout, freed when dropped.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc` with `layout` and is freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Blocks of finished `Boxed` values (a request's state, a few KiB each).
const SPARE_BLOCKS: usize = 64;
const SPARE_BLOCK_BYTES: usize = 1 << 20;

thread_local! {
    static BLOCKS: RefCell<Pool<Block>> = const { RefCell::new(Pool::new(SPARE_BLOCKS, SPARE_BLOCK_BYTES)) };
}

/// A value on the heap, like `Box`, in a block the thread reuses: when it
/// is dropped its block goes to the thread's spares for the next value of
/// the same size and alignment. For a request's (large) future, which a
/// connection holds only while the request is handled, so that handling
/// one allocates nothing once the shard has handled a few.
pub struct Boxed<T> {
    ptr: NonNull<T>,
    _owns: PhantomData<Box<T>>,
}

impl<T> Boxed<T> {
    pub fn new(value: T) -> Boxed<T> {
        Boxed::with(move || value)
    }

    /// The value `make` returns, made once its block is at hand, so that
    /// it can be written straight there: an async fn's future, returned by
    /// value, is as large as its largest state, and `new` would have it
    /// made elsewhere and then copied whole.
    #[inline(always)]
    pub fn with(make: impl FnOnce() -> T) -> Boxed<T> {
        let ptr = Boxed::<T>::block();
        // SAFETY: `ptr` is valid for writes of a `T` and aligned for it.
        unsafe { ptr.as_ptr().write(make()) };
        Boxed {
            ptr,
            _owns: PhantomData,
        }
    }

    /// A block for a `T`: a spare one, else a new one.
    fn block() -> NonNull<T> {
        let layout = Layout::new::<T>();
        if layout.size() == 0 {
            NonNull::dangling()
        } else {
            match take_from(&BLOCKS, |b| b.layout == layout) {
                Some(block) => ManuallyDrop::new(block).ptr.cast(),
                None => {
                    // SAFETY: the layout's size is not zero.
                    let raw = unsafe { std::alloc::alloc(layout) };
                    match NonNull::new(raw) {
                        Some(p) => p.cast(),
                        None => std::alloc::handle_alloc_error(layout),
                    }
                }
            }
        }
    }
}

impl<T> Drop for Boxed<T> {
    fn drop(&mut self) {
        // SAFETY: the value is live at `ptr` and dropped once, in place.
        unsafe { std::ptr::drop_in_place(self.ptr.as_ptr()) };
        let layout = Layout::new::<T>();
        if layout.size() > 0 {
            let block = Block {
                ptr: self.ptr.cast(),
                layout,
            };
            keep_in(&BLOCKS, block, layout.size());
        }
    }
}

impl<F: Future> Future for Boxed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the future never moves: it stays at `ptr` until it is
        // dropped in place.
        unsafe { Pin::new_unchecked(&mut *self.ptr.as_ptr()) }.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn a_boxed_value_is_dropped_and_its_block_reused() {
        struct Counted(Rc<Cell<u32>>, [u64; 100]);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let drops = Rc::new(Cell::new(0));
        let first = Boxed::new(Counted(drops.clone(), [7; 100]));
        let at = first.ptr.as_ptr() as usize;
        assert_eq!(first.ptr.as_ptr() as usize % align_of::<Counted>(), 0);
        drop(first);
        assert_eq!(drops.get(), 1);
        let second = Boxed::new(Counted(drops.clone(), [9; 100]));
        assert_eq!(second.ptr.as_ptr() as usize, at, "the same block");
        // SAFETY: the value is live while `second` is.
        assert_eq!(unsafe { second.ptr.as_ref() }.1[99], 9);
        let other = Boxed::new([1u8; 3]);
        assert_ne!(other.ptr.as_ptr() as usize, at, "another layout");
        drop(second);
        assert_eq!(drops.get(), 2);
        let _none = Boxed::new(());
    }

    #[test]
    fn a_boxed_future_runs_to_its_output() {
        let fut = Boxed::new(async { 6 * 7 });
        assert_eq!(futures_lite::future::block_on(fut), 42);
    }

    #[test]
    fn a_buffer_given_back_is_taken_again_empty() {
        let mut v = take(100);
        v.extend_from_slice(b"abc");
        let at = v.as_ptr();
        give(v);
        let again = take(50);
        assert!(again.is_empty() && again.capacity() >= 100);
        assert_eq!(again.as_ptr(), at, "the same buffer");
        give(again);
        let larger = take(1000);
        assert!(larger.capacity() >= 1000, "a spare too small is not taken");
        assert_ne!(larger.as_ptr(), at);
    }

    #[test]
    fn a_read_buffer_keeps_its_initialised_length() {
        let mut v = take_read_buffer(1000);
        assert!(v.len() >= 1000);
        v[..3].copy_from_slice(b"abc");
        let (at, len) = (v.as_ptr(), v.len());
        give_read_buffer(v);
        let again = take_read_buffer(10);
        assert_eq!(
            (again.as_ptr(), again.len()),
            (at, len),
            "the same, not re-zeroed"
        );
        assert_eq!(
            &again[..3],
            b"abc",
            "stale bytes are the caller's to ignore"
        );
        give_read_buffer(again);
        let longer = take_read_buffer(len + 1);
        assert!(longer.len() > len);
    }

    #[test]
    fn a_shards_origin_reads_in_flight_all_find_their_buffers_again() {
        // Fifty exchanges at once, each with a 64 KiB read buffer: all of
        // them come back, so the next fifty allocate nothing.
        let first: Vec<Vec<u8>> = (0..50).map(|_| take_read_buffer(64 << 10)).collect();
        let mut at: Vec<_> = first.iter().map(|v| v.as_ptr()).collect();
        first.into_iter().for_each(give_read_buffer);
        let again: Vec<Vec<u8>> = (0..50).map(|_| take_read_buffer(64 << 10)).collect();
        let mut again_at: Vec<_> = again.iter().map(|v| v.as_ptr()).collect();
        at.sort();
        again_at.sort();
        assert_eq!(at, again_at);
        again.into_iter().for_each(give_read_buffer);
    }

    #[test]
    fn a_read_takes_a_buffer_near_its_size_and_leaves_the_large() {
        let mut p = Pool::new(8, 1 << 20);
        for len in [70_000usize, 2048, 66_000, 9000] {
            p.keep(vec![0u8; len], len);
        }
        let len = |v: Option<Vec<u8>>| v.map(|v| v.len());
        assert_eq!(len(p.take_nearest(Vec::len, 2048)), Some(2048));
        // None within twice the size: the smallest that fits.
        assert_eq!(len(p.take_nearest(Vec::len, 2048)), Some(9000));
        assert_eq!(len(p.take_nearest(Vec::len, 65_536)), Some(66_000));
        // None fits: the largest, which has the least to grow.
        assert_eq!(len(p.take_nearest(Vec::len, 80_000)), Some(70_000));
        assert_eq!(len(p.take_nearest(Vec::len, 1)), None);
    }

    #[test]
    fn a_pool_keeps_the_newest_within_its_bounds() {
        let mut p = Pool::new(3, 100);
        p.keep('a', 40);
        p.keep('b', 40);
        p.keep('c', 40); // over 100 bytes: 'a' goes
        assert_eq!(p.list.iter().map(|x| x.0).collect::<String>(), "bc");
        p.keep('d', 10);
        p.keep('e', 10); // over 3 items: 'b' goes
        assert_eq!(p.list.iter().map(|x| x.0).collect::<String>(), "cde");
        assert_eq!(p.bytes, 60);
        p.keep('f', 101); // above the byte bound: not kept
        assert_eq!(p.list.len(), 3);
        assert_eq!(
            p.take_where(|&x| x < 'e'),
            Some('d'),
            "the newest that fits"
        );
        assert_eq!(p.bytes, 50);
        assert_eq!(p.take_where(|&x| x == 'z'), None);
    }

    #[test]
    fn large_buffers_and_a_full_list_are_freed() {
        give(Vec::with_capacity(MAX_KEPT + 1));
        assert!(take(0).capacity() <= MAX_KEPT);
        for _ in 0..SPARES * 2 {
            give(Vec::with_capacity(16));
        }
        let kept = SPARE.with(|s| s.borrow().list.len());
        assert_eq!(kept, SPARES);
        for _ in 0..SPARES {
            give(Vec::with_capacity(MAX_KEPT));
        }
        let (kept, bytes) = SPARE.with(|s| (s.borrow().list.len(), s.borrow().bytes));
        assert_eq!(bytes, SPARE_BYTES, "the byte budget bounds what is kept");
        assert_eq!(kept, SPARE_BYTES / MAX_KEPT, "the oldest made room");
        let large = take(MAX_KEPT);
        assert!(large.capacity() >= MAX_KEPT);
        give(large);
        let small = take(16);
        assert!(small.capacity() >= 16, "any spare large enough serves");
    }
}
