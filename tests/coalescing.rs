//! Request coalescing through the binary: concurrent misses for one key make
//! one origin request and the others read its fill as it grows, on any
//! shard; an uncacheable answer releases the waiters at once (and later
//! misses pass for a while); a failed leader hands the fetch to a waiter.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use support::*;

fn edge(origin: &Origin, extra: &str) -> Edge {
    Edge::builder().origin(origin.addr).toml(extra).start()
}

fn raw_get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Runs `n` viewers at once, alternating CPUs so that both shards take
/// some; each sends its request, then waits at `sent` before reading.
fn viewers<T: Send + 'static>(
    n: usize,
    sent: Arc<Barrier>,
    each: impl Fn(usize, Client) -> T + Send + Sync + 'static,
    addr: std::net::SocketAddr,
    path: &str,
) -> Vec<std::thread::JoinHandle<T>> {
    let each = Arc::new(each);
    let cpus = online_cpus();
    (0..n)
        .map(|i| {
            let (each, sent, raw) = (each.clone(), sent.clone(), raw_get(path));
            std::thread::spawn(move || {
                pin_this_thread(i % cpus);
                let mut c = Client::connect(addr);
                c.send(&raw);
                sent.wait();
                each(i, c)
            })
        })
        .collect()
}

#[test]
fn concurrent_misses_make_one_origin_request_and_followers_get_bytes_before_the_origin_ends() {
    let body = bytes(3 << 20, 11);
    let gate = Gate::default();
    let first = 256 << 10;
    let origin = {
        let (body, gate) = (body.clone(), gate.clone());
        Origin::start(move |_| {
            Script::ok("max-age=600", Vec::new()).with(Body::Gated {
                data: body.clone(),
                first,
                gate: gate.clone(),
            })
        })
    };
    let edge = edge(&origin, "");
    let n = 16;
    let sent = Arc::new(Barrier::new(n + 1));
    let early = Arc::new(AtomicUsize::new(0));
    let handles = {
        let early = early.clone();
        viewers(
            n,
            sent.clone(),
            move |_, mut c| {
                // Read the head and the first bytes while the origin holds
                // the rest: read-while-write, shown without timing.
                let mut got = Vec::new();
                let mut counted = false;
                let r = c
                    .read_response_streaming(&raw_get("/cold"), &mut |b: &[u8]| {
                        got.extend_from_slice(b);
                        if !counted && got.len() >= first {
                            counted = true;
                            early.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                    .expect("a response");
                (r, got)
            },
            edge.addr,
            "/cold",
        )
    };
    sent.wait();
    assert!(
        eventually(Duration::from_secs(20), || early.load(Ordering::SeqCst)
            == n),
        "every viewer got the first {first} bytes while the origin held the rest ({} did)",
        early.load(Ordering::SeqCst)
    );
    assert_eq!(
        origin.count("/cold"),
        1,
        "one origin request for {n} viewers"
    );
    gate.open();
    let mut collapsed = 0;
    for h in handles {
        let (r, got) = h.join().expect("viewer");
        assert_eq!(r.status, 200);
        assert!(r.complete, "{}", r.cache_status());
        assert!(got == body, "byte-identical body");
        if r.cache_status().contains("collapsed") {
            assert!(
                r.cache_status().contains("fwd=uri-miss"),
                "{}",
                r.cache_status()
            );
            collapsed += 1;
        }
    }
    assert_eq!(collapsed, n - 1, "all but the leader were collapsed");
    assert_eq!(origin.count("/cold"), 1);
    // A request is counted once its handling ends, just after its last
    // byte went out: the viewer may have read it a moment before.
    assert!(
        eventually(Duration::from_secs(5), || edge
            .metric("edgeslab_cache_collapsed_total")
            == (n - 1) as u64),
        "collapsed_total {}",
        edge.metric("edgeslab_cache_collapsed_total")
    );
    assert!(get(edge.addr, "/cold").is_hit());
}

#[test]
fn fifty_viewers_of_a_cold_100mb_object_on_both_shards_make_one_origin_request() {
    let body = Arc::new(bytes(100 << 20, 5));
    let origin = {
        let body = body.clone();
        Origin::start(move |_| {
            Script::ok("max-age=600", Vec::new()).with(Body::Shared(body.clone()))
        })
    };
    let edge = edge(
        &origin,
        "[cache]\nsize = \"640MiB\"\nsegment_size = \"8MiB\"\nram_size = 0\n",
    );
    let n = 50;
    let sent = Arc::new(Barrier::new(n + 1));
    let handles = {
        let body = body.clone();
        viewers(
            n,
            sent.clone(),
            move |_, mut c| {
                // Compare as the bytes come: 50 copies are not kept.
                let mut at = 0usize;
                let mut differs: Option<usize> = None;
                let r = c
                    .read_response_streaming(&raw_get("/big"), &mut |b: &[u8]| {
                        if differs.is_none() && body.get(at..at + b.len()) != Some(b) {
                            differs = Some(at);
                        }
                        at += b.len();
                    })
                    .expect("a response");
                let whole = r.complete && differs.is_none() && at == body.len();
                let how = format!(
                    "{}; complete {}, {at} bytes, first differing piece at {differs:?}",
                    r.cache_status(),
                    r.complete
                );
                (r.status, whole, how)
            },
            edge.addr,
            "/big",
        )
    };
    sent.wait();
    for h in handles {
        let (status, whole, how) = h.join().expect("viewer");
        assert_eq!(status, 200, "{how}");
        assert!(
            whole,
            "a whole, byte-identical body ({how}); the edge's log:\n{}",
            edge.stderr()
        );
    }
    assert_eq!(
        origin.count("/big"),
        1,
        "one origin request for {n} viewers"
    );
    let m = edge.metrics();
    let shards_served = (0..edge.shards)
        .filter(|&s| metric_of_shard(&m, "edgeslab_requests_total", s) > 0)
        .count();
    if online_cpus() >= 2 && edge.shards >= 2 {
        assert_eq!(shards_served, edge.shards, "viewers arrived on every shard");
    }
}

#[test]
fn an_uncacheable_answer_releases_waiters_at_once_and_later_misses_pass() {
    let gate = Gate::default();
    let origin = {
        let gate = gate.clone();
        Origin::start(move |_| {
            Script::ok("no-store", Vec::new()).with(Body::Gated {
                data: bytes(64 << 10, 3),
                first: 1000,
                gate: gate.clone(),
            })
        })
    };
    let edge = edge(&origin, "");
    let n = 6;
    let sent = Arc::new(Barrier::new(n + 1));
    let handles = viewers(
        n,
        sent.clone(),
        |_, mut c| {
            c.read_response_to(&raw_get("/private"))
                .expect("a response")
        },
        edge.addr,
        "/private",
    );
    sent.wait();
    // Every viewer reaches the origin while the first body is still held:
    // nobody waits behind an uncacheable fetch.
    assert!(
        eventually(Duration::from_secs(20), || origin.count("/private") == n),
        "{} of {n} viewers reached the origin while the first body was held",
        origin.count("/private")
    );
    gate.open();
    for h in handles {
        let r = h.join().expect("viewer");
        assert_eq!(r.status, 200);
        assert!(
            r.cache_status().contains("detail=no-store"),
            "{}",
            r.cache_status()
        );
        assert!(
            !r.cache_status().contains("collapsed"),
            "{}",
            r.cache_status()
        );
    }
    // The key is now remembered as uncacheable: misses go straight out.
    let before = edge.metric("edgeslab_cache_hit_for_pass_total");
    let r = get(edge.addr, "/private");
    assert_eq!(r.status, 200);
    assert_eq!(edge.metric("edgeslab_cache_hit_for_pass_total"), before + 1);
    assert_eq!(origin.count("/private"), n + 1);
}

#[test]
fn when_the_leader_fails_a_waiter_fetches_instead() {
    let calls = Arc::new(AtomicUsize::new(0));
    let origin = {
        let calls = calls.clone();
        Origin::start(move |_| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                // The first fetch dies without an answer, after the others queued.
                Script::ok("max-age=600", Vec::new()).with(Body::Hangup {
                    after: Duration::from_millis(500),
                })
            } else {
                Script::ok("max-age=600", b"second time lucky".to_vec())
            }
        })
    };
    let edge = edge(&origin, "");
    let n = 5;
    let sent = Arc::new(Barrier::new(n + 1));
    let handles = viewers(
        n,
        sent.clone(),
        |_, mut c| c.read_response_to(&raw_get("/flaky")).expect("a response"),
        edge.addr,
        "/flaky",
    );
    sent.wait();
    let statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| {
            let r = h.join().expect("viewer");
            if r.status == 200 {
                assert_eq!(r.body, b"second time lucky");
            }
            r.status
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 502).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        n - 1,
        "{statuses:?}"
    );
    assert_eq!(origin.count("/flaky"), 2, "the failed fetch and one more");
}

#[test]
fn a_follower_that_wants_a_range_reads_the_fill_from_its_range_only() {
    let body = bytes(20 << 20, 9);
    let gate = Gate::default();
    let origin = {
        let (body, gate) = (body.clone(), gate.clone());
        Origin::start(move |_| {
            Script::ok("max-age=600", Vec::new()).with(Body::Gated {
                data: body.clone(),
                first: 19 << 20,
                gate: gate.clone(),
            })
        })
    };
    let edge = edge(&origin, "[cache]\nram_size = 0\n");
    let addr = edge.addr;
    let leader = std::thread::spawn(move || get(addr, "/seek").body.len());
    // The leader's fill has most of the object before the follower asks.
    assert!(eventually(Duration::from_secs(20), || {
        edge.metric("edgeslab_origin_received_bytes_total") >= 19 << 20
    }));
    let reads_before = edge.metric("edgeslab_cache_device_reads_total");
    let follower = std::thread::spawn(move || {
        let raw = b"GET /seek HTTP/1.1\r\nHost: test.local\r\nRange: bytes=-100\r\nConnection: close\r\n\r\n";
        request(addr, raw)
    });
    std::thread::sleep(Duration::from_millis(200));
    gate.open();
    let r = follower.join().expect("follower");
    assert_eq!(r.status, 206);
    assert!(
        r.cache_status().contains("collapsed"),
        "{}",
        r.cache_status()
    );
    assert_eq!(r.body, &body[body.len() - 100..]);
    assert_eq!(leader.join().expect("leader"), body.len());
    let reads = edge.metric("edgeslab_cache_device_reads_total") - reads_before;
    assert!(
        reads <= 4,
        "the follower read {reads} chunks to send the last 100 bytes"
    );
    assert_eq!(origin.count("/seek"), 1);
}

#[test]
fn a_miss_after_the_head_arrived_follows_a_fresh_fill_but_not_a_stale_one() {
    let (fresh_gate, stale_gate) = (Gate::default(), Gate::default());
    let first = 1000;
    let origin = {
        let (fresh_gate, stale_gate) = (fresh_gate.clone(), stale_gate.clone());
        Origin::start(move |req| {
            match req.target.as_str() {
                "/fresh" => Script::ok("max-age=600", Vec::new()).with(Body::Gated {
                    data: bytes(64 << 10, 9),
                    first,
                    gate: fresh_gate.clone(),
                }),
                // Stored (it has a validator), but stale from the start.
                _ => Script::new(200, Vec::new())
                    .header("Expires", "Thu, 01 Jan 2026 00:00:00 GMT")
                    .header("Last-Modified", "Wed, 31 Dec 2025 00:00:00 GMT")
                    .with(Body::Gated {
                        data: bytes(64 << 10, 9),
                        first,
                        gate: stale_gate.clone(),
                    }),
            }
        })
    };
    let edge = edge(&origin, "");
    let cases = [
        ("/fresh", fresh_gate, 1, true),
        ("/stale", stale_gate, 2, false),
    ];
    for (path, gate, origin_requests, collapsed) in cases {
        // The first viewer has the head and the first bytes: the fill runs.
        let mut leader = Client::connect(edge.addr);
        let raw = raw_get(path);
        leader.send(&raw);
        let streamed = Arc::new(AtomicUsize::new(0));
        let lead = std::thread::spawn({
            let streamed = streamed.clone();
            move || {
                leader
                    .read_response_streaming(&raw, &mut |b: &[u8]| {
                        streamed.fetch_add(b.len(), Ordering::SeqCst);
                    })
                    .expect("a response")
            }
        });
        assert!(
            eventually(Duration::from_secs(10), || streamed.load(Ordering::SeqCst)
                >= first),
            "{path}: the leader's first bytes came while the origin held the rest"
        );
        // A second viewer asks now, after the head: a hit's rules apply.
        let late = std::thread::spawn({
            let addr = edge.addr;
            move || get(addr, path)
        });
        let reached = eventually(Duration::from_secs(3), || origin.count(path) == 2);
        assert_eq!(
            reached,
            origin_requests == 2,
            "{path}: whether the late miss reached the origin"
        );
        gate.open();
        let late = late.join().expect("late viewer");
        let lead = lead.join().expect("leader");
        assert_eq!((lead.status, late.status), (200, 200));
        assert_eq!(
            late.cache_status().contains("collapsed"),
            collapsed,
            "{path}: {} / leader {}",
            late.cache_status(),
            lead.cache_status()
        );
        assert_eq!(origin.count(path), origin_requests, "{path}");
    }
}
