//! Unit tests of lifetimes and ages: RFC 9111 §4.2.1, §4.2.2, §4.2.3 and
//! §5.1, each test citing its section.
use super::*;
use crate::cache::policy::fixtures::{at, date};

fn headers(fields: &[(&str, &str)]) -> Headers {
    Headers::from_fields(fields)
}

fn explicit(fields: &[(&str, &str)]) -> Option<Lifetime> {
    let h = headers(fields);
    explicit_lifetime(&Controls::of(&h), &h, date_value(&h, at(0)))
}

fn secs(s: u64, source: LifetimeSource) -> Option<Lifetime> {
    Some(Lifetime::new(Duration::from_secs(s), source))
}

// RFC 9111 §4.2.1: s-maxage, then max-age, then Expires - Date.
#[test]
fn explicit_lifetime_first_match() {
    use LifetimeSource::*;
    let cc = |v| ("Cache-Control", v);
    assert_eq!(explicit(&[cc("max-age=60, s-maxage=5")]), secs(5, SMaxAge));
    assert_eq!(
        explicit(&[cc("max-age=60"), ("Expires", &date(9))]),
        secs(60, MaxAge)
    );
    assert_eq!(
        explicit(&[("Date", &date(0)), ("Expires", &date(100))]),
        secs(100, Expires)
    );
    // Expires in the past of Date: already stale.
    assert_eq!(
        explicit(&[("Date", &date(100)), ("Expires", &date(0))]),
        secs(0, Expires)
    );
    assert_eq!(explicit(&[cc("public")]), None);
}

// RFC 9111 §5.3: an invalid Expires (e.g. "0") is in the past; §4.2.1:
// disagreeing duplicates and invalid max-age make the response stale.
#[test]
fn invalid_explicit_freshness_is_stale() {
    let stale = secs(0, LifetimeSource::Invalid);
    assert_eq!(explicit(&[("Expires", "0")]), stale);
    assert_eq!(
        explicit(&[("Expires", &date(5)), ("Expires", &date(6))]),
        stale
    );
    assert_eq!(
        explicit(&[("Expires", &date(5)), ("Expires", &date(5))]),
        secs(5, LifetimeSource::Expires)
    );
    assert_eq!(explicit(&[("Cache-Control", "max-age=x")]), stale);
    assert_eq!(
        explicit(&[("Cache-Control", "max-age=1, max-age=2")]),
        stale
    );
}

// RFC 9213 §2.2: with a targeted field, Expires is ignored.
#[test]
fn targeted_field_ignores_expires() {
    let h = [("CDN-Cache-Control", "public"), ("Expires", &date(50)[..])];
    assert_eq!(explicit(&h), None);
    let h = [
        ("CDN-Cache-Control", "max-age=7"),
        ("Cache-Control", "max-age=1"),
    ];
    assert_eq!(explicit(&h), secs(7, LifetimeSource::MaxAge));
}

fn heuristic(status: u16, fields: &[(&str, &str)], cfg: &PolicyConfig) -> Option<Lifetime> {
    let h = headers(fields);
    heuristic_lifetime(status, &h, date_value(&h, at(1000)), cfg)
}

// RFC 9111 §4.2.2: 10% of the time since Last-Modified, capped; then
// the configured default.
#[test]
fn heuristic_freshness() {
    let cfg = PolicyConfig::default();
    let lm = [("Date", &date(1000)[..]), ("Last-Modified", &date(0)[..])];
    assert_eq!(
        heuristic(200, &lm, &cfg),
        secs(100, LifetimeSource::LastModified)
    );
    let capped = PolicyConfig {
        max_heuristic_ttl: Duration::from_secs(30),
        ..PolicyConfig::default()
    };
    assert_eq!(
        heuristic(200, &lm, &capped),
        secs(30, LifetimeSource::LastModified)
    );
    assert_eq!(heuristic(200, &[], &cfg), None);
    // A Last-Modified after Date is not used.
    let future = [("Date", &date(0)[..]), ("Last-Modified", &date(9))];
    let with_default = PolicyConfig {
        default_ttl: Duration::from_secs(7),
        ..PolicyConfig::default()
    };
    assert_eq!(
        heuristic(200, &future, &with_default),
        secs(7, LifetimeSource::DefaultTtl)
    );
}

// Negative caching: cache.error_ttl is the heuristic for 4xx/5xx and
// comes before Last-Modified and default_ttl.
#[test]
fn error_ttl_for_error_statuses() {
    let cfg = PolicyConfig {
        error_ttl: Duration::from_secs(10),
        default_ttl: Duration::from_secs(99),
        ..PolicyConfig::default()
    };
    assert_eq!(
        heuristic(404, &[], &cfg),
        secs(10, LifetimeSource::ErrorTtl)
    );
    assert_eq!(
        heuristic(501, &[], &cfg),
        secs(10, LifetimeSource::ErrorTtl)
    );
    assert_eq!(
        heuristic(301, &[], &cfg),
        secs(99, LifetimeSource::DefaultTtl)
    );
}

// RFC 9111 §5.1: the first member of a list; an invalid value is
// ignored; §1.2.2: capped at 2^31.
#[test]
fn lenient_age() {
    let age = |v: &str| age_value(&headers(&[("Age", v)])).as_secs();
    assert_eq!(age("30"), 30);
    assert_eq!(age(" 30 , 50"), 30);
    assert_eq!(age("-5"), 0);
    assert_eq!(age("1.5"), 0);
    assert_eq!(age(""), 0);
    assert_eq!(age("99999999999999999999"), MAX_DELTA_SECONDS);
    assert_eq!(age_value(&Headers::new()), Duration::ZERO);
}

// RFC 9111 §4.2.3: corrected_initial_age = max(apparent_age,
// age_value + response_delay).
#[test]
fn corrected_initial_age_takes_the_larger_estimate() {
    // The Date is 20 s old on arrival: apparent age wins.
    let h = headers(&[("Date", &date(0)), ("Age", "5")]);
    assert_eq!(corrected_initial_age(&h, at(18), at(20)).as_secs(), 20);
    // Age plus the round trip beats a fresh Date.
    let h = headers(&[("Date", &date(20)), ("Age", "30")]);
    assert_eq!(corrected_initial_age(&h, at(18), at(20)).as_secs(), 32);
    // A Date in the future counts as zero apparent age; no Date: the
    // response time.
    let h = headers(&[("Date", &date(90))]);
    assert_eq!(corrected_initial_age(&h, at(20), at(20)), Duration::ZERO);
    assert_eq!(date_value(&Headers::new(), at(3)), at(3));
}

#[test]
fn freshness_instants() {
    let f = freshness(at(100), Duration::from_secs(30), Duration::from_secs(60));
    assert_eq!((f.born, f.expires), (at(70), at(130)));
    assert_eq!((f.age(at(100)), f.ttl(at(100))), (30, 30));
    assert_eq!(f.ttl(at(140)), -10);
    assert_eq!(f.staleness(at(140)).as_secs(), 10);
    assert_eq!(f.remaining(at(140)), Duration::ZERO);
    assert!(f.is_fresh(at(129)) && !f.is_fresh(at(130)));
    assert_eq!(f.current_age(at(0)), Duration::ZERO);
}
