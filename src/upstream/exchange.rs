//! HTTP/1.1 on an origin connection: writing the request (head, then body
//! pieces in the framing the head announced) and reading the final response
//! head within the first-byte deadline, skipping interim 1xx responses. It
//! never accepts a protocol switch and never reads past the response head:
//! the body is the caller's to read with the framing the head declares.

use super::client::UpstreamClient;
use super::{UpstreamError, UpstreamErrorKind};
use crate::http::{LAST_CHUNK, ResponseHead, encode_chunk_header, parse_response};
use crate::net::conn::Conn;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

impl UpstreamClient {
    /// Sends a request head (or any bytes already framed).
    pub async fn send(&self, conn: &mut Conn, bytes: &[u8]) -> Result<(), UpstreamError> {
        conn.write_all(bytes, self.settings.idle_timeout)
            .await
            .map_err(|e| UpstreamError::from_io(e, UpstreamErrorKind::WriteFailed))
    }

    /// Sends one piece of a request body; `chunked` frames it as a chunk.
    pub async fn send_body_piece(
        &self,
        conn: &mut Conn,
        piece: &[u8],
        chunked: bool,
        scratch: &mut Vec<u8>,
    ) -> Result<(), UpstreamError> {
        if !chunked {
            return self.send(conn, piece).await;
        }
        scratch.clear();
        encode_chunk_header(piece.len(), scratch);
        scratch.extend_from_slice(piece);
        scratch.extend_from_slice(b"\r\n");
        self.send(conn, scratch).await
    }

    /// Ends a request body (the last chunk when `chunked`).
    pub async fn end_body(&self, conn: &mut Conn, chunked: bool) -> Result<(), UpstreamError> {
        if chunked {
            self.send(conn, LAST_CHUNK).await?;
        }
        Ok(())
    }

    /// Reads the final response head. `request_was_head`: the response has
    /// no body whatever its headers say.
    pub async fn read_head(
        &self,
        conn: &mut Conn,
        request_was_head: bool,
    ) -> Result<ResponseHead, UpstreamError> {
        let deadline = Instant::now() + self.settings.first_byte_timeout;
        loop {
            match parse_response(conn.buffered(), &self.settings.limits, request_was_head) {
                Ok(Some((head, n))) => {
                    conn.consume(n);
                    if head.status == 101 {
                        return Err(UpstreamError::new(
                            UpstreamErrorKind::BadResponse,
                            "origin switched protocols, which is not supported",
                        ));
                    }
                    if (100..200).contains(&head.status) {
                        continue;
                    }
                    return Ok(head);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(UpstreamError::new(
                        UpstreamErrorKind::BadResponse,
                        format!("invalid response head: {e:?}"),
                    ));
                }
            }
            match conn
                .read_more_until(deadline, "no response head in time")
                .await
            {
                Ok(0) => {
                    return Err(UpstreamError::new(
                        UpstreamErrorKind::Closed,
                        "origin closed the connection before a response",
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::TimedOut {
                        self.stats.timeouts.fetch_add(1, Relaxed);
                    }
                    return Err(UpstreamError::from_io(
                        e,
                        UpstreamErrorKind::FirstByteTimeout,
                    ));
                }
            }
        }
    }
}
