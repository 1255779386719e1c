//! The edgeslab process under test. An [`EdgeBuilder`] says how to run it:
//! from a generated config for a given origin (the usual case), or with an
//! exact command line. The process is ready when it prints its `ready` line,
//! and is killed on drop; every wait for it is bounded.

use super::client::get;
use super::process::{TempDir, bin, dies_with_test, next_id, refuse_calls};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take before the test fails with the edge's stderr.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a SIGTERM may take before the process is killed.
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// How to run an edge; [`EdgeBuilder::start`] runs it, and can run it again
/// (a restart) with the same settings.
#[derive(Clone, Debug, Default)]
pub struct EdgeBuilder {
    origin: Option<SocketAddr>,
    toml: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: Option<PathBuf>,
    refused: Vec<libc::c_long>,
}

impl EdgeBuilder {
    /// Serves `origin` from a config file written into the edge's directory
    /// (`edgeslab.toml`, with the cache in `cache.slab`): loopback listener
    /// and admin on free ports, a 96 MiB cache of 4 MiB segments, 5 s origin
    /// timeouts. Without an origin, [`arg`](Self::arg)s are the whole command line.
    pub fn origin(mut self, origin: SocketAddr) -> Self {
        self.origin = Some(origin);
        self
    }

    /// TOML merged into the generated config section by section; its keys
    /// win, and keys before any `[section]` go to the top level.
    pub fn toml(mut self, extra: &str) -> Self {
        self.toml.push_str(extra);
        if !extra.ends_with('\n') {
            self.toml.push('\n');
        }
        self
    }

    /// One more argument: after `serve --config FILE` when an origin is set,
    /// otherwise part of the whole command line.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// One more environment variable for the process.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Runs the edge under a seccomp filter that answers these system
    /// calls with EPERM, as a hardened service unit may.
    pub fn refuse(mut self, calls: &[libc::c_long]) -> Self {
        self.refused.extend_from_slice(calls);
        self
    }

    /// Runs in this existing directory, which the edge leaves behind, so a
    /// cache there survives a restart. Without it each start gets a fresh
    /// directory that goes away with the edge.
    pub fn dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// Starts the edge; panics with its stderr when it never becomes ready.
    pub fn start(&self) -> Edge {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the edge expecting it to refuse; returns its stderr. Panics
    /// (saying `why` it should not have) if it became ready.
    pub fn expect_refused(&self, why: &str) -> String {
        match self.try_start() {
            Ok(_) => panic!("the edge started, but {why}"),
            Err(stderr) => stderr,
        }
    }

    /// Starts the edge; Err carries its stderr when it never became ready.
    pub fn try_start(&self) -> Result<Edge, String> {
        let owned = match &self.dir {
            Some(_) => None,
            None => Some(TempDir::new("edge")),
        };
        let dir = match (&self.dir, &owned) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.path().to_path_buf(),
            (None, None) => unreachable!("a directory is chosen above"),
        };
        let mut argv = Vec::new();
        match self.origin {
            Some(origin) => {
                let config = dir.join(Edge::CONFIG_FILE);
                let text = merge_toml(
                    &base_config(origin, &dir.join(Edge::CACHE_FILE)),
                    &self.toml,
                );
                std::fs::write(&config, text).expect("write config");
                argv.extend(["serve".to_string(), "--config".into()]);
                argv.push(config.to_str().expect("utf-8 path").to_string());
            }
            None => assert!(
                self.toml.is_empty(),
                "extra TOML needs an origin to build a config around"
            ),
        }
        argv.extend(self.args.iter().cloned());
        launch(owned, &dir, &argv, &self.env, &self.refused)
    }
}

fn base_config(origin: SocketAddr, cache: &Path) -> String {
    format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n\
         [origin]\nurl = \"http://{origin}\"\nfirst_byte_timeout = \"5s\"\nidle_timeout = \"5s\"\n\
         [cache]\npath = \"{}\"\nsize = \"96MiB\"\nsegment_size = \"4MiB\"\n\
         [admin]\naddr = \"127.0.0.1:0\"\n",
        cache.display()
    )
}

/// A running edgeslab process, killed on drop.
pub struct Edge {
    child: Child,
    /// Where viewers connect.
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    /// The HTTPS listener, when `tls.addr` is set.
    pub https: Option<SocketAddr>,
    pub shards: usize,
    /// The edge's directory: config, cache and one stderr log per start.
    pub dir: PathBuf,
    /// The directory, when this edge owns it (removed on drop).
    _owned: Option<TempDir>,
    stderr_path: PathBuf,
}

impl Edge {
    /// The generated config's name inside [`Edge::dir`].
    pub const CONFIG_FILE: &str = "edgeslab.toml";
    /// The cache file's name inside [`Edge::dir`] (generated configs only).
    pub const CACHE_FILE: &str = "cache.slab";
    /// Every start's stderr log inside [`Edge::dir`] begins with this.
    pub const STDERR_PREFIX: &str = "stderr-";

    pub fn builder() -> EdgeBuilder {
        EdgeBuilder::default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (SIGHUP: reload; SIGUSR1: reopen the access log).
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child, which has not been reaped.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The admin listener's `/metrics` text.
    pub fn metrics(&self) -> String {
        let admin = self.admin.expect("admin enabled");
        let r = get(admin, "/metrics");
        assert_eq!(r.status, 200, "metrics: {}", r.text());
        r.text()
    }

    /// Sum of a metric over shards.
    pub fn metric(&self, name: &str) -> u64 {
        metric_sum(&self.metrics(), name)
    }

    /// Waits (bounded) for the process to exit on its own; None if it is
    /// still running after `within` (it is left running).
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends SIGTERM and waits (bounded) for the exit; a process still
    /// running after that is killed and None returned.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        // SAFETY: plain kill(2) on our own child, which has not been reaped
        // (try_wait below reaps it), so the pid cannot have been reused.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// Starts the binary with `argv` in `dir`; Err carries its stderr when it
/// never printed its ready line.
fn launch(
    owned: Option<TempDir>,
    dir: &Path,
    argv: &[String],
    env: &[(String, String)],
    refused: &[libc::c_long],
) -> Result<Edge, String> {
    let stderr_path = dir.join(format!("{}{}.log", Edge::STDERR_PREFIX, next_id()));
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut cmd = Command::new(bin());
    if !refused.is_empty() {
        refuse_calls(&mut cmd, refused);
    }
    let mut child = dies_with_test(&mut cmd)
        .args(argv)
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start edgeslab");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    // Keeps draining stdout after the ready line; ends when the process does,
    // which also ends the wait below early.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("ready ") {
                let _ = tx.send(line);
            }
        }
    });
    let Ok(line) = rx.recv_timeout(READY_WITHIN) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "edgeslab {argv:?} did not become ready:\n{}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        ));
    };
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no {name}= in the ready line {line:?}"))
    };
    Ok(Edge {
        child,
        addr: field("listen").parse().expect("listen addr"),
        admin: field("admin").parse().ok(),
        https: field("https").parse().ok(),
        shards: field("shards").parse().expect("shards"),
        dir: dir.to_path_buf(),
        _owned: owned,
        stderr_path,
    })
}

/// Whether `name` (`[behavior.cache]`) is a sub-table of the array of
/// tables most recently opened in `sections`.
fn is_sub_table(sections: &[(String, Vec<(String, String)>)], name: &str) -> bool {
    let Some(array) = sections
        .iter()
        .rev()
        .find(|(n, _)| n.starts_with("[["))
        .map(|(n, _)| n.trim_matches(['[', ']']).to_string())
    else {
        return false;
    };
    name.trim_matches(['[', ']'])
        .starts_with(&format!("{array}."))
}

/// Merges two simple TOML texts section by section; keys in `extra` win.
pub fn merge_toml(base: &str, extra: &str) -> String {
    fn sections(text: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut out: Vec<(String, Vec<(String, String)>)> = vec![(String::new(), Vec::new())];
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line.starts_with('[') {
                out.push((line.to_string(), Vec::new()));
            } else if let Some((k, _)) = line.split_once('=') {
                out.last_mut()
                    .expect("a section")
                    .1
                    .push((k.trim().to_string(), line.to_string()));
            }
        }
        out
    }
    let mut merged = sections(base);
    for (name, keys) in sections(extra) {
        // An array of tables (`[[behavior]]`) adds an element each time;
        // its sub-tables follow it and are never merged either.
        let appended = name.starts_with("[[") || is_sub_table(&merged, &name);
        let idx = match merged
            .iter()
            .position(|(n, _)| *n == name)
            .filter(|_| !appended)
        {
            Some(i) => i,
            None => {
                merged.push((name.clone(), Vec::new()));
                merged.len() - 1
            }
        };
        for (k, line) in keys {
            let section = &mut merged[idx].1;
            section.retain(|(existing, _)| *existing != k);
            section.push((k, line));
        }
    }
    let mut text = String::new();
    for (name, keys) in merged {
        if !name.is_empty() {
            text.push_str(&name);
            text.push('\n');
        }
        for (_, line) in keys {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

/// Sum of a metric over all its label sets in Prometheus text. `name` may
/// go on with the first labels to pick some sets (`m{result="applied"`).
/// Panics when the metric is absent, so a misspelt or renamed metric cannot
/// read as 0.
pub fn metric_sum(text: &str, name: &str) -> u64 {
    let values: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ',', '}', ' ']))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("metric line without an integer value: {l:?}"))
        })
        .collect();
    assert!(!values.is_empty(), "no metric {name} in:\n{text}");
    values.iter().sum()
}

/// A metric's value for one shard. Panics when that shard does not report
/// it, so a misspelt metric or a missing shard cannot read as 0.
pub fn metric_of_shard(text: &str, name: &str, shard: usize) -> u64 {
    let prefix = format!("{name}{{shard=\"{shard}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} for shard {shard} in:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name} of shard {shard}: {e}"))
}
