//! Byte ranges (RFC 9110 §14): parsing a `Range` field, resolving it
//! against a representation's length, `If-Range` (§13.1.5), and the framing
//! of 206 responses — `Content-Range` for one range, `multipart/byteranges`
//! (§14.6) for several. Pure: a length and fields in, a plan out. When a
//! range cannot be honoured safely it is ignored (a full 200), as the RFC
//! allows; a valid but unsatisfiable one is a 416.

use super::headers::Headers;
use super::response::ResponseHead;
use std::ops::Range;

/// More ranges than this in one request are ignored (§14.2 lets a server
/// ignore many small ranges; they are a denial-of-service shape).
pub const MAX_RANGES: usize = 32;

/// One range-spec of a `bytes` ranges-specifier (§14.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRangeSpec {
    /// `first-last` or `first-`.
    From { first: u64, last: Option<u64> },
    /// `-n`: the final n bytes.
    Suffix(u64),
}

/// What to send for a request's `Range` against a representation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangePlan {
    /// The whole representation, as a 200.
    Full,
    /// These byte ranges (half-open), as a 206; one range is sent plain
    /// with `Content-Range`, several as `multipart/byteranges`.
    Partial(Vec<Range<u64>>),
    /// A 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Parses a `Range` value. None when it is not a valid `bytes`
/// ranges-specifier (another unit, or broken syntax): the field is then
/// ignored (§14.2).
pub fn parse_range(value: &str) -> Option<Vec<ByteRangeSpec>> {
    let (unit, set) = value.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for spec in set.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (first, last) = spec.split_once('-')?;
        let (first, last) = (first.trim(), last.trim());
        let spec = if first.is_empty() {
            ByteRangeSpec::Suffix(number(last)?)
        } else {
            let first = number(first)?;
            let last = if last.is_empty() {
                None
            } else {
                Some(number(last)?)
            };
            // §14.1.1: last-pos below first-pos makes the spec invalid.
            if last.is_some_and(|l| l < first) {
                return None;
            }
            ByteRangeSpec::From { first, last }
        };
        specs.push(spec);
    }
    (!specs.is_empty()).then_some(specs)
}

/// A decimal number of octets; huge values saturate rather than fail
/// (§14.1.2: recipients must anticipate large numerals).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

/// Resolves specs against a representation of `len` bytes (§14.1.2).
pub fn resolve(specs: &[ByteRangeSpec], len: u64) -> RangePlan {
    // §14.2: a server MAY ignore a Range on an empty representation.
    if len == 0 || specs.len() > MAX_RANGES {
        return RangePlan::Full;
    }
    let ranges: Vec<Range<u64>> = specs
        .iter()
        .filter_map(|spec| match *spec {
            ByteRangeSpec::From { first, .. } if first >= len => None,
            ByteRangeSpec::From { first, last } => {
                let end = last.map_or(len, |l| l.saturating_add(1).min(len));
                Some(first..end)
            }
            ByteRangeSpec::Suffix(0) => None,
            ByteRangeSpec::Suffix(n) => Some(len.saturating_sub(n)..len),
        })
        .collect();
    if ranges.is_empty() {
        return RangePlan::Unsatisfiable;
    }
    // Overlapping ranges that add up to more than the whole are a
    // denial-of-service shape (§14.2, §17.15): send the whole once instead.
    let asked: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    if asked > len {
        return RangePlan::Full;
    }
    RangePlan::Partial(ranges)
}

/// The plan for a GET's `Range` against a stored or arriving 200 of `len`
/// bytes, after `If-Range` (§13.1.5). Other methods, other statuses and a
/// false `If-Range` get the full representation (§14.2).
pub fn plan(request: &Headers, is_get: bool, response: &ResponseHead, len: u64) -> RangePlan {
    let Some(value) = request.get_str("range") else {
        return RangePlan::Full;
    };
    if !is_get || response.status != 200 || !if_range_holds(request, response) {
        return RangePlan::Full;
    }
    match parse_range(value) {
        Some(specs) => resolve(&specs, len),
        None => RangePlan::Full,
    }
}

/// Whether `If-Range` (if any) lets the Range apply (§13.1.5): a strong
/// entity-tag match, or an exact date match with a Last-Modified that is a
/// strong validator (at least a second older than the response's Date,
/// §8.8.2.2).
pub fn if_range_holds(request: &Headers, response: &ResponseHead) -> bool {
    let Some(cond) = request.get_str("if-range") else {
        return true;
    };
    if cond.starts_with('"') || cond.starts_with("W/") {
        let etag = response.headers.get_str("etag");
        return !cond.starts_with("W/") && etag.is_some_and(|e| !e.starts_with("W/") && e == cond);
    }
    let date = super::date::parse_http_date;
    let (Some(asked), Some(modified)) = (
        date(cond),
        response.headers.get_str("last-modified").and_then(date),
    ) else {
        return false;
    };
    let strong = response
        .headers
        .get_str("date")
        .and_then(date)
        .is_none_or(|d| {
            d.duration_since(modified)
                .is_ok_and(|age| age.as_secs() >= 1)
        });
    strong && asked == modified
}

/// `Content-Range` of one range of a `len`-byte representation.
pub fn content_range(r: &Range<u64>, len: u64) -> String {
    format!("bytes {}-{}/{len}", r.start, r.end - 1)
}

/// `Content-Range` of a 416.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// The framing of a `multipart/byteranges` body (§14.6): the part headers
/// between the ranges' bytes, and its exact length up front.
#[derive(Clone, Debug)]
pub struct Multipart {
    boundary: String,
    content_type: Option<String>,
    len: u64,
    ranges: Vec<Range<u64>>,
}

impl Multipart {
    /// `seed` makes the boundary differ between responses; it need not be
    /// secret, only absent from the data, which 20 hex digits of a varying
    /// value make overwhelmingly likely (RFC 2046 §5.1.1).
    pub fn new(
        ranges: Vec<Range<u64>>,
        len: u64,
        content_type: Option<&str>,
        seed: u64,
    ) -> Multipart {
        Multipart {
            boundary: format!("edgeslab-{seed:020x}"),
            content_type: content_type.map(str::to_string),
            len,
            ranges,
        }
    }

    pub fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }

    /// The `Content-Type` of the whole response.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// The bytes before part `i`'s data.
    pub fn part_head(&self, i: usize) -> Vec<u8> {
        let mut h = format!("\r\n--{}\r\n", self.boundary);
        if let Some(ct) = &self.content_type {
            h.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        h.push_str(&format!(
            "Content-Range: {}\r\n\r\n",
            content_range(&self.ranges[i], self.len)
        ));
        h.into_bytes()
    }

    /// The bytes after the last part.
    pub fn tail(&self) -> Vec<u8> {
        format!("\r\n--{}--\r\n", self.boundary).into_bytes()
    }

    /// The body's length, for Content-Length.
    pub fn body_len(&self) -> u64 {
        let parts: u64 = (0..self.ranges.len())
            .map(|i| self.part_head(i).len() as u64 + (self.ranges[i].end - self.ranges[i].start))
            .sum();
        parts + self.tail().len() as u64
    }
}

/// The part of a body stream that falls in one range: feed it the pieces
/// as they arrive, in order, and write what it returns.
#[derive(Clone, Debug)]
pub struct Window {
    range: Range<u64>,
    pos: u64,
}

impl Window {
    pub fn new(range: Range<u64>) -> Window {
        Window { range, pos: 0 }
    }

    /// A window over a stream whose first piece starts at byte `pos`.
    pub fn starting_at(range: Range<u64>, pos: u64) -> Window {
        Window { range, pos }
    }

    /// The bytes of `piece` (which starts where the previous one ended)
    /// inside the range.
    pub fn clip<'p>(&mut self, piece: &'p [u8]) -> &'p [u8] {
        let start = self.pos;
        self.pos += piece.len() as u64;
        let from = self.range.start.clamp(start, self.pos) - start;
        let to = self.range.end.clamp(start, self.pos) - start;
        &piece[from as usize..to as usize]
    }

    /// Whether every byte of the range has gone by.
    pub fn done(&self) -> bool {
        self.pos >= self.range.end
    }

    /// Where the range ends (exclusive): a body longer than this goes on
    /// after the window is done.
    pub fn end(&self) -> u64 {
        self.range.end
    }

    /// Bytes the window lets through in all.
    pub fn len(&self) -> u64 {
        self.range.end - self.range.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
// A plan of one range is written as a one-element Vec of ranges on purpose.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn specs(v: &str) -> Vec<ByteRangeSpec> {
        parse_range(v).expect("valid")
    }

    #[test]
    fn parses_the_examples_of_rfc9110_14_1_2() {
        use ByteRangeSpec::*;
        assert_eq!(
            specs("bytes=0-499"),
            [From {
                first: 0,
                last: Some(499)
            }]
        );
        assert_eq!(specs("bytes=-500"), [Suffix(500)]);
        assert_eq!(
            specs("bytes=9500-"),
            [From {
                first: 9500,
                last: None
            }]
        );
        assert_eq!(
            specs("bytes=0-0,-1"),
            [
                From {
                    first: 0,
                    last: Some(0)
                },
                Suffix(1)
            ]
        );
        assert_eq!(specs("bytes= 0-999, 4500-5499, -1000").len(), 3);
        assert_eq!(
            specs("BYTES=1-2"),
            [From {
                first: 1,
                last: Some(2)
            }]
        );
        // §14.1.2: large numerals must not break parsing.
        assert_eq!(
            specs("bytes=99999999999999999999999-"),
            [From {
                first: u64::MAX,
                last: None
            }]
        );
    }

    #[test]
    fn invalid_specifiers_are_ignored() {
        for v in [
            "bytes=5-1",
            "bytes=",
            "bytes=a-b",
            "items=0-1",
            "bytes 0-1",
            "bytes=--1",
            "bytes=1",
        ] {
            assert_eq!(parse_range(v), None, "{v}");
        }
    }

    #[test]
    fn resolution_against_a_length_rfc9110_14_1_2() {
        let r = |v: &str, len| resolve(&specs(v), len);
        assert_eq!(r("bytes=0-499", 10000), RangePlan::Partial(vec![0..500]));
        assert_eq!(
            r("bytes=-500", 10000),
            RangePlan::Partial(vec![9500..10000])
        );
        assert_eq!(
            r("bytes=9500-", 10000),
            RangePlan::Partial(vec![9500..10000])
        );
        assert_eq!(
            r("bytes=9500-20000", 10000),
            RangePlan::Partial(vec![9500..10000])
        );
        assert_eq!(
            r("bytes=0-0,-1", 10000),
            RangePlan::Partial(vec![0..1, 9999..10000])
        );
        // A suffix longer than the representation is the whole of it.
        assert_eq!(r("bytes=-500", 100), RangePlan::Partial(vec![0..100]));
        assert_eq!(r("bytes=10000-", 10000), RangePlan::Unsatisfiable);
        assert_eq!(r("bytes=-0", 10000), RangePlan::Unsatisfiable);
        // Unsatisfiable specs are dropped while others are served.
        assert_eq!(r("bytes=0-1,20000-", 10000), RangePlan::Partial(vec![0..2]));
        // Empty representations are sent whole (§14.2 MAY ignore).
        assert_eq!(r("bytes=0-1", 0), RangePlan::Full);
    }

    #[test]
    fn abusive_range_sets_get_the_whole_once() {
        assert_eq!(resolve(&specs("bytes=0-,0-,0-"), 100), RangePlan::Full);
        let many = format!(
            "bytes={}",
            (0..=MAX_RANGES)
                .map(|i| format!("{i}-{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(resolve(&specs(&many), 1000), RangePlan::Full);
    }

    fn response(fields: &[(&str, &str)]) -> ResponseHead {
        ResponseHead::with_fields(200, fields)
    }

    fn request(fields: &[(&str, &str)]) -> Headers {
        Headers::from_fields(fields)
    }

    const LM: &str = "Mon, 06 Nov 2023 08:00:00 GMT";
    const LATER: &str = "Mon, 06 Nov 2023 09:00:00 GMT";

    #[test]
    fn if_range_rfc9110_13_1_5() {
        let stored = response(&[("ETag", "\"v1\""), ("Last-Modified", LM), ("Date", LATER)]);
        assert!(if_range_holds(&request(&[]), &stored));
        assert!(if_range_holds(&request(&[("If-Range", "\"v1\"")]), &stored));
        assert!(!if_range_holds(
            &request(&[("If-Range", "\"v0\"")]),
            &stored
        ));
        assert!(
            !if_range_holds(&request(&[("If-Range", "W/\"v1\"")]), &stored),
            "weak never matches"
        );
        let weak = response(&[("ETag", "W/\"v1\"")]);
        assert!(!if_range_holds(&request(&[("If-Range", "\"v1\"")]), &weak));
        assert!(
            if_range_holds(&request(&[("If-Range", LM)]), &stored),
            "exact date"
        );
        assert!(
            !if_range_holds(&request(&[("If-Range", LATER)]), &stored),
            "not 'earlier than'"
        );
        let same_second = response(&[("Last-Modified", LM), ("Date", LM)]);
        assert!(
            !if_range_holds(&request(&[("If-Range", LM)]), &same_second),
            "weak date"
        );
    }

    #[test]
    fn plan_applies_only_to_a_get_of_a_200() {
        let stored = response(&[]);
        let ranged = request(&[("Range", "bytes=0-9")]);
        assert_eq!(
            plan(&ranged, true, &stored, 100),
            RangePlan::Partial(vec![0..10])
        );
        assert_eq!(
            plan(&ranged, false, &stored, 100),
            RangePlan::Full,
            "HEAD ignores Range"
        );
        assert_eq!(plan(&request(&[]), true, &stored, 100), RangePlan::Full);
        let not_ok = ResponseHead::new(404);
        assert_eq!(plan(&ranged, true, &not_ok, 100), RangePlan::Full);
        let stale_range = request(&[("Range", "bytes=0-9"), ("If-Range", "\"old\"")]);
        let tagged = response(&[("ETag", "\"new\"")]);
        assert_eq!(plan(&stale_range, true, &tagged, 100), RangePlan::Full);
    }

    #[test]
    fn a_window_clips_a_stream_to_its_range() {
        let mut w = Window::new(5..12);
        assert_eq!(w.clip(b"0123"), b"");
        assert_eq!(w.clip(b"456789"), b"56789");
        assert!(!w.done());
        assert_eq!(w.clip(b"abcdef"), b"ab");
        assert!(w.done());
        assert_eq!(w.end(), 12);
        assert_eq!(w.clip(b"zz"), b"");
        let mut whole = Window::new(0..3);
        assert_eq!(whole.clip(b"abc"), b"abc");
        assert!(whole.done());
    }

    #[test]
    fn multipart_framing_rfc9110_14_6() {
        let m = Multipart::new(vec![0..2, 8..10], 10, Some("text/plain"), 0xabc);
        assert_eq!(
            m.content_type(),
            "multipart/byteranges; boundary=edgeslab-00000000000000000abc"
        );
        let head0 = String::from_utf8(m.part_head(0)).expect("ascii");
        assert_eq!(
            head0,
            "\r\n--edgeslab-00000000000000000abc\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n"
        );
        let body: Vec<u8> = [
            m.part_head(0),
            b"ab".to_vec(),
            m.part_head(1),
            b"ij".to_vec(),
            m.tail(),
        ]
        .concat();
        assert_eq!(m.body_len(), body.len() as u64);
        assert!(
            String::from_utf8(body)
                .expect("ascii")
                .ends_with("--edgeslab-00000000000000000abc--\r\n")
        );
        assert_eq!(content_range(&(5..10), 10), "bytes 5-9/10");
        assert_eq!(unsatisfied_range(10), "bytes */10");
    }
}
