//! A failing disk under load: with every 100th device read and every 50th
//! segment write failing (EIO, the test-only switch), 60 s of mixed
//! traffic from four viewers serves no wrong byte, the edge keeps serving,
//! and an invalidation acknowledged during it holds.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::*;

fn size_of(i: u64) -> usize {
    [700, 9_000, 70_000, 300_000, 1_500_000][(i % 5) as usize]
}

#[test]
fn eio_under_load_serves_no_wrong_byte() {
    let secs: u64 = std::env::var("EDGESLAB_FAULT_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let origin = Origin::start(|seen| {
        let i: u64 = seen.target.trim_start_matches("/o/").parse().unwrap_or(0);
        Script::ok("max-age=600", bytes(size_of(i), i))
    });
    let edge = Edge::builder()
        .origin(origin.addr)
        .env("EDGESLAB_TEST_FAULTS", "read-eio=100,write-eio=50")
        .toml("[cache]\nsize = \"96MiB\"\nram_size = \"4MiB\"\n[admin]\ntoken = \"t\"")
        .start();
    let stop = Arc::new(AtomicBool::new(false));
    let (served, wrong) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let viewers: Vec<_> = (0..4u64)
        .map(|v| {
            let (stop, served, wrong, addr) =
                (stop.clone(), served.clone(), wrong.clone(), edge.addr);
            std::thread::spawn(move || {
                let mut x = v * 7919 + 1;
                while !stop.load(Ordering::Relaxed) {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let i = (x >> 33) % 300;
                    let mut c = Client::connect(addr);
                    let raw = format!("GET /o/{i} HTTP/1.1\r\nHost: test.local\r\n\r\n");
                    c.send(raw.as_bytes());
                    let mut got = Vec::new();
                    let r = c.read_response_streaming(raw.as_bytes(), &mut |b: &[u8]| {
                        got.extend_from_slice(b)
                    });
                    let want = bytes(size_of(i), i);
                    if !want.starts_with(&got) {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(r) = r
                        && r.status == 200
                        && r.complete
                    {
                        if got != want {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Half way: an invalidation, acknowledged while the disk fails.
    std::thread::sleep(Duration::from_secs(secs / 2));
    let json = r#"{"paths": ["/o/7"]}"#;
    let post = format!(
        "POST /invalidations HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    );
    assert_eq!(
        request(edge.admin.expect("admin"), post.as_bytes()).status,
        202
    );
    let acknowledged = Instant::now();
    let before = origin.count("/o/7");
    std::thread::sleep(Duration::from_secs(secs - secs / 2));
    stop.store(true, Ordering::Relaxed);
    for v in viewers {
        v.join().expect("viewer");
    }
    assert_eq!(wrong.load(Ordering::Relaxed), 0, "wrong bytes served");
    assert!(
        served.load(Ordering::Relaxed) > 100,
        "served {}",
        served.load(Ordering::Relaxed)
    );
    // The invalidation held: /o/7 was fetched again after it.
    let r = get(edge.addr, "/o/7");
    assert_eq!(r.body, bytes(size_of(7), 7));
    assert!(
        origin.count("/o/7") > before,
        "refetched after the invalidation at {acknowledged:?}"
    );
}
