//! Test harness: the real `edgeslab` binary on loopback, a scripted origin
//! whose every response a test decides, and a small raw HTTP client. Every
//! process started here is stopped on drop, every wait is bounded.
#![allow(dead_code)]

use edgeslab::http::{BodyFraming, ChunkedDecoder, Limits, ResponseHead, parse_response};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A directory under /tmp (ext4 here, so O_DIRECT works), removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("edgeslab-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_edgeslab")
}

/// A running edgeslab process.
pub struct Edge {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub shards: usize,
    pub dir: PathBuf,
    /// The directory, when this edge owns it (removed on drop).
    _owned: Option<TempDir>,
    pub stderr_path: PathBuf,
}

impl Edge {
    /// Starts `edgeslab serve --config` pointing at `origin`. `extra` is
    /// TOML whose `[section]`s are merged into the base config's sections
    /// (keys before any header go to the top level).
    pub fn start(origin: SocketAddr, extra: &str) -> Edge {
        Self::start_with(origin, extra, &[])
    }

    pub fn start_with(origin: SocketAddr, extra: &str, args: &[&str]) -> Edge {
        let dir = TempDir::new("edge");
        let path = dir.path().to_path_buf();
        Self::start_in(Some(dir), &path, origin, extra, args, &[])
    }

    /// Writes the config into `dir` (keeping a cache already there) and
    /// starts the binary with extra arguments and environment.
    pub fn start_in(
        owned: Option<TempDir>,
        dir: &Path,
        origin: SocketAddr,
        extra: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Edge {
        let cache = dir.join("cache.slab");
        let config = merge_toml(
            &format!(
                "[listen]\naddr = \"127.0.0.1:0\"\n[origin]\nurl = \"http://{origin}\"\nfirst_byte_timeout = \"5s\"\n\
                 idle_timeout = \"5s\"\n[cache]\npath = \"{}\"\nsize = \"96MiB\"\nsegment_size = \"4MiB\"\n\
                 [admin]\naddr = \"127.0.0.1:0\"\n",
                cache.display()
            ),
            extra,
        );
        let path = dir.join("edgeslab.toml");
        std::fs::write(&path, config).expect("write config");
        let mut all = vec!["serve", "--config", path.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        Self::launch(owned, dir, &all, env).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the binary with exactly these arguments in an owned directory.
    pub fn spawn(dir: TempDir, args: &[&str]) -> Edge {
        let path = dir.path().to_path_buf();
        Self::launch(Some(dir), &path, args, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the binary; Err carries its stderr when it never became ready.
    pub fn launch(
        owned: Option<TempDir>,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Edge, String> {
        let stderr_path = dir.join(format!(
            "stderr-{}.log",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(bin())
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start edgeslab");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ready ") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "edgeslab did not become ready:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                ));
            }
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
                .expect("field in ready line")
        };
        Ok(Edge {
            child,
            addr: field("listen").parse().expect("listen addr"),
            admin: field("admin").parse().ok(),
            shards: field("shards").parse().expect("shards"),
            dir: dir.to_path_buf(),
            _owned: owned,
            stderr_path,
        })
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        let admin = self.admin.expect("admin enabled");
        let r = request(admin, b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n");
        String::from_utf8(r.body).expect("utf-8 metrics")
    }

    /// Sum of a metric over shards.
    pub fn metric(&self, name: &str) -> u64 {
        metric_sum(&self.metrics(), name)
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Merges two simple TOML texts section by section; keys in `extra` win.
pub fn merge_toml(base: &str, extra: &str) -> String {
    fn sections(text: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut out: Vec<(String, Vec<(String, String)>)> = vec![(String::new(), Vec::new())];
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line.starts_with('[') {
                out.push((line.to_string(), Vec::new()));
            } else if let Some((k, _)) = line.split_once('=') {
                out.last_mut()
                    .expect("a section")
                    .1
                    .push((k.trim().to_string(), line.to_string()));
            }
        }
        out
    }
    let mut merged = sections(base);
    for (name, keys) in sections(extra) {
        let idx = match merged.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                merged.push((name.clone(), Vec::new()));
                merged.len() - 1
            }
        };
        for (k, line) in keys {
            let section = &mut merged[idx].1;
            section.retain(|(existing, _)| *existing != k);
            section.push((k, line));
        }
    }
    let mut text = String::new();
    for (name, keys) in merged {
        if !name.is_empty() {
            text.push_str(&name);
            text.push('\n');
        }
        for (_, line) in keys {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

pub fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

pub fn metric_of_shard(text: &str, name: &str, shard: usize) -> u64 {
    let prefix = format!("{name}{{shard=\"{shard}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0)
}

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

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The open-file flags (as in /proc/PID/fdinfo) of every descriptor of
/// process `pid` that refers to `target`.
pub fn fd_flags(pid: u32, target: &Path) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|fd| std::fs::read_link(fd.path()).ok().as_deref() == Some(target))
        .filter_map(|fd| {
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .ok()?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
            u32::from_str_radix(flags.trim(), 8).ok()
        })
        .collect()
}

/// Threads of a process: (name, allowed cpus).
pub fn threads(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in dir.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_string();
        out.push((comm.trim().to_string(), cpus));
    }
    out
}

/// Waits (bounded) until `cond` holds.
pub fn eventually(max: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}
