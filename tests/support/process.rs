//! Processes and the machine around them: temporary directories, the built
//! binary's path, /proc views of a running process, and bounded waiting.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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

/// The edgeslab binary that cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_edgeslab")
}

/// Makes the child `cmd` starts receive SIGKILL when the thread that
/// started it ends: a test process killed from outside (a CI timeout, a
/// Ctrl-C) leaves no edgeslab running, since `Drop` does not run then.
/// The kernel ties this to the starting thread, so an edge must be started
/// on the test's own thread (each test runs on one), not on a helper thread
/// that ends before the test does.
pub fn dies_with_test(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the
    // parent; it is all the closure does between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Makes the process `cmd` starts get EPERM from the system calls
/// numbered `calls`, as a service manager's seccomp filter does
/// (systemd's `SystemCallFilter=~…` with `SystemCallErrorNumber=EPERM`):
/// a classic BPF filter installed between fork and exec. On another
/// architecture than x86-64 the filter lets every call through.
pub fn refuse_calls<'c>(cmd: &'c mut Command, calls: &[libc::c_long]) -> &'c mut Command {
    use std::os::unix::process::CommandExt;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const LOAD_WORD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JUMP_IF: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RETURN: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code, jt, k| libc::sock_filter { code, jt, jf: 0, k };
    // seccomp_data: the call's number at offset 0, the architecture at 4.
    let n = calls.len();
    let mut program = vec![
        op(LOAD_WORD, 0, 4),
        op(JUMP_IF, 1, AUDIT_ARCH_X86_64),
        op(RETURN, 0, libc::SECCOMP_RET_ALLOW),
        op(LOAD_WORD, 0, 0),
    ];
    for (i, &call) in calls.iter().enumerate() {
        // A match jumps past the rest and the allow, to the refusal.
        program.push(op(JUMP_IF, (n - i) as u8, call as u32));
    }
    program.push(op(RETURN, 0, libc::SECCOMP_RET_ALLOW));
    program.push(op(RETURN, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32));
    // SAFETY: between fork and exec the closure only makes two prctl
    // calls over `program`, which it owns and does not change.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_ptr().cast_mut(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &raw const prog,
                ) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Runs the edgeslab binary with `args` to completion and returns what it
/// printed. A run still going after `max` is killed and fails the test, so
/// a command that should exit at once (a config check, a refused start)
/// cannot hang the suite when it does not.
pub fn run_bin(args: &[&str], max: Duration) -> Output {
    let mut child = dies_with_test(&mut Command::new(bin()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start edgeslab");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            out
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + max;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for edgeslab") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.join().unwrap_or_default();
            panic!(
                "edgeslab {args:?} still running after {max:?}:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
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

/// Pins the calling thread to `cpu` (connections it opens then land on that
/// CPU's shard, by the listener's steering program).
pub fn pin_this_thread(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; only the calling thread is pinned.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "pin to cpu {cpu}"
        );
    }
}

/// CPUs this process may run on.
pub fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A loopback address with a port free right now (for nodes that must know
/// each other's addresses before they start). The port is released at
/// once, so another process could take it: tests that use this start the
/// node right away.
pub fn free_loopback_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr")
}
