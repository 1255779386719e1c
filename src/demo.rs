//! `edgeslab demo`: a small built-in origin, a regional cache in front of it
//! and two edges below that, on loopback — each node a real `edgeslab serve`
//! process — with the curl lines that show an origin fetch, an edge hit, a
//! regional hit and an invalidation. The demo origin uses plain threads; it
//! is a toy for trying edgeslab, not part of serving.

use crate::http::{BodyFraming, ChunkedDecoder, Limits, Method, RequestHead, parse_request};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
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

/// One node of the demo: an `edgeslab serve` child process.
struct Node {
    name: &'static str,
    child: std::process::Child,
    listen: SocketAddr,
    admin: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped (wait below).
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token the demo's nodes require for invalidations.
pub const DEMO_TOKEN: &str = "demo-token";

/// How one demo node is started.
struct NodeSpec<'a> {
    name: &'static str,
    role: &'static str,
    listen: SocketAddr,
    admin: SocketAddr,
    origin: SocketAddr,
    parents: &'a [SocketAddr],
    peers: &'a [SocketAddr],
    dir: &'a std::path::Path,
}

/// Starts `edgeslab serve` for a node and waits for its ready line.
fn start_node(spec: &NodeSpec<'_>) -> Result<Node, DemoError> {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(DemoError::Node)?;
    let log = std::fs::File::create(spec.dir.join(format!("{}.log", spec.name)))
        .map_err(DemoError::Node)?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["serve", "--role", spec.role, "--name", spec.name])
        .arg("--listen")
        .arg(spec.listen.to_string())
        .arg("--origin")
        .arg(format!("http://{}", spec.origin))
        .arg("--cache")
        .arg(format!(
            "{}:128MiB",
            spec.dir.join(format!("{}.slab", spec.name)).display()
        ))
        .arg("--admin")
        .arg(spec.admin.to_string())
        .args(["--admin-token", DEMO_TOKEN, "--reformat"]);
    for p in spec.parents {
        cmd.arg("--parent").arg(p.to_string());
    }
    for p in spec.peers {
        cmd.arg("--peer-admin").arg(format!("http://{p}"));
    }
    cmd.stdout(std::process::Stdio::piped())
        .stderr(log)
        .stdin(std::process::Stdio::null());
    // SAFETY: prctl in the forked child before exec touches no memory of
    // the parent; the node dies with the demo even if the demo is killed.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(DemoError::Node)?;
    let stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.starts_with("ready ") {
                let _ = tx.send(line);
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(60));
    let field = |line: &str, name: &str| -> Option<SocketAddr> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))?
            .parse()
            .ok()
    };
    match ready
        .ok()
        .and_then(|l| Some((field(&l, "listen")?, field(&l, "admin")?)))
    {
        Some((listen, admin)) => Ok(Node {
            name: spec.name,
            child,
            listen,
            admin,
        }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(spec.dir.join(format!("{}.log", spec.name)))
                .unwrap_or_default();
            Err(DemoError::NotReady(spec.name, log))
        }
    }
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the demo origin: {0}")]
    Origin(#[source] std::io::Error),
    #[error("cannot start a demo node: {0}")]
    Node(#[source] std::io::Error),
    #[error("the demo's {0} did not start:\n{1}")]
    NotReady(&'static str, String),
    #[error("cannot install the signal handler: {0}")]
    Signals(#[source] std::io::Error),
}

/// Runs the demo until it is stopped: the origin, a regional and two edges
/// (each an `edgeslab serve` process), and the lines to try, printed once
/// every node is ready.
pub fn run(listen: Option<SocketAddr>, admin: Option<SocketAddr>) -> Result<(), DemoError> {
    let origin = start_origin("127.0.0.1:0").map_err(DemoError::Origin)?;
    let dir = std::env::temp_dir().join("edgeslab-demo");
    std::fs::create_dir_all(&dir).map_err(DemoError::Node)?;
    // Every node must know its peers' admin addresses before it starts.
    // An asked-for port 0 becomes a concrete free port, for the same reason.
    let pick = |asked: Option<SocketAddr>, port: u16| match asked {
        Some(a) if a.port() == 0 => TcpListener::bind(a)
            .and_then(|l| l.local_addr())
            .unwrap_or(a),
        Some(a) => a,
        None => free(port),
    };
    let (e1_listen, e1_admin) = (pick(listen, 8080), pick(admin, 9090));
    let (e2_listen, e2_admin) = (free(8081), free(9091));
    let (r_listen, r_admin) = (free(8082), free(9092));
    let regional = start_node(&NodeSpec {
        name: "regional",
        role: "regional",
        listen: r_listen,
        admin: r_admin,
        origin,
        parents: &[],
        peers: &[e1_admin, e2_admin],
        dir: &dir,
    })?;
    let edge = |name, listen, admin| {
        start_node(&NodeSpec {
            name,
            role: "edge",
            listen,
            admin,
            origin,
            parents: &[regional.listen],
            peers: &[regional.admin],
            dir: &dir,
        })
    };
    let edge1 = edge("edge-1", e1_listen, e1_admin)?;
    let edge2 = edge("edge-2", e2_listen, e2_admin)?;
    let (e1, e2, a1) = (edge1.listen, edge2.listen, edge1.admin);
    println!(
        "\nedgeslab demo: an origin, a regional cache and two edges on loopback\n\
         \x20 origin    http://{origin}   (built-in demo origin)\n\
         \x20 regional  http://{}   admin http://{}\n\
         \x20 edge-1    http://{e1}   admin http://{a1}\n\
         \x20 edge-2    http://{e2}   admin http://{}\n\
         \x20 logs      {}/*.log\n\n\
         Try (watch Cache-Status: one entry per tier, regional first):\n\
         \x20 curl -s -o /dev/null -D - http://{e1}/hello   # origin fetch: both tiers miss and store\n\
         \x20 curl -s -o /dev/null -D - http://{e1}/hello   # edge hit\n\
         \x20 curl -s -o /dev/null -D - -H 'Host: {e1}' http://{e2}/hello   # regional hit: edge-2 never had it\n\
         \x20 ./target/release/edgeslab invalidate --admin http://{a1} --token {DEMO_TOKEN} /hello\n\
         \x20 curl -s -o /dev/null -D - -H 'Host: {e1}' http://{e2}/hello   # after the invalidation: origin fetch again\n\
         (The key names the site by its Host, as a real one's viewers send it to every edge:\n\
         \x20 edge-2's lines ask for edge-1's site; with its own Host it would be another object.)\n\
         \x20 curl -s -X POST -H 'Authorization: Bearer {DEMO_TOKEN}' -d '{{\"paths\": [\"/big/*\"]}}' http://{a1}/invalidations\n\
         \x20 curl -s http://{e1}/big/10485760 | wc -c\n\
         \x20 curl -s -r 1000-1999 http://{e1}/big/10485760 | wc -c   # a range from the cache: 1000\n\
         \x20 curl -s -o /dev/null -D - -H 'If-None-Match: \"hello-v1\"' http://{e1}/hello   # 304\n\
         \x20 curl -s -H 'Accept-Encoding: gzip' http://{e1}/vary     # one variant per Accept-Encoding\n\
         \x20 curl -s -o /dev/null -D - http://{e1}/stale             # after 5 s: stale, revalidated behind\n\
         \x20 curl -s -o /dev/null -D - http://{e1}/time              # no-store: never cached\n\
         \x20 curl -s -X POST --data 'hi' http://{e1}/echo            # straight to the origin\n\
         \x20 curl -s http://{a1}/metrics | grep -E 'hits|misses'\n\n\
         Press Ctrl-C to stop.",
        regional.listen,
        regional.admin,
        edge2.admin,
        dir.display(),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(DemoError::Signals)?;
    }
    let mut nodes = [regional, edge1, edge2];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for n in &mut nodes {
            if let Ok(Some(status)) = n.child.try_wait() {
                eprintln!(
                    "edgeslab demo: {} exited ({status}); see {}/{}.log",
                    n.name,
                    dir.display(),
                    n.name
                );
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Port `preferred` on loopback if it is free, else any free port (known
/// now, since the nodes must be told each other's addresses).
fn free(preferred: u16) -> SocketAddr {
    let want = SocketAddr::from(([127, 0, 0, 1], preferred));
    let bound = TcpListener::bind(want).or_else(|_| TcpListener::bind("127.0.0.1:0"));
    bound.and_then(|l| l.local_addr()).unwrap_or(want)
}
