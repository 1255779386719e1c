//! The tiers on loopback: one scripted origin that counts its requests, a
//! regional node and two edges that list it as their parent — all the real
//! binary. What an operator checks first: where a response came from
//! (`Cache-Status` per tier, `Via` per hop), that the regional shields the
//! origin, and that unsafe methods skip the regional tier.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::*;

fn counting_origin() -> Origin {
    Origin::start(|seen| {
        let t = seen.target.as_str();
        if seen.method == "POST" {
            return Script::new(201, b"created".to_vec()).header("Cache-Control", "no-store");
        }
        if let Some(n) = t
            .strip_prefix("/size/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            return Script::ok("max-age=300", bytes(n, n as u64));
        }
        Script::ok("max-age=300", format!("object at {t}").into_bytes())
    })
}

fn regional(origin: SocketAddr, name: &str) -> Edge {
    Edge::builder()
        .origin(origin)
        .toml(&format!("role = \"regional\"\nname = \"{name}\""))
        .start()
}

fn edge(origin: SocketAddr, name: &str, parents: &[SocketAddr]) -> Edge {
    let list: Vec<String> = parents.iter().map(|p| format!("\"{p}\"")).collect();
    Edge::builder()
        .origin(origin)
        .toml(&format!(
            "name = \"{name}\"\n[parents]\naddrs = [{}]\ndown_time = \"30s\"",
            list.join(", ")
        ))
        .start()
}

#[test]
fn the_regional_shields_the_origin_and_each_tier_says_what_it_did() {
    let origin = counting_origin();
    let regional = regional(origin.addr, "regional-1");
    let edge1 = edge(origin.addr, "edge-1", &[regional.addr]);
    let edge2 = edge(origin.addr, "edge-2", &[regional.addr]);

    let first = get(edge1.addr, "/obj");
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "object at /obj");
    assert_eq!(origin.count("/obj"), 1);
    assert_eq!(
        first.cache_status(),
        "regional-1; fwd=uri-miss; stored, edge-1; fwd=uri-miss; stored"
    );
    assert_eq!(first.header("via"), Some("1.1 regional-1, 1.1 edge-1"));
    // The origin saw the request through both tiers.
    let seen = origin.last().expect("a request");
    assert_eq!(seen.header("via"), Some("1.1 edge-1, 1.1 regional-1"));

    // Edge 2 has never seen the object: the regional has.
    let second = get(edge2.addr, "/obj");
    assert_eq!(second.text(), "object at /obj");
    assert_eq!(origin.count("/obj"), 1, "the regional answered");
    let status = second.cache_status();
    assert!(
        status.starts_with("regional-1; hit; ttl=")
            && status.ends_with(", edge-2; fwd=uri-miss; stored"),
        "{status}"
    );
    // And now each edge has it.
    let third = get(edge2.addr, "/obj");
    assert!(third.is_hit_at("edge-2"), "{}", third.cache_status());
    assert_eq!(origin.count("/obj"), 1);

    // Large objects stream through both tiers intact.
    let big = get(edge1.addr, "/size/3000000");
    assert_eq!(big.body, bytes(3_000_000, 3_000_000));
    let again = get(edge2.addr, "/size/3000000");
    assert_eq!(again.body, bytes(3_000_000, 3_000_000));
    assert_eq!(origin.count("/size/3000000"), 1);
}

#[test]
fn unsafe_methods_go_straight_to_the_origin() {
    let origin = counting_origin();
    let regional = regional(origin.addr, "regional-1");
    let edge1 = edge(origin.addr, "edge-1", &[regional.addr]);
    let before = regional.metric("edgeslab_requests_total");
    let r = request(
        edge1.addr,
        b"POST /form HTTP/1.1\r\nHost: site.test\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 201);
    let seen = origin.last().expect("the POST");
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body, b"hello");
    assert_eq!(seen.header("via"), Some("1.1 edge-1"), "one hop");
    assert_eq!(regional.metric("edgeslab_requests_total"), before);
}

#[test]
fn edges_serve_from_the_origin_when_the_regional_is_gone() {
    let origin = counting_origin();
    let mut regional = regional(origin.addr, "regional-1");
    let edge1 = edge(origin.addr, "edge-1", &[regional.addr]);
    assert_eq!(get(edge1.addr, "/before").status, 200);
    regional.kill9();
    let r = get(edge1.addr, "/after");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "object at /after");
    assert_eq!(r.cache_status(), "edge-1; fwd=uri-miss; stored");
    let seen = origin.last().expect("a request");
    assert_eq!(seen.header("via"), Some("1.1 edge-1"));
    // The dead parent is skipped for a while: no more connect attempts.
    let r = get(edge1.addr, "/after2");
    assert_eq!(r.status, 200);
}

#[test]
fn a_failed_parent_hands_its_keys_to_the_next_parent() {
    let origin = counting_origin();
    let r1 = regional(origin.addr, "regional-1");
    let mut r2 = regional(origin.addr, "regional-2");
    let edge1 = edge(origin.addr, "edge-1", &[r1.addr, r2.addr]);
    // Find objects each regional holds.
    let mut on = [Vec::new(), Vec::new()];
    for i in 0..40 {
        let path = format!("/spread/{i}");
        let r = get(edge1.addr, &path);
        let status = r.cache_status().to_string();
        let which = if status.starts_with("regional-1;") {
            0
        } else {
            1
        };
        assert!(
            status.starts_with(["regional-1;", "regional-2;"][which]),
            "{status}"
        );
        on[which].push(path);
    }
    assert!(
        !on[0].is_empty() && !on[1].is_empty(),
        "both parents hold keys: {on:?}"
    );
    r2.kill9();
    // A key that lived on regional 2 now goes to regional 1.
    let edge2 = edge(origin.addr, "edge-2", &[r1.addr, r2.addr]);
    let r = get(edge2.addr, &on[1][0]);
    assert_eq!(r.status, 200);
    assert!(
        r.cache_status().starts_with("regional-1; fwd=uri-miss"),
        "{}",
        r.cache_status()
    );
    // A key of regional 1 is still a regional hit there.
    let r = get(edge2.addr, &on[0][0]);
    assert!(
        r.cache_status().starts_with("regional-1; hit"),
        "{}",
        r.cache_status()
    );
}

/// An origin that builds absolute links from the Host it is told, as many
/// frameworks do from `X-Forwarded-Host`: the classic cache poisoning.
fn reflecting_origin() -> Origin {
    Origin::start(|seen| {
        let host = seen
            .header("x-forwarded-host")
            .or(seen.header("host"))
            .unwrap_or("-")
            .to_string();
        if seen.target.starts_with("/api/") {
            return Script::ok(
                "max-age=600",
                format!("api {} {}", seen.method, seen.target).into_bytes(),
            );
        }
        Script::ok(
            "max-age=600",
            format!("<a href=\"https://{host}/next\">").into_bytes(),
        )
    })
}

#[test]
fn an_unkeyed_header_never_changes_what_another_viewer_receives() {
    let origin = reflecting_origin();
    let regional = regional(origin.addr, "regional-1");
    let edge1 = edge(origin.addr, "edge-1", &[regional.addr]);
    let edge2 = edge(origin.addr, "edge-2", &[regional.addr]);
    let poisoned = request(
        edge1.addr,
        b"GET /page HTTP/1.1\r\nHost: site.test\r\nX-Forwarded-Host: evil.test\r\n\r\n",
    );
    assert_eq!(poisoned.text(), "<a href=\"https://site.test/next\">");
    let seen = origin.last().expect("the fill");
    assert_eq!(seen.header("x-forwarded-host"), None, "dropped at the edge");
    for edge in [&edge1, &edge2] {
        let clean = request(edge.addr, b"GET /page HTTP/1.1\r\nHost: site.test\r\n\r\n");
        assert_eq!(clean.text(), "<a href=\"https://site.test/next\">");
    }
    assert_eq!(origin.count("/page"), 1);
}

#[test]
fn dynamic_behaviours_skip_every_cache_and_methods_follow_the_behaviour() {
    let origin = reflecting_origin();
    let regional = regional(origin.addr, "regional-1");
    let edge1 = Edge::builder()
        .origin(origin.addr)
        .toml(&format!(
            "name = \"edge-1\"\n[parents]\naddrs = [\"{}\"]\n\
             [[behavior]]\npath = \"/api/*\"\ndynamic = true\n\
             [[behavior]]\npath = \"*.jpg\"\nmethods = [\"GET\", \"HEAD\"]\n",
            regional.addr
        ))
        .start();
    let before = regional.metric("edgeslab_requests_total");
    for _ in 0..2 {
        let r = get(edge1.addr, "/api/items");
        assert_eq!(r.text(), "api GET /api/items");
        assert!(
            r.cache_status().contains("detail=dynamic"),
            "{}",
            r.cache_status()
        );
    }
    assert_eq!(origin.count("/api/items"), 2, "never cached");
    assert_eq!(
        origin.last().expect("seen").header("via"),
        Some("1.1 edge-1")
    );
    assert_eq!(
        regional.metric("edgeslab_requests_total"),
        before,
        "never via the regional"
    );

    let r = request(
        edge1.addr,
        b"DELETE /a.jpg HTTP/1.1\r\nHost: site.test\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(origin.count("/a.jpg"), 0);
    assert_eq!(get(edge1.addr, "/a.jpg").status, 200);
}

#[test]
fn many_edges_missing_one_object_make_one_origin_request() {
    let gate = Gate::default();
    let origin = {
        let gate = gate.clone();
        Origin::start(move |_| {
            Script::ok("max-age=600", Vec::new()).with(Body::Gated {
                data: bytes(200_000, 7),
                first: 1000,
                gate: gate.clone(),
            })
        })
    };
    let regional = regional(origin.addr, "regional-1");
    let edges: Vec<Edge> = (0..3)
        .map(|i| edge(origin.addr, &format!("edge-{i}"), &[regional.addr]))
        .collect();
    let early = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..9)
        .map(|i| {
            let addr = edges[i % 3].addr;
            let early = early.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut got = Vec::new();
                let raw = b"GET /hot HTTP/1.1\r\nHost: site.test\r\n\r\n";
                c.send(raw);
                let r = c
                    .read_response_streaming(raw, &mut |b: &[u8]| {
                        let before = got.len();
                        got.extend_from_slice(b);
                        if before < 1000 && got.len() >= 1000 {
                            early.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                    .expect("a response");
                (r.status, got)
            })
        })
        .collect();
    // Cut-through across both tiers: the first bytes reach every viewer
    // while the origin still holds the rest.
    assert!(
        eventually(std::time::Duration::from_secs(15), || early
            .load(Ordering::SeqCst)
            == 9),
        "{} of 9 viewers had the first bytes before the origin sent the rest",
        early.load(Ordering::SeqCst)
    );
    gate.open();
    for c in clients {
        let (status, body) = c.join().expect("client");
        assert_eq!(status, 200);
        assert_eq!(body, bytes(200_000, 7));
    }
    assert_eq!(
        origin.count("/hot"),
        1,
        "one origin request at the regional"
    );
}

#[test]
fn a_parent_answering_5xx_is_skipped_for_the_next_one() {
    let origin = counting_origin();
    // A "parent" that only ever answers 503.
    let broken = Origin::start(|_| Script::new(503, b"overloaded".to_vec()));
    let good = regional(origin.addr, "regional-1");
    let edge1 = edge(origin.addr, "edge-1", &[broken.addr, good.addr]);
    for i in 0..20 {
        let r = get(edge1.addr, &format!("/k/{i}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), format!("object at /k/{i}"));
    }
    // Marked down after its first 5xx (by each shard): then skipped.
    assert!(
        broken.requests() <= edge1.shards,
        "the failing parent is skipped for a while: asked {} times",
        broken.requests()
    );
    assert!(edge1.metric("edgeslab_upstream_failovers_total") >= 1);
}
