//! HTTPS beside plaintext, measured side by side in one run against the
//! release binary (built by `cargo bench`) serving one shard on one core:
//! - full TLS handshakes per second (each connection new, no resumption),
//!   and resumed ones (tickets), per server core;
//! - small (1 KiB) hits per second on persistent connections, over TLS and
//!   over plain TCP, and their ratio.
//!
//! The server runs on the last CPU, the load on the others; a scripted
//! origin (one std thread) fills the cache first. Prints a table and writes
//! it to `target/bench-tls.txt`.
//! Run: `cargo bench --bench tls` (add `-- --seconds 3 --threads 16`).

use rustls::pki_types::ServerName;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BODY: usize = 1024;
const KEYS: usize = 100;

fn main() {
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let run = Duration::from_secs(seconds);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server_cpu = cpus - 1;
    let dir = std::env::temp_dir().join(format!("edgeslab-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let cert = rcgen::generate_simple_self_signed(vec!["bench.test".to_string()]).expect("cert");
    std::fs::write(dir.join("c.pem"), cert.cert.pem()).expect("write cert");
    std::fs::write(dir.join("c.key"), cert.signing_key.serialize_pem()).expect("write key");
    let origin = start_origin();
    let mut edge = Edge::start(&dir, origin, server_cpu);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = |resume: bool| {
        let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        if !resume {
            c.resumption = rustls::client::Resumption::disabled();
        }
        Arc::new(c)
    };
    // Fill the cache.
    for k in 0..KEYS {
        let mut s = TcpStream::connect(edge.plain).expect("connect");
        request(&mut s, k, true);
    }
    // Enough blocking clients to keep the one server core busy.
    let load_threads: usize = std::env::args()
        .skip_while(|a| a != "--threads")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let pid = edge.child.id();
    let full = measure(run, load_threads, pid, |_| {
        let config = client(false);
        let tls = edge.https;
        Box::new(move || handshake(tls, &config))
    });
    let resumed = measure(run, load_threads, pid, |_| {
        let config = client(true);
        let tls = edge.https;
        Box::new(move || handshake(tls, &config))
    });
    let plain_hits = measure(run, load_threads, pid, |t| {
        let mut s = TcpStream::connect(edge.plain).expect("connect");
        let mut k = t;
        Box::new(move || {
            k = (k + 1) % KEYS;
            request(&mut s, k, false)
        })
    });
    let tls_hits = measure(run, load_threads, pid, |t| {
        let config = client(true);
        let mut s = tls_connect(edge.https, &config).expect("tls connect");
        let mut k = t;
        Box::new(move || {
            k = (k + 1) % KEYS;
            request(&mut s, k, false)
        })
    });
    let metrics = edge.metrics();
    let resumed_seen = metric(&metrics, "edgeslab_tls_resumed_handshakes_total");
    edge.stop();
    let _ = std::fs::remove_dir_all(&dir);

    let row = |name: &str, r: &Rate| {
        format!(
            "| {name} | {:.0} | {:.0} | {:.0}% |\n",
            r.per_second,
            r.per_server_cpu_second,
            r.server_busy * 100.0
        )
    };
    let table = format!(
        "edgeslab over TLS beside plaintext: 1 shard on CPU {server_cpu}, {load_threads} load threads on the other CPUs, {seconds} s each\n\
         The load generator shares this machine: per server CPU-second is the figure a dedicated core would give.\n\
         | test | per second | per server CPU-second (one core) | server CPU busy |\n|---|---|---|---|\n{}{}{}{}\
         | TLS ÷ plaintext, hits per server CPU-second | {:.2} | | |\n\
         (resumed handshakes counted by the server: {resumed_seen})\n",
        row(
            "full TLS handshakes (a new connection each, no resumption)",
            &full
        ),
        row("resumed TLS handshakes (tickets)", &resumed),
        row("1 KiB hits, plaintext keep-alive", &plain_hits),
        row("1 KiB hits, TLS keep-alive", &tls_hits),
        tls_hits.per_server_cpu_second / plain_hits.per_server_cpu_second.max(1.0)
    );
    print!("{table}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-tls.txt", &table);
}

/// Operations per wall second and per second of the server's CPU time.
struct Rate {
    per_second: f64,
    per_server_cpu_second: f64,
    /// Server CPU time over wall time.
    server_busy: f64,
}

/// The CPU time (user + system) process `pid` has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends at the last ')').
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

/// Runs `threads` loops of one operation each for `run`.
fn measure(
    run: Duration,
    threads: usize,
    server: u32,
    make: impl Fn(usize) -> Box<dyn FnMut() -> bool + Send>,
) -> Rate {
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let mut op = make(t);
            let (done, count) = (done.clone(), count.clone());
            std::thread::spawn(move || {
                pin_to_load_cpus();
                while !done.load(Ordering::Relaxed) {
                    if !op() {
                        return;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    let cpu_before = cpu_seconds(server);
    std::thread::sleep(run);
    let n = count.load(Ordering::Relaxed);
    let cpu = cpu_seconds(server) - cpu_before;
    let took = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    Rate {
        per_second: n as f64 / took,
        per_server_cpu_second: n as f64 / cpu.max(0.001),
        server_busy: cpu / took,
    }
}

/// Keeps a load thread off the server's CPU (the last one).
fn pin_to_load_cpus() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read
    // and write the set passed.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..cpus - 1 {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Option<Tls> {
    let tcp = TcpStream::connect(addr).ok()?;
    tcp.set_nodelay(true).ok()?;
    let name = ServerName::try_from("bench.test").ok()?;
    let conn = rustls::ClientConnection::new(config.clone(), name).ok()?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).ok()?;
    }
    Some(s)
}

/// One handshake on a new connection; a resumable session's ticket comes
/// with the first response, so one small request follows.
fn handshake(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> bool {
    match tls_connect(addr, config) {
        Some(mut s) => request(&mut s, 0, true),
        None => false,
    }
}

/// A GET of key `k` and its whole response (Content-Length framed).
fn request<S: Read + Write>(s: &mut S, k: usize, close: bool) -> bool {
    let conn = if close { "Connection: close\r\n" } else { "" };
    let req = format!("GET /k{k} HTTP/1.1\r\nHost: bench.test\r\n{conn}\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = resp.parse(&buf) {
            let len = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= head + len {
                return resp.code == Some(200);
            }
        }
    }
}

/// A scripted origin: 1 KiB bodies, cacheable for an hour.
fn start_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("origin");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(s);
                loop {
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let body = vec![b'x'; BODY];
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\nCache-Control: max-age=3600\r\n\r\n"
                    );
                    let s = r.get_mut();
                    if s.write_all(head.as_bytes()).is_err() || s.write_all(&body).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The release binary, one shard, plain and HTTPS listeners.
struct Edge {
    child: Child,
    plain: SocketAddr,
    https: SocketAddr,
    admin: SocketAddr,
}

impl Edge {
    fn start(dir: &std::path::Path, origin: SocketAddr, cpu: usize) -> Edge {
        let config = dir.join("edgeslab.toml");
        std::fs::write(
            &config,
            format!(
                "cores = [{cpu}]\n[listen]\naddr = \"127.0.0.1:0\"\n[tls]\naddr = \"127.0.0.1:0\"\ncerts = [{{ chain = \"{0}/c.pem\", key = \"{0}/c.key\" }}]\n[origin]\nurl = \"http://{origin}\"\n[cache]\npath = \"{0}/cache.slab\"\nsize = \"256MiB\"\n[admin]\naddr = \"127.0.0.1:0\"\n[log]\naccess_log = false\nlevel = \"warn\"\n",
                dir.display()
            ),
        )
        .expect("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgeslab"))
            .args(["serve", "--config", config.to_str().expect("utf-8")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start edgeslab");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let field = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        };
        Edge {
            plain: field("listen"),
            https: field("https"),
            admin: field("admin"),
            child,
        }
    }

    fn metrics(&self) -> String {
        let mut s = TcpStream::connect(self.admin).expect("admin");
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child, which has not been reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
