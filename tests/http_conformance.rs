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
