//! The store across restarts and faults, through the real binary: a clean
//! stop comes back warm, kill -9 at any point never leads to a wrong byte, a
//! changed or corrupt layout is handled as the operator was told, device
//! errors become misses, the RAM tier answers without the device, and a
//! large object is served without being held in memory.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// Objects of many sizes: small, medium, and large ones spanning chunks.
fn catalogue() -> Arc<HashMap<String, Arc<Vec<u8>>>> {
    let mut m = HashMap::new();
    for i in 0..120u64 {
        let size = match i % 12 {
            0 => 2_000_000 + (i as usize * 37_000) % 2_500_000,
            1..=3 => 100_000 + (i as usize * 7_919) % 800_000,
            _ => 500 + (i as usize * 3_331) % 60_000,
        };
        m.insert(format!("/obj/{i}"), Arc::new(bytes(size, i)));
    }
    Arc::new(m)
}

fn catalogue_origin(objects: Arc<HashMap<String, Arc<Vec<u8>>>>) -> Origin {
    Origin::start(move |seen| match objects.get(&seen.target) {
        Some(b) => Script::ok("max-age=3600", b.as_ref().clone()),
        None => Script {
            status: 404,
            headers: vec![],
            body: Body::Full(b"no such object".to_vec()),
        },
    })
}

fn paths(objects: &HashMap<String, Arc<Vec<u8>>>) -> Vec<String> {
    let mut p: Vec<String> = objects.keys().cloned().collect();
    p.sort();
    p
}

#[test]
fn a_clean_stop_comes_back_warm() {
    let objects = catalogue();
    let origin = catalogue_origin(objects.clone());
    let dir = TempDir::new("warm");
    let edge_in_dir = Edge::builder()
        .origin(origin.addr)
        .toml("[cache]\nsize = \"160MiB\"\n")
        .dir(dir.path());
    let mut edge = edge_in_dir.start();
    for p in paths(&objects) {
        assert_eq!(get(edge.addr, &p).body, *objects[&p]);
    }
    let cached: Vec<String> = paths(&objects)
        .into_iter()
        .filter(|p| get(edge.addr, p).is_hit())
        .collect();
    assert!(
        cached.len() >= 115,
        "only {} of 120 cached before the stop",
        cached.len()
    );
    assert!(edge.stop().unwrap().success());
    assert!(
        edge.stderr().contains("index checkpoint written"),
        "{}",
        edge.stderr()
    );

    let edge = edge_in_dir.start();
    assert!(
        edge.stderr().contains("warm start from the checkpoint"),
        "{}",
        edge.stderr()
    );
    let before = origin.requests();
    let mut hits = 0;
    for p in &cached {
        let r = get(edge.addr, p);
        assert!(r.body == *objects[p], "{p} differs after restart");
        if r.is_hit() {
            hits += 1;
        }
    }
    let ratio = hits as f64 / cached.len() as f64;
    eprintln!(
        "warm restart: {hits} of {} cached objects were hits",
        cached.len()
    );
    assert!(
        ratio >= 0.99,
        "warm restart served {hits} of {} as hits",
        cached.len()
    );
    assert_eq!(origin.requests() - before, cached.len() - hits);
}

#[test]
fn kill_9_mid_load_never_serves_a_wrong_byte() {
    let objects = catalogue();
    let origin = catalogue_origin(objects.clone());
    let dir = TempDir::new("kill9");
    let all = paths(&objects);
    let mut hits_after_restart = 0;
    let mut served_during_load = 0;
    let edge_in_dir = Edge::builder().origin(origin.addr).dir(dir.path());
    for round in 0..6u64 {
        let edge = edge_in_dir.start();
        // After a kill, every object must come back either as a hit with the
        // exact bytes or as a miss fetched again; never anything else.
        for p in &all {
            let r = get(edge.addr, p);
            assert!(
                r.complete && r.body == *objects[p],
                "round {round}: {p} wrong after restart"
            );
            if r.is_hit() {
                hits_after_restart += 1;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..3u64)
            .map(|w| {
                let (stop, served, failures) = (stop.clone(), served.clone(), failures.clone());
                let (objects, all, addr) = (objects.clone(), all.clone(), edge.addr);
                std::thread::spawn(move || {
                    let mut x = round * 977 + w * 131 + 1;
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let p = &all[(x >> 33) as usize % all.len()];
                        // Once the edge is killed, connecting or sending fails:
                        // that ends this worker, and is no failure.
                        let Ok(mut c) = Client::try_connect(addr) else {
                            break;
                        };
                        let raw = format!(
                            "GET {p} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n"
                        );
                        if c.try_send(raw.as_bytes()).is_err() {
                            break;
                        }
                        // A response cut short by the kill is incomplete, never
                        // malformed: a protocol error panics this worker, and the
                        // join below fails the test.
                        match c.read_response() {
                            Some(r) if r.complete => {
                                if r.body != *objects[p] {
                                    failures
                                        .lock()
                                        .unwrap()
                                        .push(format!("{p}: {}", r.cache_status()));
                                }
                                served.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {}
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + (round * 173) % 700));
        let mut edge = edge;
        edge.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("a load worker failed");
        }
        let failures = failures.lock().unwrap();
        assert!(
            failures.is_empty(),
            "round {round}: wrong bytes served: {failures:?}"
        );
        served_during_load += served.load(Ordering::Relaxed);
    }
    assert!(
        served_during_load > 50,
        "the load did run ({served_during_load} responses)"
    );
    // The restarts after a kill rebuilt the index from segment summaries.
    let summarized: usize = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(Edge::STDERR_PREFIX)
        })
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|log| {
            log.lines()
                .filter_map(|l| {
                    l.split("from_summaries=")
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse::<usize>()
                        .ok()
                })
                .collect::<Vec<_>>()
        })
        .sum();
    assert!(summarized > 0, "no segment was recovered from its summary");
    assert!(
        hits_after_restart > 0,
        "recovery found nothing in six kills"
    );
}

#[test]
fn layout_changes_reformat_and_corruption_stops_with_advice() {
    let objects = catalogue();
    let origin = catalogue_origin(objects.clone());
    let dir = TempDir::new("layout");
    let edge_in_dir = Edge::builder().origin(origin.addr).dir(dir.path());
    let mut edge = edge_in_dir.clone().toml("cores = [0]\n").start();
    get(edge.addr, "/obj/5");
    // Cached before the stop, so a miss after the re-format is its doing.
    assert!(get(edge.addr, "/obj/5").is_hit());
    assert!(edge.stop().unwrap().success());
    // Another shard count: the old regions cannot be read as they are.
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        let mut edge = edge_in_dir.clone().toml("cores = [0, 1]\n").start();
        let log = edge.stderr();
        assert!(
            log.contains("re-formatting") && log.contains("shard count (cores) 1 -> 2"),
            "{log}"
        );
        let r = get(edge.addr, "/obj/5");
        assert!(!r.is_hit(), "{}", r.cache_status());
        assert!(r.body == *objects["/obj/5"]);
        assert!(edge.stop().unwrap().success());
    }
    // A corrupt superblock: a start-up error that says how to re-format.
    let cache = dir.path().join(Edge::CACHE_FILE);
    let mut raw = std::fs::read(&cache).unwrap();
    raw[20] ^= 0xFF;
    std::fs::write(&cache, &raw).unwrap();
    drop(raw);
    let config = dir.path().join(Edge::CONFIG_FILE);
    // Refused at start-up: the process exits by itself, well within the bound.
    let out = run_bin(
        &["serve", "--config", config.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("corrupt") && err.contains("--reformat"),
        "{err}"
    );
    let edge = Edge::builder()
        .dir(dir.path())
        .args(["serve", "--config", config.to_str().unwrap(), "--reformat"])
        .start();
    let r = get(edge.addr, "/obj/5");
    assert_eq!(r.status, 200);
    assert!(
        !r.is_hit() && r.body == *objects["/obj/5"],
        "re-formatted empty"
    );
}

#[test]
fn device_read_errors_are_misses_and_are_counted() {
    let objects = catalogue();
    let all = paths(&objects);
    // No RAM tier, so hits must read the device. Every read failing: the
    // objects on the device all become misses, fetched again and correct.
    // Every second read failing: a retry gets past it and hits go on.
    for (fault, expect_hits) in [("read-eio=1", false), ("read-eio=2", true)] {
        let origin = catalogue_origin(objects.clone());
        let edge = Edge::builder()
            .origin(origin.addr)
            .toml("[cache]\nram_size = 0\n")
            .env("EDGESLAB_TEST_FAULTS", fault)
            .start();
        for p in &all {
            get(edge.addr, p);
        }
        let fetched_before = origin.requests();
        let mut hits = 0;
        for p in &all {
            let r = get(edge.addr, p);
            assert!(r.complete && r.body == *objects[p], "{fault}: {p}");
            hits += r.is_hit() as usize;
        }
        let refetched = origin.requests() - fetched_before;
        let failures = edge.metric("edgeslab_cache_read_failures_total");
        assert!(failures > 10, "{fault}: read failures counted: {failures}");
        if expect_hits {
            assert!(
                hits > 100,
                "{fault}: retried reads still hit: {hits} of {}",
                all.len()
            );
        } else {
            assert!(
                refetched > 80,
                "{fault}: unreadable objects were fetched again: {refetched}"
            );
        }
    }
}

#[test]
fn device_write_errors_never_leave_a_readable_hole() {
    let objects = catalogue();
    let origin = catalogue_origin(objects.clone());
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml("[cache]\nram_size = 0\n")
        .env("EDGESLAB_TEST_FAULTS", "write-eio=2")
        .start();
    let all = paths(&objects);
    for round in 0..3 {
        for p in &all {
            let r = get(edge.addr, p);
            assert!(r.complete && r.body == *objects[p], "round {round}: {p}");
        }
    }
    assert!(edge.metric("edgeslab_cache_write_errors_total") > 0);
    assert!(edge.metric("edgeslab_cache_hits_total") > 0);
}

#[test]
fn ram_tier_hits_do_no_device_io() {
    let objects = catalogue();
    let origin = catalogue_origin(objects.clone());
    let small: Vec<String> = paths(&objects)
        .into_iter()
        .filter(|p| objects[p].len() < 60_000)
        .collect();
    let big: Vec<String> = paths(&objects)
        .into_iter()
        .filter(|p| objects[p].len() > 100_000)
        .collect();
    for (ram, expect_device) in [("64MiB", false), ("0", true)] {
        let edge = Edge::builder()
            .origin(origin.addr)
            .toml(&format!("[cache]\nram_size = \"{ram}\"\n"))
            .start();
        for p in small.iter().chain(&big) {
            get(edge.addr, p);
        }
        // The big objects pushed the small ones' segments to the device.
        // A fill does not copy its object into the RAM tier: the first
        // read does, from the device.
        let before = edge.metric("edgeslab_cache_device_reads_total");
        for p in small.iter().take(20) {
            let r = get(edge.addr, p);
            assert!(r.is_hit() && r.body == *objects[p]);
        }
        let first_reads = edge.metric("edgeslab_cache_device_reads_total") - before;
        assert!(
            first_reads >= 15,
            "first reads come from the device ({first_reads})"
        );
        let before = edge.metric("edgeslab_cache_device_reads_total");
        for p in small.iter().take(20) {
            let r = get(edge.addr, p);
            assert!(r.is_hit() && r.body == *objects[p]);
        }
        let reads = edge.metric("edgeslab_cache_device_reads_total") - before;
        if expect_device {
            assert!(
                reads >= 15,
                "without a RAM tier hits read the device ({reads} reads)"
            );
        } else {
            assert_eq!(reads, 0, "RAM tier hits must not read the device");
            let m = edge.metrics();
            assert!(
                metric_sum(&m, "edgeslab_cache_ram_hits_total") >= 20,
                "{}",
                m.lines()
                    .filter(|l| l.contains("ram") || l.contains("hits"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_large_object_is_never_held_in_memory() {
    const SIZE: usize = 2 << 30;
    let body = Arc::new(big_body(SIZE));
    let origin = {
        let body = body.clone();
        Origin::start(move |seen| match seen.target.as_str() {
            "/big" => Script::ok("max-age=3600", vec![]).with(Body::Shared(body.clone())),
            t => Script::ok("max-age=3600", bytes(3_000_000, t.len() as u64)),
        })
    };
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml("cores = [0]\n[cache]\nsize = \"4600MiB\"\nsegment_size = \"4MiB\"\nram_size = \"8MiB\"\n")
        .start();
    // Warm up: segment buffers exist before the baseline is taken.
    for i in 0..8 {
        get(edge.addr, &format!("/warm/{i}"));
    }
    let pid = edge.pid();
    for pass in ["miss", "hit"] {
        let baseline = rss_kib(pid);
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(baseline));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        // Stream the body, comparing as it comes, without keeping it.
        let big = b"GET /big HTTP/1.1\r\nHost: test.local\r\n\r\n";
        let mut c = Client::connect(edge.addr);
        c.send(big);
        let (mut at, mut differs_at) = (0, None);
        let r = c
            .read_response_streaming(big, &mut |piece| {
                if differs_at.is_none() && body.get(at..at + piece.len()) != Some(piece) {
                    differs_at = Some(at);
                }
                at += piece.len();
            })
            .expect("a response");
        assert_eq!(r.framing, Framing::Length(SIZE as u64), "{pass}");
        assert!(r.complete && at == SIZE, "{pass}: body ended at {at}");
        assert_eq!(differs_at, None, "{pass}: bytes differ");
        if pass == "hit" {
            assert!(r.is_hit(), "{}", r.cache_status());
        } else {
            assert!(
                r.cache_status().contains("edgeslab; fwd=uri-miss; stored"),
                "{}",
                r.cache_status()
            );
        }
        done.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
        let grew_mib = (peak.load(Ordering::Relaxed).saturating_sub(baseline)) / 1024;
        eprintln!(
            "{pass}: a {} MiB object grew the edge RSS by {grew_mib} MiB at most",
            SIZE >> 20
        );
        assert!(
            grew_mib <= 32,
            "{pass}: serving a {} MiB object grew RSS by {grew_mib} MiB",
            SIZE >> 20
        );
    }
}
