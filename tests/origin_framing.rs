//! Origins that frame responses ambiguously or not at all: the viewer gets
//! a 502 (or, when the break comes mid-body, a closed connection), nothing
//! is stored, and the origin connection is never used again.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// An origin that answers each path with fixed bytes, keeps connections
/// open, and counts connections and requests per path.
struct CannedOrigin {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    asked: Arc<Mutex<HashMap<String, usize>>>,
}

fn canned(answers: HashMap<&'static str, Vec<u8>>) -> CannedOrigin {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let asked: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let answers = Arc::new(answers);
    let (c, a) = (connections.clone(), asked.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            c.fetch_add(1, Ordering::SeqCst);
            let (answers, asked) = (answers.clone(), a.clone());
            std::thread::spawn(move || {
                let mut s = stream;
                let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut tmp) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    *asked.lock().expect("lock").entry(path.clone()).or_insert(0) += 1;
                    let answer = answers.get(path.as_str()).cloned().unwrap_or_else(|| {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=600\r\n\r\nok".to_vec()
                    });
                    if s.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    CannedOrigin {
        addr,
        connections,
        asked,
    }
}

/// `canned` with one path's answer (every other path gets a good one).
fn canned_one(path: &'static str, answer: &[u8]) -> CannedOrigin {
    canned([(path, answer.to_vec())].into_iter().collect())
}

#[test]
fn ambiguous_origin_responses_are_502_never_stored_and_never_reused() {
    let huge = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
        "a".repeat(100_000)
    );
    let answers: HashMap<&'static str, Vec<u8>> = [
        ("/both", &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=600\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..]),
        ("/two-lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\nCache-Control: max-age=600\r\n\r\nhello!"),
        ("/bad-status", b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok"),
        ("/bad-name", b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 2\r\n\r\nok"),
        ("/huge-head", huge.as_bytes()),
    ]
    .into_iter()
    .map(|(p, b)| (p, b.to_vec()))
    .collect();
    let origin = canned(answers);
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml("cores = [0]")
        .start();
    // The control: a good response is stored, and its connection reused.
    assert_eq!(get(edge.addr, "/good").status, 200);
    assert_eq!(get(edge.addr, "/good-2").status, 200);
    assert_eq!(origin.connections.load(Ordering::SeqCst), 1, "reused");
    for path in [
        "/both",
        "/two-lengths",
        "/bad-status",
        "/bad-name",
        "/huge-head",
    ] {
        let before = origin.connections.load(Ordering::SeqCst);
        for _ in 0..2 {
            let r = get(edge.addr, path);
            assert_eq!(r.status, 502, "{path}: {}", r.text());
        }
        assert_eq!(
            origin.asked.lock().expect("lock")[path],
            2,
            "{path}: nothing stored"
        );
        assert!(
            origin.connections.load(Ordering::SeqCst) > before,
            "{path}: its connection was not used again"
        );
        // The next good request needs a fresh connection too.
        let after = origin.connections.load(Ordering::SeqCst);
        assert_eq!(get(edge.addr, &format!("{path}-then-good")).status, 200);
        assert_eq!(
            origin.connections.load(Ordering::SeqCst),
            after + 1,
            "{path}"
        );
    }
}

#[test]
fn a_chunked_body_that_breaks_mid_way_is_cut_and_never_stored() {
    let origin = canned_one(
        "/bad-chunk",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=600\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n",
    );
    let edge = Edge::builder().origin(origin.addr).start();
    for _ in 0..2 {
        let mut c = Client::connect(edge.addr);
        c.send(b"GET /bad-chunk HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = c.read_response();
        // Either nothing whole arrived, or what did is not the response.
        assert!(
            r.as_ref().is_none_or(|r| !r.complete),
            "a broken body passed as whole"
        );
        assert!(
            c.is_closed(Duration::from_secs(5)),
            "the viewer's connection is closed"
        );
    }
    assert_eq!(
        origin.asked.lock().expect("lock")["/bad-chunk"],
        2,
        "nothing stored"
    );
}

/// An origin that sends more than its `Content-Length` says: the viewer
/// gets the body the length frames, and the bytes after it are never read
/// as the next response: that connection is closed, not pooled.
#[test]
fn bytes_after_a_framed_body_never_reach_the_next_response() {
    let origin = canned_one(
        "/extra",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: max-age=600\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG",
    );
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml("cores = [0]")
        .start();
    let r = get(edge.addr, "/extra");
    assert_eq!((r.status, r.text()), (200, "hello".to_string()));
    let before = origin.connections.load(Ordering::SeqCst);
    let next = get(edge.addr, "/next");
    assert_eq!((next.status, next.text()), (200, "ok".to_string()));
    assert_eq!(
        origin.connections.load(Ordering::SeqCst),
        before + 1,
        "the connection with bytes left over was not used again"
    );
}
