//! Shard-local synchronisation between tasks of one executor: an exclusive
//! lock that tasks await in turn (the store's single writer) and the stop
//! signal every connection watches. Neither is `Send`: they never cross
//! shards, and waiting on them never blocks the thread.

use std::cell::Cell;

/// Mutual exclusion between the tasks of one shard, granted in arrival order.
pub struct AsyncLock(glommio::sync::Semaphore);

/// Held while a task has the lock; released on drop.
pub struct AsyncLockGuard<'a>(
    // Kept only for its drop, which returns the permit.
    #[allow(dead_code)] glommio::sync::Permit<'a>,
);

impl AsyncLock {
    pub fn new() -> AsyncLock {
        AsyncLock(glommio::sync::Semaphore::new(1))
    }

    /// Waits for the lock.
    pub async fn lock(&self) -> AsyncLockGuard<'_> {
        match self.0.acquire_permit(1).await {
            Ok(p) => AsyncLockGuard(p),
            // Acquiring fails only on a closed semaphore, and this one is
            // private and never closed.
            Err(e) => unreachable!("AsyncLock semaphore closed: {e}"),
        }
    }
}

impl Default for AsyncLock {
    fn default() -> Self {
        AsyncLock::new()
    }
}

/// Set once when the shard starts stopping; every task awaiting `stopped`
/// wakes at once (idle keep-alive connections then close).
pub struct StopSignal {
    set: Cell<bool>,
    // A semaphore without permits, closed to wake every waiter.
    waiters: glommio::sync::Semaphore,
}

impl StopSignal {
    pub fn new() -> StopSignal {
        StopSignal {
            set: Cell::new(false),
            waiters: glommio::sync::Semaphore::new(0),
        }
    }

    pub fn trigger(&self) {
        self.set.set(true);
        self.waiters.close();
    }

    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Resolves once `trigger` was called.
    pub async fn stopped(&self) {
        if !self.is_set() {
            let _ = self.waiters.acquire(1).await;
        }
    }
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal::new()
    }
}
