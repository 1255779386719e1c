//! The configuration: one TOML schema with defaults per role, and the only
//! source of truth for every setting. CLI flags override fields of these same
//! structs (see `main.rs`); `load` turns a file into a validated `Config` or
//! into errors that name the key and the line.

mod load;
mod units;

pub use load::{ConfigError, ConfigErrors, load_file, load_str, validate};
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
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            List(Vec<usize>),
        }
        match Raw::deserialize(d)? {
            Raw::List(v) => Ok(Cores::List(v)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl std::str::FromStr for Cores {
    type Err = String;
    /// "all", or a list like "0,2-3".
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(Cores::All);
        }
        let mut cores = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || format!("invalid core list {s:?}: expected \"all\" or e.g. \"0,2-3\"");
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b): (usize, usize) = (
                        a.trim().parse().map_err(|_| bad())?,
                        b.trim().parse().map_err(|_| bad())?,
                    );
                    if a > b {
                        return Err(bad());
                    }
                    cores.extend(a..=b);
                }
                None => cores.push(part.parse().map_err(|_| bad())?),
            }
        }
        if cores.is_empty() {
            return Err(format!("invalid core list {s:?}: it names no core"));
        }
        Ok(Cores::List(cores))
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    pub role: Role,
    pub cores: Cores,
    pub listen: ListenConfig,
    pub origin: OriginConfig,
    pub cache: CacheConfig,
    pub admin: AdminConfig,
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
            cores: Cores::All,
            listen: ListenConfig::default(),
            origin: OriginConfig::default(),
            cache: CacheConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
        };
        if role == Role::Regional {
            c.origin.max_idle_per_shard = 256;
            c.cache.avg_object_size = Size(256 << 10);
        }
        c
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
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_headers: usize,
    /// Connections beyond this number per shard are refused at accept.
    pub max_connections_per_shard: usize,
    /// At a stop, how long requests already under way may take to finish.
    pub drain_timeout: Dur,
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
            max_header_bytes: 16 << 10,
            max_uri_bytes: 8 << 10,
            max_headers: 100,
            max_connections_per_shard: 65536,
            drain_timeout: Dur::secs(10),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct OriginConfig {
    /// `http://host:port` of the origin. Required.
    pub url: String,
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
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            url: String::new(),
            host_header: None,
            connect_timeout: Dur::secs(3),
            first_byte_timeout: Dur::secs(30),
            idle_timeout: Dur::secs(30),
            pool_idle_timeout: Dur::secs(60),
            max_idle_per_shard: 64,
            max_header_bytes: 64 << 10,
            max_headers: 200,
        }
    }
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
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            addr: "127.0.0.1:9090".parse().expect("valid literal"),
            enabled: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. "info" or "edgeslab=debug". RUST_LOG overrides it.
    pub level: String,
    /// One line per request (target `access`) with the cache phase.
    pub access_log: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            access_log: true,
        }
    }
}
