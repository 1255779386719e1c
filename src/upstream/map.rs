//! Every upstream a node may ask, built once from the configuration and
//! shared by all shards: the regional parents (in configured order, with
//! their rendezvous identities) and the origin groups (primary first), each
//! member an endpoint whose addresses the `Resolver` keeps current and whose
//! health the active checks (`health`) publish.

use super::OriginAddr;
use super::health::HealthBoard;
use super::rendezvous::parent_id;
use super::resolve::Resolver;
use crate::config::{Config, HealthCheckConfig};
use std::sync::Arc;
use std::time::Duration;

/// Whether an endpoint is a regional parent or an origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    Parent,
    Origin,
}

pub struct Endpoint {
    pub addr: OriginAddr,
    pub kind: EndpointKind,
}

pub struct Group {
    pub name: String,
    /// Endpoint indexes, primary first.
    pub members: Vec<usize>,
    pub failover_statuses: Vec<u16>,
    pub health_check: Option<HealthCheckConfig>,
}

pub struct UpstreamMap {
    pub endpoints: Vec<Endpoint>,
    /// Endpoint indexes of the parents, in configured order.
    pub parents: Vec<usize>,
    /// `rendezvous::parent_id` of each parent, in the same order.
    pub parent_ids: Vec<u64>,
    pub groups: Vec<Group>,
    pub parent_down_time: Duration,
    pub resolver: Arc<Resolver>,
    pub health: HealthBoard,
    /// For `https://` upstreams (None when every upstream is plain HTTP).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl UpstreamMap {
    /// Resolves every upstream host once; an error names the host.
    pub fn from_config(c: &Config) -> Result<Arc<UpstreamMap>, String> {
        let UpstreamPlan {
            endpoints,
            parents,
            parent_ids,
            groups,
        } = UpstreamPlan::from_config(c)?;

        let hosts: Vec<OriginAddr> = endpoints.iter().map(|e| e.addr.clone()).collect();
        let tls = match endpoints.iter().any(|e| e.addr.tls) {
            true => Some(
                crate::net::tls::client_config(c.origin.ca_file.as_deref())
                    .map_err(|e| format!("origin.ca_file: {e}"))?,
            ),
            false => None,
        };
        let resolver = Resolver::start(&hosts, c.origin.dns_ttl.get())?;
        Ok(Arc::new(UpstreamMap {
            tls,
            health: HealthBoard::new(endpoints.len()),
            endpoints,
            parents,
            parent_ids,
            groups,
            parent_down_time: c.parents.down_time.get(),
            resolver,
        }))
    }

    /// Opens a connection to one address of an endpoint: TLS for an
    /// `https://` one, verified for its host name.
    pub async fn connect(
        &self,
        endpoint: usize,
        addr: std::net::SocketAddr,
        timeout: std::time::Duration,
    ) -> std::io::Result<crate::net::conn::Conn> {
        let origin = &self.endpoints[endpoint].addr;
        match (&self.tls, origin.tls) {
            (Some(config), true) => {
                crate::net::conn::connect_tls(addr, &origin.host, config, timeout).await
            }
            _ => crate::net::conn::connect(addr, timeout).await,
        }
    }

    /// The index of the group named `name`.
    pub fn group(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }

    /// The default group's primary origin's authority: the `Host` of a
    /// request that named none (HTTP/1.0).
    pub fn default_authority(&self) -> String {
        default_authority(&self.groups, &self.endpoints)
    }
}

fn default_authority(groups: &[Group], endpoints: &[Endpoint]) -> String {
    groups
        .iter()
        .position(|g| g.name == crate::config::DEFAULT_GROUP)
        .or(if groups.is_empty() { None } else { Some(0) })
        .and_then(|g| groups[g].members.first())
        .map(|&e| endpoints[e].addr.authority())
        .unwrap_or_default()
}

/// The upstreams a configuration names, parsed but not yet resolved: what
/// start-up checks before it opens anything (see `runtime::plan`).
pub struct UpstreamPlan {
    pub endpoints: Vec<Endpoint>,
    pub parents: Vec<usize>,
    pub parent_ids: Vec<u64>,
    pub groups: Vec<Group>,
}

impl UpstreamPlan {
    /// Every parent and origin group member parsed; an error names it.
    pub fn from_config(c: &Config) -> Result<UpstreamPlan, String> {
        let mut endpoints = Vec::new();
        let mut parents = Vec::new();
        let mut parent_ids = Vec::new();
        for p in &c.parents.addrs {
            let addr = OriginAddr::parse_host_port(p).map_err(|e| format!("parents.addrs: {e}"))?;
            parent_ids.push(parent_id(&addr.authority()));
            parents.push(endpoints.len());
            endpoints.push(Endpoint {
                addr,
                kind: EndpointKind::Parent,
            });
        }
        let mut groups = Vec::new();
        for g in c.effective_origin_groups() {
            let mut members = Vec::new();
            for url in &g.origins {
                let addr =
                    OriginAddr::parse(url).map_err(|e| format!("origin group {}: {e}", g.name))?;
                members.push(endpoints.len());
                endpoints.push(Endpoint {
                    addr,
                    kind: EndpointKind::Origin,
                });
            }
            groups.push(Group {
                name: g.name,
                members,
                failover_statuses: g.failover_statuses,
                health_check: g.health_check,
            });
        }
        Ok(UpstreamPlan {
            endpoints,
            parents,
            parent_ids,
            groups,
        })
    }

    /// As `UpstreamMap::default_authority`.
    pub fn default_authority(&self) -> String {
        default_authority(&self.groups, &self.endpoints)
    }
}
