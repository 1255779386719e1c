//! Incremental decoder and encoding helpers for the chunked transfer coding
//! (RFC 9112 7.1). It owns the byte-level state machine from the first chunk
//! size to the end of the trailer section. It must never need the whole body
//! in memory, never consume bytes past the end of the message (they belong to
//! the next message on the connection), and never let a peer make it buffer
//! an unbounded size line or trailer section.

#[derive(Debug, PartialEq, Eq, Clone)]
pub enum ChunkError {
    BadSize,
    SizeTooLarge,
    BadTerminator,
    TrailerTooLarge,
    BadExtension,
}

/// 15 hex digits stay below 2^60, so the accumulated size can never overflow u64.
const MAX_SIZE_DIGITS: u8 = 15;
/// Bound on a chunk-size line excluding its CRLF; anything longer is extension abuse.
const MAX_SIZE_LINE: usize = 4096;
/// Bound on the discarded trailer section, including line endings.
const MAX_TRAILER_BYTES: usize = 8192;

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SizePhase {
    Digits,
    /// Whitespace after the digits, legal only before an extension (BWS ";").
    Space,
    Extension,
    /// CR seen; only LF may follow.
    LineFeed,
}

#[derive(Debug, Clone)]
enum State {
    Size {
        value: u64,
        digits: u8,
        line: usize,
        phase: SizePhase,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    Trailer {
        line: usize,
        total: usize,
        cr: bool,
    },
    Done,
    /// Errors are sticky: after one, the stream position is unknowable.
    Failed(ChunkError),
}

const FRESH_SIZE: State = State::Size {
    value: 0,
    digits: 0,
    line: 0,
    phase: SizePhase::Digits,
};

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder { state: FRESH_SIZE }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Consumes bytes from `input` and appends decoded body data to `out`.
    /// Returns how many input bytes were consumed; bytes after the end of the
    /// message are left alone so pipelined data survives.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut pos = 0;
        while pos < input.len() {
            match &mut self.state {
                State::Done => break,
                State::Failed(e) => return Err(e.clone()),
                State::Data { remaining } => {
                    let available = input.len() - pos;
                    let take = usize::try_from(*remaining).map_or(available, |r| r.min(available));
                    out.extend_from_slice(&input[pos..pos + take]);
                    pos += take;
                    // `take` never exceeds `remaining`, so this cannot underflow.
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    let step = self.step(input[pos]);
                    if let Err(e) = step {
                        self.state = State::Failed(e.clone());
                        return Err(e);
                    }
                    pos += 1;
                }
            }
        }
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        Ok(pos)
    }

    /// Advances every byte-at-a-time state by one input byte.
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        self.state = match std::mem::replace(&mut self.state, State::Done) {
            State::Size {
                value,
                digits,
                line,
                phase,
            } => size_step(value, digits, line, phase, b)?,
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => FRESH_SIZE,
            State::DataCr | State::DataLf => return Err(ChunkError::BadTerminator),
            State::Trailer { line, total, cr } => trailer_step(line, total, cr, b)?,
            other => other,
        };
        Ok(())
    }
}

fn size_step(
    value: u64,
    digits: u8,
    line: usize,
    phase: SizePhase,
    b: u8,
) -> Result<State, ChunkError> {
    // The CRLF that ends the line is not part of the bounded content.
    let line = if phase == SizePhase::LineFeed || b == b'\r' {
        line
    } else {
        line + 1
    };
    if line > MAX_SIZE_LINE {
        return Err(ChunkError::BadExtension);
    }
    let next = |phase| State::Size {
        value,
        digits,
        line,
        phase,
    };
    match phase {
        SizePhase::Digits => {
            if let Some(d) = hex_value(b) {
                if digits >= MAX_SIZE_DIGITS {
                    return Err(ChunkError::SizeTooLarge);
                }
                return Ok(State::Size {
                    value: value * 16 + u64::from(d),
                    digits: digits + 1,
                    line,
                    phase,
                });
            }
            if digits == 0 {
                return Err(ChunkError::BadSize);
            }
            match b {
                b';' => Ok(next(SizePhase::Extension)),
                b' ' | b'\t' => Ok(next(SizePhase::Space)),
                b'\r' => Ok(next(SizePhase::LineFeed)),
                _ => Err(ChunkError::BadSize),
            }
        }
        SizePhase::Space => match b {
            b' ' | b'\t' => Ok(next(SizePhase::Space)),
            b';' => Ok(next(SizePhase::Extension)),
            _ => Err(ChunkError::BadSize),
        },
        SizePhase::Extension => match b {
            b'\r' => Ok(next(SizePhase::LineFeed)),
            // Any other control byte (notably a bare LF) could be read as a
            // line end by another parser in the chain; refuse the ambiguity.
            b'\t' | 0x20..=0x7e | 0x80..=0xff => Ok(next(SizePhase::Extension)),
            _ => Err(ChunkError::BadExtension),
        },
        SizePhase::LineFeed if b == b'\n' => Ok(if value == 0 {
            State::Trailer {
                line: 0,
                total: 0,
                cr: false,
            }
        } else {
            State::Data { remaining: value }
        }),
        SizePhase::LineFeed => Err(ChunkError::BadSize),
    }
}

/// Trailer fields are discarded, so only their line structure matters: it
/// decides where the message ends.
fn trailer_step(line: usize, total: usize, cr: bool, b: u8) -> Result<State, ChunkError> {
    let total = total + 1;
    if total > MAX_TRAILER_BYTES {
        return Err(ChunkError::TrailerTooLarge);
    }
    match (cr, b) {
        (true, b'\n') if line == 0 => Ok(State::Done),
        (true, b'\n') => Ok(State::Trailer {
            line: 0,
            total,
            cr: false,
        }),
        (true, _) | (false, b'\n' | 0) => Err(ChunkError::BadTerminator),
        (false, b'\r') => Ok(State::Trailer {
            line,
            total,
            cr: true,
        }),
        (false, _) => Ok(State::Trailer {
            line: line + 1,
            total,
            cr: false,
        }),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// "1a2b\r\n" for a chunk of `len` bytes (hex, lower case).
pub fn encode_chunk_header(len: usize, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 2 * std::mem::size_of::<usize>()];
    let mut start = digits.len();
    let mut n = len;
    loop {
        start -= 1;
        digits[start] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"5;name=\"v\"\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n";
    const BODY: &[u8] = b"helloabcdefghijklmnopqrstuvwxyz";

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let n = d.decode(input, &mut out)?;
        Ok((out, n, d.is_done()))
    }

    #[test]
    fn decodes_whole_message() {
        assert_eq!(decode_all(MSG), Ok((BODY.to_vec(), MSG.len(), true)));
        assert_eq!(decode_all(LAST_CHUNK), Ok((Vec::new(), 5, true)));
    }

    #[test]
    fn one_byte_at_a_time_matches_all_at_once() {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for (i, b) in MSG.iter().enumerate() {
            assert!(!d.is_done(), "done early at {i}");
            assert_eq!(d.decode(std::slice::from_ref(b), &mut out), Ok(1));
        }
        assert!(d.is_done());
        assert_eq!(out, BODY);
    }

    #[test]
    fn every_split_point_works() {
        for split in 0..=MSG.len() {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let a = d.decode(&MSG[..split], &mut out);
            let b = d.decode(&MSG[split..], &mut out);
            assert_eq!((a, b), (Ok(split), Ok(MSG.len() - split)), "split {split}");
            assert!(d.is_done());
            assert_eq!(out, BODY, "split {split}");
        }
    }

    #[test]
    fn leaves_pipelined_bytes_alone() {
        let mut input = MSG.to_vec();
        input.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        let (out, n, done) = decode_all(&input).expect("valid");
        assert!(done);
        assert_eq!(n, MSG.len());
        assert_eq!(out, BODY);
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(&input, &mut out), Ok(MSG.len()));
        assert_eq!(d.decode(b"more", &mut out), Ok(0));
    }

    #[test]
    fn partial_input_is_not_done() {
        let (out, n, done) = decode_all(b"5\r\nhel").expect("valid");
        assert_eq!((out.as_slice(), n, done), (&b"hel"[..], 6, false));
        let (_, n, done) = decode_all(b"0\r\nX: y\r\n").expect("valid");
        assert_eq!((n, done), (9, false));
    }

    #[test]
    fn rejects_bad_sizes() {
        for bad in [
            &b"\r\n"[..],
            b";ext\r\n",
            b"0x5\r\n",
            b"+5\r\n",
            b"-5\r\n",
            b" 5\r\n",
            b"5 5\r\n",
            b"5 \r\n",
            b"g\r\n",
            b"5\n",
            b"5\rx",
        ] {
            assert_eq!(decode_all(bad), Err(ChunkError::BadSize), "{bad:?}");
        }
    }

    #[test]
    fn size_digit_limit() {
        let ok = decode_all(b"fffffffffffffff\r\nab").expect("15 digits fit");
        assert_eq!(ok.0, b"ab");
        assert_eq!(
            decode_all(b"0000000000000001\r\n"),
            Err(ChunkError::SizeTooLarge)
        );
    }

    #[test]
    fn extensions_are_bounded() {
        assert!(decode_all(b"3 ; a=b\r\nabc\r\n0\r\n\r\n").is_ok());
        let mut long = b"1;".to_vec();
        long.resize(MAX_SIZE_LINE, b'a');
        long.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert!(decode_all(&long).expect("at limit").2);
        let mut too_long = b"1;".to_vec();
        too_long.resize(MAX_SIZE_LINE + 1, b'a');
        assert_eq!(decode_all(&too_long), Err(ChunkError::BadExtension));
        assert_eq!(decode_all(b"1;a\nb\r\n"), Err(ChunkError::BadExtension));
        assert_eq!(decode_all(b"1;a\0\r\n"), Err(ChunkError::BadExtension));
    }

    #[test]
    fn data_must_end_with_crlf() {
        for bad in [&b"3\r\nabcX"[..], b"3\r\nabc\n", b"3\r\nabc\rX"] {
            assert_eq!(decode_all(bad), Err(ChunkError::BadTerminator), "{bad:?}");
        }
    }

    #[test]
    fn trailer_rules() {
        assert_eq!(
            decode_all(b"0\r\nA: b\n\r\n"),
            Err(ChunkError::BadTerminator)
        );
        assert_eq!(decode_all(b"0\r\n\rX"), Err(ChunkError::BadTerminator));
        let mut big = b"0\r\nX: ".to_vec();
        big.resize(3 + MAX_TRAILER_BYTES + 1, b'a');
        assert_eq!(decode_all(&big), Err(ChunkError::TrailerTooLarge));
        let mut fits = b"0\r\nX: ".to_vec();
        fits.resize(3 + MAX_TRAILER_BYTES - 4, b'a');
        fits.extend_from_slice(b"\r\n\r\n");
        assert!(decode_all(&fits).expect("fits").2);
    }

    #[test]
    fn errors_are_sticky() {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(b"z", &mut out), Err(ChunkError::BadSize));
        assert_eq!(d.decode(b"0\r\n\r\n", &mut out), Err(ChunkError::BadSize));
        assert!(!d.is_done());
    }

    #[test]
    fn chunk_header_round_trip() {
        for len in [0usize, 1, 9, 10, 15, 16, 255, 0x1a2b, 65536, usize::MAX] {
            let mut msg = Vec::new();
            encode_chunk_header(len, &mut msg);
            assert_eq!(msg, format!("{len:x}\r\n").into_bytes());
            if len <= 0x1_0000 {
                let data = vec![b'z'; len];
                msg.extend_from_slice(&data);
                msg.extend_from_slice(b"\r\n");
                if len > 0 {
                    msg.extend_from_slice(LAST_CHUNK);
                }
                let (out, n, done) = decode_all(&msg).expect("round trip");
                assert_eq!((out, n, done), (data, msg.len(), true));
            }
        }
    }
}
