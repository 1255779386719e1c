//! A widely used client (ureq) against the real edge: a cross-check that
//! code other than this harness accepts the edge's bytes, for a miss, a hit,
//! a HEAD, and passes streamed chunked both ways.

mod support;

use std::time::Duration;
use support::*;

/// What ureq made of one response.
struct Got {
    status: u16,
    cache_status: String,
    transfer_encoding: Option<String>,
    content_length: Option<String>,
    body: Vec<u8>,
}

fn got(mut r: ureq::http::Response<ureq::Body>) -> Got {
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().expect("ASCII field").to_string())
    };
    let (cache_status, transfer_encoding, content_length) = (
        header("cache-status").expect("Cache-Status"),
        header("transfer-encoding"),
        header("content-length"),
    );
    Got {
        status: r.status().as_u16(),
        cache_status,
        transfer_encoding,
        content_length,
        body: r.body_mut().read_to_vec().expect("ureq reads the body"),
    }
}

#[test]
fn ureq_reads_misses_hits_and_chunked_passes() {
    let pass_tail = bytes(70_000, 2);
    let origin = {
        let pass_tail = pass_tail.clone();
        Origin::start(move |seen| match seen.target.as_str() {
            "/pass" => Script::new(200, vec![])
                .header("Cache-Control", "no-store")
                .with(Body::Chunked(vec![seen.body.clone(), pass_tail.clone()])),
            t => Script::ok("max-age=300", bytes(300_000, t.len() as u64)),
        })
    };
    let edge = Edge::builder().origin(origin.addr).start();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = |path: &str| format!("http://{}{path}", edge.addr);
    let object = bytes(300_000, "/object".len() as u64);

    let miss = got(agent.get(url("/object")).call().expect("miss"));
    assert_eq!(miss.status, 200);
    assert!(
        miss.cache_status.contains("fwd=uri-miss; stored"),
        "{}",
        miss.cache_status
    );
    assert!(miss.body == object, "miss body differs");

    let hit = got(agent.get(url("/object")).call().expect("hit"));
    assert!(
        hit.cache_status.starts_with("edgeslab; hit"),
        "{}",
        hit.cache_status
    );
    assert_eq!(hit.content_length.as_deref(), Some("300000"));
    assert!(hit.body == object, "hit body differs");

    let head = got(agent.head(url("/object")).call().expect("head"));
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.content_length.as_deref(), Some("300000"));

    let pass = got(agent.get(url("/pass")).call().expect("chunked pass"));
    assert_eq!(pass.transfer_encoding.as_deref(), Some("chunked"));
    assert!(
        pass.cache_status.contains("detail=no-store"),
        "{}",
        pass.cache_status
    );
    assert!(pass.body == pass_tail, "chunked pass body differs");

    // A request body from ureq, passed to the origin; the answer chunked back.
    let payload = bytes(50_000, 9);
    let post = got(agent.post(url("/pass")).send(&payload[..]).expect("post"));
    assert!(
        post.cache_status.contains("fwd=method"),
        "{}",
        post.cache_status
    );
    assert_eq!(post.transfer_encoding.as_deref(), Some("chunked"));
    assert!(
        post.body == [&payload[..], &pass_tail[..]].concat(),
        "post body differs"
    );
    let seen = origin.last().expect("the origin saw the POST");
    assert_eq!((seen.method.as_str(), seen.body == payload), ("POST", true));
    assert_eq!(
        origin.count("/object"),
        1,
        "HEAD and the hit came from the cache"
    );
}
