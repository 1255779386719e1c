//! An origin failing under load, with many viewers of one object coalesced
//! on its fetch: a response cut mid-body, a connection reset before any
//! answer, a chunked body cut short. Every viewer gets the whole correct
//! body or a connection closed early — never a wrong or padded byte — and
//! nothing partial is stored.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

const LEN: usize = 2 << 20;

#[test]
fn faults_mid_body_never_reach_a_viewer_as_a_whole_response() {
    let calls = Arc::new(AtomicUsize::new(0));
    let origin = {
        let calls = calls.clone();
        Origin::start(move |seen| {
            let body = bytes(LEN, seen.target.len() as u64);
            match calls.fetch_add(1, Ordering::SeqCst) % 4 {
                // Cut mid-body: half the bytes, then a close.
                0 => Script::ok("max-age=600", Vec::new()).with(Body::Truncated {
                    data: body[..LEN / 2].to_vec(),
                    declared: LEN,
                }),
                // No answer at all.
                1 => Script::ok("max-age=600", Vec::new()).with(Body::Hangup {
                    after: Duration::from_millis(100),
                }),
                // A chunked body that stops before its last chunk.
                2 => Script::ok("max-age=600", Vec::new()).with(Body::ChunkedTruncated(
                    body[..LEN / 3]
                        .chunks(64 << 10)
                        .map(<[u8]>::to_vec)
                        .collect(),
                )),
                _ => Script::ok("max-age=600", body),
            }
        })
    };
    let edge = Edge::builder().origin(origin.addr).start();
    for round in 0..6 {
        let path = format!("/faulty/{round}");
        let body = bytes(LEN, path.len() as u64);
        let viewers: Vec<_> = (0..12)
            .map(|_| {
                let (addr, path) = (edge.addr, path.clone());
                std::thread::spawn(move || {
                    let mut c = Client::connect(addr);
                    let raw = format!(
                        "GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n"
                    );
                    c.send(raw.as_bytes());
                    let mut got = Vec::new();
                    let r = c.read_response_streaming(raw.as_bytes(), &mut |b: &[u8]| {
                        got.extend_from_slice(b)
                    });
                    (r.map(|r| (r.status, r.complete)), got)
                })
            })
            .collect();
        for v in viewers {
            let (r, got) = v.join().expect("viewer");
            assert!(
                body.starts_with(&got),
                "round {round}: a wrong byte reached a viewer"
            );
            match r {
                Some((200, true)) => assert_eq!(got.len(), LEN, "round {round}: padded or short"),
                Some((status, true)) => assert!(status >= 500, "round {round}: {status}"),
                // Cut: the connection closed early, which the viewer sees.
                _ => assert!(got.len() < LEN),
            }
        }
        // Whatever is stored is whole: fetch until a clean answer, then a
        // hit gives the same bytes.
        let mut clean = None;
        for _ in 0..8 {
            let mut c = Client::connect(edge.addr);
            let raw = format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n");
            c.send(raw.as_bytes());
            if let Some(r) = c.read_response()
                && r.status == 200
                && r.complete
            {
                clean = Some(r);
                break;
            }
        }
        let clean = clean.expect("a clean answer within eight tries");
        assert!(clean.body == body, "round {round}");
        let hit = get(edge.addr, &path);
        assert!(
            hit.is_hit() && hit.body == body,
            "round {round}: {}",
            hit.cache_status()
        );
    }
}
