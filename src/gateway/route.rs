//! Routing a parsed request: refuse it, pass it to the origin, or look it up
//! in the cache. Pure: the request head and the node's host list in, one
//! `Route` out, so every rule here is a unit test. It never lets a request
//! that carries a body use the cache, because the cache would answer without
//! the body ever reaching the origin, and never fills for a request whose
//! response may not be stored.

use super::behavior::Behavior;
use super::decision::{PassReason, Refusal};
use crate::cache::policy::RequestDirectives;
use crate::http::target::normalise_authority;
use crate::http::{Method, RequestHead};

/// The host names a node serves and the status for the others.
#[derive(Clone, Debug)]
pub struct HostFilter {
    /// Names in the codec's normal form (`http::target`), with or without
    /// port; empty serves any host.
    hosts: Vec<String>,
    unknown_status: u16,
}

impl HostFilter {
    pub fn new(hosts: &[String], unknown_status: u16) -> HostFilter {
        HostFilter {
            hosts: hosts.iter().map(|h| normalise_authority(h)).collect(),
            unknown_status,
        }
    }

    /// Does this node serve `authority` ("host" or "host:port")?
    pub fn serves(&self, authority: Option<&str>) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        let Some(a) = authority else { return false };
        let host_only = match a.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
            _ => a,
        };
        self.hosts.iter().any(|h| h == a || h == host_only)
    }
}

/// The methods this node serves or forwards, for the `Allow` field every
/// 405 must carry (RFC 9110 15.5.6). CONNECT and TRACE are refused; other
/// extension methods are forwarded too, but no list could name them all.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Answered here with an error status.
    Refuse(Refusal),
    /// Straight to the origin; nothing stored.
    Pass(PassReason),
    /// Look the key up; a miss or a stale copy is fetched and stored. A
    /// `Range` is answered from the stored (or arriving) whole object.
    Lookup,
    /// Serve a fresh stored object if there is one; otherwise pass (what
    /// comes back may not be stored, so it is not worth a fill).
    LookupElsePass(PassReason),
}

impl Route {
    /// Whether the request's body (if any) is not read before answering:
    /// the connection can then carry another request only if there was none.
    pub fn leaves_body_unread(req: &RequestHead) -> bool {
        !req.framing.is_empty()
    }
}

/// Routes a request head under its behaviour.
pub fn route(req: &RequestHead, hosts: &HostFilter, behavior: &Behavior) -> Route {
    if !hosts.serves(req.authority.as_deref()) {
        return Route::Refuse(Refusal::UnknownHost {
            status: hosts.unknown_status,
        });
    }
    match req.method {
        Method::Connect | Method::Trace => return Route::Refuse(Refusal::Method),
        Method::Options if req.target == "*" => return Route::Refuse(Refusal::OptionsAsterisk),
        _ => {}
    }
    // Extension methods are no behaviour's to allow: they pass.
    if !matches!(req.method, Method::Other(_)) && !behavior.allows(&req.method) {
        return Route::Refuse(Refusal::MethodNotAllowed);
    }
    if behavior.dynamic() {
        return Route::Pass(PassReason::Dynamic);
    }
    if !req.method.is_cacheable_method() {
        return Route::Pass(PassReason::Method);
    }
    if Route::leaves_body_unread(req) {
        return Route::Pass(PassReason::RequestBody);
    }
    // Nothing fetched for these may be stored: a fill would fetch the whole
    // object for nothing, so they go upstream as sent. A fresh stored copy
    // still answers them (storing is what is forbidden, not reuse).
    if RequestDirectives::parse(&req.headers).no_store {
        return Route::LookupElsePass(PassReason::RequestNoStore);
    }
    if req.method == Method::Head && req.headers.contains("authorization") {
        return Route::LookupElsePass(PassReason::HeadAuthorization);
    }
    Route::Lookup
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::head_from as head;
    use std::time::Duration;

    fn every() -> Behavior {
        crate::gateway::behavior::Behaviors::new(&[], Duration::ZERO)
            .expect("the default behaviour")
            .select("/")
            .clone()
    }

    fn any() -> HostFilter {
        HostFilter::new(&[], 421)
    }

    #[test]
    fn cacheable_requests_are_looked_up() {
        let r = head("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(route(&r, &any(), &every()), Route::Lookup);
        let r = head("HEAD /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(route(&r, &any(), &every()), Route::Lookup);
    }

    #[test]
    fn other_methods_and_bodies_pass() {
        for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE"] {
            let r = head(&format!("{m} /a HTTP/1.1\r\nHost: x\r\n\r\n"));
            assert_eq!(
                route(&r, &any(), &every()),
                Route::Pass(PassReason::Method),
                "{m}"
            );
        }
        let r = head("GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(
            route(&r, &any(), &every()),
            Route::Pass(PassReason::RequestBody)
        );
        let r = head("GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(
            route(&r, &any(), &every()),
            Route::Pass(PassReason::RequestBody)
        );
        assert!(Route::leaves_body_unread(&r));
    }

    #[test]
    fn a_range_is_answered_from_the_cache() {
        let r = head("GET /a HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n");
        assert_eq!(route(&r, &any(), &every()), Route::Lookup);
        // A body wins over the range: it must reach the origin.
        let r = head("GET /a HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\nContent-Length: 1\r\n\r\n");
        assert_eq!(
            route(&r, &any(), &every()),
            Route::Pass(PassReason::RequestBody)
        );
    }

    /// RFC 9111 5.2.1.5 (request no-store) and 3.5 (Authorization): what
    /// may not be stored is not filled; a HEAD then goes upstream as HEAD.
    #[test]
    fn requests_whose_response_cannot_be_stored_are_not_filled() {
        for m in ["GET", "HEAD"] {
            let r = head(&format!(
                "{m} /a HTTP/1.1\r\nHost: x\r\nCache-Control: max-age=0, No-Store\r\n\r\n"
            ));
            let want = Route::LookupElsePass(PassReason::RequestNoStore);
            assert_eq!(route(&r, &any(), &every()), want, "{m}");
        }
        let r = head("HEAD /a HTTP/1.1\r\nHost: x\r\nAuthorization: Basic eDp5\r\n\r\n");
        let want = Route::LookupElsePass(PassReason::HeadAuthorization);
        assert_eq!(route(&r, &any(), &every()), want);
        // A GET with Authorization is filled: the response may allow storing.
        let r = head("GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Basic eDp5\r\n\r\n");
        assert_eq!(route(&r, &any(), &every()), Route::Lookup);
        let r = head("GET /a HTTP/1.1\r\nHost: x\r\nCache-Control: no-cache\r\n\r\n");
        assert_eq!(route(&r, &any(), &every()), Route::Lookup);
        // A body still wins: it must reach the origin.
        let r =
            head("HEAD /a HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nContent-Length: 1\r\n\r\n");
        assert_eq!(
            route(&r, &any(), &every()),
            Route::Pass(PassReason::RequestBody)
        );
    }

    #[test]
    fn refusals() {
        let r = head("TRACE / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(route(&r, &any(), &every()), Route::Refuse(Refusal::Method));
        let r = head("CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n");
        assert_eq!(route(&r, &any(), &every()), Route::Refuse(Refusal::Method));
        let r = head("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            route(&r, &any(), &every()),
            Route::Refuse(Refusal::OptionsAsterisk)
        );
    }

    #[test]
    fn the_allow_list_names_exactly_the_methods_not_refused() {
        for m in ALLOWED_METHODS.split(", ") {
            let r = head(&format!("{m} /a HTTP/1.1\r\nHost: x\r\n\r\n"));
            assert!(
                !matches!(route(&r, &any(), &every()), Route::Refuse(_)),
                "{m}"
            );
        }
        for m in ["CONNECT", "TRACE"] {
            assert!(!ALLOWED_METHODS.contains(m), "{m}");
        }
    }

    #[test]
    fn hosts_are_matched_with_or_without_port() {
        let only = HostFilter::new(
            &[
                "Example.com".into(),
                "b.test:8080".into(),
                "c.test:80".into(),
            ],
            404,
        );
        // Listed and requested names compare in one normal form.
        assert!(only.serves(Some("c.test")));
        assert!(only.serves(Some("example.com")));
        assert!(only.serves(Some("example.com:81")));
        assert!(only.serves(Some("b.test:8080")));
        assert!(!only.serves(Some("b.test")));
        assert!(!only.serves(Some("evil.com")));
        assert!(!only.serves(None));
        assert!(only.serves(Some("[::1]:80")) == only.serves(Some("[::1]")));
        let r = head("GET / HTTP/1.1\r\nHost: evil.com\r\n\r\n");
        assert_eq!(
            route(&r, &only, &every()),
            Route::Refuse(Refusal::UnknownHost { status: 404 })
        );
        assert!(any().serves(None));
    }
}
