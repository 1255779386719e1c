//! Cache policy: HTTP caching semantics for a shared cache (RFC 9111, with
//! RFC 9110, RFC 9213 targeted fields, RFC 5861 stale windows and RFC 8246
//! `immutable`), as pure functions of heads, configuration and instants.
//! No I/O, no `.await`, no clock (every instant is an argument), no
//! logging: every rule is a fast unit test citing the section it covers,
//! and every decision the proxy shows (`Cache-Status`, access log, metrics)
//! is an enum with a `token()`.
//!
//! One file per question:
//!
//! - `directives`: `Cache-Control` parsing into [`ResponseDirectives`] and
//!   [`RequestDirectives`] (§5.2; duplicates and invalid values per §4.2.1).
//! - `targeted`: which field governs this cache — `Edgeslab-Cache-Control`,
//!   then `CDN-Cache-Control`, then `Cache-Control` ([`Controls::of`]) — and
//!   which targeted fields to strip downstream ([`fields_to_strip`]).
//! - `freshness`: the lifetime (§4.2.1), heuristics and the configured
//!   TTLs (§4.2.2), Age (§5.1) and the corrected initial age (§4.2.3), kept
//!   as [`Freshness`] (`born`, `expires`).
//! - `storage`: [`assess`] — may this response be stored, how, and fresh
//!   until when (§3, §3.5, §3.3 for 206).
//! - `reuse`: [`reuse`] — may this stored response answer this request now:
//!   [`Reuse::Serve`] (fresh, stale-while-revalidate, max-stale),
//!   [`Reuse::Revalidate`] (with what may answer if the origin fails), or
//!   [`Reuse::GatewayTimeout`] (`only-if-cached`); [`on_miss`] for requests
//!   with nothing stored.
//! - `revalidation`: [`conditional_request`] (§4.3.1), [`not_modified_use`]
//!   (§4.3.3) and [`freshen`] (§4.3.4 with the field rules of §3.2).
//! - `invalidation`: [`invalidation_targets`] after unsafe methods (§4.4).
//!
//! How the proxy uses it:
//!
//! ```
//! use edgeslab::cache::policy::*;
//! use edgeslab::http::{Headers, Method, ResponseHead};
//! use std::time::{Duration, UNIX_EPOCH};
//!
//! let cfg = PolicyConfig::default();
//! let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let viewer = Headers::new();
//! let mut origin = ResponseHead::new(200);
//! origin.headers.push("Cache-Control", "max-age=60, stale-while-revalidate=30");
//! origin.headers.push("ETag", "\"v1\"");
//!
//! // Fill: store or not, and the freshness to keep with the entry.
//! let exchange = Exchange { method: &Method::Get, request: &viewer, request_time: t0, response_time: t0 };
//! let storable = assess(&exchange, &origin, &cfg).expect("storable");
//! storable.strip_unstorable_fields(&mut origin.headers);
//!
//! // Hit, 70 s later: stale, inside the stale-while-revalidate window.
//! let stored = Stored { head: &origin, freshness: storable.freshness };
//! let Reuse::Serve(serve) = reuse(&viewer, &stored, t0 + Duration::from_secs(70), &cfg) else {
//!     unreachable!()
//! };
//! assert_eq!(serve.kind, ServeKind::StaleWhileRevalidate);
//! assert!(serve.revalidate_in_background());
//! assert_eq!((serve.age, serve.ttl), (70, -10));
//!
//! // The background revalidation asks with the stored validator.
//! let conditional = conditional_request(&origin);
//! assert_eq!(conditional.if_none_match.as_deref(), Some("\"v1\""));
//! ```
//!
//! `decide` and `storable_body` are the contract of the serving path as it
//! is today (fresh, complete responses only; no revalidation); they run
//! through `assess` and refuse what that path cannot honour.

mod directives;
#[cfg(test)]
mod fixtures;
mod freshness;
mod invalidation;
mod reuse;
mod revalidation;
mod storage;
mod structured;
mod targeted;

pub use directives::{
    Coverage, DeltaSeconds, FieldNames, MAX_DELTA_SECONDS, MaxStale, RequestDirectives,
    ResponseDirectives,
};
pub use freshness::{
    Freshness, Lifetime, LifetimeSource, StaleWindows, age_value, corrected_initial_age, date_value,
};
pub use invalidation::{TargetUri, invalidation_targets, is_safe};
pub use reuse::{
    ForwardReason, IfError, OnMiss, OriginOutcome, Reuse, Revalidate, RevalidateReason, Serve,
    ServeKind, Stored, on_miss, reuse, reuse_under,
};
pub use revalidation::{
    Conditional, EntityTag, Freshened, NotApplicable, NotModifiedUse, conditional_request, freshen,
    if_range_validator, not_modified_use,
};
pub use storage::{
    ContentRange, Exchange, NotStored, ReuseLimit, Storable, StoredBody, assess, has_validator,
    heuristically_cacheable, understood_status,
};
pub use targeted::{ControllingField, Controls, Downstream, TARGET_LIST, fields_to_strip};

use crate::http::{BodyFraming, Headers, Method, ResponseHead};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The policy's settings: the `cache.*` keys it reads, plus what the
/// role and the implementation decide.
#[derive(Clone, Debug)]
pub struct PolicyConfig {
    /// `cache.default_ttl`: lifetime for cacheable responses without
    /// explicit freshness and without Last-Modified; zero stores none.
    pub default_ttl: Duration,
    /// `cache.max_heuristic_ttl`: cap on the Last-Modified heuristic.
    pub max_heuristic_ttl: Duration,
    /// `cache.cache_set_cookie`: store responses that set cookies.
    pub cache_set_cookie: bool,
    /// `cache.error_ttl`: lifetime for cacheable 4xx/5xx responses without
    /// explicit freshness (before the heuristic and `default_ttl`); zero
    /// leaves them to those.
    pub error_ttl: Duration,
    /// `cache.stale_if_error`: the stale-if-error window when the origin
    /// sent none and no directive forbids serving stale.
    pub stale_if_error: Duration,
    /// `cache.honor_viewer_no_cache`: whether the viewer's `no-cache`,
    /// `max-age` and `min-fresh` can make this cache revalidate.
    pub honor_viewer_no_cache: bool,
    /// Who receives this node's responses (from `role`).
    pub downstream: Downstream,
    /// Not a setting: whether the serving path implements storing partial
    /// content (RFC 9111 §3.3). Until it does, a 206 is not stored.
    pub store_partial_content: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            default_ttl: Duration::ZERO,
            max_heuristic_ttl: Duration::from_secs(86_400),
            cache_set_cookie: false,
            error_ttl: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            honor_viewer_no_cache: true,
            downstream: Downstream::Viewers,
            store_partial_content: false,
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

/// Whether a response to a GET/HEAD may be stored by a serving path that
/// serves only fresh, complete responses as they were stored, and its
/// freshness if so. `request_time` is when the request went upstream,
/// `response_time` when the response head arrived. Beyond `assess`, it
/// refuses what such a path cannot honour: `no-cache` in any form (it would
/// need revalidation or field stripping on reuse), qualified `private` (it
/// would need stripping before storage), partial content, and responses
/// already stale on arrival.
pub fn decide(
    method: &Method,
    request_headers: &Headers,
    response: &ResponseHead,
    request_time: SystemTime,
    response_time: SystemTime,
    cfg: &PolicyConfig,
) -> Result<Freshness, NotStored> {
    let exchange = Exchange {
        method,
        request: request_headers,
        request_time,
        response_time,
    };
    let storable = assess(&exchange, response, cfg)?;
    if storable.reuse != ReuseLimit::Free {
        return Err(NotStored::NoCache);
    }
    if !storable.strip_before_storing.is_empty() {
        return Err(NotStored::Private);
    }
    if storable.body != StoredBody::Complete {
        return Err(NotStored::PartialContent);
    }
    if storable.stale_on_arrival(response_time) {
        return Err(NotStored::Stale);
    }
    Ok(storable.freshness)
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
#[path = "decide_tests.rs"]
mod tests;
