//! The scripted origin: a loopback server whose every response a test decides.

use edgeslab::http::{BodyFraming, ChunkedDecoder, Limits};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the scripted origin does for one request.
#[derive(Clone, Debug)]
pub enum Body {
    /// Content-Length framed.
    Full(Vec<u8>),
    /// Content-Length framed, shared between responses (large bodies).
    Shared(Arc<Vec<u8>>),
    /// Chunked, in these pieces.
    Chunked(Vec<Vec<u8>>),
    /// Content-Length header says `declared`, but only `sent` bytes come, then close.
    Truncated { data: Vec<u8>, declared: usize },
    /// Chunked pieces, then close without the last chunk.
    ChunkedTruncated(Vec<Vec<u8>>),
    /// No framing: body ends at close.
    CloseDelimited(Vec<u8>),
    /// Content-Length framed; `first` bytes go out, then the origin waits for
    /// `gate` (bounded) before sending the rest.
    Gated {
        data: Vec<u8>,
        first: usize,
        gate: Gate,
    },
    /// Never answer (until the connection is closed by the peer or 30 s pass).
    Silent,
}

/// A latch a test opens to let the origin continue.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);

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

#[derive(Clone, Debug)]
pub struct Script {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Script {
    pub fn ok(cache_control: &str, body: Vec<u8>) -> Script {
        Script {
            status: 200,
            headers: vec![("Cache-Control".into(), cache_control.into())],
            body: Body::Full(body),
        }
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
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Seen) -> Script + Send + Sync;

/// An origin on loopback whose responses the test scripts.
pub struct Origin {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Origin {
    pub fn start(handler: impl Fn(&Seen) -> Script + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let (connections, seen, stop) = (connections.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            connections.fetch_add(1, Ordering::Relaxed);
                            let (handler, seen) = (handler.clone(), seen.clone());
                            std::thread::spawn(move || serve_origin(s, handler, seen));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Origin {
            addr,
            connections,
            seen,
            stop,
        }
    }

    /// Requests seen for a target.
    pub fn count(&self, target: &str) -> usize {
        self.seen
            .lock()
            .expect("seen")
            .iter()
            .filter(|s| s.target == target)
            .count()
    }

    pub fn last(&self) -> Option<Seen> {
        self.seen.lock().expect("seen").last().cloned()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_origin(mut s: TcpStream, handler: Arc<Handler>, seen: Arc<Mutex<Vec<Seen>>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let req = loop {
            match edgeslab::http::parse_request(&buf, &Limits::default()) {
                Ok(Some((head, n))) => {
                    buf.drain(..n);
                    break head;
                }
                Ok(None) => {
                    let mut tmp = [0u8; 16384];
                    match s.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&tmp[..k]),
                    }
                }
                Err(_) => return,
            }
        };
        let mut body = Vec::new();
        match req.framing {
            BodyFraming::ContentLength(n) => {
                while (buf.len() as u64) < n {
                    let mut tmp = [0u8; 16384];
                    match s.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&tmp[..k]),
                    }
                }
                body.extend(buf.drain(..n as usize));
            }
            BodyFraming::Chunked => {
                let mut dec = ChunkedDecoder::new();
                loop {
                    let Ok(used) = dec.decode(&buf, &mut body) else {
                        return;
                    };
                    buf.drain(..used);
                    if dec.is_done() {
                        break;
                    }
                    let mut tmp = [0u8; 16384];
                    match s.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&tmp[..k]),
                    }
                }
            }
            _ => {}
        }
        let info = Seen {
            method: req.method.as_str().to_string(),
            target: req.target.clone(),
            headers: req
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v).to_string()))
                .collect(),
            body,
        };
        let script = handler(&info);
        seen.lock().expect("seen").push(info);
        let is_head = req.method == edgeslab::http::Method::Head;
        if !write_script(&mut s, &script, is_head) {
            return;
        }
    }
}

/// Writes a scripted response; returns whether the connection may continue.
fn write_script(s: &mut TcpStream, script: &Script, head_only: bool) -> bool {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        script.status,
        edgeslab::http::reason_phrase(script.status)
    );
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    if !script
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("date"))
    {
        head.push_str(&format!("Date: {date}\r\n"));
    }
    for (n, v) in &script.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    let w = |s: &mut TcpStream, b: &[u8]| s.write_all(b).is_ok();
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
            if !w(s, head.as_bytes()) || head_only {
                return !head_only || w(s, b"");
            }
            for p in pieces.iter().filter(|p| !p.is_empty()) {
                if !w(s, format!("{:x}\r\n", p.len()).as_bytes()) || !w(s, p) || !w(s, b"\r\n") {
                    return false;
                }
                let _ = s.flush();
                std::thread::sleep(Duration::from_millis(5));
            }
            if matches!(script.body, Body::ChunkedTruncated(_)) {
                let _ = s.shutdown(std::net::Shutdown::Both);
                return false;
            }
            w(s, b"0\r\n\r\n")
        }
        Body::Truncated { data, declared } => {
            head.push_str(&format!("Content-Length: {declared}\r\n\r\n"));
            let _ = w(s, head.as_bytes()) && w(s, data);
            let _ = s.shutdown(std::net::Shutdown::Both);
            false
        }
        Body::CloseDelimited(b) => {
            head.push_str("Connection: close\r\n\r\n");
            let _ = w(s, head.as_bytes()) && w(s, b);
            let _ = s.shutdown(std::net::Shutdown::Both);
            false
        }
        Body::Gated { data, first, gate } => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", data.len()));
            if !w(s, head.as_bytes()) || !w(s, &data[..*first]) {
                return false;
            }
            let _ = s.flush();
            gate.wait(Duration::from_secs(10));
            w(s, &data[*first..])
        }
        Body::Silent => {
            std::thread::sleep(Duration::from_secs(30));
            false
        }
    }
}
