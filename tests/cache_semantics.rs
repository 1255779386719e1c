//! RFC 9111 through the binary, with a scripted origin that counts and
//! records requests: revalidation and 304 freshening, stale-while-revalidate
//! (one background revalidation), stale-if-error, request directives and
//! only-if-cached, viewer preconditions, targeted fields, invalidation after
//! unsafe methods, and 304s nobody asked for. Stale copies are made without
//! sleeping: the origin sends an `Age` past the lifetime, and a response
//! with a validator is stored even when it arrives stale.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

fn edge(origin: &Origin, extra: &str) -> Edge {
    Edge::builder().origin(origin.addr).toml(extra).start()
}

fn send(addr: std::net::SocketAddr, path: &str, fields: &[(&str, &str)]) -> Response {
    let mut raw = format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n");
    for (n, v) in fields {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    request(addr, raw.as_bytes())
}

/// An origin whose object is already stale when it arrives, with an ETag;
/// it answers `If-None-Match: "v1"` with a 304 carrying new fields.
fn validating_origin(body: Vec<u8>, cache_control: &'static str) -> Origin {
    Origin::start(move |seen| {
        if seen.header("if-none-match") == Some("\"v1\"") {
            return Script::new(304, Vec::new())
                .header("ETag", "\"v1\"")
                .header("Cache-Control", "max-age=600")
                .header("X-Revalidated", "yes");
        }
        Script::ok(cache_control, body.clone())
            .header("ETag", "\"v1\"")
            .header("Age", "100")
    })
}

/// RFC 9111 §4.3.1, §4.3.4.
#[test]
fn a_stale_copy_is_validated_and_a_304_freshens_it_without_the_body_again() {
    let body = bytes(3 << 20, 7);
    let origin = validating_origin(body.clone(), "max-age=60");
    let edge = edge(&origin, "");
    let first = get(edge.addr, "/big");
    assert_eq!(first.body, body);
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    let written = edge.metric("edgeslab_cache_written_bytes_total");
    let second = get(edge.addr, "/big");
    assert_eq!(second.status, 200);
    assert!(second.body == body, "the stored body, served after the 304");
    let cs = second.cache_status();
    assert!(
        cs.contains("fwd=stale") && cs.contains("fwd-status=304"),
        "{cs}"
    );
    assert_eq!(
        second.header("x-revalidated"),
        Some("yes"),
        "stored fields updated"
    );
    let sent = origin.last().expect("a revalidation");
    assert_eq!(sent.header("if-none-match"), Some("\"v1\""));
    // The update rewrote a manifest, not the 3 MiB body.
    let after = edge.metric("edgeslab_cache_written_bytes_total");
    assert!(
        after - written < 64 << 10,
        "{} bytes written for a 304",
        after - written
    );
    let third = get(edge.addr, "/big");
    assert!(
        third.is_hit(),
        "fresh after the 304: {}",
        third.cache_status()
    );
    assert_eq!(third.header("x-revalidated"), Some("yes"));
    assert!(third.body == body);
    assert_eq!(origin.count("/big"), 2);
}

/// RFC 5861 §3: served stale at once, revalidated once in the background.
#[test]
fn stale_while_revalidate_answers_at_once_and_revalidates_once() {
    let gate = Gate::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let origin = {
        let (gate, calls) = (gate.clone(), calls.clone());
        Origin::start(move |seen| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return Script::ok("max-age=1, stale-while-revalidate=600", b"old".to_vec())
                    .header("ETag", "\"v1\"")
                    .header("Age", "100");
            }
            assert_eq!(seen.header("if-none-match"), Some("\"v1\""));
            // The revalidation is held until the test has seen the stale answers.
            gate.wait(Duration::from_secs(10));
            Script::ok("max-age=600", b"new".to_vec()).header("ETag", "\"v2\"")
        })
    };
    let edge = edge(&origin, "");
    assert_eq!(get(edge.addr, "/swr").body, b"old");
    for _ in 0..5 {
        let r = get(edge.addr, "/swr");
        assert_eq!(r.body, b"old", "served stale while the origin is held");
        let cs = r.cache_status();
        assert!(
            cs.contains("hit") && cs.contains("detail=stale-while-revalidate"),
            "{cs}"
        );
    }
    // (The origin records a request once its handler returns: count calls.)
    let started = eventually(Duration::from_secs(10), || {
        calls.load(Ordering::SeqCst) >= 2
    });
    assert!(
        started && calls.load(Ordering::SeqCst) == 2,
        "one background revalidation started: {} origin calls",
        calls.load(Ordering::SeqCst)
    );
    gate.open();
    assert!(
        eventually(Duration::from_secs(10), || get(edge.addr, "/swr").body
            == b"new"),
        "the background revalidation stored the new response"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one background revalidation for six stale hits"
    );
    assert_eq!(origin.count("/swr"), 2);
}

/// RFC 5861 §4: an origin error inside the window is answered stale.
#[test]
fn stale_if_error_answers_an_origin_error_or_outage_with_the_stored_copy() {
    let calls = Arc::new(AtomicUsize::new(0));
    let origin = {
        let calls = calls.clone();
        Origin::start(move |_| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Script::ok("max-age=1, stale-if-error=600", b"kept".to_vec())
                    .header("ETag", "\"v1\"")
                    .header("Age", "100")
            } else {
                Script::new(503, b"down".to_vec())
            }
        })
    };
    let edge = edge(&origin, "");
    assert_eq!(get(edge.addr, "/sie").body, b"kept");
    let r = get(edge.addr, "/sie");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"kept"[..]));
    let cs = r.cache_status();
    assert!(
        cs.contains("fwd=stale")
            && cs.contains("fwd-status=503")
            && cs.contains("detail=stale-if-error"),
        "{cs}"
    );
    // With the origin gone altogether, the same.
    let addr = origin.addr;
    drop(origin);
    assert!(eventually(Duration::from_secs(5), || {
        std::net::TcpStream::connect(addr).is_err()
    }));
    let r = get(edge.addr, "/sie");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"kept"[..]),
        "{}",
        r.cache_status()
    );
}

/// `cache.stale_if_error` applies when the origin sent no window; without
/// it an error reaches the viewer.
#[test]
fn the_configured_stale_if_error_window_applies_only_when_set() {
    for (window, status) in [("\"0s\"", 503), ("\"1h\"", 200)] {
        let calls = Arc::new(AtomicUsize::new(0));
        let origin = {
            let calls = calls.clone();
            Origin::start(move |_| {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Script::ok("max-age=1", b"kept".to_vec())
                        .header("ETag", "\"v1\"")
                        .header("Age", "100")
                } else {
                    Script::new(503, b"down".to_vec())
                }
            })
        };
        let edge = edge(&origin, &format!("[cache]\nstale_if_error = {window}\n"));
        get(edge.addr, "/w");
        assert_eq!(
            get(edge.addr, "/w").status,
            status,
            "stale_if_error = {window}"
        );
    }
}

/// RFC 9111 §5.2.1.4, §5.2.1.7 and the switch that protects origins.
#[test]
fn request_directives_no_cache_and_only_if_cached() {
    let origin = Origin::start(|seen| {
        if seen.header("if-none-match").is_some() {
            return Script::new(304, Vec::new()).header("ETag", "\"v1\"");
        }
        Script::ok("max-age=600", b"obj".to_vec()).header("ETag", "\"v1\"")
    });
    let edge = edge(&origin, "");
    let miss = send(edge.addr, "/d", &[("Cache-Control", "only-if-cached")]);
    assert_eq!(miss.status, 504, "only-if-cached and nothing stored");
    assert_eq!(origin.count("/d"), 0);
    get(edge.addr, "/d");
    let cached = send(edge.addr, "/d", &[("Cache-Control", "only-if-cached")]);
    assert!(cached.is_hit() && cached.body == b"obj");
    let r = send(edge.addr, "/d", &[("Cache-Control", "no-cache")]);
    assert_eq!(r.body, b"obj");
    assert!(
        r.cache_status().contains("fwd=request"),
        "{}",
        r.cache_status()
    );
    assert_eq!(origin.count("/d"), 2, "no-cache went to the origin (a 304)");

    let shielded = Edge::builder()
        .origin(origin.addr)
        .toml("[cache]\nhonor_viewer_no_cache = false\n")
        .start();
    get(shielded.addr, "/d");
    let before = origin.count("/d");
    let r = send(shielded.addr, "/d", &[("Cache-Control", "no-cache")]);
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_eq!(origin.count("/d"), before);
}

/// RFC 9111 §5.2.2.4: stored, and validated on every use.
#[test]
fn a_no_cache_response_is_stored_and_validated_every_time() {
    let origin = Origin::start(|seen| {
        if seen.header("if-none-match") == Some("\"n1\"") {
            return Script::new(304, Vec::new()).header("ETag", "\"n1\"");
        }
        Script::ok("no-cache", b"validated".to_vec()).header("ETag", "\"n1\"")
    });
    let edge = edge(&origin, "");
    assert!(get(edge.addr, "/nc").cache_status().contains("stored"));
    for _ in 0..3 {
        let r = get(edge.addr, "/nc");
        assert_eq!(r.body, b"validated");
        assert!(
            r.cache_status().contains("fwd-status=304"),
            "{}",
            r.cache_status()
        );
    }
    let seen = origin.seen();
    assert_eq!(seen.len(), 4);
    assert!(
        seen[1..]
            .iter()
            .all(|s| s.header("if-none-match") == Some("\"n1\""))
    );
}

/// RFC 9110 §13.2.2 answered by the cache: 304 on a miss being filled, 412
/// for failed If-Match / If-Unmodified-Since on a hit.
#[test]
fn viewer_preconditions_are_answered_from_the_cache() {
    let origin = Origin::start(|_| {
        Script::ok("max-age=600", b"body".to_vec())
            .header("ETag", "\"e1\"")
            .header("Last-Modified", "Mon, 06 Nov 2023 08:00:00 GMT")
    });
    let edge = edge(&origin, "");
    let r = send(edge.addr, "/p", &[("If-None-Match", "\"e1\"")]);
    assert_eq!(
        r.status, 304,
        "a conditional miss gets its 304 while the object is stored"
    );
    assert!(r.body.is_empty());
    assert_eq!(origin.last().expect("a fill").header("if-none-match"), None);
    let hit = get(edge.addr, "/p");
    assert!(hit.is_hit() && hit.body == b"body");
    assert_eq!(
        send(edge.addr, "/p", &[("If-None-Match", "\"e1\"")]).status,
        304
    );
    assert_eq!(
        send(edge.addr, "/p", &[("If-None-Match", "\"e0\"")]).status,
        200
    );
    assert_eq!(send(edge.addr, "/p", &[("If-Match", "\"e0\"")]).status, 412);
    assert_eq!(send(edge.addr, "/p", &[("If-Match", "\"e1\"")]).status, 200);
    let old = "Sun, 05 Nov 2023 08:00:00 GMT";
    assert_eq!(
        send(edge.addr, "/p", &[("If-Unmodified-Since", old)]).status,
        412
    );
    assert_eq!(origin.count("/p"), 1);
}

/// RFC 9111 §4.3.3: a 304 to a request without validators is unusable.
#[test]
fn a_304_nobody_asked_for_is_a_502_and_never_stored() {
    let origin =
        Origin::start(|_| Script::new(304, Vec::new()).header("Cache-Control", "max-age=600"));
    let edge = edge(&origin, "");
    for _ in 0..2 {
        let r = get(edge.addr, "/odd");
        assert_eq!(r.status, 502);
        assert!(
            r.cache_status().contains("detail=unsolicited-304"),
            "{}",
            r.cache_status()
        );
    }
    assert_eq!(origin.count("/odd"), 2, "nothing was stored");
}

/// RFC 9213: CDN-Cache-Control governs this cache and is not forwarded to
/// viewers by an edge.
#[test]
fn targeted_cache_control_governs_and_stays_with_the_edge() {
    let origin = Origin::start(|_| {
        Script::ok("no-store", b"targeted".to_vec()).header("CDN-Cache-Control", "max-age=600")
    });
    let edge = edge(&origin, "");
    let first = get(edge.addr, "/t");
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    assert_eq!(first.header("cdn-cache-control"), None);
    assert_eq!(
        first.header("cache-control"),
        Some("no-store"),
        "viewers keep theirs"
    );
    let second = get(edge.addr, "/t");
    assert!(second.is_hit() && second.body == b"targeted");
    assert_eq!(second.header("cdn-cache-control"), None);
    assert_eq!(origin.count("/t"), 1);
}

/// RFC 9111 §4.4: a successful unsafe request invalidates its target and
/// the same-origin Location; a failed one invalidates nothing.
#[test]
fn unsafe_methods_invalidate_what_they_changed() {
    let origin = Origin::start(|seen| match seen.method.as_str() {
        "POST" if seen.target == "/fail" => Script::new(500, Vec::new()),
        "POST" => Script::new(201, Vec::new()).header("Location", "/created"),
        _ => Script::ok("max-age=600", seen.target.clone().into_bytes()),
    });
    let edge = edge(&origin, "");
    for path in ["/a", "/created", "/fail"] {
        get(edge.addr, path);
        assert!(get(edge.addr, path).is_hit(), "{path} cached");
    }
    let post = |path: &str| {
        request(
            edge.addr,
            format!("POST {path} HTTP/1.1\r\nHost: test.local\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
                .as_bytes(),
        )
    };
    assert_eq!(post("/a").status, 201);
    assert!(!get(edge.addr, "/a").is_hit(), "the target was invalidated");
    assert!(!get(edge.addr, "/created").is_hit(), "so was the Location");
    assert_eq!(post("/fail").status, 500);
    assert!(
        get(edge.addr, "/fail").is_hit(),
        "a failed POST changes nothing"
    );
}

/// Negative caching: `cache.error_ttl` keeps cacheable errors without
/// explicit freshness.
#[test]
fn error_ttl_caches_a_404_for_a_while() {
    let origin = Origin::start(|_| Script::new(404, b"no such thing".to_vec()));
    for (ttl, hits) in [("\"0s\"", false), ("\"30s\"", true)] {
        let edge = edge(&origin, &format!("[cache]\nerror_ttl = {ttl}\n"));
        let path = format!("/missing-{hits}");
        assert_eq!(get(edge.addr, &path).status, 404);
        let again = get(edge.addr, &path);
        assert_eq!(again.status, 404);
        assert_eq!(
            again.is_hit(),
            hits,
            "error_ttl = {ttl}: {}",
            again.cache_status()
        );
    }
}

/// RFC 9110 §7.6.1: connection-specific fields (and those `Connection`
/// names) are neither forwarded nor stored, in either direction.
#[test]
fn hop_by_hop_fields_are_neither_forwarded_nor_stored() {
    let origin = Origin::start(|_| {
        Script::ok("max-age=600", b"h".to_vec())
            .header("Connection", "X-Origin-Hop")
            .header("X-Origin-Hop", "secret")
            .header("Keep-Alive", "timeout=5")
            .header("X-End-To-End", "kept")
    });
    let edge = edge(&origin, "");
    let r = send(
        edge.addr,
        "/hop",
        &[("Connection", "X-Viewer-Hop"), ("X-Viewer-Hop", "mine")],
    );
    assert_eq!(r.header("x-origin-hop"), None);
    assert_eq!(r.header("keep-alive"), None);
    assert_eq!(r.header("x-end-to-end"), Some("kept"));
    let seen = origin.last().expect("forwarded");
    assert_eq!(seen.header("x-viewer-hop"), None, "not forwarded");
    let hit = get(edge.addr, "/hop");
    assert!(hit.is_hit());
    assert_eq!(hit.header("x-origin-hop"), None, "not stored");
    assert_eq!(hit.header("x-end-to-end"), Some("kept"));
}
