//! RAM per cached object: fills a shard's index and segment bookkeeping with
//! millions of small objects (through the same placement and eviction code as
//! the store, with a null device) and divides the growth of the resident set
//! by the number of objects indexed. Target: at most 16 bytes per object.
//!
//! Run: `cargo bench --bench index_memory` (add `-- --objects 8000000`).

use edgeslab::cache::index::{EntryLayout, Index, UNIT};
use edgeslab::cache::store::placement::insert_without_device;
use edgeslab::cache::store::region::Region;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let objects: u64 = args
        .iter()
        .position(|a| a == "--objects")
        .and_then(|i| args.get(i + 1))
        .map_or(4_000_000, |n| n.parse().expect("--objects N"));
    // Small objects: a 1 KiB body with its key and head fills two 512-byte units.
    let entry = 2 * UNIT;
    let segment = 16u64 << 20;
    let capacity = objects * entry;
    let segments = (capacity / segment) as u32 + 8;
    let before = resident_bytes();
    let layout = EntryLayout::new(segments as u64, segment, 4 << 20).expect("layout");
    // The operator's estimate of the mean object size is right here.
    let index = Index::new(layout, capacity / entry);
    let mut region = Region::new(index, segments, segment, 1);
    for i in 0..objects {
        let hash = xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes());
        insert_without_device(&mut region, hash, entry).expect("fits a segment");
    }
    let after = resident_bytes();
    let n = region.index.len() as u64;
    let per_object = (after - before) as f64 / n as f64;
    println!(
        "index memory: {n} objects indexed ({objects} written, {} segments of 16 MiB)",
        segments
    );
    println!(
        "  table {} bytes, bookkeeping {} bytes, overflow drops {}",
        region.index.table_bytes(),
        region.bookkeeping_bytes(),
        region.index.overflow_drops()
    );
    println!(
        "  resident set growth {} bytes = {per_object:.2} bytes per object (target <= 16)",
        after - before
    );
    println!(
        "target: {}",
        if per_object <= 16.0 { "MET" } else { "NOT MET" }
    );
}
