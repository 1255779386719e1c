//! What happened to a request, as enums: the cache phase it reached, the
//! RFC 9211 `fwd` reason it maps to, and the detail saying why it was
//! refused, passed, not stored or cut short. `Cache-Status`, the access log
//! and the metrics all render from these values, so they cannot disagree,
//! and every new reason is a new variant the compiler makes each branch
//! handle.

use crate::cache::policy::{NotStored, RevalidateReason, ServeKind};
use crate::http::RequestError;
use crate::upstream::UpstreamErrorKind;
use std::fmt;

/// The phase a request reached in the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachePhase {
    /// Answered before routing: a malformed or refused request.
    Refused,
    /// Served from the cache, fresh.
    Hit,
    /// Served from the cache stale, as a window allows (stale-while-
    /// revalidate, the viewer's max-stale); the detail says which.
    HitStale,
    /// A stored response validated with the origin (304) and served.
    Revalidated,
    /// Revalidation met an origin error; the stored response answered
    /// inside its stale-if-error window.
    StaleIfError,
    /// An object kept in parts: some of the parts the request needed were
    /// stored, the rest fetched (RFC 9211 `fwd=partial`).
    Partial,
    /// Not in the cache: fetched from the origin.
    Miss,
    /// The URL's responses vary (a Vary marker is stored) and the variant
    /// this request selects is not in the cache: fetched.
    VaryMiss,
    /// In the cache but no longer fresh: fetched again.
    Stale,
    /// A miss answered from another request's fetch of the same key, as
    /// it arrived (request coalescing).
    CollapsedMiss,
    /// As `CollapsedMiss`, for a stale copy being fetched again.
    CollapsedStale,
    /// As `CollapsedMiss`, for a variant that was missing.
    CollapsedVaryMiss,
    /// The method is never cached (PUT, POST, …): passed to the origin.
    PassMethod,
    /// A cacheable method whose request cannot use the cache (a body, a
    /// range that missed) or whose response will not be stored (request
    /// `no-store`, HEAD with `Authorization`): passed to the origin.
    PassRequest,
}

impl CachePhase {
    /// The access log's `phase` field.
    pub fn as_str(self) -> &'static str {
        match self {
            CachePhase::Refused => "refused",
            CachePhase::Hit => "hit",
            CachePhase::HitStale => "hit-stale",
            CachePhase::Revalidated => "revalidated",
            CachePhase::StaleIfError => "stale-if-error",
            CachePhase::Partial => "partial",
            CachePhase::Miss => "miss",
            CachePhase::VaryMiss => "vary-miss",
            CachePhase::Stale => "stale",
            CachePhase::CollapsedMiss => "miss-collapsed",
            CachePhase::CollapsedStale => "stale-collapsed",
            CachePhase::CollapsedVaryMiss => "vary-miss-collapsed",
            CachePhase::PassMethod => "pass-method",
            CachePhase::PassRequest => "pass-request",
        }
    }

    /// Why the request went forward, for phases that did.
    pub fn fwd(self) -> Option<Fwd> {
        match self {
            CachePhase::Miss | CachePhase::CollapsedMiss => Some(Fwd::UriMiss),
            CachePhase::VaryMiss | CachePhase::CollapsedVaryMiss => Some(Fwd::VaryMiss),
            CachePhase::Partial => Some(Fwd::Partial),
            CachePhase::Stale
            | CachePhase::CollapsedStale
            | CachePhase::Revalidated
            | CachePhase::StaleIfError => Some(Fwd::Stale),
            CachePhase::PassMethod => Some(Fwd::Method),
            CachePhase::PassRequest => Some(Fwd::Request),
            CachePhase::Refused | CachePhase::Hit | CachePhase::HitStale => None,
        }
    }
}

/// RFC 9211 2.2 `fwd` values this cache sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fwd {
    UriMiss,
    /// The URL is cached, but not the variant the request selects.
    VaryMiss,
    Stale,
    Method,
    Request,
    /// Part of the response was stored, the rest fetched.
    Partial,
}

impl Fwd {
    pub fn token(self) -> &'static str {
        match self {
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Method => "method",
            Fwd::Request => "request",
            Fwd::Partial => "partial",
        }
    }
}

/// Why a cacheable method was passed to the origin without the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassReason {
    /// The method is never cached.
    Method,
    /// A GET or HEAD with a body.
    RequestBody,
    /// A `Range` request for a key just found uncacheable: the origin
    /// answers the range itself.
    Range,
    /// The request says `Cache-Control: no-store` (RFC 9111 5.2.1.5):
    /// nothing fetched for it may be stored, so it is not fetched as a fill.
    RequestNoStore,
    /// A HEAD with `Authorization`: its response may not be stored unless it
    /// says so (RFC 9111 3.5), so a fill (a whole GET) would likely be
    /// wasted; the HEAD goes upstream as it is.
    HeadAuthorization,
    /// The request's behaviour is dynamic: never cached, never sent
    /// through the regional tier.
    Dynamic,
    /// An object kept in parts whose parts could not be had (its origin
    /// stopped answering ranges of it, or it changed): the request goes
    /// upstream as sent.
    PartsUnavailable,
}

impl PassReason {
    pub fn phase(self) -> CachePhase {
        match self {
            PassReason::Method => CachePhase::PassMethod,
            PassReason::RequestBody
            | PassReason::Range
            | PassReason::RequestNoStore
            | PassReason::HeadAuthorization
            | PassReason::PartsUnavailable
            | PassReason::Dynamic => CachePhase::PassRequest,
        }
    }

    /// The detail a pass carries; the method itself needs none (`fwd=method`
    /// says it all).
    pub fn detail(self) -> Option<Detail> {
        match self {
            PassReason::Method => None,
            PassReason::RequestBody
            | PassReason::Range
            | PassReason::RequestNoStore
            | PassReason::HeadAuthorization
            | PassReason::PartsUnavailable
            | PassReason::Dynamic => Some(Detail::Pass(self)),
        }
    }
}

/// Why a request was answered by this node without going anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The Host is not one this node serves; the status is configured.
    UnknownHost { status: u16 },
    /// CONNECT and TRACE are not supported (405).
    Method,
    /// The request's behaviour does not allow its method (405, with the
    /// behaviour's `Allow`).
    MethodNotAllowed,
    /// `only-if-cached` and nothing usable is stored (504, RFC 9111
    /// §5.2.1.7).
    OnlyIfCached,
    /// `OPTIONS *` is not supported (501).
    OptionsAsterisk,
    /// The request head did not arrive in time (408).
    HeaderTimeout,
    /// The request head could not be accepted (400, 414, 431, 501, 505).
    BadHead(RequestErrorKind),
    /// The node is stopping and the drain deadline passed before this
    /// request was answered (503, the connection closed).
    DrainDeadline,
}

/// The kind of a request-head error, without its free-text reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestErrorKind {
    BadRequest,
    HeaderTooLarge,
    UriTooLong,
    NotImplemented,
    VersionNotSupported,
}

impl From<&RequestError> for RequestErrorKind {
    fn from(e: &RequestError) -> Self {
        match e {
            RequestError::BadRequest(_) => RequestErrorKind::BadRequest,
            RequestError::HeaderTooLarge => RequestErrorKind::HeaderTooLarge,
            RequestError::UriTooLong => RequestErrorKind::UriTooLong,
            RequestError::NotImplemented(_) => RequestErrorKind::NotImplemented,
            RequestError::VersionNotSupported => RequestErrorKind::VersionNotSupported,
        }
    }
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::UnknownHost { status } => status,
            Refusal::Method | Refusal::MethodNotAllowed => 405,
            Refusal::OnlyIfCached => 504,
            Refusal::OptionsAsterisk => 501,
            Refusal::HeaderTimeout => 408,
            Refusal::DrainDeadline => 503,
            Refusal::BadHead(kind) => match kind {
                RequestErrorKind::BadRequest => 400,
                RequestErrorKind::HeaderTooLarge => 431,
                RequestErrorKind::UriTooLong => 414,
                RequestErrorKind::NotImplemented => 501,
                RequestErrorKind::VersionNotSupported => 505,
            },
        }
    }

    fn token(self) -> &'static str {
        match self {
            Refusal::UnknownHost { .. } => "unknown-host",
            Refusal::Method | Refusal::OptionsAsterisk => "method",
            Refusal::MethodNotAllowed => "method-not-allowed",
            Refusal::OnlyIfCached => "only-if-cached",
            Refusal::HeaderTimeout => "header-timeout",
            Refusal::DrainDeadline => "drain-deadline",
            Refusal::BadHead(kind) => match kind {
                RequestErrorKind::BadRequest => "bad-request",
                RequestErrorKind::HeaderTooLarge => "header-too-large",
                RequestErrorKind::UriTooLong => "uri-too-long",
                RequestErrorKind::NotImplemented => "not-implemented",
                RequestErrorKind::VersionNotSupported => "version-not-supported",
            },
        }
    }
}

/// How a viewer's request body failed while it was relayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewerBodyFailure {
    /// It stalled past `listen.io_timeout` (408).
    Timeout,
    /// Its framing was broken or it ended early (400).
    Malformed,
}

impl ViewerBodyFailure {
    pub fn status(self) -> u16 {
        match self {
            ViewerBodyFailure::Timeout => 408,
            ViewerBodyFailure::Malformed => 400,
        }
    }

    /// What the viewer is told.
    pub fn viewer_message(self) -> &'static str {
        match self {
            ViewerBodyFailure::Timeout => "the request body did not arrive in time",
            ViewerBodyFailure::Malformed => "the request body is malformed or incomplete",
        }
    }
}

/// The one detail a response carries: in `Cache-Status` (`detail=`) when the
/// viewer can still be told, and always in the access log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    Refused(Refusal),
    Pass(PassReason),
    NotStored(NotStored),
    /// The origin could not be reached or answered badly.
    Upstream(UpstreamErrorKind),
    ViewerBody(ViewerBodyFailure),
    /// The origin's body ended early; the viewer's connection was closed.
    OriginBodyTruncated,
    /// A chunk of a stored large object could not be read mid-response.
    ChunkUnreadable,
    /// The origin's body has a transfer coding the HTTP/1.0 viewer cannot
    /// receive (502).
    TransferCodingForHttp10,
    /// A stored response served stale, and by which allowance.
    ServedStale(ServeKind),
    /// Why a stored response went to the origin for validation.
    Revalidation(RevalidateReason),
    /// The origin answered 304 to a request without a precondition:
    /// unusable (RFC 9111 §4.3.3), a 502.
    Unsolicited304,
    /// The response is one of its URL's `Vary` variants: served as the one
    /// this request selects, or being stored as one.
    Variant,
    /// The object is too large to store whole (or its origin serves it in
    /// ranges only): it is kept, and served, in parts.
    Parts,
}

impl Detail {
    /// The RFC 9211 `detail` token.
    pub fn token(self) -> &'static str {
        match self {
            Detail::Refused(r) => r.token(),
            Detail::Pass(PassReason::Method) => "method",
            Detail::Pass(PassReason::RequestBody) => "request-body",
            Detail::Pass(PassReason::Range) => "range",
            Detail::Pass(PassReason::RequestNoStore) => "request-no-store",
            Detail::Pass(PassReason::HeadAuthorization) => "head-authorization",
            Detail::Pass(PassReason::PartsUnavailable) => "parts-unavailable",
            Detail::Pass(PassReason::Dynamic) => "dynamic",
            Detail::NotStored(why) => why.token(),
            Detail::Upstream(kind) => kind.token(),
            Detail::ViewerBody(ViewerBodyFailure::Timeout) => "request-body-timeout",
            Detail::ViewerBody(ViewerBodyFailure::Malformed) => "bad-request-body",
            Detail::OriginBodyTruncated => "origin-body-truncated",
            Detail::ChunkUnreadable => "chunk-unreadable",
            Detail::TransferCodingForHttp10 => "transfer-coding-for-http10",
            Detail::ServedStale(kind) => kind.token(),
            Detail::Revalidation(reason) => reason.token(),
            Detail::Unsolicited304 => "unsolicited-304",
            Detail::Variant => "variant",
            Detail::Parts => "parts",
        }
    }
}

/// Whether the fill of a response was taken on when its head went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storing {
    /// Nothing is being stored (a hit, a pass, an error).
    No,
    /// The body is being written to the cache as it is relayed. RFC 9211's
    /// `stored` is sent with the head, before the body has arrived: it says
    /// the response is being stored, and a body the origin then cuts short
    /// is dropped (the access log's detail says so).
    Yes,
}

/// One `Cache-Status` list member for this node (RFC 9211 2).
#[derive(Clone, Copy, Debug)]
pub struct CacheStatus {
    pub phase: CachePhase,
    /// Why the request went forward; `phase.fwd()` unless the request
    /// itself asked for validation (`fwd=request`).
    pub fwd: Option<Fwd>,
    /// The status the origin answered a forwarded request with, when it
    /// differs from the one sent (a 304 that was turned into a hit, an
    /// error replaced by a stale response).
    pub fwd_status: Option<u16>,
    pub storing: Storing,
    /// Remaining freshness lifetime in seconds, for hits.
    pub ttl: Option<i64>,
    pub detail: Option<Detail>,
}

impl CacheStatus {
    /// The entry of `phase`, with nothing else to say yet.
    pub fn of(phase: CachePhase) -> CacheStatus {
        CacheStatus {
            phase,
            fwd: phase.fwd(),
            fwd_status: None,
            storing: Storing::No,
            ttl: None,
            detail: None,
        }
    }
}

impl CachePhase {
    /// RFC 9211 `collapsed`: the response came from another request's
    /// forward request.
    pub fn collapsed(self) -> bool {
        matches!(
            self,
            CachePhase::CollapsedMiss | CachePhase::CollapsedStale | CachePhase::CollapsedVaryMiss
        )
    }
}

impl CacheStatus {
    pub fn render(&self, node: &str) -> String {
        let mut out = Vec::new();
        self.rendered(node).append_to(&mut out);
        String::from_utf8(out).expect("Cache-Status is ASCII")
    }

    /// This node's `Cache-Status` entry (RFC 9211), to format where it goes
    /// without a string of its own.
    pub fn rendered<'a>(&'a self, node: &'a str) -> Rendered<'a> {
        Rendered { status: self, node }
    }
}

/// A `CacheStatus` entry as it is written: see `CacheStatus::rendered`.
pub struct Rendered<'a> {
    status: &'a CacheStatus,
    node: &'a str,
}

impl Rendered<'_> {
    /// Appends the entry to `out` as bytes, numbers without `fmt`: the way
    /// a hit's head is written.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        // Appending to a Vec cannot fail.
        let _ = self.write_to(out);
    }

    fn write_to(&self, out: &mut impl Sink) -> fmt::Result {
        let status = self.status;
        out.put(self.node)?;
        if matches!(status.phase, CachePhase::Hit | CachePhase::HitStale) {
            out.put("; hit")?;
        } else if let Some(fwd) = status.fwd {
            out.put("; fwd=")?;
            out.put(fwd.token())?;
        }
        if let Some(code) = status.fwd_status {
            out.put("; fwd-status=")?;
            out.put(itoa::Buffer::new().format(code))?;
        }
        if status.storing == Storing::Yes {
            out.put("; stored")?;
        }
        if status.phase.collapsed() {
            out.put("; collapsed")?;
        }
        if let Some(ttl) = status.ttl {
            out.put("; ttl=")?;
            out.put(itoa::Buffer::new().format(ttl))?;
        }
        if let Some(d) = status.detail {
            out.put("; detail=")?;
            out.put(d.token())?;
        }
        Ok(())
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

/// Where a rendered entry goes: a formatter, or a head's bytes.
trait Sink {
    fn put(&mut self, s: &str) -> fmt::Result;
}

impl Sink for fmt::Formatter<'_> {
    fn put(&mut self, s: &str) -> fmt::Result {
        self.write_str(s)
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, s: &str) -> fmt::Result {
        self.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9211_members() {
        let hit = CacheStatus {
            phase: CachePhase::Hit,
            fwd: CachePhase::Hit.fwd(),
            fwd_status: None,
            storing: Storing::No,
            ttl: Some(42),
            detail: None,
        };
        assert_eq!(hit.render("edgeslab"), "edgeslab; hit; ttl=42");
        let miss = CacheStatus {
            phase: CachePhase::Miss,
            fwd: CachePhase::Miss.fwd(),
            fwd_status: None,
            storing: Storing::Yes,
            ttl: None,
            detail: None,
        };
        assert_eq!(miss.render("edgeslab"), "edgeslab; fwd=uri-miss; stored");
        let pass = CacheStatus {
            phase: CachePhase::PassRequest,
            fwd: CachePhase::PassRequest.fwd(),
            fwd_status: None,
            storing: Storing::No,
            ttl: None,
            detail: PassReason::Range.detail(),
        };
        assert_eq!(
            pass.render("edgeslab"),
            "edgeslab; fwd=request; detail=range"
        );
        let collapsed = CacheStatus {
            phase: CachePhase::CollapsedMiss,
            fwd: CachePhase::CollapsedMiss.fwd(),
            fwd_status: None,
            storing: Storing::No,
            ttl: None,
            detail: None,
        };
        assert_eq!(collapsed.render("e"), "e; fwd=uri-miss; collapsed");
        let refused = CacheStatus {
            phase: CachePhase::Refused,
            fwd: CachePhase::Refused.fwd(),
            fwd_status: None,
            storing: Storing::No,
            ttl: None,
            detail: Some(Detail::Refused(Refusal::Method)),
        };
        assert_eq!(refused.render("n"), "n; detail=method");
        let vary_miss = CacheStatus {
            phase: CachePhase::VaryMiss,
            fwd: CachePhase::VaryMiss.fwd(),
            fwd_status: None,
            storing: Storing::Yes,
            ttl: None,
            detail: Some(Detail::Variant),
        };
        assert_eq!(
            vary_miss.render("e"),
            "e; fwd=vary-miss; stored; detail=variant"
        );
        let collapsed_vary = CacheStatus {
            phase: CachePhase::CollapsedVaryMiss,
            fwd: CachePhase::CollapsedVaryMiss.fwd(),
            fwd_status: None,
            storing: Storing::No,
            ttl: None,
            detail: Some(Detail::Variant),
        };
        assert_eq!(
            collapsed_vary.render("e"),
            "e; fwd=vary-miss; collapsed; detail=variant"
        );
        let variant_hit = CacheStatus {
            phase: CachePhase::Hit,
            fwd: CachePhase::Hit.fwd(),
            fwd_status: None,
            storing: Storing::No,
            ttl: Some(5),
            detail: Some(Detail::Variant),
        };
        assert_eq!(variant_hit.render("e"), "e; hit; ttl=5; detail=variant");
        let stale = CacheStatus {
            phase: CachePhase::Stale,
            fwd: CachePhase::Stale.fwd(),
            fwd_status: Some(304),
            storing: Storing::No,
            ttl: Some(-12),
            detail: None,
        };
        assert_eq!(stale.render("e"), "e; fwd=stale; fwd-status=304; ttl=-12");
        // Heads written through `fmt` (`set_fmt`) get the same bytes.
        for status in [hit, miss, pass, collapsed, refused, vary_miss, stale] {
            assert_eq!(status.rendered("e").to_string(), status.render("e"));
        }
    }

    #[test]
    fn every_phase_has_its_own_log_name() {
        let all = [
            CachePhase::Refused,
            CachePhase::Hit,
            CachePhase::Miss,
            CachePhase::Stale,
            CachePhase::HitStale,
            CachePhase::Revalidated,
            CachePhase::StaleIfError,
            CachePhase::Partial,
            CachePhase::CollapsedMiss,
            CachePhase::CollapsedStale,
            CachePhase::VaryMiss,
            CachePhase::CollapsedVaryMiss,
            CachePhase::PassMethod,
            CachePhase::PassRequest,
        ];
        let mut names: Vec<_> = all.iter().map(|p| p.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn passes_map_to_their_phase_and_detail() {
        assert_eq!(PassReason::Method.phase(), CachePhase::PassMethod);
        assert_eq!(PassReason::Method.detail(), None);
        assert_eq!(PassReason::RequestBody.phase(), CachePhase::PassRequest);
        assert_eq!(
            PassReason::RequestBody.detail().map(Detail::token),
            Some("request-body")
        );
        for (reason, token) in [
            (PassReason::RequestNoStore, "request-no-store"),
            (PassReason::HeadAuthorization, "head-authorization"),
            (PassReason::PartsUnavailable, "parts-unavailable"),
            (PassReason::Dynamic, "dynamic"),
        ] {
            assert_eq!(reason.phase(), CachePhase::PassRequest);
            assert_eq!(reason.detail().map(Detail::token), Some(token));
        }
    }

    #[test]
    fn refusal_statuses() {
        assert_eq!(Refusal::UnknownHost { status: 404 }.status(), 404);
        assert_eq!(Refusal::Method.status(), 405);
        assert_eq!(Refusal::OptionsAsterisk.status(), 501);
        assert_eq!(Refusal::HeaderTimeout.status(), 408);
        let e = RequestError::UriTooLong;
        assert_eq!(Refusal::BadHead((&e).into()).status(), e.status());
        let e = RequestError::BadRequest("x");
        assert_eq!(Refusal::BadHead((&e).into()).status(), e.status());
        assert_eq!(
            Detail::Refused(Refusal::BadHead((&e).into())).token(),
            "bad-request"
        );
    }
}
