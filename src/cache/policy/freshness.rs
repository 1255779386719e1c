//! Freshness and age (RFC 9111 §4.2): the freshness lifetime (§4.2.1), the
//! heuristic and configured lifetimes (§4.2.2), the Age field (§5.1) and
//! the corrected initial age (§4.2.3), folded into the two instants a
//! stored response keeps: when its age was zero, and when it goes stale.
//! The clock is always an argument; nothing here reads it.

use super::PolicyConfig;
use super::directives::{DeltaSeconds, MAX_DELTA_SECONDS, ResponseDirectives};
use super::targeted::Controls;
use crate::http::Headers;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The two instants that describe a stored response's age and freshness:
/// `born` is when its age was zero (response time minus corrected initial
/// age), `expires` is `born` plus the freshness lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    pub born: SystemTime,
    pub expires: SystemTime,
}

impl Freshness {
    /// RFC 9111 §4.2: fresh while `freshness_lifetime > current_age`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        now < self.expires
    }

    /// current_age (RFC 9111 §4.2.3), exact.
    pub fn current_age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.born).unwrap_or(Duration::ZERO)
    }

    /// The Age header value at `now` (RFC 9111 §5.1), in whole seconds.
    pub fn age(&self, now: SystemTime) -> u64 {
        self.current_age(now).as_secs()
    }

    /// Remaining lifetime in whole seconds, negative once stale (RFC 9211
    /// `ttl`).
    pub fn ttl(&self, now: SystemTime) -> i64 {
        match self.expires.duration_since(now) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        }
    }

    /// How long past its expiry the response is (zero while fresh).
    pub fn staleness(&self, now: SystemTime) -> Duration {
        now.duration_since(self.expires).unwrap_or(Duration::ZERO)
    }

    /// How long it stays fresh (zero once stale).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires.duration_since(now).unwrap_or(Duration::ZERO)
    }
}

/// Where a freshness lifetime came from; its token goes to the access log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifetimeSource {
    /// `s-maxage` (RFC 9111 §5.2.2.10).
    SMaxAge,
    /// `max-age` (RFC 9111 §5.2.2.1).
    MaxAge,
    /// `Expires` minus `Date` (RFC 9111 §5.3).
    Expires,
    /// 10% of the time since `Last-Modified` (RFC 9111 §4.2.2).
    LastModified,
    /// `cache.default_ttl`.
    DefaultTtl,
    /// `cache.error_ttl`, for 4xx/5xx without explicit freshness.
    ErrorTtl,
    /// None given and none needed: an unqualified `no-cache` response is
    /// validated on every use (RFC 9111 §5.2.2.4), so it is kept stale.
    AlwaysValidated,
    /// Explicit freshness that could not be read (an invalid or conflicting
    /// `max-age`, an invalid `Expires`): the response is stale (§4.2.1, §5.3).
    Invalid,
}

impl LifetimeSource {
    pub fn token(self) -> &'static str {
        match self {
            LifetimeSource::SMaxAge => "s-maxage",
            LifetimeSource::MaxAge => "max-age",
            LifetimeSource::Expires => "expires",
            LifetimeSource::LastModified => "last-modified",
            LifetimeSource::DefaultTtl => "default-ttl",
            LifetimeSource::ErrorTtl => "error-ttl",
            LifetimeSource::AlwaysValidated => "always-validated",
            LifetimeSource::Invalid => "invalid",
        }
    }

    /// Whether the origin gave the lifetime (RFC 9111 §4.2: "explicit
    /// expiration time") rather than this cache.
    pub fn is_explicit(self) -> bool {
        matches!(
            self,
            LifetimeSource::SMaxAge
                | LifetimeSource::MaxAge
                | LifetimeSource::Expires
                | LifetimeSource::Invalid
        )
    }
}

/// A freshness lifetime and its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    pub duration: Duration,
    pub source: LifetimeSource,
}

impl Lifetime {
    fn new(duration: Duration, source: LifetimeSource) -> Lifetime {
        Lifetime {
            duration: duration.min(Duration::from_secs(MAX_DELTA_SECONDS)),
            source,
        }
    }
}

/// The explicit lifetime, first match of RFC 9111 §4.2.1: s-maxage (this is
/// a shared cache), max-age, then Expires minus Date — Expires only when
/// `Cache-Control` governs (RFC 9213 §2.2). `None`: no explicit freshness.
pub(super) fn explicit_lifetime(
    controls: &Controls,
    headers: &Headers,
    date: SystemTime,
) -> Option<Lifetime> {
    let d = &controls.directives;
    for (directive, source) in [
        (d.s_maxage, LifetimeSource::SMaxAge),
        (d.max_age, LifetimeSource::MaxAge),
    ] {
        match directive {
            Some(DeltaSeconds::Valid(s)) => {
                return Some(Lifetime::new(Duration::from_secs(s), source));
            }
            Some(DeltaSeconds::Invalid) => {
                return Some(Lifetime::new(Duration::ZERO, LifetimeSource::Invalid));
            }
            None => {}
        }
    }
    if !controls.field.honours_expires() {
        return None;
    }
    let mut values = headers.get_all("expires");
    let first = values.next()?;
    // RFC 9111 §4.2.1: two Expires lines that disagree make it stale;
    // §5.3: an invalid date (e.g. "0") means "already expired".
    let expires = match http_date_bytes(first) {
        Some(e) if values.all(|v| http_date_bytes(v) == Some(e)) => e,
        _ => return Some(Lifetime::new(Duration::ZERO, LifetimeSource::Invalid)),
    };
    let lifetime = expires.duration_since(date).unwrap_or(Duration::ZERO);
    Some(Lifetime::new(lifetime, LifetimeSource::Expires))
}

/// A lifetime this cache assigns when the origin gave none (RFC 9111
/// §4.2.2). Only called for responses §3 lets us store without explicit
/// freshness (heuristically cacheable statuses, or `public`). For 4xx/5xx
/// `cache.error_ttl`, when set, takes precedence; then 10% of the time
/// since Last-Modified (capped by `cache.max_heuristic_ttl`), then
/// `cache.default_ttl`. `None`: no lifetime can be assigned.
pub(super) fn heuristic_lifetime(
    status: u16,
    headers: &Headers,
    date: SystemTime,
    cfg: &PolicyConfig,
) -> Option<Lifetime> {
    if status >= 400 && !cfg.error_ttl.is_zero() {
        return Some(Lifetime::new(cfg.error_ttl, LifetimeSource::ErrorTtl));
    }
    // A Last-Modified in the future says nothing about the past.
    if let Some(lm) = http_date(headers, "last-modified")
        && let Ok(since) = date.duration_since(lm)
    {
        let lifetime = (since / 10).min(cfg.max_heuristic_ttl);
        return Some(Lifetime::new(lifetime, LifetimeSource::LastModified));
    }
    if !cfg.default_ttl.is_zero() {
        return Some(Lifetime::new(cfg.default_ttl, LifetimeSource::DefaultTtl));
    }
    None
}

/// The stale windows the origin (or the configuration) grants a stored
/// response, zero where none applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaleWindows {
    /// `stale-while-revalidate` (RFC 5861 §3).
    pub while_revalidate: Duration,
    /// `stale-if-error` (RFC 5861 §4), or `cache.stale_if_error` when the
    /// origin sent none and nothing forbids stale responses.
    pub if_error: Duration,
}

impl StaleWindows {
    /// `no-cache`, `must-revalidate` and `proxy-revalidate` close both
    /// windows (RFC 9111 §4.2.4: the most restrictive directive wins).
    /// `s-maxage` implies proxy-revalidate (§5.2.2.10), so it closes the
    /// configured default window, but an explicit window sent alongside it
    /// is the origin's own permission and stays open.
    pub fn of(d: &ResponseDirectives, cfg: &PolicyConfig) -> StaleWindows {
        if d.forbids_stale() {
            return StaleWindows {
                while_revalidate: Duration::ZERO,
                if_error: Duration::ZERO,
            };
        }
        let explicit = |w: Option<_>| w.and_then(DeltaSeconds::valid).map(Duration::from_secs);
        let default_if_error = match d.s_maxage {
            Some(_) => Duration::ZERO,
            None => cfg.stale_if_error,
        };
        StaleWindows {
            while_revalidate: explicit(d.stale_while_revalidate).unwrap_or(Duration::ZERO),
            if_error: explicit(d.stale_if_error).unwrap_or(default_if_error),
        }
    }
}

/// age_value (RFC 9111 §4.2.3): the Age field, read as §5.1 says — the
/// first member of a list, and an invalid value ignored (zero).
pub fn age_value(headers: &Headers) -> Duration {
    let Some(raw) = headers.get("age") else {
        return Duration::ZERO;
    };
    let text = String::from_utf8_lossy(raw);
    let first = text
        .split(',')
        .next()
        .unwrap_or("")
        .trim_matches([' ', '\t']);
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Duration::ZERO;
    }
    let secs = first
        .parse::<u64>()
        .unwrap_or(u64::MAX)
        .min(MAX_DELTA_SECONDS);
    Duration::from_secs(secs)
}

/// date_value: the Date field, or the response time when it is absent or
/// invalid (RFC 9110 §6.6.1).
pub fn date_value(headers: &Headers, response_time: SystemTime) -> SystemTime {
    http_date(headers, "date").unwrap_or(response_time)
}

/// corrected_initial_age = max(apparent_age, age_value + response_delay)
/// (RFC 9111 §4.2.3, the conservative form).
pub fn corrected_initial_age(
    headers: &Headers,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let date = date_value(headers, response_time);
    let apparent_age = response_time.duration_since(date).unwrap_or(Duration::ZERO);
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    apparent_age.max(age_value(headers) + response_delay)
}

/// The stored instants for a response received at `response_time` with
/// this corrected initial age and lifetime.
pub(super) fn freshness(
    response_time: SystemTime,
    initial_age: Duration,
    lifetime: Duration,
) -> Freshness {
    let born = response_time.checked_sub(initial_age).unwrap_or(UNIX_EPOCH);
    let expires = born.checked_add(lifetime).unwrap_or(born);
    Freshness { born, expires }
}

pub(super) fn http_date(headers: &Headers, name: &str) -> Option<SystemTime> {
    headers.get(name).and_then(http_date_bytes)
}

fn http_date_bytes(value: &[u8]) -> Option<SystemTime> {
    crate::http::date::parse_http_date(std::str::from_utf8(value).ok()?)
}

#[cfg(test)]
#[path = "freshness_tests.rs"]
mod tests;
