//! One process per cache device, and restarts that always come back: a
//! second instance on the same cache refuses to start (naming the first
//! one's pid) and leaves the first one's checkpoint intact; a restart right
//! after SIGTERM or SIGKILL serves again on the same viewer and admin
//! ports, however busy they were.

mod support;

use support::*;

fn cacheable() -> Origin {
    Origin::start(|seen| {
        Script::ok(
            "max-age=600",
            format!("object {}", seen.target).into_bytes(),
        )
    })
}

#[test]
fn a_second_instance_on_the_same_cache_refuses_and_harms_nothing() {
    let origin = cacheable();
    let dir = TempDir::new("exclusive");
    let builder = Edge::builder().origin(origin.addr).dir(dir.path());
    let mut first = builder.start();
    for i in 0..40 {
        assert_eq!(get(first.addr, &format!("/o/{i}")).status, 200);
    }
    // Same cache file, other ports (the generated config binds port 0).
    let err = builder.expect_refused("a second instance must not start on the same cache");
    assert!(
        err.contains("in use by another process") && err.contains(&format!("pid {}", first.pid())),
        "{err}"
    );
    // The first one stops cleanly and its checkpoint holds every object.
    first.stop().expect("a clean stop");
    let again = builder.start();
    for i in 0..40 {
        assert!(get(again.addr, &format!("/o/{i}")).is_hit(), "/o/{i}");
    }
    assert_eq!(origin.requests(), 40);
}

#[test]
fn restarts_right_after_sigterm_or_sigkill_serve_on_the_same_ports() {
    let origin = cacheable();
    let dir = TempDir::new("restarts");
    let (listen, admin) = (free_loopback_addr(), free_loopback_addr());
    let builder = Edge::builder()
        .origin(origin.addr)
        .dir(dir.path())
        .toml(&format!(
            "[listen]\naddr = \"{listen}\"\n[admin]\naddr = \"{admin}\""
        ));
    for round in 0..20 {
        let mut edge = builder
            .try_start()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(edge.addr, listen);
        assert!(
            edge.metrics().contains("edgeslab_requests_total"),
            "round {round}"
        );
        let r = get(edge.addr, &format!("/r/{round}"));
        assert_eq!(r.status, 200, "round {round}");
        if round % 2 == 0 {
            edge.stop().expect("stops on SIGTERM");
        } else {
            edge.kill9();
        }
    }
}
