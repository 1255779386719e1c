//! The scripted origin: a loopback server whose every response a test
//! decides, down to deliberately broken framing. It reads what the edge
//! sends with the harness's own strict rules (see `wire`), never edgeslab's
//! codec; a request a strict server would reject is answered 400 and fails
//! the test when the origin is dropped. Each connection has its own thread,
//! and every wait in it is bounded.

use super::wire::{
    ChunkedDecoder, Inbound, RequestHead, Violation, parse_request_head, request_framing, show,
    values,
};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a connection may sit between requests, and a request take.
const REQUEST_WITHIN: Duration = Duration::from_secs(30);
/// How long a gated body waits for its gate, and a silent answer for nothing.
const GATE_WITHIN: Duration = Duration::from_secs(10);
const SILENT_FOR: Duration = Duration::from_secs(30);

/// How the scripted origin frames (or breaks) one response body.
#[derive(Clone, Debug)]
pub enum Body {
    /// Content-Length framed.
    Full(Vec<u8>),
    /// Content-Length framed, shared between responses (large bodies).
    Shared(Arc<Vec<u8>>),
    /// Chunked, in these pieces.
    Chunked(Vec<Vec<u8>>),
    /// Content-Length says `declared`, but only `data` comes, then close.
    Truncated { data: Vec<u8>, declared: usize },
    /// Chunked pieces, then close without the last chunk.
    ChunkedTruncated(Vec<Vec<u8>>),
    /// No framing: the body ends at close.
    CloseDelimited(Vec<u8>),
    /// Content-Length framed; `first` bytes go out, then the origin waits for
    /// `gate` (bounded) before sending the rest.
    Gated {
        data: Vec<u8>,
        first: usize,
        gate: Gate,
    },
    /// Never answer, until the peer closes or 30 s pass.
    Silent,
    /// No response at all: wait `after`, then close the connection.
    Hangup { after: Duration },
}

/// A latch a test opens to let the origin continue.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn open(&self) {
        let (m, c) = &*self.0;
        *m.lock().expect("gate lock") = true;
        c.notify_all();
    }

    /// Waits until opened or `max` passes; returns whether it was opened.
    pub fn wait(&self, max: Duration) -> bool {
        let (m, c) = &*self.0;
        let guard = m.lock().expect("gate lock");
        let (guard, _) = c
            .wait_timeout_while(guard, max, |open| !*open)
            .expect("gate wait");
        *guard
    }
}

/// One scripted response. `headers` go out exactly as given, before the
/// framing fields that `body` adds, and a `Date` unless one is given.
#[derive(Clone, Debug)]
pub struct Script {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Script {
    /// A 200 with this Cache-Control and a Content-Length body.
    pub fn ok(cache_control: &str, body: Vec<u8>) -> Script {
        Script::new(200, body).header("Cache-Control", cache_control)
    }

    /// This status, no headers, a Content-Length body.
    pub fn new(status: u16, body: Vec<u8>) -> Script {
        Script {
            status,
            headers: Vec::new(),
            body: Body::Full(body),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Script {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn with(mut self, body: Body) -> Script {
        self.body = body;
        self
    }
}

/// What the origin saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// The first field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Seen) -> Script + Send + Sync;

/// What the accept loop and the connection threads share.
struct Shared {
    handler: Box<Handler>,
    connections: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    violations: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// An origin on loopback whose responses the test scripts.
pub struct Origin {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Origin {
    pub fn start(handler: impl Fn(&Seen) -> Script + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            connections: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            while !accepting.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        accepting.connections.fetch_add(1, Ordering::Relaxed);
                        let shared = accepting.clone();
                        std::thread::spawn(move || serve(s, &shared));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Origin { addr, shared }
    }

    /// Connections the edge opened to this origin.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Every request seen, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("seen").clone()
    }

    /// How many requests were seen in all.
    pub fn requests(&self) -> usize {
        self.shared.seen.lock().expect("seen").len()
    }

    /// Requests seen for a target.
    pub fn count(&self, target: &str) -> usize {
        let seen = self.shared.seen.lock().expect("seen");
        seen.iter().filter(|s| s.target == target).count()
    }

    pub fn last(&self) -> Option<Seen> {
        self.shared.seen.lock().expect("seen").last().cloned()
    }

    /// Requests from the edge that a strict server rejected, with their bytes.
    pub fn violations(&self) -> Vec<String> {
        self.shared.violations.lock().expect("violations").clone()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let violations = self.violations();
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "the edge sent the origin bad HTTP:\n{}",
                violations.join("\n")
            );
        }
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(REQUEST_WITHIN));
    let _ = stream.set_nodelay(true);
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut inbound = Inbound::new(reader);
    let mut out = stream;
    loop {
        let seen = match read_request(&mut inbound) {
            Ok(Some(seen)) => seen,
            Ok(None) => return,
            Err((why, raw)) => {
                let mut v = shared.violations.lock().expect("violations");
                v.push(format!("{}\n  bytes: {}", why.0, show(&raw, 4096)));
                let _ = out.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
        };
        let script = (shared.handler)(&seen);
        let head_only = seen.method == "HEAD";
        shared.seen.lock().expect("seen").push(seen);
        if !write_script(&mut out, &script, head_only) {
            return;
        }
    }
}

/// The next request; None when the edge closed or went quiet first (also
/// mid-body: an abandoned request is not a malformed one).
fn read_request(inbound: &mut Inbound<TcpStream>) -> Result<Option<Seen>, (Violation, Vec<u8>)> {
    let deadline = Instant::now() + REQUEST_WITHIN;
    let raw = match inbound.read_head(deadline) {
        Ok(Some(raw)) => raw,
        Ok(None) => return Ok(None),
        Err(why) => return Err((why, inbound.buf.clone())),
    };
    let with_raw = |why: Violation| (why, raw.clone());
    let head = parse_request_head(&raw).map_err(with_raw)?;
    check_forwarded(&head).map_err(with_raw)?;
    let framing = request_framing(&head).map_err(with_raw)?;
    let mut body = Vec::new();
    let mut chunks = ChunkedDecoder::default();
    let complete = inbound
        .read_body(framing, deadline, &mut chunks, &mut |b| {
            body.extend_from_slice(b)
        })
        .map_err(|why| (why, [&raw[..], &inbound.buf].concat()))?;
    if !complete {
        return Ok(None);
    }
    Ok(Some(Seen {
        method: head.method,
        target: head.target,
        headers: head
            .fields
            .iter()
            .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
        body,
    }))
}

/// What edgeslab, as a proxy, must send an origin: HTTP/1.1, origin-form,
/// exactly one Host (RFC 9112 sections 3.2 and 3.2.1).
fn check_forwarded(head: &RequestHead) -> Result<(), Violation> {
    if head.minor != 1 {
        return Err(Violation(format!("HTTP/1.{} to the origin", head.minor)));
    }
    if !head.target.starts_with('/') {
        return Err(Violation(format!(
            "target {:?} is not origin-form",
            head.target
        )));
    }
    let hosts = values(&head.fields, "host").len();
    if hosts != 1 {
        return Err(Violation(format!("{hosts} Host fields")));
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Scripted",
    }
}

/// Writes a scripted response; returns whether the connection may continue.
fn write_script(s: &mut TcpStream, script: &Script, head_only: bool) -> bool {
    let mut head = format!("HTTP/1.1 {} {}\r\n", script.status, reason(script.status));
    let dated = script
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("date"));
    if !dated {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        head.push_str(&format!("Date: {date}\r\n"));
    }
    for (n, v) in &script.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    let w = |s: &mut TcpStream, b: &[u8]| s.write_all(b).is_ok();
    let close = |s: &mut TcpStream| {
        let _ = s.shutdown(Shutdown::Both);
        false
    };
    match &script.body {
        Body::Full(b) => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
            w(s, head.as_bytes()) && (head_only || w(s, b))
        }
        Body::Shared(b) => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
            w(s, head.as_bytes()) && (head_only || w(s, b))
        }
        Body::Chunked(pieces) | Body::ChunkedTruncated(pieces) => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            if !w(s, head.as_bytes()) {
                return false;
            }
            if head_only {
                return true;
            }
            for p in pieces.iter().filter(|p| !p.is_empty()) {
                if !w(s, format!("{:x}\r\n", p.len()).as_bytes()) || !w(s, p) || !w(s, b"\r\n") {
                    return false;
                }
                // Pieces apart in time, so the edge sees them in separate reads.
                std::thread::sleep(Duration::from_millis(5));
            }
            if matches!(script.body, Body::ChunkedTruncated(_)) {
                return close(s);
            }
            w(s, b"0\r\n\r\n")
        }
        Body::Truncated { data, declared } => {
            head.push_str(&format!("Content-Length: {declared}\r\n\r\n"));
            let _ = w(s, head.as_bytes()) && w(s, data);
            close(s)
        }
        Body::CloseDelimited(b) => {
            head.push_str("Connection: close\r\n\r\n");
            let _ = w(s, head.as_bytes()) && w(s, b);
            close(s)
        }
        Body::Gated { data, first, gate } => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", data.len()));
            if !w(s, head.as_bytes()) || !w(s, &data[..*first]) {
                return false;
            }
            gate.wait(GATE_WITHIN);
            w(s, &data[*first..])
        }
        Body::Hangup { after } => {
            std::thread::sleep(*after);
            close(s)
        }
        Body::Silent => {
            // Waits for the edge to give up and close (or for the bound).
            let until = Instant::now() + SILENT_FOR;
            let _ = s.set_read_timeout(Some(SILENT_FOR));
            let mut sink = [0u8; 4096];
            while Instant::now() < until && matches!(s.read(&mut sink), Ok(n) if n > 0) {}
            false
        }
    }
}
