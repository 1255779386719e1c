//! Unit tests of `reuse`, `Revalidate::on_origin_outcome` and `on_miss`:
//! one rule per test, each citing the section of RFC 9111, RFC 5861 or
//! RFC 8246 it covers.

use super::*;
use crate::cache::policy::fixtures::at;

fn head(cache_control: &str) -> ResponseHead {
    let mut r = ResponseHead::new(200);
    r.headers.push("Cache-Control", cache_control);
    r
}

fn request(cache_control: &str) -> Headers {
    let mut h = Headers::new();
    if !cache_control.is_empty() {
        h.push("Cache-Control", cache_control);
    }
    h
}

/// Stored at 0, fresh until 100.
fn fresh_until_100() -> Freshness {
    Freshness {
        born: at(0),
        expires: at(100),
    }
}

fn decide_with(req: &str, stored: &ResponseHead, now: u64, cfg: &PolicyConfig) -> Reuse {
    let stored = Stored {
        head: stored,
        freshness: fresh_until_100(),
    };
    reuse(&request(req), &stored, at(now), cfg)
}

fn decide(req: &str, stored: &ResponseHead, now: u64) -> Reuse {
    decide_with(req, stored, now, &PolicyConfig::default())
}

fn served(r: &Reuse) -> Option<ServeKind> {
    match r {
        Reuse::Serve(s) => Some(s.kind),
        _ => None,
    }
}

fn revalidated(r: &Reuse) -> Option<RevalidateReason> {
    match r {
        Reuse::Revalidate(v) => Some(v.reason),
        _ => None,
    }
}

fn revalidation(r: Reuse) -> Revalidate {
    match r {
        Reuse::Revalidate(v) => v,
        other => panic!("expected a revalidation, got {other:?}"),
    }
}

fn not_honouring() -> PolicyConfig {
    PolicyConfig {
        honor_viewer_no_cache: false,
        ..PolicyConfig::default()
    }
}

// RFC 9111 §4.2 and §4: a fresh response is served with its current age
// (and the RFC 9211 ttl).
#[test]
fn fresh_is_served_with_age() {
    let r = decide("", &head("max-age=100"), 30);
    let Reuse::Serve(serve) = r else {
        panic!("fresh")
    };
    assert_eq!(
        (serve.kind, serve.age, serve.ttl),
        (ServeKind::Fresh, 30, 70)
    );
    assert!(!serve.revalidate_in_background());
    let mut h = Headers::new();
    h.push("Age", "5");
    serve.apply(&mut h);
    assert_eq!(h.get_str("age"), Some("30"));
}

// RFC 9111 §4.2.4: stale, with nothing allowing it, goes forward
// (`fwd=stale`).
#[test]
fn stale_revalidates() {
    let r = decide("", &head("max-age=100"), 100);
    let v = revalidation(r);
    assert_eq!(v.reason, RevalidateReason::Stale);
    assert_eq!(v.reason.forward_reason(), ForwardReason::Stale);
    assert_eq!(v.ttl, 0);
    assert_eq!(v.if_error, IfError::Fail);
}

// RFC 9111 §5.2.2.4: unqualified no-cache always revalidates, even fresh,
// and never answers from the cache when the origin fails.
#[test]
fn response_no_cache_always_revalidates() {
    let v = revalidation(decide("", &head("no-cache, max-age=100"), 1));
    assert_eq!(v.reason, RevalidateReason::NoCache);
    assert_eq!(v.reason.forward_reason(), ForwardReason::Stale);
    assert_eq!(v.if_error, IfError::Fail);
    assert_eq!(v.on_origin_outcome(OriginOutcome::Unreachable, at(2)), None);
}

// RFC 9111 §5.2.2.4: qualified no-cache serves without the named fields.
#[test]
fn qualified_no_cache_strips_fields() {
    let mut stored = head("no-cache=\"X-Token\", max-age=100");
    stored.headers.push("X-Token", "secret");
    let Reuse::Serve(serve) = decide("", &stored, 1) else {
        panic!("served")
    };
    let mut out = stored.headers.clone();
    serve.apply(&mut out);
    assert!(!out.contains("x-token") && out.contains("cache-control"));
}

// RFC 9111 §5.2.1.4, §5.2.1.1, §5.2.1.3: the viewer's no-cache, max-age
// and min-fresh send the request forward (`fwd=request`) — unless
// cache.honor_viewer_no_cache is off.
#[test]
fn viewer_directives_and_the_switch() {
    let stored = head("max-age=100");
    for (req, reason) in [
        ("no-cache", RevalidateReason::RequestNoCache),
        ("max-age=0", RevalidateReason::RequestMaxAge),
        ("max-age=9", RevalidateReason::RequestMaxAge),
        ("min-fresh=95", RevalidateReason::RequestMinFresh),
    ] {
        let r = decide(req, &stored, 10);
        assert_eq!(revalidated(&r), Some(reason), "{req}");
        assert_eq!(reason.forward_reason(), ForwardReason::Request);
        assert_eq!(
            served(&decide_with(req, &stored, 10, &not_honouring())),
            Some(ServeKind::Fresh)
        );
    }
    assert_eq!(
        served(&decide("max-age=10", &stored, 10)),
        Some(ServeKind::Fresh)
    );
    assert_eq!(
        served(&decide("min-fresh=90", &stored, 10)),
        Some(ServeKind::Fresh)
    );
}

// RFC 8246 §2: an immutable response needs no revalidation while fresh,
// even when the viewer asks; once stale it is revalidated like any other.
#[test]
fn immutable() {
    let stored = head("max-age=100, immutable");
    assert_eq!(
        served(&decide("no-cache", &stored, 10)),
        Some(ServeKind::Fresh)
    );
    assert_eq!(
        served(&decide("max-age=0", &stored, 10)),
        Some(ServeKind::Fresh)
    );
    assert_eq!(
        revalidated(&decide("no-cache", &stored, 100)),
        Some(RevalidateReason::Stale)
    );
}

// RFC 5861 §3: inside the stale-while-revalidate window, serve stale and
// revalidate in the background; beyond it, revalidate first.
#[test]
fn stale_while_revalidate() {
    let stored = head("max-age=100, stale-while-revalidate=30");
    let Reuse::Serve(serve) = decide("", &stored, 110) else {
        panic!("inside the window")
    };
    assert_eq!(
        (serve.kind, serve.ttl, serve.age),
        (ServeKind::StaleWhileRevalidate, -10, 110)
    );
    assert!(serve.revalidate_in_background());
    assert_eq!(
        revalidated(&decide("", &stored, 130)),
        Some(RevalidateReason::Stale)
    );
    // The viewer who asks for validation is not given stale content; the
    // reason is still `stale` (RFC 9211 §2.2 keeps `request` for fresh
    // responses).
    assert_eq!(
        revalidated(&decide("no-cache", &stored, 110)),
        Some(RevalidateReason::Stale)
    );
    assert_eq!(
        served(&decide_with("no-cache", &stored, 110, &not_honouring())),
        Some(ServeKind::StaleWhileRevalidate)
    );
}

// RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.8: must-revalidate and
// proxy-revalidate close every stale window. §5.2.2.10: s-maxage implies
// proxy-revalidate, but an explicit window sent with it is the origin's own
// permission.
#[test]
fn directives_that_forbid_stale() {
    for cc in [
        "max-age=100, stale-while-revalidate=30, must-revalidate",
        "max-age=100, stale-while-revalidate=30, proxy-revalidate",
    ] {
        assert_eq!(
            revalidated(&decide("", &head(cc), 110)),
            Some(RevalidateReason::Stale),
            "{cc}"
        );
        assert_eq!(
            revalidated(&decide("max-stale", &head(cc), 110)),
            Some(RevalidateReason::Stale)
        );
    }
    let s = head("s-maxage=100, stale-while-revalidate=30");
    assert_eq!(
        served(&decide("", &s, 110)),
        Some(ServeKind::StaleWhileRevalidate)
    );
    assert_eq!(
        revalidated(&decide("max-stale", &head("s-maxage=100"), 110)),
        Some(RevalidateReason::Stale)
    );
}

// RFC 9111 §5.2.1.2: max-stale with a value accepts that much staleness;
// without one, any.
#[test]
fn max_stale() {
    let stored = head("max-age=100");
    assert_eq!(
        served(&decide("max-stale", &stored, 5000)),
        Some(ServeKind::MaxStale)
    );
    assert_eq!(
        served(&decide("max-stale=10", &stored, 110)),
        Some(ServeKind::MaxStale)
    );
    assert_eq!(
        revalidated(&decide("max-stale=10", &stored, 111)),
        Some(RevalidateReason::Stale)
    );
    // max-age still limits the age the viewer accepts (§5.2.1.1).
    assert_eq!(
        revalidated(&decide("max-stale, max-age=50", &stored, 110)),
        Some(RevalidateReason::Stale)
    );
    assert_eq!(
        served(&decide("max-stale, max-age=200", &stored, 110)),
        Some(ServeKind::MaxStale)
    );
}

// RFC 5861 §4: inside the stale-if-error window a 500/502/503/504 or no
// answer lets the stored response answer; other statuses do not.
#[test]
fn stale_if_error_from_the_response() {
    let v = revalidation(decide("", &head("max-age=100, stale-if-error=60"), 120));
    assert_eq!(v.if_error, IfError::ServeStored { until: at(160) });
    let serve = v
        .on_origin_outcome(OriginOutcome::Status(503), at(120))
        .expect("stale");
    assert_eq!((serve.kind, serve.ttl), (ServeKind::StaleIfError, -20));
    assert!(
        v.on_origin_outcome(OriginOutcome::Unreachable, at(159))
            .is_some()
    );
    assert_eq!(
        v.on_origin_outcome(OriginOutcome::Unreachable, at(160)),
        None
    );
    assert_eq!(
        v.on_origin_outcome(OriginOutcome::Status(404), at(120)),
        None
    );
    assert_eq!(
        v.on_origin_outcome(OriginOutcome::Status(501), at(120)),
        None
    );
    // Beyond the window at decision time: fail.
    let v = revalidation(decide("", &head("max-age=100, stale-if-error=60"), 170));
    assert_eq!(v.if_error, IfError::Fail);
}

// cache.stale_if_error is the window when the origin sent none; explicit
// values (even 0) win; s-maxage and must-revalidate close it (RFC 9111
// §5.2.2.10, §5.2.2.2: "MUST generate an error response").
#[test]
fn configured_stale_if_error() {
    let cfg = PolicyConfig {
        stale_if_error: Duration::from_secs(300),
        ..PolicyConfig::default()
    };
    let until = |cc: &str| revalidation(decide_with("", &head(cc), 120, &cfg)).if_error;
    assert_eq!(
        until("max-age=100"),
        IfError::ServeStored { until: at(400) }
    );
    assert_eq!(until("max-age=100, stale-if-error=0"), IfError::Fail);
    assert_eq!(until("s-maxage=100"), IfError::Fail);
    assert_eq!(
        until("s-maxage=100, stale-if-error=60"),
        IfError::ServeStored { until: at(160) }
    );
    assert_eq!(until("max-age=100, must-revalidate"), IfError::Fail);
    assert_eq!(
        until("max-age=100, must-revalidate, stale-if-error=60"),
        IfError::Fail
    );
}

// RFC 5861 §4: stale-if-error in a request applies to that request.
#[test]
fn stale_if_error_from_the_request() {
    let v = revalidation(decide("stale-if-error=50", &head("max-age=100"), 120));
    assert_eq!(v.if_error, IfError::ServeStored { until: at(150) });
    let v = revalidation(decide(
        "stale-if-error=50",
        &head("max-age=100, must-revalidate"),
        120,
    ));
    assert_eq!(v.if_error, IfError::Fail);
}

// RFC 9111 §4.3.3: a fresh response the viewer asked to revalidate may
// still answer if the origin fails (it is not stale).
#[test]
fn fresh_copy_answers_a_failed_revalidation() {
    let v = revalidation(decide(
        "no-cache",
        &head("max-age=100, must-revalidate"),
        10,
    ));
    assert_eq!(v.if_error, IfError::ServeStored { until: at(100) });
    let serve = v
        .on_origin_outcome(OriginOutcome::Status(502), at(11))
        .expect("fresh copy");
    assert_eq!(serve.ttl, 89);
}

// RFC 9111 §5.2.1.7: only-if-cached gets a stored response or a 504.
#[test]
fn only_if_cached() {
    let stored = head("max-age=100, stale-while-revalidate=10");
    assert_eq!(
        served(&decide("only-if-cached", &stored, 10)),
        Some(ServeKind::Fresh)
    );
    assert_eq!(
        served(&decide("only-if-cached", &stored, 105)),
        Some(ServeKind::StaleWhileRevalidate)
    );
    assert_eq!(
        decide("only-if-cached", &stored, 200),
        Reuse::GatewayTimeout
    );
    assert_eq!(
        decide("only-if-cached, no-cache", &stored, 10),
        Reuse::GatewayTimeout
    );
    assert_eq!(on_miss(&request("only-if-cached")), OnMiss::GatewayTimeout);
    assert_eq!(on_miss(&request("max-age=0")), OnMiss::Forward);
}

// RFC 9213 §2.2: at reuse too, the targeted field governs.
#[test]
fn targeted_field_governs_reuse() {
    let mut stored = head("max-age=100, must-revalidate");
    stored.headers.push(
        "CDN-Cache-Control",
        "max-age=100, stale-while-revalidate=60",
    );
    assert_eq!(
        served(&decide("", &stored, 110)),
        Some(ServeKind::StaleWhileRevalidate)
    );
}

#[test]
fn tokens() {
    assert_eq!(
        ServeKind::StaleWhileRevalidate.token(),
        "stale-while-revalidate"
    );
    assert_eq!(ServeKind::StaleIfError.token(), "stale-if-error");
    assert_eq!(ServeKind::MaxStale.token(), "max-stale");
    assert_eq!(ServeKind::Fresh.token(), "fresh");
    assert_eq!(
        RevalidateReason::RequestMinFresh.token(),
        "request-min-fresh"
    );
    assert_eq!(ForwardReason::Request.token(), "request");
    assert_eq!(ForwardReason::Stale.token(), "stale");
}
