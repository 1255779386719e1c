//! Cache policy: may this response be stored, and for how long is it fresh?
//! Pure functions of request, response and clock (RFC 9111 sections 3 and 4.2),
//! with no I/O, so every rule is a fast unit test. Later issues add validation
//! (304), stale-while-revalidate/stale-if-error and Vary variants here.

use crate::http::{BodyFraming, Headers, Method, ResponseHead};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug)]
pub struct PolicyConfig {
    /// Lifetime for cacheable responses without explicit freshness and without
    /// Last-Modified; zero means such responses are not stored.
    pub default_ttl: Duration,
    pub max_heuristic_ttl: Duration,
    pub cache_set_cookie: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            default_ttl: Duration::ZERO,
            max_heuristic_ttl: Duration::from_secs(86_400),
            cache_set_cookie: false,
        }
    }
}

/// Why a response was not stored; its token is the `Cache-Status` detail
/// and the access log's `detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStored {
    Method,
    Status,
    NoStore,
    Private,
    NoCache,
    SetCookie,
    Authorization,
    Vary,
    NoFreshness,
    Stale,
    PartialContent,
    /// A transfer coding other than chunked (e.g. `gzip, chunked`): the
    /// body's end can be found but the representation cannot be decoded.
    TransferCoding,
    /// Declared larger than the store keeps.
    TooLarge,
}

impl NotStored {
    pub fn token(self) -> &'static str {
        match self {
            NotStored::Method => "method",
            NotStored::Status => "status",
            NotStored::NoStore => "no-store",
            NotStored::Private => "private",
            NotStored::NoCache => "no-cache",
            NotStored::SetCookie => "set-cookie",
            NotStored::Authorization => "authorization",
            NotStored::Vary => "vary",
            NotStored::NoFreshness => "no-freshness",
            NotStored::Stale => "stale",
            NotStored::PartialContent => "partial-content",
            NotStored::TransferCoding => "transfer-coding",
            NotStored::TooLarge => "too-large",
        }
    }
}

/// The two instants that describe a stored response's age and freshness:
/// `born` is when its age was zero (response time minus corrected initial age),
/// `expires` is `born` plus the freshness lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    pub born: SystemTime,
    pub expires: SystemTime,
}

impl Freshness {
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        now < self.expires
    }

    /// The Age header value at `now` (RFC 9111 4.2.3), in whole seconds.
    pub fn age(&self, now: SystemTime) -> u64 {
        now.duration_since(self.born).map_or(0, |d| d.as_secs())
    }

    /// Remaining lifetime in whole seconds (negative once stale).
    pub fn ttl(&self, now: SystemTime) -> i64 {
        match self.expires.duration_since(now) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    }
}

pub fn to_unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn from_unix_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Parsed Cache-Control directives we act on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
}

impl CacheControl {
    pub fn parse(headers: &Headers) -> CacheControl {
        let mut cc = CacheControl::default();
        for value in headers.get_all("cache-control") {
            let Ok(value) = std::str::from_utf8(value) else {
                continue;
            };
            for directive in split_directives(value) {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                let secs = || arg.and_then(parse_delta_seconds);
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => cc.no_store = true,
                    // Qualified no-cache="field" only forbids reusing those fields
                    // without revalidation; we treat any form conservatively.
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
                    // A malformed max-age makes the response stale (RFC 9111 4.2.1).
                    "max-age" => cc.max_age = Some(secs().unwrap_or(0)),
                    "s-maxage" => cc.s_maxage = Some(secs().unwrap_or(0)),
                    _ => {}
                }
            }
        }
        cc
    }
}

/// Splits on commas outside quoted strings.
fn split_directives(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&v[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect()
}

/// delta-seconds; values past 2^31 are capped as RFC 9111 1.2.2 allows.
fn parse_delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX).min(1 << 31))
}

fn http_date(headers: &Headers, name: &str) -> Option<SystemTime> {
    headers
        .get_str(name)
        .and_then(|v| httpdate::parse_http_date(v).ok())
}

/// Status codes that may be cached with heuristic freshness (RFC 9110 15.1).
fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Decides whether a response to a GET/HEAD may be stored in this shared cache
/// and computes its freshness. `request_time` is when the request went
/// upstream, `response_time` when the response head arrived.
pub fn decide(
    method: &Method,
    request_headers: &Headers,
    response: &ResponseHead,
    request_time: SystemTime,
    response_time: SystemTime,
    cfg: &PolicyConfig,
) -> Result<Freshness, NotStored> {
    if !method.is_cacheable_method() {
        return Err(NotStored::Method);
    }
    if response.status == 206 {
        return Err(NotStored::PartialContent);
    }
    if response.status < 200 || !(200..600).contains(&response.status) {
        return Err(NotStored::Status);
    }
    let req_cc = CacheControl::parse(request_headers);
    let cc = CacheControl::parse(&response.headers);
    if cc.no_store || req_cc.no_store {
        return Err(NotStored::NoStore);
    }
    if cc.private {
        return Err(NotStored::Private);
    }
    if cc.no_cache {
        return Err(NotStored::NoCache);
    }
    if request_headers.contains("authorization")
        && !(cc.public || cc.must_revalidate || cc.s_maxage.is_some())
    {
        return Err(NotStored::Authorization);
    }
    if response.headers.contains("set-cookie") && !cfg.cache_set_cookie {
        return Err(NotStored::SetCookie);
    }
    if response
        .headers
        .get_all("vary")
        .any(|v| !v.iter().all(|b| b.is_ascii_whitespace()))
    {
        return Err(NotStored::Vary);
    }

    let date = http_date(&response.headers, "date").unwrap_or(response_time);
    let lifetime = if let Some(s) = cc.s_maxage.or(cc.max_age) {
        Duration::from_secs(s)
    } else if let Some(expires) = response.headers.get_str("expires") {
        // An invalid Expires (e.g. "0") means "already expired".
        match httpdate::parse_http_date(expires) {
            Ok(e) => e.duration_since(date).unwrap_or(Duration::ZERO),
            Err(_) => Duration::ZERO,
        }
    } else if !heuristically_cacheable(response.status) && !cc.public {
        return Err(NotStored::Status);
    } else if let Some(lm) = http_date(&response.headers, "last-modified") {
        let since = date.duration_since(lm).unwrap_or(Duration::ZERO);
        (since / 10).min(cfg.max_heuristic_ttl)
    } else if !cfg.default_ttl.is_zero() {
        cfg.default_ttl
    } else {
        return Err(NotStored::NoFreshness);
    };

    let age_value = response
        .headers
        .get_str("age")
        .and_then(parse_delta_seconds)
        .map_or(Duration::ZERO, Duration::from_secs);
    let apparent_age = response_time.duration_since(date).unwrap_or(Duration::ZERO);
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    let corrected_initial_age = apparent_age.max(age_value + response_delay);
    let born = response_time
        .checked_sub(corrected_initial_age)
        .unwrap_or(UNIX_EPOCH);
    let fresh = Freshness {
        born,
        expires: born + lifetime,
    };
    if !fresh.is_fresh(response_time) {
        return Err(NotStored::Stale);
    }
    Ok(fresh)
}

/// Whether the body of a response that `decide` would store can be stored:
/// it carries no transfer coding we cannot undo, and its declared length
/// fits `max_object` (an undeclared length is checked while it arrives).
pub fn storable_body(response: &ResponseHead, max_object: u64) -> Result<(), NotStored> {
    if response.has_non_chunked_transfer_coding() {
        return Err(NotStored::TransferCoding);
    }
    match response.framing {
        BodyFraming::ContentLength(n) if n > max_object => Err(NotStored::TooLarge),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
        let mut r = ResponseHead::new(status);
        for (n, v) in headers {
            r.headers.push(n, v.as_bytes().to_vec());
        }
        r
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

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
                resp(
                    200,
                    &[("Cache-Control", "max-age=9"), ("Vary", "Accept-Encoding")],
                ),
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

    #[test]
    fn directive_parsing() {
        let mut h = Headers::new();
        h.push("Cache-Control", "public, max-age=\"30\", ext=\"a,b\"");
        h.push("cache-control", "S-MAXAGE=4");
        let cc = CacheControl::parse(&h);
        assert!(cc.public);
        assert_eq!(cc.max_age, Some(30));
        assert_eq!(cc.s_maxage, Some(4));
        let mut h = Headers::new();
        h.push("Cache-Control", "max-age=abc");
        assert_eq!(CacheControl::parse(&h).max_age, Some(0));
    }
}
