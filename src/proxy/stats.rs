//! What the request pipeline counts, per shard: requests by cache phase,
//! responses by status class, bytes, and viewer connections. Only the owning
//! shard writes its counters (relaxed atomics); the admin listener reads them
//! from another shard when scraped. Each shard's block is padded to its own
//! cache lines so that one shard's writes never invalidate another's.

use crossbeam_utils::CachePadded;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    /// Misses for a URL whose responses vary, whose variant was not stored
    /// (also counted in `misses`).
    pub vary_misses: AtomicU64,
    pub responses_2xx: AtomicU64,
    pub responses_3xx: AtomicU64,
    pub responses_4xx: AtomicU64,
    pub responses_5xx: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub origin_bytes: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub connections_active: AtomicU64,
    /// Viewers' TLS handshakes: full, resumed (tickets or session ids),
    /// and failed (bad hello, no common cipher or protocol, timeout).
    pub tls_full_handshakes: AtomicU64,
    pub tls_resumed_handshakes: AtomicU64,
    pub tls_failed_handshakes: AtomicU64,
    pub header_timeouts: AtomicU64,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: AtomicU64,
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
