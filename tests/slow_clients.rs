//! Slow viewers are cut off by the configured timeouts, both ways, while
//! everyone else is served: one that trickles a request body (slower than
//! `listen.min_body_rate`), and one that stops reading its response
//! (`listen.io_timeout` on each write).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

const BIG: usize = 32 << 20;

fn edge(origin: &Origin) -> Edge {
    Edge::builder()
        .origin(origin.addr)
        .toml("[listen]\nio_timeout = \"1s\"\nmin_body_rate = 1000\n[cache]\nsize = \"256MiB\"")
        .start()
}

fn origin() -> Origin {
    Origin::start(|seen| {
        if seen.target == "/big" {
            return Script::ok("max-age=600", bytes(BIG, 3));
        }
        Script::ok(
            "no-store",
            format!("{} {} bytes", seen.method, seen.body.len()).into_bytes(),
        )
    })
}

#[test]
fn a_trickled_request_body_is_cut_off_and_others_are_served() {
    let origin = origin();
    let edge = edge(&origin);
    let mut slow = TcpStream::connect(edge.addr).expect("connect");
    slow.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .expect("head");
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        let mut answer = Vec::new();
        for _ in 0..100 {
            if slow.write_all(b"x").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            let _ = slow.set_nonblocking(true);
            let mut buf = [0u8; 4096];
            match slow.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            let _ = slow.set_nonblocking(false);
        }
        (answer, started.elapsed())
    });
    // Meanwhile another viewer is served at once.
    let t = Instant::now();
    let r = request(
        edge.addr,
        b"POST /quick HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(r.text(), "POST 2 bytes");
    assert!(t.elapsed() < Duration::from_secs(2));
    let (answer, took) = trickle.join().expect("trickle");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(took < Duration::from_secs(6), "cut off after {took:?}");
    assert!(
        origin.seen().iter().all(|s| s.target != "/upload"),
        "no upload completed"
    );
}

#[test]
fn a_viewer_that_stops_reading_is_cut_off_and_others_are_served() {
    let origin = origin();
    let edge = edge(&origin);
    assert_eq!(get(edge.addr, "/big").body.len(), BIG);
    // It reads nothing while the edge's writes wait past io_timeout.
    let mut stalled = stalled_viewer(edge.addr, "/big", Duration::from_secs(4));
    let t = Instant::now();
    let r = get(edge.addr, "/big");
    assert_eq!(r.body.len(), BIG, "others are served meanwhile");
    assert!(t.elapsed() < Duration::from_secs(5));
    let total = drain(&mut stalled, Duration::from_secs(30)).len();
    assert!(
        total < BIG,
        "the stalled viewer was cut off ({total} bytes read)"
    );
}
