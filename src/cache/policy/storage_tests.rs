//! Unit tests of `assess`: one rule of RFC 9111 §3 (and the sections it
//! leans on) per test, each citing its section.

use super::*;
use crate::cache::policy::LifetimeSource;
use crate::cache::policy::fixtures::{at, date, resp};

fn headers(fields: &[(&str, &str)]) -> Headers {
    Headers::from_fields(fields)
}

fn assess_with(
    method: &Method,
    request: &Headers,
    r: &ResponseHead,
    cfg: &PolicyConfig,
) -> Result<Storable, NotStored> {
    let exchange = Exchange {
        method,
        request,
        request_time: at(0),
        response_time: at(0),
    };
    assess(&exchange, r, cfg)
}

fn run(r: &ResponseHead) -> Result<Storable, NotStored> {
    assess_with(&Method::Get, &Headers::new(), r, &PolicyConfig::default())
}

fn run_cfg(r: &ResponseHead, cfg: &PolicyConfig) -> Result<Storable, NotStored> {
    assess_with(&Method::Get, &Headers::new(), r, cfg)
}

fn err(r: Result<Storable, NotStored>) -> Option<NotStored> {
    r.err()
}

const MAX_AGE: (&str, &str) = ("Cache-Control", "max-age=60");

// RFC 9111 §3: the method must be understood (GET, and HEAD filled by GET).
#[test]
fn only_cacheable_methods() {
    let r = resp(200, &[MAX_AGE]);
    let cfg = PolicyConfig::default();
    for m in [Method::Post, Method::Put, Method::Delete, Method::Options] {
        assert_eq!(
            err(assess_with(&m, &Headers::new(), &r, &cfg)),
            Some(NotStored::Method)
        );
    }
    assert!(assess_with(&Method::Head, &Headers::new(), &r, &cfg).is_ok());
}

// RFC 9111 §3: only final statuses; a 304 only freshens (§4.3.4).
#[test]
fn final_statuses_only() {
    assert_eq!(err(run(&resp(101, &[MAX_AGE]))), Some(NotStored::Status));
    assert_eq!(
        err(run(&resp(304, &[MAX_AGE]))),
        Some(NotStored::NotModified)
    );
    assert_eq!(err(run(&resp(600, &[MAX_AGE]))), Some(NotStored::Status));
}

// RFC 9111 §5.2.2.5 and §5.2.1.5: no-store in the response or the request.
#[test]
fn no_store_either_side() {
    let r = resp(200, &[("Cache-Control", "max-age=60, no-store")]);
    assert_eq!(err(run(&r)), Some(NotStored::NoStore));
    let req = headers(&[("Cache-Control", "no-store")]);
    let got = assess_with(
        &Method::Get,
        &req,
        &resp(200, &[MAX_AGE]),
        &PolicyConfig::default(),
    );
    assert_eq!(err(got), Some(NotStored::NoStore));
}

// RFC 9111 §5.2.2.3: must-understand stores an understood status and then
// ignores no-store; an unknown status is not stored.
#[test]
fn must_understand() {
    let cc = ("Cache-Control", "must-understand, no-store, max-age=60");
    assert!(run(&resp(200, &[cc])).is_ok());
    assert!(run(&resp(404, &[cc])).is_ok());
    assert_eq!(err(run(&resp(299, &[cc]))), Some(NotStored::MustUnderstand));
    assert_eq!(err(run(&resp(425, &[cc]))), Some(NotStored::MustUnderstand));
    // §3: 206 is understood only by a cache that implements ranges.
    assert_eq!(err(run(&resp(206, &[cc]))), Some(NotStored::MustUnderstand));
    // Request no-store still applies.
    let req = headers(&[("Cache-Control", "no-store")]);
    let got = assess_with(
        &Method::Get,
        &req,
        &resp(200, &[cc]),
        &PolicyConfig::default(),
    );
    assert_eq!(err(got), Some(NotStored::NoStore));
}

// RFC 9111 §5.2.2.7: bare private is not stored by a shared cache; with
// field names, those fields are stripped and the rest is stored. §3.1: the
// proxy's own authentication fields are never stored.
#[test]
fn private_bare_and_qualified() {
    let r = resp(200, &[("Cache-Control", "private, max-age=60")]);
    assert_eq!(err(run(&r)), Some(NotStored::Private));
    let mut r = resp(
        200,
        &[
            (
                "Cache-Control",
                "private=\"X-User, Set-Cookie\", max-age=60",
            ),
            ("X-User", "alice"),
            ("Set-Cookie", "s=1"),
            ("Proxy-Authenticate", "Basic"),
            ("Content-Type", "text/plain"),
        ],
    );
    // Set-Cookie is stripped before storage, so it does not forbid storing.
    let s = run(&r).expect("stored without the private fields");
    assert!(s.strip_before_storing.contains("x-user"));
    s.strip_unstorable_fields(&mut r.headers);
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["Cache-Control", "Content-Type"]);
}

// RFC 9111 §3.5: a response to an authorised request is stored only with
// public, must-revalidate or s-maxage — in the governing field.
#[test]
fn authorization() {
    let req = headers(&[("Authorization", "Bearer t")]);
    let cfg = PolicyConfig::default();
    let check =
        |fields: &[(&str, &str)]| err(assess_with(&Method::Get, &req, &resp(200, fields), &cfg));
    assert_eq!(check(&[MAX_AGE]), Some(NotStored::Authorization));
    assert_eq!(check(&[("Cache-Control", "max-age=60, public")]), None);
    assert_eq!(
        check(&[("Cache-Control", "max-age=60, must-revalidate")]),
        None
    );
    assert_eq!(check(&[("Cache-Control", "s-maxage=60")]), None);
    // RFC 9213 §2.2: Cache-Control's public does not count when a targeted
    // field governs.
    let fields = [
        ("Cache-Control", "public"),
        ("CDN-Cache-Control", "max-age=60"),
    ];
    assert_eq!(check(&fields), Some(NotStored::Authorization));
}

// Set-Cookie: stored only with cache.cache_set_cookie.
#[test]
fn set_cookie_by_configuration() {
    let r = resp(200, &[MAX_AGE, ("Set-Cookie", "a=b")]);
    assert_eq!(err(run(&r)), Some(NotStored::SetCookie));
    let cfg = PolicyConfig {
        cache_set_cookie: true,
        ..PolicyConfig::default()
    };
    assert!(run_cfg(&r, &cfg).is_ok());
}

// RFC 9111 §4.1: a response that varies is stored (as a variant); one
// with "*" in Vary always fails to match, so it is not.
#[test]
fn vary_star_is_not_stored_other_lists_are() {
    assert!(run(&resp(200, &[MAX_AGE, ("Vary", "Accept-Encoding")])).is_ok());
    assert!(run(&resp(200, &[MAX_AGE, ("Vary", " ")])).is_ok());
    for star in ["*", "Accept-Encoding, *"] {
        let r = resp(200, &[MAX_AGE, ("Vary", star)]);
        assert_eq!(err(run(&r)), Some(NotStored::Vary), "{star}");
    }
}

// RFC 9111 §3.3 and §3: a 206 is stored (as an incomplete 200) only by a
// cache that implements ranges, and only with a single byte range.
#[test]
fn partial_content() {
    let r = resp(206, &[MAX_AGE, ("Content-Range", "bytes 0-99/1000")]);
    assert_eq!(err(run(&r)), Some(NotStored::PartialContent));
    let cfg = PolicyConfig {
        store_partial_content: true,
        ..PolicyConfig::default()
    };
    let s = run_cfg(&r, &cfg).expect("stored as partial");
    let range = ContentRange {
        first: 0,
        last: 99,
        complete_length: Some(1000),
    };
    assert_eq!(s.body, StoredBody::Partial(range));
    let multipart = resp(
        206,
        &[
            MAX_AGE,
            ("Content-Type", "multipart/byteranges; boundary=x"),
        ],
    );
    assert_eq!(
        err(run_cfg(&multipart, &cfg)),
        Some(NotStored::PartialContent)
    );
    let other_unit = resp(206, &[MAX_AGE, ("Content-Range", "items 0-1/2")]);
    assert_eq!(
        err(run_cfg(&other_unit, &cfg)),
        Some(NotStored::PartialContent)
    );
    assert_eq!(
        run(&resp(200, &[MAX_AGE])).map(|s| s.body),
        Ok(StoredBody::Complete)
    );
}

// RFC 9110 §14.4: Content-Range syntax a cache can store.
#[test]
fn content_range_parsing() {
    let r = ContentRange::parse("bytes 5-9/*").expect("unknown length");
    assert_eq!((r.first, r.last, r.complete_length), (5, 9, None));
    for bad in [
        "bytes 9-5/10",
        "bytes 0-10/10",
        "bytes */10",
        "bytes 1-/5",
        "bytes 0-1",
    ] {
        assert_eq!(ContentRange::parse(bad), None, "{bad}");
    }
}

// RFC 9111 §3 and RFC 9110 §15.1: without explicit freshness only
// heuristically cacheable statuses (or `public`) are stored.
#[test]
fn heuristically_cacheable_statuses() {
    let lm = ("Last-Modified", &date(0)[..]);
    let dated = ("Date", &date(0)[..]);
    let cfg = PolicyConfig {
        default_ttl: Duration::from_secs(5),
        ..PolicyConfig::default()
    };
    for status in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
        assert!(heuristically_cacheable(status));
        assert!(run_cfg(&resp(status, &[dated]), &cfg).is_ok(), "{status}");
    }
    for status in [302, 303, 307, 400, 403, 500, 502, 503] {
        assert!(!heuristically_cacheable(status));
        assert_eq!(
            err(run_cfg(&resp(status, &[lm, dated]), &cfg)),
            Some(NotStored::Status)
        );
    }
    // Explicit freshness makes any final status storable.
    assert!(run(&resp(302, &[MAX_AGE])).is_ok());
    assert!(run(&resp(503, &[MAX_AGE])).is_ok());
    // RFC 9111 §5.2.2.9: public makes it heuristically cacheable.
    let s = run_cfg(&resp(302, &[("Cache-Control", "public")]), &cfg).expect("public");
    assert_eq!(s.lifetime.source, LifetimeSource::DefaultTtl);
    // Nothing to base a lifetime on.
    assert_eq!(err(run(&resp(200, &[]))), Some(NotStored::NoFreshness));
}

// Negative caching: fresh 204/301/404/410 are stored by the usual rules;
// cache.error_ttl covers cacheable 4xx/5xx without explicit freshness, and
// never overrides an explicit lifetime.
#[test]
fn negative_caching_and_error_ttl() {
    for status in [204, 301, 404, 410] {
        let s = run(&resp(status, &[MAX_AGE])).expect("explicitly fresh");
        assert_eq!(s.freshness.expires, at(60));
    }
    let cfg = PolicyConfig {
        error_ttl: Duration::from_secs(10),
        ..PolicyConfig::default()
    };
    for status in [404, 405, 410, 414, 501] {
        let s = run_cfg(&resp(status, &[]), &cfg).expect("error_ttl");
        assert_eq!(
            (s.lifetime.source, s.freshness.expires),
            (LifetimeSource::ErrorTtl, at(10))
        );
    }
    // Not for success or redirects, nor for statuses §3 does not allow.
    assert_eq!(
        err(run_cfg(&resp(204, &[]), &cfg)),
        Some(NotStored::NoFreshness)
    );
    assert_eq!(err(run_cfg(&resp(500, &[]), &cfg)), Some(NotStored::Status));
    let s = run_cfg(&resp(404, &[MAX_AGE]), &cfg).expect("explicit");
    assert_eq!(s.lifetime.source, LifetimeSource::MaxAge);
}

// RFC 9111 §5.2.2.4: no-cache responses are stored but reused only after
// validation; a copy that can never be validated is not worth storing.
#[test]
fn no_cache_bare_and_qualified() {
    let r = resp(
        200,
        &[("Cache-Control", "no-cache, max-age=60"), ("ETag", "\"a\"")],
    );
    assert_eq!(run(&r).map(|s| s.reuse), Ok(ReuseLimit::EveryUse));
    let r = resp(200, &[("Cache-Control", "no-cache, max-age=60")]);
    assert_eq!(err(run(&r)), Some(NotStored::NoCache));
    // Validated on every use, it needs no lifetime to be stored.
    let r = resp(200, &[("Cache-Control", "no-cache"), ("ETag", "\"a\"")]);
    let s = run(&r).expect("stored for revalidation");
    assert_eq!(s.lifetime.source, LifetimeSource::AlwaysValidated);
    assert!(s.stale_on_arrival(at(0)));
    let r = resp(200, &[("Cache-Control", "no-cache=\"X-A\", max-age=60")]);
    let Ok(Storable {
        reuse: ReuseLimit::FieldsNeedValidation(names),
        ..
    }) = run(&r)
    else {
        panic!("qualified no-cache is stored");
    };
    assert!(names.contains("x-a"));
}

// RFC 9111 §4.2.4 and RFC 5861: a response stale on arrival is kept only
// if it can be revalidated or served from a stale window.
#[test]
fn stale_on_arrival() {
    let r = resp(200, &[("Cache-Control", "max-age=0")]);
    assert_eq!(err(run(&r)), Some(NotStored::Stale));
    let with_etag = resp(200, &[("Cache-Control", "max-age=0"), ("ETag", "\"a\"")]);
    let s = run(&with_etag).expect("kept for revalidation");
    assert!(s.stale_on_arrival(at(0)));
    let swr = resp(
        200,
        &[("Cache-Control", "max-age=0, stale-while-revalidate=30")],
    );
    assert!(run(&swr).is_ok());
    let cfg = PolicyConfig {
        stale_if_error: Duration::from_secs(60),
        ..PolicyConfig::default()
    };
    assert!(run_cfg(&r, &cfg).is_ok());
    // must-revalidate closes the configured window (§5.2.2.2).
    let strict = resp(200, &[("Cache-Control", "max-age=0, must-revalidate")]);
    assert_eq!(err(run_cfg(&strict, &cfg)), Some(NotStored::Stale));
    // An already expired Age is stale too (§4.2.3).
    let aged = resp(200, &[MAX_AGE, ("Age", "61")]);
    assert_eq!(err(run(&aged)), Some(NotStored::Stale));
}

// RFC 9111 §4.2.1 and §4.2.3: the stored instants and their source.
#[test]
fn freshness_and_source() {
    let r = resp(
        200,
        &[
            ("Date", &date(0)),
            ("Age", "10"),
            ("Cache-Control", "s-maxage=100, max-age=5"),
        ],
    );
    let s = run(&r).expect("fresh");
    assert_eq!(
        (s.freshness.born, s.freshness.expires),
        (at(0) - Duration::from_secs(10), at(90))
    );
    assert_eq!(s.lifetime.source, LifetimeSource::SMaxAge);
    assert_eq!(s.controlled_by, ControllingField::CacheControl);
    let r = resp(
        200,
        &[
            ("Edgeslab-Cache-Control", "max-age=30"),
            ("Cache-Control", "no-store"),
        ],
    );
    let s = run(&r).expect("targeted");
    assert_eq!(s.controlled_by, ControllingField::EdgeslabCacheControl);
    assert_eq!(s.freshness.expires, at(30));
}

// RFC 9111 §4.3.1: what a revalidation can send.
#[test]
fn validators() {
    assert!(has_validator(&headers(&[("ETag", "\"x\"")])));
    assert!(has_validator(&headers(&[("Last-Modified", &date(0))])));
    assert!(!has_validator(&headers(&[("Last-Modified", "yesterday")])));
}

#[test]
fn tokens_are_distinct() {
    let all = [
        NotStored::Method,
        NotStored::Status,
        NotStored::NoStore,
        NotStored::Private,
        NotStored::NoCache,
        NotStored::SetCookie,
        NotStored::Authorization,
        NotStored::Vary,
        NotStored::NoFreshness,
        NotStored::Stale,
        NotStored::PartialContent,
        NotStored::TransferCoding,
        NotStored::TooLarge,
        NotStored::MustUnderstand,
        NotStored::NotModified,
    ];
    let mut tokens: Vec<_> = all.iter().map(|n| n.token()).collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), all.len());
}
