//! `edgeslab stats`: a node's counters as an operator reads them, like
//! varnishstat. It scrapes the admin API's `/metrics` twice, parses the
//! Prometheus text into a `Snapshot`, and turns the pair into a `Report`
//! (totals, rates over the interval, per-shard rows, latency percentiles)
//! that `stats` prints as text or JSON and `top` draws. The parser takes
//! whatever a node or a proxy in front of it sends: it is bounded, ignores
//! what it does not know and never panics. Blocking, on the CLI's thread;
//! it never writes to the node.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Lines longer than this are not Prometheus samples we know.
const MAX_LINE: usize = 4096;
/// Distinct series kept from one scrape; the rest are ignored.
const MAX_SERIES: usize = 100_000;
/// Buckets kept per histogram (ours have about twenty).
const MAX_BUCKETS: usize = 512;
/// Shard labels above this are not ours.
const MAX_SHARD: u32 = 65_535;
/// How long one scrape of the admin API may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// The latency histograms, in seconds, by `phase`.
pub const REQUEST_DURATION: &str = "edgeslab_request_duration_seconds";
pub const FIRST_BYTE: &str = "edgeslab_first_byte_seconds";

#[derive(clap::Args, Debug, Clone)]
pub struct StatsArgs {
    /// The node's admin URL, e.g. http://127.0.0.1:9090.
    #[arg(long, value_name = "URL")]
    pub admin: String,
    /// Time between the two scrapes that rates are computed over, e.g. 500ms.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("cannot reach the admin API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("terminal: {0}")]
    Terminal(std::io::Error),
    #[error("writing the output: {0}")]
    Output(std::io::Error),
}

/// Labels of one series, sorted by name, without `shard` and `le`.
type Labels = Vec<(String, String)>;

/// One scrape of `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Counters and gauges: value per shard (`None` when unlabelled).
    series: BTreeMap<(String, Labels), BTreeMap<Option<u32>, f64>>,
    /// Histogram buckets summed over shards, keyed by the base name.
    histograms: BTreeMap<(String, Labels), Histogram>,
}

impl Snapshot {
    /// Parses Prometheus text (0.0.4); lines it does not understand are skipped.
    pub fn parse(text: &str) -> Snapshot {
        let mut snap = Snapshot::default();
        for line in text.lines() {
            if line.len() > MAX_LINE {
                continue;
            }
            let Some(sample) = Sample::parse(line) else {
                continue;
            };
            snap.add(sample);
        }
        snap
    }

    fn add(&mut self, s: Sample) {
        let mut shard = None;
        let mut le = None;
        let mut labels = Labels::new();
        for (k, v) in s.labels {
            match k.as_str() {
                "shard" => match v.parse::<u32>() {
                    Ok(n) if n <= MAX_SHARD => shard = Some(n),
                    _ => return,
                },
                "le" => le = Some(v),
                _ => labels.push((k, v)),
            }
        }
        labels.sort();
        let full = self.series.len() + self.histograms.len() >= MAX_SERIES;
        if let (Some(base), Some(le)) = (s.name.strip_suffix("_bucket"), le) {
            let upper = match le.as_str() {
                "+Inf" | "Inf" | "inf" | "+inf" => f64::INFINITY,
                other => match other.parse::<f64>() {
                    Ok(v) if v.is_finite() => v,
                    _ => return,
                },
            };
            if !s.value.is_finite() || s.value < 0.0 {
                return;
            }
            let key = (base.to_string(), labels);
            if full && !self.histograms.contains_key(&key) {
                return;
            }
            self.histograms.entry(key).or_default().add(upper, s.value);
            return;
        }
        if !s.value.is_finite() {
            return;
        }
        let key = (s.name, labels);
        if full && !self.series.contains_key(&key) {
            return;
        }
        *self
            .series
            .entry(key)
            .or_default()
            .entry(shard)
            .or_default() += s.value;
    }

    /// A series summed over shards; `None` when the node does not send it.
    pub fn total(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        Some(self.series.get(&key(name, labels))?.values().sum())
    }

    /// One shard's value of a series.
    pub fn shard(&self, name: &str, labels: &[(&str, &str)], shard: u32) -> Option<f64> {
        self.series
            .get(&key(name, labels))?
            .get(&Some(shard))
            .copied()
    }

    /// The shards that report requests, in order.
    pub fn shards(&self) -> Vec<u32> {
        match self.series.get(&key("edgeslab_requests_total", &[])) {
            Some(by_shard) => by_shard.keys().flatten().copied().collect(),
            None => Vec::new(),
        }
    }

    /// The values of `label` across the series named `name`.
    fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let series = self.series.keys().map(|(n, l)| (n, l));
        let histograms = self.histograms.keys().map(|(n, l)| (n, l));
        let mut values: Vec<String> = series
            .chain(histograms)
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, l)| l.iter().find(|(k, _)| k == label).map(|(_, v)| v.clone()))
            .collect();
        values.sort();
        values.dedup();
        values
    }

    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Histogram> {
        self.histograms.get(&key(name, labels))
    }
}

fn key(name: &str, labels: &[(&str, &str)]) -> (String, Labels) {
    let mut l: Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    (name.to_string(), l)
}

/// One sample line: `name{label="value",...} value [timestamp]`.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn parse(line: &str) -> Option<Sample> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(line.len());
        let name = &line[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        match rest.strip_prefix('{') {
            Some(after) => rest = parse_labels(after, &mut labels)?,
            // "name value": a name runs until whitespace, not into "-1".
            None if !rest.starts_with([' ', '\t']) => return None,
            None => {}
        }
        let mut fields = rest.split_whitespace();
        let value = match fields.next()? {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse::<f64>().ok()?,
        };
        // An optional timestamp, then nothing.
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().ok()?;
        }
        if fields.next().is_some() || labels.len() > 32 {
            return None;
        }
        Some(Sample {
            name: name.to_string(),
            labels,
            value,
        })
    }
}

/// Parses `a="x",b="y"}` into `labels`; returns what follows the `}`.
fn parse_labels<'a>(mut s: &'a str, labels: &mut Vec<(String, String)>) -> Option<&'a str> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Some(rest);
        }
        let (name, rest) = s.split_once('=')?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let mut chars = rest.trim_start().strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        let after = &rest.trim_start()[1 + end + 1..];
        s = after.trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

/// Cumulative buckets of one histogram: (upper bound, observations at or below it).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Histogram {
    buckets: Vec<(f64, f64)>,
}

impl Histogram {
    /// Adds a bucket's count; shards' buckets with the same bound add up.
    fn add(&mut self, upper: f64, count: f64) {
        let at = self.buckets.partition_point(|(le, _)| *le < upper);
        if let Some((le, c)) = self.buckets.get_mut(at)
            && *le == upper
        {
            *c += count;
        } else if self.buckets.len() < MAX_BUCKETS {
            self.buckets.insert(at, (upper, count));
        }
    }

    /// Observations in all (the `+Inf` bucket); `None` without it.
    pub fn count(&self) -> Option<f64> {
        self.buckets
            .last()
            .filter(|(le, _)| *le == f64::INFINITY)
            .map(|b| b.1)
    }

    /// What was observed between `before` and this one. A count that went
    /// down means the node restarted: then everything since the restart.
    pub fn since(&self, before: &Histogram) -> Histogram {
        if self.count() < before.count() {
            return self.clone();
        }
        let buckets = self
            .buckets
            .iter()
            .map(|&(le, c)| {
                let old = before
                    .buckets
                    .iter()
                    .find(|b| b.0 == le)
                    .map_or(0.0, |b| b.1);
                (le, (c - old).max(0.0))
            })
            .collect();
        Histogram { buckets }
    }

    /// The q-quantile (0..=1) as Prometheus' `histogram_quantile` computes
    /// it: linear interpolation within the bucket the rank falls in, the
    /// lowest bucket starting at 0, and the highest finite bound for ranks
    /// in the `+Inf` bucket. `None` with no observations or no `+Inf` bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) || self.buckets.len() < 2 {
            return None;
        }
        let total = self.count().filter(|&c| c > 0.0)?;
        // Counts scraped mid-update may dip; make them monotonic as Prometheus does.
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        let mut highest = 0.0f64;
        for &(le, c) in &self.buckets {
            highest = highest.max(c);
            cumulative.push((le, highest));
        }
        let rank = q * total;
        let b = cumulative.iter().position(|&(_, c)| c >= rank)?;
        let (upper, count) = cumulative[b];
        if upper == f64::INFINITY {
            return Some(cumulative[b - 1].0);
        }
        let (lower, below) = match b {
            0 if upper <= 0.0 => return Some(upper),
            0 => (0.0, 0.0),
            _ => cumulative[b - 1],
        };
        let in_bucket = count - below;
        if in_bucket <= 0.0 {
            return Some(upper);
        }
        Some(lower + (upper - lower) * (rank - below) / in_bucket)
    }
}

/// Two scrapes and the time between them.
pub struct Interval<'a> {
    pub before: &'a Snapshot,
    pub after: &'a Snapshot,
    pub seconds: f64,
}

impl Interval<'_> {
    /// How much a counter grew (a counter that went down restarted at 0).
    fn increase(&self, name: &str, labels: &[(&str, &str)], shard: Option<u32>) -> Option<f64> {
        let read = |s: &Snapshot| match shard {
            None => s.total(name, labels),
            Some(n) => s.shard(name, labels, n),
        };
        let after = read(self.after)?;
        let before = read(self.before).unwrap_or(0.0);
        Some(if after < before {
            after
        } else {
            after - before
        })
    }

    fn per_second(&self, name: &str, labels: &[(&str, &str)], shard: Option<u32>) -> Option<f64> {
        if self.seconds <= 0.0 {
            return None;
        }
        Some(self.increase(name, labels, shard)? / self.seconds)
    }

    /// hits / (hits + misses) grown over the interval.
    fn hit_ratio(&self, shard: Option<u32>) -> Option<f64> {
        ratio(
            self.increase("edgeslab_cache_hits_total", &[], shard)?,
            self.increase("edgeslab_cache_misses_total", &[], shard)?,
        )
    }
}

/// a / (a + b), when there is anything to divide.
fn ratio(a: f64, b: f64) -> Option<f64> {
    (a + b > 0.0).then(|| a / (a + b))
}

/// A counter's value and its rate.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Counter {
    pub total: Option<f64>,
    pub per_second: Option<f64>,
}

/// Everything `stats` prints and `top` draws.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub admin: String,
    pub interval_seconds: f64,
    pub uptime_seconds: Option<f64>,
    pub requests: Counter,
    pub hits: Counter,
    pub misses: Counter,
    pub passes: Counter,
    /// hits / (hits + misses) over the interval, and since the node started.
    pub hit_ratio: Option<f64>,
    pub hit_ratio_since_start: Option<f64>,
    pub sent_bytes: Counter,
    /// By status class ("2xx", …).
    pub responses: BTreeMap<String, Counter>,
    pub connections_open: Option<f64>,
    pub origin_requests: Counter,
    /// reused / (reused + opened) origin connections, over the interval and since start.
    pub origin_reuse_ratio: Option<f64>,
    pub origin_reuse_ratio_since_start: Option<f64>,
    pub config_generation: Option<f64>,
    pub shards: Vec<ShardRow>,
    /// Over the interval, by phase; empty when the node has no histograms.
    pub latency: Vec<PhaseLatency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShardRow {
    pub shard: u32,
    pub requests_per_second: Option<f64>,
    pub hit_ratio: Option<f64>,
    pub connections_open: Option<f64>,
    pub sent_bytes_per_second: Option<f64>,
}

/// p50, p90, p99 in seconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

impl Percentiles {
    fn of(h: Option<&Histogram>) -> Percentiles {
        let q = |q| h.and_then(|h| h.quantile(q));
        Percentiles {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseLatency {
    pub phase: String,
    pub requests_per_second: Option<f64>,
    pub total: Percentiles,
    pub first_byte: Percentiles,
}

impl Report {
    /// The report for two scrapes; `now_unix` dates the uptime.
    pub fn new(admin: &str, iv: &Interval<'_>, now_unix: f64) -> Report {
        let after = iv.after;
        let counter = |name: &str, labels: &[(&str, &str)]| Counter {
            total: after.total(name, labels),
            per_second: iv.per_second(name, labels, None),
        };
        let total = |name: &str| after.total(name, &[]);
        let grown = |name: &str| iv.increase(name, &[], None);
        let responses = after
            .label_values("edgeslab_responses_total", "class")
            .into_iter()
            .map(|class| {
                let c = counter("edgeslab_responses_total", &[("class", &class)]);
                (class, c)
            })
            .collect();
        let shards = after
            .shards()
            .into_iter()
            .map(|n| ShardRow {
                shard: n,
                requests_per_second: iv.per_second("edgeslab_requests_total", &[], Some(n)),
                hit_ratio: iv.hit_ratio(Some(n)),
                connections_open: after.shard("edgeslab_connections_active", &[], n),
                sent_bytes_per_second: iv.per_second("edgeslab_sent_bytes_total", &[], Some(n)),
            })
            .collect();
        const REUSED: &str = "edgeslab_origin_connections_reused_total";
        const OPENED: &str = "edgeslab_origin_connections_opened_total";
        Report {
            admin: admin.to_string(),
            interval_seconds: iv.seconds,
            uptime_seconds: total("process_start_time_seconds").map(|s| (now_unix - s).max(0.0)),
            requests: counter("edgeslab_requests_total", &[]),
            hits: counter("edgeslab_cache_hits_total", &[]),
            misses: counter("edgeslab_cache_misses_total", &[]),
            passes: counter("edgeslab_passes_total", &[]),
            hit_ratio: iv.hit_ratio(None),
            hit_ratio_since_start: ratio(
                total("edgeslab_cache_hits_total").unwrap_or(0.0),
                total("edgeslab_cache_misses_total").unwrap_or(0.0),
            ),
            sent_bytes: counter("edgeslab_sent_bytes_total", &[]),
            responses,
            connections_open: total("edgeslab_connections_active"),
            origin_requests: counter("edgeslab_upstream_requests_total", &[]),
            origin_reuse_ratio: ratio(grown(REUSED).unwrap_or(0.0), grown(OPENED).unwrap_or(0.0)),
            origin_reuse_ratio_since_start: ratio(
                total(REUSED).unwrap_or(0.0),
                total(OPENED).unwrap_or(0.0),
            ),
            config_generation: total("edgeslab_config_generation"),
            shards,
            latency: latency(iv),
        }
    }
}

/// Percentiles per phase over the interval; the usual phases first.
fn latency(iv: &Interval<'_>) -> Vec<PhaseLatency> {
    let mut phases = iv.after.label_values(REQUEST_DURATION, "phase");
    phases.extend(iv.after.label_values(FIRST_BYTE, "phase"));
    let order = |p: &String| {
        let known = ["hit", "miss", "pass", "refused"];
        (
            known.iter().position(|k| k == p).unwrap_or(known.len()),
            p.clone(),
        )
    };
    phases.sort_by_key(order);
    phases.dedup();
    let since = |name: &str, phase: &str| {
        let labels = [("phase", phase)];
        let after = iv.after.histogram(name, &labels)?;
        Some(match iv.before.histogram(name, &labels) {
            Some(before) => after.since(before),
            None => after.clone(),
        })
    };
    phases
        .into_iter()
        .map(|phase| {
            let total = since(REQUEST_DURATION, &phase);
            let first_byte = since(FIRST_BYTE, &phase);
            PhaseLatency {
                requests_per_second: total
                    .as_ref()
                    .and_then(Histogram::count)
                    .filter(|_| iv.seconds > 0.0)
                    .map(|c| c / iv.seconds),
                total: Percentiles::of(total.as_ref()),
                first_byte: Percentiles::of(first_byte.as_ref()),
                phase,
            }
        })
        .collect()
}

/// One URL's misses, as `/stats/misses` lists them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Miss {
    pub url: String,
    pub count: u64,
}

#[derive(Deserialize)]
struct MissList {
    misses: Vec<Miss>,
}

/// A blocking client of one node's admin API.
pub struct AdminClient {
    agent: ureq::Agent,
    pub base: String,
}

impl AdminClient {
    pub fn new(admin: &str) -> AdminClient {
        let base = admin.trim_end_matches('/');
        let base = match base.contains("://") {
            true => base.to_string(),
            false => format!("http://{base}"),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(SCRAPE_TIMEOUT))
            .build()
            .into();
        AdminClient { agent, base }
    }

    pub fn metrics(&self) -> Result<Snapshot, StatsError> {
        let url = format!("{}/metrics", self.base);
        let unreachable = |e: ureq::Error| StatsError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        };
        let mut resp = self.agent.get(&url).call().map_err(unreachable)?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().map_err(unreachable)?;
        if status != 200 {
            let body = text.trim().chars().take(200).collect();
            return Err(StatsError::Status { url, status, body });
        }
        Ok(Snapshot::parse(&text))
    }

    /// The most missed URLs; `None` when the node does not list them.
    pub fn misses(&self) -> Option<Vec<Miss>> {
        let mut resp = self
            .agent
            .get(format!("{}/stats/misses", self.base))
            .call()
            .ok()?;
        if resp.status().as_u16() != 200 {
            return None;
        }
        let list: MissList = serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()?;
        Some(list.misses.into_iter().take(20).collect())
    }

    /// Scrapes twice, `interval` apart, and reports on the pair.
    pub fn report(&self, interval: Duration) -> Result<Report, StatsError> {
        let before = self.metrics()?;
        let start = Instant::now();
        std::thread::sleep(interval);
        let after = self.metrics()?;
        let iv = Interval {
            before: &before,
            after: &after,
            seconds: start.elapsed().as_secs_f64(),
        };
        Ok(Report::new(&self.base, &iv, unix_now()))
    }
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `edgeslab stats`: one report, as text or JSON.
pub fn stats(args: &StatsArgs, out: &mut impl Write) -> Result<(), StatsError> {
    let report = AdminClient::new(&args.admin).report(args.interval)?;
    let text = match args.json {
        true => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
        false => render_text(&report),
    };
    out.write_all(text.as_bytes()).map_err(StatsError::Output)
}

/// The varnishstat-like text: totals, then one row per shard.
pub fn render_text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "edgeslab stats  {}  (rates over {:.2} s)\n",
        r.admin, r.interval_seconds
    );
    // Counters: the total and its rate; ratios: since start and over the interval.
    let _ = writeln!(
        s,
        "{:<24} {:>16} {:>16}",
        "TOTALS", "since start", "interval"
    );
    let mut row = |name: &str, value: String, rate: String| {
        let _ = writeln!(s, "{name:<24} {value:>16} {rate:>16}");
    };
    let count = |c: &Counter| {
        (
            dash(c.total, |v| format!("{v:.0}")),
            dash(c.per_second, |v| format!("{v:.1}/s")),
        )
    };
    row(
        "uptime",
        dash(r.uptime_seconds, duration_words),
        String::new(),
    );
    for (name, c) in [
        ("requests", &r.requests),
        ("hits", &r.hits),
        ("misses", &r.misses),
        ("passes", &r.passes),
    ] {
        let (v, p) = count(c);
        row(name, v, p);
    }
    row(
        "hit ratio",
        dash(r.hit_ratio_since_start, percent),
        dash(r.hit_ratio, percent),
    );
    row(
        "sent",
        dash(r.sent_bytes.total, bytes),
        dash(r.sent_bytes.per_second, |v| bytes(v) + "/s"),
    );
    for (class, c) in &r.responses {
        let (v, p) = count(c);
        row(&format!("responses {class}"), v, p);
    }
    row(
        "connections open",
        dash(r.connections_open, |v| format!("{v:.0}")),
        String::new(),
    );
    let (v, p) = count(&r.origin_requests);
    row("origin requests", v, p);
    row(
        "origin reuse",
        dash(r.origin_reuse_ratio_since_start, percent),
        dash(r.origin_reuse_ratio, percent),
    );
    row(
        "config generation",
        dash(r.config_generation, |v| format!("{v:.0}")),
        String::new(),
    );
    let _ = writeln!(
        s,
        "\n{:<8} {:>12} {:>10} {:>12} {:>14}",
        "SHARD", "req/s", "hit ratio", "connections", "sent/s"
    );
    for sh in &r.shards {
        let _ = writeln!(
            s,
            "{:<8} {:>12} {:>10} {:>12} {:>14}",
            sh.shard,
            dash(sh.requests_per_second, |v| format!("{v:.1}")),
            dash(sh.hit_ratio, percent),
            dash(sh.connections_open, |v| format!("{v:.0}")),
            dash(sh.sent_bytes_per_second, |v| bytes(v) + "/s"),
        );
    }
    if !r.latency.is_empty() {
        let _ = writeln!(s, "\n{}", latency_header());
        for p in &r.latency {
            let _ = writeln!(s, "{}", latency_row(p));
        }
    }
    s
}

/// The latency table's columns, shared with `top`.
pub fn latency_header() -> String {
    format!(
        "{:<10} {:>8}  {:>8} {:>8} {:>8}  {:>8} {:>8} {:>8}",
        "PHASE", "req/s", "p50", "p90", "p99", "ttfb p50", "p90", "p99"
    )
}

pub fn latency_row(p: &PhaseLatency) -> String {
    let t = |v: Option<f64>| dash(v, seconds);
    format!(
        "{:<10} {:>8}  {:>8} {:>8} {:>8}  {:>8} {:>8} {:>8}",
        p.phase,
        dash(p.requests_per_second, |v| format!("{v:.1}")),
        t(p.total.p50),
        t(p.total.p90),
        t(p.total.p99),
        t(p.first_byte.p50),
        t(p.first_byte.p90),
        t(p.first_byte.p99),
    )
}

/// A figure, or "-" when the node does not report it.
pub fn dash(v: Option<f64>, show: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), show)
}

pub fn percent(r: f64) -> String {
    format!("{:.1}%", r * 100.0)
}

/// Bytes in binary units, e.g. "12.3 MiB".
pub fn bytes(v: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = v;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < units.len() {
        v /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{v:.0} B"),
        _ => format!("{v:.1} {}", units[unit]),
    }
}

/// A latency: "850µs", "12.5ms", "1.25s".
pub fn seconds(v: f64) -> String {
    match v {
        v if v < 1e-3 => format!("{:.0}µs", v * 1e6),
        v if v < 1.0 => format!("{:.1}ms", v * 1e3),
        v => format!("{v:.2}s"),
    }
}

/// An uptime: "3d 4h 5m", "4h 5m 6s", "5m 6s".
pub fn duration_words(v: f64) -> String {
    let s = v as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h) {
        (0, 0) => format!("{m}m {s}s"),
        (0, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# HELP edgeslab_requests_total Requests received from viewers.
# TYPE edgeslab_requests_total counter
edgeslab_requests_total{shard="0"} 100
edgeslab_requests_total{shard="1"} 50 1700000000000
edgeslab_cache_hits_total{shard="0"} 80
edgeslab_cache_hits_total{shard="1"} 30
edgeslab_cache_misses_total{shard="0"} 20
edgeslab_cache_misses_total{shard="1"} 10
edgeslab_responses_total{shard="0",class="2xx"} 90
edgeslab_responses_total{shard="1",class="2xx"} 45
edgeslab_responses_total{shard="0",class="5xx"} 1
edgeslab_build_info{version="0.1.0"} 1
edgeslab_config_generation 3
odd_label{path="a \"q\" \\ b",} 7
# TYPE edgeslab_request_duration_seconds histogram
edgeslab_request_duration_seconds_bucket{phase="hit",le="0.1"} 10
edgeslab_request_duration_seconds_bucket{phase="hit",le="0.5"} 30
edgeslab_request_duration_seconds_bucket{phase="hit",le="1"} 38
edgeslab_request_duration_seconds_bucket{phase="hit",le="+Inf"} 40
edgeslab_request_duration_seconds_sum{phase="hit"} 12.5
edgeslab_request_duration_seconds_count{phase="hit"} 40
"#;

    fn hist(buckets: &[(f64, f64)]) -> Histogram {
        let mut h = Histogram::default();
        for &(le, c) in buckets {
            h.add(le, c);
        }
        h
    }

    #[test]
    fn parses_counters_per_shard_and_summed() {
        let s = Snapshot::parse(SCRAPE);
        assert_eq!(s.total("edgeslab_requests_total", &[]), Some(150.0));
        assert_eq!(s.shard("edgeslab_requests_total", &[], 1), Some(50.0));
        assert_eq!(s.shards(), vec![0, 1]);
        let class = [("class", "2xx")];
        assert_eq!(s.total("edgeslab_responses_total", &class), Some(135.0));
        assert_eq!(
            s.label_values("edgeslab_responses_total", "class"),
            vec!["2xx", "5xx"]
        );
        assert_eq!(s.total("edgeslab_config_generation", &[]), Some(3.0));
        assert_eq!(s.total("odd_label", &[("path", "a \"q\" \\ b")]), Some(7.0));
        assert_eq!(s.total("edgeslab_passes_total", &[]), None);
        let h = s.histogram(REQUEST_DURATION, &[("phase", "hit")]);
        assert_eq!(h.and_then(Histogram::count), Some(40.0));
        assert_eq!(
            s.total("edgeslab_request_duration_seconds_sum", &[("phase", "hit")]),
            Some(12.5)
        );
    }

    #[test]
    fn skips_garbage_and_keeps_the_good_lines() {
        let text = "\u{feff}garbage\n{shard=\"0\"} 1\nfoo{ 1\nfoo{a=\"x} 1\nfoo{a=x} 1\n\
            foo{=\"x\"} 1\nfoo{a=\"x\"}\nfoo 1 2 3\nfoo one\nfoo-1\n9foo 1\n\
            edgeslab_requests_total{shard=\"-1\"} 5\nedgeslab_requests_total{shard=\"99999999\"} 5\n\
            edgeslab_requests_total{shard=\"x\"} 5\nedgeslab_requests_total{shard=\"2\"} NaN\n\
            h_bucket{le=\"abc\"} 1\nh_bucket{le=\"1\"} -3\nh_bucket{le=\"NaN\"} 3\n\
            édgeslab 1\n\t\n#\n# TYPE\nedgeslab_requests_total{shard=\"3\"} 9\n";
        let s = Snapshot::parse(text);
        assert_eq!(s.shards(), vec![3]);
        assert_eq!(s.total("edgeslab_requests_total", &[]), Some(9.0));
        assert_eq!(s.total("foo", &[]), None);
        assert!(s.histogram("h", &[]).is_none());
        // Every truncation of a real scrape, and random bytes, parse without panicking.
        for (i, _) in SCRAPE.char_indices() {
            let _ = Snapshot::parse(&SCRAPE[..i]);
        }
        let alphabet: Vec<char> = "ab_{}=\",\\ \n+-.1eInf#\u{e9}\u{1f600}le".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let text: String = (0..64)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = Snapshot::parse(&text);
        }
    }

    #[test]
    fn bounds_what_it_keeps() {
        let mut text = String::new();
        for i in 0..MAX_BUCKETS + 10 {
            text.push_str(&format!("h_bucket{{le=\"{i}\"}} {i}\n"));
        }
        text.push_str(&format!("long {}\n", "9".repeat(MAX_LINE)));
        let s = Snapshot::parse(&text);
        assert_eq!(s.histograms[&key("h", &[])].buckets.len(), MAX_BUCKETS);
        assert_eq!(s.total("long", &[]), None);
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        // 10 at or below 0.1 s, 20 in (0.1, 0.5], 8 in (0.5, 1], 2 above 1 s.
        let h = hist(&[(0.5, 30.0), (f64::INFINITY, 40.0), (0.1, 10.0), (1.0, 38.0)]);
        let close = |a: Option<f64>, b: f64| assert!((a.unwrap() - b).abs() < 1e-9, "{a:?} {b}");
        // rank 4 of 10 in [0, 0.1]
        close(h.quantile(0.1), 0.04);
        // rank 20: 10 into the 20 of (0.1, 0.5]
        close(h.quantile(0.5), 0.3);
        // rank 36: 6 into the 8 of (0.5, 1]
        close(h.quantile(0.9), 0.875);
        // rank 39.6 falls in +Inf: the highest finite bound
        close(h.quantile(0.99), 1.0);
        assert_eq!(h.quantile(1.5), None);
        assert_eq!(
            hist(&[(0.1, 0.0), (f64::INFINITY, 0.0)]).quantile(0.5),
            None
        );
        assert_eq!(hist(&[(0.1, 3.0), (1.0, 4.0)]).quantile(0.5), None);
        assert_eq!(hist(&[(f64::INFINITY, 4.0)]).quantile(0.5), None);
        // A dip (scraped mid-update) is flattened, as Prometheus does.
        close(
            hist(&[(0.1, 10.0), (0.2, 8.0), (f64::INFINITY, 10.0)]).quantile(0.5),
            0.05,
        );
    }

    #[test]
    fn histograms_subtract_and_survive_restarts() {
        let before = hist(&[(0.1, 10.0), (f64::INFINITY, 12.0)]);
        let after = hist(&[(0.1, 14.0), (1.0, 3.0), (f64::INFINITY, 20.0)]);
        let d = after.since(&before);
        assert_eq!(
            d.buckets,
            vec![(0.1, 4.0), (1.0, 3.0), (f64::INFINITY, 8.0)]
        );
        let restarted = hist(&[(0.1, 1.0), (f64::INFINITY, 2.0)]);
        assert_eq!(restarted.since(&after), restarted);
        // Per-shard histograms add up bucket by bucket.
        let s = Snapshot::parse(
            "x_bucket{shard=\"0\",le=\"1\"} 2\nx_bucket{shard=\"1\",le=\"1\"} 3\n\
             x_bucket{shard=\"0\",le=\"+Inf\"} 4\nx_bucket{shard=\"1\",le=\"+Inf\"} 5\n",
        );
        assert_eq!(s.histogram("x", &[]).and_then(Histogram::count), Some(9.0));
    }

    fn scrape(requests: [u64; 2], hits: [u64; 2], misses: [u64; 2], extra: &str) -> Snapshot {
        let mut t = String::new();
        for shard in 0..2 {
            t += &format!(
                "edgeslab_requests_total{{shard=\"{shard}\"}} {}\n\
                 edgeslab_cache_hits_total{{shard=\"{shard}\"}} {}\n\
                 edgeslab_cache_misses_total{{shard=\"{shard}\"}} {}\n\
                 edgeslab_connections_active{{shard=\"{shard}\"}} {}\n",
                requests[shard],
                hits[shard],
                misses[shard],
                shard + 4
            );
        }
        Snapshot::parse(&(t + extra))
    }

    #[test]
    fn rates_over_the_interval_and_since_start() {
        let before = scrape(
            [100, 100],
            [50, 50],
            [10, 10],
            "edgeslab_origin_connections_opened_total{shard=\"0\"} 10\n\
             edgeslab_origin_connections_reused_total{shard=\"0\"} 10\n\
             edgeslab_sent_bytes_total{shard=\"0\"} 1000\n",
        );
        let after = scrape(
            [300, 140],
            [200, 80],
            [50, 10],
            "edgeslab_origin_connections_opened_total{shard=\"0\"} 12\n\
             edgeslab_origin_connections_reused_total{shard=\"0\"} 16\n\
             edgeslab_sent_bytes_total{shard=\"0\"} 5000\n\
             process_start_time_seconds 1000.5\n",
        );
        let iv = Interval {
            before: &before,
            after: &after,
            seconds: 2.0,
        };
        let r = Report::new("http://n", &iv, 4600.5);
        assert_eq!(r.requests.total, Some(440.0));
        assert_eq!(r.requests.per_second, Some(120.0));
        // 180 hits and 40 misses in the interval; 280 and 60 in all.
        assert_eq!(r.hit_ratio, Some(180.0 / 220.0));
        assert_eq!(r.hit_ratio_since_start, Some(280.0 / 340.0));
        assert_eq!(r.sent_bytes.per_second, Some(2000.0));
        assert_eq!(r.origin_reuse_ratio, Some(0.75));
        assert_eq!(r.origin_reuse_ratio_since_start, Some(16.0 / 28.0));
        assert_eq!(r.connections_open, Some(9.0));
        assert_eq!(r.uptime_seconds, Some(3600.0));
        assert_eq!(r.passes.total, None);
        assert!(r.latency.is_empty());
        assert_eq!(r.shards.len(), 2);
        assert_eq!(r.shards[0].requests_per_second, Some(100.0));
        assert_eq!(r.shards[0].hit_ratio, Some(150.0 / 190.0));
        assert_eq!(r.shards[1].hit_ratio, Some(1.0));
        assert_eq!(r.shards[1].connections_open, Some(5.0));
        assert_eq!(r.shards[1].sent_bytes_per_second, None);
        let text = render_text(&r);
        assert!(text.contains("requests"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("passes") && l.contains('-'))
        );
        // A node that restarted: its counters count from 0 again.
        let restarted = scrape([30, 0], [20, 0], [5, 0], "");
        let iv = Interval {
            before: &after,
            after: &restarted,
            seconds: 1.0,
        };
        let r = Report::new("http://n", &iv, 0.0);
        assert_eq!(r.requests.per_second, Some(30.0));
        assert_eq!(r.shards[0].hit_ratio, Some(0.8));
    }

    #[test]
    fn latency_per_phase_over_the_interval() {
        let buckets = |phase: &str, n: [u64; 3]| {
            format!(
                "{REQUEST_DURATION}_bucket{{phase=\"{phase}\",le=\"0.01\"}} {}\n\
                 {REQUEST_DURATION}_bucket{{phase=\"{phase}\",le=\"0.1\"}} {}\n\
                 {REQUEST_DURATION}_bucket{{phase=\"{phase}\",le=\"+Inf\"}} {}\n",
                n[0], n[1], n[2]
            )
        };
        let before = scrape(
            [0, 0],
            [0, 0],
            [0, 0],
            &(buckets("miss", [5, 5, 5]) + &buckets("hit", [0, 0, 0])),
        );
        let after_text = buckets("miss", [5, 15, 25])
            + &buckets("hit", [10, 10, 10])
            + &buckets("zzz", [0, 0, 0])
            + &format!(
                "{FIRST_BYTE}_bucket{{phase=\"miss\",le=\"0.1\"}} 20\n{FIRST_BYTE}_bucket{{phase=\"miss\",le=\"+Inf\"}} 20\n"
            );
        let after = scrape([0, 0], [0, 0], [0, 0], &after_text);
        let iv = Interval {
            before: &before,
            after: &after,
            seconds: 2.0,
        };
        let r = Report::new("n", &iv, 0.0);
        let phases: Vec<&str> = r.latency.iter().map(|p| p.phase.as_str()).collect();
        assert_eq!(phases, vec!["hit", "miss", "zzz"]);
        let miss = &r.latency[1];
        // 20 in the interval: 10 in (0.01, 0.1], 10 above.
        assert_eq!(miss.requests_per_second, Some(10.0));
        assert_eq!(miss.total.p50, Some(0.1));
        assert_eq!(miss.total.p90, Some(0.1));
        // First byte: 20 in [0, 0.1], no earlier scrape of it.
        assert_eq!(miss.first_byte.p50, Some(0.05));
        assert_eq!(r.latency[0].total.p50, Some(0.005));
        assert_eq!(r.latency[0].first_byte.p50, None);
        assert_eq!(r.latency[2].total.p99, None);
        assert!(latency_row(&r.latency[2]).contains('-'));
    }

    #[test]
    fn formats_figures() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
        assert_eq!(seconds(0.00085), "850µs");
        assert_eq!(seconds(0.0125), "12.5ms");
        assert_eq!(seconds(1.25), "1.25s");
        assert_eq!(duration_words(3725.0), "1h 2m 5s");
        assert_eq!(duration_words(90_061.0), "1d 1h 1m");
        assert_eq!(dash(None, percent), "-");
    }
}
