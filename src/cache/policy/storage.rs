//! May this response be stored, and with what freshness (RFC 9111 §3,
//! §3.5, §4.2)? `assess` answers for a shared cache from the request, the
//! response head and the exchange's two instants, and says what the caller
//! must do to the head before storing it (fields `private` names) and what
//! every later reuse is subject to (`no-cache`). It never looks at the
//! body beyond its declared framing, and never stores what it cannot
//! reuse: a response that would always need a full refetch is refused.

use super::PolicyConfig;
use super::directives::{Coverage, FieldNames, ResponseDirectives};
use super::freshness::{
    Freshness, Lifetime, LifetimeSource, StaleWindows, corrected_initial_age, date_value,
    explicit_lifetime, freshness, heuristic_lifetime, http_date,
};
use super::targeted::{ControllingField, Controls};
use crate::cache::vary::VaryField;
use crate::http::{Headers, Method, ResponseHead};
use std::time::{Duration, SystemTime};

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
    /// `Vary: *` (or a member that is not a field name): it never matches
    /// (§4.1). Also a variant whose request values are too long to key.
    Vary,
    NoFreshness,
    Stale,
    PartialContent,
    /// A transfer coding other than chunked (e.g. `gzip, chunked`): the
    /// body's end can be found but the representation cannot be decoded.
    TransferCoding,
    /// Declared larger than the store keeps.
    TooLarge,
    /// `must-understand` on a status this cache does not implement (RFC
    /// 9111 §5.2.2.3).
    MustUnderstand,
    /// A 304 is never stored: it only freshens a stored response (§4.3.4).
    NotModified,
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
            NotStored::MustUnderstand => "must-understand",
            NotStored::NotModified => "not-modified",
        }
    }
}

/// The request side of an exchange with the origin (or parent).
#[derive(Clone, Copy, Debug)]
pub struct Exchange<'a> {
    /// The viewer's method (a HEAD is filled with a GET).
    pub method: &'a Method,
    /// The viewer's request fields (Authorization, Cache-Control).
    pub request: &'a Headers,
    /// When the request went upstream.
    pub request_time: SystemTime,
    /// When the response head arrived.
    pub response_time: SystemTime,
}

/// What every reuse of a stored response is subject to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReuseLimit {
    /// Reusable while fresh (and stale as the directives allow).
    Free,
    /// `no-cache="..."`: reusable, but these fields go out only after a
    /// successful revalidation (RFC 9111 §5.2.2.4); `reuse` strips them
    /// from anything served without one.
    FieldsNeedValidation(FieldNames),
    /// Unqualified `no-cache`: every reuse is validated first.
    EveryUse,
}

/// The body a stored response holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredBody {
    Complete,
    /// A 206 kept as an incomplete 200 (RFC 9111 §3.3): only when
    /// `PolicyConfig::store_partial_content` says ranges are implemented.
    Partial(ContentRange),
}

/// A single-part `Content-Range: bytes first-last/complete` (RFC 9110 §14.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub first: u64,
    pub last: u64,
    /// `None` for `*` (unknown length).
    pub complete_length: Option<u64>,
}

impl ContentRange {
    /// `bytes first-last/(length|*)`; anything else (other units, several
    /// parts, `bytes */length`) is not something a cache can store.
    pub fn parse(value: &str) -> Option<ContentRange> {
        let rest = value.trim().strip_prefix("bytes ")?.trim_start();
        let (range, complete) = rest.split_once('/')?;
        let (first, last) = range.split_once('-')?;
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let (first, last) = (number(first)?, number(last)?);
        let complete_length = match complete {
            "*" => None,
            n => Some(number(n)?),
        };
        let fits = complete_length.is_none_or(|len| last < len);
        (first <= last && fits).then_some(ContentRange {
            first,
            last,
            complete_length,
        })
    }
}

/// A response this cache may store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storable {
    /// The instants to keep with the entry.
    pub freshness: Freshness,
    pub lifetime: Lifetime,
    /// The field whose directives decided (RFC 9213).
    pub controlled_by: ControllingField,
    pub reuse: ReuseLimit,
    /// Fields a shared cache must not store: `private="..."` (RFC 9111
    /// §5.2.2.7) and the proxy's own authentication fields (§3.1).
    pub strip_before_storing: FieldNames,
    pub body: StoredBody,
}

/// Proxy-specific fields never stored (RFC 9111 §3.1).
const PROXY_FIELDS: [&str; 3] = [
    "proxy-authenticate",
    "proxy-authentication-info",
    "proxy-authorization",
];

impl Storable {
    /// Removes what must not be stored from the head about to be stored.
    pub fn strip_unstorable_fields(&self, headers: &mut Headers) {
        self.strip_before_storing.strip_from(headers);
        for name in PROXY_FIELDS {
            headers.remove(name);
        }
    }

    /// Whether it is stale already on arrival (it is then kept only for
    /// revalidation or a stale window).
    pub fn stale_on_arrival(&self, response_time: SystemTime) -> bool {
        !self.freshness.is_fresh(response_time)
    }
}

/// Status codes whose caching behaviour this cache implements (RFC 9111 §3:
/// "understood"): every final status RFC 9110 §15 defines, except 206
/// unless ranges are stored, and 304, which only freshens (§4.3.4).
pub fn understood_status(status: u16, cfg: &PolicyConfig) -> bool {
    match status {
        206 => cfg.store_partial_content,
        304 => false,
        200..=205 | 300..=303 | 307 | 308 => true,
        400..=417 | 421 | 422 | 426 => true,
        500..=505 => true,
        _ => false,
    }
}

/// Heuristically cacheable status codes (RFC 9110 §15.1).
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Whether the response carries a validator a revalidation can send
/// (RFC 9111 §4.3.1).
pub fn has_validator(headers: &Headers) -> bool {
    headers.contains("etag") || http_date(headers, "last-modified").is_some()
}

/// Decides whether a response may be stored by this shared cache and with
/// what freshness (RFC 9111 §3). Checks, in order: method, status,
/// must-understand, no-store (response and request), private, Authorization
/// (§3.5), Set-Cookie (config), `Vary: *`, partial content (§3.3), then the
/// freshness lifetime (§4.2.1, §4.2.2) and whether the stored copy could
/// ever be reused.
pub fn assess(
    exchange: &Exchange<'_>,
    response: &ResponseHead,
    cfg: &PolicyConfig,
) -> Result<Storable, NotStored> {
    if !exchange.method.is_cacheable_method() {
        return Err(NotStored::Method);
    }
    let status = response.status;
    // RFC 9111 §3: the status code is final; 304 only updates (§4.3.4).
    if !(200..=599).contains(&status) {
        return Err(NotStored::Status);
    }
    if status == 304 {
        return Err(NotStored::NotModified);
    }
    let headers = &response.headers;
    let controls = Controls::of(headers);
    let d = &controls.directives;
    let request = super::directives::RequestDirectives::parse(exchange.request);
    // RFC 9111 §5.2.2.3: with must-understand, store only an understood
    // status, and then ignore no-store.
    let understood = understood_status(status, cfg);
    if d.must_understand && !understood {
        return Err(NotStored::MustUnderstand);
    }
    if (d.no_store && !d.must_understand) || request.no_store {
        return Err(NotStored::NoStore);
    }
    // RFC 9111 §3: 206 is stored only by a cache that implements ranges.
    if status == 206 && !understood {
        return Err(NotStored::PartialContent);
    }
    let strip_before_storing = match &d.private {
        Some(Coverage::Response) => return Err(NotStored::Private),
        Some(Coverage::Fields(names)) => names.clone(),
        None => FieldNames::new(),
    };
    if exchange.request.contains("authorization") && !d.allows_authorized() {
        return Err(NotStored::Authorization);
    }
    if headers.contains("set-cookie")
        && !cfg.cache_set_cookie
        && !strip_before_storing.contains("set-cookie")
    {
        return Err(NotStored::SetCookie);
    }
    // RFC 9111 §4.1: a Vary of "*" always fails to match, so a response
    // carrying it could never be reused. Other Vary lists are stored as
    // variants (`cache::vary`).
    if VaryField::of(headers) == VaryField::Unmatchable {
        return Err(NotStored::Vary);
    }
    let body = match status {
        206 => StoredBody::Partial(
            headers
                .get_str("content-range")
                .and_then(ContentRange::parse)
                .ok_or(NotStored::PartialContent)?,
        ),
        _ => StoredBody::Complete,
    };

    let reuse = match &d.no_cache {
        None => ReuseLimit::Free,
        Some(Coverage::Fields(names)) => ReuseLimit::FieldsNeedValidation(names.clone()),
        Some(Coverage::Response) => ReuseLimit::EveryUse,
    };
    let validator = has_validator(headers);
    // A copy that can only ever be refetched whole is not worth storing.
    if reuse == ReuseLimit::EveryUse && !validator {
        return Err(NotStored::NoCache);
    }

    let date = date_value(headers, exchange.response_time);
    let lifetime = match explicit_lifetime(&controls, headers, date) {
        Some(l) => l,
        // RFC 9111 §3 and §4.2.2: without explicit freshness, only
        // heuristically cacheable statuses or `public` may be stored.
        None if heuristically_cacheable(status) || d.public => {
            match heuristic_lifetime(status, headers, date, cfg) {
                Some(l) => l,
                // Validated on every use, it needs no lifetime.
                None if reuse == ReuseLimit::EveryUse => Lifetime {
                    duration: Duration::ZERO,
                    source: LifetimeSource::AlwaysValidated,
                },
                None => return Err(NotStored::NoFreshness),
            }
        }
        None => return Err(NotStored::Status),
    };
    let initial_age = corrected_initial_age(headers, exchange.request_time, exchange.response_time);
    let fresh = freshness(exchange.response_time, initial_age, lifetime.duration);
    let stale = !fresh.is_fresh(exchange.response_time);
    if stale && !validator && !usable_stale(d, fresh.staleness(exchange.response_time), cfg) {
        return Err(NotStored::Stale);
    }
    Ok(Storable {
        freshness: fresh,
        lifetime,
        controlled_by: controls.field,
        reuse,
        strip_before_storing,
        body,
    })
}

/// Whether a response already `staleness` past expiry on arrival can still
/// be served from a stale window (RFC 5861 §3, §4) without validation.
fn usable_stale(d: &ResponseDirectives, staleness: Duration, cfg: &PolicyConfig) -> bool {
    let windows = StaleWindows::of(d, cfg);
    staleness < windows.while_revalidate.max(windows.if_error)
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;
