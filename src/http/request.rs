//! Request-head parsing and upstream re-encoding (RFC 9112 3). It owns the
//! request line, Host/authority resolution, the request limits and connection
//! persistence; target-form and framing rules live in the parent module. It
//! must never accept a head whose framing is ambiguous, never buffer past
//! `Limits`, and never forward hop-by-hop fields.

use super::headers::{self, Headers, is_tchar};
use super::target::normalise_authority;
use super::{
    BodyFraming, HEADROOM_BYTES, HEADROOM_FIELDS, Limits, Version, field_bytes, request_framing,
    split_target, valid_authority, with_header_slots,
};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Trace,
    Connect,
    Other(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Other(s) => s,
        }
    }

    pub fn is_cacheable_method(&self) -> bool {
        matches!(self, Method::Get | Method::Head)
    }

    /// Method names are case-sensitive (RFC 9110 9.1): "get" is not GET.
    pub fn from_token(s: &str) -> Method {
        KNOWN_METHODS
            .iter()
            .find(|m| m.as_str() == s)
            .cloned()
            .unwrap_or_else(|| Method::Other(s.to_owned()))
    }
}

const KNOWN_METHODS: [Method; 9] = [
    Method::Get,
    Method::Head,
    Method::Post,
    Method::Put,
    Method::Patch,
    Method::Delete,
    Method::Options,
    Method::Trace,
    Method::Connect,
];

#[derive(Clone, Debug)]
pub struct RequestHead {
    pub method: Method,
    /// Origin-form target as it must be sent upstream ("/x?y"), in its
    /// normal form (`http::target`), which the cache key is built from
    /// too; "*" for asterisk-form; the raw authority for CONNECT.
    pub target: String,
    /// The request-target as received, when it differs from `target`
    /// (absolute-form, or normalised), for the access log.
    pub received_target: Option<String>,
    pub version: Version,
    pub headers: Headers,
    /// Authority from an absolute-form target, else from Host, in its
    /// normal form (lower case, no default port: `http::target`). None
    /// only for HTTP/1.0 requests without Host.
    pub authority: Option<String>,
    pub framing: BodyFraming,
    pub keep_alive: bool,
    pub expect_continue: bool,
}

/// The target's and authority's buffers are reused (`crate::spare`).
impl Drop for RequestHead {
    fn drop(&mut self) {
        crate::spare::give_string(std::mem::take(&mut self.target));
        if let Some(authority) = self.authority.take() {
            crate::spare::give_string(authority);
        }
    }
}

impl RequestHead {
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(p, _)| p)
    }

    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// Writes the head for an upstream: request line, end-to-end headers,
    /// `extra`, blank line. Transfer-Encoding is hop-by-hop and is dropped, so
    /// a caller relaying a chunked body must pass its own framing in `extra`.
    pub fn encode_upstream(&self, extra: &[(&str, &str)], out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        self.headers.write_end_to_end(&[], out);
        for (name, value) in extra {
            headers::write_field(name, value.as_bytes(), out);
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    BadRequest(&'static str),
    HeaderTooLarge,
    UriTooLong,
    NotImplemented(&'static str),
    VersionNotSupported,
}

impl RequestError {
    pub fn status(&self) -> u16 {
        match self {
            RequestError::BadRequest(_) => 400,
            RequestError::HeaderTooLarge => 431,
            RequestError::UriTooLong => 414,
            RequestError::NotImplemented(_) => 501,
            RequestError::VersionNotSupported => 505,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::BadRequest(why) | RequestError::NotImplemented(why) => why,
            RequestError::HeaderTooLarge => "request header section too large",
            RequestError::UriTooLong => "request-target too long",
            RequestError::VersionNotSupported => "HTTP version not supported",
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.reason())
    }
}

impl std::error::Error for RequestError {}

/// Ok(None): need more bytes, and what has arrived is still within limits.
/// Ok(Some((head, n))): `n` is the length of the head in bytes.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    if target_exceeds(buf, limits.max_uri_bytes) {
        return Err(RequestError::UriTooLong);
    }
    // Never look past the limit: a complete head must fit inside the window.
    let window = &buf[..buf.len().min(limits.max_header_bytes)];
    let outcome = with_header_slots(limits.max_headers, window, |slots| {
        let mut req = httparse::Request::new(slots);
        match req.parse(window) {
            Ok(httparse::Status::Complete(n)) if has_bare_cr_or_lf(&window[..n]) => {
                Err(bad("a bare CR or LF in the request head"))
            }
            Ok(httparse::Status::Complete(n)) => build(&req).map(|head| Some((head, n))),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(httparse::Error::TooManyHeaders) => Err(RequestError::HeaderTooLarge),
            Err(httparse::Error::Version) => classify_version(window, limits),
            Err(httparse::Error::HeaderName) => Err(bad("invalid header field name or obs-fold")),
            Err(httparse::Error::HeaderValue) => Err(bad("invalid header field value")),
            Err(httparse::Error::NewLine) => Err(bad("invalid line ending")),
            Err(httparse::Error::Token) => Err(bad("invalid method or request-target")),
            Err(httparse::Error::Status) => Err(bad("malformed request line")),
        }
    });
    match outcome {
        // More than a full window arrived and the head is still incomplete.
        Ok(None) if buf.len() > limits.max_header_bytes => Err(RequestError::HeaderTooLarge),
        other => other,
    }
}

/// RFC 9112 2.2: a line ends in CRLF. A bare LF (which some parsers take
/// as a line end) or a bare CR (which others take as one, or as data) makes
/// a head that two parsers can read as different requests: refused. The
/// empty lines before a request line are skipped, as RFC 9112 2.2 allows,
/// whatever their endings: they frame nothing.
fn has_bare_cr_or_lf(head: &[u8]) -> bool {
    let head = request_line(head);
    head.iter().enumerate().any(|(i, &b)| match b {
        b'\n' => i == 0 || head[i - 1] != b'\r',
        b'\r' => head.get(i + 1) != Some(&b'\n'),
        _ => false,
    })
}

pub(super) fn bad(why: &'static str) -> RequestError {
    RequestError::BadRequest(why)
}

/// The request line after the empty lines RFC 9112 2.2 tells us to ignore.
fn request_line(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    &buf[start..]
}

/// Detects an over-long target while it is still arriving, so a slow client
/// cannot make us wait for (and buffer) the rest of it.
fn target_exceeds(buf: &[u8], max: usize) -> bool {
    let line = request_line(buf);
    let Some(method_end) = line.iter().position(|&b| !is_tchar(b)) else {
        return false;
    };
    if line[method_end] != b' ' {
        return false; // httparse reports the syntax error
    }
    let target = &line[method_end + 1..];
    let len = target
        .iter()
        .position(|&b| matches!(b, b' ' | b'\r' | b'\n'))
        .unwrap_or(target.len());
    len > max
}

/// httparse only knows 1.0 and 1.1. A higher HTTP/1 minor version is read
/// as HTTP/1.1, the highest we implement (RFC 9110 2.5, RFC 9112 2.3); any
/// other well-formed version deserves 505 rather than 400, and a version
/// still arriving deserves patience.
fn classify_version(
    window: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    const SHAPE: &[u8] = b"HTTP/d.d";
    let line = request_line(window);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method_and_target = parts.by_ref().take(2).map(|p| p.len() + 1).sum::<usize>();
    let rest = parts.next().unwrap_or_default();
    let end = rest.iter().position(|&b| b == b'\r' || b == b'\n');
    let version = &rest[..end.unwrap_or(rest.len())];
    let fits_shape = version.len() <= SHAPE.len()
        && version.iter().zip(SHAPE).all(|(&b, &s)| match s {
            b'd' => b.is_ascii_digit(),
            _ => b == s,
        });
    match (fits_shape, version.len() == SHAPE.len(), end) {
        (true, true, _) if version.starts_with(b"HTTP/1.") => {
            // The same head, saying HTTP/1.1: the same length, so every
            // offset and limit holds. httparse stops at 1.0 and 1.1, which
            // never come here, so this parses once more at most.
            let minor = window.len() - line.len() + method_and_target + SHAPE.len() - 1;
            let mut as_http11 = window.to_vec();
            as_http11[minor] = b'1';
            parse_request(&as_http11, limits)
        }
        (true, true, _) => Err(RequestError::VersionNotSupported),
        (true, false, None) => Ok(None),
        _ => Err(bad("invalid HTTP version")),
    }
}

fn build(req: &httparse::Request<'_, '_>) -> Result<RequestHead, RequestError> {
    let (Some(method), Some(raw_target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(bad("malformed request line"));
    };
    let method = Method::from_token(method);
    let version = Version::from_minor(minor);
    let mut headers = Headers::with_capacity(
        req.headers.len() + HEADROOM_FIELDS,
        field_bytes(req.headers) + HEADROOM_BYTES,
    );
    for h in req.headers.iter() {
        headers.push(h.name, h.value);
    }

    let (target, target_authority) = split_target(&method, raw_target)?;

    let authority = {
        let mut hosts = headers.get_all("host");
        let host = hosts.next();
        if hosts.next().is_some() {
            return Err(bad("more than one Host header"));
        }
        // RFC 9112 3.2: Host is validated even when an absolute-form target overrides it.
        let host = match host {
            Some(v) => Some(
                std::str::from_utf8(v)
                    .ok()
                    .filter(|h| valid_authority(h, false))
                    .ok_or(bad("invalid Host header"))?,
            ),
            None if version == Version::Http11 => return Err(bad("missing Host header")),
            None => None,
        };
        target_authority.or(host).map(normalise_authority)
    };
    let received_target = (raw_target != target).then(|| raw_target.to_owned());

    let framing = request_framing(&headers, version)?;
    let close = headers.has_token("connection", "close");
    let keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => !close && headers.has_token("connection", "keep-alive"),
    };
    // RFC 9110 10.1.1: a 100-continue expectation in HTTP/1.0 must be ignored.
    let expect_continue = version == Version::Http11 && headers.has_token("expect", "100-continue");

    Ok(RequestHead {
        method,
        target,
        received_target,
        version,
        headers,
        authority,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// A complete, valid request head from text, for unit tests of the layers
/// above the codec.
#[cfg(test)]
pub(crate) fn head_from(raw: &str) -> RequestHead {
    match parse_request(raw.as_bytes(), &Limits::default()) {
        Ok(Some((head, n))) if n == raw.len() => head,
        other => panic!("not one complete valid head: {other:?}: {raw:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::target::UnsafeTarget;

    fn parse(s: &str) -> Result<Option<(RequestHead, usize)>, RequestError> {
        parse_request(s.as_bytes(), &Limits::default())
    }

    fn head(s: &str) -> RequestHead {
        let (h, n) = parse(s).expect("valid").expect("complete");
        assert_eq!(n, s.len());
        h
    }

    fn err(s: &str) -> RequestError {
        parse(s).expect_err("must be rejected")
    }

    #[test]
    fn origin_form_get() {
        let h = head("GET /a/b?x=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nAccept: */*\r\n\r\n");
        assert!(h.method == Method::Get && h.version == Version::Http11);
        assert_eq!(h.target, "/a/b?x=1");
        assert_eq!((h.path(), h.query()), ("/a/b", Some("x=1")));
        assert_eq!(h.authority.as_deref(), Some("example.com:8080"));
        assert!(h.framing == BodyFraming::None && h.keep_alive && !h.expect_continue);
        assert_eq!(h.headers.get_str("accept"), Some("*/*"));
    }

    /// RFC 9112 2.2: CRLF only, in the request line and the fields.
    #[test]
    fn bare_cr_or_lf_is_refused() {
        for raw in [
            "GET / HTTP/1.1\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: 1\n\n",
            "GET / HTTP/1.1\r\nHost: a\r\n\n",
        ] {
            assert!(
                matches!(parse(raw), Err(RequestError::BadRequest(_))),
                "{raw:?}: {:?}",
                parse(raw)
            );
        }
    }

    #[test]
    fn pipelined_after_leading_empty_lines() {
        let buf = "\r\n\nGET /1 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: b\r\n\r\n";
        let (first, n) = parse(buf).expect("ok").expect("complete");
        let (second, m) = parse(&buf[n..]).expect("ok").expect("complete");
        assert!(first.target == "/1" && second.target == "/2" && n + m == buf.len());
    }

    #[test]
    fn every_prefix_is_partial_and_framing_is_read() {
        let full = "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
        for end in 0..full.len() {
            assert!(parse(&full[..end]).expect("ok").is_none(), "prefix {end}");
        }
        assert_eq!(head(full).framing, BodyFraming::ContentLength(3));
        let chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(head(chunked).framing, BodyFraming::Chunked);
        let listed = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n";
        assert_eq!(head(listed).framing, BodyFraming::ContentLength(5));
    }

    #[test]
    fn target_forms() {
        let h = head("GET http://Origin.Example:81/x?y HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!((h.target.as_str(), h.path()), ("/x?y", "/x"));
        assert_eq!(h.authority.as_deref(), Some("origin.example:81"));
        let h = head("GET HTTPS://h?q HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.target, "/?q");
        let h = head("GET http://[::1]:8080 HTTP/1.0\r\n\r\n");
        assert_eq!(h.target, "/");
        assert_eq!(h.authority.as_deref(), Some("[::1]:8080"));
        assert_eq!(head("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").path(), "*");
        let h = head("CONNECT Proxy.Example:443 HTTP/1.1\r\nHost: proxy.example:443\r\n\r\n");
        assert_eq!(h.authority.as_deref(), Some("proxy.example:443"));
    }

    /// RFC 3986 6.2.2 and RFC 9110 4.2.3, applied once at parse time: every
    /// layer above (route, cache key, upstream head) sees one normal form.
    #[test]
    fn targets_and_authorities_arrive_normalised() {
        let h = head("GET /x/../%62?q=%2e HTTP/1.1\r\nHost: Example.COM:80\r\n\r\n");
        assert_eq!((h.target.as_str(), h.path()), ("/b?q=%2e", "/b"));
        assert_eq!(h.received_target.as_deref(), Some("/x/../%62?q=%2e"));
        assert_eq!(h.authority.as_deref(), Some("example.com"));
        let h = head("GET /b HTTP/1.1\r\nHost: h:8080\r\n\r\n");
        assert_eq!(h.received_target, None);
        let h = head("GET http://H:80/a/./b HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(
            (h.target.as_str(), h.authority.as_deref()),
            ("/a/b", Some("h"))
        );
        assert_eq!(h.received_target.as_deref(), Some("http://H:80/a/./b"));
        let mut out = Vec::new();
        h.encode_upstream(&[], &mut out);
        assert!(out.starts_with(b"GET /a/b HTTP/1.1\r\n"));
        let unsafe_targets = [
            ("/../x", UnsafeTarget::AboveRoot),
            ("/a%2F..%2Fb", UnsafeTarget::EncodedSlashAtDotSegment),
            ("/a%00", UnsafeTarget::EncodedControl),
            ("/a\\b", UnsafeTarget::Backslash),
            ("/%FF", UnsafeTarget::InvalidUtf8),
            ("/%G0", UnsafeTarget::MalformedEscape),
        ];
        for (target, why) in unsafe_targets {
            for form in [target.to_string(), format!("http://h{target}")] {
                let e = err(&format!("GET {form} HTTP/1.1\r\nHost: h\r\n\r\n"));
                assert_eq!(e, RequestError::BadRequest(why.message()), "{form}");
            }
        }
        // Forms that are not origin-form stay as they came.
        assert_eq!(head("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").target, "*");
    }

    #[test]
    fn persistence_and_expect() {
        let h = head("GET / HTTP/1.0\r\n\r\n");
        assert!(h.version == Version::Http10 && h.authority.is_none() && !h.keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(head("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n\r\n").expect_continue);
        assert!(!head("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    }

    #[test]
    fn rejections_carry_the_right_status() {
        // `|` stands for CRLF so that every case fits on one line.
        let status = |s: &str| err(&s.replace('|', "\r\n")).status();
        let framing_400 = [
            "Content-Length: 1|Transfer-Encoding: chunked",
            "Content-Length: 3|Content-Length: 4",
            "Content-Length: 3, 4",
            "Content-Length: +3",
            "Content-Length: 0x3",
            "Transfer-Encoding: chunked, gzip",
            "Transfer-Encoding: gzip",
            "Transfer-Encoding: chunked, chunked",
        ];
        for f in framing_400 {
            let req = format!("POST / HTTP/1.1|Host: h|{f}||");
            assert_eq!(status(&req), 400, "{f}");
        }
        let cases = [
            ("GET / HTTP/1.1|Host: h|X: a| folded||", 400),
            ("POST / HTTP/1.0|Transfer-Encoding: chunked||", 400),
            ("GET / HTTP/1.1||", 400),
            ("GET / HTTP/1.1|Host: a|host: a||", 400),
            ("GET / HTTP/1.1|Host: ||", 400),
            ("GET / HTTP/1.1|Host: a,b||", 400),
            ("GET / HTTP/1.1|Host: a:70000||", 400),
            ("GET / HTTP/1.1|Host: h|X: a\0b||", 400),
            ("GET / HTTP/1.1|Host: h|X: a\rb||", 400),
            ("GET / HTTP/1.1|Host: h|X : v||", 400),
            ("GET  / HTTP/1.1|Host: h||", 400),
            ("GET /||", 400),
            ("GET / http/1.1|Host: h||", 400),
            ("GET / HTTP/1.1x|Host: h||", 400),
            ("GET / HTTP/22", 400),
            ("G(T / HTTP/1.1|Host: h||", 400),
            ("GET * HTTP/1.1|Host: h||", 400),
            ("CONNECT / HTTP/1.1|Host: h||", 400),
            ("GET ftp://h/ HTTP/1.1|Host: h||", 400),
            ("GET http:///x HTTP/1.1|Host: h||", 400),
            ("GET http://u@h/ HTTP/1.1|Host: h||", 400),
            ("GET h/x HTTP/1.1|Host: h||", 400),
            ("GET /#frag HTTP/1.1|Host: h||", 400),
            ("GET http://h/ HTTP/1.1||", 400),
            (
                "POST / HTTP/1.1|Host: h|Transfer-Encoding: gzip, chunked||",
                501,
            ),
            ("GET / HTTP/2.0|Host: h||", 505),
            ("GET / HTTP/0.9|Host: h||", 505),
            ("GET / HTTP/3.1|Host: h||", 505),
            ("GET / HTTP/1.2||", 400),
            ("GET / HTTP/2.0", 505),
        ];
        for (req, code) in cases {
            assert_eq!(status(req), code, "{req:?}");
        }
        let both =
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(err(both).reason(), "Content-Length with Transfer-Encoding");
        let gzip = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(
            err(gzip),
            RequestError::NotImplemented("unsupported transfer-coding")
        );
        assert_eq!(err("GET / HTTP/2.0"), RequestError::VersionNotSupported);
        assert!(matches!(parse("GET / HTTP/2"), Ok(None)));
        assert!(RequestError::UriTooLong.to_string().starts_with("414 "));
    }

    /// RFC 9110 2.5 and RFC 9112 2.3: a higher minor version of HTTP/1 is
    /// processed as HTTP/1.1, the highest this codec implements.
    #[test]
    fn higher_http1_minor_versions_are_http11() {
        for minor in 2..=9 {
            let raw = format!("\r\nGET /a/../b HTTP/1.{minor}\r\nHost: H\r\n\r\nGET /next");
            let (h, n) = parse(&raw).expect("valid").expect("complete");
            assert_eq!(n, raw.len() - "GET /next".len(), "1.{minor}");
            assert_eq!(h.version, Version::Http11);
            assert!(h.keep_alive, "persistent by default, as in 1.1");
            assert_eq!(
                (h.target.as_str(), h.authority.as_deref()),
                ("/b", Some("h"))
            );
        }
        // Still arriving: wait for the rest, as for 1.1.
        assert!(matches!(parse("GET / HTTP/1.2"), Ok(None)));
        assert!(matches!(parse("GET / HTTP/1.2\r\nHost: h\r\n"), Ok(None)));
        // Every other rule still applies to what follows the version.
        let e = err("GET / HTTP/1.2\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n");
        assert_eq!(e.status(), 400);
        let cut = Limits {
            max_header_bytes: 24,
            ..Limits::default()
        };
        let e = parse_request(b"GET / HTTP/1.2\r\nHost: hhhhhhhhhhh", &cut);
        assert_eq!(e.expect_err("over the limit"), RequestError::HeaderTooLarge);
    }

    #[test]
    fn header_limits_apply_before_the_head_completes() {
        let limits = Limits {
            max_header_bytes: 256,
            ..Limits::default()
        };
        let mut slow = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        while slow.len() <= 256 {
            slow.push_str("X-Pad: aaaaaaaaaaaaaaaa\r\n");
        }
        let e = parse_request(slow.as_bytes(), &limits).expect_err("too large");
        assert_eq!(e, RequestError::HeaderTooLarge);
        assert_eq!(e.status(), 431);
        let cut = Limits {
            max_header_bytes: 12,
            ..Limits::default()
        };
        let e = parse_request(b"GET / HTTP/2.0\r\n", &cut).expect_err("window ends mid-version");
        assert_eq!(e, RequestError::HeaderTooLarge);
        let exact = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "a".repeat(224)
        );
        assert_eq!(exact.len(), 256);
        assert!(
            parse_request(exact.as_bytes(), &limits)
                .expect("fits")
                .is_some()
        );
        let mut many = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 1..100 {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        assert_eq!(head(&format!("{many}\r\n")).headers.len(), 100);
        assert_eq!(
            err(&format!("{many}X: v\r\n\r\n")),
            RequestError::HeaderTooLarge
        );
    }

    #[test]
    fn uri_limit_applies_while_incomplete() {
        let long = format!("GET /{}", "a".repeat(8192));
        assert_eq!(err(&long), RequestError::UriTooLong);
        assert_eq!(err(&long).status(), 414);
        assert_eq!(
            err(&format!("\r\n{long} HTTP/1.1\r\n")),
            RequestError::UriTooLong
        );
        let fits = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(8191));
        assert_eq!(head(&fits).target.len(), 8192);
    }

    #[test]
    fn methods() {
        for m in KNOWN_METHODS {
            assert_eq!(Method::from_token(m.as_str()), m);
        }
        assert_eq!(Method::from_token("get"), Method::Other("get".into()));
        assert!(Method::Get.is_cacheable_method() && Method::Head.is_cacheable_method());
        assert!(!Method::Post.is_cacheable_method());
        let purge = head("PURGE /x HTTP/1.1\r\nHost: h\r\n\r\n").method.clone();
        assert_eq!(purge.as_str(), "PURGE");
    }

    #[test]
    fn encode_upstream_strips_hop_by_hop() {
        let mut h = head(
            "GET http://h/p?q HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
             Keep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nAccept: */*\r\n\r\n",
        );
        h.headers.set("Host", "origin.internal");
        let mut out = Vec::new();
        h.encode_upstream(&[("Via", "1.1 edgeslab")], &mut out);
        let expected = "GET /p?q HTTP/1.1\r\nHost: origin.internal\r\nAccept: */*\r\n\
                        Via: 1.1 edgeslab\r\n\r\n";
        assert_eq!(String::from_utf8(out).expect("ascii"), expected);
        assert_eq!(h.headers.len(), 7, "encoding leaves the head untouched");
    }
}
