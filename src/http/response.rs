//! Response-head parsing (from origins) and encoding (toward viewers). It
//! owns the status line, bodyless-status rules and upstream connection reuse;
//! the Content-Length / Transfer-Encoding rules live in the parent module. It
//! must never guess a body length it cannot prove, and never mark a
//! connection reusable when its framing was doubtful.

use super::headers::{Headers, list_elements, trim_ows};
use super::{
    BodyFraming, HEADROOM_BYTES, HEADROOM_FIELDS, Limits, Version, field_bytes, response_framing,
    with_header_slots,
};
use std::borrow::Cow;
use std::fmt;

#[derive(Clone, Debug)]
pub struct ResponseHead {
    pub status: u16,
    /// The reason phrase: the standard one is not copied.
    pub reason: Cow<'static, str>,
    pub version: Version,
    pub headers: Headers,
    pub framing: BodyFraming,
    /// Whether the upstream connection may be reused after the body.
    pub keep_alive: bool,
}

impl ResponseHead {
    pub fn new(status: u16) -> Self {
        ResponseHead {
            status,
            reason: Cow::Borrowed(reason_phrase(status)),
            version: Version::Http11,
            headers: Headers::new(),
            framing: BodyFraming::None,
            keep_alive: true,
        }
    }

    /// A head with `status` and the given fields, in order; no body framing.
    pub fn with_fields(status: u16, fields: &[(&str, &str)]) -> Self {
        let mut head = Self::new(status);
        head.headers = Headers::from_fields(fields);
        head
    }

    /// "HTTP/1.1 200 OK\r\n" + headers + "\r\n"; viewers always see HTTP/1.1
    /// because that is what we implement, whatever the origin spoke.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_with(Version::Http11, out);
    }

    /// Like `encode`, but the status line keeps the version the head came
    /// with: for the cache, whose hits name the origin's version in `Via`.
    pub fn encode_as_received(&self, out: &mut Vec<u8>) {
        self.encode_with(self.version, out);
    }

    /// The length `encode` writes.
    pub fn encoded_len(&self) -> usize {
        // "HTTP/1.1 200 " + reason + CRLF + fields + CRLF.
        13 + self.reason.len() + 2 + self.headers.encoded_len() + 2
    }

    fn encode_with(&self, version: Version, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        self.encode_status_line(version, out);
        self.headers.write_to(out);
        out.extend_from_slice(b"\r\n");
    }

    /// The status line and the end-to-end fields less those `skip` names
    /// (see `Headers::write_end_to_end`), without the blank line that ends
    /// a head, so that more fields may follow.
    pub fn encode_end_to_end_prefix(&self, skip: &[&str], out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        self.encode_status_line(Version::Http11, out);
        self.headers.write_end_to_end(skip, out);
    }

    fn encode_status_line(&self, version: Version, out: &mut Vec<u8>) {
        debug_assert!((100..=999).contains(&self.status), "status {}", self.status);
        out.extend_from_slice(version.as_str().as_bytes());
        out.push(b' ');
        let s = self.status;
        out.extend_from_slice(&[
            b'0' + (s / 100 % 10) as u8,
            b'0' + (s / 10 % 10) as u8,
            b'0' + (s % 10) as u8,
            b' ',
        ]);
        // The reason may have come from an origin or from code; neither may
        // end the status line early.
        out.extend(self.reason.bytes().map(|b| match b {
            b'\r' | b'\n' | 0 => b' ',
            other => other,
        }));
        out.extend_from_slice(b"\r\n");
    }

    /// True when the body carries a transfer coding other than chunked (e.g.
    /// "gzip, chunked"). We can find the end of such a body but cannot
    /// decode it, so it must not be stored or served as if it were plain.
    pub fn has_non_chunked_transfer_coding(&self) -> bool {
        super::transfer_codings(&self.headers).others > 0
    }

    /// The transfer codings other than chunked, in the order applied, as a
    /// list value (`gzip` for `gzip, chunked`); None when there are none. A
    /// relay that re-frames the body must name them again for its hop.
    pub fn non_chunked_transfer_codings(&self) -> Option<Vec<u8>> {
        let mut list = Vec::new();
        for value in self.headers.get_all("transfer-encoding") {
            for element in list_elements(value) {
                let name = element.split(|&b| b == b';').next().map(trim_ows);
                if name.is_some_and(|n| n.eq_ignore_ascii_case(b"chunked")) {
                    continue;
                }
                if !list.is_empty() {
                    list.extend_from_slice(b", ");
                }
                list.extend_from_slice(element);
            }
        }
        (!list.is_empty()).then_some(list)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseError {
    Malformed(&'static str),
    HeaderTooLarge,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Malformed(why) => write!(f, "malformed response: {why}"),
            ResponseError::HeaderTooLarge => f.write_str("response header section too large"),
        }
    }
}

impl std::error::Error for ResponseError {}

pub(super) fn malformed(why: &'static str) -> ResponseError {
    ResponseError::Malformed(why)
}

/// Ok(None): need more bytes (still within limits). Ok(Some((head, n))): `n`
/// is the length of the head. `request_was_head`: a response to HEAD has no body.
pub fn parse_response(
    buf: &[u8],
    limits: &Limits,
    request_was_head: bool,
) -> Result<Option<(ResponseHead, usize)>, ResponseError> {
    let window = &buf[..buf.len().min(limits.max_header_bytes)];
    let mut config = httparse::ParserConfig::default();
    // RFC 9112 5.2 lets a user agent accept obs-fold; origins still send it.
    config.allow_obsolete_multiline_headers_in_responses(true);
    with_header_slots(limits.max_headers, window, |slots| {
        let mut resp = httparse::Response::new(slots);
        match config.parse_response(&mut resp, window) {
            Ok(httparse::Status::Complete(n)) => {
                build(&resp, request_was_head).map(|head| Some((head, n)))
            }
            // More than a full window arrived and the head is still incomplete.
            Ok(httparse::Status::Partial) if buf.len() > limits.max_header_bytes => {
                Err(ResponseError::HeaderTooLarge)
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(httparse::Error::TooManyHeaders) => Err(ResponseError::HeaderTooLarge),
            Err(httparse::Error::Version) => Err(malformed("unsupported HTTP version")),
            Err(httparse::Error::Status) => Err(malformed("invalid status line")),
            Err(httparse::Error::HeaderName) => Err(malformed("invalid header field name")),
            Err(httparse::Error::HeaderValue) => Err(malformed("invalid header field value")),
            Err(httparse::Error::NewLine) => Err(malformed("invalid line ending")),
            Err(httparse::Error::Token) => Err(malformed("invalid token")),
        }
    })
}

fn build(
    resp: &httparse::Response<'_, '_>,
    request_was_head: bool,
) -> Result<ResponseHead, ResponseError> {
    let (Some(minor), Some(status)) = (resp.version, resp.code) else {
        return Err(malformed("invalid status line"));
    };
    // RFC 9110 15: codes outside 100..=599 are invalid.
    if !(100..=599).contains(&status) {
        return Err(malformed("status code out of range"));
    }
    let version = Version::from_minor(minor);
    let mut headers = Headers::with_capacity(
        resp.headers.len() + HEADROOM_FIELDS,
        field_bytes(resp.headers) + HEADROOM_BYTES,
    );
    for h in resp.headers.iter() {
        // httparse leaves obs-fold line breaks in the value; RFC 9112 5.2
        // says to replace them with SP before interpreting the field.
        headers.push_unfolded(h.name, h.value);
    }

    let close = headers.has_token("connection", "close");
    let mut keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => !close && headers.has_token("connection", "keep-alive"),
    };
    let bodyless = request_was_head || status_has_no_body(status);
    let framing = if bodyless {
        BodyFraming::None
    } else {
        let (framing, reusable) = response_framing(&headers, version)?;
        keep_alive &= reusable;
        framing
    };

    Ok(ResponseHead {
        status,
        reason: match resp.reason.unwrap_or_default() {
            r if r == reason_phrase(status) => Cow::Borrowed(reason_phrase(status)),
            r => Cow::Owned(r.to_owned()),
        },
        version,
        headers,
        framing,
        keep_alive,
    })
}

/// Statuses whose responses never carry a body, whatever their headers say
/// (RFC 9110 6.4.1: 1xx, 204 and 304).
pub fn status_has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str, head: bool) -> Result<Option<(ResponseHead, usize)>, ResponseError> {
        parse_response(s.as_bytes(), &Limits::default(), head)
    }

    fn resp(s: &str) -> ResponseHead {
        let (h, n) = parse(s, false).expect("valid").expect("complete");
        assert_eq!(n, s.len());
        h
    }

    fn framing(s: &str) -> (BodyFraming, bool) {
        let h = resp(s);
        (h.framing, h.keep_alive)
    }

    #[test]
    fn content_length_and_chunked() {
        let h = resp("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: o\r\n\r\n");
        assert_eq!(
            (h.status, h.reason.as_ref(), h.version),
            (200, "OK", Version::Http11)
        );
        assert_eq!(
            (h.framing, h.keep_alive),
            (BodyFraming::ContentLength(12), true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n"),
            (BodyFraming::ContentLength(7), true)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (BodyFraming::Chunked, true)
        );
    }

    #[test]
    fn transfer_encoding_edge_cases() {
        // Both framings at once: refused (the proxy answers 502).
        let both = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(parse_response(both.as_bytes(), &Limits::default(), false).is_err());
        let gzip = resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(
            (gzip.framing, gzip.keep_alive),
            (BodyFraming::CloseDelimited, false)
        );
        assert!(gzip.has_non_chunked_transfer_coding());
        let chunked_last = resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(chunked_last.framing, BodyFraming::Chunked);
        assert!(chunked_last.has_non_chunked_transfer_coding());
        assert!(!ResponseHead::new(200).has_non_chunked_transfer_coding());
        let codings = |h: &ResponseHead| h.non_chunked_transfer_codings().map(String::from_utf8);
        assert_eq!(codings(&chunked_last), Some(Ok("gzip".into())));
        assert_eq!(codings(&gzip), Some(Ok("gzip".into())));
        let layered = resp(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: deflate;x=1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        );
        assert_eq!(codings(&layered), Some(Ok("deflate;x=1, gzip".into())));
        let plain = resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(codings(&plain), None);
        let twice =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse(twice, false).expect_err("bad").clone(),
            malformed("chunked applied more than once")
        );
        let old = "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            parse(old, false),
            Err(ResponseError::Malformed(_))
        ));
    }

    #[test]
    fn close_delimited_without_framing_headers() {
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\n\r\n"),
            (BodyFraming::CloseDelimited, false)
        );
        assert_eq!(
            framing("HTTP/1.0 200 OK\r\n\r\n"),
            (BodyFraming::CloseDelimited, false)
        );
    }

    #[test]
    fn bad_content_length_is_malformed() {
        for cl in ["3, 4", "abc", "-1", ""] {
            let s = format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\n");
            assert!(
                matches!(parse(&s, false), Err(ResponseError::Malformed(_))),
                "{cl:?}"
            );
        }
        let dup = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert!(matches!(
            parse(dup, false),
            Err(ResponseError::Malformed(_))
        ));
    }

    #[test]
    fn bodyless_responses() {
        let cl = "Content-Length: 50\r\n\r\n";
        for status in [
            "100 Continue",
            "101 Switching Protocols",
            "103 Early Hints",
            "204 No Content",
            "304 Not Modified",
        ] {
            let s = format!("HTTP/1.1 {status}\r\n{cl}");
            let h = resp(&s);
            assert_eq!(
                (h.framing, h.keep_alive),
                (BodyFraming::None, true),
                "{status}"
            );
        }
        let s = format!("HTTP/1.1 200 OK\r\n{cl}");
        let (h, _) = parse(&s, true).expect("ok").expect("complete");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::None, true));
        let (h, _) = parse("HTTP/1.1 200 OK\r\n\r\n", true)
            .expect("ok")
            .expect("complete");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::None, true));
    }

    #[test]
    fn persistence_rules() {
        let ka = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n";
        assert!(resp(ka).keep_alive);
        assert!(!resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").keep_alive);
        assert!(
            !resp("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n").keep_alive
        );
        assert_eq!(resp(ka).version, Version::Http10);
    }

    #[test]
    fn obs_fold_becomes_space() {
        let h = resp("HTTP/1.1 200 OK\r\nX-Long: a\r\n b\r\n\tc\r\nContent-Length: 0\r\n\r\n");
        let v = h.headers.get("x-long").expect("present");
        assert!(!v.contains(&b'\r') && !v.contains(&b'\n'));
        let words: Vec<&[u8]> = v
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        assert_eq!(words, vec![&b"a"[..], &b"b"[..], &b"c"[..]]);
    }

    #[test]
    fn partial_pipelined_and_limits() {
        let two = "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n";
        for end in 0..27 {
            assert!(
                parse(&two[..end], false).expect("ok").is_none(),
                "prefix {end}"
            );
        }
        let (first, n) = parse(two, false).expect("ok").expect("complete");
        let (second, m) = parse(&two[n..], false).expect("ok").expect("complete");
        assert_eq!((first.status, second.status, n + m), (204, 304, two.len()));

        let limits = Limits {
            max_header_bytes: 128,
            max_headers: 3,
            ..Limits::default()
        };
        let mut slow = String::from("HTTP/1.1 200 OK\r\n");
        while slow.len() <= 128 {
            slow.push_str("X: aaaaaaaaaaaaaa\r\n");
        }
        let got = parse_response(slow.as_bytes(), &limits, false);
        assert_eq!(got.expect_err("too big"), ResponseError::HeaderTooLarge);
        let many = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        let got = parse_response(many.as_bytes(), &limits, false);
        assert_eq!(got.expect_err("too many"), ResponseError::HeaderTooLarge);
    }

    #[test]
    fn malformed_status_lines() {
        for s in [
            "HTTP/2.0 200 OK\r\n\r\n",
            "HTTP/1.1 099 X\r\n\r\n",
            "HTTP/1.1 600 X\r\n\r\n",
            "HTTP/1.1 20 X\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n",
        ] {
            assert!(
                matches!(parse(s, false), Err(ResponseError::Malformed(_))),
                "{s:?}"
            );
        }
        let h = resp("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.reason, "");
    }

    #[test]
    fn encode_round_trip() {
        let mut h = ResponseHead::new(404);
        assert_eq!(
            (h.reason.as_ref(), h.framing, h.keep_alive),
            ("Not Found", BodyFraming::None, true)
        );
        h.headers.push("Content-Length", "0");
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        let back = resp(std::str::from_utf8(&out).expect("ascii"));
        assert_eq!((back.status, back.headers), (404, h.headers.clone()));

        let mut odd = ResponseHead::new(299);
        odd.reason = "a\r\nb".into();
        odd.version = Version::Http10;
        let mut out = Vec::new();
        odd.encode(&mut out);
        assert_eq!(out, b"HTTP/1.1 299 a  b\r\n\r\n");
        let mut out = Vec::new();
        odd.encode_as_received(&mut out);
        assert_eq!(out, b"HTTP/1.0 299 a  b\r\n\r\n");
    }

    #[test]
    fn bodyless_statuses() {
        for s in [100, 101, 103, 199, 204, 304] {
            assert!(status_has_no_body(s), "{s}");
        }
        for s in [200, 203, 205, 206, 300, 404, 500] {
            assert!(!status_has_no_body(s), "{s}");
        }
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(reason_phrase(304), "Not Modified");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(505), "HTTP Version Not Supported");
        assert_eq!(reason_phrase(599), "");
        assert_eq!(
            ResponseError::HeaderTooLarge.to_string(),
            "response header section too large"
        );
    }
}
