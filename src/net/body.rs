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
    /// Bytes of the connection's buffer lent as the last piece, consumed
    /// when the next is asked for (or by `settle`).
    lent: usize,
}

/// A piece of body. Bytes that arrive as they are sent (a length-delimited
/// or close-delimited body) are lent from the connection's read buffer, so
/// relaying them copies nothing in between; a chunked body's data are
/// decoded into a buffer of the piece's own.
pub enum Piece<'c> {
    Lent(&'c [u8]),
    Decoded(Vec<u8>),
}

impl std::ops::Deref for Piece<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Piece::Lent(b) => b,
            Piece::Decoded(v) => v,
        }
    }
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
            lent: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Body bytes delivered so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Consumes the last piece lent from `conn`, so that what the buffer
    /// holds next is what follows it: before `conn` serves another message
    /// or goes back to a pool. `next` does it first thing.
    pub fn settle(&mut self, conn: &mut Conn) {
        conn.consume(std::mem::take(&mut self.lent));
    }

    /// The next piece of body data, or None once the body is complete.
    /// A connection that ends early is `UnexpectedEof`; bad chunk framing
    /// is `InvalidData`; a stalled peer is `TimedOut`.
    pub async fn next<'c>(
        &mut self,
        conn: &'c mut Conn,
        idle: Duration,
    ) -> io::Result<Option<Piece<'c>>> {
        self.settle(conn);
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
                    let buffered = conn.buffered().len();
                    if buffered > 0 {
                        let n = self.remaining.min(buffered as u64) as usize;
                        self.remaining -= n as u64;
                        self.received += n as u64;
                        self.done = self.remaining == 0;
                        self.lent = n;
                        return Ok(Some(Piece::Lent(&conn.buffered()[..n])));
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
                        return Ok(Some(Piece::Decoded(out)));
                    }
                    if self.done {
                        return Ok(None);
                    }
                }
                BodyFraming::CloseDelimited => {
                    let n = conn.buffered().len();
                    if n > 0 {
                        self.received += n as u64;
                        self.lent = n;
                        return Ok(Some(Piece::Lent(conn.buffered())));
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
