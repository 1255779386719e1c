//! The configuration: one TOML schema with defaults per role, and the only
//! source of truth for every setting. CLI flags override fields of these same
//! structs (see `main.rs`); `load` turns a file into a validated `Config` or
//! into errors that name the key and the line.

mod load;
mod units;

pub use load::{ConfigError, ConfigErrors, errors_at_keys, load_file, load_str, validate};
pub use units::{Dur, Size};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Edge,
    Regional,
}

/// Which cores run a shard: every online core, or an explicit list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Cores {
    #[default]
    All,
    List(Vec<usize>),
}

impl<'de> Deserialize<'de> for Cores {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CoresVisitor)
    }
}

/// `"all"`, a list in text (`"0,2-3"`), or an array of core numbers.
struct CoresVisitor;

impl<'de> serde::de::Visitor<'de> for CoresVisitor {
    type Value = Cores;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"all\", a core list such as \"0,2-3\", or an array such as [0, 1]")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Cores, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Cores, A::Error> {
        let mut cores = Vec::new();
        while let Some(core) = seq.next_element::<usize>()? {
            cores.push(core);
        }
        Ok(Cores::List(cores))
    }
}

impl std::str::FromStr for Cores {
    type Err = String;
    /// "all", or a CPU list like "0,2-3", read as the kernel reads one (a
    /// set: sorted, repeats merged) by the crate's one CPU-list parser.
    fn from_str(s: &str) -> Result<Self, String> {
        use crate::irq::cpus::{CpuListError, parse_cpu_list};
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(Cores::All);
        }
        match parse_cpu_list(s) {
            Ok(cores) => Ok(Cores::List(cores)),
            Err(CpuListError::Empty) => Err(format!("invalid core list {s:?}: it names no core")),
            Err(why) => Err(format!(
                "invalid core list {s:?}: {why}; expected \"all\" or e.g. \"0,2-3\""
            )),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    pub role: Role,
    /// This node's name in `Via`, `Cache-Status` and invalidation reports.
    /// Default: "edgeslab" on an edge, "edgeslab-regional" on a regional.
    pub name: Option<String>,
    pub cores: Cores,
    pub listen: ListenConfig,
    /// `[tls]`: HTTPS toward viewers.
    pub tls: TlsConfig,
    pub origin: OriginConfig,
    /// `[[origin_group]]` tables: named origins with failover. The group
    /// "default" is `origin.url` unless a table of that name is given.
    #[serde(rename = "origin_group")]
    pub origin_groups: Vec<OriginGroupConfig>,
    pub parents: ParentsConfig,
    /// `[[behavior]]` tables: per path pattern, the origin group, the cache
    /// and origin request policies, `dynamic`, the methods allowed. The
    /// first whose `path` matches wins; none: every default.
    #[serde(rename = "behavior")]
    pub behaviors: Vec<crate::gateway::behavior::BehaviorConfig>,
    pub cache: CacheConfig,
    pub admin: AdminConfig,
    pub invalidation: InvalidationConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config::for_role(Role::Edge)
    }
}

impl Config {
    /// Defaults differ by role: a regional serves edges, so it keeps more idle
    /// connections and expects larger objects on larger disks.
    pub fn for_role(role: Role) -> Self {
        let mut c = Config {
            role,
            name: None,
            cores: Cores::All,
            listen: ListenConfig::default(),
            tls: TlsConfig::default(),
            origin: OriginConfig::default(),
            origin_groups: Vec::new(),
            parents: ParentsConfig::default(),
            behaviors: Vec::new(),
            cache: CacheConfig::default(),
            admin: AdminConfig::default(),
            invalidation: InvalidationConfig::default(),
            log: LogConfig::default(),
        };
        if role == Role::Regional {
            c.origin.max_idle_per_shard = 256;
            c.cache.avg_object_size = Size(256 << 10);
            // Its viewers are edges that keep pooled connections open.
            c.listen.idle_timeout = Dur::secs(300);
        }
        c
    }

    /// This node's name (see `name`).
    pub fn node_name(&self) -> &str {
        match (&self.name, self.role) {
            (Some(n), _) => n,
            (None, Role::Edge) => "edgeslab",
            (None, Role::Regional) => "edgeslab-regional",
        }
    }

    /// Every origin group: the configured ones, plus "default" from
    /// `origin.url` when no table of that name exists.
    pub fn effective_origin_groups(&self) -> Vec<OriginGroupConfig> {
        let mut groups = self.origin_groups.clone();
        if !groups.iter().any(|g| g.name == DEFAULT_GROUP) && !self.origin.url.is_empty() {
            let mut urls = vec![self.origin.url.clone()];
            urls.extend(self.origin.failover_url.iter().cloned());
            groups.insert(
                0,
                OriginGroupConfig {
                    name: DEFAULT_GROUP.into(),
                    origins: urls,
                    ..OriginGroupConfig::default()
                },
            );
        }
        groups
    }
}

/// The origin group a behaviour uses unless it names another.
pub const DEFAULT_GROUP: &str = "default";

/// `[[origin_group]]`: origins tried in order (primary, then secondary…).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginGroupConfig {
    pub name: String,
    /// `http://host:port` URLs, primary first. A host name is re-resolved
    /// every `origin.dns_ttl`, and each of its addresses is tried.
    pub origins: Vec<String>,
    /// Statuses from one origin after which the next one is asked.
    pub failover_statuses: Vec<u16>,
    /// Active health checks; absent: origins are judged by requests only.
    pub health_check: Option<HealthCheckConfig>,
}

impl Default for OriginGroupConfig {
    fn default() -> Self {
        OriginGroupConfig {
            name: String::new(),
            origins: Vec::new(),
            failover_statuses: vec![500, 502, 503, 504],
            health_check: None,
        }
    }
}

/// `[origin_group.health_check]`: a GET of `path` on every origin of the
/// group each `interval`; 2xx/3xx within `timeout` is a success.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckConfig {
    pub path: String,
    pub interval: Dur,
    pub timeout: Dur,
    /// Successes in a row that bring an unhealthy origin back.
    pub healthy_threshold: u32,
    /// Failures in a row that take a healthy origin out.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            path: "/".into(),
            interval: Dur::secs(5),
            timeout: Dur::secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

/// `[parents]`: the regional tier above an edge. Cacheable misses go to
/// the parent that rendezvous hashing of the cache key picks, so each
/// object lives on one regional node.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParentsConfig {
    /// `host:port` (or `http://host:port`) of each regional node.
    pub addrs: Vec<String>,
    /// How long a parent that refused, timed out or answered 5xx is skipped.
    pub down_time: Dur,
}

impl Default for ParentsConfig {
    fn default() -> Self {
        ParentsConfig {
            addrs: Vec::new(),
            down_time: Dur::secs(10),
        }
    }
}

/// `[invalidation]`: how invalidations are kept and spread.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct InvalidationConfig {
    /// The journal of invalidations (synced before one is acknowledged).
    /// Default: beside a cache file (`<cache.path>.invalidations`), or
    /// /var/lib/edgeslab/invalidations.log for a block device.
    pub journal: Option<PathBuf>,
    /// How long an invalidation rule is kept; an object older than the
    /// newest rule dropped is fetched again once.
    pub retain: Dur,
    /// Response fields whose values tag an object for `{"tags": [...]}`.
    pub tag_headers: Vec<String>,
    /// Admin URLs of the nodes an invalidation is passed on to: an edge's
    /// parents, a regional's edges and peers.
    pub peers: Vec<String>,
    /// How long a peer that does not acknowledge is retried before it is
    /// reported unreachable.
    pub peer_timeout: Dur,
}

impl Default for InvalidationConfig {
    fn default() -> Self {
        InvalidationConfig {
            journal: None,
            retain: Dur::secs(7 * 86_400),
            tag_headers: vec!["surrogate-key".into(), "cache-tag".into()],
            peers: Vec::new(),
            peer_timeout: Dur::secs(60),
        }
    }
}

impl InvalidationConfig {
    pub fn journal_path(&self, cache_path: &std::path::Path) -> PathBuf {
        if let Some(p) = &self.journal {
            return p.clone();
        }
        let is_device = std::fs::metadata(cache_path)
            .map(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
            .unwrap_or(false);
        if is_device {
            PathBuf::from("/var/lib/edgeslab/invalidations.log")
        } else {
            let mut name = cache_path.as_os_str().to_owned();
            name.push(".invalidations");
            PathBuf::from(name)
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct ListenConfig {
    /// Viewer-facing address; one listener per shard in a SO_REUSEPORT group.
    pub addr: SocketAddr,
    /// Host names this node serves (with or without port). Empty: any host.
    pub hosts: Vec<String>,
    /// Status for a request whose host is not in `hosts`: 421 or 404.
    pub unknown_host_status: u16,
    /// Time allowed to receive a whole request head once its first byte arrived.
    pub header_timeout: Dur,
    /// Time a keep-alive connection may sit between requests.
    pub idle_timeout: Dur,
    /// Time allowed between two reads of a request body or two writes to the viewer.
    pub io_timeout: Dur,
    /// Slowest request body accepted, in bytes per second, once a body has
    /// taken longer than `io_timeout`: a viewer trickling a byte now and
    /// then is cut off (408) instead of holding a connection for ever.
    pub min_body_rate: u64,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_headers: usize,
    /// Connections beyond this number per shard are refused at accept.
    pub max_connections_per_shard: usize,
    /// At a stop, how long requests already under way may take to finish.
    pub drain_timeout: Dur,
    /// Request fields whose names hold `_` (some servers read
    /// `Transfer_Encoding` as `Transfer-Encoding`): `"drop"` them, or
    /// `"refuse"` the request (400). Never forwarded.
    pub underscore_headers: UnderscoreHeaders,
    /// Every connection (plain and HTTPS) begins with a PROXY protocol
    /// header (v1 or v2) naming the viewer's address, as a load balancer
    /// sends it; connections from peers outside `proxy_trusted` are refused.
    pub proxy_protocol: bool,
    /// Networks allowed to send PROXY headers, e.g. ["10.0.0.0/8"].
    pub proxy_trusted: Vec<ipnet::IpNet>,
}

/// What becomes of a request field whose name holds `_`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnderscoreHeaders {
    #[default]
    Drop,
    Refuse,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            addr: "0.0.0.0:8080".parse().expect("valid literal"),
            hosts: Vec::new(),
            unknown_host_status: 421,
            header_timeout: Dur::secs(10),
            idle_timeout: Dur::secs(60),
            io_timeout: Dur::secs(30),
            min_body_rate: 1024,
            max_header_bytes: 16 << 10,
            max_uri_bytes: 8 << 10,
            max_headers: 100,
            max_connections_per_shard: 65536,
            drain_timeout: Dur::secs(10),
            underscore_headers: UnderscoreHeaders::Drop,
            proxy_protocol: false,
            proxy_trusted: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct OriginConfig {
    /// `http://host:port` of the origin: the "default" origin group.
    /// Required unless an `[[origin_group]]` named "default" is given.
    pub url: String,
    /// A secondary origin for the "default" group, asked when `url` fails.
    pub failover_url: Option<String>,
    /// How often origin and parent host names are resolved again.
    pub dns_ttl: Dur,
    /// Host header sent to the origin; by default the viewer's Host is kept.
    pub host_header: Option<String>,
    pub connect_timeout: Dur,
    /// Time from sending a request until the response head has arrived.
    pub first_byte_timeout: Dur,
    /// Time allowed between two reads of a response body.
    pub idle_timeout: Dur,
    /// How long an unused pooled connection is kept.
    pub pool_idle_timeout: Dur,
    pub max_idle_per_shard: usize,
    /// Largest response head accepted from the origin; larger is a 502.
    pub max_header_bytes: usize,
    /// Most header fields in a response head from the origin; more is a 502.
    pub max_headers: usize,
    /// PEM file of the CAs that `https://` origins and parents are verified
    /// against; unset: the system's trust roots.
    pub ca_file: Option<PathBuf>,
    /// Bodies that are not stored and go to the viewer as they come (passes,
    /// uncacheable responses) move from the origin's socket to the viewer's
    /// by splice(2), never copied into user space, when neither side is TLS.
    pub splice: bool,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            url: String::new(),
            failover_url: None,
            dns_ttl: Dur::secs(30),
            host_header: None,
            connect_timeout: Dur::secs(3),
            first_byte_timeout: Dur::secs(30),
            idle_timeout: Dur::secs(30),
            pool_idle_timeout: Dur::secs(60),
            max_idle_per_shard: 64,
            max_header_bytes: 64 << 10,
            max_headers: 200,
            ca_file: None,
            splice: true,
        }
    }
}

/// `[tls]`: an HTTPS listener beside `listen.addr`, with certificates
/// chosen by the name a viewer asks for (SNI).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct TlsConfig {
    /// Where HTTPS viewers connect, e.g. "0.0.0.0:443"; unset: no HTTPS.
    pub addr: Option<SocketAddr>,
    /// Certificate chains and their keys (PEM). Each serves the names in
    /// its certificate; the first also serves unknown or absent names.
    pub certs: Vec<CertPair>,
    /// How long a viewer's TLS handshake may take.
    pub handshake_timeout: Dur,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            addr: None,
            certs: Vec::new(),
            handshake_timeout: Dur::secs(10),
        }
    }
}

/// One certificate chain (leaf first) and its private key, both PEM.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CertPair {
    pub chain: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct CacheConfig {
    /// A file (created and sized to `size`) or a raw block device (sized by the device).
    pub path: PathBuf,
    /// Size of a cache file. Ignored for block devices.
    pub size: Size,
    /// Segment size: the unit of writes and of eviction. Halved at start
    /// (down to 1 MiB) while it leaves a shard fewer than six segments; the
    /// device records, and the store uses, the size actually laid out.
    pub segment_size: Size,
    /// Expected mean object size; sizes the in-memory index.
    pub avg_object_size: Size,
    /// Largest object that will be stored.
    pub max_object_size: Size,
    /// Freshness given to cacheable responses that carry no explicit lifetime
    /// and no Last-Modified (0: such responses are not stored).
    pub default_ttl: Dur,
    /// Upper bound on heuristic freshness from Last-Modified.
    pub max_heuristic_ttl: Dur,
    /// Store responses that carry Set-Cookie (the cookie is then shared!).
    pub cache_set_cookie: bool,
    /// Negative caching: freshness given to cacheable 4xx/5xx responses
    /// (404, 405, 410, 414, 501, or any marked `public`) that carry no
    /// explicit lifetime; it comes before the Last-Modified heuristic and
    /// `default_ttl`. 0 leaves them to those.
    pub error_ttl: Dur,
    /// How long past expiry a stored response may answer when revalidating
    /// it fails (5xx or no answer), for responses whose origin sent no
    /// `stale-if-error`; never for `no-cache`, `must-revalidate`,
    /// `proxy-revalidate` or `s-maxage` responses. 0: only the origin's
    /// own `stale-if-error` applies.
    pub stale_if_error: Dur,
    /// Whether a viewer's `Cache-Control: no-cache`, `max-age` and
    /// `min-fresh` make this cache revalidate with the origin. `false`
    /// protects the origin from reload storms: those directives are then
    /// ignored (`max-stale`, `only-if-cached` and `no-store` still count).
    pub honor_viewer_no_cache: bool,
    /// RAM tier for hot small objects, in all (split evenly between shards).
    pub ram_size: Size,
    /// Largest entry kept in the RAM tier.
    pub ram_max_object: Size,
    /// After a response for a key turns out uncacheable, how long later
    /// misses for it go to the origin each on its own instead of waiting to
    /// share one fetch (hit-for-pass). 0 turns it off.
    pub hit_for_pass: Dur,
    /// Discard the device's contents at start (also with `serve --reformat`).
    pub reformat: bool,
    /// Re-format a device whose superblock is corrupt instead of refusing to
    /// start (by default an operator decides).
    pub reformat_if_corrupt: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            path: PathBuf::from("/var/cache/edgeslab/cache.slab"),
            size: Size(1 << 30),
            segment_size: Size::mib(16),
            avg_object_size: Size(32 << 10),
            max_object_size: Size(8 << 30),
            default_ttl: Dur::secs(0),
            max_heuristic_ttl: Dur::secs(86_400),
            cache_set_cookie: false,
            error_ttl: Dur::secs(0),
            stale_if_error: Dur::secs(0),
            honor_viewer_no_cache: true,
            ram_size: Size::mib(256),
            ram_max_object: Size(256 << 10),
            hit_for_pass: Dur::secs(10),
            reformat: false,
            reformat_if_corrupt: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct AdminConfig {
    /// Admin API (metrics); loopback by default. Set `enabled = false` to turn it off.
    pub addr: SocketAddr,
    pub enabled: bool,
    /// Bearer token the invalidation API requires (`Authorization: Bearer
    /// T`). Unset: the invalidation API answers 403 to everyone.
    pub token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            addr: "127.0.0.1:9090".parse().expect("valid literal"),
            enabled: true,
            token: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. "info" or "edgeslab=debug". RUST_LOG overrides it.
    pub level: String,
    /// One line per request with the cache phase.
    pub access_log: bool,
    /// Where: "stderr", or a file (appended to; reopened on SIGUSR1).
    pub access_log_path: String,
    pub access_log_format: AccessLogFormat,
}

/// How access-log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// `key=value` fields, strings quoted and escaped.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            access_log: true,
            access_log_path: "stderr".into(),
            access_log_format: AccessLogFormat::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists_say_what_is_wrong_and_cap_the_cpu_number() {
        assert_eq!("0,2-3,3".parse::<Cores>(), Ok(Cores::List(vec![0, 2, 3])));
        assert_eq!(" ALL ".parse::<Cores>(), Ok(Cores::All));
        let err = |s: &str| s.parse::<Cores>().unwrap_err();
        assert_eq!(err(" "), "invalid core list \"\": it names no core");
        assert_eq!(
            err("3-1"),
            "invalid core list \"3-1\": the range 3-1 runs backwards; \
             expected \"all\" or e.g. \"0,2-3\""
        );
        assert!(err("0-99999999999").contains("CPU 99999999999 is past"));
        assert!(err("0,x").contains("\"x\" is neither a CPU number"));
    }
}
