//! The service manager's view of the server (systemd's notify protocol,
//! `sd_notify(3)`): `READY=1` once every shard serves, a `STATUS=` line with
//! request rate, hit ratio and open connections, `STOPPING=1` at a stop, and
//! `WATCHDOG=1` only while every shard's event loop is turning, so that a
//! stuck shard gets the service restarted. After a takeover the new
//! process also says `MAINPID=`, so that systemd follows it.
//!
//! Each shard runs a heartbeat task that bumps its counter; a thread of its
//! own checks the counters and speaks to systemd. Without `NOTIFY_SOCKET`
//! (not under systemd, or `Type=simple`) nothing is sent and no thread runs.

use crate::admin::metrics::ShardMetrics;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// How often a shard's heartbeat task bumps its counter.
pub const HEARTBEAT: Duration = Duration::from_millis(100);

/// How often the status line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Heartbeat counters, one per shard.
pub type Heartbeats = Arc<Vec<AtomicU64>>;

/// A connected notify socket, or nothing when not under a service manager.
pub struct Notifier {
    socket: UnixDatagram,
    addr: UnixAddr,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
    pub fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = name.as_encoded_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(abstract_name) => UnixAddr::from_abstract_name(abstract_name),
            None => UnixAddr::from_pathname(std::path::Path::new(&name)),
        };
        let made = addr.and_then(|addr| Ok((UnixDatagram::unbound()?, addr)));
        match made {
            Ok((socket, addr)) => Some(Notifier { socket, addr }),
            Err(e) => {
                tracing::warn!(
                    "NOTIFY_SOCKET {name:?} unusable, systemd will not hear from edgeslab: {e}"
                );
                None
            }
        }
    }

    pub fn send(&self, state: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.addr)
            .map(|_| ())
    }
}

/// A reload begins (`RELOADING=1` with the monotonic clock's time, as
/// systemd's reload protocol asks).
pub fn reloading(notifier: Option<&Notifier>) {
    let Some(n) = notifier else {
        return;
    };
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
    let _ = n.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}

/// The server stops accepting and drains.
pub fn stopping(notifier: Option<&Notifier>) {
    if let Some(n) = notifier {
        let _ = n.send("STOPPING=1\nSTATUS=stopping: draining open requests");
    }
}

/// The reload ended (applied or refused): the service is ready again.
pub fn reloaded(notifier: Option<&Notifier>) {
    if let Some(n) = notifier {
        let _ = n.send("READY=1");
    }
}

/// How often systemd expects `WATCHDOG=1`, when it asked for it (and asked
/// this process, not another, through `WATCHDOG_PID`).
fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The status line: request rate over the last interval, hit ratio since
/// start, open connections.
fn status(metrics: &[ShardMetrics], last: &mut (Instant, u64)) -> String {
    let sum = |f: fn(&ShardMetrics) -> u64| metrics.iter().map(f).sum::<u64>();
    let requests = sum(|m| m.viewer.requests.load(Relaxed));
    let hits = sum(|m| m.viewer.hits.load(Relaxed));
    let misses = sum(|m| m.viewer.misses.load(Relaxed));
    let open = sum(|m| m.viewer.connections_active.load(Relaxed));
    let now = Instant::now();
    let secs = now.duration_since(last.0).as_secs_f64().max(0.001);
    let rate = requests.saturating_sub(last.1) as f64 / secs;
    *last = (now, requests);
    let ratio = if hits + misses == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", 100.0 * hits as f64 / (hits + misses) as f64)
    };
    format!("STATUS={rate:.0} req/s, hit ratio {ratio}, {open} connections")
}

/// Says the server is ready, then keeps systemd informed on a thread of its
/// own until `stop`: status lines, and watchdog pings while every shard's
/// heartbeat moves. `took_over`: this process replaced another.
pub fn serve(
    notifier: Notifier,
    heartbeats: Heartbeats,
    metrics: Arc<Vec<ShardMetrics>>,
    stop: Arc<AtomicBool>,
    took_over: bool,
) -> io::Result<()> {
    let mut last = (Instant::now(), 0u64);
    let first_status = status(&metrics, &mut last);
    let ready = if took_over {
        format!("MAINPID={}\nREADY=1\n{first_status}", std::process::id())
    } else {
        format!("READY=1\n{first_status}")
    };
    if let Err(e) = notifier.send(&ready) {
        tracing::warn!("cannot tell systemd the server is ready: {e}");
    }
    let watchdog = watchdog_interval();
    // Pings at half the interval, and the shards' heartbeats must move
    // between two checks: a shard stuck for longer than that gets no ping.
    let tick = watchdog.map_or(STATUS_EVERY, |w| {
        (w / 2).min(STATUS_EVERY).max(HEARTBEAT * 3)
    });
    std::thread::Builder::new()
        .name("edgeslab-notify".into())
        .spawn(move || {
            let mut seen: Vec<u64> = heartbeats.iter().map(|h| h.load(Relaxed)).collect();
            let mut next_status = Instant::now() + STATUS_EVERY;
            let mut next_watch = Instant::now() + tick;
            let mut stalled_logged = false;
            while !stop.load(Relaxed) {
                std::thread::sleep(tick.min(Duration::from_millis(200)));
                let now = Instant::now();
                if stop.load(Relaxed) {
                    break;
                }
                if now >= next_status {
                    next_status = now + STATUS_EVERY;
                    let _ = notifier.send(&status(&metrics, &mut last));
                }
                if watchdog.is_none() || now < next_watch {
                    continue;
                }
                next_watch = now + tick;
                // Every heartbeat must have moved since the last look.
                let stuck: Vec<usize> = heartbeats
                    .iter()
                    .zip(seen.iter_mut())
                    .enumerate()
                    .filter_map(|(i, (h, s))| {
                        let v = h.load(Relaxed);
                        let moved = v != *s;
                        *s = v;
                        (!moved).then_some(i)
                    })
                    .collect();
                if stuck.is_empty() {
                    stalled_logged = false;
                    let _ = notifier.send("WATCHDOG=1");
                } else if !stalled_logged {
                    stalled_logged = true;
                    tracing::error!(
                        shards = ?stuck,
                        "shard event loop stuck: no watchdog ping, systemd will restart the service"
                    );
                }
            }
            // A stop not from a signal (a takeover) is said here.
            stopping(Some(&notifier));
        })?;
    Ok(())
}
