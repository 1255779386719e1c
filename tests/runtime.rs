//! The runtime as an operator sees it in /proc: one pinned executor thread
//! per core, the cache descriptor opened with O_DIRECT, connections steered
//! to the shard of the CPU that received them, keys owned across shards, and
//! a clean stop on SIGTERM.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;
use support::*;

fn origin() -> Origin {
    Origin::start(|seen| {
        Script::ok(
            "max-age=60",
            format!("body of {}", seen.target).into_bytes(),
        )
    })
}

#[test]
fn one_pinned_executor_thread_per_core() {
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).start();
    assert_eq!(edge.shards, online_cpus());
    let shards: Vec<(String, String)> = threads(edge.pid())
        .into_iter()
        .filter(|(name, _)| {
            name.strip_prefix("edgeslab-s")
                .is_some_and(|n| n.parse::<usize>().is_ok())
        })
        .collect();
    assert_eq!(shards.len(), edge.shards, "{shards:?}");
    let mut cpus = BTreeSet::new();
    for (name, allowed) in &shards {
        let cpu: usize = allowed
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not pinned to one core: {allowed}"));
        let index: usize = name.trim_start_matches("edgeslab-s").parse().unwrap();
        assert_eq!(index, cpu, "shard {index} runs on core {cpu}");
        cpus.insert(cpu);
    }
    assert_eq!(cpus.len(), edge.shards, "each shard on its own core");

    // An explicit list starts exactly those shards.
    let one = Edge::builder()
        .origin(origin.addr)
        .toml("cores = [0]\n")
        .start();
    assert_eq!(one.shards, 1);
    let named: Vec<_> = threads(one.pid())
        .into_iter()
        .filter(|(n, _)| n.starts_with("edgeslab-s"))
        .collect();
    assert_eq!(named, vec![("edgeslab-s0".to_string(), "0".to_string())]);
}

#[test]
fn cache_descriptor_carries_o_direct() {
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).start();
    get(edge.addr, "/warm");
    let flags = fd_flags(edge.pid(), &edge.dir.join(Edge::CACHE_FILE));
    for f in &flags {
        assert_ne!(
            f & libc::O_DIRECT as u32,
            0,
            "cache fd without O_DIRECT: flags {f:o}"
        );
    }
    let found = flags.len();
    assert_eq!(
        found,
        edge.shards + 1,
        "one O_DIRECT handle per shard, and the one that holds the device's lock"
    );
}

/// Runs `f` on a thread pinned to `cpu`.
fn on_cpu<T: Send + 'static>(cpu: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        pin_this_thread(cpu);
        f()
    })
    .join()
    .unwrap()
}

#[test]
fn connections_land_on_the_shard_of_their_cpu() {
    if online_cpus() < 2 {
        eprintln!("skipped: needs two cores");
        return;
    }
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).start();
    for cpu in [0usize, 1] {
        let before = edge.metrics();
        let addr = edge.addr;
        on_cpu(cpu, move || {
            for i in 0..20 {
                let r = get(addr, &format!("/steer/{cpu}/{i}"));
                assert_eq!(r.status, 200);
            }
        });
        let after = edge.metrics();
        let name = "edgeslab_connections_accepted_total";
        let delta =
            |shard| metric_of_shard(&after, name, shard) - metric_of_shard(&before, name, shard);
        assert_eq!(
            delta(cpu),
            20,
            "connections from cpu {cpu} should all reach shard {cpu}"
        );
        assert_eq!(delta(1 - cpu), 0);
    }
}

#[test]
fn keys_are_owned_across_shards() {
    if online_cpus() < 2 {
        eprintln!("skipped: needs two cores");
        return;
    }
    let origin = origin();
    let edge = Edge::builder().origin(origin.addr).start();
    // All requests enter through CPU 0's shard; about half the keys belong
    // to shard 1 and must be looked up and stored there by message.
    let addr = edge.addr;
    on_cpu(0, move || {
        for round in 0..2 {
            for i in 0..40 {
                let r = get(addr, &format!("/owned/{i}"));
                assert_eq!(r.body, format!("body of /owned/{i}").as_bytes());
                if round == 1 {
                    assert!(r.is_hit(), "{}", r.cache_status());
                }
            }
        }
    });
    let m = edge.metrics();
    let remote = metric_of_shard(&m, "edgeslab_cache_remote_lookups_total", 0);
    assert!(
        (20..=60).contains(&remote),
        "remote lookups from shard 0: {remote}"
    );
    assert!(
        metric_of_shard(&m, "edgeslab_cache_objects", 1) > 5,
        "shard 1 owns some objects"
    );
    assert_eq!(metric_sum(&m, "edgeslab_cache_objects"), 40);
}

#[test]
fn sigterm_stops_cleanly_and_drains() {
    let origin = origin();
    let mut edge = Edge::builder().origin(origin.addr).start();
    let mut c = Client::connect(edge.addr);
    assert_eq!(c.get("/before").status, 200);
    let status = edge.stop().expect("process exits");
    assert!(
        status.success(),
        "exit status {status:?}: {}",
        edge.stderr()
    );
    assert!(c.closes_quietly(Duration::from_secs(5)));
    assert!(edge.stderr().contains("shard stopped"));
}

#[test]
fn a_request_open_at_the_drain_deadline_gets_a_503_and_a_log_line() {
    let origin = Origin::start(|_| Script::ok("max-age=60", vec![]).with(Body::Silent));
    let mut edge = Edge::builder()
        .origin(origin.addr)
        .toml("[listen]\ndrain_timeout = \"1s\"")
        .start();
    let addr = edge.addr;
    let viewer = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send(b"GET /held HTTP/1.1\r\nHost: t\r\n\r\n");
        c.read_response()
    });
    assert!(
        eventually(Duration::from_secs(10), || origin.count("/held") == 1),
        "the request reached the origin"
    );
    let status = edge.stop().expect("process exits");
    assert!(status.success(), "{status:?}: {}", edge.stderr());
    let r = viewer
        .join()
        .expect("viewer")
        .expect("an answer, not a bare close");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), Some("close"));
    let log = edge.stderr();
    assert!(
        log.contains("stop requested") && log.contains("SIGTERM"),
        "{log}"
    );
    assert!(log.contains("drain deadline passed"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("target=\"/held\"") && l.contains("detail=\"drain-deadline\"")),
        "{log}"
    );
}
