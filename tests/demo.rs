//! `edgeslab demo`, as the README tells a new user to run it: what its
//! printed curl lines promise (a miss then a hit, a range, a 304 from the
//! cache, one variant per Accept-Encoding, a stale page revalidated behind
//! the viewer) holds against the running demo.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

/// The demo process, killed when the test ends.
struct Demo {
    child: Child,
    edge: SocketAddr,
    edge2: SocketAddr,
    admin: SocketAddr,
    printed: String,
    _dir: TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Demo {
    let dir = TempDir::new("demo");
    let mut child = dies_with_test(&mut Command::new(bin()))
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .env("TMPDIR", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start edgeslab demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut printed = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            printed.push_str(&line);
            printed.push('\n');
            if line.starts_with("Press Ctrl-C") {
                let _ = tx.send(printed.clone());
            }
        }
    });
    let printed = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(p) => p,
        Err(_) => {
            let _ = child.kill();
            panic!("the demo printed no lines to try within 30 s");
        }
    };
    // "  edge-1    http://ADDR   admin http://ADDR"
    let node = |name: &str| -> (SocketAddr, SocketAddr) {
        let line = printed
            .lines()
            .find(|l| l.trim().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line in:\n{printed}"));
        let addrs: Vec<SocketAddr> = line
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("http://")?.parse().ok())
            .collect();
        assert_eq!(addrs.len(), 2, "{line}");
        (addrs[0], addrs[1])
    };
    let (edge, admin) = node("edge-1");
    let (edge2, _) = node("edge-2");
    Demo {
        child,
        edge,
        edge2,
        admin,
        printed,
        _dir: dir,
    }
}

fn get_with(addr: SocketAddr, path: &str, field: &str) -> Response {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n{field}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
}

#[test]
fn the_demo_does_what_its_printed_lines_promise() {
    let demo = start_demo();
    let edge = demo.edge;
    for path in [
        "/hello",
        "/big/",
        "/vary",
        "/stale",
        "If-None-Match",
        "-r 1000-1999",
    ] {
        assert!(
            demo.printed.contains(path),
            "the demo suggests {path}:\n{}",
            demo.printed
        );
    }

    let first = get(edge, "/hello");
    assert_eq!(first.status, 200);
    assert_eq!(
        first.cache_status(),
        "regional; fwd=uri-miss; stored, edge-1; fwd=uri-miss; stored"
    );
    let second = get(edge, "/hello");
    assert!(second.is_hit_at("edge-1"), "{}", second.cache_status());
    assert_eq!(second.body, first.body);
    // The printed line asks edge-2 for edge-1's site, as this test does:
    // one Host for both (here test.local), so the regional's key is one.
    let printed_line = format!("-H 'Host: {edge}' http://{}/hello", demo.edge2);
    assert!(
        demo.printed.contains(&printed_line),
        "{printed_line} in:\n{}",
        demo.printed
    );
    let other = get(demo.edge2, "/hello");
    assert!(
        other.cache_status().starts_with("regional; hit"),
        "{}",
        other.cache_status()
    );
    assert!(
        other
            .cache_status()
            .ends_with("edge-2; fwd=uri-miss; stored")
    );

    let etag = first
        .header("etag")
        .expect("the demo's /hello has an ETag")
        .to_string();
    let not_modified = get_with(edge, "/hello", &format!("If-None-Match: {etag}"));
    assert_eq!(not_modified.status, 304);
    assert!(
        not_modified.is_hit_at("edge-1"),
        "{}",
        not_modified.cache_status()
    );

    let whole = get(edge, "/big/65536");
    let range = get_with(edge, "/big/65536", "Range: bytes=1000-1999");
    assert_eq!(range.status, 206);
    assert_eq!(range.body, whole.body[1000..2000]);

    let gzip = get_with(edge, "/vary", "Accept-Encoding: gzip");
    let br = get_with(edge, "/vary", "Accept-Encoding: br");
    assert_ne!(gzip.body, br.body, "one variant per Accept-Encoding");
    let gzip_again = get_with(edge, "/vary", "Accept-Encoding: gzip");
    assert!(
        gzip_again.is_hit_at("edge-1"),
        "{}",
        gzip_again.cache_status()
    );
    assert_eq!(gzip_again.body, gzip.body);

    // /stale is fresh for 5 s; then it is served stale at once and
    // revalidated (the demo origin answers 304), so it is fresh again.
    assert_eq!(get(edge, "/stale").status, 200);
    std::thread::sleep(Duration::from_millis(5_500));
    let stale = get(edge, "/stale");
    assert!(
        stale
            .cache_status()
            .contains("detail=stale-while-revalidate"),
        "{}",
        stale.cache_status()
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            let r = get(edge, "/stale");
            r.is_hit_at("edge-1") && !r.cache_status().contains("stale")
        }),
        "the background revalidation made /stale fresh again"
    );

    // The invalidation line, as printed.
    assert!(
        demo.printed.contains("edgeslab invalidate --admin"),
        "{}",
        demo.printed
    );
    let url = format!("http://{}", demo.admin);
    let out = run_bin(
        &[
            "invalidate",
            "--admin",
            &url,
            "--token",
            "demo-token",
            "/hello",
        ],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = get(demo.edge2, "/hello");
    assert!(
        after.cache_status().starts_with("regional; fwd=uri-miss"),
        "{}",
        after.cache_status()
    );
}
