//! Strict HTTP/1.1 framing for the harness, written apart from edgeslab's
//! codec so that a bug shared by edgeslab's encoder and decoder cannot hide:
//! httparse tokenizes a head, and the rules of RFC 9112 (line endings,
//! Content-Length, Transfer-Encoding, chunked bodies, bodyless responses)
//! are applied here. Nothing here repairs or tolerates a malformed message:
//! every departure is a [`Violation`], which the client turns into a panic
//! and the origin into a recorded failure. Its own tests, on hand-written
//! bytes, are in tests/support_selftest.rs.

mod chunked;
mod head;
mod inbound;
mod rules;

pub use chunked::ChunkedDecoder;
pub use head::{RequestHead, ResponseHead, head_end, parse_request_head, parse_response_head};
pub use inbound::{Ended, Inbound, MAX_HEAD};
pub use rules::{content_length, is_chunked, request_framing, response_framing};

/// A message a strict peer would reject, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

fn violation<T>(why: impl Into<String>) -> Result<T, Violation> {
    Err(Violation(why.into()))
}

/// Header fields in the order they came: the name as sent, the value's bytes.
pub type Fields = Vec<(String, Vec<u8>)>;

/// Values of every field called `name` (case-insensitive), in order.
pub fn values<'a>(fields: &'a Fields, name: &str) -> Vec<&'a [u8]> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .collect()
}

/// Where decoded body bytes go, piece by piece.
pub type BodySink<'a> = &'a mut dyn FnMut(&[u8]);

/// How a message body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304, or a request without one).
    None,
    Length(u64),
    Chunked,
    /// A response body that ends when the server closes.
    Close,
}

/// What a response answers, which decides its framing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    /// The request was HEAD: no body follows, whatever the head says.
    pub head: bool,
    /// The request was HTTP/1.0: no chunked body and no 1xx may come back.
    pub http10: bool,
}

impl Asked {
    /// What the raw request bytes ask: the method and version of their
    /// request line (anything unreadable counts as a GET over HTTP/1.1).
    pub fn of(raw: &[u8]) -> Asked {
        let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Asked {
            head: raw.starts_with(b"HEAD "),
            http10: line.ends_with(b" HTTP/1.0"),
        }
    }
}

/// HTAB, visible ASCII and obs-text: what a field value or reason may hold.
fn is_field_vchar(b: u8) -> bool {
    b == b'\t' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Bytes as escaped text for a failure message, cut at `limit`.
pub fn show(bytes: &[u8], limit: usize) -> String {
    let shown = bytes[..bytes.len().min(limit)].escape_ascii().to_string();
    match bytes.len() > limit {
        true => format!("{shown}… ({} bytes in all)", bytes.len()),
        false => shown,
    }
}
