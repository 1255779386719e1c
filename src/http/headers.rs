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

/// Ordered header list; names keep their original case, lookups are case-insensitive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, Vec<u8>)>,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// A list of the given fields, in order (names and values as written).
    pub fn from_fields(fields: &[(&str, &str)]) -> Self {
        let mut h = Self::new();
        for (name, value) in fields {
            h.push(name, *value);
        }
        h
    }

    pub fn push(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.fields.push((name.to_owned(), value.into()));
    }

    /// First value, because repeated singleton fields are rejected during
    /// parsing wherever the difference matters.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Keeps the position of the first occurrence so that re-serialised heads
    /// stay close to what the origin sent.
    pub fn set(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        match self
            .fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(first) => {
                self.fields[first].1 = value;
                let mut index = 0;
                self.fields.retain(|(n, _)| {
                    let keep = index <= first || !n.eq_ignore_ascii_case(name);
                    index += 1;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
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
        let nominated = self.nominated();
        self.fields.retain(|(n, _)| is_end_to_end(n, &nominated));
    }

    /// Serialises "Name: value\r\n" for each header.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        for (name, value) in &self.fields {
            write_field(name, value, out);
        }
    }

    /// Encoded size in bytes (as write_to would produce).
    pub fn encoded_len(&self) -> usize {
        self.fields.iter().map(|(n, v)| n.len() + v.len() + 4).sum()
    }

    /// Like `strip_hop_by_hop` followed by `write_to`, without cloning.
    pub(super) fn write_end_to_end(&self, out: &mut Vec<u8>) {
        let nominated = self.nominated();
        for (name, value) in &self.fields {
            if is_end_to_end(name, &nominated) {
                write_field(name, value, out);
            }
        }
    }

    fn nominated(&self) -> Vec<Vec<u8>> {
        self.get_all("connection")
            .flat_map(list_elements)
            .map(<[u8]>::to_ascii_lowercase)
            .collect()
    }
}

fn is_end_to_end(name: &str, nominated: &[Vec<u8>]) -> bool {
    if is_hop_by_hop(name) {
        return false;
    }
    if NEVER_NOMINATED.iter().any(|p| p.eq_ignore_ascii_case(name)) {
        return true;
    }
    !nominated
        .iter()
        .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
}

/// Stored values are not validated (callers build them from many sources), so
/// the encoder is the last line of defence against header injection: bytes
/// that would terminate a field line are replaced one-for-one, which also
/// keeps `encoded_len` exact.
pub(super) fn write_field(name: &str, value: &[u8], out: &mut Vec<u8>) {
    out.extend(name.bytes().map(|b| if is_tchar(b) { b } else { b'-' }));
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

pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
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
        h.write_end_to_end(&mut written);
        h.strip_hop_by_hop();
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["Host", "Content-Length", "Vary"]);
        let mut expected = Vec::new();
        h.write_to(&mut expected);
        assert_eq!(written, expected);
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
