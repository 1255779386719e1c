//! The adapter `decide` keeps the serving path's current contract: the
//! checks it made before the policy layer grew, run through `assess`.

use super::*;
use crate::cache::policy::fixtures::{at, date, resp};

fn run(r: &ResponseHead) -> Result<Freshness, NotStored> {
    decide(
        &Method::Get,
        &Headers::new(),
        r,
        at(0),
        at(0),
        &PolicyConfig::default(),
    )
}

#[test]
fn max_age_and_s_maxage() {
    let f = run(&resp(200, &[("Cache-Control", "max-age=60")])).unwrap();
    assert_eq!(f.expires, at(60));
    let f = run(&resp(200, &[("Cache-Control", "max-age=60, s-maxage=5")])).unwrap();
    assert_eq!(f.expires, at(5));
    assert!(f.is_fresh(at(4)) && !f.is_fresh(at(5)));
}

#[test]
fn refusals() {
    let cases = [
        (
            resp(200, &[("Cache-Control", "no-store, max-age=9")]),
            NotStored::NoStore,
        ),
        (
            resp(200, &[("Cache-Control", "private, max-age=9")]),
            NotStored::Private,
        ),
        (
            resp(200, &[("Cache-Control", "no-cache")]),
            NotStored::NoCache,
        ),
        (
            resp(
                200,
                &[("Cache-Control", "max-age=9"), ("Set-Cookie", "a=b")],
            ),
            NotStored::SetCookie,
        ),
        (
            resp(200, &[("Cache-Control", "max-age=9"), ("Vary", "*")]),
            NotStored::Vary,
        ),
        (resp(200, &[]), NotStored::NoFreshness),
        (resp(302, &[]), NotStored::Status),
        (
            resp(206, &[("Cache-Control", "max-age=9")]),
            NotStored::PartialContent,
        ),
        (
            resp(200, &[("Cache-Control", "max-age=0")]),
            NotStored::Stale,
        ),
        (resp(200, &[("Expires", "0")]), NotStored::Stale),
    ];
    for (r, why) in cases {
        assert_eq!(run(&r), Err(why), "{:?}", r.headers);
    }
    let post = decide(
        &Method::Post,
        &Headers::new(),
        &resp(200, &[("Cache-Control", "max-age=9")]),
        at(0),
        at(0),
        &PolicyConfig::default(),
    );
    assert_eq!(post, Err(NotStored::Method));
}

#[test]
fn request_no_store_and_authorization() {
    let r = resp(200, &[("Cache-Control", "max-age=9")]);
    let mut h = Headers::new();
    h.push("Cache-Control", "no-store");
    assert_eq!(
        decide(&Method::Get, &h, &r, at(0), at(0), &PolicyConfig::default()),
        Err(NotStored::NoStore)
    );
    let mut h = Headers::new();
    h.push("Authorization", "Basic eA==");
    assert_eq!(
        decide(&Method::Get, &h, &r, at(0), at(0), &PolicyConfig::default()),
        Err(NotStored::Authorization)
    );
    let r = resp(200, &[("Cache-Control", "s-maxage=9")]);
    assert!(decide(&Method::Get, &h, &r, at(0), at(0), &PolicyConfig::default()).is_ok());
}

#[test]
fn set_cookie_when_configured() {
    let cfg = PolicyConfig {
        cache_set_cookie: true,
        ..PolicyConfig::default()
    };
    let r = resp(
        200,
        &[("Cache-Control", "max-age=9"), ("Set-Cookie", "a=b")],
    );
    assert!(decide(&Method::Get, &Headers::new(), &r, at(0), at(0), &cfg).is_ok());
}

#[test]
fn expires_relative_to_date() {
    let r = resp(200, &[("Date", &date(0)), ("Expires", &date(100))]);
    assert_eq!(run(&r).unwrap().expires, at(100));
}

#[test]
fn age_counts_against_lifetime() {
    // Origin says the response is already 30s old; 60s lifetime leaves 30.
    let r = resp(
        200,
        &[
            ("Date", &date(0)),
            ("Age", "30"),
            ("Cache-Control", "max-age=60"),
        ],
    );
    let f = run(&r).unwrap();
    assert_eq!(f.age(at(0)), 30);
    assert_eq!(f.ttl(at(0)), 30);
    assert_eq!(f.age(at(10)), 40);
    // A Date in the past also ages it (apparent age).
    let r = resp(200, &[("Date", &date(0)), ("Cache-Control", "max-age=60")]);
    let f = decide(
        &Method::Get,
        &Headers::new(),
        &r,
        at(20),
        at(20),
        &PolicyConfig::default(),
    )
    .unwrap();
    assert_eq!(f.age(at(20)), 20);
}

#[test]
fn heuristic_from_last_modified_and_default_ttl() {
    let r = resp(200, &[("Date", &date(1000)), ("Last-Modified", &date(0))]);
    let f = decide(
        &Method::Get,
        &Headers::new(),
        &r,
        at(1000),
        at(1000),
        &PolicyConfig::default(),
    )
    .unwrap();
    assert_eq!(f.expires, at(1100));
    let cfg = PolicyConfig {
        default_ttl: Duration::from_secs(7),
        ..PolicyConfig::default()
    };
    let f = decide(
        &Method::Get,
        &Headers::new(),
        &resp(404, &[]),
        at(0),
        at(0),
        &cfg,
    )
    .unwrap();
    assert_eq!(f.expires, at(7));
}

#[test]
fn bodies_that_cannot_be_stored() {
    let parse = |s: &str| {
        crate::http::parse_response(s.as_bytes(), &crate::http::Limits::default(), false)
            .expect("valid")
            .expect("complete")
            .0
    };
    let plain = parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
    assert_eq!(storable_body(&plain, 10), Ok(()));
    assert_eq!(storable_body(&plain, 9), Err(NotStored::TooLarge));
    let chunked = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(
        storable_body(&chunked, 0),
        Ok(()),
        "length unknown up front"
    );
    let gzip = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(
        storable_body(&gzip, 1 << 20),
        Err(NotStored::TransferCoding)
    );
    assert_eq!(NotStored::TransferCoding.token(), "transfer-coding");
    assert_eq!(NotStored::TooLarge.token(), "too-large");
}

// The adapter refuses what a fresh-only serving path cannot honour, even
// where `assess` would store (RFC 9111 §5.2.2.4, §5.2.2.7).
#[test]
fn adapter_refuses_what_needs_revalidation_or_stripping() {
    let cases = [
        (
            resp(
                200,
                &[("Cache-Control", "no-cache, max-age=60"), ("ETag", "\"a\"")],
            ),
            NotStored::NoCache,
        ),
        (
            resp(200, &[("Cache-Control", "no-cache=\"x-a\", max-age=60")]),
            NotStored::NoCache,
        ),
        (
            resp(200, &[("Cache-Control", "private=\"x-a\", max-age=60")]),
            NotStored::Private,
        ),
        (
            resp(200, &[("Cache-Control", "max-age=0"), ("ETag", "\"a\"")]),
            NotStored::Stale,
        ),
    ];
    for (r, why) in cases {
        assert_eq!(run(&r), Err(why), "{:?}", r.headers);
    }
}

// RFC 9213 §2.2: the adapter follows the targeted field too.
#[test]
fn adapter_follows_targeted_fields() {
    let r = resp(
        200,
        &[
            ("Cache-Control", "no-store"),
            ("CDN-Cache-Control", "max-age=600"),
        ],
    );
    assert_eq!(run(&r).map(|f| f.expires), Ok(at(600)));
}
