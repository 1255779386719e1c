//! The harness's own HTTP rules, checked on hand-written bytes: what the
//! strict client and origin accept, and that they fail loudly on what a
//! strict peer would reject. No edgeslab process is involved.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;
use support::wire::{
    Asked, ChunkedDecoder, Framing, content_length, head_end, is_chunked, parse_request_head,
    parse_response_head, request_framing, response_framing,
};
use support::*;

fn fields(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn framing_of(raw: &str, asked: Asked) -> Result<Framing, String> {
    let head = parse_response_head(raw.as_bytes()).map_err(|v| v.0)?;
    response_framing(&head, asked).map_err(|v| v.0)
}

const GET: Asked = Asked {
    head: false,
    http10: false,
};

#[test]
fn a_head_ends_at_its_empty_line_and_every_line_ends_in_crlf() {
    let raw = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody";
    assert_eq!(head_end(raw, 1024), Ok(Some(25)));
    assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n\r", 1024), Ok(None));
    for bad in [
        &b"HTTP/1.1 200 OK\nA: b\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nA: b\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\r\n\n",
        b"HTTP/1.1 200 OK\rA: b\r\n\r\n",
        b"\r\nHTTP/1.1 200 OK\r\n\r\n",
    ] {
        assert!(head_end(bad, 1024).is_err(), "{:?}", bad.escape_ascii());
    }
    assert!(head_end(&[b'a'; 100], 64).is_err(), "an endless head");
}

#[test]
fn status_lines_are_checked_to_the_letter() {
    let ok = parse_response_head(b"HTTP/1.0 404 Not Found\r\nX: y\r\n\r\n").unwrap();
    assert_eq!(
        (ok.minor, ok.status, ok.reason.as_str()),
        (0, 404, "Not Found")
    );
    assert!(
        parse_response_head(b"HTTP/1.1 204 \r\n\r\n").is_ok(),
        "empty reason"
    );
    for bad in [
        "HTTP/1.1 200\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 600 Odd\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nFolded: a\r\n b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nName : v\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad\x01: v\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
    ] {
        assert!(parse_response_head(bad.as_bytes()).is_err(), "{bad:?}");
    }
}

#[test]
fn content_length_is_one_plain_number() {
    assert_eq!(
        content_length(&fields(&[("content-length", "42")])),
        Ok(Some(42))
    );
    assert_eq!(content_length(&fields(&[("X", "1")])), Ok(None));
    for bad in [
        &[("Content-Length", "5"), ("Content-Length", "6")][..],
        &[("Content-Length", "5"), ("content-length", "5")],
        &[("Content-Length", "5, 5")],
        &[("Content-Length", "+5")],
        &[("Content-Length", "-1")],
        &[("Content-Length", "0x10")],
        &[("Content-Length", "")],
        &[("Content-Length", "99999999999999999999999")],
    ] {
        assert!(content_length(&fields(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn only_chunked_is_a_transfer_coding_the_harness_reads() {
    assert_eq!(
        is_chunked(&fields(&[("Transfer-Encoding", "Chunked")])),
        Ok(true)
    );
    assert_eq!(is_chunked(&fields(&[])), Ok(false));
    for bad in ["gzip, chunked", "chunked, chunked", "chunked,", "identity"] {
        assert!(
            is_chunked(&fields(&[("Transfer-Encoding", bad)])).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn response_framing_follows_rfc_9112() {
    let head = Asked {
        head: true,
        http10: false,
    };
    let http10 = Asked {
        head: false,
        http10: true,
    };
    let cases: &[(&str, Asked, Result<Framing, ()>)] = &[
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            GET,
            Ok(Framing::Length(3)),
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            GET,
            Ok(Framing::Chunked),
        ),
        ("HTTP/1.1 200 OK\r\n\r\n", GET, Ok(Framing::Close)),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            head,
            Ok(Framing::None),
        ),
        (
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
            GET,
            Ok(Framing::None),
        ),
        ("HTTP/1.1 204 No Content\r\n\r\n", GET, Ok(Framing::None)),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            http10,
            Ok(Framing::Length(3)),
        ),
        (
            "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
            GET,
            Err(()),
        ),
        (
            "HTTP/1.1 100 Continue\r\nTransfer-Encoding: chunked\r\n\r\n",
            GET,
            Err(()),
        ),
        ("HTTP/1.1 100 Continue\r\n\r\n", http10, Err(())),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            GET,
            Err(()),
        ),
        (
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            GET,
            Err(()),
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            http10,
            Err(()),
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            GET,
            Err(()),
        ),
    ];
    for (raw, asked, want) in cases {
        let got = framing_of(raw, *asked);
        assert_eq!(
            got.clone().map_err(|_| ()),
            *want,
            "{raw:?} {asked:?}: {got:?}"
        );
    }
}

#[test]
fn request_framing_and_what_a_request_asks() {
    let framing =
        |raw: &str| request_framing(&parse_request_head(raw.as_bytes()).unwrap()).map_err(|v| v.0);
    assert_eq!(
        framing("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        Ok(Framing::None)
    );
    assert_eq!(
        framing("PUT / HTTP/1.1\r\nContent-Length: 7\r\n\r\n"),
        Ok(Framing::Length(7))
    );
    assert!(
        framing("PUT / HTTP/1.1\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n")
            .is_err()
    );
    assert!(framing("PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    assert!(parse_request_head(b"GET  / HTTP/1.1\r\n\r\n").is_err());
    assert_eq!(
        Asked::of(b"HEAD / HTTP/1.1\r\n\r\n"),
        Asked {
            head: true,
            http10: false
        }
    );
    assert_eq!(
        Asked::of(b"GET / HTTP/1.0\r\n\r\n"),
        Asked {
            head: false,
            http10: true
        }
    );
    assert_eq!(Asked::of(b"\x16\x03garbage"), GET);
}

/// Decodes `input` fed in pieces of `step` bytes, as it would arrive.
fn dechunk(input: &[u8], step: usize) -> Result<(Vec<u8>, bool, ChunkedDecoder), String> {
    let mut dec = ChunkedDecoder::default();
    let (mut body, mut pending) = (Vec::new(), Vec::new());
    for piece in input.chunks(step) {
        pending.extend_from_slice(piece);
        let used = dec
            .decode(&pending, &mut |b| body.extend_from_slice(b))
            .map_err(|v| v.0)?;
        pending.drain(..used);
    }
    Ok((body, dec.is_done() && pending.is_empty(), dec))
}

#[test]
fn chunked_bodies_decode_in_any_pieces() {
    let raw =
        b"5\r\nhello\r\n006;name=\"v\"\r\n world\r\nA \t;x\r\n0123456789\r\n0\r\nX-Sum: 1 \r\n\r\n";
    for step in [1, 2, 3, 7, raw.len()] {
        let (body, done, dec) = dechunk(raw, step).unwrap();
        assert_eq!(body, b"hello world0123456789", "step {step}");
        assert!(done, "step {step}");
        assert_eq!(dec.trailers, vec![("X-Sum".to_string(), b"1".to_vec())]);
    }
    let (body, done, _) = dechunk(b"5\r\nhello\r\n0\r\n", 4).unwrap();
    assert_eq!(
        (body.as_slice(), done),
        (&b"hello"[..], false),
        "no end yet"
    );
}

#[test]
fn malformed_chunks_fail_at_once() {
    for bad in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"zz",
        b"\r\n",
        b"5 x\r\nhello\r\n0\r\n\r\n",
        b"5x",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\n\n",
        b"5\r\nhello\r\n0\r\nno colon\r\n\r\n",
        b"10000000000000000\r\n",
        b"-5\r\nhello\r\n",
    ] {
        for step in [1, bad.len()] {
            assert!(
                dechunk(bad, step).is_err(),
                "{:?} step {step}",
                bad.escape_ascii()
            );
        }
    }
}

/// A one-shot server: reads one request head, writes `pieces` a little
/// apart, then closes.
fn serve_bytes(pieces: Vec<&'static [u8]>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&b[..n]),
            }
        }
        for p in pieces {
            let _ = s.write_all(p);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    addr
}

#[test]
fn the_client_reads_each_framing_and_keeps_the_raw_head() {
    let r = get(
        serve_bytes(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-a: 1\r\nX-A: 2\r\n\r\nhel",
            b"lo",
        ]),
        "/",
    );
    assert_eq!(
        (r.status, r.body.as_slice(), r.complete),
        (200, &b"hello"[..], true)
    );
    assert_eq!(r.framing, Framing::Length(5));
    assert_eq!(r.header_all("x-A"), ["1", "2"]);
    assert_eq!(r.header("CONTENT-LENGTH"), Some("5"));
    assert_eq!(
        r.head,
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-a: 1\r\nX-A: 2\r\n\r\n"
    );

    let r = get(
        serve_bytes(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
            b"c\r\n0\r\nT: v\r\n\r\n",
        ]),
        "/",
    );
    assert_eq!((r.body.as_slice(), r.complete), (&b"abc"[..], true));
    assert_eq!(r.trailers, vec![("T".to_string(), b"v".to_vec())]);

    let r = get(
        serve_bytes(vec![
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\nuntil",
            b" close",
        ]),
        "/",
    );
    assert_eq!((r.body.as_slice(), r.complete), (&b"until close"[..], true));
    assert_eq!((r.version, r.framing), ("HTTP/1.0", Framing::Close));
    assert_eq!(r.interim, vec![b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()]);

    let head = b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let r = request(
        serve_bytes(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"]),
        head,
    );
    assert_eq!(
        (r.framing, r.body.len(), r.complete),
        (Framing::None, 0, true)
    );
}

#[test]
fn a_connection_that_ends_early_is_an_incomplete_body_not_a_panic() {
    let r = get(
        serve_bytes(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"]),
        "/",
    );
    assert_eq!((r.body.as_slice(), r.complete), (&b"short"[..], false));
    let r = get(
        serve_bytes(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        ]),
        "/",
    );
    assert_eq!((r.body.as_slice(), r.complete), (&b"hello"[..], false));
    let mut c = Client::connect(serve_bytes(vec![b"HTTP/1.1 200 OK\r\nContent-Le"]));
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(c.read_response().is_none(), "a cut head is no response");
}

/// Runs `f` and returns its panic message (failing when it does not panic).
fn panic_of(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn the_client_panics_with_the_bytes_on_what_a_strict_peer_rejects() {
    let cases: &[(&'static [u8], &str)] = &[
        (b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "bare LF"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab",
            "2 Content-Length fields",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nab",
            "not a number",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "chunk",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            "not followed by CRLF",
        ),
        (b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "status line"),
        (b"\x16\x03\x01 garbage\r\n\r\n", "status line"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabEXTRA",
            "bytes after the end of the response",
        ),
    ];
    for (raw, expected) in cases {
        let addr = serve_bytes(vec![raw]);
        let msg = panic_of(|| {
            get(addr, "/");
        });
        assert!(msg.contains(expected), "{:?}: {msg}", raw.escape_ascii());
        if *expected != "bytes after the end of the response" {
            assert!(msg.contains("head: "), "the raw bytes are shown: {msg}");
        }
    }
    let http10 = b"GET / HTTP/1.0\r\n\r\n";
    let addr = serve_bytes(vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ]);
    let msg = panic_of(|| {
        request(addr, http10);
    });
    assert!(msg.contains("HTTP/1.0 request"), "{msg}");
}

#[test]
fn cache_status_is_required_and_read_as_rfc_9211() {
    let with = |value: &'static str| {
        let head: &'static [u8] =
            format!("HTTP/1.1 200 OK\r\nCache-Status: {value}\r\nContent-Length: 0\r\n\r\n")
                .into_bytes()
                .leak();
        get(serve_bytes(vec![head]), "/")
    };
    assert!(with("edgeslab; hit").is_hit());
    assert!(with("origin; fwd=uri-miss, edgeslab; hit").is_hit());
    assert!(!with("origin; hit, edgeslab; fwd=uri-miss").is_hit());
    assert!(!with("edgeslab; fwd=uri-miss; detail=hit-ish").is_hit());
    let bare = get(
        serve_bytes(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]),
        "/",
    );
    let msg = panic_of(|| {
        bare.is_hit();
    });
    assert!(msg.contains("no Cache-Status"), "{msg}");
}

/// Sends raw bytes to the origin and returns what came back.
fn to_origin(origin: &Origin, raw: &[u8]) -> Response {
    let mut c = Client::connect(origin.addr);
    c.send(raw);
    c.read_response_to(raw).expect("an answer")
}

#[test]
fn the_origin_decodes_bodies_and_fails_the_test_on_bad_requests() {
    let origin = Origin::start(|seen| Script::ok("max-age=1", seen.body.clone()));
    let r = to_origin(
        &origin,
        b"PUT /c HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
    assert_eq!(origin.last().unwrap().method, "PUT");
    assert!(origin.violations().is_empty());
    for (raw, why) in [
        (&b"GET / HTTP/1.1\nHost: o\r\n\r\n"[..], "bare LF"),
        (b"GET / HTTP/1.1\r\n\r\n", "0 Host fields"),
        (b"GET / HTTP/1.0\r\nHost: o\r\n\r\n", "HTTP/1.0 to the origin"),
        (b"GET http://o/ HTTP/1.1\r\nHost: o\r\n\r\n", "origin-form"),
        (b"POST / HTTP/1.1\r\nHost: o\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "both"),
    ] {
        let origin = Origin::start(|_| Script::ok("max-age=1", Vec::new()));
        assert_eq!(to_origin(&origin, raw).status, 400, "{why}");
        assert!(origin.violations().iter().any(|v| v.contains(why)), "{why}: {:?}", origin.violations());
        let msg = panic_of(move || drop(origin));
        assert!(msg.contains("the edge sent the origin bad HTTP"), "{msg}");
    }
}

#[test]
fn merge_toml_lets_extra_keys_win_section_by_section() {
    let merged = merge_toml(
        "top = 1\n[a]\nx = 1\ny = 2\n",
        "top = 3\n[a]\ny = 9\n[b]\nz = 1\n",
    );
    assert_eq!(merged, "top = 3\n[a]\nx = 1\ny = 9\n[b]\nz = 1\n");
}

#[test]
fn merge_toml_keeps_each_element_of_an_array_of_tables() {
    let merged = merge_toml(
        "[cache]\nsize = \"1\"\n",
        "[[behavior]]\npath = \"/a\"\n[behavior.cache]\nmin_ttl = \"1s\"\n\
         [[behavior]]\npath = \"/b\"\n[behavior.cache]\nmin_ttl = \"2s\"\n[cache]\nsize = \"2\"\n",
    );
    let parsed: toml::Value = toml::from_str(&merged).expect("valid TOML");
    let behaviors = parsed["behavior"].as_array().expect("an array");
    assert_eq!(behaviors.len(), 2, "{merged}");
    assert_eq!(behaviors[1]["path"].as_str(), Some("/b"));
    assert_eq!(behaviors[1]["cache"]["min_ttl"].as_str(), Some("2s"));
    assert_eq!(behaviors[0]["cache"]["min_ttl"].as_str(), Some("1s"));
    assert_eq!(parsed["cache"]["size"].as_str(), Some("2"));
}
