//! Idle keep-alive connections cost little: 15,000 viewers that each made
//! a request and stay connected grow the edge's resident set by at most
//! 8 KiB each, and the edge keeps serving a load of hits, misses and
//! passes while they are open — and then answers on the held connections.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::*;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// One request on a fresh connection, its response read, the connection
/// kept (keep-alive).
fn keep_alive(addr: std::net::SocketAddr) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    s.write_all(b"GET /small HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The body is "ok" (2 bytes) after the head.
    while !(got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"ok")) {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Some(s)
}

#[test]
fn fifteen_thousand_idle_connections_cost_little() {
    let origin = Origin::start(|_| Script::ok("max-age=600", b"ok".to_vec()));
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml("[listen]\nidle_timeout = \"300s\"\n[cache]\nram_size = \"8MiB\"")
        .start();
    // Warm: the object is cached and every shard has served.
    let mut warm = Vec::new();
    for _ in 0..200 {
        warm.push(keep_alive(edge.addr).expect("a warm-up connection"));
    }
    drop(warm);
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(edge.pid());
    let n = 15_000;
    let mut open = Vec::with_capacity(n);
    for i in 0..n {
        match keep_alive(edge.addr) {
            Some(s) => open.push(s),
            None => panic!("connection {i} failed"),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(edge.pid());
    let per_conn = (after.saturating_sub(before) * 1024) / n as u64;
    eprintln!("rss before {before} KiB, after {after} KiB with {n} idle: {per_conn} B each");
    assert!(per_conn <= 8 * 1024, "{per_conn} bytes per idle connection");
    // A load runs while they are held: hits, misses of distinct objects
    // and passes, from several keep-alive clients at once.
    let load: Vec<_> =
        (0..4)
            .map(|t| {
                let addr = edge.addr;
                std::thread::spawn(move || {
                    let mut c = Client::connect(addr);
                    for i in 0..300 {
                        let (raw, want): (String, &[u8]) = match i % 3 {
                        0 => ("GET /small HTTP/1.1\r\nHost: site.test\r\n\r\n".into(), b"ok"),
                        1 => (
                            format!("GET /obj/{t}/{i} HTTP/1.1\r\nHost: site.test\r\n\r\n"),
                            b"ok",
                        ),
                        _ => (
                            "POST /form HTTP/1.1\r\nHost: site.test\r\nContent-Length: 2\r\n\r\nhi"
                                .into(),
                            b"ok",
                        ),
                    };
                        c.send(raw.as_bytes());
                        let r = c.read_response().expect("a response under load");
                        assert_eq!(r.status, 200, "request {i} of client {t}");
                        assert_eq!(r.body, want, "request {i} of client {t}");
                    }
                })
            })
            .collect();
    for h in load {
        h.join().expect("load client");
    }
    // The held connections still answer: every 50th asks again.
    for (i, s) in open.iter_mut().enumerate().step_by(50) {
        s.write_all(b"GET /small HTTP/1.1\r\nHost: site.test\r\n\r\n")
            .expect("send on a held connection");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !(got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"ok")) {
            let n = s.read(&mut buf).expect("read on a held connection");
            assert!(n > 0, "held connection {i} was closed");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"), "held connection {i}");
    }
    assert!(
        origin.count("/form") >= 400,
        "passes reached the origin: {}",
        origin.count("/form")
    );
    drop(open);
}
