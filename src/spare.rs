//! Buffers a thread reuses: a small hit copies its entry out of the RAM
//! tier, encodes its response, and names its target, authority and cache
//! key in buffers taken here and given back when done with, so that
//! serving it allocates nothing once the shard has served a few. Per
//! thread (shared-nothing: a buffer given back on another thread joins
//! that thread's spares), bounded in count and in the size of the buffers
//! kept. Never blocks, never does I/O.

use std::cell::RefCell;

/// Buffers kept per thread.
const SPARES: usize = 64;
/// Larger buffers are freed when given back: a large object goes out
/// chunk by chunk, never in one of these.
const MAX_KEPT: usize = 64 << 10;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least `capacity` bytes.
pub fn take(capacity: usize) -> Vec<u8> {
    let spare = SPARE
        .try_with(|s| s.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten();
    let mut v = spare.unwrap_or_default();
    v.reserve(capacity);
    v
}

/// Keeps `v` for a later `take` (emptied), unless it is too large or
/// enough are kept.
pub fn give(mut v: Vec<u8>) {
    if v.capacity() == 0 || v.capacity() > MAX_KEPT {
        return;
    }
    v.clear();
    // Thread teardown, or a full list: the buffer is freed.
    let _ = SPARE.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut()
            && s.len() < SPARES
        {
            let room = SPARES - s.len();
            s.reserve_exact(room);
            s.push(v);
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn large_buffers_and_a_full_list_are_freed() {
        give(Vec::with_capacity(MAX_KEPT + 1));
        assert!(take(0).capacity() <= MAX_KEPT);
        for _ in 0..SPARES * 2 {
            give(Vec::with_capacity(16));
        }
        let kept = SPARE.with(|s| s.borrow().len());
        assert_eq!(kept, SPARES);
    }
}
