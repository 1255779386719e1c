//! Objects kept in parts: a representation too large to store whole (or
//! one an origin only serves in ranges) is stored as fixed-size parts, each
//! an ordinary entry under its own key, fetched from the origin with byte
//! ranges as viewers ask for them (RFC 9110 §14) and served again from the
//! parts already stored. Pure: the part arithmetic, the marker that stands
//! under the object's key, the part keys, and the check that a stored or
//! fetched part belongs to the same representation (RFC 9111 §3.4: partial
//! responses are combined only when their validators match strongly).
//!
//! The marker is an ordinary small entry: its head is the line
//! `EDGESLAB-PARTS/1 <total> <part size> <validator>` (stored heads always
//! start with `HTTP/`, so nothing else decodes as one), its body the
//! origin's response head, which every answer built from parts carries.
//! Part `i` covers bytes `[i·size, min((i+1)·size, total))` and lives under
//! the object's key text plus ` part=<size>/<i>`: its own key, so the parts
//! of one object spread over every shard, and a marker with another part
//! size never reads parts cut differently.

use super::key::CacheKey;
use crate::http::{Headers, ResponseHead};
use std::ops::Range;

const MARKER_PREFIX: &[u8] = b"EDGESLAB-PARTS/1 ";

/// What makes two responses the same representation (RFC 9110 §8.8.1): a
/// strong entity tag, or failing that a strong Last-Modified date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Validator {
    ETag(String),
    LastModified(String),
}

impl Validator {
    /// The strong validator of a response, if it has one (§8.8.2.2: a
    /// Last-Modified at least a second before Date; a weak tag never).
    pub fn of(headers: &Headers) -> Option<Validator> {
        if let Some(tag) = headers.get_str("etag") {
            return (tag.starts_with('"') && tag.len() >= 2)
                .then(|| Validator::ETag(tag.to_string()));
        }
        let modified = headers.get_str("last-modified")?;
        let date = crate::http::date::parse_http_date;
        let strong = match headers.get_str("date").and_then(date) {
            Some(d) => d
                .duration_since(date(modified)?)
                .is_ok_and(|age| age.as_secs() >= 1),
            None => date(modified).is_some(),
        };
        strong.then(|| Validator::LastModified(modified.to_string()))
    }

    fn encode(&self) -> String {
        match self {
            Validator::ETag(t) => format!("etag {t}"),
            Validator::LastModified(d) => format!("last-modified {d}"),
        }
    }

    fn decode(s: &str) -> Option<Validator> {
        let (kind, value) = s.split_once(' ')?;
        match kind {
            "etag" => Some(Validator::ETag(value.to_string())),
            "last-modified" => Some(Validator::LastModified(value.to_string())),
            _ => None,
        }
    }

    /// Whether a response carries this very validator.
    pub fn matches(&self, headers: &Headers) -> bool {
        Validator::of(headers).as_ref() == Some(self)
    }
}

/// An object stored in parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartsMarker {
    pub total: u64,
    pub part_size: u64,
    pub validator: Validator,
}

impl PartsMarker {
    /// The marker's stored head line.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MARKER_PREFIX.to_vec();
        out.extend_from_slice(
            format!(
                "{} {} {}",
                self.total,
                self.part_size,
                self.validator.encode()
            )
            .as_bytes(),
        );
        out
    }

    /// Reads a stored head that is a parts marker; None for anything else.
    pub fn decode(head: &[u8]) -> Option<PartsMarker> {
        let rest = std::str::from_utf8(head.strip_prefix(MARKER_PREFIX)?).ok()?;
        let mut fields = rest.splitn(3, ' ');
        let total = fields.next()?.parse().ok()?;
        let part_size: u64 = fields.next()?.parse().ok()?;
        let validator = Validator::decode(fields.next()?)?;
        (part_size > 0).then_some(PartsMarker {
            total,
            part_size,
            validator,
        })
    }

    /// How many parts the object has.
    pub fn parts(&self) -> u64 {
        self.total.div_ceil(self.part_size)
    }

    /// The bytes part `i` covers.
    pub fn part(&self, i: u64) -> Range<u64> {
        let start = i * self.part_size;
        start.min(self.total)..(start + self.part_size).min(self.total)
    }

    /// The parts holding the bytes of `range` (not empty).
    pub fn parts_for(&self, range: &Range<u64>) -> Range<u64> {
        range.start / self.part_size..(range.end - 1) / self.part_size + 1
    }

    /// The key part `i` of the object under `key` is stored under.
    pub fn part_key(&self, key: &CacheKey, i: u64) -> CacheKey {
        CacheKey::from_text(format!("{} part={}/{i}", key.as_str(), self.part_size))
    }

    /// Whether a response (stored or just fetched) is part `i` of this
    /// object: a 206 of exactly the part's bytes of the same total length,
    /// with the same strong validator.
    pub fn is_part(&self, i: u64, head: &ResponseHead) -> bool {
        let want = self.part(i);
        head.status == 206
            && self.validator.matches(&head.headers)
            && head
                .headers
                .get_str("content-range")
                .and_then(parse_content_range)
                == Some((want.start, want.end, self.total))
    }
}

/// `bytes first-last/complete` (RFC 9110 §14.4) as (first, end, complete)
/// with `end` exclusive; an unknown complete length (`*`) is not accepted.
pub fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (first, last, total) = (number(first)?, number(last)?, number(total)?);
    (first <= last && last < total).then_some((first, last + 1, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker() -> PartsMarker {
        PartsMarker {
            total: 25,
            part_size: 10,
            validator: Validator::ETag("\"v1\"".into()),
        }
    }

    fn head(status: u16, fields: &[(&str, &str)]) -> ResponseHead {
        ResponseHead::with_fields(status, fields)
    }

    #[test]
    fn markers_round_trip_and_nothing_else_decodes_as_one() {
        let m = marker();
        assert_eq!(PartsMarker::decode(&m.encode()), Some(m));
        let lm = PartsMarker {
            validator: Validator::LastModified("Mon, 06 Nov 2023 08:00:00 GMT".into()),
            ..marker()
        };
        assert_eq!(PartsMarker::decode(&lm.encode()), Some(lm));
        assert_eq!(PartsMarker::decode(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(PartsMarker::decode(b"EDGESLAB-VARY/1 3 accept"), None);
        assert_eq!(
            PartsMarker::decode(b"EDGESLAB-PARTS/1 25 0 etag \"x\""),
            None
        );
    }

    #[test]
    fn parts_cover_the_object_and_the_last_is_short() {
        let m = marker();
        assert_eq!(m.parts(), 3);
        assert_eq!((m.part(0), m.part(1), m.part(2)), (0..10, 10..20, 20..25));
        assert_eq!(m.parts_for(&(0..1)), 0..1);
        assert_eq!(m.parts_for(&(9..11)), 0..2);
        assert_eq!(m.parts_for(&(20..25)), 2..3);
        assert_eq!(m.parts_for(&(0..25)), 0..3);
    }

    #[test]
    fn part_keys_differ_by_part_and_by_part_size() {
        let key = CacheKey::from_text("http://h:80/big".into());
        let m = marker();
        assert_ne!(m.part_key(&key, 0), m.part_key(&key, 1));
        let other = PartsMarker {
            part_size: 20,
            ..marker()
        };
        assert_ne!(m.part_key(&key, 0), other.part_key(&key, 0));
        assert_eq!(m.part_key(&key, 2).as_str(), "http://h:80/big part=10/2");
    }

    /// RFC 9111 §3.4: only responses with the same strong validator combine.
    #[test]
    fn a_part_must_be_the_same_representation() {
        let m = marker();
        let good = head(
            206,
            &[("ETag", "\"v1\""), ("Content-Range", "bytes 10-19/25")],
        );
        assert!(m.is_part(1, &good));
        assert!(!m.is_part(0, &good), "another part's bytes");
        let changed = head(
            206,
            &[("ETag", "\"v2\""), ("Content-Range", "bytes 10-19/25")],
        );
        assert!(!m.is_part(1, &changed));
        let weak = head(
            206,
            &[("ETag", "W/\"v1\""), ("Content-Range", "bytes 10-19/25")],
        );
        assert!(!m.is_part(1, &weak));
        let longer = head(
            206,
            &[("ETag", "\"v1\""), ("Content-Range", "bytes 10-19/26")],
        );
        assert!(!m.is_part(1, &longer), "another total length");
        let whole = head(200, &[("ETag", "\"v1\"")]);
        assert!(!m.is_part(1, &whole));
    }

    #[test]
    fn validators_are_strong_only() {
        let h = |fields: &[(&str, &str)]| head(200, fields).headers;
        assert_eq!(
            Validator::of(&h(&[("ETag", "\"a\"")])),
            Some(Validator::ETag("\"a\"".into()))
        );
        assert_eq!(Validator::of(&h(&[("ETag", "W/\"a\"")])), None);
        let lm = "Mon, 06 Nov 2023 08:00:00 GMT";
        let later = "Mon, 06 Nov 2023 09:00:00 GMT";
        assert!(Validator::of(&h(&[("Last-Modified", lm), ("Date", later)])).is_some());
        assert_eq!(
            Validator::of(&h(&[("Last-Modified", lm), ("Date", lm)])),
            None
        );
        assert_eq!(Validator::of(&h(&[])), None);
    }

    #[test]
    fn content_ranges_rfc9110_14_4() {
        assert_eq!(parse_content_range("bytes 0-9/25"), Some((0, 10, 25)));
        assert_eq!(parse_content_range("bytes 20-24/25"), Some((20, 25, 25)));
        for bad in [
            "bytes 0-9/*",
            "bytes */25",
            "bytes 9-0/25",
            "bytes 0-25/25",
            "items 0-1/2",
            "bytes 0-9",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }
}
