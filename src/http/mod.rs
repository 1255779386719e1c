//! HTTP/1.1 message codec: turns bytes into request/response heads and
//! framing decisions, and heads back into bytes. This file owns what both
//! directions share: versions, limits, the body-length rules of RFC 9112 6
//! and request-target/authority syntax (their normal form is `target`'s).
//! Nothing in this module may perform I/O, block, allocate without a bound
//! set by `Limits`, or know anything about caching policy, sockets or the
//! runtime.

pub mod chunked;
pub mod conditional;
pub mod date;
pub mod headers;
pub mod range;
pub mod request;
pub mod response;
pub mod target;

pub use chunked::{ChunkError, ChunkedDecoder, LAST_CHUNK, encode_chunk_header};
pub use headers::{Headers, is_hop_by_hop};
pub use request::{Method, RequestError, RequestHead, parse_request};
pub use response::{
    ResponseError, ResponseHead, parse_response, reason_phrase, status_has_no_body,
};

use headers::{list_elements, trim_ows};

/// Protocol versions we speak; anything else is refused at parse time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(&self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }

    /// The protocol version alone ("1.1"), as `Via`'s received-protocol
    /// writes it for HTTP (RFC 9110 7.6.3).
    pub fn number(&self) -> &'static str {
        match self {
            Version::Http10 => "1.0",
            Version::Http11 => "1.1",
        }
    }

    /// httparse reports the minor digit only; it never yields anything but 0 or 1.
    fn from_minor(minor: u8) -> Version {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

/// Framing of a message body as declared by its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    ContentLength(u64),
    Chunked,
    /// Responses only: the body runs until the peer closes the connection.
    CloseDelimited,
}

impl BodyFraming {
    /// Whether the head already says there is no body byte to read.
    pub fn is_empty(self) -> bool {
        matches!(self, BodyFraming::None | BodyFraming::ContentLength(0))
    }
}

/// Bounds on what a peer may make us buffer before we see a complete head.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16384,
            max_uri_bytes: 8192,
            max_headers: 100,
        }
    }
}

/// Most heads fit in this many slots; keeping them on the stack avoids a heap
/// allocation on every (re)parse of a head.
const STACK_HEADER_SLOTS: usize = 64;

/// Runs `f` with header slots for parsing `window`, so that httparse itself
/// enforces the header-count limit `max` via `TooManyHeaders`: exactly
/// `max` slots, or fewer on the stack when the head at the start of
/// `window` has too few lines to hold more fields than that (each field
/// takes a line). Only the first head's lines count: pipelined requests
/// behind it do not push it off the stack.
fn with_header_slots<'b, R>(
    max: usize,
    window: &[u8],
    f: impl FnOnce(&mut [httparse::Header<'b>]) -> R,
) -> R {
    let fits = || {
        let mut lines = 0;
        let mut line_start = 0;
        for at in memchr::memchr_iter(b'\n', window) {
            let line = &window[line_start..at];
            // An empty line after the first ends the head (a CRLF before
            // the request line is not its end).
            if lines > 0 && (line.is_empty() || line == b"\r") {
                return true;
            }
            lines += 1;
            if lines > STACK_HEADER_SLOTS {
                return false;
            }
            line_start = at + 1;
        }
        true
    };
    if max <= STACK_HEADER_SLOTS || fits() {
        let mut slots = [httparse::EMPTY_HEADER; STACK_HEADER_SLOTS];
        f(&mut slots[..max.min(STACK_HEADER_SLOTS)])
    } else {
        let mut slots = vec![httparse::EMPTY_HEADER; max];
        f(&mut slots)
    }
}

/// Room a parsed head's fields keep for what this node adds or replaces
/// before sending it on (`Age`, `Via`, `Cache-Status`, framing, …), so that
/// doing so does not grow the buffers.
const HEADROOM_FIELDS: usize = 8;
const HEADROOM_BYTES: usize = 256;

/// The bytes of the names and values of parsed fields, so that a `Headers`
/// holding them is allocated once.
fn field_bytes(fields: &[httparse::Header<'_>]) -> usize {
    fields.iter().map(|h| h.name.len() + h.value.len()).sum()
}

/// Splits a request-target (RFC 9112 3.2) into what is sent upstream — the
/// normal form of its origin-form part (`target`), also the cache key's —
/// and the authority it names, if any.
fn split_target<'t>(
    method: &Method,
    raw: &'t str,
) -> Result<(String, Option<&'t str>), RequestError> {
    // A fragment is never part of a request-target; letting one through
    // would give two spellings of the same cache key.
    if raw.contains('#') {
        return Err(request::bad("fragment in request-target"));
    }
    if *method == Method::Connect {
        return if valid_authority(raw, true) {
            Ok((raw.to_owned(), Some(raw)))
        } else {
            Err(request::bad("CONNECT needs an authority-form target"))
        };
    }
    if raw.starts_with('/') {
        return Ok((normalised(raw)?, None));
    }
    if raw == "*" {
        return if *method == Method::Options {
            Ok((raw.to_owned(), None))
        } else {
            Err(request::bad("asterisk-form target is only for OPTIONS"))
        };
    }
    let absolute = raw.split_once("://").and_then(|(scheme, rest)| {
        let known = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        (known && valid_authority(authority, false)).then(|| {
            let path = if tail.starts_with('/') {
                tail.to_owned()
            } else {
                format!("/{tail}")
            };
            (path, Some(authority))
        })
    });
    let (path, authority) = absolute.ok_or(request::bad("invalid absolute-form target"))?;
    Ok((normalised(&path)?, authority))
}

fn normalised(origin_form: &str) -> Result<String, RequestError> {
    target::normalise_origin_form(origin_form)
        .map(|target| crate::spare::string_of(&target))
        .map_err(|unsafe_target| request::bad(unsafe_target.message()))
}

/// `uri-host [":" port]` (RFC 9110 4.2.3, 7.2) as found in Host, absolute-form
/// and CONNECT targets. Userinfo is refused (RFC 9110 4.2.4) and so is an
/// empty host, which no http(s) URI may have.
fn valid_authority(s: &str, require_port: bool) -> bool {
    let parts = match s.strip_prefix('[') {
        Some(rest) => rest.split_once(']').and_then(|(literal, after)| {
            let port = if after.is_empty() {
                None
            } else {
                Some(after.strip_prefix(':')?)
            };
            Some((valid_ip_literal(literal), port))
        }),
        None => {
            let (host, port) = s.split_once(':').map_or((s, None), |(h, p)| (h, Some(p)));
            Some((valid_reg_name(host.as_bytes()), port))
        }
    };
    let Some((host_ok, port)) = parts else {
        return false;
    };
    let port_ok = match port {
        None | Some("") => !require_port,
        Some(p) => {
            p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| n <= 65535)
        }
    };
    host_ok && port_ok
}

/// IPv6 (or IPv4-embedded IPv6) literal without brackets; IPvFuture is not
/// something any origin we front will use.
fn valid_ip_literal(s: &str) -> bool {
    s.contains(':')
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

/// reg-name / IPv4address. A comma, although a sub-delim, is refused: it makes
/// one Host value read as two to anything that folds repeated fields.
fn valid_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b'%' => {
                let hex = host.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+;=".contains(&b) => {}
            _ => return false,
        }
        i += 1;
    }
    !host.is_empty()
}

// ---- Message body length (RFC 9112 6), shared by both directions ----

/// The message's Content-Length, if any. RFC 9110 8.6 lets a recipient accept
/// repeated or list-valued lengths only when every value is identical.
fn content_length(headers: &Headers) -> Result<Option<u64>, &'static str> {
    let mut found: Option<u64> = None;
    for value in headers.get_all("content-length") {
        for part in value.split(|&b| b == b',') {
            let part = trim_ows(part);
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err("invalid Content-Length");
            }
            // All-digit ASCII is valid UTF-8; parse fails only on overflow.
            let n = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or("invalid Content-Length")?;
            match found {
                Some(prev) if prev != n => return Err("conflicting Content-Length values"),
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// Summary of every Transfer-Encoding field line, in order.
#[derive(Debug, Default, PartialEq, Eq)]
struct TransferCodings {
    present: bool,
    chunked_final: bool,
    chunked_count: usize,
    /// Codings other than chunked; we can frame around them but never decode them.
    others: usize,
}

fn transfer_codings(headers: &Headers) -> TransferCodings {
    let mut tc = TransferCodings::default();
    for value in headers.get_all("transfer-encoding") {
        tc.present = true;
        for element in list_elements(value) {
            // Parameters never change which coding is meant.
            let name = element.split(|&b| b == b';').next().map(trim_ows);
            let chunked = name.is_some_and(|n| n.eq_ignore_ascii_case(b"chunked"));
            if chunked {
                tc.chunked_count += 1;
            } else {
                tc.others += 1;
            }
            tc.chunked_final = chunked;
        }
    }
    tc
}

/// RFC 9112 6.1/6.3 for requests. Ambiguity is always refused rather than
/// resolved, because we and the origin must agree on where the body ends.
fn request_framing(headers: &Headers, version: Version) -> Result<BodyFraming, RequestError> {
    let te = transfer_codings(headers);
    if !te.present {
        let cl = content_length(headers).map_err(RequestError::BadRequest)?;
        return Ok(cl.map_or(BodyFraming::None, BodyFraming::ContentLength));
    }
    if headers.contains("content-length") {
        return Err(request::bad("Content-Length with Transfer-Encoding"));
    }
    if version == Version::Http10 {
        return Err(request::bad("Transfer-Encoding in an HTTP/1.0 request"));
    }
    if !te.chunked_final {
        return Err(request::bad("Transfer-Encoding without final chunked"));
    }
    if te.chunked_count > 1 {
        return Err(request::bad("chunked applied more than once"));
    }
    if te.others > 0 {
        return Err(RequestError::NotImplemented("unsupported transfer-coding"));
    }
    Ok(BodyFraming::Chunked)
}

/// RFC 9112 6.3 for a response that may have a body; the flag says whether
/// the framing is trustworthy enough to reuse the connection afterwards.
fn response_framing(
    headers: &Headers,
    version: Version,
) -> Result<(BodyFraming, bool), ResponseError> {
    let te = transfer_codings(headers);
    if te.present {
        // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
        if version == Version::Http10 {
            return Err(response::malformed(
                "Transfer-Encoding in an HTTP/1.0 response",
            ));
        }
        if te.chunked_count > 1 {
            return Err(response::malformed("chunked applied more than once"));
        }
        // RFC 9112 6.1 lets a recipient read TE over CL, but a response
        // with both is one two parsers can frame differently (a smuggling
        // vector when relayed): refused as an invalid response (a 502,
        // never stored, the connection dropped).
        if headers.contains("content-length") {
            return Err(response::malformed("Content-Length with Transfer-Encoding"));
        }
        return Ok(if te.chunked_final {
            (BodyFraming::Chunked, true)
        } else {
            (BodyFraming::CloseDelimited, false)
        });
    }
    match content_length(headers).map_err(response::malformed)? {
        Some(n) => Ok((BodyFraming::ContentLength(n), true)),
        None => Ok((BodyFraming::CloseDelimited, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_strings() {
        assert_eq!(Version::Http10.as_str(), "HTTP/1.0");
        assert_eq!(Version::Http11.as_str(), "HTTP/1.1");
        assert_eq!(
            (Version::Http10.number(), Version::Http11.number()),
            ("1.0", "1.1")
        );
        assert_eq!(Version::from_minor(0), Version::Http10);
        assert_eq!(Version::from_minor(1), Version::Http11);
    }

    #[test]
    fn default_limits() {
        let l = Limits::default();
        assert_eq!(l.max_header_bytes, 16384);
        assert_eq!(l.max_uri_bytes, 8192);
        assert_eq!(l.max_headers, 100);
    }

    #[test]
    fn header_slots_match_requested_count() {
        let short = b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\n";
        assert_eq!(with_header_slots(3, short, |s| s.len()), 3);
        assert_eq!(with_header_slots(0, short, |s| s.len()), 0);
        // Three lines cannot hold more than 64 fields: the stack serves.
        assert_eq!(
            with_header_slots(500, short, |s| s.len()),
            STACK_HEADER_SLOTS
        );
        let long = b"A: 1\r\n".repeat(STACK_HEADER_SLOTS + 1);
        assert_eq!(with_header_slots(500, &long, |s| s.len()), 500);
    }

    #[test]
    fn authority_syntax() {
        let good = [
            "example.com",
            "EXAMPLE.com:8080",
            "127.0.0.1:80",
            "h:",
            "[::1]",
            "[2001:db8::1]:443",
            "a%2Db",
            "x_y~z",
        ];
        for a in good {
            assert!(valid_authority(a, false), "{a}");
        }
        let bad = [
            "", ":80", "a b", "a/b", "a,b", "u@h", "h:x", "h:65536", "h:000080", "h:1:2", "[zz]",
            "[]", "[::1", "[::1]x", "a%2", "a%zz", "h\\x",
        ];
        for a in bad {
            assert!(!valid_authority(a, false), "{a}");
        }
        assert!(valid_authority("h:443", true) && valid_authority("[::1]:1", true));
        assert!(!valid_authority("h", true) && !valid_authority("h:", true));
    }

    #[test]
    fn content_length_rules() {
        let cl = |vals: &[&str]| {
            let mut h = Headers::new();
            for v in vals {
                h.push("Content-Length", *v);
            }
            content_length(&h)
        };
        assert_eq!(cl(&[]), Ok(None));
        assert_eq!(cl(&["42"]), Ok(Some(42)));
        assert_eq!(cl(&["5, 5"]), Ok(Some(5)));
        assert_eq!(cl(&["5", "5"]), Ok(Some(5)));
        assert!(cl(&["5", "6"]).is_err());
        assert!(cl(&["5, 6"]).is_err());
        for bad in [
            "",
            "+5",
            "-1",
            "0x10",
            "1 2",
            "5,",
            "abc",
            "99999999999999999999",
        ] {
            assert!(cl(&[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn transfer_coding_summary() {
        let tc = |vals: &[&str]| {
            let mut h = Headers::new();
            for v in vals {
                h.push("Transfer-Encoding", *v);
            }
            transfer_codings(&h)
        };
        assert_eq!(tc(&[]), TransferCodings::default());
        let c = tc(&["Chunked"]);
        assert!(c.present && c.chunked_final && c.chunked_count == 1 && c.others == 0);
        let c = tc(&["gzip", "chunked"]);
        assert!(c.chunked_final && c.others == 1);
        let c = tc(&["chunked, gzip"]);
        assert!(!c.chunked_final && c.chunked_count == 1);
        let c = tc(&[""]);
        assert!(c.present && !c.chunked_final && c.chunked_count == 0);
        assert!(tc(&["chunked;x=1"]).chunked_final);
    }
}
