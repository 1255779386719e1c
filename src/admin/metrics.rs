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
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
        "edgeslab_stored_head_decodes_total",
        "counter",
        "Stored response heads decoded from their entry (a hit on a head the shard keeps decoded adds none).",
        |m| m.viewer.stored_head_decodes.load(Relaxed),
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
        "edgeslab_sent_bytes_total",
        "counter",
        "Body bytes sent to viewers.",
        |m| m.viewer.bytes_sent.load(Relaxed),
    ),
    (
        "edgeslab_origin_received_bytes_total",
        "counter",
        "Body bytes received from origins.",
        |m| m.viewer.origin_bytes.load(Relaxed),
    ),
    (
        "edgeslab_origin_spliced_bytes_total",
        "counter",
        "Origin body bytes relayed to viewers by splice, without a copy (also in origin_received_bytes).",
        |m| m.viewer.spliced_bytes.load(Relaxed),
    ),
    (
        "edgeslab_ram_lent_bytes_total",
        "counter",
        "Body bytes of hits sent from the RAM tier's pages by reference, without a copy (also in sent_bytes).",
        |m| m.viewer.lent_bytes.load(Relaxed),
    ),
    (
        "edgeslab_connections_accepted_total",
        "counter",
        "Viewer connections accepted.",
        |m| m.viewer.connections_accepted.load(Relaxed),
    ),
    (
        "edgeslab_tls_handshakes_total",
        "counter",
        "Viewers' TLS handshakes completed in full.",
        |m| m.viewer.tls_full_handshakes.load(Relaxed),
    ),
    (
        "edgeslab_tls_resumed_handshakes_total",
        "counter",
        "Viewers' TLS handshakes that resumed a session (ticket or session id).",
        |m| m.viewer.tls_resumed_handshakes.load(Relaxed),
    ),
    (
        "edgeslab_tls_failed_handshakes_total",
        "counter",
        "Viewers' TLS handshakes that failed or timed out.",
        |m| m.viewer.tls_failed_handshakes.load(Relaxed),
    ),
    (
        "edgeslab_proxy_protocol_refused_total",
        "counter",
        "Connections refused for their PROXY protocol header (untrusted peer, missing, malformed or late).",
        |m| m.viewer.proxy_refused.load(Relaxed),
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
        "edgeslab_access_log_dropped_lines_total",
        "counter",
        "Access-log lines dropped because the log writer fell behind.",
        |m| m.viewer.access_log_dropped.load(Relaxed),
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
        "edgeslab_cache_written_bytes_total",
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
        "edgeslab_cache_fill_waits_total",
        "counter",
        "Fill pieces that waited for cache writes, which fell behind the origin.",
        |m| m.store.fill_waits.load(Relaxed),
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
        "Lookups and chunk reads answered by the RAM tier.",
        |m| m.store.ram_hits.load(Relaxed),
    ),
    (
        "edgeslab_cache_ram_chunk_hits_total",
        "counter",
        "Chunks of large objects served from the RAM tier (also in ram_hits).",
        |m| m.store.ram_chunk_hits.load(Relaxed),
    ),
    (
        "edgeslab_cache_ram_objects",
        "gauge",
        "Objects and chunks in the RAM tier.",
        |m| m.store.ram_objects.load(Relaxed),
    ),
    (
        "edgeslab_cache_ram_chunks",
        "gauge",
        "Chunks of large objects in the RAM tier (also in ram_objects).",
        |m| m.store.ram_chunks.load(Relaxed),
    ),
    (
        "edgeslab_cache_ram_chunk_bytes",
        "gauge",
        "Bytes of those chunks (also in ram_bytes), mapped outside the heap.",
        |m| m.store.ram_chunk_bytes.load(Relaxed),
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
    render_by_label(
        &mut out,
        (
            "edgeslab_responses_total",
            "Responses sent to viewers by status class.",
        ),
        "class",
        shards,
        |m| {
            [
                ("2xx", &m.viewer.responses_2xx),
                ("3xx", &m.viewer.responses_3xx),
                ("4xx", &m.viewer.responses_4xx),
                ("5xx", &m.viewer.responses_5xx),
            ]
            .to_vec()
        },
    );
    render_proxy_headers(&mut out, shards);
    render_latency(&mut out, shards);
    render_process(&mut out);
    out
}

/// `/stats/misses`: the URLs that missed most, over every shard, as
/// `{"misses":[{"url":…,"count":…},…]}`, most first.
pub fn top_misses(shards: &[ShardMetrics], shown: usize) -> String {
    let mut merged: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for m in shards {
        let Ok(top) = m.viewer.top_misses.lock() else {
            continue;
        };
        for (url, n) in top.entries() {
            *merged.entry(url.to_string()).or_default() += n;
        }
    }
    let mut list: Vec<(String, u64)> = merged.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list.truncate(shown);
    let misses: Vec<serde_json::Value> = list
        .into_iter()
        .map(|(url, count)| serde_json::json!({ "url": url, "count": count }))
        .collect();
    serde_json::json!({ "misses": misses }).to_string()
}

/// Connections that came with a PROXY protocol header, by kind.
fn render_proxy_headers(out: &mut String, shards: &[ShardMetrics]) {
    render_by_label(
        out,
        (
            "edgeslab_proxy_protocol_connections_total",
            "Connections accepted with a PROXY protocol header: v1, v2, or local (the balancer's own, e.g. a health check).",
        ),
        "kind",
        shards,
        |m| {
            [
                ("v1", &m.viewer.proxy_v1),
                ("v2", &m.viewer.proxy_v2),
                ("local", &m.viewer.proxy_local),
            ]
            .to_vec()
        },
    );
}

/// A counter per shard and per value of one more label.
fn render_by_label(
    out: &mut String,
    (name, help): (&str, &str),
    label: &str,
    shards: &[ShardMetrics],
    counters: impl Fn(&ShardMetrics) -> Vec<(&'static str, &AtomicU64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (i, m) in shards.iter().enumerate() {
        for (value, c) in counters(m) {
            let _ = writeln!(
                out,
                "{name}{{shard=\"{i}\",{label}=\"{value}\"}} {}",
                c.load(Relaxed)
            );
        }
    }
}

/// The latency histograms, summed over shards, by latency class.
fn render_latency(out: &mut String, shards: &[ShardMetrics]) {
    use crate::proxy::stats::{HistogramTotals, LATENCY_BOUNDS_US, LatencyClass};
    type Pick = fn(&crate::proxy::stats::Latency) -> &[crate::proxy::stats::Histogram; 4];
    let families: [(&str, &str, Pick); 2] = [
        (
            "edgeslab_request_duration_seconds",
            "Time from a request's head to the end of its response, by phase.",
            |l| &l.total,
        ),
        (
            "edgeslab_first_byte_seconds",
            "Time from a request's head to the first byte of its response, by phase.",
            |l| &l.first_byte,
        ),
    ];
    for (name, help, pick) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, class) in LatencyClass::ALL.iter().enumerate() {
            let mut t = HistogramTotals::default();
            for m in shards {
                pick(&m.viewer.latency)[i].add_to(&mut t);
            }
            let phase = class.as_str();
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BOUNDS_US.iter().zip(&t.buckets) {
                cumulative += n;
                let le = *bound as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{phase=\"{phase}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let count: u64 = t.buckets.iter().sum();
            let _ = writeln!(
                out,
                "{name}_bucket{{phase=\"{phase}\",le=\"+Inf\"}} {count}\n{name}_sum{{phase=\"{phase}\"}} {}\n{name}_count{{phase=\"{phase}\"}} {count}",
                t.sum_us as f64 / 1e6
            );
        }
    }
}

/// The build, and the process as the kernel sees it (the names and units
/// Prometheus client libraries use, so stock dashboards work).
fn render_process(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP edgeslab_build_info The running build (always 1).\n# TYPE edgeslab_build_info gauge\nedgeslab_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    use crate::runtime::reload::{self, ReloadResult};
    let _ = writeln!(
        out,
        "# HELP edgeslab_config_generation The configuration in force: 1 at start, one more per applied reload.\n# TYPE edgeslab_config_generation gauge\nedgeslab_config_generation {}\n# HELP edgeslab_config_reloads_total Configuration reloads (SIGHUP), applied or rejected.\n# TYPE edgeslab_config_reloads_total counter",
        reload::generation()
    );
    for r in ReloadResult::ALL {
        let _ = writeln!(
            out,
            "edgeslab_config_reloads_total{{result=\"{}\"}} {}",
            r.as_str(),
            r.count()
        );
    }
    if let Some(h) = crate::runtime::heap::figures() {
        let _ = writeln!(
            out,
            "# HELP edgeslab_heap_live_bytes Heap bytes allocated and not yet freed (the rest of the resident set is allocator reserve, I/O buffers, stacks and code).\n# TYPE edgeslab_heap_live_bytes gauge\nedgeslab_heap_live_bytes {}\n# HELP edgeslab_heap_allocations_total Heap allocations and reallocations since start.\n# TYPE edgeslab_heap_allocations_total counter\nedgeslab_heap_allocations_total {}",
            h.live_bytes, h.allocations
        );
    }
    let Some(p) = ProcessFigures::read() else {
        return;
    };
    for (name, kind, help, value) in [
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            p.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            p.resident_bytes as f64,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            p.virtual_bytes as f64,
        ),
        (
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            p.open_fds as f64,
        ),
        (
            "process_max_fds",
            "gauge",
            "The open file descriptor limit.",
            p.max_fds as f64,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            p.start_time_seconds,
        ),
        (
            "process_threads",
            "gauge",
            "Threads in the process.",
            p.threads as f64,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

/// What `/proc/self` says about this process.
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: u64,
    max_fds: u64,
    start_time_seconds: f64,
    threads: u64,
}

impl ProcessFigures {
    fn read() -> Option<ProcessFigures> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name is in parentheses and may hold spaces: the
        // fields that follow are counted from the last ')'.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // After the name: state is field 3, so field n is at index n - 3.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        // SAFETY: sysconf reads a constant of the running system.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse::<u64>()
            .ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()?
            .lines()
            .find(|l| l.starts_with("Max open files"))?
            .split_whitespace()
            .nth(3)?
            .parse()
            .ok()?;
        Some(ProcessFigures {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
            start_time_seconds: boot as f64 + field(22)? as f64 / ticks,
            threads: field(20)?,
            open_fds,
            max_fds,
        })
    }
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
        assert!(text.contains(&format!(
            "edgeslab_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        let rss = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("resident memory");
        assert!(rss > 1e6, "{rss}");
        let fds = text
            .lines()
            .find_map(|l| l.strip_prefix("process_open_fds "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("open fds");
        assert!(fds >= 3.0, "{fds}");
    }
}
