//! Hot large objects come from RAM: the RAM tier lets in a large object's
//! chunks on the object's second request (its first hit after the fill),
//! after which hits of that object read nothing from the device; an object
//! asked for once (its fill) leaves nothing in RAM.
//! Every body is checked byte for byte, whole and in ranges. Held chunks
//! go to a plain viewer's socket by sendfile, their pages lent rather than
//! copied: the bytes lent are counted, and checked as every other byte is.

mod support;

use std::time::{Duration, Instant};
use support::*;

const SIZE: usize = 5 << 20;

fn body_of(target: &str) -> Vec<u8> {
    let n: u64 = target.rsplit('/').next().unwrap().parse().unwrap();
    bytes(SIZE, n)
}

fn start() -> (Origin, Edge) {
    start_refusing(&[])
}

/// `start`, with the edge under a seccomp filter that refuses `calls`
/// with EPERM (none: no filter).
fn start_refusing(calls: &[libc::c_long]) -> (Origin, Edge) {
    let origin = Origin::start(|seen| Script::ok("max-age=3600", body_of(&seen.target)));
    // One shard: every read goes through the same RAM tier.
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml("cores = [0]\n[cache]\nsize = \"512MiB\"\nram_size = \"64MiB\"\n")
        .refuse(calls)
        .start();
    (origin, edge)
}

/// An origin of `len`-byte objects (`/any/N`: seeded by N) and a
/// one-shard edge before it, with `toml` added to its config.
fn sized(len: usize, toml: &str) -> (Origin, Edge) {
    let origin = Origin::start(move |seen| {
        let n: u64 = seen.target.rsplit('/').next().unwrap().parse().unwrap();
        Script::ok("max-age=3600", bytes(len, n))
    });
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml(&format!("cores = [0]\n{toml}"))
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

#[test]
fn a_whole_entry_held_in_ram_is_lent_whole_and_in_a_range() {
    const LEN: usize = 100 << 10;
    let (origin, edge) = sized(LEN, "[cache]\nsize = \"256MiB\"\nram_size = \"64MiB\"\n");
    let whole = bytes(LEN, 7);
    let fills = || edge.metric("edgeslab_cache_fills_completed_total");
    let lent = || edge.metric("edgeslab_ram_lent_bytes_total");
    let fetch = || {
        let r = get(edge.addr, "/mid/7");
        assert_eq!(r.status, 200);
        assert!(r.body == whole, "the body differs");
        r
    };
    fetch();
    assert!(eventually(Duration::from_secs(20), || fills() == 1));
    // The first hit reads the device and promotes the entry to RAM.
    assert!(fetch().is_hit());
    let before = lent();
    for _ in 0..3 {
        assert!(fetch().is_hit());
    }
    assert_eq!(lent() - before, 3 * LEN as u64, "three whole bodies lent");
    let raw = "GET /mid/7 HTTP/1.1\r\nHost: test.local\r\nRange: bytes=70000-90001\r\nConnection: close\r\n\r\n";
    let r = request(edge.addr, raw.as_bytes());
    assert_eq!(r.status, 206);
    assert!(r.body == whole[70000..=90001], "the range's bytes differ");
    assert_eq!(lent() - before, 3 * LEN as u64 + 20002, "and the range's");
    assert_eq!(origin.count("/mid/7"), 1);
}

#[test]
fn a_viewer_that_stops_reading_lent_pages_is_cut_off_and_others_are_served() {
    const BIG: usize = 24 << 20;
    let (origin, edge) = sized(
        BIG,
        "[listen]\nio_timeout = \"1s\"\n[cache]\nsize = \"512MiB\"\nram_size = \"64MiB\"\n",
    );
    let whole = bytes(BIG, 3);
    let fills = || edge.metric("edgeslab_cache_fills_completed_total");
    let lent = || edge.metric("edgeslab_ram_lent_bytes_total");
    assert_eq!(get(edge.addr, "/huge/3").body.len(), BIG);
    assert!(eventually(Duration::from_secs(30), || fills() == 1));
    // The first hit lets the chunks into RAM; from then on they are lent.
    assert!(get(edge.addr, "/huge/3").body == whole);
    let before = lent();
    // It reads nothing while the edge waits past io_timeout for room.
    let mut stalled = stalled_viewer(edge.addr, "/huge/3", Duration::from_secs(4));
    let t = Instant::now();
    let r = get(edge.addr, "/huge/3");
    assert!(r.is_hit() && r.body == whole, "others are served meanwhile");
    assert!(t.elapsed() < Duration::from_secs(10));
    let raw = drain(&mut stalled, Duration::from_secs(30));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let got = &raw[end + 4..];
    assert!(got.len() < BIG, "cut off after {} bytes", got.len());
    assert!(whole.starts_with(got), "a wrong byte reached the viewer");
    assert!(lent() - before >= BIG as u64, "the bodies were lent");
    assert_eq!(origin.count("/huge/3"), 1, "every other request was a hit");
}

/// `start_refusing(calls)`, and a 5 MiB object filled and then let into
/// RAM by its first hit. Returns the origin, the edge and the object's path.
fn filtered(calls: &[libc::c_long]) -> (Origin, Edge, &'static str) {
    let (origin, edge) = start_refusing(calls);
    let path = "/big/4";
    assert!(!fetch_whole(&edge, path).is_hit());
    let fills = || edge.metric("edgeslab_cache_fills_completed_total");
    assert!(eventually(Duration::from_secs(20), || fills() == 1));
    assert!(fetch_whole(&edge, path).is_hit());
    assert!(edge.metric("edgeslab_cache_ram_chunks") >= 5);
    (origin, edge, path)
}

#[test]
fn under_a_unit_that_refuses_mounts_chunks_are_lent_from_memfds() {
    // The packaged unit's SystemCallFilter=~@mount refuses the new mount
    // calls a private tmpfs needs.
    let (origin, edge, path) = filtered(&[
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_mount,
    ]);
    let lent = || edge.metric("edgeslab_ram_lent_bytes_total");
    let before = lent();
    for _ in 0..3 {
        assert!(fetch_whole(&edge, path).is_hit());
    }
    assert!(
        lent() - before >= 3 * (SIZE as u64 - (64 << 10)),
        "chunks are lent: {}",
        lent() - before
    );
    assert!(
        edge.stderr().contains("RAM chunks in memfd pages"),
        "the edge says where its chunks are:\n{}",
        edge.stderr()
    );
    assert_eq!(origin.count(path), 1);
}

#[test]
fn when_sendfile_is_refused_held_chunks_are_copied_whole() {
    let (origin, edge, path) = filtered(&[libc::SYS_sendfile]);
    let lent = || edge.metric("edgeslab_ram_lent_bytes_total");
    let chunk_hits = || edge.metric("edgeslab_cache_ram_chunk_hits_total");
    let hits_before = chunk_hits();
    for _ in 0..3 {
        assert!(fetch_whole(&edge, path).is_hit());
    }
    // A range across chunk boundaries, too.
    let whole = body_of(path);
    let raw = "GET /big/4 HTTP/1.1\r\nHost: test.local\r\nRange: bytes=1000000-3200000\r\nConnection: close\r\n\r\n";
    let r = request(edge.addr, raw.as_bytes());
    assert_eq!(r.status, 206);
    assert!(
        r.body == whole[1_000_000..=3_200_000],
        "the range's bytes differ"
    );
    assert_eq!(lent(), 0, "nothing was lent");
    assert!(chunk_hits() - hits_before >= 15, "the chunks came from RAM");
    let log = edge.stderr();
    assert_eq!(
        log.matches("sendfile(2) refused").count(),
        1,
        "said once, not per chunk:\n{log}"
    );
    assert_eq!(origin.count(path), 1);
}
