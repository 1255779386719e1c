//! CPU seconds per GiB of body the edge relays, through the real binary on
//! loopback: passes (a `no-store` response, spliced or copied as
//! `origin.splice` says) and cacheable misses (every key new, stored while
//! relayed), side by side in one run. The CPU is the edge process's own
//! (utime + stime of all its threads, the splice ring's kernel workers
//! included, from /proc/PID/stat) over the bytes viewers received.
//!
//! Run: `cargo bench --bench relay_cpu` (`-- --gib 4` for more bytes per
//! case; default 2). The origin here is a plain thread per connection
//! writing one prepared body; the client reads and discards.

mod common;

use common::{Running, cpu_seconds, free_addr, read_request_line, spawn_edge};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Body of each response.
const BODY: usize = 64 << 20;

/// An origin answering every request with `BODY` bytes: `no-store` under
/// `/pass/`, cacheable otherwise.
fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
    let addr = listener.local_addr().expect("addr");
    let body: Arc<Vec<u8>> = Arc::new((0..BODY).map(|i| (i * 31 % 251) as u8).collect());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || serve(conn, &body));
        }
    });
    addr
}

fn serve(conn: TcpStream, body: &[u8]) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut out = conn;
    loop {
        let Some(line) = read_request_line(&mut reader) else {
            return;
        };
        let pass = line.contains(" /pass/");
        let cc = if pass { "no-store" } else { "max-age=3600" };
        let head = format!(
            "HTTP/1.1 200 OK\r\nCache-Control: {cc}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(body).is_err() {
            return;
        }
    }
}

struct Edge {
    process: Running,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Edge {
    fn drop(&mut self) {
        // The process first, then its files.
        self.process.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_edge(origin: SocketAddr, splice: bool) -> Edge {
    let dir = std::env::temp_dir().join(format!("edgeslab-relay-cpu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let addr = free_addr();
    let admin = free_addr();
    let config = format!(
        "cores = [1]\n[listen]\naddr = \"{addr}\"\n[admin]\naddr = \"{admin}\"\n\
         [origin]\nurl = \"http://{origin}\"\nsplice = {splice}\n\
         [cache]\npath = \"{}\"\nsize = \"2GiB\"\nram_size = 0\n[log]\naccess_log = false\n",
        dir.join("cache").display()
    );
    let file = dir.join("edgeslab.toml");
    std::fs::write(&file, config).expect("config");
    let process = spawn_edge(&file, addr);
    Edge { process, addr, dir }
}

/// GETs `paths` one after another on one connection, reading every body;
/// returns the body bytes received.
fn fetch(addr: SocketAddr, paths: impl Iterator<Item = String>) -> u64 {
    let mut s = TcpStream::connect(addr).expect("connect edge");
    let mut reader = BufReader::with_capacity(1 << 20, s.try_clone().expect("clone"));
    let mut total = 0u64;
    let mut sink = vec![0u8; 1 << 20];
    for path in paths {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
            .expect("request");
        let mut len = None;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).expect("head");
            assert!(!h.is_empty(), "edge closed the connection");
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse::<u64>().ok();
            }
        }
        let mut left = len.expect("a Content-Length");
        while left > 0 {
            let n = reader
                .read(&mut sink[..left.min(1 << 20) as usize])
                .expect("body");
            assert!(n > 0, "body cut short");
            left -= n as u64;
        }
        total += len.unwrap_or(0);
    }
    total
}

fn main() {
    let mut gib = 2u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--gib" {
            gib = args.next().and_then(|v| v.parse().ok()).unwrap_or(gib);
        }
    }
    let origin = origin();
    let count = gib * (1 << 30) / BODY as u64;
    println!(
        "{:<34} {:>10} {:>10} {:>12}",
        "case", "GiB", "seconds", "CPU s/GiB"
    );
    let cases: [(&str, bool, &str); 4] = [
        ("pass, copied (origin.splice=false)", false, "pass"),
        ("pass, spliced (origin.splice=true)", true, "pass"),
        ("miss, stored (origin.splice=false)", false, "miss"),
        ("miss, stored (origin.splice=true)", true, "miss"),
    ];
    for (name, splice, kind) in cases {
        let edge = start_edge(origin, splice);
        // Warm the connections, the ring and the pools.
        fetch(edge.addr, std::iter::once(format!("/{kind}/warm")));
        let pid = edge.process.0.id();
        let before = cpu_seconds(pid);
        let t = Instant::now();
        let bytes = fetch(edge.addr, (0..count).map(|i| format!("/{kind}/{i}")));
        let wall = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid) - before;
        let g = bytes as f64 / (1u64 << 30) as f64;
        println!("{name:<34} {g:>10.2} {wall:>10.2} {:>12.3}", cpu / g);
    }
}
