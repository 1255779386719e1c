//! The cache key and the forwarded request agree: a target is normalised
//! once (RFC 3986 6.2.2, RFC 9110 4.2.3), the origin receives that normal
//! form, and the object is stored under it, so no spelling of a path can
//! store the origin's answer for one path under the key of another. Targets
//! with no safe normal form are refused before anything reaches the origin.

mod support;

use std::time::Duration;
use support::*;

/// An origin that says which target it answered for, cacheably.
fn naming_origin() -> Origin {
    Origin::start(|seen| {
        Script::ok(
            "max-age=300",
            format!("origin answered for {}", seen.target).into_bytes(),
        )
    })
}

/// Each spelling alone, on an empty cache: the origin is asked for `/b`,
/// and a later viewer of `/b` gets what the origin said for `/b`.
#[test]
fn dot_segments_and_escapes_reach_the_origin_normalised() {
    for spelling in ["/x/../b", "/x/%2e%2e/b", "/%62"] {
        let origin = naming_origin();
        let edge = Edge::builder().origin(origin.addr).start();
        let first = get(edge.addr, spelling);
        assert_eq!(first.status, 200, "{spelling}");
        assert_eq!(first.text(), "origin answered for /b", "{spelling}");
        let targets: Vec<String> = origin.seen().into_iter().map(|s| s.target).collect();
        assert_eq!(targets, ["/b"], "{spelling}: what the origin received");
        let later = get(edge.addr, "/b");
        assert!(later.is_hit(), "{spelling}: {}", later.cache_status());
        assert_eq!(later.text(), "origin answered for /b", "{spelling}");
        assert_eq!(origin.requests(), 1, "{spelling}");
        // The access log shows what was served and what was received.
        let log_has_both = || {
            let log = edge.stderr();
            let received = format!("received=\"{spelling}\"");
            log.lines()
                .any(|l| l.contains("target=\"/b\"") && l.contains(&received))
        };
        assert!(
            eventually(Duration::from_secs(5), log_has_both),
            "{spelling}: access log:\n{}",
            edge.stderr()
        );
    }
}

/// Every equivalent spelling, host case and default port share one object.
#[test]
fn equivalent_spellings_share_one_object() {
    let origin = naming_origin();
    let edge = Edge::builder().origin(origin.addr).start();
    assert_eq!(
        get(edge.addr, "/~user/a").text(),
        "origin answered for /~user/a"
    );
    let spellings: [&[u8]; 4] = [
        b"GET /%7euser/a HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n",
        b"GET /%7Euser/./x/../a HTTP/1.1\r\nHost: TEST.local:80\r\nConnection: close\r\n\r\n",
        b"GET http://Test.Local:/~user//../a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /~user/a HTTP/1.1\r\nHost: test.local:080\r\nConnection: close\r\n\r\n",
    ];
    for raw in spellings {
        let r = request(edge.addr, raw);
        let shown = String::from_utf8_lossy(raw);
        assert!(r.is_hit(), "{shown}: {}", r.cache_status());
        assert_eq!(r.text(), "origin answered for /~user/a", "{shown}");
    }
    assert_eq!(origin.requests(), 1);
    // Encoded reserved characters are not their decoded selves.
    assert_eq!(
        get(edge.addr, "/a%2fb").text(),
        "origin answered for /a%2Fb"
    );
    assert_eq!(get(edge.addr, "/a/b").text(), "origin answered for /a/b");
    assert_eq!(origin.requests(), 3);
}

#[test]
fn targets_without_a_safe_normal_form_are_refused() {
    let origin = naming_origin();
    let edge = Edge::builder().origin(origin.addr).start();
    let cases = [
        ("/a/..%2Fb", "encoded slash"),
        ("/a%2f..%2fb", "encoded slash"),
        ("/a/%2e%2e%5Cb", "encoded slash"),
        ("/a%00.html", "NUL or control"),
        ("/a%0D%0AX-Injected:%201", "NUL or control"),
        ("/%C0%AE", "not UTF-8"),
        ("/a\\..\\b", "backslash"),
        ("/../etc/passwd", "above the root"),
        ("/a/%2e%2e/%2e%2e/b", "above the root"),
        ("/a%zz", "percent-encoding"),
    ];
    for (target, why) in cases {
        let r = get(edge.addr, target);
        assert_eq!(r.status, 400, "{target}");
        assert!(r.text().contains(why), "{target}: {:?}", r.text());
    }
    assert_eq!(origin.requests(), 0, "nothing unsafe reached the origin");
    // The edge still serves the normal form of a neighbour.
    assert_eq!(get(edge.addr, "/a/b").text(), "origin answered for /a/b");
}
