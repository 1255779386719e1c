//! Protocol rules of RFC 9110/9111/9112 seen through the real binary: what a
//! 405 carries, which versions are spoken, what `Via` says, how transfer
//! codings travel, and which cacheable-method requests bypass the cache.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::wire;
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

/// An origin that answers every request with these exact bytes and closes:
/// for what the scripted origin never sends (an HTTP/1.0 status line). It
/// keeps the request heads it read, and stops accepting after 30 s.
fn raw_origin(response: &'static [u8]) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && matches!(s.read(&mut byte), Ok(1)) {
                head.push(byte[0]);
            }
            seen.lock()
                .expect("heads")
                .push(String::from_utf8_lossy(&head).into_owned());
            let _ = s.write_all(response);
        }
    });
    (addr, heads)
}

/// RFC 9110 7.6.3: `Via` names the version received — the viewer's toward
/// the origin, the origin's toward the viewer (also on a hit).
#[test]
fn via_carries_the_received_protocol_version() {
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).start();
    let old = b"GET /from-1.0 HTTP/1.0\r\nHost: test.local\r\n\r\n";
    let r = request(edge.addr, old);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("via"),
        Some("1.1 edgeslab"),
        "the origin spoke 1.1"
    );
    let seen = origin.last().expect("the request reached the origin");
    assert_eq!(seen.header("via"), Some("1.0 edgeslab"));
    get(edge.addr, "/from-1.1");
    let seen = origin.last().expect("the request reached the origin");
    assert_eq!(seen.header("via"), Some("1.1 edgeslab"));

    let (addr, heads) = raw_origin(
        b"HTTP/1.0 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nhello",
    );
    let edge = Edge::builder().origin(addr).start();
    let miss = get(edge.addr, "/old-origin");
    assert_eq!((miss.status, miss.text().as_str()), (200, "hello"));
    assert_eq!(miss.version, "HTTP/1.1");
    assert_eq!(miss.header("via"), Some("1.0 edgeslab"));
    let hit = get(edge.addr, "/old-origin");
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.header("via"), Some("1.0 edgeslab"));
    let heads = heads.lock().expect("heads");
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(heads[0].contains("Via: 1.1 edgeslab\r\n"), "{}", heads[0]);
}

/// Sends `raw` (which asks to close) and reads everything until the close:
/// for responses the strict client refuses by design (a transfer coding
/// other than chunked, which it does not decode).
fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> (wire::ResponseHead, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s.write_all(raw).expect("send");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read until the close");
    let end = wire::head_end(&all, 65536)
        .expect("a well-formed head")
        .expect("a whole head");
    let head = wire::parse_response_head(&all[..end]).expect("a valid head");
    (head, all[end..].to_vec())
}

/// RFC 9112 6.1: a transfer coding other than chunked is never dropped.
/// HTTP/1.1 viewers get it named with the coded bytes re-chunked; HTTP/1.0
/// viewers, who cannot receive it and for whom this node decodes nothing,
/// get a 502. Such responses are never stored.
#[test]
fn transfer_codings_other_than_chunked_reach_the_viewer_or_502() {
    let pieces: Vec<Vec<u8>> = (0..3).map(|i| bytes(3000 + i, 40 + i as u64)).collect();
    let coded: Vec<u8> = pieces.concat();
    let origin = {
        let pieces = pieces.clone();
        Origin::start(move |_| {
            Script::ok("max-age=60", vec![])
                .header("Transfer-Encoding", "gzip")
                .with(Body::Chunked(pieces.clone()))
        })
    };
    let edge = Edge::builder().origin(origin.addr).start();
    for _ in 0..2 {
        let (head, body) = raw_exchange(
            edge.addr,
            b"GET /coded HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n",
        );
        assert_eq!((head.minor, head.status), (1, 200));
        let te = wire::values(&head.fields, "transfer-encoding");
        assert_eq!(te, [&b"gzip, chunked"[..]]);
        assert!(wire::values(&head.fields, "content-length").is_empty());
        let status = String::from_utf8_lossy(wire::values(&head.fields, "cache-status")[0]);
        assert!(
            status.contains("fwd=uri-miss; detail=transfer-coding"),
            "{status}"
        );
        let mut decoder = wire::ChunkedDecoder::default();
        let mut got = Vec::new();
        let used = decoder
            .decode(&body, &mut |b| got.extend_from_slice(b))
            .expect("valid chunked framing");
        assert!(decoder.is_done() && used == body.len());
        assert!(got == coded, "the coded bytes, unchanged");
    }
    assert_eq!(origin.count("/coded"), 2, "never stored");

    let old = b"GET /coded HTTP/1.0\r\nHost: test.local\r\n\r\n";
    let r = request(edge.addr, old);
    assert_eq!(r.status, 502);
    assert_eq!(r.header("transfer-encoding"), None);
    assert!(r.text().contains("transfer coding"), "{}", r.text());
    assert!(
        r.cache_status()
            .contains("detail=transfer-coding-for-http10"),
        "{}",
        r.cache_status()
    );
    // HEAD has no body to code: its head goes out, without the coding.
    let head = request(
        edge.addr,
        b"HEAD /coded HTTP/1.0\r\nHost: test.local\r\n\r\n",
    );
    assert_eq!((head.status, head.header("transfer-encoding")), (200, None));
}

/// RFC 9111 5.2.1.5 and 3.5: a request whose response may not be stored is
/// not fetched as a fill. A HEAD then reaches the origin as HEAD, and
/// `Cache-Status` says why; a fresh stored copy still answers.
#[test]
fn requests_whose_response_cannot_be_stored_pass_as_sent() {
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).start();
    let cases: [(&[u8], &str, &str); 3] = [
        (
            b"HEAD /auth HTTP/1.1\r\nHost: test.local\r\nAuthorization: Basic eDp5\r\nConnection: close\r\n\r\n",
            "HEAD",
            "detail=head-authorization",
        ),
        (
            b"HEAD /nostore HTTP/1.1\r\nHost: test.local\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
            "HEAD",
            "detail=request-no-store",
        ),
        (
            b"GET /nostore-get HTTP/1.1\r\nHost: test.local\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
            "GET",
            "detail=request-no-store",
        ),
    ];
    for (raw, method, detail) in cases {
        let shown = String::from_utf8_lossy(raw).into_owned();
        let r = request(edge.addr, raw);
        assert_eq!(r.status, 200, "{shown}");
        let status = r.cache_status();
        assert!(
            status.contains(&format!("fwd=request; {detail}")) && !status.contains("stored"),
            "{shown}: {status}"
        );
        let seen = origin.last().expect("the request reached the origin");
        assert_eq!(seen.method, method, "{shown}");
        // Nothing was stored: the next plain GET is a miss.
        let target = seen.target.clone();
        let next = get(edge.addr, &target);
        assert!(
            next.cache_status().contains("fwd=uri-miss; stored"),
            "{target}: {}",
            next.cache_status()
        );
    }
    // Now that /auth is stored, a HEAD with Authorization is a hit.
    let r = request(
        edge.addr,
        b"HEAD /auth HTTP/1.1\r\nHost: test.local\r\nAuthorization: Basic eDp5\r\nConnection: close\r\n\r\n",
    );
    assert!(r.is_hit(), "{}", r.cache_status());
    assert_eq!(origin.count("/auth"), 2);
}
