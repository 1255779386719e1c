//! What the benches that drive the real binary share: free loopback
//! addresses, starting edgeslab on a config and waiting for its listener,
//! and a process's CPU time.

use std::io::BufRead;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// An edgeslab process, killed when dropped.
pub struct Running(pub Child);

impl Running {
    /// Kills the process and waits for it (again: a no-op).
    pub fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `edgeslab serve --config config` (the binary `EDGESLAB_BIN`
/// names, for an A/B of two builds, else this package's) and waits, at
/// most 30 s, until `addr` accepts connections.
pub fn spawn_edge(config: &Path, addr: SocketAddr) -> Running {
    let bin = std::env::var_os("EDGESLAB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_edgeslab")));
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start edgeslab");
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("edgeslab did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Running(child)
}

/// utime + stime of every thread of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 of stat(5), counted from the state (field 3).
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// For the benches' origins: reads one request head and returns its request
/// line (the fields are skipped); None when the connection ends first.
pub fn read_request_line(reader: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        if h == "\r\n" {
            return Some(line);
        }
    }
}
