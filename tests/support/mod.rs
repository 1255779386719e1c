//! Test harness: the real `edgeslab` binary on loopback, a scripted origin
//! whose every response a test decides, and a small raw HTTP client. Every
//! process started here is stopped on drop, every wait is bounded.
// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

mod client;
mod edge;
mod origin;
mod process;

pub use client::*;
pub use edge::*;
pub use origin::*;
pub use process::*;

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
