//! A small raw HTTP client for talking to the edge.

use edgeslab::http::{BodyFraming, ChunkedDecoder, Limits, ResponseHead, parse_response};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A parsed response as a viewer sees it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: ResponseHead,
    pub body: Vec<u8>,
    /// Whether the body was complete by its framing (false: connection closed early).
    pub complete: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.headers.get_str(name).map(str::to_string)
    }
    pub fn cache_status(&self) -> String {
        self.header("cache-status").unwrap_or_default()
    }
}

/// A client connection that can carry several requests.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("send request");
    }

    fn fill(&mut self) -> usize {
        let mut tmp = [0u8; 64 << 10];
        match self.stream.read(&mut tmp) {
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                n
            }
            Err(_) => 0,
        }
    }

    /// Reads one response; `head_request` for responses to HEAD.
    pub fn read_response(&mut self, head_request: bool) -> Option<Response> {
        let limits = Limits {
            max_header_bytes: 1 << 20,
            max_uri_bytes: 8192,
            max_headers: 500,
        };
        let (head, n) = loop {
            match parse_response(&self.buf, &limits, head_request) {
                Ok(Some(r)) => {
                    if (100..200).contains(&r.0.status) {
                        self.buf.drain(..r.1);
                        continue;
                    }
                    break r;
                }
                Ok(None) => {
                    if self.fill() == 0 {
                        return None;
                    }
                }
                Err(e) => panic!(
                    "bad response from edge: {e:?}: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        };
        self.buf.drain(..n);
        let mut body = Vec::new();
        let complete = match head.framing {
            BodyFraming::None => true,
            BodyFraming::ContentLength(len) => {
                while (self.buf.len() as u64) < len {
                    if self.fill() == 0 {
                        break;
                    }
                }
                let take = (len as usize).min(self.buf.len());
                body.extend(self.buf.drain(..take));
                body.len() as u64 == len
            }
            BodyFraming::Chunked => {
                let mut dec = ChunkedDecoder::new();
                loop {
                    let used = match dec.decode(&self.buf, &mut body) {
                        Ok(u) => u,
                        Err(_) => break false,
                    };
                    self.buf.drain(..used);
                    if dec.is_done() {
                        break true;
                    }
                    if self.fill() == 0 {
                        break false;
                    }
                }
            }
            BodyFraming::CloseDelimited => {
                while self.fill() > 0 {}
                body.append(&mut self.buf);
                true
            }
        };
        Some(Response {
            status: head.status,
            head,
            body,
            complete,
        })
    }

    /// Whether the server closes the connection within `within` (any bytes
    /// still arriving before the close are discarded).
    pub fn is_closed(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut b = [0u8; 4096];
        let closed = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut b) {
                Ok(0) => break true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(15)));
        closed
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes());
        self.read_response(false).expect("a response")
    }
}

/// One request on a fresh connection.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    let head = raw.starts_with(b"HEAD ");
    let mut c = Client::connect(addr);
    c.send(raw);
    c.read_response(head).expect("a response")
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}
