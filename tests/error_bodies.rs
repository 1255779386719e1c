//! What a viewer learns when the origin fails: the status, one sentence and
//! a request id, never the origin's address or a parser's error, which go to
//! the log under the same id.

mod support;

use support::*;

fn request_id(r: &Response) -> String {
    let id = r.header("x-request-id").expect("X-Request-Id").to_string();
    assert!(
        r.text().contains(&format!("request id: {id}")),
        "{}",
        r.text()
    );
    id
}

#[test]
fn an_unreachable_origin_is_a_generic_502_with_a_request_id() {
    let dead = free_loopback_addr();
    let edge = Edge::builder()
        .origin("127.0.0.1:9".parse().expect("addr"))
        .toml(&format!("[origin]\nurl = \"http://{dead}\""))
        .start();
    let r = get(edge.addr, "/x");
    assert_eq!(r.status, 502);
    let body = r.text();
    for secret in [
        dead.to_string(),
        dead.port().to_string(),
        "refused".into(),
        "os error".into(),
    ] {
        assert!(!body.contains(&secret), "{secret:?} in {body}");
    }
    assert!(body.contains("could not be reached"), "{body}");
    let id = request_id(&r);
    assert!(
        eventually(std::time::Duration::from_secs(5), || {
            let log = edge.stderr();
            log.lines()
                .any(|l| l.contains(&id) && l.contains(&dead.to_string()))
        }),
        "the log names the cause under {id}:\n{}",
        edge.stderr()
    );
    // Two failures, two ids.
    let again = get(edge.addr, "/y");
    assert_ne!(request_id(&again), id);
}

#[test]
fn an_invalid_origin_response_is_a_generic_502() {
    let origin = Origin::start(|_| {
        Script::ok("max-age=60", b"x".to_vec()).header("X-Huge", &"a".repeat(100_000))
    });
    let edge = Edge::builder().origin(origin.addr).start();
    let r = get(edge.addr, "/big-head");
    assert_eq!(r.status, 502);
    let body = r.text();
    assert!(
        !body.contains("HeaderTooLarge") && !body.contains("invalid response head"),
        "{body}"
    );
    assert!(body.contains("not valid HTTP"), "{body}");
    request_id(&r);
}
