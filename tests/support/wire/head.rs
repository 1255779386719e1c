//! Heads: where one ends, and its start line and fields, tokenized by
//! httparse and checked where httparse is lenient.

use super::{Fields, Violation, is_field_vchar, violation};

/// Where the head at the start of `buf` ends (just past its empty line), or
/// None while it is incomplete. Every line must end in CRLF.
pub fn head_end(buf: &[u8], max: usize) -> Result<Option<usize>, Violation> {
    if buf.first().is_some_and(|&b| b == b'\r' || b == b'\n') {
        return violation("an empty line before the start line");
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let scanned = &buf[..end.unwrap_or(buf.len())];
    for (i, &b) in scanned.iter().enumerate() {
        if b == b'\n' && (i == 0 || scanned[i - 1] != b'\r') {
            return violation(format!("bare LF at byte {i} of the head"));
        }
        if b == b'\r' && scanned.get(i + 1).is_some_and(|&n| n != b'\n') {
            return violation(format!("CR without LF at byte {i} of the head"));
        }
    }
    match end {
        Some(n) if n > max => violation(format!("a head of {n} bytes (limit {max})")),
        None if buf.len() > max => violation(format!("no end of head within {max} bytes")),
        _ => Ok(end),
    }
}

/// A response head: status line and fields.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    /// 0 or 1, from `HTTP/1.x`.
    pub minor: u8,
    pub status: u16,
    pub reason: String,
    pub fields: Fields,
}

/// Parses a complete response head (as delimited by [`head_end`]).
pub fn parse_response_head(head: &[u8]) -> Result<ResponseHead, Violation> {
    let line = &head[..head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len())];
    // httparse accepts "HTTP/1.1 200" without the space before the reason.
    let well_formed = line.len() >= 13
        && line.starts_with(b"HTTP/1.")
        && matches!(line[7], b'0' | b'1')
        && line[8] == b' '
        && line[9..12].iter().all(u8::is_ascii_digit)
        && line[12] == b' '
        && line[13..].iter().all(|&b| is_field_vchar(b) || b == b' ');
    if !well_formed {
        return violation(format!(
            "status line {:?} is not `HTTP/1.x NNN reason`",
            line.escape_ascii().to_string()
        ));
    }
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Response::new(&mut slots);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return violation("httparse did not find the head complete"),
        Err(e) => return violation(format!("httparse: {e}")),
    }
    let status = parsed.code.expect("a complete parse has a status");
    if !(100..=599).contains(&status) {
        return violation(format!("status {status} is outside 100..=599"));
    }
    Ok(ResponseHead {
        minor: parsed.version.expect("a complete parse has a version"),
        status,
        reason: parsed.reason.unwrap_or_default().to_string(),
        fields: fields_of(parsed.headers),
    })
}

/// A request head: request line and fields.
#[derive(Clone, Debug)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    pub minor: u8,
    pub fields: Fields,
}

/// Parses a complete request head (as delimited by [`head_end`]).
pub fn parse_request_head(head: &[u8]) -> Result<RequestHead, Violation> {
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return violation("httparse did not find the head complete"),
        Err(e) => return violation(format!("httparse: {e}")),
    }
    let line = &head[..head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len())];
    if line.iter().filter(|&&b| b == b' ').count() != 2 {
        return violation("request line is not `METHOD SP target SP version`");
    }
    Ok(RequestHead {
        method: parsed.method.expect("complete").to_string(),
        target: parsed.path.expect("complete").to_string(),
        minor: parsed.version.expect("complete"),
        fields: fields_of(parsed.headers),
    })
}

fn fields_of(headers: &[httparse::Header<'_>]) -> Fields {
    headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect()
}
