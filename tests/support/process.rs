//! Processes and the machine around them: temporary directories, the built
//! binary's path, /proc views of a running process, and bounded waiting.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A number unique within this test process, for file and directory names.
pub fn next_id() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A directory under /tmp (ext4 here, so O_DIRECT works), removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = next_id();
        let p =
            std::env::temp_dir().join(format!("edgeslab-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_edgeslab")
}

/// The open-file flags (as in /proc/PID/fdinfo) of every descriptor of
/// process `pid` that refers to `target`.
pub fn fd_flags(pid: u32, target: &Path) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|fd| std::fs::read_link(fd.path()).ok().as_deref() == Some(target))
        .filter_map(|fd| {
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .ok()?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
            u32::from_str_radix(flags.trim(), 8).ok()
        })
        .collect()
}

/// Threads of a process: (name, allowed cpus).
pub fn threads(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in dir.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_string();
        out.push((comm.trim().to_string(), cpus));
    }
    out
}

/// Waits (bounded) until `cond` holds.
pub fn eventually(max: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}
