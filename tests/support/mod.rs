//! Test harness: the real `edgeslab` binary on loopback, a scripted origin
//! whose every response a test decides, and a strict HTTP client.
//!
//! The contract every test can rely on:
//! - No edgeslab code reads or writes HTTP here: the client and the origin
//!   frame messages by [`wire`], this harness's own strict rules over
//!   httparse's tokenizer, so an encoder bug in edgeslab fails the test
//!   instead of being undone by the same bug in its decoder. The client
//!   panics with the raw bytes on anything a strict peer would reject; the
//!   origin answers such a request 400 and fails the test when dropped.
//! - Every process started here is stopped on drop, every wait is bounded
//!   in count and time, and everything listens on loopback at free ports.
//!
//! ```ignore
//! let origin = Origin::start(|seen| Script::ok("max-age=60", seen.target.clone().into_bytes()));
//! let edge = Edge::builder().origin(origin.addr).toml("[cache]\nram_size = 0\n").start();
//! let r = get(edge.addr, "/a");           // strict, one connection, Connection: close
//! assert!(r.complete && !r.is_hit());
//! assert!(get(edge.addr, "/a").is_hit());
//! assert_eq!(origin.count("/a"), 1);
//! ```

// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

mod client;
mod edge;
pub mod load;
mod origin;
mod process;
pub mod tls;
pub mod wire;

pub use client::{Client, Response, get, request};
pub use edge::{Edge, EdgeBuilder, merge_toml, metric_of_shard, metric_sum};
pub use origin::{Body, Gate, Origin, Script, Seen};
pub use process::{
    TempDir, bin, dies_with_test, eventually, fd_flags, free_loopback_addr, next_id, online_cpus,
    pin_this_thread, run_bin, threads,
};
pub use wire::{Framing, Violation};

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A large body that is cheap to make and to check: 64 KiB blocks of one
/// pseudo-random pattern, each stamped with its index, so every block
/// differs.
pub fn big_body(len: usize) -> Vec<u8> {
    let block = bytes(65_536, 99);
    let mut out = Vec::with_capacity(len);
    let mut i = 0u64;
    while out.len() < len {
        let mut b = block.clone();
        b[..8].copy_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&b);
        i += 1;
    }
    out.truncate(len);
    out
}
