//! Request smuggling, from outside: each request another HTTP/1.1 parser
//! could frame differently is either refused (400, connection closed, the
//! origin sees nothing) or sent upstream in one unambiguous form. The
//! origin here records the exact bytes it receives, framed by httparse and
//! its own strict rules, never by edgeslab's codec.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// An origin that keeps every complete request's raw bytes.
struct RawOrigin {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RawOrigin {
    fn start() -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || serve_raw(stream, &seen));
            }
        });
        RawOrigin { addr, requests }
    }

    fn requests(&self) -> Vec<String> {
        let r = self.requests.lock().expect("lock");
        r.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }
}

/// Reads requests (head by httparse, body by a single Content-Length or
/// strict chunked framing) and answers each with a small 200.
fn serve_raw(mut s: TcpStream, seen: &Mutex<Vec<Vec<u8>>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let end = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let mut cl = None;
                    let mut chunked = false;
                    for h in req.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            cl = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.parse::<usize>().ok());
                        }
                        if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = true;
                        }
                    }
                    let body_end = if chunked {
                        find(&buf[n..], b"0\r\n\r\n").map(|i| n + i + 5)
                    } else {
                        Some(n + cl.unwrap_or(0)).filter(|&e| e <= buf.len())
                    };
                    if let Some(e) = body_end {
                        break e;
                    }
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return,
            }
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        seen.lock().expect("lock").push(buf[..end].to_vec());
        buf.drain(..end);
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok";
        if s.write_all(answer).is_err() {
            return;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends raw bytes and returns the status (or 0 if none came) and whether
/// the edge closed the connection after it.
fn send(edge: SocketAddr, raw: &[u8]) -> (u16, bool) {
    let mut c = Client::connect(edge);
    c.send(raw);
    let status = c.read_response().map_or(0, |r| r.status);
    (status, c.is_closed(Duration::from_secs(5)))
}

fn edge_for(origin: &RawOrigin, extra: &str) -> Edge {
    Edge::builder().origin(origin.addr).toml(extra).start()
}

/// Requests that must be refused: 400 (or the status named), the
/// connection closed, and nothing reaching the origin.
#[test]
fn ambiguous_requests_are_refused_before_the_origin() {
    let origin = RawOrigin::start();
    let edge = edge_for(&origin, "");
    let cases: &[(&str, &[u8], u16)] = &[
        ("conflicting lengths", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
        ("length and chunked", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("chunked not final", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400),
        ("chunked twice", b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
        ("bare LF", b"POST /a HTTP/1.1\nHost: x\nContent-Length: 0\n\n", 400),
        ("bare LF in a field", b"POST /a HTTP/1.1\r\nHost: x\r\nX-A: 1\nContent-Length: 0\r\n\r\n", 400),
        ("bare CR", b"POST /a HTTP/1.1\r\nHost: x\rContent-Length: 0\r\n\r\n", 400),
        ("space before colon", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello", 400),
        ("obs-fold", b"POST /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Content-Length: 5\r\n\r\nhello", 400),
        ("NUL in a value", b"POST /a HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 400),
        ("non-token name", b"POST /a HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", 400),
        ("negative length", b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        ("CONNECT", b"CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n", 405),
    ];
    for (what, raw, want) in cases {
        let (status, closed) = send(edge.addr, raw);
        assert_eq!(status, *want, "{what}");
        assert!(closed || *want == 405, "{what}: the connection stays open");
    }
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());
}

/// Bodies whose chunked framing breaks mid-way: the viewer gets 400 or a
/// closed connection; the origin never receives a complete request.
#[test]
fn broken_chunked_bodies_never_complete_upstream() {
    let origin = RawOrigin::start();
    let edge = edge_for(&origin, "");
    let long_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e=x;".repeat(4000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "chunk size overflow",
            b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        ("chunk size not hex", b"5x\r\nhello\r\n0\r\n\r\n".to_vec()),
        ("oversized chunk line", long_ext.into_bytes()),
        (
            "data longer than its size",
            b"3\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        ("bare LF after a chunk", b"5\r\nhello\n0\r\n\r\n".to_vec()),
    ];
    for (what, body) in cases {
        let mut raw = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        raw.extend_from_slice(&body);
        let (status, closed) = send(edge.addr, &raw);
        assert!(status == 400 || status == 0, "{what}: {status}");
        assert!(closed, "{what}: connection open");
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());
}

/// Requests the edge accepts but sends upstream in one unambiguous form.
#[test]
fn accepted_requests_reach_the_origin_in_one_form() {
    let origin = RawOrigin::start();
    let edge = edge_for(&origin, "");
    let expect = |raw: &[u8], check: &dyn Fn(&str)| {
        let before = origin.requests().len();
        let (status, _) = send(edge.addr, raw);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(raw));
        let all = origin.requests();
        assert_eq!(all.len(), before + 1);
        check(&all[before]);
    };
    // A repeated, identical length: one field, one value.
    for raw in [
        &b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"[..],
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
    ] {
        expect(raw, &|got| {
            assert_eq!(got.matches("Content-Length").count(), 1, "{got}");
            assert!(
                got.contains("\r\nContent-Length: 5\r\n") && got.ends_with("\r\n\r\nhello"),
                "{got}"
            );
        });
    }
    // An underscore name never reaches the origin (dropped by default).
    expect(
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
        &|got| {
            assert!(!got.contains("Transfer_Encoding"), "{got}");
            assert!(got.ends_with("\r\n\r\nhello"), "{got}");
        },
    );
    // Trailers are not forwarded, framing fields in them least of all.
    expect(
        b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 99\r\nTransfer-Encoding: x\r\n\r\n",
        &|got| {
            assert!(got.ends_with("5\r\nhello\r\n0\r\n\r\n"), "{got:?}");
            assert_eq!(got.matches("Content-Length").count(), 0, "{got}");
        },
    );
    // An absolute-form target names no upstream: the origin configured
    // answers, asked for the path only.
    expect(
        b"GET http://evil.test/x HTTP/1.1\r\nHost: x\r\n\r\n",
        &|got| {
            assert!(got.starts_with("GET /x HTTP/1.1\r\n"), "{got}");
        },
    );
}

#[test]
fn underscore_names_can_be_refused() {
    let origin = RawOrigin::start();
    let edge = edge_for(&origin, "[listen]\nunderscore_headers = \"refuse\"");
    let (status, closed) = send(
        edge.addr,
        b"GET /u HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 1.2.3.4\r\n\r\n",
    );
    assert_eq!(status, 400);
    assert!(closed);
    assert!(origin.requests().is_empty());
}
