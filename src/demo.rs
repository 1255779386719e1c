//! `edgeslab demo`: a small built-in origin and an edge in front of it, on
//! loopback, with the curl lines that show a miss, then a hit. The demo origin
//! uses plain threads; it is a toy for trying edgeslab, not part of serving.

use crate::config::{Config, Dur, Size};
use crate::http::{BodyFraming, ChunkedDecoder, Limits, Method, RequestHead, parse_request};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The Last-Modified of the demo's validated pages.
const DEMO_LAST_MODIFIED: &str = "Mon, 02 Nov 2026 08:00:00 GMT";

/// Starts the demo origin on `addr` (port 0 picks one) in background threads.
pub fn start_origin(addr: &str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("demo-origin".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = std::thread::Builder::new()
                    .name("demo-conn".into())
                    .spawn(move || serve(stream));
            }
        })?;
    Ok(local)
}

fn serve(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let (req, used) = loop {
            match parse_request(&buf, &Limits::default()) {
                Ok(Some(r)) => break r,
                Ok(None) => {}
                Err(_) => {
                    let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    return;
                }
            }
            let mut tmp = [0u8; 16 << 10];
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        buf.drain(..used);
        let Some(body_len) = read_body(&mut s, &mut buf, req.framing) else {
            return;
        };
        if respond(&mut s, &req, body_len).is_err() || !req.keep_alive {
            return;
        }
    }
}

/// Reads (and discards) a request body; returns its length.
fn read_body(s: &mut TcpStream, buf: &mut Vec<u8>, framing: BodyFraming) -> Option<u64> {
    let mut tmp = [0u8; 16 << 10];
    match framing {
        BodyFraming::ContentLength(n) => {
            while (buf.len() as u64) < n {
                let got = s.read(&mut tmp).ok().filter(|&g| g > 0)?;
                buf.extend_from_slice(&tmp[..got]);
            }
            buf.drain(..n as usize);
            Some(n)
        }
        BodyFraming::Chunked => {
            let mut dec = ChunkedDecoder::new();
            let mut out = Vec::new();
            let mut total = 0u64;
            loop {
                let used = dec.decode(buf, &mut out).ok()?;
                buf.drain(..used);
                total += out.len() as u64;
                out.clear();
                if dec.is_done() {
                    return Some(total);
                }
                let got = s.read(&mut tmp).ok().filter(|&g| g > 0)?;
                buf.extend_from_slice(&tmp[..got]);
            }
        }
        _ => Some(0),
    }
}

/// The demo's deterministic content for `/big/N`: byte i is (i * 7 + i / 4096) mod 251.
pub fn big_byte(i: u64) -> u8 {
    ((i.wrapping_mul(7) + i / 4096) % 251) as u8
}

fn respond(s: &mut TcpStream, req: &RequestHead, body_len: u64) -> std::io::Result<()> {
    let head_only = req.method == Method::Head;
    let date = httpdate::fmt_http_date(SystemTime::now());
    let page = |status: &str, cc: &str, extra: &str, body: &[u8]| {
        let mut out = format!(
            "HTTP/1.1 {status}\r\nDate: {date}\r\nServer: edgeslab-demo-origin\r\nCache-Control: {cc}\r\n\
             Content-Type: text/plain\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(body);
        }
        out
    };
    let simple = |status: &str, cc: &str, body: &[u8]| page(status, cc, "", body);
    // A page with a validator answers a matching If-None-Match with 304,
    // as a real origin does when the cache revalidates.
    let validated = |cc: &str, etag: &str, body: &[u8]| {
        let fields = format!("ETag: {etag}\r\nLast-Modified: {DEMO_LAST_MODIFIED}\r\n");
        let matches = req
            .headers
            .get_all("if-none-match")
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().trim_start_matches("W/") == etag);
        if matches {
            format!(
                "HTTP/1.1 304 Not Modified\r\nDate: {date}\r\nServer: edgeslab-demo-origin\r\n\
                 Cache-Control: {cc}\r\n{fields}\r\n"
            )
            .into_bytes()
        } else {
            page("200 OK", cc, &fields, body)
        }
    };
    let path = req.path();
    if !req.method.is_cacheable_method() {
        let body = format!("received {body_len} bytes via {}\n", req.method.as_str());
        return s.write_all(&simple("200 OK", "no-store", body.as_bytes()));
    }
    if path == "/" {
        let body = "edgeslab demo origin\n\n/hello         cacheable for 60 s, with an ETag and Last-Modified\n\
                    /stale         fresh for 5 s, then served stale while it is revalidated (60 s)\n\
                    /vary          one variant per Accept-Encoding (Vary)\n\
                    /time          never cached (no-store)\n\
                    /big/N         N deterministic bytes, cacheable for 5 min (try a Range)\n\
                    /chunked       a chunked response\n/slow          a body that trickles in over 2 s\n\
                    POST /echo     passes through the edge\n";
        return s.write_all(&simple("200 OK", "max-age=30", body.as_bytes()));
    }
    if path == "/hello" {
        let body = "Hello from the edgeslab demo origin!\n";
        return s.write_all(&validated(
            "public, max-age=60",
            "\"hello-v1\"",
            body.as_bytes(),
        ));
    }
    if path == "/stale" {
        let body = "This page is fresh for 5 s; after that the edge serves it stale at once and revalidates it in the background.\n";
        return s.write_all(&validated(
            "max-age=5, stale-while-revalidate=60",
            "\"stale-v1\"",
            body.as_bytes(),
        ));
    }
    if path == "/vary" {
        let coding = req
            .headers
            .get_str("accept-encoding")
            .filter(|v| !v.is_empty())
            .unwrap_or("(none)");
        let body = format!("the variant for Accept-Encoding: {coding}\n");
        return s.write_all(&page(
            "200 OK",
            "max-age=60",
            "Vary: Accept-Encoding\r\n",
            body.as_bytes(),
        ));
    }
    if path == "/time" {
        let body = format!("origin time: {date}\n");
        return s.write_all(&simple("200 OK", "no-store", body.as_bytes()));
    }
    if let Some(n) = path
        .strip_prefix("/big/")
        .and_then(|n| n.parse::<u64>().ok())
    {
        let n = n.min(4 << 30);
        let head = format!(
            "HTTP/1.1 200 OK\r\nDate: {date}\r\nCache-Control: max-age=300\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {n}\r\n\r\n"
        );
        s.write_all(head.as_bytes())?;
        if head_only {
            return Ok(());
        }
        let mut block = vec![0u8; 64 << 10];
        let mut i = 0u64;
        while i < n {
            let len = (n - i).min(block.len() as u64) as usize;
            for (j, b) in block[..len].iter_mut().enumerate() {
                *b = big_byte(i + j as u64);
            }
            s.write_all(&block[..len])?;
            i += len as u64;
        }
        return Ok(());
    }
    if path == "/chunked" || path == "/slow" {
        let head = format!(
            "HTTP/1.1 200 OK\r\nDate: {date}\r\nCache-Control: max-age=60\r\nContent-Type: text/plain\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        s.write_all(head.as_bytes())?;
        if head_only {
            return Ok(());
        }
        for i in 0..5 {
            let line = format!("part {i} of a chunked demo response\n");
            s.write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes())?;
            s.flush()?;
            if path == "/slow" {
                std::thread::sleep(Duration::from_millis(400));
            }
        }
        return s.write_all(b"0\r\n\r\n");
    }
    s.write_all(&simple(
        "404 Not Found",
        "max-age=10",
        b"no such demo page\n",
    ))
}

/// Port `preferred` on loopback if it is free, else any free port.
fn loopback_port(preferred: u16) -> SocketAddr {
    let want = SocketAddr::from(([127, 0, 0, 1], preferred));
    match TcpListener::bind(want) {
        Ok(_) => want,
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
    }
}

/// The configuration of the demo edge.
/// `listen` and `admin` default to ports 8080 and 9090 on loopback when free.
pub fn demo_config(
    origin: SocketAddr,
    cache_dir: PathBuf,
    listen: Option<SocketAddr>,
    admin: Option<SocketAddr>,
) -> Config {
    let mut c = Config::default();
    c.listen.addr = listen.unwrap_or_else(|| loopback_port(8080));
    c.admin.addr = admin.unwrap_or_else(|| loopback_port(9090));
    c.origin.url = format!("http://{origin}");
    c.cache.path = cache_dir.join("cache.slab");
    c.cache.size = Size::mib(256);
    c.cache.segment_size = Size::mib(8);
    // The demo's cache is scratch space: each run starts empty, so the first
    // request is always the miss the printed curl lines promise.
    c.cache.reformat = true;
    c.origin.first_byte_timeout = Dur::secs(10);
    c
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the demo origin: {0}")]
    Origin(#[source] std::io::Error),
    #[error(transparent)]
    Edge(#[from] crate::runtime::StartError),
}

/// Runs the demo until the process is stopped: the origin, the edge, and
/// the lines to try printed once the edge is ready.
pub fn run(listen: Option<SocketAddr>, admin: Option<SocketAddr>) -> Result<(), DemoError> {
    let origin = start_origin("127.0.0.1:0").map_err(DemoError::Origin)?;
    let dir = std::env::temp_dir().join("edgeslab-demo");
    let config = demo_config(origin, dir, listen, admin);
    let server = crate::runtime::start(config)?;
    let edge = server.ready.listen;
    let admin = server
        .ready
        .admin
        .map_or("(disabled)".to_string(), |a| a.to_string());
    println!(
        "\nedgeslab demo is running on {} core(s)\n\
         \x20 origin   http://{origin}   (built-in demo origin)\n\
         \x20 edge     http://{edge}\n\
         \x20 metrics  http://{admin}/metrics\n\n\
         Try (the first request is a MISS that is stored, the second a HIT):\n\
         \x20 curl -s -o /dev/null -D - http://{edge}/hello\n\
         \x20 curl -s -o /dev/null -D - http://{edge}/hello\n\
         \x20 curl -s http://{edge}/big/10485760 | wc -c\n\
         \x20 curl -s -r 1000-1999 http://{edge}/big/10485760 | wc -c   # a range from the cache: 1000\n\
         \x20 curl -s -o /dev/null -D - -H 'If-None-Match: \"hello-v1\"' http://{edge}/hello   # 304\n\
         \x20 curl -s -H 'Accept-Encoding: gzip' http://{edge}/vary     # one variant per Accept-Encoding\n\
         \x20 curl -s -o /dev/null -D - http://{edge}/stale             # after 5 s: stale, revalidated behind\n\
         \x20 curl -s -o /dev/null -D - http://{edge}/time           # no-store: never cached\n\
         \x20 curl -s -X POST --data 'hi' http://{edge}/echo         # passes to the origin\n\
         \x20 curl -s http://{admin}/metrics | grep -E 'hits|misses'\n\n\
         Press Ctrl-C to stop.",
        server.ready.cores.len()
    );
    Ok(server.join()?)
}
