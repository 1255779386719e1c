//! O_DIRECT read throughput of the store against the raw device, measured
//! side by side in one run on the same file: 4 KiB random reads at depth 32
//! (store: lookup + read + verify of 4 KiB entries) and 1 MiB sequential
//! reads (store: chunks of large objects, read and verified). Prints each
//! rate and the store/raw ratio; target: at least 0.8 for both.
//!
//! The file lives in `$EDGESLAB_BENCH_DIR` or the temp dir, which must be a
//! filesystem that honours O_DIRECT (ext4, xfs; not tmpfs).
//! Run: `cargo bench --bench store_throughput` (add `-- --seconds 3`).

use edgeslab::cache::key::CacheKey;
use edgeslab::cache::owner::OwnerRouter;
use edgeslab::cache::store::device::{self, DeviceSpec};
use edgeslab::cache::store::eviction::EvictionParams;
use edgeslab::cache::store::{FillMeta, Lookup, ShardStore, StoreOptions, StoreStats};
use glommio::io::DmaFile;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SMALL_OBJECTS: u32 = 150_000;
const LARGE_OBJECTS: u32 = 24;
const LARGE_SIZE: usize = 24 << 20;
const DEPTH_RANDOM: usize = 32;
const DEPTH_SEQ: usize = 8;

fn small_key(i: u32) -> CacheKey {
    CacheKey::from_text(format!("http://bench:80/s/{i}"))
}

fn large_key(i: u32) -> CacheKey {
    CacheKey::from_text(format!("http://bench:80/l/{i}"))
}

const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=86400\r\n\r\n";

async fn put(cache: &OwnerRouter, key: &CacheKey, body: &[u8]) {
    let meta = FillMeta {
        key: key.as_str().to_string(),
        hash: key.hash(),
        head: HEAD.to_vec(),
        born_ms: 0,
        expires_ms: u64::MAX / 2,
        declared_len: None,
        variant: None,
    };
    let fill = cache.fill(key, meta, None).await;
    for piece in body.chunks(256 << 10) {
        fill.data(piece).await;
    }
    fill.finish(true).await;
}

struct Xorshift(Cell<u64>);
impl Xorshift {
    fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.set(x);
        x
    }
}

/// Runs `depth` concurrent loops of `op` for `secs`; returns the units (as
/// counted by `op`: reads, MiB) per second.
async fn rate<F, Fut>(depth: usize, secs: f64, op: F) -> f64
where
    F: Fn(u64) -> Fut + 'static,
    Fut: std::future::Future<Output = u64> + 'static,
{
    let op = Rc::new(op);
    let done = Rc::new(Cell::new(0u64));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..depth)
        .map(|t| {
            let (op, done) = (op.clone(), done.clone());
            glommio::spawn_local(async move {
                let mut n = t as u64 * 7919;
                while Instant::now() < deadline {
                    let units = op(n).await;
                    n += 1;
                    done.set(done.get() + units);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    done.get() as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .map_or(2.0, |s| s.parse().expect("--seconds N"));
    let dir = std::env::var("EDGESLAB_BENCH_DIR").map_or_else(|_| std::env::temp_dir(), Into::into);
    let path = dir.join(format!("edgeslab-throughput-{}.slab", std::process::id()));
    let dev = device::prepare(&DeviceSpec {
        path: &path,
        size: 2 << 30,
        segment_size: 16 << 20,
        shards: 1,
        avg_object_size: 4096,
        reformat: true,
        reformat_if_corrupt: false,
    })
    .expect("prepare the bench device");
    let path_for_exec = path.clone();
    glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(0))
        .spawn(move || async move {
            let opts = StoreOptions {
                max_object: 1 << 30,
                ram_bytes: 0,
                ram_max_object: 0,
                eviction: EvictionParams::default(),
                hit_for_pass: std::time::Duration::ZERO,
            };
            let store = ShardStore::open(&dev, 0, &opts, Arc::new(StoreStats::default())).await.expect("store");
            let cache = Rc::new(OwnerRouter::new(store, None, 0, 1, Default::default()));
            // Entries of exactly 4 KiB: header, key, head and body.
            let body_len = 4096 - 64 - small_key(0).as_str().len() - HEAD.len() - 8;
            let body = vec![0xA5u8; body_len];
            for i in 0..SMALL_OBJECTS {
                put(&cache, &small_key(i), &body[..body_len - (small_key(i).as_str().len() - small_key(0).as_str().len())]).await;
            }
            let large = vec![0x5Au8; LARGE_SIZE];
            for i in 0..LARGE_OBJECTS {
                put(&cache, &large_key(i), &large).await;
            }
            // A checkpoint writes the open segments: everything is on the device.
            cache.store().checkpoint().await.expect("flush");
            let raw = Rc::new(DmaFile::open(&path_for_exec).await.expect("raw open"));
            let geo = dev.geometry;
            // The raw reader reads where the store's data is, and only there:
            // a never-written stretch of the file reads as zeros without I/O.
            let per_segment = geo.segment_size - 4096;
            let small_segments = (SMALL_OBJECTS as u64 * 4096).div_ceil(per_segment);
            let small_start = geo.segment_offset(0, 0);
            let small_len = small_segments * geo.segment_size;
            let large_start = small_start + small_len;
            let large_len = (LARGE_OBJECTS as u64 * LARGE_SIZE as u64).div_ceil(per_segment) * geo.segment_size
                - geo.segment_size;
            println!(
                "store throughput: {} objects of 4 KiB, {} of {} MiB; O_DIRECT alignment {} B; {secs} s per run",
                SMALL_OBJECTS,
                LARGE_OBJECTS,
                LARGE_SIZE >> 20,
                raw.alignment()
            );

            let (mut raw_rand, mut store_rand, mut raw_seq, mut store_seq) = (vec![], vec![], vec![], vec![]);
            for _ in 0..3 {
                let rng = Rc::new(Xorshift(Cell::new(0x9E37_79B9_7F4A_7C15)));
                let (r, f) = (raw.clone(), rng.clone());
                raw_rand.push(
                    rate(DEPTH_RANDOM, secs, move |_| {
                        let (r, pos) = (r.clone(), small_start + (f.next() % (small_len / 4096)) * 4096);
                        async move {
                            r.read_at_aligned(pos, 4096).await.expect("raw read");
                            1
                        }
                    })
                    .await,
                );
                let (c, f) = (cache.clone(), rng.clone());
                store_rand.push(
                    rate(DEPTH_RANDOM, secs, move |_| {
                        let (c, k) = (c.clone(), small_key((f.next() % SMALL_OBJECTS as u64) as u32));
                        async move {
                            let Lookup::Found { loc, seq, bytes, buffered } = c.lookup(&k).await else { return 0 };
                            let e = c.read_entry(&k, loc, seq, bytes, &buffered).await.expect("store read");
                            assert!(e.inline_body().is_some());
                            1
                        }
                    })
                    .await,
                );
                let r = raw.clone();
                raw_seq.push(
                    rate(DEPTH_SEQ, secs, move |n| {
                        let r = r.clone();
                        // Each loop walks its own stretch of the data, 1 MiB at a time.
                        let block = n % (large_len >> 20);
                        async move {
                            r.read_at_aligned(large_start + (block << 20), 1 << 20).await.expect("raw read");
                            1
                        }
                    })
                    .await,
                );
                let c = cache.clone();
                store_seq.push(
                    rate(DEPTH_SEQ, secs, move |n| {
                        let c = c.clone();
                        let k = large_key((n % LARGE_OBJECTS as u64) as u32);
                        // A whole large object, as a hit streams it: its
                        // manifest once, then every chunk in order.
                        async move {
                            let Lookup::Found { loc, seq, bytes, buffered } = c.lookup(&k).await else { return 0 };
                            let e = c.read_entry(&k, loc, seq, bytes, &buffered).await.expect("manifest");
                            let (fill, chunks) = e.chunks().expect("a large object");
                            for (i, chunk) in chunks.iter().enumerate() {
                                let got = c.read_chunk(&k, fill, i as u32, chunk, &buffered).await.expect("chunk");
                                assert!(!got.data().is_empty());
                            }
                            chunks.len() as u64
                        }
                    })
                    .await,
                );
            }
            let (rr, sr, rs, ss) = (median(raw_rand), median(store_rand), median(raw_seq), median(store_seq));
            println!("  4 KiB random, depth {DEPTH_RANDOM}: raw {rr:>9.0} IOPS   store {sr:>9.0} IOPS   ratio {:.2}", sr / rr);
            println!(
                "  1 MiB sequential, depth {DEPTH_SEQ}: raw {:>7.0} MiB/s  store {:>7.0} MiB/s  ratio {:.2}",
                rs,
                ss,
                ss / rs
            );
            let ok = sr / rr >= 0.8 && ss / rs >= 0.8;
            println!("target: both ratios at least 0.8: {}", if ok { "MET" } else { "NOT MET" });
        })
        .expect("executor")
        .join()
        .expect("bench");
    let _ = std::fs::remove_file(&path);
}
