//! One shard's client of the origin: where it is, how long to wait for it,
//! and its pool of persistent connections. A request checks a connection
//! out (pooled if one is alive, else new), exchanges over it (see
//! `exchange`) and checks it back in only when the exchange ended cleanly.

use super::pool::ConnPool;
use super::{UpstreamError, UpstreamErrorKind};
use crate::http::Limits;
use crate::net::conn::{self, Conn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

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
    pub opened: AtomicU64,
    pub reused: AtomicU64,
    pub failures: AtomicU64,
    pub timeouts: AtomicU64,
}

pub struct OriginClient {
    addr: SocketAddr,
    pub(super) settings: OriginSettings,
    pool: ConnPool,
    pub(super) stats: Arc<UpstreamStats>,
}

/// A connection out of the pool, and whether it had served requests before
/// (a reused connection may turn out closed by the origin).
pub struct Checkout {
    pub conn: Conn,
    pub reused: bool,
}

impl OriginClient {
    pub fn new(
        addr: SocketAddr,
        settings: OriginSettings,
        stats: Arc<UpstreamStats>,
    ) -> OriginClient {
        OriginClient {
            addr,
            pool: ConnPool::new(settings.max_idle, settings.pool_idle_timeout),
            settings,
            stats,
        }
    }

    pub fn settings(&self) -> &OriginSettings {
        &self.settings
    }

    pub async fn connect(&self) -> Result<Conn, UpstreamError> {
        match conn::connect(self.addr, self.settings.connect_timeout).await {
            Ok(conn) => {
                self.stats.opened.fetch_add(1, Relaxed);
                Ok(conn)
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Relaxed);
                let kind = if e.kind() == std::io::ErrorKind::TimedOut {
                    UpstreamErrorKind::ConnectTimeout
                } else {
                    UpstreamErrorKind::ConnectRefused
                };
                Err(UpstreamError::new(
                    kind,
                    format!("connect to {}: {e}", self.addr),
                ))
            }
        }
    }

    /// A pooled connection if one is alive, else a new one.
    pub async fn checkout(&self) -> Result<Checkout, UpstreamError> {
        if let Some(conn) = self.pool.take() {
            self.stats.reused.fetch_add(1, Relaxed);
            return Ok(Checkout { conn, reused: true });
        }
        Ok(Checkout {
            conn: self.connect().await?,
            reused: false,
        })
    }

    /// Returns a connection whose last exchange ended cleanly.
    pub fn checkin(&self, conn: Conn) {
        self.pool.put(conn);
    }

    pub fn idle_count(&self) -> usize {
        self.pool.idle()
    }
}
