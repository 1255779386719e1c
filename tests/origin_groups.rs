//! Origin groups through the real binary: the primary origin answers
//! unless it cannot be reached, times out or answers a failover status;
//! then the secondary does. With active health checks, a primary that fails
//! them is skipped until it passes again.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use support::*;

fn origin_named(name: &'static str, status: Arc<AtomicU16>) -> Origin {
    Origin::start(move |seen| {
        if seen.target == "/health" {
            return Script::new(status.load(Ordering::Relaxed), b"health".to_vec());
        }
        let s = status.load(Ordering::Relaxed);
        Script::new(s, format!("{name} {}", seen.target).into_bytes())
            .header("Cache-Control", "no-store")
    })
}

fn group_edge(primary: &str, secondary: &str, extra: &str) -> Edge {
    Edge::builder()
        .origin("127.0.0.1:9".parse().expect("addr"))
        .toml(&format!(
            "[origin]\nurl = \"\"\n[[origin_group]]\nname = \"default\"\n\
             origins = [\"http://{primary}\", \"http://{secondary}\"]\n{extra}"
        ))
        .start()
}

#[test]
fn a_failing_primary_hands_requests_to_the_secondary() {
    let (s1, s2) = (Arc::new(AtomicU16::new(200)), Arc::new(AtomicU16::new(200)));
    let primary = origin_named("primary", s1.clone());
    let secondary = origin_named("secondary", s2.clone());
    let edge = group_edge(&primary.addr.to_string(), &secondary.addr.to_string(), "");
    assert_eq!(get(edge.addr, "/a").text(), "primary /a");
    s1.store(503, Ordering::Relaxed);
    let r = get(edge.addr, "/b");
    assert_eq!((r.status, r.text().as_str()), (200, "secondary /b"));
    assert!(edge.metric("edgeslab_upstream_failovers_total") >= 1);
    // A POST moves on only when nothing was sent: a 503 is its answer.
    let r = request(
        edge.addr,
        b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert!(
        r.status == 503 || r.text() == "secondary /c",
        "{} {}",
        r.status,
        r.text()
    );
}

#[test]
fn an_unreachable_primary_hands_requests_to_the_secondary() {
    let s2 = Arc::new(AtomicU16::new(200));
    let secondary = origin_named("secondary", s2);
    let dead = free_loopback_addr();
    let edge = group_edge(&dead.to_string(), &secondary.addr.to_string(), "");
    for p in ["/x", "/y"] {
        let r = get(edge.addr, p);
        assert_eq!(r.text(), format!("secondary {p}"));
    }
    let r = request(
        edge.addr,
        b"POST /z HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(r.text(), "secondary /z", "nothing was sent to the dead one");
}

#[test]
fn health_checks_take_a_primary_out_and_bring_it_back() {
    let (s1, s2) = (Arc::new(AtomicU16::new(200)), Arc::new(AtomicU16::new(200)));
    let primary = origin_named("primary", s1.clone());
    let secondary = origin_named("secondary", s2);
    let checks = "[origin_group.health_check]\npath = \"/health\"\ninterval = \"100ms\"\n\
                  timeout = \"1s\"\nhealthy_threshold = 2\nunhealthy_threshold = 2\n";
    let edge = group_edge(
        &primary.addr.to_string(),
        &secondary.addr.to_string(),
        checks,
    );
    assert_eq!(get(edge.addr, "/1").text(), "primary /1");
    s1.store(500, Ordering::Relaxed);
    assert!(
        eventually(Duration::from_secs(10), || primary.count("/health") >= 4),
        "checked"
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = primary.count("/2");
    assert_eq!(get(edge.addr, "/2").text(), "secondary /2");
    assert_eq!(
        primary.count("/2"),
        before,
        "the unhealthy primary was not asked"
    );
    s1.store(200, Ordering::Relaxed);
    assert!(
        eventually(Duration::from_secs(10), || get(edge.addr, "/3").text()
            == "primary /3"),
        "the primary is back"
    );
}

#[test]
fn origins_given_by_name_resolve() {
    let s = Arc::new(AtomicU16::new(200));
    let named = origin_named("named", s);
    let edge = Edge::builder()
        .origin(named.addr)
        .toml(&format!(
            "[origin]\nurl = \"http://localhost:{}\"\ndns_ttl = \"1s\"",
            named.addr.port()
        ))
        .start();
    assert_eq!(get(edge.addr, "/n").text(), "named /n");
}
