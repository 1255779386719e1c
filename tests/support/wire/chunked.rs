//! An incremental strict decoder of chunked bodies (RFC 9112 section 7.1).

use super::{BodySink, Fields, Violation, is_field_vchar, is_tchar, show, violation};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// An incremental strict decoder of a chunked body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    pub trailers: Fields,
}

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 8192;

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
            trailers: Fields::new(),
        }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes what it can of `input`, handing data to `out`; returns how
    /// many bytes of `input` it used. Fails as soon as the bytes seen cannot
    /// begin a valid continuation.
    pub fn decode(&mut self, input: &[u8], out: BodySink<'_>) -> Result<usize, Violation> {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            match self.state {
                ChunkState::Done => return Ok(at),
                ChunkState::Size | ChunkState::Trailers => {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        if self.state == ChunkState::Size {
                            check_size_prefix(rest)?;
                        }
                        if rest.len() > MAX_LINE {
                            return violation("a chunk-size or trailer line without an end");
                        }
                        return Ok(at);
                    };
                    let Some(line) = rest[..nl].strip_suffix(b"\r") else {
                        return violation("bare LF in a chunked body");
                    };
                    at += nl + 1;
                    self.state = match self.state {
                        ChunkState::Size => match chunk_size(line)? {
                            0 => ChunkState::Trailers,
                            n => ChunkState::Data(n),
                        },
                        _ if line.is_empty() => ChunkState::Done,
                        _ => {
                            self.trailers.push(trailer_field(line)?);
                            ChunkState::Trailers
                        }
                    };
                }
                ChunkState::Data(left) => {
                    if rest.is_empty() {
                        return Ok(at);
                    }
                    let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out(&rest[..take]);
                    at += take;
                    let left = left - take as u64;
                    self.state = match left {
                        0 => ChunkState::DataEnd,
                        _ => ChunkState::Data(left),
                    };
                }
                ChunkState::DataEnd => {
                    match rest {
                        [] | [b'\r'] => return Ok(at),
                        [b'\r', b'\n', ..] => at += 2,
                        _ => return violation("chunk data not followed by CRLF"),
                    }
                    self.state = ChunkState::Size;
                }
            }
        }
    }
}

/// Fails early on the start of a chunk-size line that can no longer become
/// valid, rather than waiting for an end of line that may never come.
fn check_size_prefix(partial: &[u8]) -> Result<(), Violation> {
    let p = partial.strip_suffix(b"\r").unwrap_or(partial);
    let digits = p.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let ext = &p[digits..];
    let ext_ok = match ext.iter().position(|&b| b != b' ' && b != b'\t') {
        None => true,
        Some(i) => ext[i] == b';' && ext[i..].iter().all(|&b| is_field_vchar(b) || b == b' '),
    };
    if (digits == 0 && !p.is_empty()) || !ext_ok {
        return violation(format!("chunk-size line starting {:?}", show(partial, 64)));
    }
    Ok(())
}

/// `chunk-size [ chunk-ext ]` (RFC 9112 section 7.1).
fn chunk_size(line: &[u8]) -> Result<u64, Violation> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let shown = || line.escape_ascii().to_string();
    if digits == 0 {
        return violation(format!("chunk size {:?} is not hex", shown()));
    }
    let ext = &line[digits..];
    let ext_start = ext.iter().position(|&b| b != b' ' && b != b'\t');
    let ext_ok = match ext_start {
        None => ext.is_empty(),
        Some(i) => ext[i] == b';' && ext[i..].iter().all(|&b| is_field_vchar(b) || b == b' '),
    };
    if !ext_ok {
        return violation(format!("chunk-size line {:?}", shown()));
    }
    let hex = std::str::from_utf8(&line[..digits]).expect("hex digits are ASCII");
    u64::from_str_radix(hex, 16).or_else(|_| violation(format!("chunk size {hex} overflows")))
}

/// `field-name ":" OWS field-value OWS` in a trailer section.
fn trailer_field(line: &[u8]) -> Result<(String, Vec<u8>), Violation> {
    let shown = || line.escape_ascii().to_string();
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return violation(format!("trailer line {:?} has no colon", shown()));
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return violation(format!("trailer field name in {:?}", shown()));
    }
    let value = value.trim_ascii();
    if !value.iter().all(|&b| is_field_vchar(b) || b == b' ') {
        return violation(format!("trailer field value in {:?}", shown()));
    }
    Ok((String::from_utf8_lossy(name).into_owned(), value.to_vec()))
}
