//! A `multipart/byteranges` body (RFC 9110 §14.6, RFC 2046 §5.1.1) read by
//! hand: the boundary from `Content-Type`, then each part's fields and
//! bytes. It accepts only what edgeslab should send and panics on the rest.

use super::CONTENT_TYPE;
use crate::support::Response;

/// One part of a `multipart/byteranges` body.
#[derive(Debug)]
pub struct Part {
    pub fields: Vec<(String, String)>,
    pub content_range: String,
    pub first: u64,
    pub data: Vec<u8>,
}

/// Parses a `multipart/byteranges` response by hand (RFC 9110 §14.6, RFC
/// 2046 §5.1.1): the boundary from `Content-Type`, then delimiter, part
/// fields, data, ..., close delimiter. Each part's data is as long as its
/// `Content-Range` says and must be followed by the next delimiter, so a
/// part that is a byte short or long fails here. Panics on anything else.
pub fn multipart(r: &Response) -> Vec<Part> {
    let ct = r.header("content-type").expect("a Content-Type");
    let (media, params) = ct.split_once(';').expect("a boundary parameter");
    assert_eq!(media.trim(), "multipart/byteranges", "{ct}");
    let boundary = params
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .unwrap_or_else(|| panic!("no boundary in {ct}"))
        .trim_matches('"');
    assert!(
        (1..=70).contains(&boundary.len()),
        "boundary length (RFC 2046): {boundary}"
    );
    let delimiter = format!("--{boundary}").into_bytes();
    let body = &r.body;
    // The first delimiter opens the body or follows CRLF (an empty preamble
    // either way: edgeslab sends none).
    let mut at = if body.starts_with(&delimiter) {
        delimiter.len()
    } else {
        assert!(
            body.starts_with(b"\r\n") && body[2..].starts_with(&delimiter),
            "the body does not open with the delimiter: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
        2 + delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        if body[at..].starts_with(b"--") {
            // The close delimiter; only a CRLF may follow.
            let epilogue = &body[at + 2..];
            assert!(
                epilogue.is_empty() || epilogue == b"\r\n",
                "after the close delimiter: {:?}",
                String::from_utf8_lossy(epilogue)
            );
            break;
        }
        assert!(body[at..].starts_with(b"\r\n"), "CRLF after a delimiter");
        at += 2;
        let end = body[at..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("the end of a part's fields")
            + at;
        let text = std::str::from_utf8(&body[at..end]).expect("ASCII part fields");
        let fields: Vec<(String, String)> = text
            .split("\r\n")
            .map(|l| {
                let (n, v) = l.split_once(':').expect("name: value");
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        let content_range = fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-range"))
            .map(|(_, v)| v.clone())
            .expect("a Content-Range in each part");
        let (first, last) = content_range
            .strip_prefix("bytes ")
            .and_then(|s| s.split_once('/'))
            .and_then(|(span, _)| span.split_once('-'))
            .map(|(a, b)| {
                (
                    a.parse::<u64>().expect("first"),
                    b.parse::<u64>().expect("last"),
                )
            })
            .unwrap_or_else(|| panic!("Content-Range {content_range:?}"));
        at = end + 4;
        assert!(first <= last, "Content-Range {content_range:?}");
        let len = (last + 1 - first) as usize;
        assert!(
            at + len <= body.len(),
            "part {content_range} runs past the body"
        );
        let data = body[at..at + len].to_vec();
        at += len;
        assert!(
            body[at..].starts_with(b"\r\n") && body[at + 2..].starts_with(&delimiter),
            "part {content_range} is not followed by a delimiter"
        );
        at += 2 + delimiter.len();
        parts.push(Part {
            fields,
            content_range,
            first,
            data,
        });
    }
    parts
}

/// Asserts a multipart 206 with one part per `(first, last)`, in order.
pub fn assert_multipart(r: &Response, whole: &[u8], ranges: &[(usize, usize)]) {
    assert_eq!(r.status, 206, "{}", String::from_utf8_lossy(&r.head));
    assert!(r.complete);
    assert_eq!(r.header("content-range"), None, "multipart has none on top");
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let parts = multipart(r);
    assert_eq!(parts.len(), ranges.len(), "{parts:?}");
    for (p, &(first, last)) in parts.iter().zip(ranges) {
        let expect = format!("bytes {first}-{last}/{}", whole.len());
        assert_eq!(p.content_range, expect);
        assert_eq!(p.first, first as u64);
        let ct: Vec<_> = p
            .fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .collect();
        assert_eq!(ct.len(), 1, "{expect}: {:?}", p.fields);
        assert_eq!(ct[0].1, CONTENT_TYPE, "the part keeps the object's type");
        assert!(p.data == whole[first..=last], "{expect}: the bytes differ");
    }
}
