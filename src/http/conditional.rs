//! Conditional requests answered from a stored response (RFC 9110 §13,
//! RFC 9111 §4.3.2): the preconditions of a GET/HEAD evaluated in the order
//! of RFC 9110 §13.2.2 against the representation the cache would send —
//! 412 for a failed `If-Match` / `If-Unmodified-Since`, 304 for a matching
//! `If-None-Match` / `If-Modified-Since` — and the head of that 304. Pure:
//! the stored head and the request's fields in, a decision out. A date it
//! cannot parse makes its precondition absent (§13.1.3, §13.1.4), never a
//! 304 or 412 by accident.

use super::headers::Headers;
use super::response::ResponseHead;

/// Fields a 304 carries from the stored response (RFC 9110 15.4.5: those a
/// 200 would have sent that describe the representation and its caching),
/// plus the validators.
const NOT_MODIFIED_FIELDS: &[&str] = &[
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
    "last-modified",
];

/// An entity-tag (RFC 9110 §8.8.3), read as bytes: its opaque part may
/// hold obs-text, which is valid and must still compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

fn trim_ows(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// One entity-tag from the start of `b`; returns it and the rest.
fn tag(b: &[u8]) -> Option<(Tag<'_>, &[u8])> {
    let (weak, rest) = match b.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, b),
    };
    let rest = rest.strip_prefix(b"\"")?;
    let end = rest.iter().position(|&c| c == b'"')?;
    Some((
        Tag {
            weak,
            opaque: &rest[..end],
        },
        &rest[end + 1..],
    ))
}

/// The tags of an If-Match / If-None-Match list; None for `*`, and the
/// tags read before anything that is not one.
fn tag_list(value: &[u8]) -> Option<Vec<Tag<'_>>> {
    if trim_ows(value) == b"*" {
        return None;
    }
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = trim_ows(rest);
        rest = rest.strip_prefix(b",").map_or(rest, trim_ows);
        let Some((t, after)) = tag(rest) else { break };
        tags.push(t);
        rest = after;
    }
    Some(tags)
}

/// Weak comparison of entity tags (RFC 9110 §8.8.3.2): `W/"a"` matches
/// `"a"`. `list` is an If-None-Match value: `*` or a list of tags. Tags
/// that are not well-formed (unquoted, `w/`) match only their exact
/// spelling, as an origin that sends them would compare them.
pub fn etag_list_matches(list: &[u8], etag: &[u8]) -> bool {
    if let Some((parsed, _)) = tag(trim_ows(etag))
        && let Some(tags) = tag_list(list)
        && tags.iter().any(|t| t.opaque == parsed.opaque)
    {
        return true;
    }
    tag_list(list).is_none() || as_written(list).any(|t| weakless(t) == weakless(trim_ows(etag)))
}

/// The comma-separated members of a list, trimmed, for tags that do not
/// parse.
fn as_written(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

fn weakless(t: &[u8]) -> &[u8] {
    t.strip_prefix(b"W/").unwrap_or(t)
}

/// What the preconditions of a GET/HEAD make of the stored response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// No precondition stops it: send the response.
    Proceed,
    /// `If-None-Match` / `If-Modified-Since` hold the viewer's copy current:
    /// 304 (Not Modified).
    NotModified,
    /// `If-Match` / `If-Unmodified-Since` failed: 412 (Precondition Failed).
    Failed,
}

/// Strong comparison (RFC 9110 §8.8.3.2) against an If-Match list: `*`
/// matches any current representation; weak tags never match.
fn strong_list_matches(list: &[u8], etag: &[u8]) -> bool {
    let Some(tags) = tag_list(list) else {
        return true;
    };
    match tag(trim_ows(etag)) {
        Some((etag, _)) => tags
            .iter()
            .any(|t| !t.weak && !etag.weak && t.opaque == etag.opaque),
        // A tag that does not parse matches only its exact spelling.
        None => {
            let etag = trim_ows(etag);
            !etag.starts_with(b"W/") && as_written(list).any(|t| t == etag)
        }
    }
}

fn date(h: &Headers, name: &str) -> Option<std::time::SystemTime> {
    h.get_str(name).and_then(super::date::parse_http_date)
}

/// Evaluates a GET/HEAD's preconditions against `stored`, the response the
/// cache would send (RFC 9110 §13.2.2 order). Only a stored 2xx is
/// compared (§13.2.1: a 3xx or error is sent as it is). If-Match and
/// If-Unmodified-Since are origin preconditions (RFC 9111 §4.3.2); a cache
/// answering from a fresh stored response stands for the origin's current
/// representation, so they are evaluated against it.
pub fn evaluate(request: &Headers, stored: &ResponseHead) -> Precondition {
    if !(200..300).contains(&stored.status) {
        return Precondition::Proceed;
    }
    let etag = stored.headers.get("etag");
    // Step 1 and 2: If-Match, else If-Unmodified-Since.
    if let Some(list) = request.get("if-match") {
        if !etag.is_some_and(|e| strong_list_matches(list, e)) {
            return Precondition::Failed;
        }
    } else if let Some(since) = date(request, "if-unmodified-since") {
        let modified = date(&stored.headers, "last-modified");
        if modified.is_none_or(|m| m > since) {
            return Precondition::Failed;
        }
    }
    // Step 3 and 4: If-None-Match, else If-Modified-Since.
    if let Some(list) = request.get("if-none-match") {
        if etag.is_some_and(|e| etag_list_matches(list, e)) {
            return Precondition::NotModified;
        }
        return Precondition::Proceed;
    }
    if let Some(since) = date(request, "if-modified-since") {
        // RFC 9111 §4.3.2: without Last-Modified, the stored Date stands in.
        let modified =
            date(&stored.headers, "last-modified").or_else(|| date(&stored.headers, "date"));
        if modified.is_some_and(|m| m <= since) {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether a GET/HEAD with these request fields may be answered 304 from
/// `stored` (see `evaluate`).
pub fn is_not_modified(request: &Headers, stored: &ResponseHead) -> bool {
    evaluate(request, stored) == Precondition::NotModified
}

/// The 304 that stands for `stored`.
pub fn not_modified_head(stored: &ResponseHead) -> ResponseHead {
    let mut head = ResponseHead::new(304);
    // In the stored order and spelling: only the selection is this rule's.
    for (name, value) in stored.headers.iter() {
        if NOT_MODIFIED_FIELDS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name))
        {
            head.headers.push(name, value);
        }
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(status: u16, fields: &[(&str, &str)]) -> ResponseHead {
        ResponseHead::with_fields(status, fields)
    }

    fn request(fields: &[(&str, &str)]) -> Headers {
        Headers::from_fields(fields)
    }

    const MON: &str = "Mon, 06 Nov 2023 08:00:00 GMT";
    const TUE: &str = "Tue, 07 Nov 2023 08:00:00 GMT";

    #[test]
    fn entity_tags_compare_weakly() {
        assert!(etag_list_matches(b"\"a\", W/\"b\"", b"\"b\""));
        assert!(etag_list_matches(b"\"b\"", b"W/\"b\""));
        assert!(etag_list_matches(b"*", b"\"x\""));
        assert!(!etag_list_matches(b"\"a\"", b"\"b\""));
        assert!(!etag_list_matches(b"", b"\"b\""));
        // A comma inside a tag is part of it; obs-text compares as bytes.
        assert!(etag_list_matches(b"\"a,b\"", b"\"a,b\""));
        assert!(!etag_list_matches(b"\"a,b\"", b"\"a\""));
        assert!(etag_list_matches(b"\"abc\xFC\"", b"\"abc\xFC\""));
    }

    #[test]
    fn if_none_match_decides_before_if_modified_since() {
        let s = stored(200, &[("ETag", "\"v1\""), ("Last-Modified", MON)]);
        assert!(is_not_modified(
            &request(&[("If-None-Match", "\"v1\"")]),
            &s
        ));
        // A mismatching tag wins over a matching date (RFC 9110 13.2.2 step 3).
        let both = request(&[("If-None-Match", "\"v0\""), ("If-Modified-Since", TUE)]);
        assert!(!is_not_modified(&both, &s));
        // No ETag stored: If-None-Match cannot match.
        let untagged = stored(200, &[("Last-Modified", MON)]);
        assert!(!is_not_modified(
            &request(&[("If-None-Match", "\"v1\"")]),
            &untagged
        ));
    }

    #[test]
    fn if_modified_since_compares_dates() {
        let s = stored(200, &[("Last-Modified", MON)]);
        assert!(is_not_modified(&request(&[("If-Modified-Since", MON)]), &s));
        assert!(is_not_modified(&request(&[("If-Modified-Since", TUE)]), &s));
        let earlier = stored(200, &[("Last-Modified", TUE)]);
        assert!(!is_not_modified(
            &request(&[("If-Modified-Since", MON)]),
            &earlier
        ));
        assert!(!is_not_modified(
            &request(&[("If-Modified-Since", "yesterday")]),
            &s
        ));
        assert!(!is_not_modified(&request(&[]), &s));
    }

    #[test]
    fn only_a_stored_2xx_is_compared() {
        let s = stored(404, &[("ETag", "\"v1\"")]);
        assert!(!is_not_modified(&request(&[("If-None-Match", "*")]), &s));
        assert_eq!(
            evaluate(&request(&[("If-Match", "\"x\"")]), &s),
            Precondition::Proceed
        );
    }

    /// RFC 9110 §13.1.1, §13.2.2 step 1.
    #[test]
    fn if_match_fails_on_another_or_a_weak_tag() {
        let s = stored(200, &[("ETag", "\"v1\""), ("Last-Modified", MON)]);
        assert_eq!(
            evaluate(&request(&[("If-Match", "\"v1\"")]), &s),
            Precondition::Proceed
        );
        assert_eq!(
            evaluate(&request(&[("If-Match", "\"v0\", \"v1\"")]), &s),
            Precondition::Proceed
        );
        assert_eq!(
            evaluate(&request(&[("If-Match", "*")]), &s),
            Precondition::Proceed
        );
        assert_eq!(
            evaluate(&request(&[("If-Match", "\"v0\"")]), &s),
            Precondition::Failed
        );
        assert_eq!(
            evaluate(&request(&[("If-Match", "W/\"v1\"")]), &s),
            Precondition::Failed
        );
        let weak = stored(200, &[("ETag", "W/\"v1\"")]);
        assert_eq!(
            evaluate(&request(&[("If-Match", "W/\"v1\"")]), &weak),
            Precondition::Failed
        );
        let untagged = stored(200, &[]);
        assert_eq!(
            evaluate(&request(&[("If-Match", "*")]), &untagged),
            Precondition::Failed
        );
        // If-Match wins over If-Unmodified-Since (step 2 only without it).
        let both = request(&[
            ("If-Match", "\"v1\""),
            ("If-Unmodified-Since", "Sun, 05 Nov 2023 08:00:00 GMT"),
        ]);
        assert_eq!(evaluate(&both, &s), Precondition::Proceed);
    }

    /// RFC 9110 §13.1.4, §13.2.2 step 2.
    #[test]
    fn if_unmodified_since_fails_on_a_later_change() {
        let s = stored(200, &[("Last-Modified", TUE)]);
        assert_eq!(
            evaluate(&request(&[("If-Unmodified-Since", TUE)]), &s),
            Precondition::Proceed
        );
        assert_eq!(
            evaluate(&request(&[("If-Unmodified-Since", MON)]), &s),
            Precondition::Failed
        );
        assert_eq!(
            evaluate(&request(&[("If-Unmodified-Since", "garbage")]), &s),
            Precondition::Proceed
        );
        assert_eq!(
            evaluate(&request(&[("If-Unmodified-Since", MON)]), &stored(200, &[])),
            Precondition::Failed
        );
    }

    /// RFC 9111 §4.3.2: without Last-Modified, If-Modified-Since compares
    /// the stored Date.
    #[test]
    fn if_modified_since_falls_back_to_the_stored_date() {
        let s = stored(200, &[("Date", MON)]);
        assert_eq!(
            evaluate(&request(&[("If-Modified-Since", TUE)]), &s),
            Precondition::NotModified
        );
        let s = stored(200, &[("Date", TUE)]);
        assert_eq!(
            evaluate(&request(&[("If-Modified-Since", MON)]), &s),
            Precondition::Proceed
        );
    }

    /// A failed If-Match is a 412 even when If-None-Match would be a 304.
    #[test]
    fn a_failed_precondition_wins_over_not_modified() {
        let s = stored(200, &[("ETag", "\"v1\"")]);
        let r = request(&[("If-Match", "\"v0\""), ("If-None-Match", "\"v1\"")]);
        assert_eq!(evaluate(&r, &s), Precondition::Failed);
    }

    #[test]
    fn the_304_keeps_validators_and_caching_fields_only() {
        let s = stored(
            200,
            &[
                ("ETag", "\"v1\""),
                ("Cache-Control", "max-age=60"),
                ("Content-Type", "text/plain"),
                ("Vary", "Accept"),
                ("Set-Cookie", "a=b"),
            ],
        );
        let h = not_modified_head(&s);
        assert_eq!(h.status, 304);
        assert_eq!(h.headers.get_str("etag"), Some("\"v1\""));
        assert_eq!(h.headers.get_str("cache-control"), Some("max-age=60"));
        assert_eq!(h.headers.get_str("vary"), Some("Accept"));
        assert!(!h.headers.contains("content-type") && !h.headers.contains("set-cookie"));
    }
}
