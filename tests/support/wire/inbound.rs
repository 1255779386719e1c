//! The receiving side of a connection: a buffer of bytes not yet used, why
//! reading stopped, and reading a head or a body in a given framing.

use super::{BodySink, ChunkedDecoder, Framing, Violation, head_end};
use std::io::{ErrorKind, Read};
use std::time::Instant;

/// Why reading from a peer stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// An orderly close (FIN): a close-delimited body is complete.
    Eof,
    /// Reset or another socket error: final.
    Reset,
    /// A read timed out or the deadline passed; a later read may go on.
    TimedOut,
}

/// The receiving side of one connection: bytes read and not yet used.
pub struct Inbound<R> {
    pub src: R,
    pub buf: Vec<u8>,
    pub ended: Option<Ended>,
}

/// Largest head accepted from either side.
pub const MAX_HEAD: usize = 1 << 20;

impl<R: Read> Inbound<R> {
    pub fn new(src: R) -> Self {
        Inbound {
            src,
            buf: Vec::new(),
            ended: None,
        }
    }

    /// Reads once more; false when nothing came (see `ended` for why).
    pub fn fill(&mut self, deadline: Instant) -> bool {
        if matches!(self.ended, Some(Ended::Eof | Ended::Reset)) {
            return false;
        }
        if Instant::now() >= deadline {
            self.ended = Some(Ended::TimedOut);
            return false;
        }
        self.ended = None;
        let mut tmp = [0u8; 64 << 10];
        loop {
            match self.src.read(&mut tmp) {
                Ok(0) => self.ended = Some(Ended::Eof),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    self.ended = Some(Ended::TimedOut)
                }
                Err(_) => self.ended = Some(Ended::Reset),
            }
            return self.ended.is_none();
        }
    }

    /// The next head, removed from the buffer; None when the peer stopped
    /// before a whole head came.
    pub fn read_head(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>, Violation> {
        loop {
            if let Some(n) = head_end(&self.buf, MAX_HEAD)? {
                return Ok(Some(self.buf.drain(..n).collect()));
            }
            if !self.fill(deadline) {
                return Ok(None);
            }
        }
    }

    /// Reads a body in `framing`, handing its bytes to `out`. Returns whether
    /// it was complete by its framing (false: the peer stopped first).
    pub fn read_body(
        &mut self,
        framing: Framing,
        deadline: Instant,
        chunked: &mut ChunkedDecoder,
        out: BodySink<'_>,
    ) -> Result<bool, Violation> {
        match framing {
            Framing::None => Ok(true),
            Framing::Length(len) => {
                let mut left = len;
                loop {
                    let take = self
                        .buf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    out(&self.buf[..take]);
                    self.buf.drain(..take);
                    left -= take as u64;
                    if left == 0 {
                        return Ok(true);
                    }
                    if !self.fill(deadline) {
                        return Ok(false);
                    }
                }
            }
            Framing::Chunked => loop {
                let used = chunked.decode(&self.buf, out)?;
                self.buf.drain(..used);
                if chunked.is_done() {
                    return Ok(true);
                }
                if !self.fill(deadline) {
                    return Ok(false);
                }
            },
            Framing::Close => loop {
                out(&self.buf);
                self.buf.clear();
                if !self.fill(deadline) {
                    return Ok(self.ended == Some(Ended::Eof));
                }
            },
        }
    }
}
