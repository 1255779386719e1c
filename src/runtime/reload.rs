//! Configuration reload (SIGHUP, `systemctl reload`). The control thread
//! reads the configuration again exactly as `serve` first built it (the
//! same file, the same flags on top), checks it as start-up would, resolves
//! its upstreams and then publishes it as a new generation. Each shard sees
//! the new generation within `RELOAD_POLL`, builds its request context from
//! it and serves new requests with that; requests in flight keep the
//! context they began with. A configuration that fails any check is not
//! published: the running one stays, and the log says why.
//!
//! Certificates are read again too: a viewer's next handshake gets the new
//! ones, and a certificate or key that cannot be used refuses the reload.
//!
//! What a shard's store, listeners and threads were built from cannot
//! change under them: those keys (`keep_restart_only`) keep their running value,
//! and a reload that changes one says so and applies the rest.

use crate::config::Config;
use crate::net::tls::Sessions;
use crate::upstream::UpstreamMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a shard looks for a new generation.
pub const RELOAD_POLL: Duration = Duration::from_millis(50);

/// One configuration as the shards use it.
pub struct Generation {
    /// 1 for the configuration the process started with, then one more per
    /// applied reload.
    pub number: u64,
    pub config: Arc<Config>,
    pub upstreams: Arc<UpstreamMap>,
    /// The HTTPS listener's certificates (None without `tls.addr`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The generation in force, shared by the control thread and the shards.
pub struct Live {
    current: Mutex<Arc<Generation>>,
    number: AtomicU64,
    /// TLS session keys and cache, kept across reloads.
    sessions: Sessions,
}

/// The HTTPS configuration a configuration makes (None without `tls.addr`).
pub fn viewer_tls(
    config: &Config,
    sessions: &Sessions,
) -> Result<Option<Arc<rustls::ServerConfig>>, crate::net::tls::TlsError> {
    match config.tls.addr {
        Some(_) => crate::net::tls::server_config(&config.tls.certs, sessions).map(Some),
        None => Ok(None),
    }
}

impl Live {
    pub fn new(
        config: Arc<Config>,
        upstreams: Arc<UpstreamMap>,
        tls: Option<Arc<rustls::ServerConfig>>,
        sessions: Sessions,
    ) -> Arc<Live> {
        GENERATION.store(1, Ordering::Relaxed);
        Arc::new(Live {
            current: Mutex::new(Arc::new(Generation {
                number: 1,
                config,
                upstreams,
                tls,
            })),
            number: AtomicU64::new(1),
            sessions,
        })
    }

    /// The number of the generation in force: cheap enough to poll.
    pub fn number(&self) -> u64 {
        self.number.load(Ordering::Acquire)
    }

    pub fn get(&self) -> Arc<Generation> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn publish(
        &self,
        config: Config,
        upstreams: Arc<UpstreamMap>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> u64 {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let number = current.number + 1;
        *current = Arc::new(Generation {
            number,
            config: Arc::new(config),
            upstreams,
            tls,
        });
        self.number.store(number, Ordering::Release);
        GENERATION.store(number, Ordering::Relaxed);
        number
    }
}

/// Puts a `log.level` filter in force, or says why it cannot.
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// How the process reads its configuration again, and applies what is not
/// the shards' (the log filter).
pub struct Reloader {
    /// Builds the configuration as at start: file, then flags, validated.
    pub load: Box<dyn Fn() -> Result<Config, String> + Send>,
    /// Puts a `log.level` filter in force.
    pub set_log_level: SetLogLevel,
}

/// Why a reload was refused (the running configuration stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Plan(#[from] super::StartError),
    #[error("upstreams: {0}")]
    Upstreams(String),
    #[error("log.level: {0}")]
    LogLevel(String),
    #[error("tls.certs: {0} (the running certificates stay)")]
    Tls(#[from] crate::net::tls::TlsError),
}

/// How a reload ended, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadResult {
    Applied,
    Rejected,
}

impl ReloadResult {
    pub const ALL: [ReloadResult; 2] = [ReloadResult::Applied, ReloadResult::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Rejected => "rejected",
        }
    }

    pub fn count(self) -> u64 {
        self.counter().load(Ordering::Relaxed)
    }

    fn counter(self) -> &'static AtomicU64 {
        match self {
            ReloadResult::Applied => &APPLIED,
            ReloadResult::Rejected => &REJECTED,
        }
    }
}

static APPLIED: AtomicU64 = AtomicU64::new(0);
static REJECTED: AtomicU64 = AtomicU64::new(0);
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The number of the configuration generation in force (0 before start).
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Reads, checks and publishes the configuration again; logs the result.
pub fn reload(live: &Live, reloader: &Reloader, shards: u32) -> Result<u64, ReloadError> {
    let result = try_reload(live, reloader, shards);
    // Logged before it is counted: whoever sees the count finds the line.
    let counted = match &result {
        Ok(number) => {
            tracing::info!(
                generation = number,
                "configuration reloaded: new requests use it"
            );
            ReloadResult::Applied
        }
        Err(e) => {
            tracing::error!(
                generation = live.number(),
                "configuration reload refused; the running configuration stays:\n{e}"
            );
            ReloadResult::Rejected
        }
    };
    counted.counter().fetch_add(1, Ordering::Relaxed);
    result
}

fn try_reload(live: &Live, reloader: &Reloader, shards: u32) -> Result<u64, ReloadError> {
    let old = live.get();
    let mut new = (reloader.load)().map_err(ReloadError::Config)?;
    for key in keep_restart_only(&old.config, &mut new) {
        tracing::warn!(
            key,
            "changed, but takes effect only at a restart or upgrade; the running value stays"
        );
    }
    super::plan::check(&new, shards)?;
    let upstreams = UpstreamMap::from_config(&new).map_err(ReloadError::Upstreams)?;
    let tls = viewer_tls(&new, &live.sessions)?;
    (reloader.set_log_level)(&new.log.level).map_err(ReloadError::LogLevel)?;
    Ok(live.publish(new, upstreams, tls))
}

/// Gives `new` the running value of every key the running process was
/// built from (the role, listeners, cores, the store's geometry and RAM
/// tier, the admin API, the invalidation journal and its peers, the access
/// log's sink); returns the keys whose value differed.
fn keep_restart_only(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($key:literal => $($field:ident).+;)*) => {$(
            if !same(&old.$($field).+, &new.$($field).+) {
                changed.push($key);
                new.$($field).+ = old.$($field).+.clone();
            }
        )*};
    }
    keep! {
        "role" => role;
        "name" => name;
        "cores" => cores;
        "listen.addr" => listen.addr;
        "listen.drain_timeout" => listen.drain_timeout;
        "tls.addr" => tls.addr;
        "cache.path" => cache.path;
        "cache.size" => cache.size;
        "cache.segment_size" => cache.segment_size;
        "cache.avg_object_size" => cache.avg_object_size;
        "cache.max_object_size" => cache.max_object_size;
        "cache.ram_size" => cache.ram_size;
        "cache.ram_max_object" => cache.ram_max_object;
        "cache.hit_for_pass" => cache.hit_for_pass;
        "cache.reformat" => cache.reformat;
        "cache.reformat_if_corrupt" => cache.reformat_if_corrupt;
        "admin" => admin;
        "invalidation" => invalidation;
        "log.access_log" => log.access_log;
        "log.access_log_path" => log.access_log_path;
        "log.access_log_format" => log.access_log_format;
    }
    changed
}

/// Equal as configuration: the same serialised form.
fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_keys_keep_their_running_value_and_the_rest_changes() {
        let old = Config::default();
        let mut new = Config::default();
        new.listen.addr = "127.0.0.1:1".parse().unwrap();
        new.cache.size = crate::config::Size::bytes(3 << 30);
        new.admin.token = Some("t".into());
        new.cache.default_ttl = crate::config::Dur::secs(7);
        new.log.level = "debug".into();
        let changed = keep_restart_only(&old, &mut new);
        assert_eq!(changed, ["listen.addr", "cache.size", "admin"]);
        assert_eq!(new.listen.addr, old.listen.addr);
        assert_eq!(new.cache.size.get(), old.cache.size.get());
        assert_eq!(new.admin.token, None);
        assert_eq!(new.cache.default_ttl.get(), Duration::from_secs(7));
        assert_eq!(new.log.level, "debug");
        let mut same_again = Config::default();
        assert!(keep_restart_only(&old, &mut same_again).is_empty());
    }
}
