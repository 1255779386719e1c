//! HTTP dates (RFC 9110 §5.6.7): the three formats a recipient must accept,
//! read case-insensitively as RFC 9111 §4.2 asks of caches ("THU", "aug",
//! "gmt" all parse). Pure. A value that is not a date is None, never a
//! guess.

use std::time::SystemTime;

/// Parses an HTTP-date in any of its three formats, ignoring the case of
/// day names, month names and the time zone.
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    let value = value.trim_matches([' ', '\t']);
    if let Ok(t) = httpdate::parse_http_date(value) {
        return Some(t);
    }
    // Words to the case the grammar spells them in: "Thu", "Aug", "GMT".
    let mut canonical = String::with_capacity(value.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.eq_ignore_ascii_case("gmt") {
            out.push_str("GMT");
        } else {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(chars.map(|c| c.to_ascii_lowercase()));
            }
        }
        word.clear();
    };
    for c in value.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c);
        } else {
            flush(&mut word, &mut canonical);
            canonical.push(c);
        }
    }
    flush(&mut word, &mut canonical);
    httpdate::parse_http_date(&canonical).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_formats_rfc9110_5_6_7() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("IMF-fixdate");
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
    }

    /// RFC 9111 §4.2: a cache SHOULD match dates case-insensitively.
    #[test]
    fn names_are_read_whatever_their_case() {
        let t = parse_http_date("Thu, 18 Aug 2050 02:01:18 GMT").expect("date");
        for v in [
            "THU, 18 Aug 2050 02:01:18 GMT",
            "Thu, 18 AUG 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02:01:18 gMT",
            "thu, 18 aug 2050 02:01:18 gmt",
        ] {
            assert_eq!(parse_http_date(v), Some(t), "{v}");
        }
        assert_eq!(parse_http_date("0"), None);
        assert_eq!(parse_http_date("Thu, 18 Aug 2050"), None);
    }
}
