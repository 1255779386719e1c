//! One shard's pool of persistent origin connections. Connections are reused
//! newest first (the one most likely still open), checked for a peer close
//! without blocking before reuse, and dropped once idle too long. The pool is
//! shard-local: no locks, no sharing.

use super::{UpstreamError, UpstreamErrorKind};
use crate::http::{Limits, ResponseHead, parse_response};
use crate::net::conn::Conn;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub max_idle: usize,
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

pub struct OriginPool {
    addr: SocketAddr,
    settings: PoolSettings,
    idle: RefCell<Vec<(Conn, Instant)>>,
    stats: Arc<UpstreamStats>,
}

/// A connection out of the pool, and whether it had served requests before.
pub struct Checkout {
    pub conn: Conn,
    pub reused: bool,
}

impl OriginPool {
    pub fn new(addr: SocketAddr, settings: PoolSettings, stats: Arc<UpstreamStats>) -> OriginPool {
        OriginPool {
            addr,
            settings,
            idle: RefCell::new(Vec::new()),
            stats,
        }
    }

    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let now = Instant::now();
        while let Some((conn, since)) = idle.pop() {
            if now.duration_since(since) < self.settings.pool_idle_timeout
                && conn.is_idle_and_open()
            {
                return Some(conn);
            }
        }
        None
    }

    pub async fn connect(&self) -> Result<Conn, UpstreamError> {
        match crate::net::conn::connect(self.addr, self.settings.connect_timeout).await {
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
        if let Some(conn) = self.take_idle() {
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
        if !conn.buffered().is_empty() {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        if idle.len() >= self.settings.max_idle {
            idle.remove(0);
        }
        idle.push((conn, Instant::now()));
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().len()
    }

    /// Sends a request head on a checked-out connection.
    pub async fn send_head(&self, conn: &mut Conn, head: &[u8]) -> Result<(), UpstreamError> {
        conn.write_all(head, self.settings.idle_timeout)
            .await
            .map_err(|e| UpstreamError::from_io(e, UpstreamErrorKind::WriteFailed))
    }

    /// Reads the final response head, skipping interim 1xx responses.
    pub async fn read_head(
        &self,
        conn: &mut Conn,
        request_was_head: bool,
    ) -> Result<ResponseHead, UpstreamError> {
        let deadline = Instant::now() + self.settings.first_byte_timeout;
        loop {
            match parse_response(conn.buffered(), &self.settings.limits, request_was_head) {
                Ok(Some((head, n))) => {
                    conn.consume(n);
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    if head.status == 101 {
                        return Err(UpstreamError::new(
                            UpstreamErrorKind::BadResponse,
                            "origin switched protocols, which is not supported",
                        ));
                    }
                    return Ok(head);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(UpstreamError::new(
                        UpstreamErrorKind::BadResponse,
                        format!("invalid response head: {e:?}"),
                    ));
                }
            }
            match conn.fill_until(deadline, "no response head in time").await {
                Ok(0) => {
                    return Err(UpstreamError::new(
                        UpstreamErrorKind::Closed,
                        "origin closed the connection before a response",
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::TimedOut {
                        self.stats.timeouts.fetch_add(1, Relaxed);
                    }
                    return Err(UpstreamError::from_io(
                        e,
                        UpstreamErrorKind::FirstByteTimeout,
                    ));
                }
            }
        }
    }
}
