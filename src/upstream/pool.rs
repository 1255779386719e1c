//! Idle persistent connections of one shard to one upstream. Connections are
//! reused newest first (the one most likely still open), checked for a peer
//! close without blocking before reuse, and dropped once idle too long or
//! when the pool is full. Shard-local: no locks. It knows nothing of HTTP;
//! callers return a connection only after a cleanly ended exchange.

use crate::net::conn::Conn;
use std::cell::RefCell;
use std::time::{Duration, Instant};

pub struct ConnPool {
    idle: RefCell<Vec<(Conn, Instant)>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl ConnPool {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> ConnPool {
        ConnPool {
            idle: RefCell::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// The newest idle connection that is still open, if any.
    pub fn take(&self) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let now = Instant::now();
        while let Some((conn, since)) = idle.pop() {
            if now.duration_since(since) < self.idle_timeout && conn.is_idle_and_open() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps a connection for reuse; the oldest goes when the pool is full.
    /// One with unread bytes is dropped: they belong to no request.
    pub fn put(&self, mut conn: Conn) {
        if !conn.buffered().is_empty() || self.max_idle == 0 {
            return;
        }
        conn.release_buffer();
        let mut idle = self.idle.borrow_mut();
        if idle.len() >= self.max_idle {
            idle.remove(0);
        }
        idle.push((conn, Instant::now()));
    }

    pub fn idle(&self) -> usize {
        self.idle.borrow().len()
    }
}
