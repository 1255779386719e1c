//! Bodies nothing stores go from the origin's socket to the viewer's by
//! splice, through the real binary: whole and exact, counted in
//! `edgeslab_origin_spliced_bytes_total`, with the origin connection reused
//! after a Content-Length body; a body cut short, an origin that stalls and
//! a viewer that stops reading each end the viewer's connection early,
//! never with a wrong or padded byte, and others are served meanwhile.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const LEN: usize = 8 << 20;

fn origin(body: Arc<Vec<u8>>, gate: Gate) -> Origin {
    Origin::start(move |seen| match seen.target.as_str() {
        "/pass" => Script::ok("no-store", Vec::new()).with(Body::Shared(body.clone())),
        "/cut" => Script::ok("no-store", Vec::new()).with(Body::Truncated {
            data: body[..LEN / 3].to_vec(),
            declared: LEN,
        }),
        "/close" => Script::ok("no-store", Vec::new()).with(Body::CloseDelimited(body.to_vec())),
        "/stall" => Script::ok("no-store", Vec::new()).with(Body::Gated {
            data: body.to_vec(),
            first: LEN / 4,
            gate: gate.clone(),
        }),
        _ => Script::ok("no-store", b"small".to_vec()),
    })
}

fn edge(origin: &Origin) -> Edge {
    Edge::builder()
        .origin(origin.addr)
        .toml("[listen]\nio_timeout = \"1s\"\n[origin]\nidle_timeout = \"1s\"\n")
        .start()
}

fn spliced(edge: &Edge) -> u64 {
    edge.metric("edgeslab_origin_spliced_bytes_total")
}

#[test]
fn passes_are_spliced_whole_and_the_origin_connection_is_reused() {
    let body = Arc::new(big_body(LEN));
    let origin = origin(body.clone(), Gate::default());
    let edge = edge(&origin);
    let mut c = Client::connect(edge.addr);
    for round in 0..3 {
        let r = c.get("/pass");
        assert_eq!(r.status, 200);
        assert!(r.complete, "round {round}");
        assert!(r.body == *body, "round {round}: the bytes differ");
        assert!(
            r.cache_status().contains("fwd=uri-miss"),
            "{}",
            r.cache_status()
        );
    }
    // All but what arrived with each head went by splice.
    let moved = spliced(&edge);
    assert!(
        moved > 3 * (LEN as u64 - (1 << 20)) && moved <= 3 * LEN as u64,
        "spliced {moved} bytes of {}",
        3 * LEN
    );
    assert_eq!(origin.connections(), 1, "the origin connection was reused");
    assert_eq!(
        edge.metric("edgeslab_origin_received_bytes_total"),
        3 * LEN as u64
    );
}

#[test]
fn a_close_delimited_body_is_spliced_to_an_http10_viewer() {
    let body = Arc::new(big_body(LEN));
    let origin = origin(body.clone(), Gate::default());
    let edge = edge(&origin);
    let r = request(
        edge.addr,
        b"GET /close HTTP/1.0\r\nHost: test.local\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.framing,
        Framing::Close,
        "no length: the body ends at close"
    );
    assert!(r.body == *body, "{} bytes", r.body.len());
    assert!(spliced(&edge) > (LEN as u64 - (1 << 20)));
    // An HTTP/1.1 viewer of the same body gets it chunked: copied, whole.
    let before = spliced(&edge);
    let r = get(edge.addr, "/close");
    assert!(r.complete && r.body == *body);
    assert_eq!(spliced(&edge), before, "re-framed bodies are not spliced");
}

/// Reads a response off `s` until the connection ends (bounded).
fn body_of(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    &raw[end + 4..]
}

#[test]
fn a_body_cut_short_or_stalled_at_the_origin_closes_the_viewer_early() {
    let body = Arc::new(big_body(LEN));
    let gate = Gate::default();
    let origin = origin(body.clone(), gate.clone());
    let edge = edge(&origin);
    for path in ["/cut", "/stall"] {
        let mut s = TcpStream::connect(edge.addr).expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes())
            .expect("request");
        let raw = drain(&mut s, Duration::from_secs(30));
        assert!(raw.starts_with(b"HTTP/1.1 200"), "{path}");
        let got = body_of(&raw);
        assert!(got.len() < LEN, "{path}: {} bytes, closed early", got.len());
        assert!(
            body.starts_with(got),
            "{path}: a wrong byte reached the viewer"
        );
    }
    gate.open();
    // The edge serves on.
    let r = get(edge.addr, "/pass");
    assert!(r.complete && r.body == *body);
    assert!(
        edge.stderr().contains("origin body failed"),
        "the cut is logged"
    );
}

#[test]
fn a_viewer_that_stops_reading_a_spliced_body_is_cut_off_and_others_are_served() {
    let body = Arc::new(big_body(4 * LEN));
    let origin = Origin::start({
        let body = body.clone();
        move |_| Script::ok("no-store", Vec::new()).with(Body::Shared(body.clone()))
    });
    let edge = edge(&origin);
    // It reads nothing while the edge's splices wait past io_timeout.
    let mut stalled = stalled_viewer(edge.addr, "/huge", Duration::from_secs(4));
    let t = Instant::now();
    let r = get(edge.addr, "/huge");
    assert!(r.complete && r.body == *body, "others are served meanwhile");
    assert!(t.elapsed() < Duration::from_secs(10));
    let raw = drain(&mut stalled, Duration::from_secs(30));
    let got = body_of(&raw);
    assert!(got.len() < body.len(), "cut off after {} bytes", got.len());
    assert!(body.starts_with(got), "a wrong byte reached the viewer");
    assert!(spliced(&edge) >= body.len() as u64 - (1 << 20));
}
