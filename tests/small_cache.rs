//! A small cache on several cores, through the real binary: the configured
//! segment size leaves too few segments per shard, so the edge starts with
//! smaller segments, says so in its log, and keeps its objects across a
//! restart with the same configuration (the shrunk layout is adopted, not
//! re-formatted).

mod support;

use support::*;

#[test]
fn a_64_mib_cache_on_two_cores_shrinks_its_segments_and_keeps_objects() {
    let small = bytes(5_000, 1);
    let large = big_body(3_000_000);
    let objects = [("/small", small.clone()), ("/large", large.clone())];
    let origin = Origin::start(move |seen| match seen.target.as_str() {
        "/small" => Script::ok("max-age=3600", small.clone()),
        _ => Script::ok("max-age=3600", large.clone()),
    });
    let dir = TempDir::new("small-cache");
    let edge_in_dir = Edge::builder()
        .origin(origin.addr)
        .toml("[cache]\nsize = \"64MiB\"\nsegment_size = \"16MiB\"\n")
        .args(["--cores", "0,1"])
        .dir(dir.path());

    let mut edge = edge_in_dir.start();
    assert_eq!(edge.shards, 2);
    let log = edge.stderr();
    assert!(
        log.contains("cache.segment_size 16MiB leaves")
            && log.contains("using 4MiB segments")
            && log.matches("cache.segment_size 16MiB leaves").count() == 1,
        "the log says once which segment size is used and why:\n{log}"
    );
    for (path, body) in &objects {
        let miss = get(edge.addr, path);
        assert!(miss.complete && miss.body == *body, "{path} miss");
        let hit = get(edge.addr, path);
        assert!(hit.is_hit(), "{path}: {}", hit.cache_status());
        assert!(hit.body == *body, "{path} hit body differs");
    }
    assert!(edge.stop().expect("exit").success());

    let edge = edge_in_dir.start();
    let log = edge.stderr();
    assert!(
        log.contains("using 4MiB segments") && !log.contains("re-formatting"),
        "a restart with the same config keeps the shrunk layout:\n{log}"
    );
    let before = origin.requests();
    for (path, body) in &objects {
        let r = get(edge.addr, path);
        assert!(r.is_hit(), "{path} after restart: {}", r.cache_status());
        assert!(r.body == *body, "{path} differs after restart");
    }
    assert_eq!(origin.requests(), before, "nothing fetched again");
}
