//! Active health checks of origin groups that configure them: every
//! `interval`, a GET of the check path on each member (each address of
//! it), judged healthy on a 2xx/3xx within `timeout`. A member changes
//! state only after `unhealthy_threshold` failures (or `healthy_threshold`
//! successes) in a row, so one slow answer does not flap it. The results
//! live in a board of atomics every shard reads; checks run on one shard.

use super::map::UpstreamMap;
use crate::http::{Limits, parse_response};
use crate::runtime::task;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Whether each endpoint is taking requests, as the checks last judged.
pub struct HealthBoard {
    healthy: Vec<AtomicBool>,
}

impl HealthBoard {
    pub fn new(endpoints: usize) -> HealthBoard {
        HealthBoard {
            healthy: (0..endpoints).map(|_| AtomicBool::new(true)).collect(),
        }
    }

    pub fn is_healthy(&self, endpoint: usize) -> bool {
        self.healthy.get(endpoint).is_none_or(|h| h.load(Relaxed))
    }

    fn set(&self, endpoint: usize, healthy: bool) {
        if let Some(h) = self.healthy.get(endpoint) {
            h.store(healthy, Relaxed);
        }
    }
}

/// Starts one checking task per group member that has checks configured.
/// A task ends once its map is no longer in use (a reload replaced it).
pub fn spawn_checks(map: &Arc<UpstreamMap>) {
    for group in &map.groups {
        let Some(check) = group.health_check.clone() else {
            continue;
        };
        for &member in &group.members {
            let weak = Arc::downgrade(map);
            let check = check.clone();
            task::spawn_detached(async move {
                let mut run = (0u32, 0u32); // successes, failures in a row
                while let Some(map) = weak.upgrade() {
                    let ok = probe(&map, member, &check.path, check.timeout.get()).await;
                    run = if ok { (run.0 + 1, 0) } else { (0, run.1 + 1) };
                    let was = map.health.is_healthy(member);
                    let name = map.endpoints[member].addr.authority();
                    if was && run.1 >= check.unhealthy_threshold {
                        tracing::warn!(origin = %name, failures = run.1, "origin failed its health checks: marked down");
                        map.health.set(member, false);
                    } else if !was && run.0 >= check.healthy_threshold {
                        tracing::info!(origin = %name, "origin passes its health checks again");
                        map.health.set(member, true);
                    }
                    drop(map);
                    task::sleep(check.interval.get()).await;
                }
            });
        }
    }
}

/// One check: healthy when any address answers 2xx/3xx in time.
async fn probe(map: &UpstreamMap, endpoint: usize, path: &str, timeout: Duration) -> bool {
    let addr = &map.endpoints[endpoint].addr;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: edgeslab-health-check\r\nConnection: close\r\n\r\n",
        addr.authority()
    );
    for a in map.resolver.addrs(endpoint).iter() {
        let deadline = Instant::now() + timeout;
        let Ok(mut c) = map.connect(endpoint, *a, timeout).await else {
            continue;
        };
        if c.write_all(request.as_bytes(), timeout).await.is_err() {
            continue;
        }
        loop {
            match parse_response(c.buffered(), &Limits::default(), false) {
                Ok(Some((head, n))) if (100..200).contains(&head.status) => c.consume(n),
                Ok(Some((head, _))) => return (200..400).contains(&head.status),
                Ok(None) => match c.read_more_until(deadline, "health check timeout").await {
                    Ok(n) if n > 0 => {}
                    _ => break,
                },
                Err(_) => break,
            }
        }
    }
    false
}
