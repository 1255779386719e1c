//! Buffers a thread reuses: a small hit copies its entry out of the RAM
//! tier, encodes its response, and names its target, authority and cache
//! key in buffers taken here and given back when done with, so that
//! serving it allocates nothing once the shard has served a few. Per
//! thread (shared-nothing: a buffer given back on another thread joins
//! that thread's spares), bounded in count, in bytes and in the size of
//! the buffers kept, the oldest making room for the newest. Never blocks,
//! never does I/O.

use std::cell::RefCell;

/// Buffers kept per thread, and the bytes they may hold in all.
const SPARES: usize = 64;
const SPARE_BYTES: usize = 4 << 20;
/// Larger buffers are freed when given back: a large object goes out
/// chunk by chunk, never in one of these.
const MAX_KEPT: usize = 1 << 20;

/// The spare buffers of a thread and their capacities' sum.
struct Spares {
    list: Vec<Vec<u8>>,
    bytes: usize,
}

thread_local! {
    static SPARE: RefCell<Spares> = const {
        RefCell::new(Spares {
            list: Vec::new(),
            bytes: 0,
        })
    };
    static READ_BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Read buffers kept per thread, and the largest kept (a connection's
/// read chunk plus what it held before).
const READ_SPARES: usize = 16;
const MAX_READ_KEPT: usize = 256 << 10;

/// An empty buffer with room for at least `capacity` bytes: the most
/// recently kept spare that is large enough, else a new one.
pub fn take(capacity: usize) -> Vec<u8> {
    let spare = SPARE
        .try_with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            let at = s.list.iter().rposition(|v| v.capacity() >= capacity)?;
            let v = s.list.swap_remove(at);
            s.bytes -= v.capacity();
            Some(v)
        })
        .ok()
        .flatten();
    spare.unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// Keeps `v` for a later `take` (emptied), unless it is too large. The
/// oldest spares make room for it: what the thread serves now decides
/// which sizes it keeps.
pub fn give(mut v: Vec<u8>) {
    if v.capacity() == 0 || v.capacity() > MAX_KEPT {
        return;
    }
    v.clear();
    // Thread teardown: the buffer is freed.
    let _ = SPARE.try_with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        while !s.list.is_empty() && (s.list.len() >= SPARES || s.bytes + v.capacity() > SPARE_BYTES)
        {
            let oldest = s.list.remove(0);
            s.bytes -= oldest.capacity();
        }
        let room = SPARES - s.list.len();
        s.list.reserve_exact(room);
        s.bytes += v.capacity();
        s.list.push(v);
    });
}

/// A socket read buffer of at least `len` bytes, all of them initialised
/// (what they hold is stale: the caller tracks its own data), so that a
/// connection starting to read again neither zeroes nor faults in fresh
/// memory. The buffer's length is its initialised part.
pub fn take_read_buffer(len: usize) -> Vec<u8> {
    let spare = READ_BUFFERS
        .try_with(|s| s.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten();
    let mut v = spare.unwrap_or_default();
    if v.len() < len {
        v.resize(len, 0);
    }
    v
}

/// Keeps a read buffer, its initialised length and all, for a later
/// `take_read_buffer`, unless it is too large or enough are kept.
pub fn give_read_buffer(v: Vec<u8>) {
    if v.is_empty() || v.capacity() > MAX_READ_KEPT {
        return;
    }
    let _ = READ_BUFFERS.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut()
            && s.len() < READ_SPARES
        {
            let room = READ_SPARES - s.len();
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
