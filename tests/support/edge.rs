//! The edgeslab process under test: started from a generated config (or
//! exact arguments), ready when it prints its `ready` line, stopped on drop.

use super::client::request;
use super::process::{TempDir, bin, next_id};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running edgeslab process.
pub struct Edge {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub shards: usize,
    pub dir: PathBuf,
    /// The directory, when this edge owns it (removed on drop).
    _owned: Option<TempDir>,
    pub stderr_path: PathBuf,
}

impl Edge {
    /// Starts `edgeslab serve --config` pointing at `origin`. `extra` is
    /// TOML whose `[section]`s are merged into the base config's sections
    /// (keys before any header go to the top level).
    pub fn start(origin: SocketAddr, extra: &str) -> Edge {
        Self::start_with(origin, extra, &[])
    }

    pub fn start_with(origin: SocketAddr, extra: &str, args: &[&str]) -> Edge {
        let dir = TempDir::new("edge");
        let path = dir.path().to_path_buf();
        Self::start_in(Some(dir), &path, origin, extra, args, &[])
    }

    /// Writes the config into `dir` (keeping a cache already there) and
    /// starts the binary with extra arguments and environment.
    pub fn start_in(
        owned: Option<TempDir>,
        dir: &Path,
        origin: SocketAddr,
        extra: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Edge {
        let cache = dir.join("cache.slab");
        let config = merge_toml(
            &format!(
                "[listen]\naddr = \"127.0.0.1:0\"\n[origin]\nurl = \"http://{origin}\"\nfirst_byte_timeout = \"5s\"\n\
                 idle_timeout = \"5s\"\n[cache]\npath = \"{}\"\nsize = \"96MiB\"\nsegment_size = \"4MiB\"\n\
                 [admin]\naddr = \"127.0.0.1:0\"\n",
                cache.display()
            ),
            extra,
        );
        let path = dir.join("edgeslab.toml");
        std::fs::write(&path, config).expect("write config");
        let mut all = vec!["serve", "--config", path.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        Self::launch(owned, dir, &all, env).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the binary with exactly these arguments in an owned directory.
    pub fn spawn(dir: TempDir, args: &[&str]) -> Edge {
        let path = dir.path().to_path_buf();
        Self::launch(Some(dir), &path, args, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the binary; Err carries its stderr when it never became ready.
    pub fn launch(
        owned: Option<TempDir>,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Edge, String> {
        let stderr_path = dir.join(format!("stderr-{}.log", next_id()));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(bin())
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start edgeslab");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ready ") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "edgeslab did not become ready:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                ));
            }
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
                .expect("field in ready line")
        };
        Ok(Edge {
            child,
            addr: field("listen").parse().expect("listen addr"),
            admin: field("admin").parse().ok(),
            shards: field("shards").parse().expect("shards"),
            dir: dir.to_path_buf(),
            _owned: owned,
            stderr_path,
        })
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        let admin = self.admin.expect("admin enabled");
        let r = request(admin, b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n");
        String::from_utf8(r.body).expect("utf-8 metrics")
    }

    /// Sum of a metric over shards.
    pub fn metric(&self, name: &str) -> u64 {
        metric_sum(&self.metrics(), name)
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
        let idx = match merged.iter().position(|(n, _)| *n == name) {
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

pub fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

pub fn metric_of_shard(text: &str, name: &str, shard: usize) -> u64 {
    let prefix = format!("{name}{{shard=\"{shard}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0)
}
