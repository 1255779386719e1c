//! What the request pipeline counts, per shard: requests by cache phase,
//! responses by status class, bytes, and viewer connections. Only the owning
//! shard writes its counters (relaxed atomics); the admin listener reads them
//! from another shard when scraped. Each shard's block is padded to its own
//! cache lines so that one shard's writes never invalidate another's.

use crate::gateway::decision::CachePhase;
use crossbeam_utils::CachePadded;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct ViewerCounters {
    pub requests: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale: AtomicU64,
    pub passes: AtomicU64,
    /// Misses answered from another request's fetch of the same key.
    pub collapsed: AtomicU64,
    /// Misses that fetched alone because their key was just found
    /// uncacheable.
    pub hit_for_pass: AtomicU64,
    /// Hits on one of a URL's `Vary` variants (also counted in `hits`).
    pub variant_hits: AtomicU64,
    /// Stored entries found but covered by an invalidation (then a miss).
    pub invalidated_hits: AtomicU64,
    /// Stored heads decoded from their entry's bytes: on the first two hits
    /// of a stored copy a shard serves, and then while it keeps the decoded
    /// head, no more (`proxy::decoded`).
    pub stored_head_decodes: AtomicU64,
    /// Misses for a URL whose responses vary, whose variant was not stored
    /// (also counted in `misses`).
    pub vary_misses: AtomicU64,
    pub responses_2xx: AtomicU64,
    pub responses_3xx: AtomicU64,
    pub responses_4xx: AtomicU64,
    pub responses_5xx: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub origin_bytes: AtomicU64,
    /// Origin body bytes that went to viewers by splice, never entering
    /// user space (also counted in `origin_bytes`).
    pub spliced_bytes: AtomicU64,
    /// Body bytes of hits whose pages the RAM tier lent to the viewer's
    /// socket, never copied (also counted in `bytes_sent`).
    pub lent_bytes: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_active: AtomicU64,
    /// Viewers' TLS handshakes: full, resumed (tickets or session ids),
    /// and failed (bad hello, no common cipher or protocol, timeout).
    pub tls_full_handshakes: AtomicU64,
    pub tls_resumed_handshakes: AtomicU64,
    pub tls_failed_handshakes: AtomicU64,
    /// Connections refused for their PROXY protocol header: from an
    /// untrusted peer, missing, malformed or late.
    pub proxy_refused: AtomicU64,
    /// Connections accepted with a PROXY header, by kind.
    pub proxy_v1: AtomicU64,
    pub proxy_v2: AtomicU64,
    pub proxy_local: AtomicU64,
    pub header_timeouts: AtomicU64,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: AtomicU64,
    /// How long requests took, in full and to their first response byte.
    pub latency: Latency,
    /// The URLs that missed most (read by the admin API's /stats/misses).
    pub top_misses: std::sync::Mutex<TopMisses>,
}

/// Upper bounds of the latency buckets, in microseconds (0.5 ms to 10 s;
/// slower lands in the last, unbounded one).
pub const LATENCY_BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// A latency histogram: a count per bucket (not cumulative; the last is
/// the one above every bound) and the sum of the values.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn record(&self, us: u64) {
        let i = LATENCY_BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// Adds this histogram's counts into `into` (bucket by bucket, then the
    /// sum in microseconds).
    pub fn add_to(&self, into: &mut HistogramTotals) {
        for (t, b) in into.buckets.iter_mut().zip(&self.buckets) {
            *t += b.load(Relaxed);
        }
        into.sum_us += self.sum_us.load(Relaxed);
    }
}

/// Histograms summed over shards, for rendering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramTotals {
    pub buckets: [u64; LATENCY_BOUNDS_US.len() + 1],
    pub sum_us: u64,
}

/// The phases latency is reported by: cache phases grouped by where the
/// answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyClass {
    /// From the cache (fresh, stale within a window, revalidated).
    Hit,
    /// Fetched to be stored (misses, stale, coalesced, parts).
    Miss,
    /// Passed to the origin, not stored.
    Pass,
    /// Answered before routing (malformed, refused).
    Refused,
}

impl LatencyClass {
    pub const ALL: [LatencyClass; 4] = [
        LatencyClass::Hit,
        LatencyClass::Miss,
        LatencyClass::Pass,
        LatencyClass::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LatencyClass::Hit => "hit",
            LatencyClass::Miss => "miss",
            LatencyClass::Pass => "pass",
            LatencyClass::Refused => "refused",
        }
    }

    pub fn of(phase: CachePhase) -> LatencyClass {
        use CachePhase::*;
        match phase {
            Hit | HitStale | Revalidated | StaleIfError => LatencyClass::Hit,
            Partial | Miss | VaryMiss | Stale | CollapsedMiss | CollapsedStale
            | CollapsedVaryMiss => LatencyClass::Miss,
            PassMethod | PassRequest => LatencyClass::Pass,
            Refused => LatencyClass::Refused,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Per latency class: total time and time to the first response byte.
#[derive(Debug, Default)]
pub struct Latency {
    pub total: [Histogram; 4],
    pub first_byte: [Histogram; 4],
}

impl Latency {
    /// One request: its whole time and, when anything was sent, the time
    /// to its first byte.
    pub fn record(&self, class: LatencyClass, total: Duration, first_byte: Option<Duration>) {
        self.total[class.index()].record(total.as_micros() as u64);
        if let Some(f) = first_byte {
            self.first_byte[class.index()].record(f.as_micros() as u64);
        }
    }
}

/// URLs tracked per shard for the top misses (space-saving: the least
/// counted is replaced, so heavy hitters stay; a newcomer inherits the
/// count it replaced as its possible over-count).
const TOP_MISSES: usize = 64;

/// One tracked URL: its count, of which at most `over` may belong to the
/// URLs it replaced.
#[derive(Debug)]
struct Tracked {
    url: String,
    /// `url_tag(url)`: compared before the bytes, since a miss is checked
    /// against every tracked URL.
    tag: u64,
    count: u64,
    over: u64,
}

/// A 64-bit FNV-1a over the bytes of `parts` in turn: the same for a URL
/// however it is split, so host and target need not be joined to look one
/// up. URLs are short and this runs once per miss; the table stays small.
fn url_tag(parts: [&str; 2]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.iter().flat_map(|p| p.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The URLs that missed most on one shard, approximately.
#[derive(Debug, Default)]
pub struct TopMisses {
    entries: Vec<Tracked>,
}

impl TopMisses {
    /// Counts a miss of `host` followed by `target`. Recorded on every
    /// miss, so the URL is compared in its two parts, and a replaced
    /// entry's `String` takes the new URL in place: nothing is allocated
    /// once the table is full.
    pub fn record(&mut self, host: &str, target: &str) {
        let tag = url_tag([host, target]);
        let is_url = |e: &Tracked| {
            e.tag == tag
                && e.url.len() == host.len() + target.len()
                && e.url.starts_with(host)
                && e.url.ends_with(target)
        };
        if let Some(e) = self.entries.iter_mut().find(|e| is_url(e)) {
            e.count += 1;
            return;
        }
        if self.entries.len() < TOP_MISSES {
            self.entries.push(Tracked {
                url: [host, target].concat(),
                tag,
                count: 1,
                over: 0,
            });
            return;
        }
        if let Some(least) = self.entries.iter_mut().min_by_key(|e| e.count) {
            least.url.clear();
            least.url.push_str(host);
            least.url.push_str(target);
            least.tag = tag;
            least.over = least.count;
            least.count += 1;
        }
    }

    /// Each URL with the misses it certainly had (its count less its
    /// possible over-count).
    pub fn entries(&self) -> impl Iterator<Item = (&str, u64)> {
        self.entries
            .iter()
            .map(|e| (e.url.as_str(), e.count - e.over))
    }
}

/// One shard's viewer counters, shared with the admin listener.
pub type ViewerStats = Arc<CachePadded<ViewerCounters>>;

impl ViewerCounters {
    pub fn count_status(&self, status: u16) {
        let c = match status {
            200..=299 => &self.responses_2xx,
            300..=399 => &self.responses_3xx,
            400..=499 => &self.responses_4xx,
            _ => &self.responses_5xx,
        };
        c.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_count_by_class() {
        let s = ViewerCounters::default();
        for st in [200, 204, 301, 404, 431, 502, 599] {
            s.count_status(st);
        }
        let load = |c: &AtomicU64| c.load(Relaxed);
        assert_eq!(
            [
                load(&s.responses_2xx),
                load(&s.responses_3xx),
                load(&s.responses_4xx),
                load(&s.responses_5xx)
            ],
            [2, 1, 2, 2]
        );
    }

    #[test]
    fn latencies_land_in_their_buckets() {
        let h = Histogram::default();
        for us in [0, 500, 501, 9_999, 10_000_000, 10_000_001] {
            h.record(us);
        }
        let mut t = HistogramTotals::default();
        h.add_to(&mut t);
        assert_eq!(t.buckets[0], 2, "0 and 500 are within 0.5 ms");
        assert_eq!(t.buckets[1], 1);
        assert_eq!(t.buckets[4], 1, "9.999 ms is within 10 ms");
        assert_eq!(t.buckets[13], 1, "10 s exactly");
        assert_eq!(t.buckets[14], 1, "above every bound");
        assert_eq!(t.sum_us, 20_011_001);
        assert_eq!(
            LatencyClass::of(CachePhase::CollapsedStale),
            LatencyClass::Miss
        );
    }

    #[test]
    fn heavy_missers_stay_in_the_top() {
        let mut top = TopMisses::default();
        for i in 0..1000 {
            top.record("hot.example", "/a");
            top.record("cold.example", &format!("/{i}"));
            // The same bytes split elsewhere are the same URL.
            top.record("hot.example/", "a");
        }
        let hot = top.entries().find(|(u, _)| *u == "hot.example/a");
        assert_eq!(hot.map(|e| e.1), Some(2000));
        assert!(top.entries().count() <= TOP_MISSES);
        // A URL seen once is never reported as more.
        assert!(
            top.entries()
                .filter(|(u, _)| *u != "hot.example/a")
                .all(|(_, n)| n == 1)
        );
    }

    #[test]
    fn each_shard_block_fills_whole_cache_lines() {
        let a: ViewerStats = ViewerStats::default();
        let addr = &**a as *const ViewerCounters as usize;
        assert_eq!(addr % std::mem::align_of::<CachePadded<u8>>(), 0);
        assert_eq!(
            std::mem::size_of::<CachePadded<ViewerCounters>>()
                % std::mem::align_of::<CachePadded<u8>>(),
            0
        );
    }
}
