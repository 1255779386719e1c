//! Binary upgrade through the real binary: `serve --takeover` takes the
//! listening sockets over from the running process, which drains, writes
//! its checkpoint and exits; the new process loads that checkpoint and
//! serves. Under load, no connection is refused or reset and no body is
//! wrong, and the cache comes through warm.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

fn catalogue() -> Arc<HashMap<String, Vec<u8>>> {
    Arc::new(
        (0..40u64)
            .map(|i| {
                let size = if i % 5 == 0 {
                    300_000
                } else {
                    2_000 + i as usize * 97
                };
                (format!("/obj/{i}"), bytes(size, i))
            })
            .collect(),
    )
}

fn origin_for(objects: Arc<HashMap<String, Vec<u8>>>) -> Origin {
    Origin::start(move |seen| match objects.get(&seen.target) {
        Some(b) => Script::ok("max-age=3600", b.clone()),
        None => Script::new(404, b"no such object".to_vec()),
    })
}

/// What the viewers saw during the load.
#[derive(Default)]
struct Tally {
    answered: AtomicUsize,
    /// Persistent connections closed between requests (the client retries
    /// on a fresh one, as RFC 9112 §9.3.1 allows).
    keepalive_closes: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

/// One viewer: GETs in a loop until `done`, on a persistent connection when
/// `keep_alive`, otherwise a fresh connection each time.
fn viewer(
    addr: std::net::SocketAddr,
    objects: Arc<HashMap<String, Vec<u8>>>,
    keep_alive: bool,
    seed: usize,
    done: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let paths: Vec<String> = {
        let mut p: Vec<String> = objects.keys().cloned().collect();
        p.sort();
        p
    };
    let mut conn: Option<Client> = None;
    let mut i = seed;
    let stop_at = Instant::now() + Duration::from_secs(60);
    while !done.load(Ordering::Relaxed) && Instant::now() < stop_at {
        let path = &paths[i % paths.len()];
        i += 7;
        let raw = format!(
            "GET {path} HTTP/1.1\r\nHost: test.local\r\n{}\r\n",
            if keep_alive {
                ""
            } else {
                "Connection: close\r\n"
            }
        );
        let reused = conn.is_some();
        let mut c = match conn.take() {
            Some(c) => c,
            None => match Client::try_connect(addr) {
                Ok(c) => c,
                Err(e) => {
                    tally.fail(format!("connect: {e}"));
                    continue;
                }
            },
        };
        let answer = c
            .try_send(raw.as_bytes())
            .ok()
            .and_then(|_| c.read_response());
        let Some(r) = answer else {
            if reused && c.unread().is_empty() {
                tally.keepalive_closes.fetch_add(1, Ordering::Relaxed);
            } else {
                tally.fail(format!(
                    "{path}: the connection ended without an answer (fresh connection)"
                ));
            }
            continue;
        };
        if r.status != 200 || !r.complete || r.body != objects[path] {
            tally.fail(format!(
                "{path}: status {} complete {} body {} of {} bytes",
                r.status,
                r.complete,
                r.body.len(),
                objects[path].len()
            ));
            continue;
        }
        tally.answered.fetch_add(1, Ordering::Relaxed);
        let closes = r
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if keep_alive && !closes {
            conn = Some(c);
        }
    }
}

/// The edge's log without its access lines.
fn events(edge: &Edge) -> String {
    edge.stderr()
        .lines()
        .filter(|l| !l.contains(" access: "))
        .collect::<Vec<_>>()
        .join("\n")
}

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

    let done = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let viewers: Vec<_> = (0..6)
        .map(|n| {
            let (objects, done, tally) = (objects.clone(), done.clone(), tally.clone());
            let addr = old.addr;
            std::thread::spawn(move || viewer(addr, objects, n % 2 == 0, n * 5, done, tally))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let before = tally.answered.load(Ordering::Relaxed);
    let new = builder.clone().arg("--takeover").start();
    assert_eq!(new.addr, old.addr, "the same listening sockets");
    let status = old.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the old process drains and exits 0:\n{}",
        old.stderr()
    );
    let during = tally.answered.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(700));
    done.store(true, Ordering::Relaxed);
    for v in viewers {
        v.join().expect("viewer thread");
    }
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
    let r = Edge::builder()
        .origin(origin.addr)
        .dir(dir.path())
        .arg("--takeover")
        .try_start();
    let Err(stderr) = r else {
        panic!("a takeover with nothing to take over started")
    };
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
    let r = Edge::builder()
        .origin(origin.addr)
        .dir(dir.path())
        .toml("cores = [0, 1]\n")
        .arg("--takeover")
        .try_start();
    let Err(stderr) = r else {
        panic!("a takeover with another shard count started")
    };
    assert!(
        stderr.contains("refused") && stderr.contains("1 shards"),
        "{stderr}"
    );
    assert_eq!(get(old.addr, "/obj/1").body, objects["/obj/1"]);
    assert!(!old.stderr().contains("listeners handed over"));
}
