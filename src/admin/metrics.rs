//! The Prometheus text rendering of every shard's counters. The counters
//! belong to the layers that write them (`proxy::stats`, `upstream`,
//! `cache::store`, `cache::owner`); this module only gathers one handle
//! per shard on each and reads them when scraped.

use crate::cache::owner::CacheStats;
use crate::cache::store::StoreStats;
use crate::proxy::stats::ViewerStats;
use crate::upstream::UpstreamStats;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// Everything one shard counts. Created before the shard starts, so the
/// admin side holds the same `Arc`s.
#[derive(Clone, Debug, Default)]
pub struct ShardMetrics {
    pub viewer: ViewerStats,
    pub upstream: Arc<UpstreamStats>,
    pub store: Arc<StoreStats>,
    pub cache: Arc<CacheStats>,
}

type Getter = fn(&ShardMetrics) -> u64;

const METRICS: &[(&str, &str, &str, Getter)] = &[
    (
        "edgeslab_requests_total",
        "counter",
        "Requests received from viewers.",
        |m| m.viewer.requests.load(Relaxed),
    ),
    (
        "edgeslab_cache_hits_total",
        "counter",
        "Requests served from the cache.",
        |m| m.viewer.hits.load(Relaxed),
    ),
    (
        "edgeslab_cache_misses_total",
        "counter",
        "Cacheable requests not in the cache.",
        |m| m.viewer.misses.load(Relaxed),
    ),
    (
        "edgeslab_cache_stale_total",
        "counter",
        "Requests that found only a stale object.",
        |m| m.viewer.stale.load(Relaxed),
    ),
    (
        "edgeslab_cache_collapsed_total",
        "counter",
        "Misses answered from another request's fetch of the same key.",
        |m| m.viewer.collapsed.load(Relaxed),
    ),
    (
        "edgeslab_cache_hit_for_pass_total",
        "counter",
        "Misses that fetched alone because their key was just found uncacheable.",
        |m| m.viewer.hit_for_pass.load(Relaxed),
    ),
    (
        "edgeslab_cache_invalidated_total",
        "counter",
        "Stored entries found but covered by an invalidation (served as misses).",
        |m| m.viewer.invalidated_hits.load(Relaxed),
    ),
    (
        "edgeslab_cache_variant_hits_total",
        "counter",
        "Hits on one of a URL's Vary variants (also in hits).",
        |m| m.viewer.variant_hits.load(Relaxed),
    ),
    (
        "edgeslab_cache_vary_misses_total",
        "counter",
        "Misses for a varying URL whose selected variant was not stored (also in misses).",
        |m| m.viewer.vary_misses.load(Relaxed),
    ),
    (
        "edgeslab_passes_total",
        "counter",
        "Requests passed to the origin uncached.",
        |m| m.viewer.passes.load(Relaxed),
    ),
    (
        "edgeslab_bytes_sent_total",
        "counter",
        "Body bytes sent to viewers.",
        |m| m.viewer.bytes_sent.load(Relaxed),
    ),
    (
        "edgeslab_origin_bytes_received_total",
        "counter",
        "Body bytes received from origins.",
        |m| m.viewer.origin_bytes.load(Relaxed),
    ),
    (
        "edgeslab_connections_accepted_total",
        "counter",
        "Viewer connections accepted.",
        |m| m.viewer.connections_accepted.load(Relaxed),
    ),
    (
        "edgeslab_connections_refused_total",
        "counter",
        "Viewer connections refused over the limit.",
        |m| m.viewer.connections_refused.load(Relaxed),
    ),
    (
        "edgeslab_connections_active",
        "gauge",
        "Open viewer connections.",
        |m| m.viewer.connections_active.load(Relaxed),
    ),
    (
        "edgeslab_header_timeouts_total",
        "counter",
        "Viewers too slow to send a request head.",
        |m| m.viewer.header_timeouts.load(Relaxed),
    ),
    (
        "edgeslab_upstream_requests_total",
        "counter",
        "Requests sent to parents and origins (each hop and retry).",
        |m| m.upstream.requests.load(Relaxed),
    ),
    (
        "edgeslab_parent_requests_total",
        "counter",
        "Requests sent to a regional parent.",
        |m| m.upstream.parent_requests.load(Relaxed),
    ),
    (
        "edgeslab_upstream_failovers_total",
        "counter",
        "Times a request moved on to the next parent or origin.",
        |m| m.upstream.failovers.load(Relaxed),
    ),
    (
        "edgeslab_origin_connections_opened_total",
        "counter",
        "Origin connections opened.",
        |m| m.upstream.opened.load(Relaxed),
    ),
    (
        "edgeslab_origin_connections_reused_total",
        "counter",
        "Upstream requests sent on a pooled connection (reuse ratio: this over edgeslab_upstream_requests_total).",
        |m| m.upstream.reused.load(Relaxed),
    ),
    (
        "edgeslab_origin_failures_total",
        "counter",
        "Origin connects that failed.",
        |m| m.upstream.failures.load(Relaxed),
    ),
    (
        "edgeslab_origin_timeouts_total",
        "counter",
        "Origin responses that timed out.",
        |m| m.upstream.timeouts.load(Relaxed),
    ),
    (
        "edgeslab_cache_objects",
        "gauge",
        "Objects in the index.",
        |m| m.store.objects.load(Relaxed),
    ),
    (
        "edgeslab_cache_index_bytes",
        "gauge",
        "Bytes of the in-memory index table.",
        |m| m.store.index_bytes.load(Relaxed),
    ),
    (
        "edgeslab_cache_bytes_written_total",
        "counter",
        "Entry bytes appended to the log.",
        |m| m.store.bytes_written.load(Relaxed),
    ),
    (
        "edgeslab_cache_segments_written_total",
        "counter",
        "Segments written to the device.",
        |m| m.store.segments_written.load(Relaxed),
    ),
    (
        "edgeslab_cache_write_errors_total",
        "counter",
        "Segment writes that failed.",
        |m| m.store.write_errors.load(Relaxed),
    ),
    (
        "edgeslab_cache_read_failures_total",
        "counter",
        "Hits not served: I/O error, corruption or overwrite.",
        |m| m.cache.read_failures.load(Relaxed),
    ),
    (
        "edgeslab_cache_reclaims_total",
        "counter",
        "Segments reclaimed for reuse.",
        |m| m.store.reclaims.load(Relaxed),
    ),
    (
        "edgeslab_cache_evictions_total",
        "counter",
        "Objects evicted.",
        |m| m.store.evicted.load(Relaxed),
    ),
    (
        "edgeslab_cache_reinserted_total",
        "counter",
        "Popular objects copied forward on reclaim.",
        |m| m.store.reinserted.load(Relaxed),
    ),
    (
        "edgeslab_cache_fills_completed_total",
        "counter",
        "Responses stored completely.",
        |m| m.store.fills_completed.load(Relaxed),
    ),
    (
        "edgeslab_cache_fills_abandoned_total",
        "counter",
        "Fills dropped (truncated, too large, or failed).",
        |m| m.store.fills_abandoned.load(Relaxed),
    ),
    (
        "edgeslab_cache_remote_lookups_total",
        "counter",
        "Lookups sent to another shard that owns the key.",
        |m| m.cache.remote_lookups.load(Relaxed),
    ),
    (
        "edgeslab_cache_device_reads_total",
        "counter",
        "Hit reads that went to the device.",
        |m| m.cache.device_reads.load(Relaxed),
    ),
    (
        "edgeslab_cache_ram_hits_total",
        "counter",
        "Lookups answered by the RAM tier.",
        |m| m.store.ram_hits.load(Relaxed),
    ),
    (
        "edgeslab_cache_ram_objects",
        "gauge",
        "Objects in the RAM tier.",
        |m| m.store.ram_objects.load(Relaxed),
    ),
    (
        "edgeslab_cache_ram_bytes",
        "gauge",
        "Bytes in the RAM tier.",
        |m| m.store.ram_bytes.load(Relaxed),
    ),
    (
        "edgeslab_cache_recovered_objects",
        "gauge",
        "Objects found on the device at start-up.",
        |m| m.store.recovered.load(Relaxed),
    ),
    (
        "edgeslab_cache_checksum_failures_total",
        "counter",
        "Entries whose checksum failed during a reclaim.",
        |m| m.store.checksum_failures.load(Relaxed),
    ),
];

/// Renders every shard's counters in the Prometheus text format (0.0.4).
pub fn render(shards: &[ShardMetrics]) -> String {
    let mut out = String::with_capacity(8192);
    for (name, kind, help, get) in METRICS {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (i, m) in shards.iter().enumerate() {
            let _ = writeln!(out, "{name}{{shard=\"{i}\"}} {}", get(m));
        }
    }
    let _ = writeln!(
        out,
        "# HELP edgeslab_responses_total Responses sent to viewers by status class."
    );
    let _ = writeln!(out, "# TYPE edgeslab_responses_total counter");
    for (i, m) in shards.iter().enumerate() {
        for (class, c) in [
            ("2xx", &m.viewer.responses_2xx),
            ("3xx", &m.viewer.responses_3xx),
            ("4xx", &m.viewer.responses_4xx),
            ("5xx", &m.viewer.responses_5xx),
        ] {
            let _ = writeln!(
                out,
                "edgeslab_responses_total{{shard=\"{i}\",class=\"{class}\"}} {}",
                c.load(Relaxed)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_metric_per_shard() {
        let shards = vec![ShardMetrics::default(), ShardMetrics::default()];
        shards[1].viewer.hits.fetch_add(3, Relaxed);
        shards[0].viewer.count_status(503);
        let text = render(&shards);
        assert!(text.contains("edgeslab_cache_hits_total{shard=\"1\"} 3\n"));
        assert!(text.contains("edgeslab_cache_hits_total{shard=\"0\"} 0\n"));
        assert!(text.contains("edgeslab_responses_total{shard=\"0\",class=\"5xx\"} 1\n"));
        assert!(text.contains("# TYPE edgeslab_connections_active gauge\n"));
    }
}
