//! HTTP dates (RFC 9110 §5.6.7): the three formats a recipient must accept,
//! read case-insensitively as RFC 9111 §4.2 asks of caches ("THU", "aug",
//! "gmt" all parse). Pure. A value that is not a date is None, never a
//! guess.

use std::time::SystemTime;

/// Parses an HTTP-date in any of its three formats, ignoring the case of
/// day names, month names and the time zone.
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    let value = value.trim_matches([' ', '\t']);
    if let Some(t) = Recent::find(value) {
        return Some(t);
    }
    let t = parse_trimmed(value)?;
    Recent::keep(value, t);
    Some(t)
}

/// The dates this thread parsed last, with their values. A response
/// carries the same few dates as the ones before it (`Date` moves once a
/// second, `Last-Modified` seldom), and each is read on every fill.
struct Recent {
    slots: [(RecentDate, SystemTime); 2],
    /// The slot the next new date replaces (the one not found last).
    next: usize,
}

/// The bytes of a date as received (IMF-fixdate is 29 bytes; the obsolete
/// formats are shorter); longer values are not kept.
#[derive(Clone, Copy, PartialEq, Eq)]
struct RecentDate {
    len: u8,
    bytes: [u8; 32],
}

impl RecentDate {
    fn of(value: &str) -> Option<RecentDate> {
        let mut d = RecentDate {
            len: u8::try_from(value.len()).ok().filter(|&n| n <= 32)?,
            bytes: [0; 32],
        };
        d.bytes[..value.len()].copy_from_slice(value.as_bytes());
        Some(d)
    }
}

thread_local! {
    static RECENT: std::cell::RefCell<Recent> = const {
        std::cell::RefCell::new(Recent {
            slots: [(RecentDate { len: 0, bytes: [0; 32] }, SystemTime::UNIX_EPOCH); 2],
            next: 0,
        })
    };
}

impl Recent {
    fn find(value: &str) -> Option<SystemTime> {
        let key = RecentDate::of(value)?;
        RECENT.with_borrow_mut(|r| {
            // An empty slot (length 0) never matches: empty values are not kept.
            let i = r.slots.iter().position(|(d, _)| d.len > 0 && *d == key)?;
            r.next = 1 - i;
            Some(r.slots[i].1)
        })
    }

    fn keep(value: &str, t: SystemTime) {
        if let Some(key) = RecentDate::of(value) {
            RECENT.with_borrow_mut(|r| {
                let i = r.next;
                r.slots[i] = (key, t);
                r.next = 1 - i;
            });
        }
    }
}

fn parse_trimmed(value: &str) -> Option<SystemTime> {
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

    #[test]
    fn dates_seen_again_read_the_same_as_when_first_parsed() {
        let dates = [
            "Thu, 18 Aug 2050 02:01:18 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "sun, 06 nov 1994 08:49:37 gmt",
        ];
        // Every order of revisits, past the two dates kept.
        for round in 0..3 {
            for (i, d) in dates.iter().enumerate() {
                for again in [d, &dates[(i + round) % dates.len()], d] {
                    assert_eq!(
                        parse_http_date(again),
                        parse_trimmed(again.trim()),
                        "{again}"
                    );
                }
            }
        }
        // Not a date: never kept, never a date later.
        assert_eq!(parse_http_date("Thu, 18 Aug 2050"), None);
        assert_eq!(parse_http_date("Thu, 18 Aug 2050"), None);
        let long = "Thursday, 18-Aug-50 02:01:18 GMT and more";
        assert_eq!(parse_http_date(long), None);
    }
}
