//! Every bad input gets its status, the connection is closed where HTTP says
//! so, a slow client cannot hold a shard, and a failing origin becomes a
//! clear 502/504.

mod support;

use std::time::{Duration, Instant};
use support::*;

const STRICT: &str = "[listen]\nhosts = [\"test.local\", \"www.example.com:8080\"]\nheader_timeout = \"1s\"\n\
                      idle_timeout = \"2s\"\nmax_header_bytes = 4096\nmax_uri_bytes = 256\n";

fn origin() -> Origin {
    Origin::start(|seen| {
        Script::ok(
            "max-age=60",
            format!("origin saw {}", seen.target).into_bytes(),
        )
    })
}

/// Sends `raw`; returns the status of the answer and whether the edge then
/// closed (sending nothing more).
fn answer(edge: &Edge, raw: &[u8]) -> (u16, bool) {
    let mut c = Client::connect(edge.addr);
    c.send(raw);
    let r = c.read_response_to(raw).expect("a response");
    let closed = c.closes_quietly(Duration::from_secs(1));
    (r.status, closed)
}

#[test]
fn malformed_requests_get_their_status_and_close() {
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).toml(STRICT).start();
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: test.local\r\n\r\n",
        "a".repeat(300)
    );
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: test.local\r\nX-Big: {}\r\n\r\n",
        "b".repeat(5000)
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "content-length with transfer-encoding",
            b"POST / HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        (
            "differing content-lengths",
            b"POST / HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_vec(),
            400,
        ),
        (
            "bad chunk size",
            b"POST / HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        (
            "obs-fold",
            b"GET / HTTP/1.1\r\nHost: test.local\r\nX-A: one\r\n  two\r\n\r\n".to_vec(),
            400,
        ),
        ("missing host", b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n".to_vec(), 400),
        ("two hosts", b"GET / HTTP/1.1\r\nHost: test.local\r\nHost: other\r\n\r\n".to_vec(), 400),
        ("header section too large", big_header.into_bytes(), 431),
        ("uri too long", long_uri.into_bytes(), 414),
        ("http/2 request line", b"GET / HTTP/2.0\r\nHost: test.local\r\n\r\n".to_vec(), 505),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), 400),
    ];
    for (what, raw, status) in cases {
        let (got, closed) = answer(&edge, &raw);
        assert_eq!(got, status, "{what}");
        assert!(
            closed,
            "{what}: connection must be closed after a framing error"
        );
    }
    assert_eq!(origin.requests(), 0, "nothing bad reached the origin");
}

#[test]
fn unknown_hosts_and_absolute_form_never_pick_the_upstream() {
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).toml(STRICT).start();
    let (st, _) = answer(&edge, b"GET /x HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    assert_eq!(st, 421);
    // The absolute-form authority wins over Host (RFC 9112 3.2.2).
    let (st, _) = answer(
        &edge,
        b"GET http://evil.example/x HTTP/1.1\r\nHost: test.local\r\n\r\n",
    );
    assert_eq!(st, 421);
    // A served host with a port, and one served without a port listed.
    let r = request(
        edge.addr,
        b"GET http://www.example.com:8080/y HTTP/1.1\r\nHost: whatever\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"origin saw /y");
    let seen = origin.last().unwrap();
    assert_eq!(seen.target, "/y", "origin gets origin-form");
    assert_eq!(seen.header("host"), Some("www.example.com:8080"));
    let r = request(edge.addr, b"GET /z HTTP/1.1\r\nHost: TEST.local\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(origin.requests(), 2);

    // 404 when configured so.
    let edge404 = Edge::builder()
        .origin(origin.addr)
        .toml(&format!("{STRICT}unknown_host_status = 404\n"))
        .start();
    let (st, closed) = answer(&edge404, b"GET /x HTTP/1.1\r\nHost: nope\r\n\r\n");
    assert_eq!(st, 404);
    assert!(
        !closed,
        "a refused request without a body keeps the connection"
    );
}

#[test]
fn no_open_proxy_even_without_a_host_list() {
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).start();
    // Port 1 is not listening; if the edge dialled the target, this would be a 502.
    let r = request(
        edge.addr,
        b"GET http://127.0.0.1:1/secret HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"origin saw /secret");
    assert_eq!(origin.count("/secret"), 1);
    let (st, _) = answer(
        &edge,
        b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
    );
    assert_eq!(st, 405);
}

#[test]
fn slow_clients_cannot_hold_a_shard() {
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).toml(STRICT).start();
    // Many connections that trickle a head and never finish it.
    let mut slow: Vec<Client> = (0..64)
        .map(|_| {
            let mut c = Client::connect(edge.addr);
            c.send(b"GET / HTTP/1.1\r\nHost: test.local\r\nX-Slow: ");
            c
        })
        .collect();
    // Everyone else is still served at once.
    let t = Instant::now();
    for i in 0..10 {
        let r = get(edge.addr, &format!("/fast{i}"));
        assert_eq!(r.status, 200);
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "served while slowloris held {} connections",
        slow.len()
    );
    // And the slow ones are cut off after the header timeout, with a 408.
    let r = slow[0].read_response().expect("408 response");
    assert_eq!(r.status, 408);
    for c in slow.iter_mut() {
        assert!(c.is_closed(Duration::from_secs(5)));
    }
    assert!(edge.metric("edgeslab_header_timeouts_total") >= 64);
}

#[test]
fn idle_connections_are_closed() {
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).toml(STRICT).start();
    let mut c = Client::connect(edge.addr);
    let r = c.get("/one");
    assert_eq!(r.status, 200);
    let t = Instant::now();
    assert!(c.closes_quietly(Duration::from_secs(6)));
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "closed too early: {:?}",
        t.elapsed()
    );
}

#[test]
fn origin_failures_are_502_and_504() {
    // Nothing listens on this port.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let edge = Edge::builder().origin(dead).start();
    let r = get(edge.addr, "/x");
    assert_eq!(r.status, 502);
    assert!(
        String::from_utf8_lossy(&r.body).contains("origin"),
        "{:?}",
        r.body
    );
    assert!(
        r.cache_status().contains("detail=origin-connect-failed"),
        "{}",
        r.cache_status()
    );

    let silent = Origin::start(|seen| {
        if seen.target == "/garbage" {
            return Script {
                status: 200,
                headers: vec![
                    ("Content-Length".into(), "12".into()),
                    ("Content-Length".into(), "13".into()),
                ],
                body: Body::CloseDelimited(b"abc".to_vec()),
            };
        }
        Script::ok("max-age=60", vec![]).with(Body::Silent)
    });
    let edge = Edge::builder()
        .origin(silent.addr)
        .toml("[origin]\nfirst_byte_timeout = \"1s\"\n")
        .start();
    let t = Instant::now();
    let r = get(edge.addr, "/hang");
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        r.cache_status().contains("origin-first-byte-timeout"),
        "{}",
        r.cache_status()
    );
    let r = get(edge.addr, "/garbage");
    assert_eq!(r.status, 502);
    assert_eq!(edge.metric("edgeslab_cache_hits_total"), 0);
}

#[test]
fn a_stalled_origin_body_is_cut_off_and_not_stored() {
    let gate = Gate::default();
    let origin = {
        let gate = gate.clone();
        Origin::start(move |_| {
            Script::ok("max-age=60", vec![]).with(Body::Gated {
                data: bytes(100_000, 5),
                first: 10_000,
                gate: gate.clone(),
            })
        })
    };
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml("[origin]\nidle_timeout = \"1s\"\n")
        .start();
    let t = Instant::now();
    let r = get(edge.addr, "/stall");
    let data = bytes(100_000, 5);
    assert_eq!(r.status, 200);
    assert!(!r.complete, "the viewer must see the body end early");
    assert!(data.starts_with(&r.body), "what came is the origin's bytes");
    assert!(t.elapsed() < Duration::from_secs(8));
    gate.open();
    let again = get(edge.addr, "/stall");
    assert!(again.complete && again.body == data);
    assert!(!again.is_hit(), "{}", again.cache_status());
    assert_eq!(origin.count("/stall"), 2);
}

#[test]
fn origin_connect_timeout_is_504() {
    // A listener that never accepts, with its backlog filled: further SYNs
    // are dropped, so a connect can only time out.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    let edge = Edge::builder()
        .origin(addr)
        .toml("[origin]\nconnect_timeout = \"500ms\"\n")
        .start();
    let t = Instant::now();
    let r = get(edge.addr, "/x");
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.cache_status().contains("origin-connect-timeout"),
        "{}",
        r.cache_status()
    );
    assert!(t.elapsed() < Duration::from_secs(5));
}
