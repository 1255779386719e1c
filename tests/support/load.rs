//! Load for tests that change a running edge (upgrade, reload): viewers
//! that GET a catalogue of objects in a loop, on persistent or fresh
//! connections, and tally every answer that is not exactly right.

use super::client::Client;
use super::edge::Edge;
use super::origin::{Origin, Script};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn catalogue() -> Arc<HashMap<String, Vec<u8>>> {
    Arc::new(
        (0..40u64)
            .map(|i| {
                let size = if i % 5 == 0 {
                    300_000
                } else {
                    2_000 + i as usize * 97
                };
                (format!("/obj/{i}"), super::bytes(size, i))
            })
            .collect(),
    )
}

pub fn origin_for(objects: Arc<HashMap<String, Vec<u8>>>) -> Origin {
    Origin::start(move |seen| match objects.get(&seen.target) {
        Some(b) => Script::ok("max-age=3600", b.clone()),
        None => Script::new(404, b"no such object".to_vec()),
    })
}

/// What the viewers saw during the load.
#[derive(Default)]
pub struct Tally {
    pub answered: AtomicUsize,
    /// Persistent connections closed between requests (the client retries
    /// on a fresh one, as RFC 9112 §9.3.1 allows).
    pub keepalive_closes: AtomicUsize,
    pub failures: Mutex<Vec<String>>,
}

impl Tally {
    pub fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

/// One viewer: GETs in a loop until `done`, on a persistent connection when
/// `keep_alive`, otherwise a fresh connection each time.
pub fn viewer(
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
pub fn events(edge: &Edge) -> String {
    edge.stderr()
        .lines()
        .filter(|l| !l.contains(" access: "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Viewers running against an edge until `finish`: half on persistent
/// connections, half on a fresh connection per request.
pub struct Load {
    done: Arc<AtomicBool>,
    pub tally: Arc<Tally>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(
        addr: std::net::SocketAddr,
        objects: &Arc<HashMap<String, Vec<u8>>>,
        viewers: usize,
    ) -> Load {
        let done = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let threads = (0..viewers)
            .map(|n| {
                let (objects, done, tally) = (objects.clone(), done.clone(), tally.clone());
                std::thread::spawn(move || viewer(addr, objects, n % 2 == 0, n * 5, done, tally))
            })
            .collect();
        Load {
            done,
            tally,
            threads,
        }
    }

    /// Requests answered exactly right so far.
    pub fn answered(&self) -> usize {
        self.tally.answered.load(Ordering::Relaxed)
    }

    /// Stops the viewers and returns what they saw.
    pub fn finish(self) -> Arc<Tally> {
        self.done.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("viewer thread");
        }
        self.tally
    }
}
