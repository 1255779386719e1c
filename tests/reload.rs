//! Configuration reload through the real binary: SIGHUP reads the file
//! again, new requests use it (here: another origin), requests in flight
//! finish on the configuration they began with, a bad file keeps the
//! running configuration with the reason logged, and twenty reloads under
//! load refuse or reset no connection.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::load::{Load, catalogue, events};
use support::*;

/// An origin that serves the catalogue (cacheable), says its name at
/// `/who` (never stored), and holds `/slow` until `gate` opens.
fn named_origin(name: &'static str, objects: Arc<HashMap<String, Vec<u8>>>, gate: Gate) -> Origin {
    Origin::start(move |seen| match seen.target.as_str() {
        "/who" => Script::ok("no-store", name.as_bytes().to_vec()),
        "/slow" => Script::ok("no-store", Vec::new()).with(Body::Gated {
            data: format!("slow answer from {name}").into_bytes(),
            first: 5,
            gate: gate.clone(),
        }),
        target => match objects.get(target) {
            Some(b) => Script::ok("max-age=3600", b.clone()),
            None => Script::new(404, b"no such object".to_vec()),
        },
    })
}

/// Rewrites the edge's config file so that it points at `origin` and adds
/// `extra` (merged section by section).
fn point_at(edge: &Edge, origin: SocketAddr, extra: &str) {
    let path = edge.dir.join(Edge::CONFIG_FILE);
    let text = std::fs::read_to_string(&path).expect("config");
    let text = merge_toml(
        &text,
        &format!("[origin]\nurl = \"http://{origin}\"\n{extra}"),
    );
    std::fs::write(&path, text).expect("write config");
}

/// Sends SIGHUP and waits (bounded) until the reload is counted as
/// `result`; returns the generation then in force.
fn reload(edge: &Edge, result: &str) -> u64 {
    let name = format!("edgeslab_config_reloads_total{{result=\"{result}\"");
    let before = metric_sum(&edge.metrics(), &name);
    edge.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || metric_sum(
            &edge.metrics(),
            &name
        ) > before),
        "no {result} reload counted:\n{}",
        events(edge)
    );
    edge.metric("edgeslab_config_generation")
}

/// Asks `/who` until the new origin answers (each shard takes the new
/// generation within its poll); panics after a bounded wait.
fn wait_for_origin(edge: &Edge, name: &str) {
    assert!(
        eventually(Duration::from_secs(5), || (0..4).all(|_| get(
            edge.addr, "/who"
        )
        .text()
            == name)),
        "requests never reached {name}:\n{}",
        events(edge)
    );
}

#[test]
fn twenty_reloads_under_load_refuse_and_reset_nothing() {
    let objects = catalogue();
    let gate = Gate::default();
    let a = named_origin("A", objects.clone(), gate.clone());
    let b = named_origin("B", objects.clone(), gate.clone());
    let edge = Edge::builder().origin(a.addr).start();
    assert_eq!(edge.metric("edgeslab_config_generation"), 1);
    let load = Load::start(edge.addr, &objects, 6);
    std::thread::sleep(Duration::from_millis(300));
    for round in 0..20u64 {
        let (origin, name) = if round % 2 == 0 { (&b, "B") } else { (&a, "A") };
        point_at(&edge, origin.addr, "");
        assert_eq!(reload(&edge, "applied"), round + 2);
        wait_for_origin(&edge, name);
    }
    let answered = load.answered();
    let tally = load.finish();
    let failures = tally.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}\n{}",
        failures.len(),
        failures.first(),
        events(&edge)
    );
    assert!(answered > 200, "the load ran: {answered} answers");
    assert_eq!(
        tally
            .keepalive_closes
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a reload closes no persistent connection"
    );
    let text = edge.metrics();
    assert_eq!(metric_sum(&text, "edgeslab_connections_refused_total"), 0);
    assert_eq!(
        metric_sum(&text, "edgeslab_config_reloads_total{result=\"rejected\""),
        0
    );
    // Objects cached before the reloads stay cached: the store is the
    // shard's, not the configuration's.
    assert!(get(edge.addr, "/obj/3").is_hit());
    eprintln!("answered {answered} during 20 reloads");
}

#[test]
fn a_request_in_flight_finishes_on_the_configuration_it_began_with() {
    let objects = catalogue();
    let gate = Gate::default();
    let a = named_origin("A", objects.clone(), gate.clone());
    let b = named_origin("B", objects.clone(), gate.clone());
    let edge = Edge::builder().origin(a.addr).start();
    let addr = edge.addr;
    let slow = std::thread::spawn(move || get(addr, "/slow"));
    assert!(
        eventually(Duration::from_secs(5), || a.count("/slow") == 1),
        "the slow request reached A"
    );
    point_at(&edge, b.addr, "");
    reload(&edge, "applied");
    wait_for_origin(&edge, "B");
    gate.open();
    let r = slow.join().expect("slow viewer");
    assert_eq!((r.status, r.complete), (200, true));
    assert_eq!(r.text(), "slow answer from A");
    assert_eq!(b.count("/slow"), 0);
}

#[test]
fn a_bad_file_keeps_the_running_configuration_and_says_why() {
    let objects = catalogue();
    let a = named_origin("A", objects.clone(), Gate::default());
    let b = named_origin("B", objects.clone(), Gate::default());
    let edge = Edge::builder().origin(a.addr).start();
    let path = edge.dir.join(Edge::CONFIG_FILE);
    let good = std::fs::read_to_string(&path).unwrap();

    // A wrong value: refused, with the key; A still serves.
    point_at(&edge, b.addr, "connect_timeout = \"soon\"\n");
    assert_eq!(reload(&edge, "rejected"), 1);
    let log = events(&edge);
    assert!(
        log.contains("configuration reload refused") && log.contains("origin.connect_timeout"),
        "{log}"
    );
    assert_eq!(get(edge.addr, "/who").text(), "A");

    // Not TOML at all: refused too.
    std::fs::write(&path, "[origin\nurl = ").unwrap();
    assert_eq!(reload(&edge, "rejected"), 1);
    assert_eq!(get(edge.addr, "/who").text(), "A");

    // A file that changes a key only a restart can apply (the listener)
    // along with the origin: the origin changes, the listener stays, and
    // the log names the key.
    std::fs::write(&path, &good).unwrap();
    point_at(&edge, b.addr, "");
    let moved = merge_toml(
        &std::fs::read_to_string(&path).unwrap(),
        "[listen]\naddr = \"127.0.0.1:1\"\n",
    );
    std::fs::write(&path, moved).unwrap();
    assert_eq!(reload(&edge, "applied"), 2);
    wait_for_origin(&edge, "B");
    let log = events(&edge);
    assert!(
        log.contains("listen.addr") && log.contains("takes effect only at a restart"),
        "{log}"
    );
    assert_eq!(get(edge.addr, "/obj/1").body, objects["/obj/1"]);
}

#[test]
fn a_reload_changes_the_log_level() {
    let objects = catalogue();
    let a = named_origin("A", objects.clone(), Gate::default());
    // Without RUST_LOG, which would win over log.level.
    let edge = Edge::builder()
        .origin(a.addr)
        .toml("[log]\nlevel = \"warn\"\n")
        .env("RUST_LOG", "")
        .start();
    assert!(!edge.stderr().contains(" INFO "), "{}", edge.stderr());
    point_at(&edge, a.addr, "[log]\nlevel = \"debug\"\n");
    reload(&edge, "applied");
    // The shards say at debug level that they took the new generation.
    assert!(
        eventually(Duration::from_secs(5), || edge
            .stderr()
            .contains("new requests use the reloaded configuration")),
        "{}",
        events(&edge)
    );
}
