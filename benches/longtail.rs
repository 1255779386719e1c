//! The long tail through the server against the raw device: hits that no
//! RAM tier holds (`cache.ram_size = 0`), read from the cache file with
//! O_DIRECT and sent over loopback HTTP, beside O_DIRECT reads of the same
//! size and at the same depth from a file beside it, in one run.
//! Prints each rate and server/raw; the target is at least 0.9.
//!
//! The two alternate: `--rounds` (3) rounds of the server then the raw
//! device, each `--seconds` long, one row per round, then the median ratio.
//! On a shared machine the device's own rate drifts by a third within an
//! hour; a ratio of two runs seconds apart is not biased by that drift.
//!
//! Two cases: 8 MiB objects (large objects, read chunk by chunk) and
//! 16 KiB objects (one entry each), each a set of 1.5 GiB or so, read in
//! random order by `DEPTH` viewers at once. The raw reads are of the size
//! the server's device reads are (a chunk; a small object's entry). The edge runs one shard on CPU 1; the viewers (and the
//! origin that fills the cache first) run on CPU 0; the raw readers run on
//! CPU 1, where the shard ran. The edge's own counters confirm that every
//! hit read the device (`edgeslab_cache_device_reads_total`) and none came
//! from RAM.
//!
//! The cache file lives in `$EDGESLAB_BENCH_DIR` or the temp dir, which
//! must honour O_DIRECT (ext4, xfs; not tmpfs).
//! Run: `cargo bench --bench longtail` (add `-- --seconds 10`, `--depth
//! 64`, `--only 16`, `--rounds 5`, `--objects 20000` for a smaller set that
//! fills sooner; `EDGESLAB_BIN=path` measures another build). Once the set
//! is filled it prints the edge's pid, for a profiler to attach to.
//!
//! The viewers are driven by one thread that never sleeps (see
//! `poll_viewers`); `--viewers sleep` has one blocking thread per viewer
//! instead, as before. `--peer ADDR` measures, in each round, another
//! server at ADDR that answers `/o/16384/<n>` (or `/o/8388608/<n>`) with
//! that many bytes, driven by the same viewers: nginx serving one file from
//! the page cache, say, for what one core's HTTP over loopback costs here
//! when no device is read at all.

mod common;

use common::{Running, cpu_seconds, free_addr, read_request_line, spawn_edge};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Viewers (and raw readers) at once, unless `--depth` says otherwise.
static DEPTH: AtomicU64 = AtomicU64::new(16);

fn depth() -> usize {
    DEPTH.load(Relaxed) as usize
}

struct Case {
    name: &'static str,
    /// Each object's body.
    size: usize,
    objects: u64,
    /// What one device read of the server brings: a chunk of a large object
    /// (about 1 MiB), or a small object's whole entry (its body plus 4 KiB
    /// for the entry's header, key and head). The raw reads are of this
    /// size, and count this much of the object each.
    raw_read: usize,
    raw_payload: usize,
}

const CASES: [Case; 2] = [
    Case {
        name: "8 MiB objects",
        size: 8 << 20,
        objects: 192,
        raw_read: 1 << 20,
        raw_payload: 1 << 20,
    },
    Case {
        name: "16 KiB objects",
        size: 16 << 10,
        objects: 40_000,
        raw_read: 20 << 10,
        raw_payload: 16 << 10,
    },
];

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// An origin answering `/o/<size>/<n>` with `size` cacheable bytes.
fn origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || serve(conn));
        }
    });
    addr
}

fn serve(conn: TcpStream) {
    pin_to(0);
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut out = conn;
    let body: Vec<u8> = (0..(8usize << 20)).map(|i| (i * 31 % 251) as u8).collect();
    loop {
        let Some(line) = read_request_line(&mut reader) else {
            return;
        };
        let size: usize = line
            .split('/')
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
            .min(body.len());
        let head = format!(
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=86400\r\nContent-Length: {size}\r\n\r\n"
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(&body[..size]).is_err() {
            return;
        }
    }
}

struct Edge {
    process: Running,
    addr: SocketAddr,
    admin: SocketAddr,
}

fn start_edge(dir: &Path, origin: SocketAddr, cache_size_mib: u64) -> Edge {
    let addr = free_addr();
    let admin = free_addr();
    let cache = dir.join("cache");
    let config = format!(
        "cores = [1]\n[listen]\naddr = \"{addr}\"\n[admin]\naddr = \"{admin}\"\n\
         [origin]\nurl = \"http://{origin}\"\n\
         [cache]\npath = \"{}\"\nsize = \"{cache_size_mib}MiB\"\nram_size = 0\n\
         [log]\naccess_log = false\n",
        cache.display()
    );
    let file = dir.join("edgeslab.toml");
    std::fs::write(&file, config).expect("config");
    let process = spawn_edge(&file, addr);
    Edge {
        process,
        addr,
        admin,
    }
}

/// The sum of a metric's series on the edge's admin listener.
fn metric(admin: SocketAddr, name: &str) -> u64 {
    let mut s = TcpStream::connect(admin).expect("admin");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .expect("scrape");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("metrics");
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// One viewer connection: GETs a path, reads the whole body, returns its
/// length (and checks it is `want`).
struct Viewer {
    s: TcpStream,
    reader: BufReader<TcpStream>,
    sink: Vec<u8>,
}

impl Viewer {
    fn new(addr: SocketAddr) -> Viewer {
        let s = TcpStream::connect(addr).expect("connect edge");
        let reader = BufReader::with_capacity(256 << 10, s.try_clone().expect("clone"));
        Viewer {
            s,
            reader,
            sink: vec![0; 256 << 10],
        }
    }

    fn get(&mut self, path: &str, want: usize) -> (bool, usize) {
        self.s
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
            .expect("request");
        let (mut len, mut hit) = (None, false);
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).expect("head");
            assert!(!h.is_empty(), "edge closed the connection");
            if h == "\r\n" {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            }
            if lower.starts_with("cache-status:") && lower.contains("; hit") {
                hit = true;
            }
        }
        let len = len.expect("a Content-Length");
        assert_eq!(len, want, "{path}: the whole object");
        let mut left = len;
        while left > 0 {
            let n = self
                .reader
                .read(&mut self.sink[..left.min(256 << 10)])
                .expect("body");
            assert!(n > 0, "body cut short");
            left -= n;
        }
        (hit, len)
    }
}

struct Xorshift(u64);
impl Xorshift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// `DEPTH` threads on `cpu` doing `op` for `seconds`; returns the sum of
/// what `op` returned (bytes, or reads) and the seconds taken.
fn run_at_depth(
    cpu: usize,
    seconds: f64,
    op: impl Fn(usize, &mut Xorshift) -> u64 + Sync,
) -> (u64, f64) {
    let stop = AtomicBool::new(false);
    let bytes = AtomicU64::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for d in 0..depth() {
            let (stop, bytes, op) = (&stop, &bytes, &op);
            s.spawn(move || {
                pin_to(cpu);
                let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15 ^ ((d as u64 + 1) * 7919));
                while !stop.load(Relaxed) {
                    bytes.fetch_add(op(d, &mut rng), Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Relaxed);
    });
    (bytes.load(Relaxed), t.elapsed().as_secs_f64())
}

/// One viewer connection driven without blocking, by `poll_viewers`.
struct Polled {
    s: TcpStream,
    /// What has arrived of the response in flight.
    got: Vec<u8>,
    /// Once the head is in: where the body starts, and its length.
    body: Option<(usize, usize)>,
    hit: bool,
}

/// `DEPTH` viewer connections driven by one thread on CPU 0 that never
/// sleeps: each sends a GET for a random object, reads its response with
/// non-blocking reads, and sends the next. No viewer thread is ever asleep
/// in a read, so the edge's sends wake nobody. Over loopback a sleeping
/// viewer costs the sender its wake-up, which in this VM is an
/// inter-processor interrupt and an exit to the hypervisor on the edge's
/// core (`sock_def_readable`, a quarter of the shard's time): a cost a
/// viewer across a network never puts on the server. Returns the body
/// bytes received, the seconds taken and the responses that were not hits.
fn poll_viewers(addr: SocketAddr, case: &Case, seconds: f64) -> (u64, f64, u64) {
    pin_to(0);
    let mut rng = Xorshift(0x2545_F491_4F6C_DD1D);
    let send = |c: &mut Polled, rng: &mut Xorshift| {
        let n = rng.next() % case.objects;
        c.got.clear();
        c.body = None;
        c.hit = false;
        // A request this small goes out whole into an empty send buffer.
        let req = format!("GET /o/{}/{n} HTTP/1.1\r\nHost: bench\r\n\r\n", case.size);
        c.s.set_nonblocking(false).expect("blocking");
        c.s.write_all(req.as_bytes()).expect("request");
        c.s.set_nonblocking(true).expect("non-blocking");
    };
    let mut conns: Vec<Polled> = (0..depth())
        .map(|_| Polled {
            s: TcpStream::connect(addr).expect("connect edge"),
            got: Vec::with_capacity(case.size + 4096),
            body: None,
            hit: false,
        })
        .collect();
    for c in conns.iter_mut() {
        c.s.set_nodelay(true).expect("nodelay");
        send(c, &mut rng);
    }
    let (mut bytes, mut misses) = (0u64, 0u64);
    let mut buf = vec![0u8; 256 << 10];
    let t = Instant::now();
    let deadline = Duration::from_secs_f64(seconds);
    while t.elapsed() < deadline {
        for c in conns.iter_mut() {
            let n = match c.s.read(&mut buf) {
                Ok(0) => panic!("edge closed the connection"),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("read: {e}"),
            };
            c.got.extend_from_slice(&buf[..n]);
            if c.body.is_none() {
                let Some(end) = c.got.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&c.got[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .expect("a Content-Length");
                assert_eq!(len, case.size, "the whole object");
                c.hit = head
                    .lines()
                    .any(|l| l.starts_with("cache-status:") && l.contains("; hit"));
                c.body = Some((end + 4, len));
            }
            let (start, len) = c.body.expect("the head is in");
            assert!(c.got.len() <= start + len, "more than one response");
            if c.got.len() == start + len {
                bytes += len as u64;
                misses += u64::from(!c.hit);
                send(c, &mut rng);
            }
        }
    }
    (bytes, t.elapsed().as_secs_f64(), misses)
}

/// `poll_viewers` on a thread of its own, which it pins to CPU 0: this
/// thread starts edges, which must stay free to take CPU 1.
fn poll_viewers_apart(addr: SocketAddr, case: &Case, seconds: f64) -> (u64, f64, u64) {
    std::thread::scope(|s| {
        s.spawn(|| poll_viewers(addr, case, seconds))
            .join()
            .expect("viewers")
    })
}

/// A file as large as the cached set, written in full (a hole or an
/// unwritten extent would read as zeros without touching the device), for
/// O_DIRECT reads of `case.raw_read` slots at random. Removed on drop.
struct RawFile {
    path: PathBuf,
    file: std::fs::File,
    slots: u64,
    len: usize,
    payload: usize,
}

impl RawFile {
    fn create(dir: &Path, case: &Case) -> RawFile {
        let path = dir.join("raw");
        let len = case.raw_read;
        let slots = (case.objects * case.size as u64).div_ceil(case.raw_payload as u64);
        {
            let mut f = std::fs::File::create(&path).expect("raw file");
            let block: Vec<u8> = (0..(4usize << 20)).map(|i| (i * 131 % 253) as u8).collect();
            let mut left = slots * len as u64;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                f.write_all(&block[..n]).expect("write raw file");
                left -= n as u64;
            }
            f.sync_all().expect("sync raw file");
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .expect("open the raw file O_DIRECT");
        RawFile {
            path,
            file,
            slots,
            len,
            payload: case.raw_payload,
        }
    }

    /// O_DIRECT reads on CPU 1 at `DEPTH` for `seconds`. Returns the object
    /// bytes per second that delivers.
    fn read_for(&self, seconds: f64) -> f64 {
        let (slots, len) = (self.slots, self.len);
        let (reads, wall) = run_at_depth(1, seconds, |_, rng| {
            thread_local! {
                static BUF: std::cell::RefCell<Option<AlignedBuf>> = const { std::cell::RefCell::new(None) };
            }
            BUF.with(|b| {
                let mut b = b.borrow_mut();
                let buf = b.get_or_insert_with(|| AlignedBuf::new(len));
                let at = rng.next() % slots * len as u64;
                let n = self.file.read_at(buf.as_mut(), at).expect("raw read");
                assert_eq!(n, len, "a whole slot");
                1
            })
        });
        (reads * self.payload as u64) as f64 / wall
    }
}

impl Drop for RawFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A 4 KiB-aligned buffer for O_DIRECT.
struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> AlignedBuf {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("layout");
        // SAFETY: a non-zero size; freed with the same layout in Drop.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        AlignedBuf { ptr, len }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` owns `len` initialised bytes for self's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, 4096).expect("layout");
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) };
    }
}

fn main() {
    let mut seconds = 8.0;
    let mut only = None;
    let mut rounds = 3;
    let mut objects = None;
    let mut sleeping_viewers = false;
    let mut peer: Option<SocketAddr> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(seconds),
            "--only" => only = args.next(),
            "--rounds" => {
                rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(rounds);
                rounds = rounds.max(1);
            }
            "--peer" => peer = args.next().and_then(|v| v.parse().ok()),
            "--viewers" => sleeping_viewers = args.next().as_deref() == Some("sleep"),
            "--objects" => objects = args.next().and_then(|v| v.parse::<u64>().ok()),
            "--depth" => {
                let d = args.next().and_then(|v| v.parse().ok()).unwrap_or(16u64);
                DEPTH.store(d.max(1), Relaxed);
            }
            _ => {}
        }
    }
    // Only the threads are pinned: the edge, started from this thread,
    // must be free to take CPU 1.
    let base = std::env::var_os("EDGESLAB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let origin = origin();
    println!(
        "{:<16} {:>14} {:>14} {:>10} {:>12} {:>10} {:>12} {:>12}",
        "case",
        "server MiB/s",
        "raw MiB/s",
        "server/raw",
        "device reads",
        "RAM hits",
        "server CPU %",
        "viewers CPU %"
    );
    for case in &CASES {
        if only.as_deref().is_some_and(|o| !case.name.contains(o)) {
            continue;
        }
        let dir = base.join(format!("edgeslab-longtail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let case = &Case {
            objects: objects.unwrap_or(case.objects).max(1),
            ..*case
        };
        let set_mib = (case.objects * case.size as u64) >> 20;
        // Room for the set and what eviction keeps free.
        let edge = start_edge(&dir, origin, set_mib * 2 + 256);
        let path = |n: u64| format!("/o/{}/{n}", case.size);
        // Fill: every object once, from DEPTH viewers.
        let next = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..depth() {
                s.spawn(|| {
                    pin_to(0);
                    let mut v = Viewer::new(edge.addr);
                    loop {
                        let n = next.fetch_add(1, Relaxed);
                        if n >= case.objects {
                            return;
                        }
                        v.get(&path(n), case.size);
                    }
                });
            }
        });
        // Let the last segments reach the device.
        std::thread::sleep(Duration::from_secs(2));
        let raw_file = RawFile::create(&dir, case);
        eprintln!("filled; the edge is pid {}", edge.process.0.id());
        let viewers: Vec<std::sync::Mutex<Viewer>> =
            (0..if sleeping_viewers { depth() } else { 0 })
                .map(|_| std::sync::Mutex::new(Viewer::new(edge.addr)))
                .collect();
        let mut ratios = Vec::new();
        for round in 1..=rounds {
            let (reads0, ram0) = (
                metric(edge.admin, "edgeslab_cache_device_reads_total"),
                metric(edge.admin, "edgeslab_cache_ram_hits_total"),
            );
            let misses = AtomicU64::new(0);
            let cpu0 = cpu_seconds(edge.process.0.id());
            let viewers_cpu0 = cpu_seconds(std::process::id());
            let (bytes, wall) = if sleeping_viewers {
                run_at_depth(0, seconds, |d, rng| {
                    let n = rng.next() % case.objects;
                    let (hit, len) = viewers[d].lock().expect("viewer").get(&path(n), case.size);
                    if !hit {
                        misses.fetch_add(1, Relaxed);
                    }
                    len as u64
                })
            } else {
                let polled = poll_viewers_apart(edge.addr, case, seconds);
                misses.fetch_add(polled.2, Relaxed);
                (polled.0, polled.1)
            };
            let server = bytes as f64 / wall;
            let busy = (cpu_seconds(edge.process.0.id()) - cpu0) / wall * 100.0;
            let viewers_busy = (cpu_seconds(std::process::id()) - viewers_cpu0) / wall * 100.0;
            let reads = metric(edge.admin, "edgeslab_cache_device_reads_total") - reads0;
            let ram = metric(edge.admin, "edgeslab_cache_ram_hits_total") - ram0;
            // The device right after, while the edge idles: each round's
            // ratio compares two runs a few seconds apart, so a shared
            // machine's drift (the raw device here has moved by a third
            // within an hour) shows as spread between rounds, not as bias.
            let raw = raw_file.read_for(seconds);
            let mib = |b: f64| b / (1 << 20) as f64;
            println!(
                "{:<16} {:>14.0} {:>14.0} {:>10.2} {:>12} {:>10} {:>12.0} {:>12.0}",
                format!("{} #{round}", case.name),
                mib(server),
                mib(raw),
                server / raw,
                reads,
                ram,
                busy,
                viewers_busy
            );
            if let Some(peer) = peer {
                let (bytes, wall, _) = poll_viewers_apart(peer, case, seconds);
                println!(
                    "{:<16} {:>14.0} {:>14} {:>10.2}",
                    format!("  peer #{round}"),
                    mib(bytes as f64 / wall),
                    "",
                    bytes as f64 / wall / raw
                );
            }
            let missed = misses.load(Relaxed);
            if missed > 0 {
                println!("  ({missed} requests were not hits: the set did not all stay stored)");
            }
            ratios.push(server / raw);
        }
        ratios.sort_by(f64::total_cmp);
        let mid = ratios.len() / 2;
        let median = if ratios.len() % 2 == 0 {
            (ratios[mid - 1] + ratios[mid]) / 2.0
        } else {
            ratios[mid]
        };
        println!(
            "{:<16} median server/raw {:.2} over {} rounds (lowest {:.2}, highest {:.2})",
            case.name,
            median,
            ratios.len(),
            ratios[0],
            ratios[ratios.len() - 1]
        );
        drop(viewers);
        drop(edge);
        drop(raw_file);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
