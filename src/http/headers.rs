//! Header field storage and field-value grammar shared by requests and
//! responses: the ordered header list, list-valued field parsing and the
//! hop-by-hop set. It must never decide framing or status codes itself, and
//! must never write a byte that could end a field line early on the wire.

/// Headers that describe a single connection (RFC 9110 7.6.1) and so must not
/// be forwarded by an intermediary.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Fields a peer may not make us drop by naming them in `Connection`: losing
/// Host misroutes the upstream request and losing Content-Length turns the
/// body into the start of a smuggled request.
const NEVER_NOMINATED: [&str; 2] = ["host", "content-length"];

pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Ordered header list; names keep their original case, lookups are
/// case-insensitive.
///
/// Every name and value lives in one byte buffer, and each field is four
/// offsets into it, so that parsing a head costs at most two allocations
/// however many fields it has, and none once the thread has dropped a list
/// whose buffers it can reuse (`spare_lists`). A value replaced by a longer
/// one is appended; the old bytes stay unreferenced until the list is
/// dropped.
#[derive(Default)]
pub struct Headers {
    bytes: Vec<u8>,
    fields: Vec<Field>,
}

/// Where one field's name and value are in `Headers::bytes`.
#[derive(Clone, Copy, Debug)]
struct Field {
    name_at: usize,
    name_len: usize,
    value_at: usize,
    value_len: usize,
}

/// A copy keeps the original's spare room: copies are made to be changed.
impl Clone for Headers {
    fn clone(&self) -> Self {
        let mut h = Headers::with_capacity(self.fields.capacity(), self.bytes.capacity());
        h.bytes.extend_from_slice(&self.bytes);
        h.fields.extend_from_slice(&self.fields);
        h
    }
}

/// A dropped list's buffers wait for the thread's next head.
impl Drop for Headers {
    fn drop(&mut self) {
        spare_lists::keep(
            std::mem::take(&mut self.bytes),
            std::mem::take(&mut self.fields),
        );
    }
}

/// The buffers of dropped header lists, per thread (a shard parses and
/// drops a request head and a stored head per hit), so that a parsed head
/// allocates nothing once a shard has served a few requests. Bounded in
/// count and in the size of the buffers kept.
mod spare_lists {
    use super::{Field, Headers};
    use crate::spare::{Pool, keep_in, take_from};
    use std::cell::RefCell;

    /// Lists kept per thread: more than a shard's requests in flight at
    /// once usually need.
    const LISTS: usize = 64;
    /// Buffers larger than this (a head with huge fields) are let go.
    const MAX_BYTES: usize = 8 << 10;
    const MAX_FIELDS: usize = 128;

    thread_local! {
        static SPARE: RefCell<Pool<(Vec<u8>, Vec<Field>)>> = const {
            RefCell::new(Pool::new(LISTS, LISTS * (MAX_BYTES + MAX_FIELDS * size_of::<Field>())))
        };
    }

    pub(super) fn take() -> Option<Headers> {
        let (bytes, fields) = take_from(&SPARE, |_| true)?;
        Some(Headers { bytes, fields })
    }

    pub(super) fn keep(mut bytes: Vec<u8>, mut fields: Vec<Field>) {
        if bytes.capacity() == 0 || bytes.capacity() > MAX_BYTES || fields.capacity() > MAX_FIELDS {
            return;
        }
        bytes.clear();
        fields.clear();
        let size = bytes.capacity() + fields.capacity() * size_of::<Field>();
        keep_in(&SPARE, (bytes, fields), size);
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(n, v)| (n, String::from_utf8_lossy(v).into_owned())),
            )
            .finish()
    }
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `fields` fields of `bytes` bytes in all:
    /// the buffers of a list this thread dropped, when it has any.
    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        let mut h = spare_lists::take().unwrap_or_default();
        h.bytes.reserve(bytes);
        h.fields.reserve(fields);
        h
    }

    /// A list of the given fields, in order (names and values as written).
    pub fn from_fields(fields: &[(&str, &str)]) -> Self {
        let mut h = Self::new();
        for (name, value) in fields {
            h.push(name, value.as_bytes());
        }
        h
    }

    pub fn push(&mut self, name: &str, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        let name_at = self.bytes.len();
        self.bytes.extend_from_slice(name.as_bytes());
        let value_at = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.fields.push(Field {
            name_at,
            name_len: name.len(),
            value_at,
            value_len: value.len(),
        });
    }

    /// Like `push`, with each CR and LF of `value` replaced by a space: the
    /// obs-fold line breaks httparse leaves in a value (RFC 9112 5.2).
    pub fn push_unfolded(&mut self, name: &str, value: &[u8]) {
        let value_start = self.bytes.len() + name.len();
        self.push(name, value);
        for b in &mut self.bytes[value_start..] {
            if *b == b'\r' || *b == b'\n' {
                *b = b' ';
            }
        }
    }

    fn name_of(&self, field: &Field) -> &str {
        let bytes = &self.bytes[field.name_at..field.name_at + field.name_len];
        // SAFETY: these bytes were copied from a `&str` by `push` and are
        // never written again (`set` writes values only).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    fn value_of(&self, field: &Field) -> &[u8] {
        &self.bytes[field.value_at..field.value_at + field.value_len]
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
        self.fields
            .iter()
            .filter(move |f| self.name_of(f).eq_ignore_ascii_case(name))
    }

    /// First value, because repeated singleton fields are rejected during
    /// parsing wherever the difference matters.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.named(name).next().map(|f| self.value_of(f))
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.named(name).map(|f| self.value_of(f))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn remove(&mut self, name: &str) {
        let bytes = &self.bytes;
        self.fields.retain(|f| {
            !bytes[f.name_at..f.name_at + f.name_len].eq_ignore_ascii_case(name.as_bytes())
        });
    }

    /// Keeps the position of the first occurrence so that re-serialised heads
    /// stay close to what the origin sent.
    pub fn set(&mut self, name: &str, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        let Some(first) = self
            .fields
            .iter()
            .position(|f| self.name_of(f).eq_ignore_ascii_case(name))
        else {
            self.push(name, value);
            return;
        };
        let field = &mut self.fields[first];
        if value.len() <= field.value_len {
            self.bytes[field.value_at..field.value_at + value.len()].copy_from_slice(value);
        } else {
            field.value_at = self.bytes.len();
            self.bytes.extend_from_slice(value);
        }
        field.value_len = value.len();
        self.drop_repeats_after(first, name);
    }

    /// `set` with a value formatted straight into the list's own buffer,
    /// with no string of its own.
    pub fn set_fmt(&mut self, name: &str, value: std::fmt::Arguments<'_>) {
        let at = self.bytes.len();
        write_args(&mut self.bytes, value);
        self.set_written(name, at);
    }

    /// Adds `element` to the end of the list-valued field `name` (after
    /// `, ` when it has a value, trimmed, in UTF-8; otherwise as its only
    /// value), keeping the field's position.
    pub fn append_fmt(&mut self, name: &str, element: std::fmt::Arguments<'_>) {
        let at = self.bytes.len();
        let current = self.named(name).next().map(|f| (f.value_at, f.value_len));
        if let Some((value_at, value_len)) = current {
            let value = &self.bytes[value_at..value_at + value_len];
            if let Ok(text) = std::str::from_utf8(value)
                && !text.trim().is_empty()
            {
                let lead = text.len() - text.trim_start().len();
                let kept = value_at + lead..value_at + lead + text.trim().len();
                self.bytes.extend_from_within(kept);
                self.bytes.extend_from_slice(b", ");
            }
        }
        write_args(&mut self.bytes, element);
        self.set_written(name, at);
    }

    /// Makes the bytes from `at` to the end of the buffer the value of
    /// `name`, as `set` would.
    fn set_written(&mut self, name: &str, at: usize) {
        let value_len = self.bytes.len() - at;
        match self
            .fields
            .iter()
            .position(|f| self.name_of(f).eq_ignore_ascii_case(name))
        {
            Some(first) => {
                self.fields[first].value_at = at;
                self.fields[first].value_len = value_len;
                self.drop_repeats_after(first, name);
            }
            None => {
                let name_at = self.bytes.len();
                self.bytes.extend_from_slice(name.as_bytes());
                self.fields.push(Field {
                    name_at,
                    name_len: name.len(),
                    value_at: at,
                    value_len,
                });
            }
        }
    }

    /// Removes the fields called `name` after position `first`.
    fn drop_repeats_after(&mut self, first: usize, name: &str) {
        let bytes = &self.bytes;
        let mut index = 0;
        self.fields.retain(|f| {
            let keep = index <= first
                || !bytes[f.name_at..f.name_at + f.name_len].eq_ignore_ascii_case(name.as_bytes());
            index += 1;
            keep
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields
            .iter()
            .map(|f| (self.name_of(f), self.value_of(f)))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Heap bytes the list holds (its buffers' capacities).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.fields.capacity() * size_of::<Field>()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Does a comma-separated list header (all occurrences) contain `token` (case-insensitive)?
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(list_elements)
            .any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// Removes the RFC 9110 7.6.1 connection-specific fields plus every field
    /// named in `Connection`.
    pub fn strip_hop_by_hop(&mut self) {
        let end_to_end = self.end_to_end();
        // Stored heads and most requests have nothing to strip.
        if self.iter().all(|(n, _)| end_to_end(n)) {
            return;
        }
        let keep: Vec<bool> = self.iter().map(|(n, _)| end_to_end(n)).collect();
        drop(end_to_end);
        let mut index = 0;
        self.fields.retain(|_| {
            index += 1;
            keep[index - 1]
        });
    }

    /// Serialises "Name: value\r\n" for each header.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        for (name, value) in self.iter() {
            write_field(name, value, out);
        }
    }

    /// Encoded size in bytes (as write_to would produce).
    pub fn encoded_len(&self) -> usize {
        self.fields
            .iter()
            .map(|f| f.name_len + f.value_len + 4)
            .sum()
    }

    /// Like `strip_hop_by_hop`, then removing each field `skip` names,
    /// followed by `write_to`, without cloning.
    pub(super) fn write_end_to_end(&self, skip: &[&str], out: &mut Vec<u8>) {
        let end_to_end = self.end_to_end();
        for (name, value) in self.iter() {
            if end_to_end(name) && !skip.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                write_field(name, value, out);
            }
        }
    }

    /// The test of a field name for this list: not connection-specific,
    /// that is neither a hop-by-hop field nor one that `Connection` names
    /// (Host and Content-Length are never taken as named). `Connection` is
    /// read once here, not once for each field tested.
    fn end_to_end(&self) -> impl Fn(&str) -> bool + '_ {
        // A peer names one or two options; past four the field is read
        // again for each name (and nothing is allocated either way).
        let mut named: [&[u8]; 4] = [&[]; 4];
        let mut count = 0;
        for option in self.get_all("connection").flat_map(list_elements) {
            if let Some(slot) = named.get_mut(count) {
                *slot = option;
            }
            count += 1;
        }
        move |name: &str| {
            if is_hop_by_hop(name) {
                return false;
            }
            if count == 0 || NEVER_NOMINATED.iter().any(|p| p.eq_ignore_ascii_case(name)) {
                return true;
            }
            let is_named = |t: &[u8]| t.eq_ignore_ascii_case(name.as_bytes());
            match named.get(..count) {
                Some(few) => !few.iter().any(|t| is_named(t)),
                None => !self
                    .get_all("connection")
                    .flat_map(list_elements)
                    .any(is_named),
            }
        }
    }
}

/// Formats `args` onto the end of `out`.
fn write_args(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    // Writing to a Vec cannot fail.
    let _ = std::io::Write::write_fmt(out, args);
}

/// Stored values are not validated (callers build them from many sources), so
/// the encoder is the last line of defence against header injection: bytes
/// that would terminate a field line are replaced one-for-one, which also
/// keeps `encoded_len` exact.
pub(super) fn write_field(name: &str, value: &[u8], out: &mut Vec<u8>) {
    // Names are tokens whenever they were parsed; checked at a table
    // lookup a byte and copied whole, rewritten only when one is not.
    let name = name.as_bytes();
    if name.iter().all(|&b| is_tchar(b)) {
        out.extend_from_slice(name);
    } else {
        out.extend(name.iter().map(|&b| if is_tchar(b) { b } else { b'-' }));
    }
    out.extend_from_slice(b": ");
    if value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        out.extend(value.iter().map(|&b| match b {
            b'\r' | b'\n' | 0 => b' ',
            other => other,
        }));
    } else {
        out.extend_from_slice(value);
    }
    out.extend_from_slice(b"\r\n");
}

/// RFC 9110 5.6.2: tchar, by byte.
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    t
};

pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

pub(super) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// Elements of a `#rule` list value, trimmed, empty ones skipped (RFC 9110
/// 5.6.1). Commas inside quoted strings do not split, so a parameter such as
/// `no-cache="a, b"` stays one element.
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = value;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let mut in_quotes = false;
            let mut escaped = false;
            let mut end = rest.len();
            for (i, &b) in rest.iter().enumerate() {
                if escaped {
                    escaped = false;
                } else if in_quotes && b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_quotes = !in_quotes;
                } else if b == b',' && !in_quotes {
                    end = i;
                    break;
                }
            }
            let element = trim_ows(&rest[..end]);
            rest = rest.get(end + 1..).unwrap_or_default();
            if !element.is_empty() {
                return Some(element);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_is_the_rfc_set() {
        // RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*"
        //   / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
        let specials = b"!#$%&'*+-.^_`|~";
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || specials.contains(&b);
            assert_eq!(is_tchar(b), want, "byte {b}");
        }
    }

    #[test]
    fn a_name_that_is_not_a_token_is_rewritten_not_copied() {
        let mut out = Vec::new();
        write_field("X-Ok", b"v", &mut out);
        write_field("X Bad:", b"v", &mut out);
        assert_eq!(out, b"X-Ok: v\r\nX-Bad-: v\r\n");
    }

    fn sample() -> Headers {
        let mut h = Headers::new();
        h.push("Host", "example.com");
        h.push("Accept", "text/html");
        h.push("accept", "image/png");
        h
    }

    #[test]
    fn lookups_ignore_case_and_keep_order() {
        let h = sample();
        assert_eq!(h.get("ACCEPT"), Some(&b"text/html"[..]));
        let all: Vec<&[u8]> = h.get_all("Accept").collect();
        assert_eq!(all, vec![&b"text/html"[..], &b"image/png"[..]]);
        assert!(h.contains("host"));
        assert!(!h.contains("cookie"));
        assert_eq!(h.len(), 3);
        assert!(!h.is_empty());
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["Host", "Accept", "accept"]);
    }

    #[test]
    fn get_str_trims_and_rejects_non_utf8() {
        let mut h = Headers::new();
        h.push("A", " padded\t");
        h.push("B", vec![0xff, 0xfe]);
        assert_eq!(h.get_str("a"), Some("padded"));
        assert_eq!(h.get_str("b"), None);
        assert_eq!(h.get_str("c"), None);
    }

    #[test]
    fn set_and_remove() {
        let mut h = sample();
        h.push("X", "1");
        h.set("ACCEPT", "*/*");
        let all: Vec<&[u8]> = h.get_all("accept").collect();
        assert_eq!(all, vec![&b"*/*"[..]]);
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["Host", "Accept", "X"]);
        h.set("New", "v");
        assert_eq!(h.get("new"), Some(&b"v"[..]));
        h.remove("host");
        assert!(!h.contains("Host"));
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn formatted_values_set_and_append() {
        let mut h = sample();
        h.set_fmt("accept", format_args!("{}/{}", "text", 7));
        let all: Vec<&[u8]> = h.get_all("Accept").collect();
        assert_eq!(all, vec![&b"text/7"[..]]);
        h.set_fmt("Age", format_args!("{}", 42));
        assert_eq!(h.get("age"), Some(&b"42"[..]));
        h.append_fmt("Via", format_args!("1.1 {}", "a"));
        h.append_fmt("via", format_args!("1.1 {}", "b"));
        assert_eq!(h.get("Via"), Some(&b"1.1 a, 1.1 b"[..]));
        h.push("Cache-Status", "  ");
        h.push("cache-status", "gone");
        h.append_fmt("Cache-Status", format_args!("me; hit"));
        let all: Vec<&[u8]> = h.get_all("cache-status").collect();
        assert_eq!(
            all,
            vec![&b"me; hit"[..]],
            "blank: replaced, repeats dropped"
        );
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            vec!["Host", "Accept", "Age", "Via", "Cache-Status"],
            "positions kept, new fields last"
        );
        let mut out = Vec::new();
        h.write_to(&mut out);
        assert_eq!(out.len(), h.encoded_len());
    }

    #[test]
    fn tokens_in_lists() {
        let mut h = Headers::new();
        h.push("Connection", "keep-alive, Upgrade");
        h.push("connection", " CLOSE ");
        h.push("Cache-Control", "no-cache=\"a, close\", max-age=0");
        assert!(h.has_token("connection", "close"));
        assert!(h.has_token("Connection", "upgrade"));
        assert!(!h.has_token("Connection", "keep"));
        assert!(!h.has_token("cache-control", "close"));
        assert!(h.has_token("cache-control", "max-age=0"));
    }

    #[test]
    fn list_elements_skip_empty_and_respect_quotes() {
        let got: Vec<&[u8]> = list_elements(b" a ,, \"x,\\\"y\" ,b,").collect();
        assert_eq!(got, vec![&b"a"[..], &b"\"x,\\\"y\""[..], &b"b"[..]]);
        assert_eq!(list_elements(b" , ").count(), 0);
    }

    #[test]
    fn hop_by_hop_set() {
        for n in [
            "Connection",
            "KEEP-ALIVE",
            "proxy-connection",
            "TE",
            "Trailer",
        ] {
            assert!(is_hop_by_hop(n), "{n}");
        }
        assert!(is_hop_by_hop("transfer-encoding") && is_hop_by_hop("Upgrade"));
        assert!(!is_hop_by_hop("Proxy-Authenticate"));
        assert!(!is_hop_by_hop("Content-Length"));
    }

    #[test]
    fn strip_removes_listed_and_nominated_but_protects_framing() {
        let mut h = Headers::new();
        h.push("Host", "a");
        h.push("Connection", "X-Secret, host, Content-Length");
        h.push("Content-Length", "3");
        h.push("x-secret", "1");
        h.push("Transfer-Encoding", "chunked");
        h.push("Keep-Alive", "timeout=5");
        h.push("Vary", "Accept");
        let mut written = Vec::new();
        h.write_end_to_end(&[], &mut written);
        h.strip_hop_by_hop();
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["Host", "Content-Length", "Vary"]);
        let mut expected = Vec::new();
        h.write_to(&mut expected);
        assert_eq!(written, expected);
    }

    #[test]
    fn strip_reads_every_option_of_every_connection_field() {
        // Six options over two fields: more than are kept inline.
        let mut h = Headers::new();
        h.push("Connection", "a, b, c");
        h.push("A", "1");
        h.push("Connection", "d, e, X-Last");
        h.push("x-last", "2");
        h.push("Host", "h");
        h.push("Kept", "3");
        let mut written = Vec::new();
        h.write_end_to_end(&[], &mut written);
        h.strip_hop_by_hop();
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["Host", "Kept"]);
        assert_eq!(written, b"Host: h\r\nKept: 3\r\n");
    }

    #[test]
    fn write_to_and_encoded_len_agree() {
        let h = sample();
        let mut out = Vec::new();
        h.write_to(&mut out);
        assert_eq!(
            out,
            b"Host: example.com\r\nAccept: text/html\r\naccept: image/png\r\n"
        );
        assert_eq!(out.len(), h.encoded_len());
    }

    #[test]
    fn write_to_neutralises_injection() {
        let mut h = Headers::new();
        h.push("Bad\r\nName", "v\r\nSet-Cookie: x\0");
        let mut out = Vec::new();
        h.write_to(&mut out);
        assert_eq!(out, b"Bad--Name: v  Set-Cookie: x \r\n");
        assert_eq!(out.len(), h.encoded_len());
    }
}
