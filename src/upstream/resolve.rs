//! Addresses of upstream hosts. Every name is resolved once at start-up (a
//! name with no address stops the start with an error naming it), then
//! again every `dns_ttl` on a thread of its own — DNS must never block a
//! shard. A failed re-resolution keeps the last good addresses. Shards read
//! the current list without locking for long: a lookup clones an `Arc`.

use super::OriginAddr;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

pub struct Resolver {
    hosts: Vec<Host>,
}

struct Host {
    addr: OriginAddr,
    current: RwLock<Arc<Vec<SocketAddr>>>,
}

impl Resolver {
    /// Resolves every host now; the thread re-resolving them stops when
    /// the resolver is dropped.
    pub fn start(hosts: &[OriginAddr], ttl: Duration) -> Result<Arc<Resolver>, String> {
        let mut resolved = Vec::with_capacity(hosts.len());
        for h in hosts {
            let addrs = lookup(h)?;
            resolved.push(Host {
                addr: h.clone(),
                current: RwLock::new(Arc::new(addrs)),
            });
        }
        let resolver = Arc::new(Resolver { hosts: resolved });
        let needs_refresh = resolver
            .hosts
            .iter()
            .any(|h| h.addr.host.parse::<std::net::IpAddr>().is_err());
        if needs_refresh {
            let weak = Arc::downgrade(&resolver);
            std::thread::Builder::new()
                .name("edgeslab-dns".into())
                .spawn(move || refresh_loop(weak, ttl))
                .map_err(|e| format!("cannot start the resolver thread: {e}"))?;
        }
        Ok(resolver)
    }

    /// The addresses of host `id` (its index in the start-up list).
    pub fn addrs(&self, id: usize) -> Arc<Vec<SocketAddr>> {
        match self.hosts.get(id) {
            Some(h) => h.current.read().map(|a| a.clone()).unwrap_or_default(),
            None => Arc::default(),
        }
    }
}

fn lookup(h: &OriginAddr) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = (h.host.as_str(), h.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host {:?}: {e}", h.host))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("host {:?} has no address", h.host));
    }
    Ok(addrs)
}

fn refresh_loop(resolver: Weak<Resolver>, ttl: Duration) {
    loop {
        std::thread::sleep(ttl);
        let Some(r) = resolver.upgrade() else { return };
        for h in &r.hosts {
            if h.addr.host.parse::<std::net::IpAddr>().is_ok() {
                continue;
            }
            match lookup(&h.addr) {
                Ok(addrs) => {
                    let mut current = match h.current.write() {
                        Ok(c) => c,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    if **current != addrs {
                        tracing::info!(host = %h.addr.host, ?addrs, "upstream addresses changed");
                        *current = Arc::new(addrs);
                    }
                }
                Err(e) => {
                    crate::warn_limited!("{e}; keeping the previous addresses");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_localhost_resolve() {
        let hosts = [
            OriginAddr::parse("http://127.0.0.1:81").unwrap(),
            OriginAddr::parse("http://localhost:82").unwrap(),
        ];
        let r = Resolver::start(&hosts, Duration::from_secs(60)).unwrap();
        assert_eq!(*r.addrs(0), vec!["127.0.0.1:81".parse().unwrap()]);
        assert!(
            r.addrs(1)
                .iter()
                .all(|a| a.port() == 82 && a.ip().is_loopback())
        );
        assert!(!r.addrs(1).is_empty());
        assert!(r.addrs(7).is_empty());
    }

    #[test]
    fn an_unknown_name_is_an_error_naming_it() {
        let hosts = [OriginAddr::parse("http://no-such-host.invalid:80").unwrap()];
        let err = Resolver::start(&hosts, Duration::from_secs(60))
            .err()
            .unwrap();
        assert!(err.contains("no-such-host.invalid"), "{err}");
    }
}
