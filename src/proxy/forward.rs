//! Going to the origin, in phases: build the upstream head (`gateway::
//! forwarded`), exchange it (with the viewer's body, for passes) for a
//! response head, decide whether the response may be stored
//! (`cache::policy`), then relay it (`relay`). A failure before the response
//! head becomes a generated 502/504 (origin) or 400/408 (viewer body); a
//! reused origin connection found dead is replaced once, and only for a
//! request whose body was not consumed.

use super::hit::FillPhase;
use super::relay::{self, Keep, UpstreamResponse};
use super::respond::send_generated;
use super::{Outcome, ShardCtx};
use crate::cache::owner::LeadTicket;
use crate::cache::policy;
use crate::cache::store::inflight::Release;
use crate::cache::variants::Selecting;
use crate::gateway::decision::{CachePhase, Detail, PassReason, ViewerBodyFailure};
use crate::gateway::forwarded::{Forwarding, Purpose, sends_body, upstream_head};
use crate::gateway::viewer::Generated;
use crate::http::{BodyFraming, Method, RequestHead, ResponseHead};
use crate::net::body::BodyReader;
use crate::net::conn::Conn;
use crate::upstream::{UpstreamError, UpstreamErrorKind};
use std::net::SocketAddr;
use std::time::SystemTime;

/// Why a request goes to the origin.
pub enum Forward<'c> {
    /// A cacheable GET/HEAD: fetch the full object and store it if allowed.
    /// With a lead, other misses for the key wait on this fetch.
    Fill {
        /// The URL's key, or the variant of it the request selects.
        selecting: Selecting,
        phase: FillPhase,
        lead: Option<LeadTicket<'c>>,
    },
    /// Forward as is; never store.
    Pass(PassReason),
}

/// Which side ended an exchange before the response head.
enum Failure {
    Upstream(UpstreamError),
    /// The viewer's request body was bad or did not arrive.
    ViewerBody(ViewerBodyFailure, std::io::Error),
}

pub async fn forward(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    req: &RequestHead,
    peer: SocketAddr,
    mode: Forward<'_>,
) -> Outcome {
    let (purpose, phase) = match &mode {
        Forward::Fill { phase, .. } => (Purpose::Fill, phase.phase()),
        Forward::Pass(reason) => (Purpose::Pass, reason.phase()),
    };
    let s = &ctx.settings;
    let host = s
        .host_header
        .as_deref()
        .or(req.authority.as_deref())
        .unwrap_or(&s.origin_authority);
    let forwarding = Forwarding {
        host,
        node: &s.node,
        peer: peer.ip(),
    };
    let head = upstream_head(req, purpose, &forwarding);
    let with_body = sends_body(req, purpose);
    // A fill always fetches with GET; a passed HEAD stays a HEAD.
    let upstream_is_head = purpose == Purpose::Pass && req.method == Method::Head;
    let request_time = SystemTime::now();
    let exchanged = exchange(ctx, viewer, req, &head, with_body, upstream_is_head).await;
    let (resp, origin) = match exchanged {
        Ok(r) => r,
        // A lead dropped here releases its waiters to ask again.
        Err(failure) => return answer_failure(ctx, viewer, req, phase, failure, with_body).await,
    };
    let response_time = SystemTime::now();
    let keep = match mode {
        Forward::Fill {
            selecting, lead, ..
        } => {
            let stored =
                storability(ctx, req, &resp, request_time, response_time).and_then(|freshness| {
                    Ok((freshness, selecting.plan_fill(&resp.headers, &req.headers)?))
                });
            match stored {
                Ok((freshness, target)) => Keep::Store {
                    target,
                    freshness,
                    lead,
                },
                Err(why) => {
                    // Waiters go to the origin at once, each on its own.
                    if let Some(lead) = lead {
                        lead.release(Release::Uncacheable).await;
                    }
                    Keep::Pass(Some(Detail::NotStored(why)))
                }
            }
        }
        Forward::Pass(reason) => Keep::Pass(reason.detail()),
    };
    let upstream = UpstreamResponse {
        head: resp,
        conn: origin,
        was_head: upstream_is_head,
    };
    relay::relay(ctx, viewer, req, phase, upstream, keep).await
}

/// Whether a fill's response may be stored, and its freshness if so.
fn storability(
    ctx: &ShardCtx,
    req: &RequestHead,
    resp: &ResponseHead,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Result<policy::Freshness, policy::NotStored> {
    let freshness = policy::decide(
        &req.method,
        &req.headers,
        resp,
        request_time,
        response_time,
        &ctx.settings.policy,
    )?;
    policy::storable_body(resp, ctx.cache.max_object())?;
    Ok(freshness)
}

/// Sends the head (and body) upstream and returns the response head with
/// its connection. A reused connection that turns out dead is replaced once,
/// when the request has no body that was already consumed.
async fn exchange(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    req: &RequestHead,
    head: &[u8],
    with_body: bool,
    head_request: bool,
) -> Result<(ResponseHead, Conn), Failure> {
    let mut retried = false;
    loop {
        let checkout = ctx.origin.checkout().await.map_err(Failure::Upstream)?;
        let (mut origin, reused) = (checkout.conn, checkout.reused);
        let retry_ok = reused && !retried && !with_body;
        if let Err(e) = ctx.origin.send(&mut origin, head).await {
            if retry_ok {
                retried = true;
                continue;
            }
            return Err(Failure::Upstream(e));
        }
        if with_body {
            relay_request_body(ctx, viewer, &mut origin, req).await?;
        }
        match ctx.origin.read_head(&mut origin, head_request).await {
            Ok(h) => return Ok((h, origin)),
            Err(e) if retry_ok && e.kind == UpstreamErrorKind::Closed => {
                retried = true;
            }
            Err(e) => return Err(Failure::Upstream(e)),
        }
    }
}

/// Streams the viewer's request body to the origin in the framing the
/// upstream head announced, answering `Expect: 100-continue` first.
async fn relay_request_body(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    origin: &mut Conn,
    req: &RequestHead,
) -> Result<(), Failure> {
    let io_timeout = ctx.settings.io_timeout;
    let viewer_failed = |e: std::io::Error| {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut => ViewerBodyFailure::Timeout,
            _ => ViewerBodyFailure::Malformed,
        };
        Failure::ViewerBody(kind, e)
    };
    if req.expect_continue {
        viewer
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n", io_timeout)
            .await
            .map_err(viewer_failed)?;
    }
    let chunked = req.framing == BodyFraming::Chunked;
    let mut reader = BodyReader::new(req.framing);
    let mut scratch = Vec::new();
    while let Some(piece) = reader
        .next(viewer, io_timeout)
        .await
        .map_err(viewer_failed)?
    {
        ctx.origin
            .send_body_piece(origin, &piece, chunked, &mut scratch)
            .await
            .map_err(Failure::Upstream)?;
    }
    ctx.origin
        .end_body(origin, chunked)
        .await
        .map_err(Failure::Upstream)
}

/// Answers a request whose exchange failed before a response head arrived.
async fn answer_failure(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    req: &RequestHead,
    phase: CachePhase,
    failure: Failure,
    with_body: bool,
) -> Outcome {
    let (status, message, detail, keep_alive) = match failure {
        Failure::Upstream(e) => {
            crate::warn_limited!(shard = ctx.shard, "origin request failed: {e}");
            // A request body may be half read: the connection cannot be reused then.
            let keep = req.keep_alive && !with_body;
            (e.status(), e.to_string(), Detail::Upstream(e.kind), keep)
        }
        Failure::ViewerBody(kind, e) => (
            kind.status(),
            e.to_string(),
            Detail::ViewerBody(kind),
            false,
        ),
    };
    let generated = Generated {
        status,
        message: &message,
        keep_alive,
        phase,
        detail: Some(detail),
    };
    let bytes = send_generated(ctx, viewer, Some(req), &generated)
        .await
        .unwrap_or(0);
    Outcome {
        status,
        phase,
        bytes,
        keep_alive,
        detail: Some(detail),
    }
}
