//! A slow cache device does not hold up viewers: while a miss is stored,
//! the viewer's bytes go out as fast as the origin sends them, whatever the
//! segment writes cost. Only the response's last byte waits, until the
//! object is indexed, so that a viewer who saw a whole response finds it
//! stored. The device here takes 5 s more for every segment write (a
//! test-only fault switch).

mod support;

use std::time::{Duration, Instant};
use support::*;

const DELAY_MS: u64 = 5000;

#[test]
fn a_miss_reaches_the_viewer_without_waiting_for_segment_writes() {
    let origin = Origin::start(|seen| {
        let n: usize = seen.target.rsplit('/').next().unwrap().parse().unwrap();
        Script::ok("max-age=3600", bytes(n, n as u64))
    });
    let edge = Edge::builder()
        .origin(origin.addr)
        .env(
            "EDGESLAB_TEST_FAULTS",
            &format!("write-delay-ms={DELAY_MS}"),
        )
        .toml("cores = [0]\n[cache]\nsize = \"256MiB\"\n")
        .start();
    // 12 MiB: three 4 MiB segments fill while it streams, each of whose
    // writes takes 5 s, one at a time. Had the viewer's writes waited for
    // them, the body would stall at the second.
    let n = 12 << 20;
    let path = format!("/obj/{n}");
    let whole = bytes(n, n as u64);
    let raw = format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n");
    let mut c = Client::connect(edge.addr);
    let started = Instant::now();
    c.send(raw.as_bytes());
    let (mut at, mut all_but_last, mut same) = (0, None, true);
    let r = c
        .read_response_streaming(raw.as_bytes(), &mut |piece| {
            same &= whole.get(at..at + piece.len()) == Some(piece);
            at += piece.len();
            if at >= n - 1 && all_but_last.is_none() {
                all_but_last = Some(started.elapsed());
            }
        })
        .expect("a response");
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert!(r.complete && at == n && same, "the body differs or is cut");
    let all_but_last = all_but_last.unwrap();
    assert!(
        all_but_last < Duration::from_millis(DELAY_MS),
        "the viewer waited for the device: {all_but_last:?} for all but the last byte\n{}",
        edge.stderr()
    );
    eprintln!("all but the last byte after {all_but_last:?}, the last after {took:?}");
    // The whole object was stored, and the response ended once it was.
    let again = get(edge.addr, &path);
    assert!(again.is_hit(), "{}", again.cache_status());
    assert!(again.body == whole);
    assert_eq!(origin.count(&path), 1);
}
