//! `Vary` through the binary (RFC 9111 §4.1): a scripted origin that answers
//! with `Vary: Accept-Encoding` and a different body per coding; each
//! variant is stored and served only to the viewers that select it
//! (equivalent `Accept-Encoding` values share one), `Vary: *` is not
//! stored, variants live on both shards, concurrent misses coalesce per
//! variant, and a clean stop or a crash keeps marker and variants.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use support::*;

/// These tests are about `Vary`: Accept-Encoding stays as viewers send it
/// (out of the key, forwarded as is), so its variants are Vary variants of
/// one URL rather than keys of their own (the default behaviour).
const RAW_ACCEPT_ENCODING: &str = "[[behavior]]\npath = \"*\"\n[behavior.origin_request]\n\
    headers = [\"*\"]\n[behavior.cache]\nnormalize_accept_encoding = false\n";

/// A GET of `path` with these extra fields, on its own connection.
fn raw(path: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n");
    for (n, v) in fields {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn get_with(edge: &Edge, path: &str, fields: &[(&str, &str)]) -> Response {
    request(edge.addr, &raw(path, fields))
}

/// The coding an origin picks for an `Accept-Encoding` value (crudely).
fn coding(accept_encoding: Option<&str>) -> &'static str {
    match accept_encoding {
        Some(v) if v.contains("br") => "br",
        Some(v) if v.to_ascii_lowercase().contains("gzip") => "gzip",
        _ => "identity",
    }
}

/// The body the origin sends for `target` in `coding`.
fn body(target: &str, coding: &str) -> Vec<u8> {
    format!("{target} in {coding}\n").into_bytes()
}

/// `/star…` answers `Vary: *`, `/fill/…` 60 kB that do not vary;
/// everything else varies on Accept-Encoding, with a body that names the
/// coding.
fn vary_origin() -> Origin {
    Origin::start(|seen| {
        if seen.target.starts_with("/star") {
            return Script::ok("max-age=600", b"anything".to_vec()).header("Vary", "*");
        }
        if seen.target.starts_with("/fill/") {
            return Script::ok("max-age=600", bytes(60_000, 5));
        }
        let c = coding(seen.header("accept-encoding"));
        let mut s =
            Script::ok("max-age=600", body(&seen.target, c)).header("Vary", "Accept-Encoding");
        if c != "identity" {
            s = s.header("Content-Encoding", c);
        }
        s
    })
}

/// The edge's own Cache-Status member.
fn status(r: &Response) -> String {
    r.cache_status()
        .rsplit(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn two_variants_are_stored_and_each_is_served_to_the_viewers_that_select_it() {
    let origin = vary_origin();
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml(RAW_ACCEPT_ENCODING)
        .start();
    let gzip = [("Accept-Encoding", "gzip")];
    let br = [("Accept-Encoding", "br")];

    let r = get_with(&edge, "/v/a", &gzip);
    assert_eq!(r.body, body("/v/a", "gzip"));
    assert_eq!(status(&r), "edgeslab; fwd=uri-miss; stored; detail=variant");
    let r = get_with(&edge, "/v/a", &br);
    assert_eq!(r.body, body("/v/a", "br"), "not the gzip variant");
    assert_eq!(
        status(&r),
        "edgeslab; fwd=vary-miss; stored; detail=variant"
    );

    for _ in 0..2 {
        let r = get_with(&edge, "/v/a", &gzip);
        assert!(r.is_hit(), "{}", r.cache_status());
        assert!(status(&r).ends_with("detail=variant"), "{}", status(&r));
        assert_eq!(r.body, body("/v/a", "gzip"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        let r = get_with(&edge, "/v/a", &br);
        assert!(r.is_hit(), "{}", r.cache_status());
        assert_eq!(r.body, body("/v/a", "br"));
        assert_eq!(r.header("content-encoding"), Some("br"));
    }
    // Requests that accept exactly the codings "gzip" accepts share its
    // variant: case, whitespace, weights, x-gzip, q=0 codings, lines.
    for same in [
        vec![("accept-encoding", "GZIP")],
        vec![("Accept-Encoding", "  gzip ;q=0.8 ,deflate;q=0")],
        vec![("Accept-Encoding", "x-gzip")],
        vec![("Accept-Encoding", "gzip"), ("Accept-Encoding", "")],
    ] {
        let r = get_with(&edge, "/v/a", &same);
        assert!(r.is_hit(), "{same:?}: {}", r.cache_status());
        assert_eq!(r.body, body("/v/a", "gzip"), "{same:?}");
    }
    assert_eq!(origin.count("/v/a"), 2);

    // Another set of codings, and none at all, are variants of their own.
    let both = [("Accept-Encoding", "gzip, br")];
    let r = get_with(&edge, "/v/a", &both);
    assert_eq!(
        status(&r),
        "edgeslab; fwd=vary-miss; stored; detail=variant"
    );
    let r = get_with(&edge, "/v/a", &[]);
    assert_eq!(
        status(&r),
        "edgeslab; fwd=vary-miss; stored; detail=variant"
    );
    assert_eq!(r.body, body("/v/a", "identity"));
    assert!(get_with(&edge, "/v/a", &[("Accept-Encoding", "br;q=0.1, GZip")]).is_hit());
    let r = get_with(&edge, "/v/a", &[]);
    assert!(r.is_hit());
    assert_eq!(r.body, body("/v/a", "identity"));
    assert_eq!(origin.count("/v/a"), 4);
    // What the origin saw: the viewer's own Accept-Encoding each time.
    let sent: Vec<Option<String>> = origin
        .seen()
        .iter()
        .map(|s| s.header("accept-encoding").map(str::to_string))
        .collect();
    assert_eq!(
        sent,
        [
            Some("gzip".to_string()),
            Some("br".to_string()),
            Some("gzip, br".to_string()),
            None
        ]
    );

    let m = edge.metrics();
    assert_eq!(metric_sum(&m, "edgeslab_cache_vary_misses_total"), 3);
    assert_eq!(metric_sum(&m, "edgeslab_cache_variant_hits_total"), 10);
    assert_eq!(metric_sum(&m, "edgeslab_cache_misses_total"), 4);
}

#[test]
fn vary_star_is_never_stored() {
    let origin = vary_origin();
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml(RAW_ACCEPT_ENCODING)
        .start();
    for _ in 0..2 {
        let r = get_with(&edge, "/star", &[("Accept-Encoding", "gzip")]);
        assert_eq!(r.body, b"anything");
        assert_eq!(status(&r), "edgeslab; fwd=uri-miss; detail=vary");
    }
    assert_eq!(origin.count("/star"), 2);
}

#[test]
fn variants_of_many_urls_are_stored_and_served_on_both_shards() {
    let origin = vary_origin();
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml(RAW_ACCEPT_ENCODING)
        .start();
    let cpus = online_cpus();
    let paths: Vec<String> = (0..24).map(|i| format!("/v/many/{i}")).collect();
    // First the gzip variants from one CPU and the br ones from the other,
    // then the other way round: each shard looks up variants owned by both.
    for round in 0..2 {
        let handles: Vec<_> = ["gzip", "br"]
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let (paths, addr) = (paths.clone(), edge.addr);
                std::thread::spawn(move || {
                    pin_this_thread((i + round) % cpus);
                    for p in &paths {
                        let r = request(addr, &raw(p, &[("Accept-Encoding", c)]));
                        assert_eq!(r.body, body(p, c), "{}", r.cache_status());
                        assert_eq!(r.is_hit(), round == 1, "{p} {c}: {}", r.cache_status());
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("viewer");
        }
    }
    for p in &paths {
        assert_eq!(origin.count(p), 2, "{p}");
    }
    let m = edge.metrics();
    assert_eq!(metric_sum(&m, "edgeslab_cache_variant_hits_total"), 48);
    if edge.shards > 1 {
        for shard in 0..2 {
            // Markers and variants are owned by the URL's shard: 24 URLs
            // spread over both.
            assert!(
                metric_of_shard(&m, "edgeslab_cache_objects", shard) >= 3,
                "shard {shard} owns objects:\n{m}"
            );
            assert!(
                metric_of_shard(&m, "edgeslab_cache_variant_hits_total", shard) > 0,
                "shard {shard} served variants:\n{m}"
            );
        }
        assert!(metric_sum(&m, "edgeslab_cache_remote_lookups_total") > 0);
    }
}

#[test]
fn concurrent_misses_make_one_origin_request_per_variant() {
    let gate = Gate::default();
    let len = 200_000;
    let origin = {
        let gate = gate.clone();
        Origin::start(move |seen| {
            let c = coding(seen.header("accept-encoding"));
            let data = bytes(len, if c == "br" { 2 } else { 1 });
            Script::ok("max-age=600", Vec::new())
                .header("Vary", "Accept-Encoding")
                .with(Body::Gated {
                    data,
                    first: 4096,
                    gate: gate.clone(),
                })
        })
    };
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml(RAW_ACCEPT_ENCODING)
        .start();
    let n = 12;
    let sent = Arc::new(Barrier::new(n + 1));
    let early = Arc::new(AtomicUsize::new(0));
    let cpus = online_cpus();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (sent, early, addr) = (sent.clone(), early.clone(), edge.addr);
            std::thread::spawn(move || {
                pin_this_thread(i % cpus);
                let c = if i % 2 == 0 { "gzip" } else { "br" };
                let req = raw("/cold", &[("Accept-Encoding", c)]);
                let mut client = Client::connect(addr);
                client.send(&req);
                sent.wait();
                let mut got = Vec::new();
                let mut counted = false;
                let r = client
                    .read_response_streaming(&req, &mut |b: &[u8]| {
                        got.extend_from_slice(b);
                        if !counted && got.len() >= 4096 {
                            counted = true;
                            early.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                    .expect("a response");
                (c, r, got)
            })
        })
        .collect();
    sent.wait();
    assert!(
        eventually(Duration::from_secs(20), || early.load(Ordering::SeqCst)
            == n),
        "every viewer got its first bytes while the origin held the rest ({} did)",
        early.load(Ordering::SeqCst)
    );
    let codings: Vec<&str> = origin
        .seen()
        .iter()
        .map(|s| coding(s.header("accept-encoding")))
        .collect();
    assert_eq!(
        codings.len(),
        2,
        "one origin request per variant: {codings:?}"
    );
    assert!(
        codings.contains(&"gzip") && codings.contains(&"br"),
        "{codings:?}"
    );
    gate.open();
    let mut collapsed = 0;
    for h in handles {
        let (c, r, got) = h.join().expect("viewer");
        let status = r.cache_status().to_string();
        assert!(r.complete, "{status}");
        let want = bytes(len, if c == "br" { 2 } else { 1 });
        assert!(got == want, "{c}: the body of its own variant ({status})");
        if status.contains("collapsed") {
            assert!(status.contains("detail=variant"), "{status}");
            collapsed += 1;
        }
    }
    assert_eq!(
        collapsed,
        n - 2,
        "all but one viewer per variant were collapsed"
    );
    for c in ["gzip", "br"] {
        let r = get_with(&edge, "/cold", &[("Accept-Encoding", c)]);
        assert!(r.is_hit(), "{c}: {}", r.cache_status());
    }
    assert_eq!(origin.requests(), 2);
}

#[test]
fn marker_and_variants_survive_a_clean_stop_and_a_crash() {
    let origin = vary_origin();
    let dir = TempDir::new("vary-restart");
    // Small segments, so that a few fillers push the variants' segment to
    // the device before the crash.
    let config = "[cache]\nsize = \"256MiB\"\nsegment_size = \"1MiB\"\nram_size = 0\n";
    let builder = Edge::builder()
        .toml(RAW_ACCEPT_ENCODING)
        .origin(origin.addr)
        .toml(config)
        .dir(dir.path());
    let fetch = |edge: &Edge, path: &str, c: &str| {
        let r = get_with(edge, path, &[("Accept-Encoding", c)]);
        assert_eq!(r.body, body(path, c), "{path} {c}: {}", r.cache_status());
        r
    };
    let mut edge = builder.start();
    for c in ["gzip", "br"] {
        assert!(!fetch(&edge, "/v/clean", c).is_hit());
    }
    assert!(edge.stop().unwrap().success());

    let mut edge = builder.start();
    assert!(edge.stderr().contains("warm start from the checkpoint"));
    for c in ["gzip", "br"] {
        let r = fetch(&edge, "/v/clean", c);
        assert!(r.is_hit(), "{c} after a clean stop: {}", r.cache_status());
    }
    // The marker came back too: a new variant is a vary-miss.
    let r = fetch(&edge, "/v/clean", "identity");
    assert!(status(&r).contains("fwd=vary-miss"), "{}", status(&r));

    for c in ["gzip", "br"] {
        assert!(!fetch(&edge, "/v/crash", c).is_hit());
    }
    // Fillers (objects without Vary) seal the segments written so far.
    for i in 0..80 {
        let r = get(edge.addr, &format!("/fill/{i}"));
        assert_eq!(r.status, 200);
    }
    edge.kill9();

    let edge = builder.start();
    assert!(
        edge.stderr().contains("index rebuilt by scanning"),
        "{}",
        edge.stderr()
    );
    for path in ["/v/clean", "/v/crash"] {
        for c in ["gzip", "br"] {
            let r = fetch(&edge, path, c);
            assert!(r.is_hit(), "{path} {c} after a crash: {}", r.cache_status());
        }
    }
    assert_eq!(origin.count("/v/crash"), 2);
}
