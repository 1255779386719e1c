//! May this stored response answer this request now (RFC 9111 §4, §4.2.4,
//! §5.2.1, §5.2.2; RFC 5861; RFC 8246)? `reuse` weighs the viewer's
//! request directives, the stored response's directives and its stored
//! instants, and returns what to do: serve it (fresh, or stale inside a
//! window), go forward to revalidate first (and whether the stored copy may
//! still answer if the origin then fails), or answer 504 for
//! `only-if-cached`. Each outcome carries what `Cache-Status` (RFC 9211)
//! and the access log show. It never serves stale where the origin forbade
//! it: `no-cache`, `must-revalidate` and `proxy-revalidate` always win.

use super::PolicyConfig;
use super::directives::{Coverage, FieldNames, MaxStale, RequestDirectives, ResponseDirectives};
use super::freshness::{Freshness, StaleWindows};
use super::targeted::Controls;
use crate::http::{Headers, ResponseHead};
use std::time::{Duration, SystemTime};

/// A stored response as the hit path has it.
#[derive(Clone, Copy, Debug)]
pub struct Stored<'a> {
    pub head: &'a ResponseHead,
    pub freshness: Freshness,
}

/// What to do with a request for which a response is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Serve the stored response without going forward (`Cache-Status: hit`).
    Serve(Serve),
    /// Go forward with a conditional request first (`fwd=stale` or
    /// `fwd=request`).
    Revalidate(Revalidate),
    /// `only-if-cached` and nothing usable without going forward: answer
    /// 504 here (RFC 9111 §5.2.1.7).
    GatewayTimeout,
}

/// Why a stored response may be served as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeKind {
    Fresh,
    /// Stale inside the origin's `stale-while-revalidate` window (RFC 5861
    /// §3): serve it, and revalidate in the background.
    StaleWhileRevalidate,
    /// Stale, and the viewer's `max-stale` accepts it (RFC 9111 §5.2.1.2).
    MaxStale,
    /// The origin failed while revalidating, and the stored response may
    /// answer instead (RFC 5861 §4, RFC 9111 §4.3.3).
    StaleIfError,
}

impl ServeKind {
    /// The access log's detail (and `Cache-Status` detail for stale hits).
    pub fn token(self) -> &'static str {
        match self {
            ServeKind::Fresh => "fresh",
            ServeKind::StaleWhileRevalidate => "stale-while-revalidate",
            ServeKind::MaxStale => "max-stale",
            ServeKind::StaleIfError => "stale-if-error",
        }
    }
}

/// Serve the stored response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serve {
    pub kind: ServeKind,
    /// The `Age` to send (RFC 9111 §4: current_age, replacing any stored).
    pub age: u64,
    /// The RFC 9211 `ttl`: remaining freshness, negative when stale.
    pub ttl: i64,
    /// Fields to leave out: `no-cache="..."` ones may not go out without a
    /// successful revalidation (RFC 9111 §5.2.2.4).
    pub strip_fields: FieldNames,
}

impl Serve {
    /// Whether the caller should revalidate in the background after
    /// serving (RFC 5861 §3: "SHOULD attempt to revalidate it").
    pub fn revalidate_in_background(&self) -> bool {
        self.kind == ServeKind::StaleWhileRevalidate
    }

    /// Sets `Age` and removes the fields that may not be served.
    pub fn apply(&self, headers: &mut Headers) {
        self.strip_fields.strip_from(headers);
        headers.set("Age", self.age.to_string());
    }

    fn new(
        kind: ServeKind,
        freshness: &Freshness,
        strip_fields: FieldNames,
        now: SystemTime,
    ) -> Serve {
        Serve {
            kind,
            age: freshness.age(now),
            ttl: freshness.ttl(now),
            strip_fields,
        }
    }
}

/// Why the stored response needs validation before it can be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevalidateReason {
    /// Stale, and no window or request directive lets it be served.
    Stale,
    /// The stored response says `no-cache` (RFC 9111 §5.2.2.4).
    NoCache,
    /// The viewer said `no-cache` (RFC 9111 §5.2.1.4) to a fresh response.
    RequestNoCache,
    /// Fresh, but older than the viewer's `max-age` (RFC 9111 §5.2.1.1).
    RequestMaxAge,
    /// Fresh for less than the viewer's `min-fresh` (RFC 9111 §5.2.1.3).
    RequestMinFresh,
}

impl RevalidateReason {
    pub fn token(self) -> &'static str {
        match self {
            RevalidateReason::Stale => "stale",
            RevalidateReason::NoCache => "no-cache",
            RevalidateReason::RequestNoCache => "request-no-cache",
            RevalidateReason::RequestMaxAge => "request-max-age",
            RevalidateReason::RequestMinFresh => "request-min-fresh",
        }
    }

    /// The RFC 9211 `fwd` reason: the response could not be used (`stale`)
    /// or the request would not accept it (`request`).
    pub fn forward_reason(self) -> ForwardReason {
        match self {
            RevalidateReason::Stale | RevalidateReason::NoCache => ForwardReason::Stale,
            RevalidateReason::RequestNoCache
            | RevalidateReason::RequestMaxAge
            | RevalidateReason::RequestMinFresh => ForwardReason::Request,
        }
    }
}

/// RFC 9211 §2.2 `fwd` values a revalidation maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardReason {
    Stale,
    Request,
}

impl ForwardReason {
    pub fn token(self) -> &'static str {
        match self {
            ForwardReason::Stale => "stale",
            ForwardReason::Request => "request",
        }
    }
}

/// Whether the stored response may answer if the revalidation fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfError {
    /// The failure reaches the viewer: a 5xx as the origin sent it, or a
    /// generated 502/504 (RFC 9111 §5.2.2.2: `must-revalidate` requires it).
    Fail,
    /// The stored response may answer until this instant.
    ServeStored { until: SystemTime },
}

/// How a revalidation ended, as far as stale-if-error cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginOutcome {
    /// A response arrived with this status.
    Status(u16),
    /// No usable response: connect failure, timeout, malformed head.
    Unreachable,
}

impl OriginOutcome {
    /// RFC 5861 §4: "an error is any situation that would result in a 500,
    /// 502, 503, or 504 HTTP response status code being returned".
    pub fn is_error(self) -> bool {
        match self {
            OriginOutcome::Status(s) => matches!(s, 500 | 502 | 503 | 504),
            OriginOutcome::Unreachable => true,
        }
    }
}

/// Go forward to validate before using the stored response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revalidate {
    pub reason: RevalidateReason,
    pub if_error: IfError,
    /// The RFC 9211 `ttl` of the stored response now.
    pub ttl: i64,
    freshness: Freshness,
    strip_fields: FieldNames,
}

impl Revalidate {
    /// What to serve when the revalidation ends with `outcome` at `now`:
    /// the stored response if the outcome is an error and `if_error`
    /// allows it, otherwise `None` (use the origin's answer, or fail).
    pub fn on_origin_outcome(&self, outcome: OriginOutcome, now: SystemTime) -> Option<Serve> {
        match self.if_error {
            IfError::ServeStored { until } if outcome.is_error() && now < until => {
                Some(Serve::new(
                    ServeKind::StaleIfError,
                    &self.freshness,
                    self.strip_fields.clone(),
                    now,
                ))
            }
            _ => None,
        }
    }
}

/// Whether the origin lets anyone serve this response stale on request
/// (`max-stale`, request `stale-if-error`): not with the directives that
/// forbid it, nor with `s-maxage` (RFC 9111 §5.2.2.10).
fn origin_allows_stale(d: &ResponseDirectives) -> bool {
    !d.forbids_stale() && d.s_maxage.is_none()
}

/// Decides whether `stored` may answer `request` at `now` (RFC 9111 §4).
/// The caller has already matched the key (URI, method, and the variant
/// the request selects: `cache::vary`). The viewer's `no-cache`, `max-age` and `min-fresh` are honoured
/// only with `cfg.honor_viewer_no_cache`; `max-stale`, `only-if-cached` and
/// `stale-if-error` always are.
pub fn reuse(request: &Headers, stored: &Stored<'_>, now: SystemTime, cfg: &PolicyConfig) -> Reuse {
    reuse_under(
        request,
        stored,
        &Controls::of(&stored.head.headers),
        now,
        cfg,
    )
}

/// `reuse`, with the stored response's governing directives already
/// decided (`controls`: `Controls::of` its head), as a hit on a head the
/// shard keeps decoded has them.
pub fn reuse_under(
    request: &Headers,
    stored: &Stored<'_>,
    controls: &Controls,
    now: SystemTime,
    cfg: &PolicyConfig,
) -> Reuse {
    let req = RequestDirectives::parse(request);
    let d = &controls.directives;
    let f = stored.freshness;
    let strip_fields = match &d.no_cache {
        Some(Coverage::Fields(names)) => names.clone(),
        _ => FieldNames::new(),
    };
    let windows = StaleWindows::of(d, cfg);
    let serve = |kind| Reuse::Serve(Serve::new(kind, &f, strip_fields.clone(), now));

    let reason = if d.no_cache == Some(Coverage::Response) {
        RevalidateReason::NoCache
    } else if let Some(reason) = request_demands_validation(&req, d, &f, now, cfg) {
        // RFC 9211 §2.2: `request` is for a fresh response the request
        // would not take; a stale one is `stale` whatever the request says.
        if f.is_fresh(now) {
            reason
        } else {
            RevalidateReason::Stale
        }
    } else if f.is_fresh(now) {
        return serve(ServeKind::Fresh);
    } else if f.staleness(now) < windows.while_revalidate {
        return serve(ServeKind::StaleWhileRevalidate);
    } else if origin_allows_stale(d) && accepts_staleness(req.max_stale, f.staleness(now)) {
        return serve(ServeKind::MaxStale);
    } else {
        RevalidateReason::Stale
    };
    if req.only_if_cached {
        return Reuse::GatewayTimeout;
    }
    Reuse::Revalidate(Revalidate {
        reason,
        if_error: if_error(reason, &req, d, &windows, &f, now),
        ttl: f.ttl(now),
        freshness: f,
        strip_fields,
    })
}

/// The viewer's own reasons to go forward. RFC 8246 §2: an `immutable`
/// response needs no revalidation while fresh, whatever the viewer asks.
fn request_demands_validation(
    req: &RequestDirectives,
    d: &ResponseDirectives,
    f: &Freshness,
    now: SystemTime,
    cfg: &PolicyConfig,
) -> Option<RevalidateReason> {
    if !cfg.honor_viewer_no_cache || (d.immutable && f.is_fresh(now)) {
        return None;
    }
    let secs = Duration::from_secs;
    if req.no_cache {
        Some(RevalidateReason::RequestNoCache)
    } else if req.max_age.is_some_and(|m| f.current_age(now) > secs(m)) {
        Some(RevalidateReason::RequestMaxAge)
    } else if req.min_fresh.is_some_and(|m| f.remaining(now) < secs(m)) {
        Some(RevalidateReason::RequestMinFresh)
    } else {
        None
    }
}

fn accepts_staleness(max_stale: Option<MaxStale>, staleness: Duration) -> bool {
    match max_stale {
        None => false,
        Some(MaxStale::Any) => true,
        Some(MaxStale::Limit(s)) => staleness <= Duration::from_secs(s),
    }
}

/// RFC 9111 §4.3.3: on a 5xx (or no answer) the stored response may be
/// sent "subject to its constraints" (§4.2.4): while fresh, or inside a
/// stale-if-error window (RFC 5861 §4, the response's or the request's).
/// Never for `no-cache`, which must reach the origin.
fn if_error(
    reason: RevalidateReason,
    req: &RequestDirectives,
    d: &ResponseDirectives,
    windows: &StaleWindows,
    f: &Freshness,
    now: SystemTime,
) -> IfError {
    if reason == RevalidateReason::NoCache {
        return IfError::Fail;
    }
    let mut window = windows.if_error;
    let explicit_window = d.stale_if_error.and_then(|w| w.valid()).is_some();
    if let Some(asked) = req.stale_if_error
        && !d.forbids_stale()
        && (origin_allows_stale(d) || explicit_window)
    {
        window = window.max(Duration::from_secs(asked));
    }
    let until = f.expires.checked_add(window).unwrap_or(f.expires);
    if now < until {
        IfError::ServeStored { until }
    } else {
        IfError::Fail
    }
}

/// What to do when nothing usable is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnMiss {
    Forward,
    /// `only-if-cached`: answer 504 without going forward (RFC 9111
    /// §5.2.1.7).
    GatewayTimeout,
}

pub fn on_miss(request: &Headers) -> OnMiss {
    if RequestDirectives::parse(request).only_if_cached {
        OnMiss::GatewayTimeout
    } else {
        OnMiss::Forward
    }
}

#[cfg(test)]
#[path = "reuse_tests.rs"]
mod tests;
