//! Writing responses to viewers: finishing a head (framing, Via, Date,
//! Cache-Status, Connection), streaming a body in the framing chosen for this
//! viewer, and the error responses edgeslab generates itself.

use super::ShardCtx;
use super::phase::{CachePhase, CacheStatus};
use crate::http::{
    BodyFraming, LAST_CHUNK, RequestHead, ResponseHead, Version, encode_chunk_header,
};
use crate::net::conn::Conn;
use std::io;
use std::time::SystemTime;

/// How the body goes to the viewer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewerFraming {
    /// No body on the wire (HEAD, 204, 304); Content-Length may still describe it.
    NoBody,
    Length(u64),
    Chunked,
    /// HTTP/1.0 viewer and unknown length: the body ends when we close.
    Close,
}

/// Responses that never carry a body, whatever their headers say.
pub fn status_has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// Picks the viewer framing for a body whose upstream framing is `upstream`.
pub fn viewer_framing(req: &RequestHead, status: u16, upstream: BodyFraming) -> ViewerFraming {
    if status_has_no_body(status) {
        return ViewerFraming::NoBody;
    }
    match upstream {
        BodyFraming::ContentLength(n) => ViewerFraming::Length(n),
        BodyFraming::None => ViewerFraming::Length(0),
        BodyFraming::Chunked | BodyFraming::CloseDelimited => {
            if req.version == Version::Http11 {
                ViewerFraming::Chunked
            } else {
                ViewerFraming::Close
            }
        }
    }
}

/// Completes a head for the viewer. `length` is the representation length to
/// advertise (also for HEAD), when known.
pub fn finish_head(
    ctx: &ShardCtx,
    head: &mut ResponseHead,
    req: &RequestHead,
    framing: ViewerFraming,
    length: Option<u64>,
    keep_alive: bool,
    status_entry: &CacheStatus<'_>,
) {
    let h = &mut head.headers;
    h.strip_hop_by_hop();
    h.remove("content-length");
    match framing {
        ViewerFraming::Length(n) => h.set("Content-Length", n.to_string()),
        ViewerFraming::Chunked => h.set("Transfer-Encoding", "chunked"),
        ViewerFraming::NoBody => {
            if let (Some(n), false) = (length, status_has_no_body(head.status)) {
                h.set("Content-Length", n.to_string());
            }
        }
        ViewerFraming::Close => {}
    }
    if !h.contains("date") {
        h.set("Date", httpdate::fmt_http_date(SystemTime::now()));
    }
    let via = match h.get_str("via") {
        Some(v) if !v.is_empty() => format!("{v}, 1.1 {}", ctx.node),
        _ => format!("1.1 {}", ctx.node),
    };
    h.set("Via", via);
    let entry = status_entry.render(&ctx.node);
    let cache_status = match h.get_str("cache-status") {
        Some(v) if !v.is_empty() => format!("{v}, {entry}"),
        _ => entry,
    };
    h.set("Cache-Status", cache_status);
    if !keep_alive || framing == ViewerFraming::Close {
        h.set("Connection", "close");
    } else if req.version == Version::Http10 {
        h.set("Connection", "keep-alive");
    }
}

/// Streams a body to the viewer in its framing.
pub struct ViewerBody<'a> {
    pub conn: &'a mut Conn,
    framing: ViewerFraming,
    timeout: std::time::Duration,
    pub sent: u64,
    scratch: Vec<u8>,
}

impl<'a> ViewerBody<'a> {
    pub fn new(conn: &'a mut Conn, framing: ViewerFraming, timeout: std::time::Duration) -> Self {
        ViewerBody {
            conn,
            framing,
            timeout,
            sent: 0,
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

    /// Ends the body (the last chunk for chunked framing).
    pub async fn finish(&mut self) -> io::Result<()> {
        if self.framing == ViewerFraming::Chunked {
            self.conn.write_all(LAST_CHUNK, self.timeout).await?;
        }
        Ok(())
    }
}

/// A response edgeslab writes itself (an error or a refusal).
pub struct Generated<'a> {
    pub status: u16,
    pub message: &'a str,
    pub keep_alive: bool,
    pub phase: CachePhase,
    pub detail: Option<&'a str>,
}

/// Writes a generated response. Returns the body bytes sent.
pub async fn send_simple(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: Option<&RequestHead>,
    g: Generated<'_>,
) -> io::Result<u64> {
    let Generated {
        status,
        message,
        keep_alive,
        phase,
        detail,
    } = g;
    let mut head = ResponseHead::new(status);
    let body = format!("{status} {}: {message}\n", head.reason);
    head.headers
        .set("Content-Type", "text/plain; charset=utf-8");
    head.headers.set("Cache-Control", "no-store");
    let status_entry = CacheStatus {
        phase,
        stored: false,
        ttl: None,
        fwd_status: None,
        detail,
    };
    let fallback;
    let req = match req {
        Some(r) => r,
        None => {
            fallback = placeholder_request();
            &fallback
        }
    };
    let is_head = req.method == crate::http::Method::Head;
    let framing = if is_head {
        ViewerFraming::NoBody
    } else {
        ViewerFraming::Length(body.len() as u64)
    };
    finish_head(
        ctx,
        &mut head,
        req,
        framing,
        Some(body.len() as u64),
        keep_alive,
        &status_entry,
    );
    let mut out = Vec::with_capacity(256 + body.len());
    head.encode(&mut out);
    if !is_head {
        out.extend_from_slice(body.as_bytes());
    }
    conn.write_all(&out, ctx.io_timeout).await?;
    ctx.metrics.viewer.count_status(status);
    Ok(if is_head { 0 } else { body.len() as u64 })
}

/// Stands in for a request we could not parse, when answering it.
fn placeholder_request() -> RequestHead {
    RequestHead {
        method: crate::http::Method::Get,
        target: "/".into(),
        version: Version::Http11,
        headers: crate::http::Headers::new(),
        authority: None,
        framing: BodyFraming::None,
        keep_alive: false,
        expect_continue: false,
    }
}
