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

/// Everything `s` receives until the peer closes, fails, or falls silent
/// for 15 s; at most `within` in all.
pub fn drain(s: &mut std::net::TcpStream, within: std::time::Duration) -> Vec<u8> {
    use std::io::Read;
    s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// A viewer that asks for `path` and then reads nothing for `quiet`; its
/// connection, to drain (see `drain`) once the edge has given up on it.
pub fn stalled_viewer(
    addr: std::net::SocketAddr,
    path: &str,
    quiet: std::time::Duration,
) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes())
        .expect("request");
    std::thread::sleep(quiet);
    s
}

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
