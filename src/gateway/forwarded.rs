//! The request head a gateway sends upstream (RFC 9110 7.6): the viewer's
//! request with hop-by-hop fields removed, `Host` chosen, `Via` (with the
//! version the viewer spoke) and `X-Forwarded-For` extended, and — for a
//! cache fill — made into a plain GET for the whole representation. Pure:
//! no socket, no clock.

use super::behavior::Behavior;
use crate::cache::policy::Conditional;
use crate::http::{BodyFraming, Headers, Method, RequestHead};
use std::net::IpAddr;

/// Why the request goes upstream, which decides how it is rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A cache fill: GET the full representation, without the viewer's
    /// conditionals or range, and without a request body.
    Fill,
    /// Forwarded as the viewer sent it (method, conditionals, body).
    Pass,
}

/// Fields a fill must not forward: they would make the origin answer with
/// something other than the full representation (the conditional and range
/// fields; the cache sends its own when it revalidates or fetches a part).
pub const FILL_DROPS: &[&str] = &[
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

/// Who this node is and whom it speaks for, for the forwarded head.
pub struct Forwarding<'a> {
    /// The `Host` to send: the configured one, else the viewer's, else the
    /// origin's own authority.
    pub host: &'a str,
    /// This node's name in `Via`.
    pub node: &'a str,
    /// The viewer's address, appended to `X-Forwarded-For`.
    pub peer: IpAddr,
    /// For a fill that revalidates a stored response: its validators
    /// (RFC 9111 §4.3.1), sent instead of the viewer's conditionals.
    pub validators: Option<&'a Conditional>,
    /// For a fill of one part of an object kept in parts: the bytes asked
    /// of the origin (`Range`, RFC 9110 §14.2), instead of the viewer's.
    pub part: Option<std::ops::Range<u64>>,
    /// For a request that may be answered from a cache: its behaviour,
    /// whose policies decide which fields and query parameters go upstream
    /// (a field in neither the key nor the origin request policy could
    /// change a response other viewers share). None: forwarded whole.
    pub policy: Option<&'a Behavior>,
}

/// Encodes the head to send upstream.
pub fn upstream_head(req: &RequestHead, purpose: Purpose, fwd: &Forwarding<'_>) -> Vec<u8> {
    let mut up = req.clone();
    if let Some(b) = fwd.policy {
        up.headers = b.filter_for_origin(&up.headers);
        up.target = b.origin_target(&up.target);
    }
    if purpose == Purpose::Fill {
        up.method = Method::Get;
        for h in FILL_DROPS {
            up.headers.remove(h);
        }
        if let Some(validators) = fwd.validators {
            validators.apply(&mut up.headers);
        }
        if let Some(part) = &fwd.part {
            up.headers
                .set("Range", format!("bytes={}-{}", part.start, part.end - 1));
        }
    }
    // We answer `Expect: 100-continue` ourselves when the body is wanted.
    up.headers.remove("expect");
    up.headers.set("Host", fwd.host);
    // RFC 9110 7.6.3: the protocol version this node received the request in.
    let received = req.version.number();
    extend_list(
        &mut up.headers,
        req,
        "Via",
        format_args!("{received} {}", fwd.node),
    );
    extend_list(
        &mut up.headers,
        req,
        "X-Forwarded-For",
        format_args!("{}", fwd.peer),
    );
    // Transfer-Encoding is hop-by-hop: a chunked body relayed as chunked
    // needs its framing named again for this hop.
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if purpose == Purpose::Pass && req.framing == BodyFraming::Chunked {
        up.headers.remove("content-length");
        extra.push(("Transfer-Encoding", "chunked"));
    }
    // A length the viewer repeated (`5, 5`, or two lines) goes upstream as
    // one field with one value: one reading for every parser.
    let length;
    if let BodyFraming::ContentLength(n) = req.framing
        && sends_body(req, purpose)
    {
        up.headers.remove("content-length");
        length = n.to_string();
        extra.push(("Content-Length", &length));
    } else if purpose == Purpose::Fill {
        up.headers.remove("content-length");
    }
    let mut out = Vec::with_capacity(512);
    up.encode_upstream(&extra, &mut out);
    out
}

/// Sets the list field `name` to the viewer's value of it, when it has
/// one, then `element`: formatted into the head's own buffer, with no
/// string per request.
fn extend_list(up: &mut Headers, req: &RequestHead, name: &str, element: std::fmt::Arguments<'_>) {
    match req.headers.get_str(name) {
        Some(v) if !v.is_empty() => up.set_fmt(name, format_args!("{v}, {element}")),
        _ => up.set_fmt(name, element),
    }
}

/// Whether the upstream request carries the viewer's body.
pub fn sends_body(req: &RequestHead, purpose: Purpose) -> bool {
    purpose == Purpose::Pass && !req.framing.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::head_from as head;

    fn fwd() -> Forwarding<'static> {
        Forwarding {
            host: "origin.test",
            node: "edge1",
            peer: "192.0.2.7".parse().expect("ip"),
            validators: None,
            part: None,
            policy: None,
        }
    }

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).expect("ascii")
    }

    #[test]
    fn a_fill_is_a_plain_get_for_the_whole_object() {
        let r = head(
            "HEAD /a?b HTTP/1.1\r\nHost: v.test\r\nIf-None-Match: \"x\"\r\nRange: bytes=0-1\r\n\
             If-Modified-Since: Mon, 06 Nov 2023 08:00:00 GMT\r\nAccept: */*\r\n\r\n",
        );
        let out = text(upstream_head(&r, Purpose::Fill, &fwd()));
        assert_eq!(
            out,
            "GET /a?b HTTP/1.1\r\nHost: origin.test\r\nAccept: */*\r\nVia: 1.1 edge1\r\n\
             X-Forwarded-For: 192.0.2.7\r\n\r\n"
        );
        assert!(!sends_body(&r, Purpose::Fill));
    }

    /// RFC 9111 §4.3.1: a revalidation sends the stored validators, never
    /// the viewer's own conditionals.
    #[test]
    fn a_revalidating_fill_sends_the_stored_validators() {
        let r = head("GET /a HTTP/1.1\r\nHost: v\r\nIf-None-Match: \"viewer\"\r\n\r\n");
        let validators = Conditional {
            if_none_match: Some("\"stored\"".into()),
            if_modified_since: Some("Mon, 06 Nov 2023 08:00:00 GMT".into()),
        };
        let f = Forwarding {
            validators: Some(&validators),
            ..fwd()
        };
        let out = text(upstream_head(&r, Purpose::Fill, &f));
        assert!(out.contains("If-None-Match: \"stored\"\r\n"), "{out}");
        assert!(
            out.contains("If-Modified-Since: Mon, 06 Nov 2023 08:00:00 GMT\r\n"),
            "{out}"
        );
        assert!(!out.contains("viewer"), "{out}");
    }

    /// A part of an object kept in parts is asked for by its byte range.
    #[test]
    fn a_part_fill_asks_for_its_bytes_only() {
        let r = head("GET /big HTTP/1.1\r\nHost: v\r\nRange: bytes=0-\r\nIf-Range: \"x\"\r\n\r\n");
        let f = Forwarding {
            part: Some(100..200),
            ..fwd()
        };
        let out = text(upstream_head(&r, Purpose::Fill, &f));
        assert!(out.contains("Range: bytes=100-199\r\n"), "{out}");
        assert_eq!(out.matches("Range:").count(), 1, "{out}");
        assert!(!out.contains("If-Range"), "{out}");
    }

    #[test]
    fn a_pass_keeps_method_conditionals_and_body_framing() {
        let r = head(
            "POST /p HTTP/1.1\r\nHost: v.test\r\nIf-Match: \"x\"\r\nContent-Length: 3\r\n\
             Expect: 100-continue\r\nConnection: close\r\nKeep-Alive: 5\r\n\r\n",
        );
        let out = text(upstream_head(&r, Purpose::Pass, &fwd()));
        assert_eq!(
            out,
            "POST /p HTTP/1.1\r\nHost: origin.test\r\nIf-Match: \"x\"\r\n\
             Via: 1.1 edge1\r\nX-Forwarded-For: 192.0.2.7\r\nContent-Length: 3\r\n\r\n"
        );
        assert!(sends_body(&r, Purpose::Pass));
    }

    /// A repeated length goes upstream as one field with one value.
    #[test]
    fn a_repeated_content_length_is_sent_once() {
        for raw in [
            "POST /p HTTP/1.1\r\nHost: v\r\nContent-Length: 5, 5\r\n\r\n",
            "POST /p HTTP/1.1\r\nHost: v\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        ] {
            let out = text(upstream_head(&head(raw), Purpose::Pass, &fwd()));
            assert_eq!(out.matches("Content-Length").count(), 1, "{out}");
            assert!(out.contains("Content-Length: 5\r\n"), "{out}");
        }
    }

    #[test]
    fn a_chunked_body_is_named_again_for_this_hop() {
        let r = head("PUT /p HTTP/1.1\r\nHost: v\r\nTransfer-Encoding: chunked\r\n\r\n");
        let out = text(upstream_head(&r, Purpose::Pass, &fwd()));
        assert!(out.ends_with("Transfer-Encoding: chunked\r\n\r\n"), "{out}");
        assert_eq!(out.matches("Transfer-Encoding").count(), 1, "{out}");
        assert!(!out.contains("Content-Length"), "{out}");
    }

    #[test]
    fn via_and_forwarded_for_are_extended() {
        let r = head(
            "GET / HTTP/1.1\r\nHost: v\r\nVia: 1.1 viewer-proxy\r\nX-Forwarded-For: 198.51.100.1\r\n\r\n",
        );
        let out = text(upstream_head(&r, Purpose::Fill, &fwd()));
        assert!(
            out.contains("Via: 1.1 viewer-proxy, 1.1 edge1\r\n"),
            "{out}"
        );
        assert!(
            out.contains("X-Forwarded-For: 198.51.100.1, 192.0.2.7\r\n"),
            "{out}"
        );
    }

    /// RFC 9110 7.6.3: `Via` names the protocol version received, though
    /// the request goes upstream as HTTP/1.1.
    #[test]
    fn via_names_the_version_the_viewer_spoke() {
        let r = head("GET / HTTP/1.0\r\n\r\n");
        let out = text(upstream_head(&r, Purpose::Fill, &fwd()));
        assert!(out.starts_with("GET / HTTP/1.1\r\n"), "{out}");
        assert!(out.contains("Via: 1.0 edge1\r\n"), "{out}");
        let r = head("GET / HTTP/1.0\r\nVia: 1.1 viewer-proxy\r\n\r\n");
        let out = text(upstream_head(&r, Purpose::Pass, &fwd()));
        assert!(
            out.contains("Via: 1.1 viewer-proxy, 1.0 edge1\r\n"),
            "{out}"
        );
    }
}
