//! Helpers of `tests/ranges.rs`: the scripted objects, requests, the
//! assertions every range test makes, a hand-written `multipart/byteranges`
//! reader (`multipart`), a reader that drops a response part-way (`seek`),
//! and running external clients. Nothing here uses edgeslab's code.

mod multipart;

pub use multipart::{assert_multipart, multipart};

use crate::support::wire::{head_end, parse_response_head};
use crate::support::{Body, Edge, Framing, Origin, Response, Script, bytes, request};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A strong validator: well over a second older than any response's Date.
pub const LAST_MODIFIED: &str = "Mon, 06 Nov 2023 08:00:00 GMT";
pub const CONTENT_TYPE: &str = "application/x-test";

/// The bytes of `/obj/N`, `/weak/N` and `/unsized/N`.
pub fn object(n: usize) -> Vec<u8> {
    bytes(n, n as u64)
}

/// `/obj/N`: N bytes with a strong ETag and Last-Modified; `/weak/N` the
/// same with a weak ETag; `/unsized/N` chunked, so its length is unknown
/// until it ends.
pub fn origin() -> Origin {
    Origin::start(|seen| {
        let t = seen.target.as_str();
        let (kind, n) = t[1..].split_once('/').expect("/kind/N");
        let n: usize = n.parse().expect("a size");
        let body = object(n);
        let script = Script::ok("max-age=300", Vec::new())
            .header("Content-Type", CONTENT_TYPE)
            .header("Last-Modified", LAST_MODIFIED);
        match kind {
            "obj" => script.header("ETag", "\"v1\"").with(Body::Full(body)),
            "weak" => script.header("ETag", "W/\"v1\"").with(Body::Full(body)),
            "unsized" => {
                let pieces = body.chunks(4096).map(<[u8]>::to_vec).collect();
                script.with(Body::Chunked(pieces))
            }
            _ => panic!("no object at {t}"),
        }
    })
}

pub fn edge(origin: &Origin) -> Edge {
    Edge::builder().origin(origin.addr).start()
}

/// A request with `Connection: close` and these fields.
pub fn raw(method: &str, path: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n");
    for (n, v) in fields {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// A GET with this `Range` that keeps the connection open.
pub fn open_ranged(path: &str, range: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nRange: {range}\r\n\r\n").into_bytes()
}

/// A GET with this `Range`, on a fresh connection.
pub fn ranged(addr: SocketAddr, path: &str, range: &str) -> Response {
    request(addr, &raw("GET", path, &[("Range", range)]))
}

/// Asserts a 206 of one range: status, `Content-Range`, `Content-Length`
/// and exactly the bytes `first..=last` of `whole`.
pub fn assert_single(r: &Response, whole: &[u8], first: usize, last: usize) {
    let range = format!("bytes {first}-{last}/{}", whole.len());
    assert_eq!(
        r.status,
        206,
        "{range}: {}",
        String::from_utf8_lossy(&r.head)
    );
    assert_eq!(r.reason, "Partial Content");
    assert!(r.complete);
    assert_eq!(r.header("content-range"), Some(range.as_str()));
    let n = last + 1 - first;
    assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
    assert_eq!(r.framing, Framing::Length(n as u64));
    assert!(r.body == whole[first..=last], "{range}: the bytes differ");
}

/// Asserts the whole representation as a 200: no range applied.
pub fn assert_whole(r: &Response, whole: &[u8], why: &str) {
    assert_eq!(r.status, 200, "{why}: {}", String::from_utf8_lossy(&r.head));
    assert!(r.complete, "{why}");
    assert_eq!(r.header("content-range"), None, "{why}");
    assert_eq!(r.framing, Framing::Length(whole.len() as u64), "{why}");
    assert!(r.body == whole, "{why}: the bytes differ");
}

/// Whether `tool` runs here; prints why a test is skipped when not.
pub fn installed(tool: &str) -> bool {
    match Command::new(tool).arg("--version").output() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: {tool} not installed");
            false
        }
        Err(e) => panic!("running {tool}: {e}"),
    }
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?}: {}\n{stderr}", out.status);
    stderr
}

/// Asserts a directory holds exactly these files (no `.1` copies).
pub fn assert_only_files(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, names);
}

/// Sends a GET with `Range: bytes=FROM-` on a fresh connection, reads the
/// head and `want` body bytes, and closes the connection with the rest
/// unread, as a video player does when it seeks.
pub fn seek(
    addr: SocketAddr,
    path: &str,
    from: usize,
    want: usize,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let req = format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nRange: bytes={from}-\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut buf = Vec::new();
    let mut piece = [0u8; 65536];
    let end = loop {
        if let Some(n) = head_end(&buf, 65536).expect("a valid head") {
            break n;
        }
        let n = s.read(&mut piece).expect("read the head");
        assert!(n > 0, "the connection ended before the head");
        buf.extend_from_slice(&piece[..n]);
    };
    let head = parse_response_head(&buf[..end]).expect("a valid head");
    let mut body = buf.split_off(end);
    while body.len() < want {
        let n = s.read(&mut piece).expect("read the body");
        assert!(n > 0, "the connection ended after {} bytes", body.len());
        body.extend_from_slice(&piece[..n]);
    }
    body.truncate(want);
    let fields = head
        .fields
        .iter()
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    (head.status, fields, body)
}
