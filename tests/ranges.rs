//! Byte ranges (RFC 9110 §14) through the binary: 206 with `Content-Range`,
//! `multipart/byteranges`, 416, `If-Range`, on hits (small objects, chunked
//! large ones, a 2 GiB one) and on misses as the object arrives, for the
//! fetching request and for a coalesced follower; real clients (curl, wget)
//! and a video player's access pattern. Multipart bodies are parsed by hand
//! (`range_support/multipart.rs`), never by edgeslab's code.

mod range_support;
mod support;

use range_support::*;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn one_range_on_a_hit_is_a_206_with_exactly_its_bytes() {
    let origin = origin();
    let edge = edge(&origin);
    // A small object (served from one stored entry) and one stored as
    // chunks of about 1 MiB, whose ranges cross chunk boundaries.
    for (path, len) in [("/obj/1000", 1000), ("/obj/3500000", 3_500_000)] {
        let whole = object(len);
        let full = get(edge.addr, path);
        assert_whole(&full, &whole, "the miss");
        let full = get(edge.addr, path);
        assert!(full.is_hit(), "{}", full.cache_status());
        assert_whole(&full, &whole, "a full hit");
        assert_eq!(full.header("accept-ranges"), Some("bytes"), "{path}");

        let r = ranged(edge.addr, path, "bytes=10-19");
        assert!(r.is_hit(), "{}", r.cache_status());
        assert_single(&r, &whole, 10, 19);
        assert_eq!(r.header("content-type"), Some(CONTENT_TYPE));
        assert_eq!(r.header("etag"), Some("\"v1\""));
        assert_single(
            &ranged(edge.addr, path, "bytes=-5"),
            &whole,
            len - 5,
            len - 1,
        );
        assert_single(&ranged(edge.addr, path, "bytes=0-0"), &whole, 0, 0);
        let from = len - 123;
        let open = ranged(edge.addr, path, &format!("bytes={from}-"));
        assert_single(&open, &whole, from, len - 1);
        let past = ranged(edge.addr, path, &format!("bytes={from}-{}", len * 10));
        assert_single(&past, &whole, from, len - 1);
        // A suffix longer than the object is all of it, as a 206.
        let all = ranged(edge.addr, path, &format!("bytes=-{}", len + 1));
        assert_single(&all, &whole, 0, len - 1);
        assert_eq!(
            origin.count(path),
            1,
            "{path}: ranges are answered from the cache"
        );
    }
    let whole = object(3_500_000);
    for (first, last) in [
        (1_000_000, 1_100_000),
        (1_048_000, 1_049_000),
        (500_000, 3_200_000),
        (0, 3_499_998),
    ] {
        let r = ranged(edge.addr, "/obj/3500000", &format!("bytes={first}-{last}"));
        assert!(r.is_hit(), "{}", r.cache_status());
        assert_single(&r, &whole, first, last);
    }
}

#[test]
fn several_ranges_on_a_hit_are_multipart_byteranges() {
    let origin = origin();
    let edge = edge(&origin);
    for (path, len) in [("/obj/1000", 1000), ("/obj/3500000", 3_500_000)] {
        let whole = object(len);
        get(edge.addr, path);
        let r = ranged(edge.addr, path, "bytes=0-9, 500-509,-10");
        assert!(r.is_hit(), "{}", r.cache_status());
        assert_multipart(&r, &whole, &[(0, 9), (500, 509), (len - 10, len - 1)]);
        // Out of order, and (on the large object) across chunks.
        let r = ranged(
            edge.addr,
            path,
            &format!("bytes={}-,0-0,100-199", len - 300),
        );
        assert_multipart(&r, &whole, &[(len - 300, len - 1), (0, 0), (100, 199)]);
        // An unsatisfiable spec among satisfiable ones is dropped.
        let r = ranged(edge.addr, path, &format!("bytes=1-2,{len}-,3-4"));
        assert_multipart(&r, &whole, &[(1, 2), (3, 4)]);
        // Overlapping ranges adding up to more than the object: the whole,
        // once, as a 200.
        let half = len / 2;
        let r = ranged(edge.addr, path, &format!("bytes=0-{},{half}-", half + 10));
        assert!(r.is_hit(), "{}", r.cache_status());
        assert_whole(&r, &whole, "overlapping ranges");
        assert_whole(&ranged(edge.addr, path, "bytes=0-,0-"), &whole, "0-,0-");
        assert_eq!(origin.count(path), 1);
    }
}

#[test]
fn an_unsatisfiable_range_is_416_and_an_invalid_one_gets_the_whole() {
    let origin = origin();
    let edge = edge(&origin);
    for (path, len) in [("/obj/1000", 1000), ("/obj/3500000", 3_500_000)] {
        let whole = object(len);
        get(edge.addr, path);
        for range in [
            format!("bytes={len}-"),
            format!("bytes={}-{}", len + 5, len + 10),
            "bytes=-0".to_string(),
            format!("bytes={len}-,{}-", len * 2),
        ] {
            let r = ranged(edge.addr, path, &range);
            assert_eq!(
                r.status,
                416,
                "{range}: {}",
                String::from_utf8_lossy(&r.head)
            );
            assert!(r.is_hit(), "{}", r.cache_status());
            let unsatisfied = format!("bytes */{len}");
            assert_eq!(r.header("content-range"), Some(unsatisfied.as_str()));
            assert!(r.body.is_empty(), "{range}");
            assert_eq!(r.framing, Framing::Length(0), "{range}");
        }
        // Broken syntax and other units are ignored (RFC 9110 §14.2).
        for range in [
            "bytes=5-1",
            "items=0-9",
            "bytes=abc",
            "bytes 0-9",
            "bytes=",
            "bytes=1-2-3",
            "bytes=--5",
        ] {
            let r = ranged(edge.addr, path, range);
            assert!(r.is_hit(), "{}", r.cache_status());
            assert_whole(&r, &whole, range);
        }
        assert_eq!(origin.count(path), 1);
    }
}

#[test]
fn if_range_applies_the_range_only_to_the_same_representation() {
    let origin = origin();
    let edge = edge(&origin);
    let whole = object(1000);
    let path = "/obj/1000";
    get(edge.addr, path);
    let with_if_range = |path: &str, cond: &str| {
        request(
            edge.addr,
            &raw(
                "GET",
                path,
                &[("Range", "bytes=100-199"), ("If-Range", cond)],
            ),
        )
    };
    assert_single(&with_if_range(path, "\"v1\""), &whole, 100, 199);
    assert_whole(&with_if_range(path, "\"v0\""), &whole, "another ETag");
    assert_whole(&with_if_range(path, "W/\"v1\""), &whole, "a weak ETag");
    assert_single(&with_if_range(path, LAST_MODIFIED), &whole, 100, 199);
    let later = "Mon, 06 Nov 2023 08:00:01 GMT";
    assert_whole(&with_if_range(path, later), &whole, "another date");
    let earlier = "Mon, 06 Nov 2023 07:59:59 GMT";
    assert_whole(&with_if_range(path, earlier), &whole, "an earlier date");
    // A stored weak ETag never matches, whatever the viewer sends.
    let weak = "/weak/1000";
    get(edge.addr, weak);
    assert_whole(&with_if_range(weak, "W/\"v1\""), &whole, "weak stored");
    assert_whole(
        &with_if_range(weak, "\"v1\""),
        &whole,
        "weak stored, strong asked",
    );
    assert_single(&with_if_range(weak, LAST_MODIFIED), &whole, 100, 199);
    assert_eq!(origin.requests(), 2, "every answer came from the cache");
}

#[test]
fn head_with_a_range_gets_the_whole_head() {
    let origin = origin();
    let edge = edge(&origin);
    let path = "/obj/5000";
    let head = raw("HEAD", path, &[("Range", "bytes=0-9")]);
    // On a miss (fetched with GET, stored behind the answer) and on a hit.
    for hit in [false, true] {
        let r = request(edge.addr, &head);
        assert_eq!(
            r.status,
            200,
            "hit {hit}: {}",
            String::from_utf8_lossy(&r.head)
        );
        assert_eq!(r.is_hit(), hit, "{}", r.cache_status());
        assert_eq!(r.header("content-length"), Some("5000"));
        assert_eq!(r.header("content-range"), None);
        assert!(r.body.is_empty());
        if !hit {
            assert!(eventually(Duration::from_secs(10), || edge
                .metric("edgeslab_cache_fills_completed_total")
                == 1));
        }
    }
    let seen = origin.last().expect("the fetch");
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.header("range"), None);
    assert_eq!(origin.count(path), 1);
}

#[test]
fn a_range_on_a_miss_fetches_the_whole_object_once_and_stores_it() {
    let origin = origin();
    let edge = edge(&origin);
    // The viewer has its range before the fill ends; the later requests
    // wait for the fill, to be hits rather than followers.
    let fills = || edge.metric("edgeslab_cache_fills_completed_total");
    let stored = |n| assert!(eventually(Duration::from_secs(20), || fills() == n));
    for (n, (path, len)) in [("/obj/1000", 1000), ("/obj/3500000", 3_500_000)]
        .into_iter()
        .enumerate()
    {
        let whole = object(len);
        let r = request(
            edge.addr,
            &raw(
                "GET",
                path,
                &[("Range", "bytes=100-299"), ("If-Range", "\"v1\"")],
            ),
        );
        assert!(
            r.cache_status().contains("fwd=uri-miss; stored"),
            "{}",
            r.cache_status()
        );
        assert_single(&r, &whole, 100, 299);
        let seen = origin.last().expect("the fetch");
        assert_eq!((seen.method.as_str(), seen.target.as_str()), ("GET", path));
        assert_eq!(seen.header("range"), None, "the whole object is fetched");
        assert_eq!(seen.header("if-range"), None);
        stored(n as u64 + 1);
        let full = get(edge.addr, path);
        assert!(full.is_hit(), "{}", full.cache_status());
        assert_whole(&full, &whole, "after a ranged miss");
        assert_eq!(origin.count(path), 1);
    }
    // A range past the end of a missing object: 416, and still stored.
    let r = ranged(edge.addr, "/obj/2000", "bytes=2000-");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */2000"));
    assert!(r.body.is_empty() && !r.is_hit());
    stored(3);
    assert!(get(edge.addr, "/obj/2000").is_hit());
    // Several ranges on a miss, or an object of unknown length, get the
    // whole object (as README says), and it is stored too.
    let whole = object(3000);
    let r = ranged(edge.addr, "/obj/3000", "bytes=0-9,20-29");
    assert_whole(&r, &whole, "several ranges on a miss");
    let r = ranged(edge.addr, "/unsized/3000", "bytes=0-9");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-range"), None);
    assert!(r.body == whole, "unknown length: the whole body");
    stored(5);
    let r = ranged(edge.addr, "/unsized/3000", "bytes=0-9");
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_single(&r, &whole, 0, 9);
    assert_eq!(origin.count("/obj/3000") + origin.count("/unsized/3000"), 2);
}

/// An origin that sends the first `first` bytes of `whole`, then holds the
/// rest until `gate` opens (or 10 s pass), and an edge that waits for it.
fn gated(whole: &Arc<Vec<u8>>, first: usize, gate: &Gate) -> (Origin, Edge) {
    let origin = {
        let (whole, gate) = (whole.clone(), gate.clone());
        Origin::start(move |_| {
            Script::ok("max-age=600", Vec::new()).with(Body::Gated {
                data: whole.to_vec(),
                first,
                gate: gate.clone(),
            })
        })
    };
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml("[origin]\nidle_timeout = \"30s\"\n")
        .start();
    (origin, edge)
}

#[test]
fn a_range_on_a_miss_is_answered_before_the_origin_finishes() {
    let len = 3 << 20;
    let whole = Arc::new(bytes(len, 77));
    let gate = Gate::default();
    let (origin, edge) = gated(&whole, 1 << 20, &gate);
    let fills = || edge.metric("edgeslab_cache_fills_completed_total");
    // The request that fetches: its range lies in what the origin has sent.
    let leader_request = open_ranged("/video", "bytes=1000-1999");
    let mut leader = Client::connect(edge.addr);
    leader.send(&leader_request);
    let r = leader.read_response().expect("a response");
    assert!(
        r.cache_status().contains("fwd=uri-miss"),
        "{}",
        r.cache_status()
    );
    assert_single(&r, &whole, 1000, 1999);
    // Nothing was stored yet: the viewer has its bytes while the origin
    // still holds the rest (no timing involved).
    assert_eq!(fills(), 0, "the fill ended before the range was answered");
    // A second viewer of the same key follows the fill as it grows.
    let follower = ranged(edge.addr, "/video", "bytes=500000-500099");
    assert!(
        follower.cache_status().contains("collapsed"),
        "{}",
        follower.cache_status()
    );
    assert_single(&follower, &whole, 500_000, 500_099);
    let suffix = ranged(edge.addr, "/video", "bytes=-0");
    assert_eq!(suffix.status, 416, "a follower's unsatisfiable range");
    assert_eq!(
        suffix.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    assert_eq!(fills(), 0, "the origin still holds the rest");
    gate.open();
    assert!(eventually(Duration::from_secs(20), || fills() == 1));
    let full = get(edge.addr, "/video");
    assert!(full.is_hit(), "{}", full.cache_status());
    assert_whole(&full, &whole, "after the gated fill");
    assert_eq!(origin.count("/video"), 1);
}

#[test]
fn a_range_on_a_miss_does_not_hold_the_connection_until_the_object_is_stored() {
    let len = 3 << 20;
    let whole = Arc::new(bytes(len, 78));
    let gate = Gate::default();
    let (origin, edge) = gated(&whole, 1 << 20, &gate);
    let fills = || edge.metric("edgeslab_cache_fills_completed_total");
    // A player's probe on a keep-alive connection (Safari asks for
    // bytes=0-1 first); the origin holds most of the object.
    let mut c = Client::connect(edge.addr);
    c.send(&open_ranged("/movie", "bytes=0-1"));
    let r = c.read_response().expect("a response");
    assert_single(&r, &whole, 0, 1);
    // Its next request must not wait for the rest of the object: the
    // response says the connection ends, and it ends while the fill runs.
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_close();
    assert_eq!(fills(), 0, "the connection was held until the fill ended");
    // The player's next request, on a new connection, follows the fill.
    let next = ranged(edge.addr, "/movie", "bytes=2-99999");
    assert!(
        next.cache_status().contains("collapsed"),
        "{}",
        next.cache_status()
    );
    assert_single(&next, &whole, 2, 99_999);
    gate.open();
    assert!(eventually(Duration::from_secs(20), || fills() == 1));
    assert_whole(&get(edge.addr, "/movie"), &whole, "after the fill");
    assert_eq!(origin.count("/movie"), 1);
}

#[test]
fn a_range_of_a_2gib_cached_object_reads_and_sends_only_that_range() {
    const SIZE: usize = 2 << 30;
    let whole = Arc::new(big_body(SIZE));
    let origin = {
        let whole = whole.clone();
        Origin::start(move |_| Script::ok("max-age=3600", vec![]).with(Body::Shared(whole.clone())))
    };
    // One shard, so that the object fits in half its region.
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml("cores = [0]\n[cache]\nsize = \"4600MiB\"\nsegment_size = \"64MiB\"\nram_size = \"8MiB\"\n")
        .start();
    // The miss: the viewer's range is answered from the first bytes and it
    // goes away; the edge fetches and stores the whole object.
    let head = open_ranged("/big", "bytes=0-99");
    let mut c = Client::connect(edge.addr);
    c.send(&head);
    let r = c.read_response().expect("a response");
    assert_single(&r, &whole, 0, 99);
    drop(c);
    assert!(
        eventually(Duration::from_secs(240), || edge
            .metric("edgeslab_cache_fills_completed_total")
            == 1),
        "the 2 GiB object was stored"
    );
    let reads = || edge.metric("edgeslab_cache_device_reads_total");
    let sent = || edge.metric("edgeslab_sent_bytes_total");
    // The miss is counted once its request ends, just after the fill.
    assert!(eventually(Duration::from_secs(20), || sent() == 100));
    let gib = 1usize << 30;
    for (first, last) in [
        (gib - 50, gib + 49),
        (1_500_000_000, 1_500_000_000 + (5 << 20) - 1),
        (SIZE - 1000, SIZE - 1),
        (0, 0),
    ] {
        let (reads_before, sent_before) = (reads(), sent());
        let started = Instant::now();
        let r = ranged(edge.addr, "/big", &format!("bytes={first}-{last}"));
        assert!(r.is_hit(), "{}", r.cache_status());
        assert_single(&r, &whole, first, last);
        let n = (last + 1 - first) as u64;
        assert_eq!(
            sent() - sent_before,
            n,
            "body bytes sent for {first}-{last}"
        );
        // Only the chunks (~1 MiB each) holding the range, and the manifest.
        let chunks = n.div_ceil(1 << 20) + 1;
        let read = reads() - reads_before;
        assert!(
            read <= chunks + 2,
            "{first}-{last}: {read} device reads for {chunks} chunks"
        );
        eprintln!(
            "{first}-{last}: {read} device reads, {:?}",
            started.elapsed()
        );
    }
    let ranges = [(0, 99), (gib, gib + 99), (SIZE - 100, SIZE - 1)];
    let r = ranged(edge.addr, "/big", "bytes=0-99,1073741824-1073741923,-100");
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_eq!(r.status, 206);
    let parts = multipart(&r);
    assert_eq!(parts.len(), 3);
    for (p, (first, last)) in parts.iter().zip(ranges) {
        assert_eq!(p.content_range, format!("bytes {first}-{last}/{SIZE}"));
        assert!(p.data == whole[first..=last]);
    }
    assert_eq!(origin.count("/big"), 1);
}

#[test]
fn curl_fetches_a_range() {
    if !installed("curl") {
        return;
    }
    let origin = origin();
    let edge = edge(&origin);
    let whole = object(300_000);
    let dir = TempDir::new("curl");
    let url = format!("http://{}/obj/300000", edge.addr);
    // A miss, then a hit.
    for round in 0..2 {
        let (file, heads) = (dir.path().join("part"), dir.path().join("head"));
        run(Command::new("curl")
            .args(["-sS", "--fail", "--range", "100-199", "-o"])
            .arg(&file)
            .arg("-D")
            .arg(&heads)
            .arg(&url));
        let head = std::fs::read_to_string(&heads).expect("curl's head");
        assert!(
            head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\ncontent-range: bytes 100-199/300000\r\n"),
            "{head}"
        );
        assert_eq!(
            std::fs::read(&file).expect("curl's body"),
            &whole[100..200],
            "round {round}"
        );
    }
    assert_eq!(origin.count("/obj/300000"), 1);
}

#[test]
fn wget_resumes_a_cut_download() {
    if !installed("wget") || !installed("curl") {
        return;
    }
    let origin = origin();
    let edge = edge(&origin);
    let len = 2_500_000;
    let whole = object(len);
    let dir = TempDir::new("wget");
    let file = dir.path().join(len.to_string());
    let url = format!("http://{}/obj/{len}", edge.addr);
    // The download that was cut: its first 700 000 bytes.
    run(Command::new("curl")
        .args(["-sS", "--fail", "--range", "0-699999", "-o"])
        .arg(&file)
        .arg(&url));
    assert_eq!(std::fs::metadata(&file).expect("the prefix").len(), 700_000);
    let sent = || edge.metric("edgeslab_sent_bytes_total");
    // curl's request is counted once the edge has fetched the whole object.
    assert!(eventually(Duration::from_secs(20), || sent() == 700_000));
    let log = run(Command::new("wget")
        .args(["-c", "--no-verbose", "--tries=1"])
        .arg(&url)
        .current_dir(dir.path()));
    let got = std::fs::read(&file).expect("the resumed file");
    assert_eq!(got.len(), len, "{log}");
    assert!(
        got == whole,
        "the resumed file differs from the origin's bytes"
    );
    assert_eq!(
        sent() - 700_000,
        (len - 700_000) as u64,
        "wget was sent only the rest"
    );
    assert_eq!(origin.count(&format!("/obj/{len}")), 1);
    assert_only_files(dir.path(), &[&len.to_string()]);
}

#[test]
fn a_video_player_seeks_with_open_ended_ranges() {
    let origin = origin();
    let edge = edge(&origin);
    let len = 6_000_000;
    let path = format!("/obj/{len}");
    let whole = object(len);
    // Start playing (a miss), then seek forward, back and near the end,
    // each time reading a little and dropping the connection.
    for from in [0, 3_000_000, 5_999_000, 1_000_000, 4_194_303, 0] {
        let want = (len - from).min(64 << 10);
        let (status, fields, body) = seek(edge.addr, &path, from, want);
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(status, 206, "bytes={from}-: {fields:?}");
        let range = format!("bytes {from}-{}/{len}", len - 1);
        assert_eq!(field("content-range"), Some(range.as_str()));
        let rest = (len - from).to_string();
        assert_eq!(field("content-length"), Some(rest.as_str()));
        assert!(
            body == whole[from..from + want],
            "bytes={from}-: the bytes differ"
        );
    }
    // The abandoned first response still filled the cache, once.
    assert!(eventually(Duration::from_secs(20), || edge
        .metric("edgeslab_cache_fills_completed_total")
        == 1));
    let full = get(edge.addr, &path);
    assert!(full.is_hit(), "{}", full.cache_status());
    assert_whole(&full, &whole, "after the seeks");
    assert_eq!(origin.count(&path), 1);
}

#[test]
fn a_range_for_a_key_just_found_uncacheable_goes_to_the_origin() {
    let whole = object(10_000);
    let origin = {
        let whole = whole.clone();
        Origin::start(move |seen| match seen.header("range") {
            // The origin answers a range itself (bytes=A-B only, here).
            Some(range) => {
                let (a, b) = range
                    .strip_prefix("bytes=")
                    .and_then(|r| r.split_once('-'))
                    .expect("bytes=A-B");
                let (a, b): (usize, usize) = (a.parse().expect("A"), b.parse().expect("B"));
                Script::new(206, whole[a..=b].to_vec())
                    .header("Cache-Control", "no-store")
                    .header("Content-Range", &format!("bytes {a}-{b}/{}", whole.len()))
                    .header("X-Answered-By", "origin")
            }
            None => Script::ok("no-store", whole.clone()),
        })
    };
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml("[cache]\nhit_for_pass = \"60s\"\n")
        .start();
    // The first request learns that the key is uncacheable: it was fetched
    // whole (without its Range) and the edge cut the range from it.
    let first = ranged(edge.addr, "/private", "bytes=0-9");
    assert_single(&first, &whole, 0, 9);
    assert!(
        first.cache_status().contains("detail=no-store"),
        "{}",
        first.cache_status()
    );
    assert_eq!(origin.last().expect("a fetch").header("range"), None);
    // Within hit_for_pass, the Range reaches the origin as sent.
    let second = request(
        edge.addr,
        &raw(
            "GET",
            "/private",
            &[("Range", "bytes=100-199"), ("If-Range", "\"v9\"")],
        ),
    );
    assert_eq!(second.header("x-answered-by"), Some("origin"));
    assert_single(&second, &whole, 100, 199);
    assert!(
        second.cache_status().contains("detail=range"),
        "{}",
        second.cache_status()
    );
    let seen = origin.last().expect("a request");
    assert_eq!(seen.header("range"), Some("bytes=100-199"));
    assert_eq!(
        seen.header("if-range"),
        Some("\"v9\""),
        "If-Range goes with it"
    );
    assert_eq!(origin.count("/private"), 2);
    assert_eq!(edge.metric("edgeslab_cache_hit_for_pass_total"), 1);
}
