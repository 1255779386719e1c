//! The service under systemd, through the real binary: the notify protocol
//! (READY, STATUS, WATCHDOG, STOPPING, MAINPID after a takeover) spoken to a
//! datagram socket the test binds as systemd would, a stuck shard that
//! stops the watchdog pings, and the unit file as `systemd-analyze` reads
//! it.

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};
use support::*;

/// systemd's end of the notify socket.
struct Manager {
    socket: UnixDatagram,
    path: std::path::PathBuf,
    _dir: TempDir,
}

impl Manager {
    fn new() -> Manager {
        let dir = TempDir::new("notify");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Manager {
            socket,
            path,
            _dir: dir,
        }
    }

    /// Every message that arrives within `window`.
    fn collect(&self, window: Duration) -> Vec<String> {
        let end = Instant::now() + window;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if let Ok(n) = self.socket.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
        got
    }

    fn edge(&self, origin: &Origin, watchdog: Duration) -> EdgeBuilder {
        Edge::builder()
            .origin(origin.addr)
            .env("NOTIFY_SOCKET", self.path.to_str().unwrap())
            .env("WATCHDOG_USEC", &watchdog.as_micros().to_string())
    }
}

fn origin() -> Origin {
    Origin::start(|_| Script::ok("max-age=60", b"hello".to_vec()))
}

fn count(msgs: &[String], line: &str) -> usize {
    msgs.iter().filter(|m| m.lines().any(|l| l == line)).count()
}

#[test]
fn ready_status_watchdog_and_stopping_reach_systemd() {
    let origin = origin();
    let manager = Manager::new();
    let mut edge = manager.edge(&origin, Duration::from_secs(1)).start();
    for _ in 0..20 {
        assert_eq!(get(edge.addr, "/x").status, 200);
    }
    let msgs = manager.collect(Duration::from_millis(6_500));
    let ready = msgs
        .iter()
        .find(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 in {msgs:?}"));
    assert!(ready.contains("STATUS="), "{ready}");
    assert!(!ready.contains("MAINPID="), "not a takeover: {ready}");
    // 1 s watchdog: a ping every half second or so.
    let pings = count(&msgs, "WATCHDOG=1");
    assert!(pings >= 8, "{pings} pings in 6.5 s: {msgs:?}");
    let status = msgs
        .iter()
        .rev()
        .find_map(|m| m.lines().find(|l| l.starts_with("STATUS=")))
        .unwrap_or_else(|| panic!("no STATUS line: {msgs:?}"));
    assert!(
        status.contains("req/s") && status.contains("hit ratio 95.0%"),
        "19 hits of 20 requests: {status}"
    );
    assert_eq!(edge.stop().and_then(|s| s.code()), Some(0));
    let last = manager.collect(Duration::from_millis(300));
    assert!(
        last.iter().any(|m| m.contains("STOPPING=1")),
        "no STOPPING=1: {last:?}"
    );
}

#[test]
fn a_stuck_shard_gets_no_watchdog_ping() {
    let origin = origin();
    let manager = Manager::new();
    // Shard 1's event loop blocks 2 s after start (test-only failpoint).
    let edge = manager
        .edge(&origin, Duration::from_secs(1))
        .env("EDGESLAB_TEST_STALL_SHARD", "1")
        .start();
    assert!(edge.shards >= 2, "needs two shards");
    let early = manager.collect(Duration::from_millis(1_200));
    assert!(count(&early, "WATCHDOG=1") >= 1, "pings before: {early:?}");
    // What was sent meanwhile (before the stall was seen) is read and
    // dropped, so that the window below holds only what came after.
    let _ = manager.collect(Duration::from_millis(2_500));
    let late = manager.collect(Duration::from_millis(3_000));
    assert_eq!(
        count(&late, "WATCHDOG=1"),
        0,
        "pings while shard 1 is stuck: {late:?}"
    );
    assert!(
        edge.stderr().contains("shard event loop stuck"),
        "{}",
        edge.stderr()
    );
}

#[test]
fn a_takeover_tells_systemd_its_new_main_pid() {
    let origin = origin();
    let manager = Manager::new();
    let dir = TempDir::new("notify-takeover");
    let builder = manager
        .edge(&origin, Duration::from_secs(5))
        .dir(dir.path());
    let mut old = builder.start();
    let new = builder.clone().arg("--takeover").start();
    assert!(old.wait_exit(Duration::from_secs(30)).is_some());
    let msgs = manager.collect(Duration::from_millis(500));
    let expected = format!("MAINPID={}", new.pid());
    assert!(
        msgs.iter()
            .any(|m| m.lines().any(|l| l == expected) && m.contains("READY=1")),
        "no {expected} with READY=1 in {msgs:?}"
    );
}

/// `systemd-analyze` where it is installed (Debian's systemd package).
fn systemd_analyze(args: &[&str]) -> Option<std::process::Output> {
    std::process::Command::new("systemd-analyze")
        .args(args)
        .output()
        .ok()
}

#[test]
fn the_unit_verifies_and_scores_well() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/edgeslab.service"
    ))
    .unwrap();
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "User=edgeslab",
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "io_uring_setup io_uring_enter io_uring_register",
    ] {
        assert!(unit.contains(key), "the unit lacks {key}");
    }
    let dir = TempDir::new("unit");
    // verify checks that ExecStart's binary exists: point it at this build.
    let path = dir.path().join("edgeslab.service");
    std::fs::write(&path, unit.replace("/usr/bin/edgeslab", bin())).unwrap();
    let path = path.to_str().unwrap();
    let Some(verify) = systemd_analyze(&["verify", path]) else {
        eprintln!("systemd-analyze is not installed: only the unit's keys were checked");
        return;
    };
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = systemd_analyze(&["security", "--offline=true", path]).unwrap();
    let text = String::from_utf8_lossy(&security.stdout).to_string();
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for edgeslab.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in {text}"));
    assert!(score <= 2.5, "exposure {score}: {text}");
}
