//! A strict HTTP/1.1 client for talking to the edge. It reads responses
//! with the harness's own framing rules (see `wire`), never edgeslab's codec,
//! and panics with the raw bytes on anything a strict peer would reject, so
//! an encoder bug in edgeslab fails the test that meets it. A connection that
//! ends early is not a violation: the response then says `complete: false`.

use super::wire::{
    Asked, BodySink, ChunkedDecoder, Ended, Fields, Framing, Inbound, Violation,
    parse_response_head, response_framing, show, values,
};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long one read may wait for the next bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a whole response may take (the largest is a 2 GiB body).
const RESPONSE_WITHIN: Duration = Duration::from_secs(300);
/// How long a server may take to close after a response that ends the connection.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// A response as a viewer sees it.
#[derive(Debug, Clone)]
pub struct Response {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: &'static str,
    pub status: u16,
    pub reason: String,
    /// Fields in the order sent: the name as sent, the value's bytes.
    pub headers: Fields,
    /// The raw head, from the status line through the empty line.
    pub head: Vec<u8>,
    /// Raw heads of the 1xx responses that came before this one.
    pub interim: Vec<Vec<u8>>,
    pub framing: Framing,
    /// The body, unless it went to a sink (`read_response_streaming`).
    pub body: Vec<u8>,
    pub trailers: Fields,
    /// Whether the body was complete by its framing (false: the connection
    /// ended first).
    pub complete: bool,
}

impl Response {
    /// The value of the one field called `name` (case-insensitive). Panics
    /// when there are several: ask [`header_all`](Self::header_all) then.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.header_all(name)[..] {
            [] => None,
            [one] => Some(one),
            ref many => panic!("{} {name} fields: {many:?}", many.len()),
        }
    }

    /// The values of every field called `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        values(&self.headers, name)
            .into_iter()
            .map(|v| {
                std::str::from_utf8(v)
                    .unwrap_or_else(|_| panic!("{name} is not UTF-8: {}", show(v, 256)))
            })
            .collect()
    }

    /// The `Cache-Status` field; panics when it is missing, so that a test
    /// asserting what it does not contain cannot pass on its absence.
    pub fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or_else(|| {
            panic!(
                "no Cache-Status in the response:\n{}",
                show(&self.head, 4096)
            )
        })
    }

    /// Whether this edge's own `Cache-Status` member (the last in the list,
    /// RFC 9211) has the `hit` parameter.
    pub fn is_hit(&self) -> bool {
        self.is_hit_at("edgeslab")
    }

    /// Whether the last `Cache-Status` member is `node`'s and says `hit`.
    pub fn is_hit_at(&self, node: &str) -> bool {
        let status = self.cache_status();
        let member = status.rsplit(',').next().unwrap_or_default();
        let mut params = member.split(';').map(str::trim);
        assert_eq!(params.next(), Some(node), "Cache-Status {status:?}");
        params.any(|p| p == "hit")
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone())
            .unwrap_or_else(|_| panic!("body is not UTF-8: {}", show(&self.body, 256)))
    }
}

/// A client connection that can carry several requests.
pub struct Client {
    /// The socket, for raw writes and reads. Bytes that a `read_response`
    /// already buffered are not seen here.
    pub stream: TcpStream,
    inbound: Inbound<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    /// Connects, or says why not (an edge that was just killed, say).
    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            inbound: Inbound::new(stream.try_clone()?),
            stream,
        })
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.try_send(raw).expect("send request");
    }

    pub fn try_send(&mut self, raw: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(raw)
    }

    /// Reads the response to a GET (or any request with a body-carrying
    /// answer) sent as HTTP/1.1; None when the connection ended before a
    /// whole head came.
    pub fn read_response(&mut self) -> Option<Response> {
        self.read(Asked::default(), None)
    }

    /// Reads the response to `request`, whose method (HEAD) and version
    /// (HTTP/1.0) decide the framing allowed.
    pub fn read_response_to(&mut self, request: &[u8]) -> Option<Response> {
        self.read(Asked::of(request), None)
    }

    /// Like [`read_response_to`](Self::read_response_to), but hands the body
    /// to `sink` as it arrives instead of keeping it.
    pub fn read_response_streaming(
        &mut self,
        request: &[u8],
        sink: BodySink<'_>,
    ) -> Option<Response> {
        self.read(Asked::of(request), Some(sink))
    }

    fn read(&mut self, asked: Asked, sink: Option<BodySink<'_>>) -> Option<Response> {
        read_from(&mut self.inbound, asked, sink)
    }

    /// Whether the server closes the connection within `within`, discarding
    /// any bytes that still arrive before the close (unread responses).
    pub fn is_closed(&mut self, within: Duration) -> bool {
        self.wait_for_close(within, true)
    }

    /// Whether the server closes the connection within `within`; panics if
    /// any byte arrives meanwhile, since nothing was asked for.
    pub fn closes_quietly(&mut self, within: Duration) -> bool {
        self.wait_for_close(within, false)
    }

    fn wait_for_close(&mut self, within: Duration, discard: bool) -> bool {
        let deadline = Instant::now() + within;
        let closed = loop {
            if discard {
                self.inbound.buf.clear();
            }
            assert!(
                self.inbound.buf.is_empty(),
                "bytes nothing asked for: {}",
                show(&self.inbound.buf, 1024)
            );
            if matches!(self.inbound.ended, Some(Ended::Eof | Ended::Reset)) {
                break true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            let _ = self.stream.set_read_timeout(Some(left));
            self.inbound.fill(deadline);
        };
        let _ = self.stream.set_read_timeout(Some(READ_TIMEOUT));
        closed
    }

    /// Asserts that the server closes the connection now, sending nothing
    /// more: after a response that ends the connection, a stray byte means
    /// the response was framed wrong.
    pub fn expect_close(&mut self) {
        let deadline = Instant::now() + CLOSE_WITHIN;
        let _ = self.stream.set_read_timeout(Some(CLOSE_WITHIN));
        loop {
            assert!(
                self.inbound.buf.is_empty(),
                "bytes after the end of the response: {}",
                show(&self.inbound.buf, 1024)
            );
            match self.inbound.ended {
                Some(Ended::Eof | Ended::Reset) => break,
                Some(Ended::TimedOut) => {
                    panic!("the connection stayed open after a response that ends it")
                }
                None => self.inbound.fill(deadline),
            };
        }
        let _ = self.stream.set_read_timeout(Some(READ_TIMEOUT));
    }

    /// Bytes received beyond the responses read so far.
    pub fn unread(&self) -> &[u8] {
        &self.inbound.buf
    }

    /// A GET on this connection, kept alive.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes());
        self.read_response().expect("a response")
    }
}

/// Reads one response from `inbound` by the harness's strict rules; None
/// when the connection ended before a whole head came.
pub fn read_from<R: std::io::Read>(
    inbound: &mut Inbound<R>,
    asked: Asked,
    sink: Option<BodySink<'_>>,
) -> Option<Response> {
    let deadline = Instant::now() + RESPONSE_WITHIN;
    let mut interim = Vec::new();
    let (raw, head, framing) = loop {
        let raw = match inbound.read_head(deadline) {
            Ok(Some(raw)) => raw,
            Ok(None) => return None,
            Err(v) => fail(&v, &inbound.buf, &[]),
        };
        let head = parse_response_head(&raw).unwrap_or_else(|v| fail(&v, &raw, &[]));
        let framing = response_framing(&head, asked).unwrap_or_else(|v| fail(&v, &raw, &[]));
        if !(100..200).contains(&head.status) {
            break (raw, head, framing);
        }
        interim.push(raw);
    };
    let mut body = Vec::new();
    let mut chunks = ChunkedDecoder::default();
    let mut keep = |b: &[u8]| body.extend_from_slice(b);
    let out: BodySink<'_> = match sink {
        Some(sink) => sink,
        None => &mut keep,
    };
    let complete = inbound
        .read_body(framing, deadline, &mut chunks, out)
        .unwrap_or_else(|v| fail(&v, &raw, &inbound.buf));
    Some(Response {
        version: if head.minor == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        },
        status: head.status,
        reason: head.reason,
        headers: head.fields,
        head: raw,
        interim,
        framing,
        body,
        trailers: chunks.trailers,
        complete,
    })
}

/// Fails the test with the violation and the raw bytes around it.
fn fail(why: &Violation, head: &[u8], rest: &[u8]) -> ! {
    let mut msg = format!(
        "the edge sent bad HTTP: {}\n  head: {}",
        why.0,
        show(head, 4096)
    );
    if !rest.is_empty() {
        msg.push_str(&format!("\n  then: {}", show(rest, 1024)));
    }
    panic!("{msg}")
}

/// One request on a fresh connection. When the request asks the server to
/// close, the connection must then close with nothing more on it; otherwise
/// nothing may have arrived beyond the response.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut c = Client::connect(addr);
    c.send(raw);
    let r = c.read_response_to(raw).expect("a response");
    if asks_close(raw) {
        c.expect_close();
    } else {
        assert!(
            c.unread().is_empty(),
            "bytes after the end of the response: {}",
            show(c.unread(), 1024)
        );
    }
    r
}

/// A GET with `Connection: close` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Whether a raw request's head asks the server to close after answering:
/// `Connection: close`, or HTTP/1.0 without `Connection: keep-alive`.
fn asks_close(raw: &[u8]) -> bool {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let connection = |token: &str| {
        head.lines()
            .filter_map(|l| l.strip_prefix("connection:"))
            .any(|v| v.split(',').any(|t| t.trim() == token))
    };
    connection("close") || (Asked::of(raw).http10 && !connection("keep-alive"))
}
