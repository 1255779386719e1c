//! Hot large objects come from RAM: the RAM tier lets in a large object's
//! chunks on the object's second request (its first hit after the fill),
//! after which hits of that object read nothing from the device; an object
//! asked for once (its fill) leaves nothing in RAM.
//! Every body is checked byte for byte, whole and in ranges. Held chunks
//! go to a plain viewer's socket by sendfile, their pages lent rather than
//! copied: the bytes lent are counted, and checked as every other byte is.

mod support;

use std::time::Duration;
use support::*;

const SIZE: usize = 5 << 20;

fn body_of(target: &str) -> Vec<u8> {
    let n: u64 = target.rsplit('/').next().unwrap().parse().unwrap();
    bytes(SIZE, n)
}

fn start() -> (Origin, Edge) {
    let origin = Origin::start(|seen| Script::ok("max-age=3600", body_of(&seen.target)));
    // One shard: every read goes through the same RAM tier.
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml("cores = [0]\n[cache]\nsize = \"512MiB\"\nram_size = \"64MiB\"\n")
        .start();
    (origin, edge)
}

fn fetch_whole(edge: &Edge, path: &str) -> Response {
    let r = get(edge.addr, path);
    assert_eq!(r.status, 200, "{path}");
    assert!(r.body == body_of(path), "{path}: the body differs");
    r
}

#[test]
fn a_hot_large_object_is_served_from_ram_after_its_first_hit() {
    let (origin, edge) = start();
    let fills = || edge.metric("edgeslab_cache_fills_completed_total");
    let reads = || edge.metric("edgeslab_cache_device_reads_total");
    let chunk_hits = || edge.metric("edgeslab_cache_ram_chunk_hits_total");
    let chunks = || edge.metric("edgeslab_cache_ram_chunks");
    let lent = || edge.metric("edgeslab_ram_lent_bytes_total");

    assert!(!fetch_whole(&edge, "/big/1").is_hit());
    assert!(eventually(Duration::from_secs(20), || fills() == 1));
    assert_eq!(chunks(), 0, "the fill copies nothing into RAM");
    // The fill remembered its chunks: the first hit lets them in.
    assert!(fetch_whole(&edge, "/big/1").is_hit());
    let held = chunks();
    assert!(held >= 5, "a 5 MiB object's chunks are held: {held}");
    let (reads_before, hits_before, lent_before) = (reads(), chunk_hits(), lent());
    for _ in 0..5 {
        assert!(fetch_whole(&edge, "/big/1").is_hit());
    }
    // All but a short last chunk (under 64 KiB, copied) is lent.
    let lent_now = lent() - lent_before;
    assert!(
        lent_now >= 5 * (SIZE as u64 - (64 << 10)) && lent_now <= 5 * SIZE as u64,
        "bytes lent by five hits of {SIZE}: {lent_now}"
    );
    assert_eq!(
        reads() - reads_before,
        0,
        "hits of a hot object read nothing"
    );
    assert!(
        chunk_hits() - hits_before >= 5 * held,
        "every chunk came from RAM"
    );
    // A range across chunk boundaries, from RAM.
    let whole = body_of("/big/1");
    let (first, last) = (1_000_000usize, 3_200_000usize);
    let raw = format!(
        "GET /big/1 HTTP/1.1\r\nHost: test.local\r\nRange: bytes={first}-{last}\r\nConnection: close\r\n\r\n"
    );
    let r = request(edge.addr, raw.as_bytes());
    assert_eq!(r.status, 206);
    assert!(r.is_hit(), "{}", r.cache_status());
    assert!(r.body == whole[first..=last], "the range's bytes differ");
    assert_eq!(reads() - reads_before, 0);
    assert!(
        lent() - lent_before - lent_now >= (last - first) as u64 / 2,
        "a range's pieces of held chunks are lent too"
    );
    assert_eq!(origin.count("/big/1"), 1, "{:?}", origin.seen());
}

#[test]
fn an_object_asked_for_once_leaves_nothing_in_ram_and_the_tier_keeps_its_size() {
    let (origin, edge) = start();
    let fills = || edge.metric("edgeslab_cache_fills_completed_total");
    // Twenty 5 MiB objects, 100 MiB in all, through a 64 MiB tier.
    let paths: Vec<String> = (100..120).map(|n| format!("/big/{n}")).collect();
    for p in &paths {
        fetch_whole(&edge, p);
    }
    assert!(eventually(Duration::from_secs(30), || fills() == 20));
    assert_eq!(
        edge.metric("edgeslab_cache_ram_chunks"),
        0,
        "objects asked for once keep nothing in RAM"
    );
    // Read each twice: the tier lets chunks in, up to its size.
    for _ in 0..2 {
        for p in &paths {
            assert!(fetch_whole(&edge, p).is_hit());
        }
    }
    let ram = edge.metric("edgeslab_cache_ram_bytes");
    assert!(edge.metric("edgeslab_cache_ram_chunks") > 0);
    assert!(
        ram <= 64 << 20,
        "the RAM tier holds {ram} B, over its 64 MiB"
    );
    for p in &paths {
        assert_eq!(origin.count(p), 1, "{p}");
    }
}
