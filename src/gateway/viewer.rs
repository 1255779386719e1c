//! What a viewer receives: the framing its body travels in, the finished
//! response head (framing fields, `Date`, `Via` with the origin's version,
//! `Cache-Status`, `Connection`), the head kept in the cache, and the
//! responses this node writes itself. Pure: the clock is an argument and
//! nothing is written here. A head built here never promises a length the
//! body will not have, and never drops a transfer coding the body keeps.

use super::decision::{CachePhase, CacheStatus, Detail, Storing};
use super::route::ALLOWED_METHODS;
use crate::http::range::{Multipart, RangePlan, content_range, unsatisfied_range};
use crate::http::{BodyFraming, ResponseHead, Version, reason_phrase, status_has_no_body};
use std::time::SystemTime;

/// How the body goes to the viewer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewerFraming {
    /// No body on the wire (HEAD, 204, 304); Content-Length may still describe it.
    NoBody,
    Length(u64),
    Chunked,
    /// HTTP/1.0 viewer and unknown length: the body ends when we close.
    Close,
}

impl ViewerFraming {
    /// For the body of an origin's response `resp`, toward a viewer of
    /// `version`. Transfer codings other than chunked are never dropped:
    /// an HTTP/1.1 viewer gets them named again over chunked framing, and
    /// a body that has them cannot go to an HTTP/1.0 viewer at all (RFC 9112
    /// 6.1: no Transfer-Encoding toward HTTP/1.0, and this node decodes none).
    pub fn choose(
        version: Version,
        resp: &ResponseHead,
    ) -> Result<ViewerFraming, TransferCodingForHttp10> {
        if status_has_no_body(resp.status) {
            return Ok(ViewerFraming::NoBody);
        }
        Ok(match resp.framing {
            BodyFraming::ContentLength(n) => ViewerFraming::Length(n),
            BodyFraming::None => ViewerFraming::Length(0),
            BodyFraming::Chunked | BodyFraming::CloseDelimited => {
                if version == Version::Http11 {
                    ViewerFraming::Chunked
                } else if resp.has_non_chunked_transfer_coding() {
                    return Err(TransferCodingForHttp10);
                } else {
                    ViewerFraming::Close
                }
            }
        })
    }

    /// Whether any body byte goes to the viewer.
    pub fn carries_body(self) -> bool {
        !matches!(self, ViewerFraming::NoBody | ViewerFraming::Length(0))
    }

    /// Whether the last data write completes the response on the wire,
    /// rather than a terminator (last chunk) or a close written after it.
    pub fn ends_with_data(self) -> bool {
        matches!(self, ViewerFraming::Length(_) | ViewerFraming::NoBody)
    }
}

/// An origin's body carries a transfer coding other than chunked (`gzip,
/// chunked`) and the viewer speaks HTTP/1.0, which has no Transfer-Encoding:
/// the response cannot be relayed, and is answered 502 instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferCodingForHttp10;

impl TransferCodingForHttp10 {
    pub const STATUS: u16 = 502;

    pub fn message(self) -> &'static str {
        "the origin's response has a transfer coding that an HTTP/1.0 client cannot receive"
    }
}

/// What `finish_head` needs besides the head itself.
pub struct HeadContext<'a> {
    /// This node's name in `Via` and `Cache-Status`.
    pub node: &'a str,
    pub version: Version,
    pub framing: ViewerFraming,
    /// The representation length to advertise (also for HEAD), when known.
    pub length: Option<u64>,
    pub keep_alive: bool,
    pub status: CacheStatus,
    pub now: SystemTime,
    /// Fields meant for caches only that this node removes toward its
    /// viewers (RFC 9213 targeted fields, see `policy::fields_to_strip`).
    pub strip: &'a [&'static str],
}

/// Completes a head for the viewer.
pub fn finish_head(head: &mut ResponseHead, cx: &HeadContext<'_>) {
    // Codings under chunked stay on the body, so they are named again.
    let coded = match cx.framing {
        ViewerFraming::Chunked => head.non_chunked_transfer_codings(),
        _ => None,
    };
    let h = &mut head.headers;
    h.strip_hop_by_hop();
    h.remove("content-length");
    for name in cx.strip {
        h.remove(name);
    }
    match cx.framing {
        ViewerFraming::Length(n) => h.set_fmt("Content-Length", format_args!("{n}")),
        ViewerFraming::Chunked => match coded {
            Some(mut codings) => {
                codings.extend_from_slice(b", chunked");
                h.set("Transfer-Encoding", codings);
            }
            None => h.set("Transfer-Encoding", "chunked"),
        },
        ViewerFraming::NoBody => {
            if let (Some(n), false) = (cx.length, status_has_no_body(head.status)) {
                h.set_fmt("Content-Length", format_args!("{n}"));
            }
        }
        ViewerFraming::Close => {}
    }
    if !h.contains("date") {
        h.set("Date", httpdate::fmt_http_date(cx.now));
    }
    // RFC 9110 7.6.3: the version this node received the response in (a
    // hit's stored head keeps the origin's).
    let received = head.version.number();
    h.append_fmt("Via", format_args!("{received} {}", cx.node));
    h.append_fmt(
        "Cache-Status",
        format_args!("{}", cx.status.rendered(cx.node)),
    );
    if let Some(value) = connection_value(cx.keep_alive, cx.framing, cx.version) {
        h.set("Connection", value);
    }
}

/// The `Connection` field a response toward a viewer carries, if any: it
/// closes when the request or the framing says so, and an HTTP/1.0 viewer
/// is told it stays open.
pub fn connection_value(
    keep_alive: bool,
    framing: ViewerFraming,
    version: Version,
) -> Option<&'static str> {
    if !keep_alive || framing == ViewerFraming::Close {
        Some("close")
    } else if version == Version::Http10 {
        Some("keep-alive")
    } else {
        None
    }
}

/// The head to store: what a later hit serves, minus what is recomputed then
/// (framing, `Age`, this node's `Via` and `Cache-Status`), with the origin's
/// version in its status line for the hit's `Via`.
pub fn stored_head(mut h: ResponseHead, now: SystemTime) -> Vec<u8> {
    h.headers.strip_hop_by_hop();
    for name in ["age", "content-length", "via", "cache-status"] {
        h.headers.remove(name);
    }
    if !h.headers.contains("date") {
        h.headers.set("Date", httpdate::fmt_http_date(now));
    }
    let mut out = Vec::with_capacity(512);
    h.encode_as_received(&mut out);
    out
}

/// A response this node writes itself: an error or a refusal. A 405 names
/// the methods allowed (RFC 9110 15.5.6).
pub struct Generated<'a> {
    pub status: u16,
    /// One line for the body, after the status and reason.
    pub message: &'a str,
    pub keep_alive: bool,
    pub phase: CachePhase,
    pub detail: Option<Detail>,
    /// For a 405: the methods allowed (default: every method this node
    /// serves or forwards).
    pub allow: Option<&'a str>,
    /// The request id a log line already names (else a new one is taken).
    pub id: Option<u64>,
}

/// Encodes a generated response; returns the bytes and the body length sent
/// (zero for HEAD).
pub fn generated_response(
    g: &Generated<'_>,
    node: &str,
    version: Version,
    head_request: bool,
    now: SystemTime,
    id: u64,
) -> (Vec<u8>, u64) {
    let mut head = ResponseHead::new(g.status);
    // The viewer learns the status, a sentence and the request id; causes
    // (addresses, parser errors) go to the log under the same id.
    let id = format!("{id:016x}");
    let body = format!(
        "{} {}: {}\nrequest id: {id}\n",
        g.status, head.reason, g.message
    );
    head.headers.set("X-Request-Id", id.as_str());
    head.headers
        .set("Content-Type", "text/plain; charset=utf-8");
    head.headers.set("Cache-Control", "no-store");
    if g.status == 405 {
        head.headers
            .set("Allow", g.allow.unwrap_or(ALLOWED_METHODS));
    }
    let framing = if head_request {
        ViewerFraming::NoBody
    } else {
        ViewerFraming::Length(body.len() as u64)
    };
    let cx = HeadContext {
        node,
        version,
        framing,
        length: Some(body.len() as u64),
        keep_alive: g.keep_alive,
        status: CacheStatus {
            phase: g.phase,
            fwd: g.phase.fwd(),
            fwd_status: None,
            storing: Storing::No,
            ttl: None,
            detail: g.detail,
        },
        now,
        strip: &[],
    };
    finish_head(&mut head, &cx);
    let mut out = Vec::with_capacity(256 + body.len());
    head.encode(&mut out);
    if head_request {
        return (out, 0);
    }
    out.extend_from_slice(body.as_bytes());
    (out, body.len() as u64)
}

/// What a `Range` makes of a 200's body.
#[derive(Clone, Debug)]
pub enum BodyShape {
    /// The whole representation.
    Whole,
    /// One range, sent plain with `Content-Range`.
    Single(std::ops::Range<u64>),
    /// Several ranges, as `multipart/byteranges`.
    Multi(Multipart),
    /// A 416: no body.
    Unsatisfiable,
}

/// Applies a range plan to the 200 head of a `len`-byte representation:
/// a 206 with `Content-Range` or a multipart type, or a 416 with
/// `Content-Range: bytes */len` (RFC 9110 §14.4, §15.3.7, §15.5.17).
/// Returns the shape and the body length on the wire. `seed` varies the
/// multipart boundary.
pub fn apply_range(
    head: &mut ResponseHead,
    plan: RangePlan,
    len: u64,
    seed: u64,
) -> (BodyShape, u64) {
    match plan {
        RangePlan::Full => (BodyShape::Whole, len),
        RangePlan::Partial(mut ranges) if ranges.len() == 1 => {
            let r = ranges.remove(0);
            set_status(head, 206);
            head.headers.set("Content-Range", content_range(&r, len));
            let n = r.end - r.start;
            (BodyShape::Single(r), n)
        }
        RangePlan::Partial(ranges) => {
            set_status(head, 206);
            let m = Multipart::new(ranges, len, head.headers.get_str("content-type"), seed);
            head.headers.set("Content-Type", m.content_type());
            head.headers.remove("content-range");
            let n = m.body_len();
            (BodyShape::Multi(m), n)
        }
        RangePlan::Unsatisfiable => {
            set_status(head, 416);
            head.headers.remove("content-type");
            head.headers.set("Content-Range", unsatisfied_range(len));
            (BodyShape::Unsatisfiable, 0)
        }
    }
}

/// As `apply_range`, for a body relayed as it arrives from the origin,
/// which carries one range at most: several ranges get the whole
/// representation (RFC 9110 §14.2 lets a server ignore a Range). Returns the
/// window of the body to send (empty for a 416), or None for all of it.
pub fn apply_streamed_range(
    head: &mut ResponseHead,
    plan: RangePlan,
    len: u64,
) -> Option<std::ops::Range<u64>> {
    let plan = match plan {
        RangePlan::Partial(ranges) if ranges.len() > 1 => RangePlan::Full,
        plan => plan,
    };
    match apply_range(head, plan, len, 0).0 {
        BodyShape::Single(r) => Some(r),
        BodyShape::Unsatisfiable => Some(0..0),
        BodyShape::Whole | BodyShape::Multi(_) => None,
    }
}

fn set_status(head: &mut ResponseHead, status: u16) {
    head.status = status;
    head.reason = reason_phrase(status).into();
}

#[cfg(test)]
// A plan of one range is written as a one-element Vec of ranges on purpose.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use crate::gateway::decision::{PassReason, Refusal};
    use crate::http::{Limits, parse_response};
    use std::time::{Duration, UNIX_EPOCH};

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn origin(raw: &str) -> ResponseHead {
        parse_response(raw.as_bytes(), &Limits::default(), false)
            .expect("valid")
            .expect("complete")
            .0
    }

    fn cx(framing: ViewerFraming, version: Version, keep_alive: bool) -> HeadContext<'static> {
        HeadContext {
            node: "edge1",
            version,
            framing,
            length: Some(5),
            keep_alive,
            status: CacheStatus {
                phase: CachePhase::Miss,
                fwd: CachePhase::Miss.fwd(),
                fwd_status: None,
                storing: Storing::Yes,
                ttl: None,
                detail: None,
            },
            now: now(),
            strip: &[],
        }
    }

    fn encoded(h: &ResponseHead) -> String {
        let mut out = Vec::new();
        h.encode(&mut out);
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn framing_follows_status_upstream_and_version() {
        use ViewerFraming as F;
        let v11 = Version::Http11;
        let v10 = Version::Http10;
        let framed = |status: u16, framing: BodyFraming| {
            let mut h = ResponseHead::new(status);
            h.framing = framing;
            h
        };
        let choose = |v, status, framing| F::choose(v, &framed(status, framing));
        assert_eq!(
            choose(v11, 200, BodyFraming::ContentLength(7)),
            Ok(F::Length(7))
        );
        assert_eq!(choose(v11, 200, BodyFraming::None), Ok(F::Length(0)));
        assert_eq!(choose(v11, 200, BodyFraming::Chunked), Ok(F::Chunked));
        assert_eq!(
            choose(v11, 200, BodyFraming::CloseDelimited),
            Ok(F::Chunked)
        );
        assert_eq!(choose(v10, 200, BodyFraming::Chunked), Ok(F::Close));
        assert_eq!(
            choose(v10, 200, BodyFraming::ContentLength(3)),
            Ok(F::Length(3))
        );
        for s in [204, 304, 100] {
            assert_eq!(choose(v11, s, BodyFraming::ContentLength(3)), Ok(F::NoBody));
        }
        assert!(F::Length(1).ends_with_data() && F::NoBody.ends_with_data());
        assert!(!F::Chunked.ends_with_data() && !F::Close.ends_with_data());
    }

    /// RFC 9112 6.1: a transfer coding is never silently dropped. HTTP/1.1
    /// viewers get it named over chunked; HTTP/1.0 viewers cannot get it.
    #[test]
    fn transfer_codings_other_than_chunked_are_kept_or_refused() {
        for raw in [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            let resp = origin(raw);
            assert_eq!(
                ViewerFraming::choose(Version::Http11, &resp),
                Ok(ViewerFraming::Chunked),
                "{raw}"
            );
            assert_eq!(
                ViewerFraming::choose(Version::Http10, &resp),
                Err(TransferCodingForHttp10),
                "{raw}"
            );
            let mut h = resp.clone();
            finish_head(&mut h, &cx(ViewerFraming::Chunked, Version::Http11, true));
            let text = encoded(&h);
            assert!(
                text.contains("Transfer-Encoding: gzip, chunked\r\n"),
                "{text}"
            );
            assert_eq!(text.matches("Transfer-Encoding").count(), 1, "{text}");
        }
        // A HEAD answer has no body to code.
        let mut h = origin("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        finish_head(&mut h, &cx(ViewerFraming::NoBody, Version::Http10, true));
        assert!(!encoded(&h).contains("Transfer-Encoding"));
        assert_eq!(TransferCodingForHttp10::STATUS, 502);
    }

    #[test]
    fn a_finished_head_is_reframed_and_labelled() {
        let mut h = origin(
            "HTTP/1.1 200 OK\r\nDate: Mon, 06 Nov 2023 08:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\
             Connection: x-hop\r\nX-Hop: 1\r\nVia: 1.1 origin-proxy\r\nCache-Status: up; hit\r\n\r\n",
        );
        finish_head(&mut h, &cx(ViewerFraming::Length(5), Version::Http11, true));
        assert_eq!(
            encoded(&h),
            "HTTP/1.1 200 OK\r\nDate: Mon, 06 Nov 2023 08:00:00 GMT\r\nVia: 1.1 origin-proxy, 1.1 edge1\r\n\
             Cache-Status: up; hit, edge1; fwd=uri-miss; stored\r\nContent-Length: 5\r\n\r\n"
        );
    }

    /// RFC 9110 7.6.3: toward the viewer, `Via` names the version the
    /// origin answered in, also when the answer comes from the cache.
    #[test]
    fn via_names_the_version_the_origin_spoke() {
        let raw = "HTTP/1.0 200 OK\r\nVia: 1.1 up\r\nContent-Length: 5\r\n\r\n";
        let mut h = origin(raw);
        finish_head(&mut h, &cx(ViewerFraming::Length(5), Version::Http11, true));
        let text = encoded(&h);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Via: 1.1 up, 1.0 edge1\r\n"), "{text}");
        let stored = stored_head(origin(raw), now());
        assert!(stored.starts_with(b"HTTP/1.0 200 OK\r\n"));
        let mut hit = parse_response(&stored, &Limits::default(), false)
            .expect("valid")
            .expect("complete")
            .0;
        finish_head(
            &mut hit,
            &cx(ViewerFraming::Length(5), Version::Http11, true),
        );
        assert!(encoded(&hit).contains("Via: 1.0 edge1\r\n"));
    }

    #[test]
    fn connection_fields_follow_persistence_and_version() {
        let mut h = ResponseHead::new(200);
        finish_head(&mut h, &cx(ViewerFraming::Chunked, Version::Http11, false));
        let text = encoded(&h);
        assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(
            text.contains("Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"),
            "{text}"
        );
        let mut h = ResponseHead::new(200);
        finish_head(&mut h, &cx(ViewerFraming::Length(1), Version::Http10, true));
        assert!(encoded(&h).contains("Connection: keep-alive\r\n"));
        let mut h = ResponseHead::new(200);
        finish_head(&mut h, &cx(ViewerFraming::Close, Version::Http10, true));
        assert!(encoded(&h).contains("Connection: close\r\n"));
    }

    #[test]
    fn head_responses_advertise_the_length_but_bodyless_statuses_do_not() {
        let mut h = ResponseHead::new(200);
        finish_head(&mut h, &cx(ViewerFraming::NoBody, Version::Http11, true));
        assert_eq!(h.headers.get_str("content-length"), Some("5"));
        let mut h = ResponseHead::new(304);
        finish_head(&mut h, &cx(ViewerFraming::NoBody, Version::Http11, true));
        assert!(!h.headers.contains("content-length"));
    }

    #[test]
    fn the_stored_head_drops_what_a_hit_recomputes() {
        let h = origin(
            "HTTP/1.1 200 OK\r\nAge: 5\r\nContent-Length: 3\r\nVia: 1.1 x\r\nCache-Status: x; hit\r\n\
             Connection: close\r\nETag: \"a\"\r\n\r\n",
        );
        let stored = String::from_utf8(stored_head(h.clone(), now())).expect("ascii");
        assert_eq!(
            stored,
            "HTTP/1.1 200 OK\r\nETag: \"a\"\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n\r\n"
        );
    }

    #[test]
    fn ranges_turn_a_200_into_206_or_416() {
        let base = || origin("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"a\"\r\n\r\n");
        let mut h = base();
        let (shape, n) = apply_range(&mut h, RangePlan::Partial(vec![10..20]), 100, 1);
        assert!(matches!(shape, BodyShape::Single(ref r) if *r == (10..20)));
        assert_eq!(
            (h.status, h.reason.as_ref(), n),
            (206, "Partial Content", 10)
        );
        assert_eq!(h.headers.get_str("content-range"), Some("bytes 10-19/100"));
        assert_eq!(h.headers.get_str("content-type"), Some("text/plain"));
        let mut h = base();
        let (shape, n) = apply_range(&mut h, RangePlan::Partial(vec![0..1, 99..100]), 100, 1);
        let BodyShape::Multi(m) = shape else {
            panic!("multipart")
        };
        assert_eq!(n, m.body_len());
        assert!(
            h.headers
                .get_str("content-type")
                .is_some_and(|t| t.starts_with("multipart/byteranges; boundary="))
        );
        assert!(
            String::from_utf8(m.part_head(0))
                .expect("ascii")
                .contains("Content-Type: text/plain")
        );
        let mut h = base();
        let (shape, n) = apply_range(&mut h, RangePlan::Unsatisfiable, 100, 1);
        assert!(matches!(shape, BodyShape::Unsatisfiable));
        assert_eq!((h.status, n), (416, 0));
        assert_eq!(h.headers.get_str("content-range"), Some("bytes */100"));
        assert!(!h.headers.contains("content-type"));
        let mut h = base();
        assert!(matches!(
            apply_range(&mut h, RangePlan::Full, 100, 1),
            (BodyShape::Whole, 100)
        ));
        assert_eq!(h.status, 200);
    }

    #[test]
    fn a_streamed_body_carries_one_range_at_most() {
        let mut h = origin("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(
            apply_streamed_range(&mut h, RangePlan::Partial(vec![0..1, 5..6]), 10),
            None
        );
        assert_eq!(h.status, 200);
        assert_eq!(
            apply_streamed_range(&mut h, RangePlan::Partial(vec![2..4]), 10),
            Some(2..4)
        );
        assert_eq!(h.status, 206);
        let mut h = origin("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(
            apply_streamed_range(&mut h, RangePlan::Unsatisfiable, 10),
            Some(0..0)
        );
        assert_eq!(h.status, 416);
    }

    #[test]
    fn generated_responses() {
        let g = Generated {
            allow: None,
            id: None,
            status: 405,
            message: "TRACE is not supported",
            keep_alive: true,
            phase: CachePhase::Refused,
            detail: Some(Detail::Refused(Refusal::Method)),
        };
        let (bytes, sent) = generated_response(&g, "edge1", Version::Http11, false, now(), 0x2a);
        let text = String::from_utf8(bytes).expect("ascii");
        let body = "405 Method Not Allowed: TRACE is not supported\nrequest id: 000000000000002a\n";
        assert_eq!(sent, body.len() as u64);
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 405 Method Not Allowed\r\nX-Request-Id: 000000000000002a\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\
                 Cache-Control: no-store\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n\
                 Content-Length: {}\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n\
                 Via: 1.1 edge1\r\nCache-Status: edge1; detail=method\r\n\r\n{body}",
                body.len()
            )
        );
        let g = Generated {
            allow: None,
            id: None,
            status: 502,
            detail: PassReason::Range.detail(),
            phase: CachePhase::PassRequest,
            keep_alive: false,
            ..g
        };
        let (bytes, sent) = generated_response(&g, "edge1", Version::Http11, true, now(), 0x2a);
        let text = String::from_utf8(bytes).expect("ascii");
        assert_eq!(sent, 0);
        assert!(text.ends_with("Connection: close\r\n\r\n"), "{text}");
        assert!(text.contains("Content-Length: 69\r\n"), "{text}");
        assert!(
            !text.contains("Allow:"),
            "only a 405 names the methods: {text}"
        );
    }
}
