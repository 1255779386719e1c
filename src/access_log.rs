//! The access log: one line per request, as text or JSON, to stderr or a
//! file. A shard formats its lines into a buffer of its own and hands full
//! (or half-second-old) buffers to one writer thread, so no request waits
//! on a write and shards share no lock. If the writer falls behind (a slow
//! disk), whole buffers are dropped and counted in
//! `edgeslab_access_log_dropped_lines_total`, never waited for. SIGUSR1 has
//! the writer reopen the file (after logrotate moved it).

use crate::config::{AccessLogFormat, LogConfig};
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

/// A shard hands its buffer over once it holds this much.
const BUFFER_BYTES: usize = 32 * 1024;

/// Buffers that may wait for the writer (at most ~16 MiB).
const QUEUE: usize = 512;

/// How old a shard's unsent lines may get.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Where lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Stderr,
    File(PathBuf),
}

impl Destination {
    pub fn of(config: &LogConfig) -> Destination {
        match config.access_log_path.as_str() {
            "stderr" | "" => Destination::Stderr,
            p => Destination::File(PathBuf::from(p)),
        }
    }

    fn open(&self) -> io::Result<Box<dyn Write + Send>> {
        Ok(match self {
            Destination::Stderr => Box::new(io::stderr()),
            Destination::File(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
        })
    }
}

/// One request as logged.
#[derive(Serialize)]
pub struct Line<'a> {
    #[serde(skip)]
    pub at: SystemTime,
    pub shard: u32,
    pub peer: std::net::SocketAddr,
    pub method: &'a str,
    pub host: &'a str,
    pub target: &'a str,
    /// The target as the viewer sent it, when it was normalised.
    pub received: &'a str,
    pub status: u16,
    pub phase: &'a str,
    pub detail: &'a str,
    pub bytes: u64,
    pub micros: u64,
}

impl Line<'_> {
    fn write(&self, format: AccessLogFormat, out: &mut Vec<u8>) {
        let time = humantime::format_rfc3339_micros(self.at);
        match format {
            AccessLogFormat::Text => {
                // Strings quoted and escaped (`"`, `\`, control bytes), so
                // that a hostile target cannot forge a field or a line.
                let _ = writeln!(
                    out,
                    "{time} access: shard={} peer={} method={} host={} target={} received={} status={} phase={} detail={} bytes={} micros={}",
                    self.shard,
                    self.peer,
                    Quoted(self.method),
                    Quoted(self.host),
                    Quoted(self.target),
                    Quoted(self.received),
                    self.status,
                    Quoted(self.phase),
                    Quoted(self.detail),
                    self.bytes,
                    self.micros
                );
            }
            AccessLogFormat::Json => {
                #[derive(Serialize)]
                struct Timed<'a, 'b> {
                    // Written straight into the line: no String per line.
                    #[serde(serialize_with = "as_display")]
                    time: humantime::Rfc3339Timestamp,
                    #[serde(flatten)]
                    line: &'a Line<'b>,
                }
                let timed = Timed { time, line: self };
                if serde_json::to_writer(&mut *out, &timed).is_ok() {
                    out.push(b'\n');
                }
            }
        }
    }
}

/// A string as Rust's `Debug` quotes and escapes it, written as it is
/// when nothing in it needs escaping (the usual case: the codec refuses
/// control bytes in targets and hosts), which spares the per-character
/// escaping on every line.
struct Quoted<'a>(&'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plain = self
            .0
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        match plain {
            true => write!(f, "\"{}\"", self.0),
            false => write!(f, "{:?}", self.0),
        }
    }
}

/// Serialises a value as the string its `Display` writes.
fn as_display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The process's writer: a thread that owns the destination.
#[derive(Clone)]
pub struct Writer {
    tx: crossbeam_channel::Sender<Vec<u8>>,
    format: AccessLogFormat,
}

impl Writer {
    /// Opens the destination (an error names it) and starts the writer.
    /// Raising `reopen` has it reopen the file.
    pub fn start(config: &LogConfig, reopen: Arc<AtomicBool>) -> io::Result<Writer> {
        let dest = Destination::of(config);
        let mut out = dest.open().map_err(|e| match &dest {
            Destination::File(p) => io::Error::new(e.kind(), format!("{}: {e}", p.display())),
            Destination::Stderr => e,
        })?;
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(QUEUE);
        std::thread::Builder::new()
            .name("edgeslab-log".into())
            .spawn(move || {
                loop {
                    match rx.recv_timeout(FLUSH_EVERY) {
                        Ok(buf) => {
                            if let Err(e) = out.write_all(&buf) {
                                crate::warn_limited!("access log: write failed: {e}");
                            }
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                    }
                    if reopen.swap(false, Relaxed) {
                        let _ = out.flush();
                        match dest.open() {
                            Ok(o) => {
                                out = o;
                                tracing::info!(destination = ?dest, "access log reopened");
                            }
                            Err(e) => tracing::error!(
                                destination = ?dest,
                                "access log: cannot reopen, writing on to the old file: {e}"
                            ),
                        }
                    }
                }
                let _ = out.flush();
            })?;
        Ok(Writer {
            tx,
            format: config.access_log_format,
        })
    }
}

/// A shard's end of the access log.
pub struct ShardLog {
    writer: Writer,
    buf: RefCell<Vec<u8>>,
    lines: Cell<u64>,
    since: Cell<Instant>,
    stats: crate::proxy::stats::ViewerStats,
}

impl ShardLog {
    /// `stats` counts the lines lost to a writer that fell behind.
    pub fn new(writer: Writer, stats: crate::proxy::stats::ViewerStats) -> ShardLog {
        ShardLog {
            writer,
            buf: RefCell::new(Vec::with_capacity(BUFFER_BYTES)),
            lines: Cell::new(0),
            since: Cell::new(Instant::now()),
            stats,
        }
    }

    pub fn record(&self, line: &Line<'_>) {
        let full = {
            let mut buf = self.buf.borrow_mut();
            if buf.is_empty() {
                self.since.set(Instant::now());
            }
            line.write(self.writer.format, &mut buf);
            buf.len() >= BUFFER_BYTES
        };
        self.lines.set(self.lines.get() + 1);
        if full {
            self.flush();
        }
    }

    /// Hands what is buffered to the writer, if there is anything and it
    /// is older than `FLUSH_EVERY` (or `force`).
    pub fn flush_if_due(&self, force: bool) {
        let due = force || self.since.get().elapsed() >= FLUSH_EVERY;
        if due && !self.buf.borrow().is_empty() {
            self.flush();
        }
    }

    fn flush(&self) {
        let buf = std::mem::replace(
            &mut *self.buf.borrow_mut(),
            Vec::with_capacity(BUFFER_BYTES),
        );
        let lines = self.lines.replace(0);
        if self.writer.tx.try_send(buf).is_err() {
            self.stats.access_log_dropped.fetch_add(lines, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_read_as_debug_writes_them() {
        for s in [
            "/a?b=1",
            "",
            "h:8080",
            "a\"b",
            "a\\b",
            "tab\there",
            "new\nline",
            "é",
            "\u{7f}",
        ] {
            assert_eq!(Quoted(s).to_string(), format!("{s:?}"), "{s:?}");
        }
    }

    fn line(target: &str) -> Line<'_> {
        Line {
            at: SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            shard: 1,
            peer: "127.0.0.1:5000".parse().unwrap(),
            method: "GET",
            host: "example.com",
            target,
            received: "-",
            status: 200,
            phase: "hit",
            detail: "-",
            bytes: 42,
            micros: 7,
        }
    }

    #[test]
    fn text_quotes_and_escapes_what_the_viewer_controls() {
        let mut out = Vec::new();
        line("/a\" status=500\n2023 forged").write(AccessLogFormat::Text, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with("2023-11-14T22:13:20.123456Z access: shard=1 "),
            "{text}"
        );
        assert!(
            text.contains(r#"target="/a\" status=500\n2023 forged" received="-" status=200"#),
            "{text}"
        );
    }

    #[test]
    fn json_is_one_object_per_line() {
        let mut out = Vec::new();
        line("/x\ny").write(AccessLogFormat::Json, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["target"], "/x\ny");
        assert_eq!(v["status"], 200);
        assert_eq!(v["time"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["peer"], "127.0.0.1:5000");
    }
}
