//! Protocol rules of RFC 9110/9111/9112 seen through the real binary: what a
//! 405 carries, which versions are spoken, what `Via` says, how transfer
//! codings travel, and which cacheable-method requests bypass the cache.

mod support;

use support::*;

fn origin() -> Origin {
    Origin::start(|seen| {
        Script::ok(
            "max-age=60",
            format!("{} {}", seen.method, seen.target).into_bytes(),
        )
    })
}

/// RFC 9110 15.5.6: a 405 MUST carry `Allow`.
#[test]
fn method_not_allowed_names_the_allowed_methods() {
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).start();
    for raw in [
        &b"TRACE / HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n"[..],
        b"CONNECT test.local:443 HTTP/1.1\r\nHost: test.local:443\r\nConnection: close\r\n\r\n",
    ] {
        let r = request(edge.addr, raw);
        assert_eq!(r.status, 405);
        assert_eq!(
            r.header("allow"),
            Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
        );
    }
    assert_eq!(origin.requests(), 0);
    let admin = edge.admin.expect("admin listener");
    let r = request(
        admin,
        b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

/// RFC 9110 2.5, RFC 9112 2.3: HTTP/1.2 (any higher HTTP/1 minor) is
/// served as HTTP/1.1 — persistent, Host required; only another major
/// version gets 505.
#[test]
fn higher_http1_minor_versions_are_served_as_http11() {
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).start();
    let mut c = Client::connect(edge.addr);
    c.send(b"GET /v12 HTTP/1.2\r\nHost: test.local\r\n\r\nHEAD /v19 HTTP/1.9\r\nHost: test.local\r\n\r\n");
    let r = c.read_response().expect("a response");
    assert_eq!((r.version, r.status), ("HTTP/1.1", 200));
    assert_eq!(r.text(), "GET /v12");
    assert_eq!(r.header("connection"), None, "persistent, as HTTP/1.1");
    let h = c
        .read_response_to(b"HEAD /v19 HTTP/1.9\r\n")
        .expect("the second response on the connection");
    assert_eq!((h.status, h.body.len()), (200, 0));
    assert_eq!(origin.count("/v12"), 1);
    for (raw, status) in [
        (&b"GET / HTTP/1.2\r\nConnection: close\r\n\r\n"[..], 400),
        (b"GET / HTTP/3.1\r\nHost: test.local\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\nHost: test.local\r\n\r\n", 505),
    ] {
        let mut c = Client::connect(edge.addr);
        c.send(raw);
        let r = c.read_response_to(raw).expect("a response");
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(raw));
    }
}
