//! Test-only fault injection on the cache device. The fault code exists only
//! in builds with the `failpoints` cargo feature, which the tests turn on
//! (a dev-dependency of the package on itself); a release build has none.
//! With the feature, the environment variable `EDGESLAB_TEST_FAULTS`
//! switches it on at run time (e.g. `read-eio=3,write-eio=5`: every third
//! read and every fifth segment write fail with EIO; `write-delay-ms=N`:
//! every segment write takes N ms longer, as a slow or busy device would);
//! unset, it costs one branch per I/O. Without the feature, any `EDGESLAB_TEST_*` variable set
//! gets a warning that this build ignores it, never silence.

use std::io;

#[cfg(not(feature = "failpoints"))]
pub use absent::Faults;
#[cfg(feature = "failpoints")]
pub use injecting::Faults;

#[cfg(feature = "failpoints")]
mod injecting {
    use super::io;
    use std::cell::Cell;

    /// Counts device I/O and fails every Nth read or write, as asked.
    #[derive(Debug, Default)]
    pub struct Faults {
        read_eio_every: u64,
        write_eio_every: u64,
        write_delay_ms: u64,
        reads: Cell<u64>,
        writes: Cell<u64>,
    }

    impl Faults {
        pub fn from_env() -> Faults {
            let mut f = Faults::default();
            if let Ok(spec) = std::env::var("EDGESLAB_TEST_FAULTS") {
                for part in spec.split(',') {
                    match part.trim().split_once('=') {
                        Some(("read-eio", n)) => f.read_eio_every = n.parse().unwrap_or(0),
                        Some(("write-eio", n)) => f.write_eio_every = n.parse().unwrap_or(0),
                        Some(("write-delay-ms", n)) => f.write_delay_ms = n.parse().unwrap_or(0),
                        _ => {}
                    }
                }
                if f.read_eio_every + f.write_eio_every + f.write_delay_ms > 0 {
                    tracing::warn!(spec = %spec, "cache device fault injection is ON (test only)");
                }
            }
            f
        }

        #[cfg(test)]
        pub fn for_test(read_eio_every: u64, write_eio_every: u64) -> Faults {
            Faults {
                read_eio_every,
                write_eio_every,
                ..Faults::default()
            }
        }

        /// Before a device read: an injected EIO, or go ahead.
        pub fn on_read(&self) -> io::Result<()> {
            Self::fire(self.read_eio_every, &self.reads)
        }

        /// Before a segment write: an injected EIO, or go ahead.
        pub fn on_write(&self) -> io::Result<()> {
            Self::fire(self.write_eio_every, &self.writes)
        }

        /// How much longer a segment write takes, if asked.
        pub fn write_delay(&self) -> Option<std::time::Duration> {
            (self.write_delay_ms > 0).then(|| std::time::Duration::from_millis(self.write_delay_ms))
        }

        fn fire(every: u64, count: &Cell<u64>) -> io::Result<()> {
            if every == 0 {
                return Ok(());
            }
            count.set(count.get() + 1);
            if count.get().is_multiple_of(every) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            Ok(())
        }
    }
}

#[cfg(not(feature = "failpoints"))]
mod absent {
    use super::io;

    /// No fault injection in this build: every call goes ahead.
    #[derive(Debug, Default)]
    pub struct Faults;

    /// Variables of this prefix are test switches.
    const TEST_PREFIX: &str = "EDGESLAB_TEST_";

    impl Faults {
        /// Says so when a test switch is set: a test run against this build
        /// would otherwise pass or fail for the wrong reason.
        pub fn from_env() -> Faults {
            for (name, _) in std::env::vars_os() {
                if let Some(name) = name.to_str().filter(|n| n.starts_with(TEST_PREFIX)) {
                    tracing::warn!(
                        variable = name,
                        "this build has no fault injection (built without the `failpoints` \
                         feature); the variable is ignored"
                    );
                }
            }
            Faults
        }

        #[inline(always)]
        pub fn on_read(&self) -> io::Result<()> {
            Ok(())
        }

        #[inline(always)]
        pub fn on_write(&self) -> io::Result<()> {
            Ok(())
        }

        #[inline(always)]
        pub fn write_delay(&self) -> Option<std::time::Duration> {
            None
        }
    }
}

#[cfg(all(test, feature = "failpoints"))]
mod tests {
    use super::Faults;

    #[test]
    fn every_nth_read_and_write_fails_with_eio() {
        let f = Faults::default();
        assert!((0..10).all(|_| f.on_read().is_ok()), "off unless asked");
        let f = Faults::for_test(3, 2);
        let reads: Vec<bool> = (0..6).map(|_| f.on_read().is_err()).collect();
        assert_eq!(reads, [false, false, true, false, false, true]);
        let e = f.on_write().and_then(|_| f.on_write()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
    }
}
