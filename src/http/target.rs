//! Normalising a request's target and authority (RFC 3986 6.2.2 and 5.2.4,
//! RFC 9110 4.2.3), once, in the codec: the normal form is what the cache
//! key is built from *and* what is forwarded upstream, so an origin can
//! never answer for one path while the cache stores the answer under
//! another. A target that has no safe normal form is refused (400) rather
//! than stored under a key that names something else. Pure: strings in,
//! strings out; nothing here allocates more than the target's own length.

use std::borrow::Cow;

/// Why a request-target cannot be normalised safely; each is a 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnsafeTarget {
    /// A `%` not followed by two hex digits (RFC 3986 2.1).
    MalformedEscape,
    /// `%00`–`%1F` or `%7F`: a NUL or control character, which origins
    /// truncate or interpret differently.
    EncodedControl,
    /// The percent-decoded path is not UTF-8.
    InvalidUtf8,
    /// A literal `\`: some origins treat it as `/`, so the segments they
    /// resolve would not be the ones the key names.
    Backslash,
    /// `%2F` or `%5C` delimiting a `.` or `..` segment: an origin that
    /// decodes it resolves a dot-segment that the key does not.
    EncodedSlashAtDotSegment,
    /// More `..` segments than there are segments above them.
    AboveRoot,
}

impl UnsafeTarget {
    /// The 400 response's explanation.
    pub fn message(self) -> &'static str {
        match self {
            UnsafeTarget::MalformedEscape => "malformed percent-encoding in the request path",
            UnsafeTarget::EncodedControl => {
                "percent-encoded NUL or control character in the request path"
            }
            UnsafeTarget::InvalidUtf8 => "the request path is not UTF-8 once percent-decoded",
            UnsafeTarget::Backslash => "backslash in the request path",
            UnsafeTarget::EncodedSlashAtDotSegment => {
                "encoded slash or backslash next to a dot-segment in the request path"
            }
            UnsafeTarget::AboveRoot => "the request path climbs above the root with '..'",
        }
    }
}

/// The normal form of an origin-form target (`/path?query`): the path with
/// percent-encoded unreserved characters decoded (RFC 3986 6.2.2.2), the
/// hex of every other escape in upper case (6.2.2.1) and dot-segments
/// removed (6.2.2.3, by the algorithm of 5.2.4). Encoded slashes are kept
/// (RFC 3986 2.2: `/a%2Fb` is not `/a/b`, and names such as npm's
/// `/@scope%2Fname` depend on it); only one that would make a dot-segment
/// for an origin decoding it is refused. The query is kept byte for
/// byte: it is the origin's to interpret, and signed URLs depend on its
/// exact bytes. Borrowed when already normal.
pub fn normalise_origin_form(target: &str) -> Result<Cow<'_, str>, UnsafeTarget> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if path.contains('\\') {
        return Err(UnsafeTarget::Backslash);
    }
    if !path.contains('%') && !has_dot_segment(path) {
        return Ok(Cow::Borrowed(target));
    }
    let decoded = decode_unreserved(path)?;
    let mut out = remove_dot_segments(&decoded)?;
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(if out == target {
        Cow::Borrowed(target)
    } else {
        Cow::Owned(out)
    })
}

/// The normal form of an authority (RFC 9110 4.2.3): host in lower case,
/// the default port (80) and an empty port omitted, leading zeros of a
/// port dropped.
pub fn normalise_authority(authority: &str) -> String {
    let mut lower = crate::spare::string_of(authority);
    lower.make_ascii_lowercase();
    // The port follows the last colon, unless that colon is inside an IPv6
    // literal ("[::1]") or the host is a bare IPv6 address (no brackets).
    let port_colon = match lower.rfind(':') {
        Some(i) if lower.starts_with('[') && lower[i..].contains(']') => None,
        Some(i) if !lower.starts_with('[') && lower[..i].contains(':') => None,
        other => other,
    };
    let Some(i) = port_colon else {
        return lower;
    };
    match lower[i + 1..].parse::<u16>() {
        Err(_) if lower.len() == i + 1 => lower.truncate(i),
        Ok(80) => lower.truncate(i),
        // "080" is port 80 too; leading zeros are not part of the number.
        Ok(port) => {
            let mut number = itoa::Buffer::new();
            let port = number.format(port);
            if lower[i + 1..] != *port {
                lower.truncate(i + 1);
                lower.push_str(port);
            }
        }
        Err(_) => {}
    }
    lower
}

/// Whether a path has a `.` or `..` segment (only such paths change when
/// dot-segments are removed, once escapes are decoded).
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..")
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes unreserved escapes and upper-cases the others, checking on the
/// way everything that makes a path unsafe to normalise except dot-segments.
fn decode_unreserved(path: &str) -> Result<String, UnsafeTarget> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    // Every escape decoded, to check that the path means UTF-8 text.
    let mut meaning = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            meaning.push(b[i]);
            i += 1;
            continue;
        }
        let (Some(h), Some(l)) = (
            b.get(i + 1).copied().and_then(hex_value),
            b.get(i + 2).copied().and_then(hex_value),
        ) else {
            return Err(UnsafeTarget::MalformedEscape);
        };
        let c = h * 16 + l;
        if c < 0x20 || c == 0x7f {
            return Err(UnsafeTarget::EncodedControl);
        }
        if is_unreserved(c) {
            out.push(c);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(h)], HEX[usize::from(l)]]);
        }
        meaning.push(c);
        i += 3;
    }
    if std::str::from_utf8(&meaning).is_err() {
        return Err(UnsafeTarget::InvalidUtf8);
    }
    // Only ASCII bytes were swapped for ASCII bytes in a UTF-8 string.
    String::from_utf8(out).map_err(|_| UnsafeTarget::InvalidUtf8)
}

/// RFC 3986 5.2.4 on an absolute path, except that a `..` with nothing left
/// to remove is refused instead of being dropped: the origin might not drop
/// it. A segment that `%2F`/`%5C` splits into a dot-segment is refused too.
fn remove_dot_segments(path: &str) -> Result<String, UnsafeTarget> {
    let mut kept: Vec<&str> = Vec::new();
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." => {}
            ".." => {
                kept.pop().ok_or(UnsafeTarget::AboveRoot)?;
            }
            s => {
                if splits_into_dot_segment(s) {
                    return Err(UnsafeTarget::EncodedSlashAtDotSegment);
                }
                kept.push(s);
                continue;
            }
        }
        // "/a/." and "/a/b/.." name the directory: keep its trailing slash.
        if last {
            kept.push("");
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Whether a segment (escapes already upper-cased) holds `.` or `..`
/// between encoded slashes or backslashes.
fn splits_into_dot_segment(segment: &str) -> bool {
    if !segment.contains("%2F") && !segment.contains("%5C") {
        return false;
    }
    segment
        .split("%2F")
        .flat_map(|s| s.split("%5C"))
        .any(|s| s == "." || s == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(t: &str) -> Result<String, UnsafeTarget> {
        normalise_origin_form(t).map(Cow::into_owned)
    }

    #[test]
    fn normal_targets_are_borrowed() {
        for t in ["/", "/a/b", "/a/b/", "/a.b/..c/.d", "/x?y=/../z", "/a//b"] {
            assert!(
                matches!(normalise_origin_form(t), Ok(Cow::Borrowed(_))),
                "{t}"
            );
        }
        // Already normal escapes are borrowed too.
        assert!(matches!(
            normalise_origin_form("/a%2Fb%C3%A9"),
            Ok(Cow::Borrowed(_))
        ));
    }

    /// RFC 3986 5.2.4's examples and 6.2.2.3: dot-segments are removed.
    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(norm("/a/b/c/./../../g").as_deref(), Ok("/a/g"));
        assert_eq!(norm("/x/../b").as_deref(), Ok("/b"));
        assert_eq!(norm("/a/./b").as_deref(), Ok("/a/b"));
        assert_eq!(norm("/a/b/..").as_deref(), Ok("/a/"));
        assert_eq!(norm("/a/.").as_deref(), Ok("/a/"));
        assert_eq!(norm("/a/./").as_deref(), Ok("/a/"));
        assert_eq!(norm("/a/..").as_deref(), Ok("/"));
        assert_eq!(norm("/.").as_deref(), Ok("/"));
        assert_eq!(norm("/a//../b").as_deref(), Ok("/a/b"));
        assert_eq!(norm("/x/../b?q=../c").as_deref(), Ok("/b?q=../c"));
    }

    /// RFC 3986 6.2.2.1 and 6.2.2.2 (RFC 9110 4.2.3): unreserved characters
    /// are decoded, the hex of other escapes is upper-cased; decoding
    /// happens before dot-segments are removed.
    #[test]
    fn escapes_are_normalised() {
        assert_eq!(norm("/%62").as_deref(), Ok("/b"));
        assert_eq!(
            norm("/%7esmith/home.html").as_deref(),
            Ok("/~smith/home.html")
        );
        assert_eq!(norm("/%41%2d%5F%2E").as_deref(), Ok("/A-_."));
        assert_eq!(norm("/x/%2e%2e/b").as_deref(), Ok("/b"));
        assert_eq!(norm("/x/%2E/b").as_deref(), Ok("/x/b"));
        assert_eq!(norm("/a%2fb").as_deref(), Ok("/a%2Fb"));
        assert_eq!(norm("/caf%c3%a9").as_deref(), Ok("/caf%C3%A9"));
        assert_eq!(norm("/a%20b%25").as_deref(), Ok("/a%20b%25"));
        // One level only: %252e is "%2e" as text, not a dot.
        assert_eq!(norm("/x/%252e%252e/b").as_deref(), Ok("/x/%252e%252e/b"));
        // The query keeps its bytes.
        assert_eq!(norm("/%62?%62=%2e").as_deref(), Ok("/b?%62=%2e"));
    }

    #[test]
    fn unsafe_targets_are_refused() {
        let cases = [
            ("/a%", UnsafeTarget::MalformedEscape),
            ("/a%4", UnsafeTarget::MalformedEscape),
            ("/a%zz", UnsafeTarget::MalformedEscape),
            ("/a%00b", UnsafeTarget::EncodedControl),
            ("/a%0d%0aX:%20y", UnsafeTarget::EncodedControl),
            ("/a%7F", UnsafeTarget::EncodedControl),
            ("/a%FF", UnsafeTarget::InvalidUtf8),
            ("/a%C3", UnsafeTarget::InvalidUtf8),
            ("/a\\b", UnsafeTarget::Backslash),
            ("/a/..%2Fb", UnsafeTarget::EncodedSlashAtDotSegment),
            ("/a%2F..%2Fb", UnsafeTarget::EncodedSlashAtDotSegment),
            ("/a%2f%2e%2e", UnsafeTarget::EncodedSlashAtDotSegment),
            ("/.%5Cb", UnsafeTarget::EncodedSlashAtDotSegment),
            ("/..", UnsafeTarget::AboveRoot),
            ("/../b", UnsafeTarget::AboveRoot),
            ("/a/../../b", UnsafeTarget::AboveRoot),
            ("/%2e%2e/etc/passwd", UnsafeTarget::AboveRoot),
        ];
        for (t, why) in cases {
            assert_eq!(norm(t), Err(why), "{t}");
            assert!(!why.message().is_empty());
        }
        // Encoded slashes away from dot-segments are kept, and so is a
        // backslash in the query, which is the origin's to read.
        assert_eq!(norm("/a%2F%2Fb/c").as_deref(), Ok("/a%2F%2Fb/c"));
        assert_eq!(norm("/a%2F.b").as_deref(), Ok("/a%2F.b"));
        assert_eq!(norm("/a?b\\c").as_deref(), Ok("/a?b\\c"));
    }

    /// RFC 9110 4.2.3: `http://example.com:80/`, `http://EXAMPLE.com/` and
    /// `http://EXAMPLE.com:/` are equivalent.
    #[test]
    fn authorities_are_normalised() {
        for a in [
            "example.com:80",
            "EXAMPLE.com",
            "EXAMPLE.com:",
            "example.com",
        ] {
            assert_eq!(normalise_authority(a), "example.com", "{a}");
        }
        assert_eq!(normalise_authority("Example.com:8080"), "example.com:8080");
        assert_eq!(normalise_authority("example.com:080"), "example.com");
        assert_eq!(normalise_authority("example.com:0081"), "example.com:81");
        assert_eq!(normalise_authority("example.com:+8080"), "example.com:8080");
        assert_eq!(normalise_authority("[::1]:80"), "[::1]");
        assert_eq!(normalise_authority("[::1]:8080"), "[::1]:8080");
        assert_eq!(normalise_authority("[::1]"), "[::1]");
        assert_eq!(normalise_authority("::1"), "::1");
    }
}
