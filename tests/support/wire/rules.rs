//! Which body framing a message has (RFC 9112 section 6): the
//! Content-Length and Transfer-Encoding rules and bodyless responses.

use super::{Asked, Fields, Framing, RequestHead, ResponseHead, Violation, values, violation};

/// The one Content-Length of a message, if any. A repeated field, even with
/// the same value, or a list is refused: edgeslab must send exactly one.
pub fn content_length(fields: &Fields) -> Result<Option<u64>, Violation> {
    let all = values(fields, "content-length");
    let Some(&value) = all.first() else {
        return Ok(None);
    };
    if all.len() > 1 {
        return violation(format!("{} Content-Length fields", all.len()));
    }
    let text = std::str::from_utf8(value).unwrap_or("");
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return violation(format!(
            "Content-Length {:?} is not a number",
            value.escape_ascii().to_string()
        ));
    }
    match text.parse() {
        Ok(n) => Ok(Some(n)),
        Err(_) => violation(format!("Content-Length {text} overflows")),
    }
}

/// Whether the message is chunked by Transfer-Encoding. Only `chunked`,
/// once and last, is accepted: the harness decodes no other coding.
pub fn is_chunked(fields: &Fields) -> Result<bool, Violation> {
    let all = values(fields, "transfer-encoding");
    if all.is_empty() {
        return Ok(false);
    }
    let joined = all.join(&b","[..]);
    let codings: Vec<String> = String::from_utf8_lossy(&joined)
        .split(',')
        .map(|c| c.trim_matches([' ', '\t']).to_ascii_lowercase())
        .collect();
    if codings != ["chunked"] {
        return violation(format!(
            "Transfer-Encoding {codings:?} (only `chunked` is decoded)"
        ));
    }
    Ok(true)
}

/// The framing of a response to `asked` (RFC 9112 section 6.3).
pub fn response_framing(head: &ResponseHead, asked: Asked) -> Result<Framing, Violation> {
    let status = head.status;
    let chunked = is_chunked(&head.fields)?;
    let length = content_length(&head.fields)?;
    let interim = (100..200).contains(&status);
    if interim || status == 204 {
        if chunked {
            return violation(format!("Transfer-Encoding in a {status} response"));
        }
        if length.is_some() {
            return violation(format!("Content-Length in a {status} response"));
        }
    }
    if interim && asked.http10 {
        return violation(format!("a {status} response to an HTTP/1.0 request"));
    }
    if chunked {
        if length.is_some() {
            return violation("both Content-Length and Transfer-Encoding");
        }
        if head.minor == 0 {
            return violation("Transfer-Encoding in an HTTP/1.0 response");
        }
        if asked.http10 {
            return violation("Transfer-Encoding in a response to an HTTP/1.0 request");
        }
    }
    Ok(if asked.head || interim || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    })
}

/// The framing of a request body (RFC 9112 section 6.3).
pub fn request_framing(head: &RequestHead) -> Result<Framing, Violation> {
    let chunked = is_chunked(&head.fields)?;
    let length = content_length(&head.fields)?;
    match (chunked, length) {
        (true, Some(_)) => violation("both Content-Length and Transfer-Encoding"),
        (true, None) if head.minor == 0 => violation("Transfer-Encoding in an HTTP/1.0 request"),
        (true, None) => Ok(Framing::Chunked),
        (false, Some(0) | None) => Ok(Framing::None),
        (false, Some(n)) => Ok(Framing::Length(n)),
    }
}
