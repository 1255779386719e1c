//! Micro-benchmarks of the per-request hot path: parsing a viewer's request
//! head, building its cache key, looking the key up in a shard's index,
//! the policy's storage and reuse decisions, and assembling the bytes of a
//! hit. Each calls the functions the server calls, with the server's own
//! settings (`ProxySettings` from the default configuration), on inputs
//! built before the clock starts.
//!
//! Criterion reports time per operation. Then each operation runs
//! `TALLY_RUNS` more times between two reads of the allocation counters,
//! and a table gives allocations and bytes per operation, in the same order
//! and under the same names as criterion's output.
//!
//! Run: `cargo bench --bench micro` (criterion's options after `--`, e.g.
//! `-- --warm-up-time 1 --measurement-time 2`, or a name filter: `-- index`).

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion};
use edgeslab::cache::index::{EntryLayout, Index, Location, UNIT};
use edgeslab::cache::key::CacheKey;
use edgeslab::cache::policy::{self, Exchange, Freshness, Reuse, Serve, Stored};
use edgeslab::config::Config;
use edgeslab::gateway::viewer::{BodyShape, stored_head};
use edgeslab::http::conditional::{Precondition, evaluate};
use edgeslab::http::{
    Limits, Method, RequestHead, ResponseHead, parse_request, parse_response, status_has_no_body,
};
use edgeslab::proxy::decoded::Decoded;
use edgeslab::proxy::hit::{
    Answer, STORED_HEAD_LIMITS, encode_stored_head, inline_body, inline_slice, plain_hit_head,
    shape_stored,
};
use edgeslab::proxy::settings::{ProxySettings, origin_settings};
use edgeslab::runtime::heap::{self, Counting};
use edgeslab::spare;
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The server's allocator, counted as the server counts it, plus a tally of
/// the bytes asked for: `heap::figures` keeps live bytes, which an
/// operation that frees what it allocates leaves unchanged.
#[global_allocator]
static HEAP: Counting<RequestedBytes<mimalloc::MiMalloc>> =
    Counting(RequestedBytes(mimalloc::MiMalloc));

static REQUESTED: AtomicU64 = AtomicU64::new(0);

/// Adds the size of every allocation (and a reallocation's new size) to
/// `REQUESTED`.
struct RequestedBytes<A>(A);

// SAFETY: every call is forwarded unchanged to `A`; the tally is one atomic
// add and never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for RequestedBytes<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        REQUESTED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        REQUESTED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REQUESTED.fetch_add(new_size as u64, Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s rules.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

/// Runs of each operation between the two reads of the counters.
const TALLY_RUNS: u64 = 10_000;

/// Objects in the index of the lookup benchmarks.
const INDEXED: u64 = 1_000_000;

/// A browser's request for a stylesheet: eight fields, about 400 bytes.
const VIEWER_HEAD: &str = "GET /assets/css/site.min.css?v=20250611 HTTP/1.1\r\n\
    Host: www.example.com\r\n\
    User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
    Chrome/126.0.0.0 Safari/537.36\r\n\
    Accept: text/css,*/*;q=0.1\r\n\
    Accept-Encoding: gzip, deflate, br, zstd\r\n\
    Accept-Language: en-GB,en;q=0.9\r\n\
    Referer: https://www.example.com/products/\r\n\
    Sec-Fetch-Dest: style\r\n\
    Connection: keep-alive\r\n\r\n";

/// The origin's answer: a cacheable 1 KiB stylesheet.
const ORIGIN_HEAD: &str = "HTTP/1.1 200 OK\r\n\
    Date: Wed, 11 Jun 2025 08:00:00 GMT\r\n\
    Server: nginx\r\n\
    Content-Type: text/css; charset=utf-8\r\n\
    Content-Length: 1024\r\n\
    Last-Modified: Tue, 10 Jun 2025 17:12:45 GMT\r\n\
    ETag: \"6848684d-400\"\r\n\
    Cache-Control: public, max-age=3600\r\n\
    Access-Control-Allow-Origin: *\r\n\
    Connection: keep-alive\r\n\r\n";

const BODY_LEN: usize = 1024;

/// Everything the operations read, built once.
struct Fixture {
    settings: ProxySettings,
    viewer_head: Vec<u8>,
    request: RequestHead,
    authority: String,
    origin: ResponseHead,
    request_time: SystemTime,
    response_time: SystemTime,
    freshness: Freshness,
    /// The stored head as a fill writes it, and the head a hit parses from it.
    stored: Vec<u8>,
    stored_head: ResponseHead,
    body: Vec<u8>,
    /// A minute after the fill: fresh.
    hit_time: SystemTime,
    serve: Serve,
    key: CacheKey,
}

impl Fixture {
    fn new() -> Fixture {
        let config = Config::default();
        let settings = ProxySettings::from_config(&config, "origin.example.com".into());
        let viewer_head = VIEWER_HEAD.as_bytes().to_vec();
        let request = match parse_request(&viewer_head, &settings.limits) {
            Ok(Some((head, n))) if n == viewer_head.len() => head,
            other => panic!("the viewer's head must parse whole: {other:?}"),
        };
        let authority = request.authority.clone().expect("the head names a host");
        let origin = parse_head(ORIGIN_HEAD.as_bytes(), &origin_settings(&config).limits);
        let request_time = UNIX_EPOCH + Duration::from_secs(1_749_628_800);
        let response_time = request_time + Duration::from_millis(20);
        let exchange = Exchange {
            method: &request.method,
            request: &request.headers,
            request_time,
            response_time,
        };
        let storable = policy::assess(&exchange, &origin, &settings.policy)
            .expect("the origin's response is storable");
        // What the fill keeps (`proxy::relay`'s `fill_meta`).
        let mut kept = origin.clone();
        storable.strip_unstorable_fields(&mut kept.headers);
        let stored = stored_head(kept, response_time);
        let stored_head = parse_head(&stored, &STORED_HEAD_LIMITS);
        let hit_time = response_time + Duration::from_secs(60);
        let held = Stored {
            head: &stored_head,
            freshness: storable.freshness,
        };
        let serve = match policy::reuse(&request.headers, &held, hit_time, &settings.policy) {
            Reuse::Serve(serve) => serve,
            other => panic!("a fresh copy must be served: {other:?}"),
        };
        assert!(matches!(
            evaluate(&request.headers, &stored_head),
            Precondition::Proceed
        ));
        let key = CacheKey::new("http", &authority, &request.target, &settings.key_policy);
        Fixture {
            settings,
            viewer_head,
            request,
            authority,
            origin,
            request_time,
            response_time,
            freshness: storable.freshness,
            stored,
            stored_head,
            body: vec![b'x'; BODY_LEN],
            hit_time,
            serve,
            key,
        }
    }

    fn exchange(&self) -> Exchange<'_> {
        Exchange {
            method: &self.request.method,
            request: &self.request.headers,
            request_time: self.request_time,
            response_time: self.response_time,
        }
    }

    /// The head of a hit as `proxy::hit::serve_stored` finishes it, for a
    /// GET of a small stored object with no precondition and no Range:
    /// its preconditions, then the same two functions it calls. Returns
    /// the buffer it writes and the body's shape.
    fn hit_head(&self, mut head: ResponseHead) -> (Vec<u8>, BodyShape) {
        let req = &self.request;
        let answer = Answer::serve(&self.serve);
        let head_only = req.method == Method::Head || status_has_no_body(head.status);
        // `answer_preconditions`: none in this request (checked at setup).
        black_box(evaluate(&req.headers, &head));
        // The seed only shapes multipart boundaries (several ranges).
        let seed = self.key.hash();
        let (shape, wire_len) =
            shape_stored(req, &mut head, &answer, BODY_LEN as u64, head_only, seed);
        let out = encode_stored_head(
            &self.settings,
            req,
            &mut head,
            &answer,
            (wire_len, BODY_LEN),
            head_only,
            self.hit_time,
        );
        (out, shape)
    }
}

fn parse_head(bytes: &[u8], limits: &Limits) -> ResponseHead {
    match parse_response(bytes, limits, false) {
        Ok(Some((head, n))) if n == bytes.len() => head,
        other => panic!("the response head must parse whole: {other:?}"),
    }
}

/// A shard's index holding `INDEXED` objects of 1 KiB, sized as the store
/// sizes it (one entry per expected object, 16 MiB segments), with keys
/// that are in it and keys that are not.
struct IndexFixture {
    index: Index,
    present: Vec<u64>,
    absent: Vec<u64>,
}

impl IndexFixture {
    fn new() -> IndexFixture {
        let entry = 2 * UNIT;
        let segment = 16u64 << 20;
        let segments = INDEXED * entry / segment + 8;
        let layout = EntryLayout::new(segments, segment, 4 << 20).expect("layout");
        let mut index = Index::new(layout, INDEXED);
        let hash = |i: u64| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes());
        let per_segment = segment / entry;
        for i in 0..INDEXED {
            let loc = Location {
                slot: (i / per_segment) as u32,
                offset: ((i % per_segment) * entry) as u32,
                len: entry as u32,
                manifest: false,
            };
            index.insert(hash(i), loc);
        }
        // A full bucket drops an entry now and then: keep only keys held.
        let present: Vec<u64> = (0..INDEXED)
            .map(hash)
            .filter(|&h| index.peek(h).is_some())
            .collect();
        let absent: Vec<u64> = (INDEXED..2 * INDEXED)
            .map(hash)
            .filter(|&h| index.peek(h).is_none())
            .collect();
        IndexFixture {
            index,
            present,
            absent,
        }
    }
}

/// Cycles through `keys`, so that successive lookups land in unrelated
/// buckets, as requests for different objects do.
struct Cursor<'a> {
    keys: &'a [u64],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(keys: &'a [u64]) -> Cursor<'a> {
        Cursor { keys, at: 0 }
    }

    fn next_key(&mut self) -> u64 {
        self.at = if self.at + 1 == self.keys.len() {
            0
        } else {
            self.at + 1
        };
        self.keys[self.at]
    }
}

/// Allocations and bytes asked for per operation.
struct Row {
    name: String,
    allocations: f64,
    bytes: f64,
}

/// Allocations so far, and bytes asked for so far.
fn counters() -> (u64, u64) {
    let figures = heap::figures().expect("the counting allocator is installed");
    (figures.allocations, REQUESTED.load(Relaxed))
}

/// Registers benchmarks in one criterion group and tallies their
/// allocations in the same order.
struct Bench<'c> {
    group: BenchmarkGroup<'c, WallTime>,
    prefix: &'static str,
    rows: &'c mut Vec<Row>,
}

impl Bench<'_> {
    /// An operation whose input is ready for every run: criterion times
    /// the operation and the drop of its output, as the server pays both.
    fn run<O>(&mut self, name: &str, mut op: impl FnMut() -> O) {
        self.group.bench_function(name, |b| b.iter(&mut op));
        self.tally(name, || (), |()| op());
    }

    /// An operation that consumes its input: each run gets a fresh one,
    /// made (and the output dropped) outside the timing.
    fn run_batched<I, O>(
        &mut self,
        name: &str,
        mut input: impl FnMut() -> I,
        mut op: impl FnMut(I) -> O,
    ) {
        self.group.bench_function(name, |b| {
            b.iter_batched(&mut input, &mut op, BatchSize::SmallInput)
        });
        self.tally(name, input, op);
    }

    fn tally<I, O>(
        &mut self,
        name: &str,
        mut input: impl FnMut() -> I,
        mut op: impl FnMut(I) -> O,
    ) {
        let (mut allocations, mut bytes) = (0, 0);
        for _ in 0..TALLY_RUNS {
            let given = input();
            let before = counters();
            let out = op(black_box(given));
            let after = counters();
            black_box(out);
            allocations += after.0 - before.0;
            bytes += after.1 - before.1;
        }
        self.rows.push(Row {
            name: format!("{}/{name}", self.prefix),
            allocations: allocations as f64 / TALLY_RUNS as f64,
            bytes: bytes as f64 / TALLY_RUNS as f64,
        });
    }
}

fn group<'c>(c: &'c mut Criterion, rows: &'c mut Vec<Row>, prefix: &'static str) -> Bench<'c> {
    Bench {
        group: c.benchmark_group(prefix),
        prefix,
        rows,
    }
}

/// The viewer's request head, as `proxy::next_request` parses it.
fn request_parsing(c: &mut Criterion, rows: &mut Vec<Row>, f: &Fixture) {
    let mut g = group(c, rows, "request");
    g.run("parse_request", || {
        parse_request(black_box(&f.viewer_head), black_box(&f.settings.limits))
    });
    g.group.finish();
}

/// The cache key: `CacheKey::new` under the default key policy (its
/// xxh3 hash is computed there), and the key as the proxy builds it,
/// through the request's behaviour (the default one: `Accept-Encoding`
/// normalised into the key).
fn cache_keys(c: &mut Criterion, rows: &mut Vec<Row>, f: &Fixture) {
    let mut g = group(c, rows, "key");
    let req = &f.request;
    g.run("new_and_hash", || {
        let key = CacheKey::new(
            "http",
            black_box(&f.authority),
            black_box(&req.target),
            black_box(&f.settings.key_policy),
        );
        black_box(key.hash());
        key
    });
    g.run("behavior_cache_key", || {
        let req = black_box(req);
        let key = f
            .settings
            .behaviors
            .select(req.path())
            .cache_key("http", &f.authority, req);
        black_box(key.hash());
        key
    });
    g.group.finish();
}

/// Index lookups among `INDEXED` objects: `lookup` (the store's, which
/// counts the access) on held and absent keys, and `peek` on held ones.
fn index_lookups(c: &mut Criterion, rows: &mut Vec<Row>, ix: &mut IndexFixture) {
    let mut g = group(c, rows, "index");
    let IndexFixture {
        index,
        present,
        absent,
    } = ix;
    let mut hits = Cursor::new(present);
    g.run("lookup_hit", || index.lookup(black_box(hits.next_key())));
    let mut misses = Cursor::new(absent);
    g.run("lookup_miss", || index.lookup(black_box(misses.next_key())));
    let mut peeks = Cursor::new(present);
    g.run("peek_hit", || index.peek(black_box(peeks.next_key())));
    g.group.finish();
}

/// The policy: may the origin's response be stored, and until when is
/// it fresh (`assess`, as `proxy::forward` asks it); may the stored copy
/// answer this request now (`reuse`, as `proxy::hit` asks it).
fn policy_decisions(c: &mut Criterion, rows: &mut Vec<Row>, f: &Fixture) {
    let mut g = group(c, rows, "policy");
    let exchange = f.exchange();
    g.run("assess", || {
        policy::assess(
            black_box(&exchange),
            black_box(&f.origin),
            black_box(&f.settings.policy),
        )
    });
    let stored = Stored {
        head: &f.stored_head,
        freshness: f.freshness,
    };
    g.run("reuse_fresh", || {
        policy::reuse(
            black_box(&f.request.headers),
            black_box(&stored),
            black_box(f.hit_time),
            black_box(&f.settings.policy),
        )
    });
    g.group.finish();
}

/// A hit on a 1 KiB object: parsing its stored head (`proxy::hit::find`),
/// then the head for the viewer, alone and with the body as the server
/// writes it (beside the head in one sendmsg).
fn hit_assembly(c: &mut Criterion, rows: &mut Vec<Row>, f: &Fixture) {
    let mut g = group(c, rows, "hit");
    g.run("parse_stored_head", || {
        parse_response(black_box(&f.stored), &STORED_HEAD_LIMITS, false)
    });
    let head = || f.stored_head.clone();
    // The server gives the buffer back once it is written.
    g.run_batched("encode_head", head, |head| {
        let out = f.hit_head(head).0;
        let len = black_box(&out).len();
        spare::give(out);
        len
    });
    // A whole body goes out from where it is, beside the head (one
    // sendmsg); ranges are copied behind it.
    g.run_batched("head_and_body", head, |head| {
        let (mut out, shape) = f.hit_head(head);
        let body = black_box(&f.body);
        let len = match inline_slice(body, &shape) {
            Some(slice) => black_box(&out).len() + black_box(slice).len(),
            None => {
                inline_body(body, &shape, &mut out);
                black_box(&out).len()
            }
        };
        spare::give(out);
        len
    });
    // Most hits take the decoded head's pre-encoded prefix instead (a
    // whole 200 to a GET with no precondition and no range).
    let decoded = Decoded::new(f.stored_head.clone());
    let answer = Answer::serve(&f.serve);
    g.run("plain_head", || {
        let out = plain_hit_head(
            &f.settings,
            black_box(&f.request),
            black_box(&decoded),
            &answer,
            BODY_LEN as u64,
        )
        .expect("a plain hit");
        let len = black_box(&out).len();
        spare::give(out);
        len
    });
    g.group.finish();
}

fn print_rows(rows: &[Row]) {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    println!("\nAllocations per operation ({TALLY_RUNS} runs each; bytes as requested):");
    println!(
        "{:width$}  {:>14}  {:>10}",
        "operation", "allocations/op", "bytes/op"
    );
    for r in rows {
        println!(
            "{:width$}  {:>14.2}  {:>10.1}",
            r.name, r.allocations, r.bytes
        );
    }
}

fn main() {
    let fixture = Fixture::new();
    let mut index = IndexFixture::new();
    let mut rows = Vec::new();
    let mut c = Criterion::default().configure_from_args();
    request_parsing(&mut c, &mut rows, &fixture);
    cache_keys(&mut c, &mut rows, &fixture);
    index_lookups(&mut c, &mut rows, &mut index);
    policy_decisions(&mut c, &mut rows, &fixture);
    hit_assembly(&mut c, &mut rows, &fixture);
    c.final_summary();
    print_rows(&rows);
}
