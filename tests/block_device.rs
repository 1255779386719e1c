//! A raw block device as the cache: a loop device over a file, when the
//! machine allows one (root and a loop driver). The device's own size is
//! used, hits come from it with O_DIRECT, and a clean stop comes back warm.

mod support;

use std::process::Command;
use support::*;

/// A loop device over a sparse file, detached on drop.
struct Loop {
    dev: String,
    _dir: TempDir,
}

impl Loop {
    fn new(size: u64) -> Option<Loop> {
        let dir = TempDir::new("loop");
        let file = dir.path().join("backing.img");
        std::fs::File::create(&file).ok()?.set_len(size).ok()?;
        let out = Command::new("losetup")
            .args(["--find", "--show", "--direct-io=on", file.to_str()?])
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: losetup: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        let dev = String::from_utf8(out.stdout).ok()?.trim().to_string();
        Some(Loop { dev, _dir: dir })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup")
            .args(["--detach", &self.dev])
            .status();
    }
}

#[test]
fn a_raw_block_device_serves_with_its_own_size() {
    let Some(lo) = Loop::new(192 << 20) else {
        eprintln!("skipped: no loop device available here");
        return;
    };
    let origin =
        Origin::start(|seen| Script::ok("max-age=600", bytes(300_000, seen.target.len() as u64)));
    let dir = TempDir::new("blockdev");
    let on_device = Edge::builder().dir(dir.path()).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--origin",
        &format!("http://{}", origin.addr),
        "--cache",
        &lo.dev,
        "--cores",
        "0",
        "--admin",
        "127.0.0.1:0",
    ]);
    let mut edge = on_device.start();
    let first = get(edge.addr, "/on-the-device");
    assert!(first.cache_status().contains("stored"));
    let second = get(edge.addr, "/on-the-device");
    assert!(second.is_hit());
    assert_eq!(second.body, bytes(300_000, "/on-the-device".len() as u64));
    // The device is open with O_DIRECT.
    let flags = fd_flags(edge.pid(), std::path::Path::new(&lo.dev));
    let direct = flags
        .iter()
        .filter(|&&f| f & libc::O_DIRECT as u32 != 0)
        .count();
    assert_eq!(direct, flags.len());
    assert!(direct >= 1, "the block device is open with O_DIRECT");
    assert!(edge.stop().unwrap().success());
    let edge = on_device.start();
    assert!(edge.stderr().contains("warm start"), "{}", edge.stderr());
    assert!(get(edge.addr, "/on-the-device").is_hit());
}
