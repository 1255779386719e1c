//! Replays the request traces in `../shared/traces/` (or `$EDGESLAB_TRACES`)
//! through the store's own index, eviction and placement code — the
//! placement step machine driven with no device, as `insert_without_device`
//! does — and prints the byte miss ratio beside
//! the reference results of that folder's README, plus an exact LRU computed
//! here as a check that the trace is read the same way.
//!
//! Run: `cargo bench --bench trace_replay` (add `-- --segment 8MiB` etc.).

use edgeslab::cache::index::{EntryLayout, Index, UNIT};
use edgeslab::cache::store::eviction::EvictionParams;
use edgeslab::cache::store::layout::ENTRY_HEADER_SIZE;
use edgeslab::cache::store::placement::insert_without_device;
use edgeslab::cache::store::region::Region;
use std::collections::HashMap;
use std::path::PathBuf;

/// (policy, byte miss ratio) pairs at one capacity.
type Refs = [(&'static str, f64); 2];

/// Reference byte miss ratios (libCacheSim 0.3.5) from the traces' README.
const REFERENCE: &[(&str, Refs, Refs)] = &[
    (
        "zipf-0.8.bin",
        [("LRU", 0.598), ("S3-FIFO", 0.504)],
        [("LRU", 0.505), ("S3-FIFO", 0.429)],
    ),
    (
        "zipf-1.0.bin",
        [("LRU", 0.276), ("S3-FIFO", 0.224)],
        [("LRU", 0.221), ("S3-FIFO", 0.182)],
    ),
];

/// Bytes a stored object takes besides its body: entry header, a key like
/// "http://host:80/path/123456", and a typical response head.
const OVERHEAD: u64 = ENTRY_HEADER_SIZE as u64 + 40 + 200;

fn traces_dir() -> PathBuf {
    if let Ok(d) = std::env::var("EDGESLAB_TRACES") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/traces")
}

fn load(path: &PathBuf) -> Vec<(u32, u32)> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    raw.chunks_exact(8)
        .map(|c| {
            (
                u32::from_le_bytes(c[0..4].try_into().expect("4 bytes")),
                u32::from_le_bytes(c[4..8].try_into().expect("4 bytes")),
            )
        })
        .collect()
}

fn hash_of(id: u32) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&id.to_le_bytes())
}

/// Byte miss ratio of our store's region at `capacity` bytes.
fn replay_region(
    trace: &[(u32, u32)],
    capacity: u64,
    segment: u64,
    params: EvictionParams,
) -> (f64, u64) {
    let segments = (capacity / segment) as u32;
    let max_entry = 4 << 20;
    let layout = EntryLayout::new(segments as u64, segment, max_entry).expect("layout");
    // Size the index as an operator would: from the mean object size.
    let index = Index::new(layout, capacity / (150 << 10) * 2);
    let mut region = Region::with_params(index, segments, segment, 1, params);
    let (mut missed, mut total) = (0u64, 0u64);
    for &(id, size) in trace {
        let size = size as u64;
        total += size;
        let hash = hash_of(id);
        if region.index.lookup(hash).is_some() {
            continue;
        }
        missed += size;
        let len = (size + OVERHEAD).div_ceil(UNIT) * UNIT;
        // Every object fits a segment here; one that did not would simply
        // stay a miss, as in the store.
        let _ = insert_without_device(&mut region, hash, len);
    }
    (missed as f64 / total as f64, region.stats().reinserted)
}

/// Exact object-level LRU with a byte capacity, as a check of the reading.
fn replay_lru(trace: &[(u32, u32)], capacity: u64) -> f64 {
    const NIL: usize = usize::MAX;
    struct Node {
        id: u32,
        size: u64,
        prev: usize,
        next: usize,
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut at: HashMap<u32, usize> = HashMap::new();
    let (mut head, mut tail) = (NIL, NIL); // head = most recent
    let mut used = 0u64;
    let (mut missed, mut total) = (0u64, 0u64);
    macro_rules! unlink {
        ($i:expr) => {{
            let (p, n) = (nodes[$i].prev, nodes[$i].next);
            if p != NIL {
                nodes[p].next = n
            } else {
                head = n
            }
            if n != NIL {
                nodes[n].prev = p
            } else {
                tail = p
            }
        }};
    }
    macro_rules! push_front {
        ($i:expr) => {{
            nodes[$i].prev = NIL;
            nodes[$i].next = head;
            if head != NIL {
                nodes[head].prev = $i;
            }
            head = $i;
            if tail == NIL {
                tail = $i;
            }
        }};
    }
    for &(id, size) in trace {
        let size = size as u64;
        total += size;
        if let Some(&i) = at.get(&id) {
            unlink!(i);
            push_front!(i);
            continue;
        }
        missed += size;
        if size > capacity {
            continue;
        }
        while used + size > capacity && tail != NIL {
            let victim = tail;
            unlink!(victim);
            used -= nodes[victim].size;
            at.remove(&nodes[victim].id);
            free.push(victim);
        }
        let node = Node {
            id,
            size,
            prev: NIL,
            next: NIL,
        };
        let i = match free.pop() {
            Some(i) => {
                nodes[i] = node;
                i
            }
            None => {
                nodes.push(node);
                nodes.len() - 1
            }
        };
        push_front!(i);
        at.insert(id, i);
        used += size;
    }
    missed as f64 / total as f64
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let dir = traces_dir();
    let segment: u64 = arg("--segment")
        .map(|s| {
            parse_size::Config::new()
                .with_binary()
                .parse_size(&s)
                .expect("--segment size")
        })
        .unwrap_or(16 << 20);
    let mut params = EvictionParams::default();
    if let Some(s) = arg("--small-share") {
        params.small_share = s.parse().expect("--small-share");
    }
    if let Some(s) = arg("--promote-hits") {
        params.promote_hits = s.parse().expect("--promote-hits");
    }
    println!(
        "trace replay: byte miss ratio (lower is better), segments of {} MiB, {params:?}",
        segment >> 20
    );
    println!(
        "{:<14} {:>5} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "trace", "cap", "edgeslab", "LRU(here)", "LRU(ref)", "S3F(ref)", "vs LRU", "vs S3F"
    );
    let mut all_ok = true;
    for (file, at5, at10) in REFERENCE {
        let path = dir.join(file);
        if !path.exists() {
            println!(
                "{file}: not found in {} (set EDGESLAB_TRACES); skipped",
                dir.display()
            );
            all_ok = false;
            continue;
        }
        let trace = load(&path);
        let mut sizes: HashMap<u32, u32> = HashMap::new();
        for &(id, size) in &trace {
            sizes.entry(id).or_insert(size);
        }
        let working_set: u64 = sizes.values().map(|&s| s as u64).sum();
        for (share, refs) in [(0.05, at5), (0.10, at10)] {
            let capacity = (working_set as f64 * share) as u64;
            let (ours, reinserted) = replay_region(&trace, capacity, segment, params);
            let lru_here = replay_lru(&trace, capacity);
            let (lru_ref, s3_ref) = (refs[0].1, refs[1].1);
            let beats_lru = ours < lru_ref;
            let near_s3 = ours <= s3_ref + 0.02;
            all_ok &= beats_lru && near_s3;
            println!(
                "{:<14} {:>4.0}% {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>9} {:>9}   (reinserted {reinserted})",
                file,
                share * 100.0,
                ours,
                lru_here,
                lru_ref,
                s3_ref,
                if beats_lru { "better" } else { "WORSE" },
                if near_s3 {
                    format!("{:+.3}", ours - s3_ref)
                } else {
                    format!("{:+.3}!", ours - s3_ref)
                },
            );
        }
    }
    println!(
        "target: below LRU and within 0.02 of S3-FIFO on all four: {}",
        if all_ok { "MET" } else { "NOT MET" }
    );
}
