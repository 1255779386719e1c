//! Rate limits for log lines that a request can trigger. An origin outage or
//! a failing disk would otherwise write one warning per request and bury the
//! log; instead each call site of `warn_limited!` writes at most `BURST`
//! lines per `WINDOW` on each shard, and the first line after a quiet spell
//! says how many were left out. State is per thread (per shard): no locks.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Lines one call site may write per window on one shard.
pub const BURST: u32 = 5;
/// Length of a rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// A fixed-window counter for one call site on one thread.
pub struct RateLimit {
    window_start: Cell<Option<Instant>>,
    written: Cell<u32>,
    suppressed: Cell<u64>,
}

impl RateLimit {
    pub const fn new() -> RateLimit {
        RateLimit {
            window_start: Cell::new(None),
            written: Cell::new(0),
            suppressed: Cell::new(0),
        }
    }

    /// Whether a line may be written at `now`: `Some(n)` with the number of
    /// lines left out since the last one written, or `None` to skip it.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let expired = self
            .window_start
            .get()
            .is_none_or(|start| now.saturating_duration_since(start) >= WINDOW);
        if expired {
            self.window_start.set(Some(now));
            self.written.set(0);
        }
        if self.written.get() >= BURST {
            self.suppressed.set(self.suppressed.get() + 1);
            return None;
        }
        self.written.set(self.written.get() + 1);
        Some(self.suppressed.replace(0))
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::new()
    }
}

/// `tracing::warn!` limited per call site and shard (see the module docs).
/// Lines carry a `suppressed` field: how many were left out before this one.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        ::std::thread_local! {
            static LIMIT: $crate::log_limit::RateLimit = const { $crate::log_limit::RateLimit::new() };
        }
        if let Some(suppressed) = LIMIT.with(|l| l.admit(::std::time::Instant::now())) {
            ::tracing::warn!(suppressed, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_lines_are_counted_until_the_window_ends() {
        let limit = RateLimit::new();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert_eq!(limit.admit(t0), Some(0));
        }
        for _ in 0..7 {
            assert_eq!(limit.admit(t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(
            limit.admit(t0 + WINDOW),
            Some(7),
            "the count of lines left out"
        );
        assert_eq!(limit.admit(t0 + WINDOW), Some(0));
    }

    /// Captures formatted log output.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_macro_limits_each_call_site_separately() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..20 {
                crate::warn_limited!(i, "first site");
                crate::warn_limited!(i, "second site");
            }
        });
        let text = String::from_utf8(out.0.lock().expect("log buffer").clone()).expect("utf-8");
        let count = |what: &str| text.lines().filter(|l| l.contains(what)).count();
        assert_eq!(count("first site"), BURST as usize, "{text}");
        assert_eq!(count("second site"), BURST as usize, "{text}");
        assert!(text.contains("suppressed=0"), "{text}");
    }
}
