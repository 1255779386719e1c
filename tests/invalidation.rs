//! Invalidations through the real binaries: one regional and two edges on
//! loopback that know each other's admin APIs. An invalidation given to
//! any node reaches every node once, each then fetches the object again,
//! the CLI follows it to completion, and an acknowledged invalidation
//! survives SIGKILL.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

const TOKEN: &str = "s3cret-token";

/// Each response names how many times the origin has served its path, so
/// a refetch is visible in the body too.
fn versioned_origin() -> Origin {
    let served = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        usize,
    >::new()));
    Origin::start(move |seen| {
        let t = seen.target.clone();
        let n = {
            let mut m = served.lock().expect("lock");
            let n = m.entry(t.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let script = Script::ok("max-age=600", format!("{t} v{n}").into_bytes());
        if t.starts_with("/tagged/") {
            return script.header("Surrogate-Key", "product-42 all-products");
        }
        if t.starts_with("/varied") {
            return script.header("Vary", "Accept-Language");
        }
        script
    })
}

struct Tiers {
    origin: Origin,
    regional: Edge,
    edges: [Edge; 2],
}

fn node_toml(name: &str, admin: SocketAddr, peers: &[SocketAddr], extra: &str) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"http://{p}\"")).collect();
    format!(
        "name = \"{name}\"\n{extra}\n[admin]\naddr = \"{admin}\"\ntoken = \"{TOKEN}\"\n\
         [invalidation]\npeers = [{}]\npeer_timeout = \"20s\"\n",
        peers.join(", ")
    )
}

fn tiers() -> Tiers {
    let origin = versioned_origin();
    let (ar, a1, a2) = (
        free_loopback_addr(),
        free_loopback_addr(),
        free_loopback_addr(),
    );
    let regional = Edge::builder()
        .origin(origin.addr)
        .toml(&node_toml(
            "regional-1",
            ar,
            &[a1, a2],
            "role = \"regional\"",
        ))
        .start();
    let parent = format!("[parents]\naddrs = [\"{}\"]", regional.addr);
    let edge = |name: &str, admin| {
        Edge::builder()
            .origin(origin.addr)
            .toml(&node_toml(name, admin, &[ar], ""))
            .toml(&parent)
            .start()
    };
    let edges = [edge("edge-1", a1), edge("edge-2", a2)];
    Tiers {
        origin,
        regional,
        edges,
    }
}

fn post_invalidation(admin: SocketAddr, token: Option<&str>, body: &str) -> Response {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let raw = format!(
        "POST /invalidations HTTP/1.1\r\nHost: admin\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    request(admin, raw.as_bytes())
}

fn invalidate_cli(admin: SocketAddr, args: &[&str]) -> std::process::Output {
    let url = format!("http://{admin}");
    let mut argv = vec![
        "invalidate",
        "--admin",
        &url,
        "--token",
        TOKEN,
        "--wait",
        "60s",
    ];
    argv.extend_from_slice(args);
    run_bin(&argv, Duration::from_secs(90))
}

#[test]
fn an_invalidation_given_to_one_edge_reaches_every_tier() {
    let t = tiers();
    let [e1, e2] = &t.edges;
    assert_eq!(get(e1.addr, "/a.jpg").text(), "/a.jpg v1");
    assert_eq!(get(e2.addr, "/a.jpg").text(), "/a.jpg v1");
    assert!(get(e1.addr, "/a.jpg").is_hit_at("edge-1"));
    assert!(get(e2.addr, "/a.jpg").is_hit_at("edge-2"));
    assert_eq!(t.origin.count("/a.jpg"), 1);

    // No token, a wrong token: refused, nothing invalidated.
    let body = r#"{"paths": ["/a.jpg"]}"#;
    let r = post_invalidation(e1.admin.expect("admin"), None, body);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("www-authenticate").is_some());
    let r = post_invalidation(e1.admin.expect("admin"), Some("wrong"), body);
    assert_eq!(r.status, 401);
    assert!(get(e1.addr, "/a.jpg").is_hit_at("edge-1"));

    let out = invalidate_cli(e1.admin.expect("admin"), &["/a.jpg"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for node in ["edge-1", "regional-1", "edge-2"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(node) && l.contains("applied")),
            "{node} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("complete: 3 node(s)"), "{stdout}");

    // Edge 2 had it, and the regional too: both fetch again.
    let r = get(e2.addr, "/a.jpg");
    assert_eq!(r.text(), "/a.jpg v2", "{}", r.cache_status());
    assert!(
        r.cache_status().starts_with("regional-1; fwd=uri-miss"),
        "{}",
        r.cache_status()
    );
    assert!(!r.is_hit_at("edge-2"));
    assert_eq!(t.origin.count("/a.jpg"), 2);
    // Edge 1 no longer serves its copy either.
    let r = get(e1.addr, "/a.jpg");
    assert!(!r.is_hit_at("edge-1"), "{}", r.cache_status());
    assert_ne!(r.text(), "/a.jpg v1");
    // Other objects are untouched.
    let _ = t.regional.metric("edgeslab_cache_invalidated_total");
}

#[test]
fn prefixes_and_tags_cover_every_matching_object_and_variant() {
    let t = tiers();
    let [e1, e2] = &t.edges;
    for path in [
        "/images/a.png",
        "/images/b/c.png",
        "/other.png",
        "/tagged/1",
        "/tagged/2",
    ] {
        assert!(get(e1.addr, path).status == 200);
        assert!(get(e1.addr, path).is_hit_at("edge-1"), "{path}");
    }
    let varied = |lang: &str| {
        let raw =
            format!("GET /varied HTTP/1.1\r\nHost: site.test\r\nAccept-Language: {lang}\r\n\r\n");
        request(e2.addr, raw.as_bytes())
    };
    assert_eq!(varied("en").text(), "/varied v1");
    assert_eq!(varied("fr").text(), "/varied v2");
    assert!(varied("en").is_hit_at("edge-2") && varied("fr").is_hit_at("edge-2"));

    // Given to the regional this time.
    let admin = t.regional.admin.expect("admin");
    let r = post_invalidation(
        admin,
        Some(TOKEN),
        r#"{"paths": ["/images/*", "/varied"], "tags": ["product-42"]}"#,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.text().split('"').nth(3).expect("an id").to_string();
    let report = |node: SocketAddr| {
        let raw = format!(
            "GET /invalidations/{id} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        );
        request(node, raw.as_bytes()).text()
    };
    assert!(
        eventually(Duration::from_secs(30), || report(admin)
            .contains("\"complete\":true")),
        "{}",
        report(admin)
    );
    assert!(
        report(admin).matches("\"applied\"").count() == 3,
        "{}",
        report(admin)
    );

    for path in ["/images/a.png", "/images/b/c.png", "/tagged/1", "/tagged/2"] {
        let r = get(e1.addr, path);
        assert!(!r.is_hit_at("edge-1"), "{path}: {}", r.cache_status());
        assert!(r.text().ends_with("v2"), "{path}: {}", r.text());
    }
    assert!(
        get(e1.addr, "/other.png").is_hit_at("edge-1"),
        "not covered"
    );
    assert!(!varied("en").is_hit_at("edge-2"));
    assert!(!varied("fr").is_hit_at("edge-2"));
    // A bad body is a 400 naming the field.
    let r = post_invalidation(admin, Some(TOKEN), r#"{"paths": ["images/*"]}"#);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("paths[0]"), "{}", r.text());
}

#[test]
fn an_acknowledged_invalidation_survives_sigkill() {
    let origin = versioned_origin();
    let dir = TempDir::new("inval-crash");
    let builder = Edge::builder()
        .origin(origin.addr)
        .dir(dir.path())
        .toml(&format!("[admin]\ntoken = \"{TOKEN}\""));
    let mut edge = builder.start();
    assert_eq!(get(edge.addr, "/c").text(), "/c v1");
    assert!(get(edge.addr, "/c").is_hit());
    let r = post_invalidation(
        edge.admin.expect("admin"),
        Some(TOKEN),
        r#"{"paths": ["/c"]}"#,
    );
    assert_eq!(r.status, 202);
    edge.kill9();
    let edge = builder.start();
    let r = get(edge.addr, "/c");
    assert_eq!(r.text(), "/c v2", "{}", r.cache_status());
    assert_eq!(origin.count("/c"), 2);
}

#[test]
fn without_a_token_configured_invalidations_are_off() {
    let origin = versioned_origin();
    let edge = Edge::builder().origin(origin.addr).start();
    let r = post_invalidation(
        edge.admin.expect("admin"),
        Some("x"),
        r#"{"paths": ["/c"]}"#,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("admin.token"));
}

#[test]
fn upstream_connections_are_reused() {
    let origin = versioned_origin();
    let edge = Edge::builder().origin(origin.addr).start();
    let done = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let done = done.clone();
            let addr = edge.addr;
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for i in 0..250 {
                    let r = c.get(&format!("/pool/{t}/{i}"));
                    assert_eq!(r.status, 200);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    assert_eq!(done.load(Ordering::Relaxed), 1000);
    let requests = edge.metric("edgeslab_upstream_requests_total");
    let reused = edge.metric("edgeslab_origin_connections_reused_total");
    assert_eq!(requests, 1000);
    assert!(
        reused * 100 >= requests * 99,
        "{reused} of {requests} reused"
    );
    assert!(origin.connections() <= 10, "{}", origin.connections());
}
