//! Conditional requests answered from a stored response (RFC 9110 13):
//! whether a GET/HEAD's `If-None-Match` / `If-Modified-Since` lets a cache
//! answer 304, and the head of that 304. Pure: the stored head and the
//! request's fields in, a decision out. It never answers a precondition it
//! does not understand with 304; when in doubt the full response is sent.

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

/// Weak comparison of entity tags (RFC 9110 8.8.3.2): `W/"a"` matches `"a"`.
/// `list` is an If-None-Match value: `*` or a comma-separated list.
pub fn etag_list_matches(list: &str, etag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let etag = opaque(etag);
    list.split(',')
        .any(|t| t.trim() == "*" || opaque(t) == etag)
}

/// Whether a GET/HEAD with these request fields may be answered 304 from
/// `stored` (RFC 9110 13.2.2): If-None-Match decides when present, otherwise
/// If-Modified-Since against Last-Modified. Only a stored 200 is compared.
pub fn is_not_modified(request: &Headers, stored: &ResponseHead) -> bool {
    if stored.status != 200 {
        return false;
    }
    if let Some(inm) = request.get_str("if-none-match") {
        return stored
            .headers
            .get_str("etag")
            .is_some_and(|etag| etag_list_matches(inm, etag));
    }
    let date = |h: &Headers, name| {
        h.get_str(name)
            .and_then(|v| httpdate::parse_http_date(v).ok())
    };
    match (
        date(request, "if-modified-since"),
        date(&stored.headers, "last-modified"),
    ) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// The 304 that stands for `stored`.
pub fn not_modified_head(stored: &ResponseHead) -> ResponseHead {
    let mut head = ResponseHead::new(304);
    for name in NOT_MODIFIED_FIELDS {
        for v in stored.headers.get_all(name) {
            head.headers.push(name, v.to_vec());
        }
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(status: u16, fields: &[(&str, &str)]) -> ResponseHead {
        let mut h = ResponseHead::new(status);
        for (n, v) in fields {
            h.headers.push(n, *v);
        }
        h
    }

    fn request(fields: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in fields {
            h.push(n, *v);
        }
        h
    }

    const MON: &str = "Mon, 06 Nov 2023 08:00:00 GMT";
    const TUE: &str = "Tue, 07 Nov 2023 08:00:00 GMT";

    #[test]
    fn entity_tags_compare_weakly() {
        assert!(etag_list_matches("\"a\", W/\"b\"", "\"b\""));
        assert!(etag_list_matches("\"b\"", "W/\"b\""));
        assert!(etag_list_matches("*", "\"x\""));
        assert!(!etag_list_matches("\"a\"", "\"b\""));
        assert!(!etag_list_matches("", "\"b\""));
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
    fn only_a_stored_200_is_compared() {
        let s = stored(404, &[("ETag", "\"v1\"")]);
        assert!(!is_not_modified(&request(&[("If-None-Match", "*")]), &s));
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
