//! Tasks and time on the shard's executor. Code outside `runtime` and `net`
//! spawns and sleeps through these functions, so the executor (glommio today)
//! can be patched or replaced in this one place. Every task is local to the
//! shard that spawned it: nothing here crosses threads.

use std::future::Future;
use std::time::Duration;

/// A task running on this shard; awaiting it yields its output, or `None` if
/// it was cancelled before finishing (the shard is stopping).
pub struct Task<T>(glommio::task::JoinHandle<T>);

impl<T> Future for Task<T> {
    type Output = Option<T>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Runs `fut` on this shard's executor alongside the caller; the returned
/// handle gives its output.
pub fn spawn<T: 'static>(fut: impl Future<Output = T> + 'static) -> Task<T> {
    Task(glommio::spawn_local(fut).detach())
}

/// Runs `fut` on this shard's executor; nobody waits for it.
pub fn spawn_detached(fut: impl Future<Output = ()> + 'static) {
    glommio::spawn_local(fut).detach();
}

/// Completes after `d` on this shard's timer.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await;
}

/// Sleeps for a loop that wakes again and again (a poll, a heartbeat): one
/// timer, made at the first sleep and reset for each after, so the loop
/// allocates nothing as it turns.
#[derive(Default)]
pub struct Sleeper(Option<glommio::timer::Timer>);

impl Sleeper {
    /// Completes after `d` on this shard's timer.
    pub async fn sleep(&mut self, d: Duration) {
        let timer = match &mut self.0 {
            Some(t) => {
                t.reset(d);
                t
            }
            None => self.0.insert(glommio::timer::Timer::new(d)),
        };
        timer.await;
    }
}
