//! Reading a message body off a connection according to its framing, one
//! piece at a time, so no body is ever held whole in memory. Used for viewer
//! request bodies and origin response bodies alike; bytes after the body stay
//! in the connection's buffer for the next message.

use super::conn::Conn;
use crate::http::{BodyFraming, ChunkedDecoder};
use std::io;
use std::time::Duration;

pub struct BodyReader {
    framing: BodyFraming,
    remaining: u64,
    decoder: ChunkedDecoder,
    done: bool,
    received: u64,
}

impl BodyReader {
    pub fn new(framing: BodyFraming) -> BodyReader {
        BodyReader {
            framing,
            remaining: match framing {
                BodyFraming::ContentLength(n) => n,
                _ => 0,
            },
            decoder: ChunkedDecoder::new(),
            done: framing.is_empty(),
            received: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Body bytes delivered so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next piece of body data, or None once the body is complete.
    /// A connection that ends early is `UnexpectedEof`; bad chunk framing
    /// is `InvalidData`; a stalled peer is `TimedOut`.
    pub async fn next(&mut self, conn: &mut Conn, idle: Duration) -> io::Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        loop {
            match self.framing {
                BodyFraming::None => {
                    self.done = true;
                    return Ok(None);
                }
                BodyFraming::ContentLength(_) => {
                    if !conn.buffered().is_empty() {
                        let piece = conn.take(self.remaining.min(usize::MAX as u64) as usize);
                        self.remaining -= piece.len() as u64;
                        self.received += piece.len() as u64;
                        self.done = self.remaining == 0;
                        return Ok(Some(piece));
                    }
                }
                BodyFraming::Chunked => {
                    let mut out = Vec::new();
                    let used = self
                        .decoder
                        .decode(conn.buffered(), &mut out)
                        .map_err(|e| {
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("bad chunked body: {e:?}"),
                            )
                        })?;
                    conn.consume(used);
                    self.done = self.decoder.is_done();
                    if !out.is_empty() {
                        self.received += out.len() as u64;
                        return Ok(Some(out));
                    }
                    if self.done {
                        return Ok(None);
                    }
                }
                BodyFraming::CloseDelimited => {
                    if !conn.buffered().is_empty() {
                        let piece = conn.take(usize::MAX);
                        self.received += piece.len() as u64;
                        return Ok(Some(piece));
                    }
                }
            }
            if conn.read_more(idle, "body read timed out").await? == 0 {
                if self.framing == BodyFraming::CloseDelimited {
                    self.done = true;
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside the body",
                ));
            }
        }
    }
}
