//! Binary upgrade through the real binary: `serve --takeover` takes the
//! listening sockets over from the running process, which drains, writes
//! its checkpoint and exits; the new process loads that checkpoint and
//! serves. Under load, no connection is refused or reset and no body is
//! wrong, and the cache comes through warm.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;
use support::load::{Load, catalogue, events, origin_for};
use support::*;

#[test]
fn an_upgrade_under_load_drops_nothing_and_keeps_the_cache_warm() {
    let objects = catalogue();
    let origin = origin_for(objects.clone());
    let dir = TempDir::new("upgrade");
    let builder = Edge::builder().origin(origin.addr).dir(dir.path());
    let mut old = builder.start();
    let mut paths: Vec<&String> = objects.keys().collect();
    paths.sort();
    for p in &paths {
        assert_eq!(get(old.addr, p).body, objects[*p]);
    }
    let warmed = origin.requests();

    let load = Load::start(old.addr, &objects, 6);
    std::thread::sleep(Duration::from_millis(700));
    let before = load.answered();
    let new = builder.clone().arg("--takeover").start();
    assert_eq!(new.addr, old.addr, "the same listening sockets");
    let status = old.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the old process drains and exits 0:\n{}",
        old.stderr()
    );
    let during = load.answered();
    std::thread::sleep(Duration::from_millis(700));
    let tally = load.finish();
    let failures = tally.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}\nold:\n{}\nnew:\n{}",
        failures.len(),
        failures.first(),
        events(&old),
        events(&new)
    );
    let after = tally.answered.load(Ordering::Relaxed);
    assert!(
        before > 50 && after > during + 50,
        "load ran before ({before}) and after ({} more) the upgrade",
        after - during
    );
    eprintln!(
        "answered {after}; persistent connections closed between requests: {}",
        tally.keepalive_closes.load(Ordering::Relaxed)
    );
    // The checkpoint came through: every object is a hit, none refetched.
    for p in &paths {
        let r = get(new.addr, p);
        assert!(r.is_hit(), "{p} after the upgrade: {}", r.cache_status());
        assert_eq!(r.body, objects[*p]);
    }
    assert_eq!(
        origin.requests(),
        warmed,
        "nothing was fetched again\nold:\n{}\nnew:\n{}",
        events(&old),
        events(&new)
    );
    assert!(old.stderr().contains("listeners handed over"));
    assert!(new.stderr().contains("the old process released the cache"));
    assert!(new.stderr().contains("warm start from the checkpoint"));
}

#[test]
fn a_takeover_with_nothing_running_says_so() {
    let origin = origin_for(catalogue());
    let dir = TempDir::new("upgrade-none");
    let stderr = Edge::builder()
        .origin(origin.addr)
        .dir(dir.path())
        .arg("--takeover")
        .expect_refused("there was nothing to take over");
    assert!(
        stderr.contains("no running edgeslab offers the cache"),
        "{stderr}"
    );
}

#[test]
fn a_takeover_that_does_not_fit_is_refused_and_the_old_one_serves_on() {
    let objects = catalogue();
    let origin = origin_for(objects.clone());
    let dir = TempDir::new("upgrade-misfit");
    let old = Edge::builder()
        .origin(origin.addr)
        .dir(dir.path())
        .toml("cores = [0]\n")
        .start();
    let stderr = Edge::builder()
        .origin(origin.addr)
        .dir(dir.path())
        .toml("cores = [0, 1]\n")
        .arg("--takeover")
        .expect_refused("the running one has another shard count");
    assert!(
        stderr.contains("refused") && stderr.contains("1 shards"),
        "{stderr}"
    );
    assert_eq!(get(old.addr, "/obj/1").body, objects["/obj/1"]);
    assert!(!old.stderr().contains("listeners handed over"));
}
