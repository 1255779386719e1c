//! Objects kept in parts, through the binary: an object too large to store
//! whole is stored as fixed-size parts fetched with byte ranges as viewers
//! ask for them and served again from the parts stored; an origin that only
//! answers in ranges is served the same way; a representation that changed
//! is never mixed with its old parts.

mod support;

use std::sync::{Arc, Mutex};
use support::*;

/// The byte range a request asks for, as (first, end exclusive).
fn asked(seen: &Seen, len: usize) -> Option<(usize, usize)> {
    let spec = seen.header("range")?.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let first: usize = a.parse().ok()?;
    let last: usize = if b.is_empty() {
        len - 1
    } else {
        b.parse().ok()?
    };
    (first <= last && first < len).then_some((first, last.min(len - 1) + 1))
}

/// An origin serving `body` whole or in single ranges, with an ETag the
/// test can change.
fn ranged_origin(body: Arc<Vec<u8>>, etag: Arc<Mutex<String>>, ranges_only: bool) -> Origin {
    Origin::start(move |seen| {
        let tag = etag.lock().expect("etag").clone();
        let (first, end) = match asked(seen, body.len()) {
            Some(r) => r,
            // An origin that serves ranges only answers a plain GET with
            // its first megabyte.
            None if ranges_only => (0, (1 << 20).min(body.len())),
            None => {
                return Script::ok("max-age=600", Vec::new())
                    .header("ETag", &tag)
                    .with(Body::Shared(body.clone()));
            }
        };
        Script::new(206, body[first..end].to_vec())
            .header("Cache-Control", "max-age=600")
            .header("ETag", &tag)
            .header(
                "Content-Range",
                &format!("bytes {first}-{}/{}", end - 1, body.len()),
            )
    })
}

fn ranged(addr: std::net::SocketAddr, path: &str, range: &str) -> Response {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nRange: bytes={range}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
}

/// Requests the origin saw with a Range field.
fn ranged_requests(origin: &Origin) -> usize {
    origin
        .seen()
        .iter()
        .filter(|s| s.header("range").is_some())
        .count()
}

const SMALL_STORE: &str = "[cache]\nmax_object_size = \"2MiB\"\nram_size = 0\n";

#[test]
fn a_range_of_an_object_too_large_to_store_is_kept_in_parts_and_served_from_them() {
    let body = Arc::new(bytes(6 << 20, 21));
    let origin = ranged_origin(body.clone(), Arc::new(Mutex::new("\"big1\"".into())), false);
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml(SMALL_STORE)
        .start();
    let r = ranged(edge.addr, "/video", "3000000-3000099");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &body[3_000_000..3_000_100]);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 3000000-3000099/6291456")
    );
    let cs = r.cache_status();
    assert!(
        cs.contains("fwd=partial") && cs.contains("detail=parts"),
        "{cs}"
    );
    let fetched = ranged_requests(&origin);
    assert_eq!(fetched, 1, "one part fetched for a range inside it");

    let again = ranged(edge.addr, "/video", "3000000-3000099");
    assert_eq!(again.body, &body[3_000_000..3_000_100]);
    assert!(again.is_hit(), "{}", again.cache_status());
    assert_eq!(
        ranged_requests(&origin),
        fetched,
        "served from the stored part"
    );

    // A range across parts fetches only the part not yet stored.
    let across = ranged(edge.addr, "/video", "2500000-3600000");
    assert_eq!(across.body, &body[2_500_000..3_600_001]);
    assert!(ranged_requests(&origin) <= fetched + 2);

    // The whole object, from parts (the missing ones fetched), then again
    // with no request to the origin at all.
    let whole = get(edge.addr, "/video");
    assert_eq!(whole.status, 200);
    assert!(
        whole.body == *body,
        "the whole object, assembled from parts"
    );
    let before = origin.requests();
    let whole = get(edge.addr, "/video");
    assert!(
        whole.body == *body && whole.is_hit(),
        "{}",
        whole.cache_status()
    );
    assert_eq!(origin.requests(), before);
}

#[test]
fn an_origin_that_only_serves_ranges_is_served_from_parts() {
    let body = Arc::new(bytes(3 << 20, 4));
    let origin = ranged_origin(body.clone(), Arc::new(Mutex::new("\"r1\"".into())), true);
    let edge = Edge::builder().origin(origin.addr).start();
    let whole = get(edge.addr, "/ranges-only");
    assert_eq!(whole.status, 200);
    assert!(whole.body == *body, "assembled from the origin's ranges");
    assert_eq!(whole.header("content-range"), None);
    let before = origin.requests();
    let r = ranged(edge.addr, "/ranges-only", "-10");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &body[body.len() - 10..])
    );
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_eq!(origin.requests(), before);
}

#[test]
fn parts_of_a_changed_representation_are_never_mixed() {
    let body = Arc::new(bytes(6 << 20, 8));
    let etag = Arc::new(Mutex::new("\"old\"".to_string()));
    let origin = ranged_origin(body.clone(), etag.clone(), false);
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml(SMALL_STORE)
        .start();
    assert_eq!(ranged(edge.addr, "/c", "0-9").status, 206);
    // The object changes at the origin: a part fetched now has another tag.
    *etag.lock().expect("etag") = "\"new\"".into();
    let r = ranged(edge.addr, "/c", "5000000-5000009");
    // Answered by the origin as asked (the marker is dropped), never with
    // the old tag's parts.
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &body[5_000_000..5_000_010]);
    assert_eq!(r.header("etag"), Some("\"new\""));
    assert!(
        r.cache_status().contains("detail=parts-unavailable"),
        "{}",
        r.cache_status()
    );
    let old_part = ranged(edge.addr, "/c", "0-9");
    assert_eq!(
        old_part.header("etag"),
        Some("\"new\""),
        "the old part is not served"
    );
}

#[test]
fn viewers_needing_one_missing_part_make_one_origin_request() {
    let body = Arc::new(bytes(6 << 20, 3));
    let origin = ranged_origin(body.clone(), Arc::new(Mutex::new("\"p\"".into())), false);
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml(SMALL_STORE)
        .start();
    // The marker first, with a part at the start.
    assert_eq!(ranged(edge.addr, "/p", "0-0").status, 206);
    let before = ranged_requests(&origin);
    let addr = edge.addr;
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                ranged(addr, "/p", &format!("{}-{}", 4_000_000 + i, 4_000_100 + i))
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().expect("viewer");
        assert_eq!(r.status, 206);
        assert_eq!(r.body, &body[4_000_000 + i..4_000_101 + i]);
    }
    assert_eq!(
        ranged_requests(&origin),
        before + 1,
        "one fetch of the shared part"
    );
}

#[test]
fn an_invalidation_takes_every_stored_part_with_the_object() {
    let body = Arc::new(bytes(6 << 20, 23));
    // The ETag never changes: only the invalidation can make the parts go.
    let origin = ranged_origin(body.clone(), Arc::new(Mutex::new("\"same\"".into())), false);
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml(SMALL_STORE)
        .toml("[admin]\ntoken = \"t0ken\"")
        .start();
    let r = ranged(edge.addr, "/video", "3000000-3000099");
    assert_eq!(r.body, &body[3_000_000..3_000_100]);
    assert!(ranged(edge.addr, "/video", "3000000-3000099").is_hit());
    let fetched = ranged_requests(&origin);
    let json = r#"{"paths": ["/video"]}"#;
    let post = format!(
        "POST /invalidations HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t0ken\r\n\
         Content-Length: {}\r\n\r\n{json}",
        json.len()
    );
    let answer = request(edge.admin.expect("admin"), post.as_bytes());
    assert_eq!(answer.status, 202, "{}", answer.text());
    let again = ranged(edge.addr, "/video", "3000000-3000099");
    assert_eq!(again.body, &body[3_000_000..3_000_100]);
    assert!(
        !again.is_hit(),
        "{} invalidated={}\n{}",
        again.cache_status(),
        edge.metric("edgeslab_cache_invalidated_total"),
        edge.stderr()
    );
    assert!(
        ranged_requests(&origin) > fetched,
        "the stored part was fetched again"
    );
}
