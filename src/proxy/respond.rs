//! Writing to viewers: heads finished by `gateway::viewer`, bodies streamed
//! in the framing chosen for this viewer, and the responses this node
//! generates itself. Every write is bounded by the viewer I/O timeout, and
//! every response written is counted by status class.

use super::{Outcome, ShardCtx};
use crate::gateway::decision::{CachePhase, Detail};
use crate::gateway::viewer::{
    Generated, HeadContext, ViewerFraming, finish_head, generated_response,
};
use crate::http::conditional::{Precondition, evaluate, not_modified_head};
use crate::http::{LAST_CHUNK, Method, RequestHead, ResponseHead, Version, encode_chunk_header};
use crate::net::conn::Conn;
use crate::spare;
use std::io;
use std::time::{Duration, SystemTime};

/// Finishes `head` for the viewer and encodes it.
pub fn encode_head(head: &mut ResponseHead, cx: &HeadContext<'_>) -> Vec<u8> {
    encode_head_with_room(head, cx, 0)
}

/// `encode_head` into a buffer with `room` bytes to spare after the head,
/// for a body that goes out in the same write. The buffer is a reused one
/// (`spare`): give it back once written.
pub fn encode_head_with_room(
    head: &mut ResponseHead,
    cx: &HeadContext<'_>,
    room: usize,
) -> Vec<u8> {
    finish_head(head, cx);
    let mut out = spare::take(head.encoded_len() + room);
    head.encode(&mut out);
    out
}

/// Writes a generated response. `req` is None when the request never
/// parsed; it is then answered as HTTP/1.1 with a body. Returns the body
/// bytes sent.
pub async fn send_generated(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: Option<&RequestHead>,
    g: &Generated<'_>,
) -> io::Result<u64> {
    let version = req.map_or(Version::Http11, |r| r.version);
    let head_request = req.is_some_and(|r| r.method == Method::Head);
    let id = g.id.unwrap_or_else(|| ctx.next_request_id());
    let (bytes, body_len) = generated_response(
        g,
        &ctx.settings.node,
        version,
        head_request,
        SystemTime::now(),
        id,
    );
    conn.write_all(&bytes, ctx.settings.io_timeout).await?;
    ctx.stats.count_status(g.status);
    Ok(body_len)
}

/// Answers the viewer's preconditions (RFC 9110 §13.2.2) against a response
/// this node serves from its cache. When they make it a 304, `head` becomes
/// the 304's head and `head_only` is set; when one fails, the 412 is sent
/// here and its outcome returned, so the caller serves nothing more.
pub async fn answer_preconditions(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: &RequestHead,
    head: &mut ResponseHead,
    head_only: &mut bool,
    phase: CachePhase,
    detail: Option<Detail>,
) -> Option<Outcome> {
    match evaluate(&req.headers, head) {
        Precondition::Proceed => None,
        Precondition::NotModified => {
            *head = not_modified_head(head);
            *head_only = true;
            None
        }
        Precondition::Failed => {
            let failed = Generated {
                allow: None,
                id: None,
                status: 412,
                message: "a precondition of the request does not hold",
                keep_alive: req.keep_alive,
                phase,
                detail,
            };
            let sent = send_generated(ctx, conn, Some(req), &failed).await;
            Some(Outcome {
                status: 412,
                phase,
                bytes: *sent.as_ref().unwrap_or(&0),
                keep_alive: req.keep_alive && sent.is_ok(),
                detail,
            })
        }
    }
}

/// Streams a body to the viewer in its framing.
pub struct ViewerBody<'a> {
    pub conn: &'a mut Conn,
    framing: ViewerFraming,
    timeout: Duration,
    /// Body bytes written so far.
    pub sent: u64,
    /// Of those, bytes whose pages were lent to the socket.
    pub lent: u64,
    scratch: Vec<u8>,
}

impl<'a> ViewerBody<'a> {
    pub fn new(conn: &'a mut Conn, framing: ViewerFraming, timeout: Duration) -> Self {
        ViewerBody {
            conn,
            framing,
            timeout,
            sent: 0,
            lent: 0,
            scratch: Vec::new(),
        }
    }

    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() || self.framing == ViewerFraming::NoBody {
            return Ok(());
        }
        if self.framing == ViewerFraming::Chunked {
            self.scratch.clear();
            encode_chunk_header(data.len(), &mut self.scratch);
            self.scratch.extend_from_slice(data);
            self.scratch.extend_from_slice(b"\r\n");
            let buf = std::mem::take(&mut self.scratch);
            let r = self.conn.write_all(&buf, self.timeout).await;
            self.scratch = buf;
            r?;
        } else {
            self.conn.write_all(data, self.timeout).await?;
        }
        self.sent += data.len() as u64;
        Ok(())
    }

    /// Writes `data`, which are the bytes of `file` from `offset`: lent to
    /// the socket where the framing sends them as they are (see
    /// `Conn::write_file`).
    pub async fn write_file(
        &mut self,
        data: &[u8],
        file: Option<(std::os::fd::RawFd, u64)>,
    ) -> io::Result<()> {
        match file {
            Some((fd, offset))
                if !data.is_empty()
                    && matches!(
                        self.framing,
                        ViewerFraming::Length(_) | ViewerFraming::Close
                    ) =>
            {
                if self.conn.write_file(data, fd, offset, self.timeout).await? {
                    self.lent += data.len() as u64;
                }
                self.sent += data.len() as u64;
                Ok(())
            }
            _ => self.write(data).await,
        }
    }

    /// Ends the body (the last chunk for chunked framing).
    pub async fn finish(&mut self) -> io::Result<()> {
        if self.framing == ViewerFraming::Chunked {
            self.conn.write_all(LAST_CHUNK, self.timeout).await?;
        }
        Ok(())
    }
}
