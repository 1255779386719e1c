//! One shard's client of its upstreams: which endpoints a request may ask,
//! in which order (`plan`), connections to them (pooled per address, new
//! ones trying every address of a host), and the passive judgement of
//! endpoints that failed a request (skipped for a while). Shard-local: no
//! locks; the shared parts (addresses, active health) are read-only here.

use super::map::{EndpointKind, UpstreamMap};
use super::pool::ConnPool;
use super::rendezvous;
use super::{UpstreamError, UpstreamErrorKind};
use crate::http::Limits;
use crate::net::conn::{Conn, Remote};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct OriginSettings {
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    /// Longest wait for one read or write once the exchange is under way.
    pub idle_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub max_idle: usize,
    /// Bounds on the response heads accepted from the origin.
    pub limits: Limits,
}

/// Counters the admin API reads.
#[derive(Debug, Default)]
pub struct UpstreamStats {
    /// Requests sent upstream (to parents and origins), retries included.
    pub requests: AtomicU64,
    pub opened: AtomicU64,
    pub reused: AtomicU64,
    pub failures: AtomicU64,
    pub timeouts: AtomicU64,
    /// Requests sent to a regional parent.
    pub parent_requests: AtomicU64,
    /// Times a request moved on to the next upstream of its plan.
    pub failovers: AtomicU64,
}

/// One upstream a request may ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    pub endpoint: usize,
    pub kind: EndpointKind,
}

/// Which upstreams a request may ask: a cacheable fill goes through the
/// parents when there are any (`fill_key`: the hash that places the object
/// on one of them); everything goes to its behaviour's origin group.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamRoute {
    pub fill_key: Option<u64>,
    pub group: usize,
}

pub struct UpstreamClient {
    map: Arc<UpstreamMap>,
    pub(super) settings: OriginSettings,
    pools: RefCell<HashMap<Remote, ConnPool>>,
    /// Per endpoint: skipped until then after a failed request.
    down_until: RefCell<Vec<Option<Instant>>>,
    pub(super) stats: Arc<UpstreamStats>,
}

/// A connection out of the pool, and whether it had served requests before
/// (a reused connection may turn out closed by the origin).
pub struct Checkout {
    pub conn: Conn,
    pub reused: bool,
}

impl UpstreamClient {
    pub fn new(
        map: Arc<UpstreamMap>,
        settings: OriginSettings,
        stats: Arc<UpstreamStats>,
    ) -> UpstreamClient {
        let endpoints = map.endpoints.len();
        UpstreamClient {
            map,
            settings,
            pools: RefCell::new(HashMap::new()),
            down_until: RefCell::new(vec![None; endpoints]),
            stats,
        }
    }

    pub fn settings(&self) -> &OriginSettings {
        &self.settings
    }

    pub fn map(&self) -> &UpstreamMap {
        &self.map
    }

    fn is_down(&self, endpoint: usize, now: Instant) -> bool {
        self.down_until.borrow()[endpoint].is_some_and(|t| t > now)
    }

    /// The upstreams to ask, in order: the parents in the key's rendezvous
    /// order (those marked down left out), then the group's origins
    /// (healthy and not marked down first; all of them when none is).
    pub fn plan(&self, route: UpstreamRoute) -> Vec<Hop> {
        let now = Instant::now();
        let mut hops = Vec::new();
        if let Some(key) = route.fill_key {
            for i in rendezvous::order(key, &self.map.parent_ids) {
                let endpoint = self.map.parents[i];
                if !self.is_down(endpoint, now) {
                    hops.push(Hop {
                        endpoint,
                        kind: EndpointKind::Parent,
                    });
                }
            }
        }
        let Some(group) = self.map.groups.get(route.group) else {
            return hops;
        };
        let usable = |e: &usize| self.map.health.is_healthy(*e) && !self.is_down(*e, now);
        let origins: Vec<usize> = match group.members.iter().any(usable) {
            true => group.members.iter().copied().filter(usable).collect(),
            false => group.members.clone(),
        };
        hops.extend(origins.into_iter().map(|endpoint| Hop {
            endpoint,
            kind: EndpointKind::Origin,
        }));
        hops
    }

    /// Whether `status` from `hop` sends the request on to the next hop: a
    /// parent's 5xx, or a status the origin group fails over on.
    pub fn fails_over(&self, hop: Hop, route: UpstreamRoute, status: u16) -> bool {
        match hop.kind {
            EndpointKind::Parent => (500..600).contains(&status),
            EndpointKind::Origin => self
                .map
                .groups
                .get(route.group)
                .is_some_and(|g| g.failover_statuses.contains(&status)),
        }
    }

    /// Notes that `hop` failed a request: it is skipped for a while (a
    /// parent for `parents.down_time`; an origin with a sibling as long).
    pub fn mark_failed(&self, hop: Hop) {
        let until = Instant::now() + self.map.parent_down_time;
        if let Some(slot) = self.down_until.borrow_mut().get_mut(hop.endpoint) {
            *slot = Some(until);
        }
        self.stats.failovers.fetch_add(1, Relaxed);
        let name = self.map.endpoints[hop.endpoint].addr.authority();
        crate::warn_limited!(upstream = %name, kind = ?hop.kind, "upstream failed a request: skipped for a while");
    }

    /// The authority (`host:port`) of an endpoint, for logs.
    pub fn name(&self, hop: Hop) -> String {
        self.map.endpoints[hop.endpoint].addr.authority()
    }

    /// A pooled connection to `hop` if one is alive, else a new one (each
    /// address of its host tried in turn).
    pub async fn checkout(&self, hop: Hop) -> Result<Checkout, UpstreamError> {
        self.stats.requests.fetch_add(1, Relaxed);
        if hop.kind == EndpointKind::Parent {
            self.stats.parent_requests.fetch_add(1, Relaxed);
        }
        let addrs = self.map.resolver.addrs(hop.endpoint);
        let tls_name: Option<Arc<str>> = self.map.endpoints[hop.endpoint]
            .addr
            .tls
            .then(|| self.map.endpoints[hop.endpoint].addr.host.as_str().into());
        for &addr in addrs.iter() {
            let key = Remote {
                addr,
                tls_name: tls_name.clone(),
            };
            let pooled = self.pools.borrow().get(&key).and_then(ConnPool::take);
            if let Some(conn) = pooled {
                self.stats.reused.fetch_add(1, Relaxed);
                return Ok(Checkout { conn, reused: true });
            }
        }
        let mut last = UpstreamError::new(UpstreamErrorKind::ConnectRefused, "no address");
        for &a in addrs.iter() {
            // Boxed: connecting (TLS included) is a large future that a
            // checkout served from the pool never runs (see `spare::Boxed`).
            let timeout = self.settings.connect_timeout;
            let connect = || self.map.connect(hop.endpoint, a, timeout);
            match crate::spare::Boxed::with(connect).await {
                Ok(conn) => {
                    self.stats.opened.fetch_add(1, Relaxed);
                    return Ok(Checkout {
                        conn,
                        reused: false,
                    });
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Relaxed);
                    let kind = if e.kind() == std::io::ErrorKind::TimedOut {
                        UpstreamErrorKind::ConnectTimeout
                    } else {
                        UpstreamErrorKind::ConnectRefused
                    };
                    last = UpstreamError::new(kind, format!("connect to {a}: {e}"));
                }
            }
        }
        Err(last)
    }

    /// Returns a connection whose last exchange ended cleanly to the pool
    /// of the address it was opened to.
    pub fn checkin(&self, conn: Conn) {
        let Some(key) = conn.remote().cloned() else {
            return;
        };
        let mut pools = self.pools.borrow_mut();
        pools
            .entry(key)
            .or_insert_with(|| {
                ConnPool::new(self.settings.max_idle, self.settings.pool_idle_timeout)
            })
            .put(conn);
    }

    pub fn idle_count(&self) -> usize {
        self.pools.borrow().values().map(ConnPool::idle).sum()
    }
}
