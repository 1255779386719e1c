//! `edgeslab stats` and `edgeslab top` run as operators run them: the built
//! binary against a scripted admin API (hand-written HTTP on loopback)
//! whose counters grow by known amounts per scrape, so the rates, ratios
//! and rows printed can be checked. `top` runs in a pseudo-terminal and its
//! screen is rebuilt from the bytes it writes by a small terminal emulator
//! here, not by ratatui.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::run_bin;

const MISS_URL: &str = "example.com/a.jpg";

/// Per scrape: 100 requests (60 on shard 0, 40 on shard 1), 84 hits and
/// 16 misses (shard 0: 54/6, shard 1: 30/10), 16 origin requests of which
/// 12 reuse a connection; latency observations on the hit and miss phases.
fn metrics(n: u64, started: f64) -> String {
    let mut t = String::from(
        "# HELP edgeslab_requests_total Requests received from viewers.\n\
         # TYPE edgeslab_requests_total counter\n",
    );
    let per_shard: [(&str, [u64; 2], [u64; 2]); 10] = [
        ("edgeslab_requests_total", [1000, 500], [60, 40]),
        ("edgeslab_cache_hits_total", [700, 300], [54, 30]),
        ("edgeslab_cache_misses_total", [250, 150], [6, 10]),
        ("edgeslab_passes_total", [50, 50], [0, 0]),
        (
            "edgeslab_sent_bytes_total",
            [1_000_000, 400_000],
            [50_000, 20_000],
        ),
        ("edgeslab_connections_active", [7, 3], [0, 0]),
        ("edgeslab_upstream_requests_total", [300, 0], [16, 0]),
        ("edgeslab_origin_connections_opened_total", [100, 0], [4, 0]),
        (
            "edgeslab_origin_connections_reused_total",
            [200, 0],
            [12, 0],
        ),
        ("edgeslab_cache_stale_total", [0, 0], [0, 0]),
    ];
    for (name, base, step) in per_shard {
        for shard in 0..2 {
            t += &format!(
                "{name}{{shard=\"{shard}\"}} {}\n",
                base[shard] + n * step[shard]
            );
        }
    }
    t += &format!(
        "edgeslab_responses_total{{shard=\"0\",class=\"2xx\"}} {}\n\
         edgeslab_responses_total{{shard=\"1\",class=\"5xx\"}} 10\n\
         edgeslab_build_info{{version=\"0.1.0\"}} 1\n\
         edgeslab_config_generation 2\n\
         process_start_time_seconds {started}\n\
         this line is garbage {{\n",
        990 + 60 * n
    );
    let histogram = |name: &str, phase: &str, buckets: &[(&str, u64)]| {
        let mut h = String::new();
        for (le, step) in buckets {
            h += &format!(
                "{name}_bucket{{phase=\"{phase}\",le=\"{le}\"}} {}\n",
                step * n
            );
        }
        h + &format!(
            "{name}_count{{phase=\"{phase}\"}} {}\n",
            buckets[buckets.len() - 1].1 * n
        )
    };
    let total = "edgeslab_request_duration_seconds";
    t += &histogram(total, "hit", &[("0.001", 10), ("0.01", 20), ("+Inf", 20)]);
    t += &histogram(total, "miss", &[("0.05", 5), ("0.25", 10), ("+Inf", 10)]);
    t += &histogram(
        "edgeslab_first_byte_seconds",
        "miss",
        &[("0.01", 10), ("+Inf", 10)],
    );
    t
}

/// A scripted admin API on loopback; counts its `/metrics` scrapes.
fn fake_admin(with_misses: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let scrapes = Arc::new(AtomicU64::new(0));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    let started = now.as_secs_f64() - 3700.0;
    std::thread::spawn(move || {
        for stream in listener.incoming().take(500).flatten() {
            let _ = answer(stream, &scrapes, started, with_misses);
        }
    });
    addr
}

fn answer(
    mut stream: TcpStream,
    scrapes: &AtomicU64,
    started: f64,
    with_misses: bool,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("");
    let (status, body) = match path {
        "/metrics" => (
            "200 OK",
            metrics(scrapes.fetch_add(1, Ordering::SeqCst), started),
        ),
        "/stats/misses" if with_misses => (
            "200 OK",
            format!(
                "{{\"misses\":[{{\"url\":\"{MISS_URL}\",\"count\":12}},\
                 {{\"url\":\"example.com/b.css\",\"count\":3}}]}}"
            ),
        ),
        _ => ("404 Not Found", "not found\n".to_string()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The first number after `label` in reading order, e.g. "req/s 496.3".
fn figure_after(text: &str, label: &str) -> Option<f64> {
    text.match_indices(label).find_map(|(i, _)| {
        let rest = &text[i + label.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    })
}

/// 100 requests per scrape, at least 200 ms apart: at most 500 req/s,
/// and well above 250 unless the machine is badly overloaded.
fn assert_rate(rate: f64) {
    assert!((250.0..=500.0).contains(&rate), "req/s {rate}");
}

#[test]
fn stats_prints_totals_rates_and_shards() {
    let admin = format!("http://{}", fake_admin(true));
    let out = run_bin(
        &["stats", "--admin", &admin, "--interval", "200ms"],
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let row = |name: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {text}"));
        line[name.len()..]
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    // The second scrape: 1500 + 100 requests.
    let requests = row("requests ");
    assert_eq!(requests[0], "1600", "{text}");
    assert_rate(requests[1].trim_end_matches("/s").parse().expect("req/s"));
    // 1084 hits and 416 misses since start; 84 and 16 in the interval.
    assert_eq!(row("hit ratio"), ["72.3%", "84.0%"], "{text}");
    assert_eq!(row("passes")[0], "100", "{text}");
    assert_eq!(row("responses 2xx")[0], "1050", "{text}");
    assert_eq!(row("responses 5xx")[0], "10", "{text}");
    assert_eq!(row("connections open"), ["10"], "{text}");
    assert_eq!(row("origin requests")[0], "316", "{text}");
    // 212 of 316 since start; 12 of 16 in the interval.
    assert_eq!(row("origin reuse"), ["67.1%", "75.0%"], "{text}");
    assert_eq!(row("config generation"), ["2"], "{text}");
    assert!(row("uptime").join(" ").starts_with("1h 1m"), "{text}");
    assert_eq!(
        row("sent").last().map(String::as_str),
        Some("KiB/s"),
        "{text}"
    );
    let shards: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("SHARD"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(shards.len(), 2, "{text}");
    assert_eq!(
        (shards[0][0], shards[0][2], shards[0][3]),
        ("0", "90.0%", "7"),
        "{text}"
    );
    assert_eq!(
        (shards[1][0], shards[1][2], shards[1][3]),
        ("1", "75.0%", "3"),
        "{text}"
    );
    let shard0: f64 = shards[0][1].parse().expect("shard req/s");
    assert!((150.0..=300.0).contains(&shard0), "{text}");
    // Latency over the interval: 10 of 20 hits within 1 ms.
    // (p90: rank 18, 8 into the 10 of (1, 10] ms; p99: 9.8 into them.)
    let hit = row("hit       ");
    assert_eq!(hit[1..4], ["1.0ms", "8.2ms", "9.8ms"], "{text}");
}

#[test]
fn stats_json_is_one_object() {
    let admin = format!("http://{}", fake_admin(false));
    let out = run_bin(
        &["stats", "--admin", &admin, "--interval", "200ms", "--json"],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["requests"]["total"], 1600.0);
    assert_rate(v["requests"]["per_second"].as_f64().expect("rate"));
    assert!(
        (v["hit_ratio"].as_f64().expect("ratio") - 0.84).abs() < 1e-9,
        "{v}"
    );
    assert_eq!(v["origin_reuse_ratio"], 0.75);
    assert_eq!(v["shards"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["shards"][1]["connections_open"], 3.0);
    let miss = &v["latency"][1];
    assert_eq!(miss["phase"], "miss");
    // 10 misses: 5 within 50 ms, 5 in (50, 250]: p90 = 50 + 200 * 4/5 ms.
    assert!(
        (miss["total"]["p90"].as_f64().expect("p90") - 0.21).abs() < 1e-9,
        "{v}"
    );
    assert!(
        (miss["first_byte"]["p50"].as_f64().expect("p50") - 0.005).abs() < 1e-9,
        "{v}"
    );
    assert!(v["latency"][0]["first_byte"]["p50"].is_null(), "{v}");
}

#[test]
fn an_unreachable_admin_exits_1() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let admin = format!("http://127.0.0.1:{port}");
    for cmd in ["stats", "top"] {
        let out = run_bin(
            &[cmd, "--admin", &admin, "--interval", "100ms"],
            Duration::from_secs(20),
        );
        assert_eq!(out.status.code(), Some(1), "{cmd}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot reach the admin API"), "{cmd}: {err}");
        assert!(out.stdout.is_empty(), "{cmd}: {out:?}");
    }
}

#[test]
fn top_once_prints_one_plain_frame() {
    for with_misses in [true, false] {
        let admin = format!("http://{}", fake_admin(with_misses));
        let args = [
            "top",
            "--admin",
            &admin,
            "--interval",
            "200ms",
            "--once",
            "--width",
            "100",
            "--height",
            "30",
        ];
        let out = run_bin(&args, Duration::from_secs(20));
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).expect("UTF-8");
        assert_eq!(text.lines().count(), 30, "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
        assert!(!text.contains('\u{1b}'), "escape sequences in {text}");
        assert_rate(figure_after(&text, "req/s ").expect("req/s"));
        assert!(text.contains("hit ratio 84.0%"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.contains("│hit ") && l.contains("1.0ms")),
            "{text}"
        );
        assert_eq!(text.contains(MISS_URL), with_misses, "{text}");
    }
}

#[test]
fn top_runs_in_a_terminal_and_quits_on_q() {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let admin = format!("http://{}", fake_admin(true));
    let pty = native_pty_system();
    let size = PtySize {
        rows: 30,
        cols: 100,
        pixel_width: 0,
        pixel_height: 0,
    };
    let pair = pty.openpty(size).expect("pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_edgeslab"));
    cmd.args(["top", "--admin", &admin, "--interval", "200ms"]);
    cmd.env("TERM", "xterm-256color");
    let mut child = pair.slave.spawn_command(cmd).expect("spawn in the pty");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let mut keys = pair.master.take_writer().expect("writer");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut output = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let screen = loop {
        while let Ok(bytes) = rx.try_recv() {
            output.extend_from_slice(&bytes);
        }
        let screen = Emulator::replay(&output, 30, 100);
        let rate = figure_after(&screen, "req/s ");
        if rate.is_some() && screen.contains(MISS_URL) {
            break screen;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no rates on screen after 10 s:\n{screen}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_rate(figure_after(&screen, "req/s ").expect("req/s"));
    assert!(screen.contains("hit ratio 84.0%"), "{screen}");
    keys.write_all(b"q").expect("send q");
    keys.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("top still running 5 s after q");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    // The terminal was given back: raw mode off, alternate screen left.
    std::thread::sleep(Duration::from_millis(100));
    while let Ok(bytes) = rx.try_recv() {
        output.extend_from_slice(&bytes);
    }
    let text = String::from_utf8_lossy(&output);
    let entered = text
        .find("\u{1b}[?1049h")
        .expect("alternate screen entered");
    assert!(
        text[entered..].contains("\u{1b}[?1049l"),
        "alternate screen never left"
    );
}

/// Just enough of a VT100 to rebuild the screen from what `top` writes:
/// cursor positioning, clears and printable text; every other escape is
/// skipped.
struct Emulator {
    rows: Vec<Vec<char>>,
    row: usize,
    col: usize,
}

impl Emulator {
    fn replay(bytes: &[u8], rows: usize, cols: usize) -> String {
        let mut e = Emulator {
            rows: vec![vec![' '; cols]; rows],
            row: 0,
            col: 0,
        };
        let text = String::from_utf8_lossy(bytes);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\u{1b}' => match chars.next() {
                    Some('[') => {
                        let mut params = String::new();
                        let mut last = None;
                        for c in chars.by_ref() {
                            if ('\u{40}'..='\u{7e}').contains(&c) {
                                last = Some(c);
                                break;
                            }
                            params.push(c);
                        }
                        e.csi(&params, last);
                    }
                    Some(']') => {
                        // An OSC runs to BEL or ST.
                        while let Some(c) = chars.next() {
                            if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some())
                            {
                                break;
                            }
                        }
                    }
                    _ => {}
                },
                '\r' => e.col = 0,
                '\n' => e.row = (e.row + 1).min(rows - 1),
                c if c >= ' ' => {
                    if let Some(cell) = e.rows[e.row].get_mut(e.col) {
                        *cell = c;
                    }
                    e.col += 1;
                }
                _ => {}
            }
        }
        e.rows
            .iter()
            .map(|r| r.iter().collect::<String>().trim_end().to_string() + "\n")
            .collect()
    }

    fn csi(&mut self, params: &str, last: Option<char>) {
        let n: Vec<usize> = params.split(';').map(|p| p.parse().unwrap_or(1)).collect();
        match last {
            Some('H') | Some('f') => {
                self.row = n[0].max(1).min(self.rows.len()) - 1;
                self.col = n.get(1).copied().unwrap_or(1).max(1) - 1;
            }
            Some('J') if params == "2" => {
                for r in &mut self.rows {
                    r.fill(' ');
                }
            }
            Some('h') | Some('l') if params == "?1049" => {
                for r in &mut self.rows {
                    r.fill(' ');
                }
            }
            _ => {}
        }
    }
}
