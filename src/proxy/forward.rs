//! Going to the origin: misses (fetched with GET, streamed to the viewer as
//! the bytes arrive while the same bytes go to the cache) and passes (any
//! method, request and response bodies streamed both ways, nothing stored).
//! A response that ends early or fails is never stored, and the viewer's
//! connection is closed so it cannot mistake a truncated body for a whole one.

use super::phase::{CachePhase, CacheStatus};
use super::respond::{
    Generated, ViewerBody, ViewerFraming, finish_head, send_simple, viewer_framing,
};
use super::{Outcome, ShardCtx};
use crate::cache::key::CacheKey;
use crate::cache::policy::{self, to_unix_millis};
use crate::cache::store::FillMeta;
use crate::http::{BodyFraming, Method, RequestHead, ResponseHead, encode_chunk_header};
use crate::net::body::BodyReader;
use crate::net::conn::Conn;
use crate::upstream::{UpstreamError, UpstreamErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

pub enum Mode {
    /// A cacheable GET/HEAD: fetch the full object and store it if allowed.
    Fill(CacheKey, CachePhase),
    /// Forward as is; never store.
    Pass(CachePhase, Option<&'static str>),
}

/// Headers a cache fill must not forward: they would make the origin answer
/// with something other than the full representation.
const FILL_DROPS: &[&str] = &[
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
];

fn upstream_head(ctx: &ShardCtx, req: &RequestHead, peer: SocketAddr, fill: bool) -> Vec<u8> {
    let mut up = req.clone();
    if fill {
        up.method = Method::Get;
        for h in FILL_DROPS {
            up.headers.remove(h);
        }
    }
    up.headers.remove("expect");
    let host = ctx
        .host_header
        .clone()
        .or_else(|| req.authority.clone())
        .unwrap_or_else(|| ctx.origin_authority.clone());
    up.headers.set("Host", host);
    let via = match req.headers.get_str("via") {
        Some(v) if !v.is_empty() => format!("{v}, 1.1 {}", ctx.node),
        _ => format!("1.1 {}", ctx.node),
    };
    up.headers.set("Via", via);
    let xff = match req.headers.get_str("x-forwarded-for") {
        Some(v) if !v.is_empty() => format!("{v}, {}", peer.ip()),
        _ => peer.ip().to_string(),
    };
    up.headers.set("X-Forwarded-For", xff);
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if !fill && req.framing == BodyFraming::Chunked {
        up.headers.remove("content-length");
        extra.push(("Transfer-Encoding", "chunked"));
    }
    let mut out = Vec::with_capacity(512);
    up.encode_upstream(&extra, &mut out);
    out
}

/// Which side ended an exchange early.
enum Failure {
    Upstream(UpstreamError),
    /// The viewer's request body was bad or did not arrive.
    ViewerBody(std::io::Error),
}

/// Sends the head (and body) upstream and returns the response head with
/// its connection. A reused connection that turns out dead is replaced once,
/// when the request has no body that was already consumed.
async fn exchange(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    req: &RequestHead,
    head: &[u8],
    send_body: bool,
    head_request: bool,
) -> Result<(ResponseHead, Conn), Failure> {
    let mut retried = false;
    loop {
        let checkout = ctx.pool.checkout().await.map_err(Failure::Upstream)?;
        let (mut origin, reused) = (checkout.conn, checkout.reused);
        let retry_ok = reused && !retried && !send_body;
        if let Err(e) = ctx.pool.send_head(&mut origin, head).await {
            if retry_ok {
                retried = true;
                continue;
            }
            return Err(Failure::Upstream(e));
        }
        if send_body {
            stream_request_body(ctx, viewer, &mut origin, req).await?;
        }
        match ctx.pool.read_head(&mut origin, head_request).await {
            Ok(h) => return Ok((h, origin)),
            Err(e) if retry_ok && e.kind == UpstreamErrorKind::Closed => {
                retried = true;
            }
            Err(e) => return Err(Failure::Upstream(e)),
        }
    }
}

async fn stream_request_body(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    origin: &mut Conn,
    req: &RequestHead,
) -> Result<(), Failure> {
    if req.expect_continue {
        viewer
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n", ctx.io_timeout)
            .await
            .map_err(Failure::ViewerBody)?;
    }
    let chunked = req.framing == BodyFraming::Chunked;
    let mut reader = BodyReader::new(req.framing);
    let write_err =
        |e| Failure::Upstream(UpstreamError::from_io(e, UpstreamErrorKind::WriteFailed));
    let mut frame = Vec::new();
    while let Some(piece) = reader
        .next(viewer, ctx.io_timeout)
        .await
        .map_err(Failure::ViewerBody)?
    {
        if chunked {
            frame.clear();
            encode_chunk_header(piece.len(), &mut frame);
            frame.extend_from_slice(&piece);
            frame.extend_from_slice(b"\r\n");
            origin
                .write_all(&frame, ctx.origin_idle_timeout)
                .await
                .map_err(write_err)?;
        } else {
            origin
                .write_all(&piece, ctx.origin_idle_timeout)
                .await
                .map_err(write_err)?;
        }
    }
    if chunked {
        origin
            .write_all(crate::http::LAST_CHUNK, ctx.origin_idle_timeout)
            .await
            .map_err(write_err)?;
    }
    Ok(())
}

/// The head to store: what a later hit serves, minus what is recomputed then.
fn stored_head(resp: &ResponseHead) -> Vec<u8> {
    let mut h = resp.clone();
    h.headers.strip_hop_by_hop();
    for name in ["age", "content-length", "via", "cache-status"] {
        h.headers.remove(name);
    }
    if !h.headers.contains("date") {
        h.headers
            .set("Date", httpdate::fmt_http_date(SystemTime::now()));
    }
    let mut out = Vec::with_capacity(512);
    h.encode(&mut out);
    out
}

/// Whether the last data write completes the response on the wire (a
/// length-framed body), rather than a terminator written after it.
fn framing_ends_with_data(f: ViewerFraming) -> bool {
    matches!(f, ViewerFraming::Length(_) | ViewerFraming::NoBody)
}

pub async fn forward(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    req: &RequestHead,
    peer: SocketAddr,
    mode: Mode,
) -> Outcome {
    let (fill_key, phase, pass_detail) = match mode {
        Mode::Fill(key, phase) => (Some(key), phase, None),
        Mode::Pass(phase, detail) => (None, phase, detail),
    };
    let fill = fill_key.is_some();
    let head_bytes = upstream_head(ctx, req, peer, fill);
    let send_body = !fill
        && !matches!(
            req.framing,
            BodyFraming::None | BodyFraming::ContentLength(0)
        );
    let upstream_is_head = req.method == Method::Head && !fill;
    let request_time = SystemTime::now();
    let (resp, mut origin) =
        match exchange(ctx, viewer, req, &head_bytes, send_body, upstream_is_head).await {
            Ok(r) => r,
            Err(Failure::Upstream(e)) => {
                tracing::warn!(shard = ctx.shard, "origin request failed: {e}");
                // The request body may be half read: the connection cannot be reused then.
                let keep = req.keep_alive && !send_body;
                let bytes = send_simple(
                    ctx,
                    viewer,
                    Some(req),
                    Generated {
                        status: e.status(),
                        message: &e.to_string(),
                        keep_alive: keep,
                        phase,
                        detail: Some(e.token()),
                    },
                )
                .await
                .unwrap_or(0);
                return Outcome {
                    status: e.status(),
                    phase,
                    bytes,
                    keep_alive: keep,
                    detail: Some(e.token()),
                };
            }
            Err(Failure::ViewerBody(e)) => {
                let (status, detail) = match e.kind() {
                    std::io::ErrorKind::TimedOut => (408, "request-body-timeout"),
                    _ => (400, "bad-request-body"),
                };
                let bytes = send_simple(
                    ctx,
                    viewer,
                    Some(req),
                    Generated {
                        status,
                        message: &e.to_string(),
                        keep_alive: false,
                        phase,
                        detail: Some(detail),
                    },
                )
                .await
                .unwrap_or(0);
                return Outcome {
                    status,
                    phase,
                    bytes,
                    keep_alive: false,
                    detail: Some(detail),
                };
            }
        };
    let response_time = SystemTime::now();

    let mut not_stored: Option<&'static str> = pass_detail;
    let freshness = match &fill_key {
        None => None,
        Some(_) => {
            let decided = policy::decide(
                &req.method,
                &req.headers,
                &resp,
                request_time,
                response_time,
                &ctx.policy,
            );
            match decided {
                Ok(f) if resp.has_non_chunked_transfer_coding() => {
                    let _ = f;
                    not_stored = Some("transfer-coding");
                    None
                }
                Ok(f) => match resp.framing {
                    BodyFraming::ContentLength(n) if n > ctx.cache.max_object() => {
                        not_stored = Some("too-large");
                        None
                    }
                    _ => Some(f),
                },
                Err(why) => {
                    not_stored = Some(why.as_str());
                    None
                }
            }
        }
    };
    let storing = freshness.is_some();
    let head_only = req.method == Method::Head;

    // A HEAD that we fetched as GET and will not store: the body is not
    // worth reading, so the origin connection is simply closed.
    let upstream_framing = resp.framing;
    let length = match upstream_framing {
        BodyFraming::ContentLength(n) => Some(n),
        _ => None,
    };
    let framing = if head_only {
        ViewerFraming::NoBody
    } else {
        viewer_framing(req, resp.status, upstream_framing)
    };
    let keep_alive = req.keep_alive && framing != ViewerFraming::Close;
    let mut viewer_head = resp.clone();
    let status_entry = CacheStatus {
        phase,
        stored: storing,
        ttl: None,
        fwd_status: None,
        detail: if storing { None } else { not_stored },
    };
    finish_head(
        ctx,
        &mut viewer_head,
        req,
        framing,
        length,
        keep_alive,
        &status_entry,
    );
    let mut out = Vec::with_capacity(1024);
    viewer_head.encode(&mut out);
    ctx.metrics.viewer.count_status(resp.status);
    let mut outcome = Outcome {
        status: resp.status,
        phase,
        bytes: 0,
        keep_alive,
        detail: status_entry.detail,
    };
    if viewer.write_all(&out, ctx.io_timeout).await.is_err() {
        outcome.keep_alive = false;
        return outcome;
    }
    let body_wanted = storing || !head_only;
    if !body_wanted {
        if upstream_is_head && resp.keep_alive {
            ctx.pool.checkin(origin);
        }
        return outcome;
    }

    let sink = match (&fill_key, freshness) {
        (Some(key), Some(f)) => {
            let meta = FillMeta {
                key: key.as_str().to_string(),
                hash: key.hash(),
                head: stored_head(&resp),
                born_ms: to_unix_millis(f.born),
                expires_ms: to_unix_millis(f.expires),
            };
            Some(ctx.cache.fill(key, meta).await)
        }
        _ => None,
    };
    let mut body = ViewerBody::new(viewer, framing, ctx.io_timeout);
    let mut reader = BodyReader::new(upstream_framing);
    let mut viewer_ok = true;
    let mut sink = sink;
    // The write that completes the viewer's response waits until the fill is
    // indexed: a viewer that saw a whole response finds it stored.
    let result = loop {
        match reader.next(&mut origin, ctx.origin_idle_timeout).await {
            Ok(Some(piece)) => {
                ctx.metrics
                    .viewer
                    .origin_bytes
                    .fetch_add(piece.len() as u64, Relaxed);
                if let Some(s) = &sink {
                    s.data(&piece).await;
                }
                if reader.is_done()
                    && framing_ends_with_data(framing)
                    && let Some(s) = sink.take()
                {
                    s.finish(true).await;
                }
                if viewer_ok && body.write(&piece).await.is_err() {
                    viewer_ok = false;
                    if sink.is_none() {
                        break Ok(());
                    }
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    match result {
        Ok(()) if reader.is_done() => {
            if let Some(s) = sink.take() {
                s.finish(true).await;
            }
            if viewer_ok && body.finish().await.is_err() {
                viewer_ok = false;
            }
            if resp.keep_alive && upstream_framing != BodyFraming::CloseDelimited {
                ctx.pool.checkin(origin);
            }
        }
        Ok(()) => {
            // The viewer went away and nothing is being stored.
            if let Some(s) = sink.take() {
                s.finish(false).await;
            }
        }
        Err(e) => {
            tracing::warn!(
                shard = ctx.shard,
                "origin body failed after {} bytes: {e}",
                reader.received()
            );
            if let Some(s) = sink.take() {
                s.finish(false).await;
            }
            outcome.keep_alive = false;
            outcome.detail = Some("origin-body-truncated");
        }
    }
    outcome.bytes = body.sent;
    if !viewer_ok {
        outcome.keep_alive = false;
    }
    outcome
}
