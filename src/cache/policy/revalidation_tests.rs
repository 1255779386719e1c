//! Unit tests of validation: conditional fields (RFC 9111 §4.3.1, RFC 9110
//! §13.1.5), what a 304 is for (§4.3.3), and freshening (§4.3.4, §3.2).

use super::*;
use crate::cache::policy::fixtures::{at, date, resp};
use crate::cache::policy::{LifetimeSource, ReuseLimit};
use crate::http::Method;

fn freshen_at(
    stored: &ResponseHead,
    not_modified: &ResponseHead,
    when: u64,
) -> Result<Freshened, NotApplicable> {
    let request = Headers::new();
    let exchange = Exchange {
        method: &Method::Get,
        request: &request,
        request_time: at(when),
        response_time: at(when),
    };
    freshen(&exchange, stored, not_modified, &PolicyConfig::default())
}

// RFC 9111 §4.3.1: the stored ETag (weak or strong: If-None-Match compares
// weakly) and Last-Modified as written.
#[test]
fn conditional_fields_from_the_stored_response() {
    let lm = date(0);
    let stored = resp(200, &[("ETag", "W/\"v1\""), ("Last-Modified", &lm)]);
    let c = conditional_request(&stored);
    assert_eq!(c.if_none_match.as_deref(), Some("W/\"v1\""));
    assert_eq!(c.if_modified_since.as_deref(), Some(lm.as_str()));
    let mut sent = Headers::new();
    sent.push("If-None-Match", "\"viewer\"");
    c.apply(&mut sent);
    assert_eq!(sent.get_all("if-none-match").count(), 1);
    assert_eq!(sent.get_str("if-none-match"), Some("W/\"v1\""));
    // Malformed validators are not sent; none at all is a plain fetch.
    let odd = resp(200, &[("ETag", "v1"), ("Last-Modified", "last week")]);
    assert!(conditional_request(&odd).is_empty());
    assert!(conditional_request(&resp(200, &[])).is_empty());
}

// RFC 9110 §8.8.3: entity-tag syntax and the two comparisons.
#[test]
fn entity_tags() {
    let strong = EntityTag::parse("\"a\"").expect("strong");
    let weak = EntityTag::parse(" W/\"a\" ").expect("weak");
    assert!(!strong.weak && weak.weak);
    assert!(strong.strong_eq(&strong) && !strong.strong_eq(&weak));
    assert!(strong.weak_eq(&weak));
    for bad in ["a", "\"a", "w/\"a\"", "\"a\"b\"", "\"a b\""] {
        assert_eq!(EntityTag::parse(bad), None, "{bad}");
    }
}

// RFC 9110 §13.1.5: If-Range takes a strong ETag, never a weak one, and a
// date only without an ETag and only when strong (§8.8.2.2).
#[test]
fn if_range_validators() {
    assert_eq!(
        if_range_validator(&resp(200, &[("ETag", "\"a\"")])).as_deref(),
        Some("\"a\"")
    );
    let weak = resp(
        200,
        &[
            ("ETag", "W/\"a\""),
            ("Last-Modified", &date(0)),
            ("Date", &date(9)),
        ],
    );
    assert_eq!(if_range_validator(&weak), None);
    let dated = resp(200, &[("Last-Modified", &date(0)), ("Date", &date(1))]);
    assert_eq!(if_range_validator(&dated), Some(date(0)));
    let same_second = resp(200, &[("Last-Modified", &date(0)), ("Date", &date(0))]);
    assert_eq!(if_range_validator(&same_second), None);
}

// RFC 9111 §4.3.3: a 304 freshens our stored response, is relayed when it
// answers the viewer's own conditional, and is unusable otherwise.
#[test]
fn what_a_304_is_for() {
    let stored = resp(200, &[]);
    let mut conditional = Headers::new();
    conditional.push("If-None-Match", "\"a\"");
    assert_eq!(
        not_modified_use(&conditional, Some(&stored)),
        NotModifiedUse::Freshen
    );
    assert_eq!(not_modified_use(&conditional, None), NotModifiedUse::Relay);
    assert_eq!(
        not_modified_use(&Headers::new(), Some(&stored)),
        NotModifiedUse::Unsolicited
    );
    assert_eq!(
        not_modified_use(&Headers::new(), None),
        NotModifiedUse::Unsolicited
    );
    assert_eq!(NotModifiedUse::Unsolicited.token(), "unsolicited-304");
}

// RFC 9111 §4.3.4: the 304's validators must select the stored response.
#[test]
fn validator_selection() {
    let strong = resp(200, &[("ETag", "\"v1\"")]);
    let weak = resp(200, &[("ETag", "W/\"v1\"")]);
    let none = resp(200, &[]);
    let lm = resp(200, &[("Last-Modified", &date(0))]);
    let nm = |fields: &[(&str, &str)]| resp(304, fields);
    let ok = |s: &ResponseHead, n: &ResponseHead| freshen_at(s, n, 10).is_ok();
    // A strong validator must match strongly.
    assert!(ok(&strong, &nm(&[("ETag", "\"v1\"")])));
    assert!(!ok(&strong, &nm(&[("ETag", "\"v2\"")])));
    assert!(!ok(&weak, &nm(&[("ETag", "\"v1\"")])));
    assert!(!ok(&none, &nm(&[("ETag", "\"v1\"")])));
    // A weak one matches weakly.
    assert!(ok(&strong, &nm(&[("ETag", "W/\"v1\"")])));
    assert!(ok(&weak, &nm(&[("ETag", "W/\"v1\"")])));
    // Last-Modified when there is no ETag.
    assert!(ok(&lm, &nm(&[("Last-Modified", &date(0))])));
    assert!(!ok(&lm, &nm(&[("Last-Modified", &date(5))])));
    // No validator in the 304: it answers the request sent for the stored
    // response (RFC 9111 §4.3.3), whatever validators that one has.
    assert!(ok(&none, &nm(&[])));
    assert!(ok(&strong, &nm(&[])));
    assert!(ok(&lm, &nm(&[])));
    assert_eq!(
        freshen_at(&strong, &resp(200, &[]), 10).err(),
        Some(NotApplicable::NotA304)
    );
    assert_eq!(
        NotApplicable::ValidatorMismatch.token(),
        "validator-mismatch"
    );
}

// RFC 9111 §3.2: the 304's fields replace the stored ones, except
// Content-Length, fields the stored body depends on, per-message and
// hop-by-hop fields; the stored status stays.
#[test]
fn stored_fields_are_updated() {
    let stored = resp(
        200,
        &[
            ("Date", &date(0)),
            ("ETag", "\"v1\""),
            ("Cache-Control", "max-age=10"),
            ("Content-Type", "text/plain"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", "42"),
            ("X-Multi", "a"),
            ("X-Multi", "b"),
            ("X-Kept", "1"),
        ],
    );
    let not_modified = resp(
        304,
        &[
            ("Date", &date(100)),
            ("ETag", "\"v1\""),
            ("Cache-Control", "max-age=60"),
            ("Content-Encoding", "br"),
            ("Content-Length", "0"),
            ("Content-Range", "bytes 0-1/2"),
            ("Age", "5"),
            ("Connection", "X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("X-Multi", "c"),
            ("X-New", "n"),
        ],
    );
    let f = freshen_at(&stored, &not_modified, 100).expect("applies");
    let h = &f.head.headers;
    assert_eq!(f.head.status, 200);
    assert_eq!(h.get_str("cache-control"), Some("max-age=60"));
    assert_eq!(h.get_str("date"), Some(date(100).as_str()));
    assert_eq!(h.get_str("content-encoding"), Some("gzip"));
    assert_eq!(h.get_str("content-length"), Some("42"));
    assert_eq!(h.get_all("x-multi").collect::<Vec<_>>(), [b"c"]);
    assert_eq!(h.get_str("x-new"), Some("n"));
    assert_eq!(h.get_str("x-kept"), Some("1"));
    for gone in ["content-range", "age", "x-hop", "keep-alive", "connection"] {
        assert!(!h.contains(gone), "{gone}");
    }
    // §4.3.4 + §4.2.3: the new lifetime, aged by the 304's Age.
    let s = f.storage.expect("still storable");
    assert_eq!(s.lifetime.source, LifetimeSource::MaxAge);
    assert_eq!((s.freshness.born, s.freshness.expires), (at(95), at(155)));
}

// A 304 without Date is dated by its arrival, so the old Date does not
// age the freshened response (RFC 9111 §4.2: age counts from validation).
#[test]
fn undated_304_resets_the_age() {
    let stored = resp(
        200,
        &[
            ("Date", &date(0)),
            ("ETag", "\"v1\""),
            ("Cache-Control", "max-age=10"),
        ],
    );
    let f = freshen_at(&stored, &resp(304, &[("ETag", "\"v1\"")]), 500).expect("applies");
    assert_eq!(f.head.headers.get_str("date"), Some(date(500).as_str()));
    let s = f.storage.expect("fresh again");
    assert_eq!((s.freshness.born, s.freshness.expires), (at(500), at(510)));
}

// RFC 9111 §4.3.4 with §3: the updated response is assessed again — a 304
// can make it unstorable, or change how it may be reused.
#[test]
fn updated_directives_are_assessed_again() {
    let stored = resp(200, &[("ETag", "\"v1\""), ("Cache-Control", "max-age=10")]);
    let f = freshen_at(
        &stored,
        &resp(304, &[("ETag", "\"v1\""), ("Cache-Control", "no-store")]),
        5,
    )
    .expect("applies");
    assert_eq!(f.storage.err(), Some(NotStored::NoStore));
    let f = freshen_at(
        &stored,
        &resp(304, &[("ETag", "\"v1\""), ("Cache-Control", "no-cache")]),
        5,
    )
    .expect("applies");
    assert_eq!(f.storage.map(|s| s.reuse), Ok(ReuseLimit::EveryUse));
}
