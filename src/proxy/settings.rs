//! The request pipeline's settings, taken from the configuration once per
//! shard at start-up. The configuration schema holds every default; this
//! only reshapes it for the hot path (durations resolved, host names in
//! the codec's normal form, limits grouped), so nothing here is a second source of truth.

use crate::cache::key::KeyPolicy;
use crate::cache::policy::{Downstream, PolicyConfig, fields_to_strip};
use crate::config::{Config, Role};
use crate::gateway::behavior::Behaviors;
use crate::gateway::route::HostFilter;
use crate::http::Limits;
use crate::http::target::normalise_authority;
use crate::upstream::OriginSettings;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct ProxySettings {
    pub node: String,
    /// Bounds on viewers' request heads.
    pub limits: Limits,
    pub header_timeout: Duration,
    /// The networks whose PROXY protocol headers are read (None: the
    /// protocol is off).
    pub proxy_trusted: Option<Vec<ipnet::IpNet>>,
    /// A viewer's TLS handshake (`tls.handshake_timeout`).
    pub tls_handshake_timeout: Duration,
    pub idle_timeout: Duration,
    /// Each read of a request body and each write to the viewer.
    pub io_timeout: Duration,
    /// Slowest request body accepted (bytes/s) once it took `io_timeout`.
    pub min_body_rate: u64,
    /// Each read of an origin's response body.
    pub origin_idle_timeout: Duration,
    /// Bodies relayed as they come go by splice when both sides are plain.
    pub splice: bool,
    pub hosts: HostFilter,
    /// The origin's own authority: the cache key's host when a viewer sent
    /// none (HTTP/1.0), and the `Host` sent upstream then.
    pub origin_authority: String,
    /// `Host` sent upstream instead of the viewer's, when configured.
    pub host_header: Option<String>,
    pub key_policy: KeyPolicy,
    pub policy: PolicyConfig,
    /// Fields removed from every response toward viewers (targeted cache
    /// fields an edge keeps to itself).
    pub downstream_strip: &'static [&'static str],
    pub max_connections: usize,
    /// The origin group behaviours use unless they name another.
    pub default_group: usize,
    /// The `[[behavior]]`s, compiled (validated at load).
    pub behaviors: Behaviors,
    pub underscore_headers: crate::config::UnderscoreHeaders,
    /// How long a coalesced miss waits for its leader's response head
    /// before fetching on its own: longer than the leader's own bound
    /// (connect, first byte, and one retry on a fresh connection).
    pub lead_wait: Duration,
    /// How long a follower waits for the next piece of a fill: the leader
    /// moves on at the pace of its origin and of its own viewer, each bounded
    /// (origin idle timeout, viewer I/O timeout), plus room for the owner's
    /// segment write.
    pub follow_wait: Duration,
}

/// Slack added to the leader's bounds before a follower gives up.
const COALESCE_SLACK: Duration = Duration::from_secs(5);

impl ProxySettings {
    pub fn from_config(c: &Config, origin_authority: String) -> ProxySettings {
        ProxySettings {
            node: c.node_name().to_string(),
            limits: Limits {
                max_header_bytes: c.listen.max_header_bytes,
                max_uri_bytes: c.listen.max_uri_bytes,
                max_headers: c.listen.max_headers,
            },
            header_timeout: c.listen.header_timeout.get(),
            tls_handshake_timeout: c.tls.handshake_timeout.get(),
            proxy_trusted: c
                .listen
                .proxy_protocol
                .then(|| c.listen.proxy_trusted.clone()),
            idle_timeout: c.listen.idle_timeout.get(),
            io_timeout: c.listen.io_timeout.get(),
            min_body_rate: c.listen.min_body_rate,
            origin_idle_timeout: c.origin.idle_timeout.get(),
            splice: c.origin.splice,
            hosts: HostFilter::new(&c.listen.hosts, c.listen.unknown_host_status),
            origin_authority: normalise_authority(&origin_authority),
            host_header: c.origin.host_header.clone(),
            key_policy: KeyPolicy::default(),
            policy: PolicyConfig {
                default_ttl: c.cache.default_ttl.get(),
                max_heuristic_ttl: c.cache.max_heuristic_ttl.get(),
                cache_set_cookie: c.cache.cache_set_cookie,
                error_ttl: c.cache.error_ttl.get(),
                stale_if_error: c.cache.stale_if_error.get(),
                honor_viewer_no_cache: c.cache.honor_viewer_no_cache,
                downstream: match c.role {
                    Role::Edge => Downstream::Viewers,
                    Role::Regional => Downstream::Caches,
                },
                // The serving path stores whole responses only.
                store_partial_content: false,
            },
            downstream_strip: fields_to_strip(match c.role {
                Role::Edge => Downstream::Viewers,
                Role::Regional => Downstream::Caches,
            }),
            max_connections: c.listen.max_connections_per_shard,
            default_group: c
                .effective_origin_groups()
                .iter()
                .position(|g| g.name == crate::config::DEFAULT_GROUP)
                .unwrap_or(0),
            // Validation ran these same checks; an invalid list cannot
            // get here, and the defaults are the safe reading.
            underscore_headers: c.listen.underscore_headers,
            behaviors: Behaviors::new(&c.behaviors, c.cache.default_ttl.get())
                .unwrap_or_else(|_| Behaviors::only_default(c.cache.default_ttl.get())),
            lead_wait: c.origin.connect_timeout.get()
                + c.origin.first_byte_timeout.get() * 2
                + COALESCE_SLACK,
            follow_wait: c.origin.idle_timeout.get().max(c.listen.io_timeout.get())
                + COALESCE_SLACK,
        }
    }
}

/// The origin client's settings, from the configuration.
pub fn origin_settings(c: &Config) -> OriginSettings {
    OriginSettings {
        connect_timeout: c.origin.connect_timeout.get(),
        first_byte_timeout: c.origin.first_byte_timeout.get(),
        idle_timeout: c.origin.idle_timeout.get(),
        pool_idle_timeout: c.origin.pool_idle_timeout.get(),
        max_idle: c.origin.max_idle_per_shard,
        limits: Limits {
            max_header_bytes: c.origin.max_header_bytes,
            max_uri_bytes: c.listen.max_uri_bytes,
            max_headers: c.origin.max_headers,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_configuration() {
        let mut c = Config::default();
        c.listen.hosts = vec!["Example.COM".into()];
        c.listen.max_header_bytes = 4096;
        c.origin.max_header_bytes = 100_000;
        c.origin.max_headers = 300;
        let s = ProxySettings::from_config(&c, "origin:81".into());
        assert!(s.hosts.serves(Some("example.com")));
        assert!(!s.hosts.serves(Some("other.test")));
        assert_eq!(s.limits.max_header_bytes, 4096);
        assert_eq!(s.node, "edgeslab");
        let regional = Config::for_role(Role::Regional);
        let r = ProxySettings::from_config(&regional, "o:80".into());
        assert_eq!(r.node, "edgeslab-regional");
        let o = origin_settings(&c);
        assert_eq!(
            (o.limits.max_header_bytes, o.limits.max_headers),
            (100_000, 300)
        );
        assert_eq!(o.max_idle, c.origin.max_idle_per_shard);
    }

    #[test]
    fn policy_settings_follow_the_configuration_and_role() {
        let mut c = Config::default();
        c.cache.error_ttl = crate::config::Dur::secs(30);
        c.cache.stale_if_error = crate::config::Dur::secs(600);
        c.cache.honor_viewer_no_cache = false;
        let p = ProxySettings::from_config(&c, "o:80".into()).policy;
        assert_eq!(p.error_ttl, Duration::from_secs(30));
        assert_eq!(p.stale_if_error, Duration::from_secs(600));
        assert!(!p.honor_viewer_no_cache);
        assert_eq!(p.downstream, Downstream::Viewers);
        let regional = Config::for_role(Role::Regional);
        let p = ProxySettings::from_config(&regional, "o:80".into()).policy;
        assert_eq!(p.downstream, Downstream::Caches);
    }
}
