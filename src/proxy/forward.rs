//! Going to the origin, in phases: build the upstream head (`gateway::
//! forwarded`), exchange it (with the viewer's body, for passes) for a
//! response head, decide what the response is for (`cache::policy`: stored,
//! relayed, a 304 that freshens a stored copy, an error a stale copy may
//! answer), then relay it (`relay`). A failure before the response head
//! becomes a generated 502/504 (origin) or 400/408 (viewer body); a reused
//! origin connection found dead is replaced once, and only for a request
//! whose body was not consumed. A successful unsafe request invalidates
//! what it changed (RFC 9111 §4.4).

use super::hit::FillPhase;
use super::parts::{self, PartsObject};
use super::relay::{self, Keep, UpstreamResponse};
use super::respond::send_generated;
use super::revalidate::{self, StaleCopy};
use super::{Outcome, ShardCtx};
use crate::cache::owner::LeadTicket;
use crate::cache::parts::{PartsMarker, Validator, parse_content_range};
use crate::cache::policy::{self, Conditional, Exchange, OriginOutcome, Storable};
use crate::cache::store::inflight::Release;
use crate::cache::variants::Selecting;
use crate::gateway::decision::{CachePhase, Detail, PassReason, ViewerBodyFailure};
use crate::gateway::forwarded::{Forwarding, Purpose, sends_body, upstream_head};
use crate::gateway::viewer::Generated;
use crate::http::{BodyFraming, Method, RequestHead, ResponseHead};
use crate::net::body::BodyReader;
use crate::net::conn::Conn;
use crate::spare::Boxed;
use crate::upstream::{Hop, UpstreamError, UpstreamErrorKind, UpstreamRoute};
use std::net::SocketAddr;
use std::time::SystemTime;

/// Why a request goes to the origin.
pub enum Forward<'c> {
    /// A cacheable GET/HEAD: fetch the full object and store it if allowed.
    /// With a lead, other misses for the key wait on this fetch; with a
    /// stale copy, the fetch validates it first.
    Fill {
        /// The URL's key, or the variant of it the request selects.
        selecting: Selecting,
        phase: FillPhase,
        lead: Option<LeadTicket<'c>>,
        stale: Option<Box<StaleCopy>>,
    },
    /// Forward as is; never store.
    Pass(PassReason),
}

/// Which side ended an exchange before the response head.
pub(super) enum Failure {
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
    match mode {
        Forward::Pass(reason) => pass(ctx, viewer, req, peer, reason).await,
        Forward::Fill {
            selecting,
            phase,
            lead,
            stale,
        } => {
            let fetch = Fetching {
                selecting,
                phase,
                lead,
                stale,
            };
            fill(ctx, viewer, req, peer, fetch).await
        }
    }
}

/// Who this node is and whom it speaks for, for a request to the origin.
pub(super) fn forwarding<'a>(
    ctx: &'a ShardCtx,
    req: &'a RequestHead,
    peer: SocketAddr,
    validators: Option<&'a Conditional>,
) -> Forwarding<'a> {
    let s = &ctx.settings;
    Forwarding {
        host: s
            .host_header
            .as_deref()
            .or(req.authority.as_deref())
            .unwrap_or(&s.origin_authority),
        node: &s.node,
        peer: peer.ip(),
        validators,
        part: None,
        policy: ctx.cacheable(req).then(|| ctx.behavior(req)),
    }
}

async fn pass(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    req: &RequestHead,
    peer: SocketAddr,
    reason: PassReason,
) -> Outcome {
    let phase = reason.phase();
    let head = upstream_head(req, Purpose::Pass, &forwarding(ctx, req, peer, None));
    let with_body = sends_body(req, Purpose::Pass);
    let is_head = req.method == Method::Head;
    let route = ctx.pass_route(req);
    let (resp, origin) = match exchange(ctx, Some(viewer), req, &head, with_body, is_head, route)
        .await
    {
        Ok(r) => r,
        Err(failure) => return answer_failure(ctx, viewer, req, phase, failure, with_body).await,
    };
    invalidate_after(ctx, req, &resp).await;
    let upstream = UpstreamResponse {
        head: resp,
        conn: origin,
        was_head: is_head,
        fetched_whole: false,
    };
    relay::relay(
        ctx,
        viewer,
        req,
        phase,
        None,
        upstream,
        Keep::Pass(reason.detail()),
    )
    .await
}

/// RFC 9111 §4.4: a non-error answer to an unsafe method invalidates the
/// target URI and the same-origin Location / Content-Location it names.
async fn invalidate_after(ctx: &ShardCtx, req: &RequestHead, resp: &ResponseHead) {
    if policy::is_safe(&req.method) {
        return;
    }
    let s = &ctx.settings;
    let authority = req.authority.as_deref().unwrap_or(&s.origin_authority);
    let target = policy::TargetUri::new("http", authority, &req.target);
    for uri in policy::invalidation_targets(&req.method, &target, resp.status, &resp.headers) {
        // The key as this viewer's request for the URI would make it (its
        // keyed fields, e.g. its Accept-Encoding, included).
        let mut as_get = req.clone();
        as_get.target = uri.target.clone();
        let key = ctx
            .behavior(&as_get)
            .cache_key(&uri.scheme, &uri.authority, &as_get);
        ctx.cache.remove(&key).await;
    }
}

/// A cacheable request on its way to the origin.
struct Fetching<'c> {
    selecting: Selecting,
    phase: FillPhase,
    lead: Option<LeadTicket<'c>>,
    stale: Option<Box<StaleCopy>>,
}

async fn fill(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    req: &RequestHead,
    peer: SocketAddr,
    f: Fetching<'_>,
) -> Outcome {
    let Fetching {
        selecting,
        phase,
        lead,
        mut stale,
    } = f;
    let phase = phase.phase();
    // Validation and stale answers concern the entry the request is after.
    let key = selecting.key().clone();
    loop {
        let fwd = stale.as_ref().map_or(phase.fwd(), |s| Some(s.fwd()));
        let validators = stale.as_ref().and_then(|s| s.validators());
        let head = upstream_head(
            req,
            Purpose::Fill,
            &forwarding(ctx, req, peer, validators.as_ref()),
        );
        let request_time = SystemTime::now();
        let route = ctx.fill_route(req);
        let (resp, origin) =
            match exchange(ctx, Some(viewer), req, &head, false, false, route).await {
                Ok(r) => r,
                Err(failure) => {
                    // A stored copy may answer a failed revalidation.
                    if let Some(s) = stale.take()
                        && let Some(outcome) = revalidate::serve_if_error(
                            ctx,
                            viewer,
                            req,
                            &key,
                            *s,
                            OriginOutcome::Unreachable,
                        )
                        .await
                    {
                        return outcome;
                    }
                    // A lead dropped here releases its waiters to ask again.
                    return answer_failure(ctx, viewer, req, phase, failure, false).await;
                }
            };
        let exchange = Exchange {
            method: &req.method,
            request: &req.headers,
            request_time,
            response_time: SystemTime::now(),
        };
        if resp.status == 304 {
            let Some(s) = stale.take().filter(|_| validators.is_some()) else {
                // RFC 9111 §4.3.3: a 304 nobody asked for is unusable.
                return answer_unsolicited_304(ctx, viewer, req, phase).await;
            };
            // Boxed, as below: revalidation's large futures would else be
            // carried, and copied, by every fill (see `spare::Boxed`).
            let freshened =
                || revalidate::serve_freshened(ctx, viewer, req, &key, *s, &resp, &exchange);
            match Boxed::with(freshened).await {
                Ok(outcome) => {
                    if resp.keep_alive {
                        ctx.upstream.checkin(origin);
                    }
                    if let Some(lead) = lead {
                        lead.release(Release::Refreshed).await;
                    }
                    return outcome;
                }
                // The 304 names another representation: fetch it whole.
                Err(()) => continue,
            }
        }
        let outcome = OriginOutcome::Status(resp.status);
        if let Some(s) = stale.take_if(|s| s.answers_error(outcome))
            && let Some(answered) =
                Boxed::with(|| revalidate::serve_if_error(ctx, viewer, req, &key, *s, outcome))
                    .await
        {
            return answered;
        }
        // Too large to store whole, or served in ranges only: kept in parts.
        if let Some((marker, freshness)) = in_parts(ctx, req, &exchange, &resp)
            && let Ok(target) = selecting.plan_fill(&resp.headers, &req.headers)
        {
            let head = parts::whole_head(&resp);
            parts::keep_marker(ctx, &target, &marker, &head, freshness).await;
            // Waiters look again and find the marker.
            if let Some(lead) = lead {
                lead.release(Release::Refreshed).await;
            }
            let ranged = resp.status == 206 || req.headers.contains("range");
            if ranged && req.method == Method::Get {
                // The origin connection goes with its unread body.
                let object = PartsObject {
                    key: target.key,
                    head,
                    marker,
                    freshness,
                };
                // Boxed: serving parts takes a state of 14 KiB, twice the
                // rest of a fill's; held inline it made every miss's future
                // that large, and it is moved (copied) once per request.
                return Box::pin(parts::serve(ctx, viewer, req, peer, object)).await;
            }
            let upstream = UpstreamResponse {
                head: resp,
                conn: origin,
                was_head: false,
                fetched_whole: true,
            };
            let keep = Keep::Pass(Some(Detail::Parts));
            return relay::relay(ctx, viewer, req, phase, fwd, upstream, keep).await;
        }
        let stored = storability(ctx, req, &exchange, &resp)
            .and_then(|storable| Ok((storable, selecting.plan_fill(&resp.headers, &req.headers)?)));
        let keep = match stored {
            Ok((storable, target)) => Keep::Store {
                target,
                storable: Box::new(storable),
                lead,
            },
            Err(why) => {
                // Waiters go to the origin at once, each on its own.
                if let Some(lead) = lead {
                    lead.release(Release::Uncacheable).await;
                }
                Keep::Pass(Some(Detail::NotStored(why)))
            }
        };
        let upstream = UpstreamResponse {
            head: resp,
            conn: origin,
            was_head: false,
            fetched_whole: true,
        };
        return relay::relay(ctx, viewer, req, phase, fwd, upstream, keep).await;
    }
}

/// Whether a fill's response is for keeping in parts: a cacheable 200 too
/// large to store whole, or a 206 the origin sent to a plain GET (it serves
/// ranges only) — either with a strong validator, so that parts fetched
/// later can be shown to be the same representation.
fn in_parts(
    ctx: &ShardCtx,
    req: &RequestHead,
    exchange: &Exchange<'_>,
    resp: &ResponseHead,
) -> Option<(PartsMarker, policy::Freshness)> {
    if !matches!(req.method, Method::Get | Method::Head) || resp.has_non_chunked_transfer_coding() {
        return None;
    }
    let total = match (resp.status, resp.framing) {
        (200, BodyFraming::ContentLength(n)) if n > ctx.cache.max_object() => n,
        (206, _) => parse_content_range(resp.headers.get_str("content-range")?)?.2,
        _ => return None,
    };
    let validator = Validator::of(&resp.headers)?;
    // The whole representation's head decides whether it may be stored.
    let storable = policy::assess(exchange, &parts::whole_head(resp), &ctx.settings.policy).ok()?;
    let marker = PartsMarker {
        total,
        part_size: ctx.cache.store().chunk_size(),
        validator,
    };
    (total > 0).then_some((marker, storable.freshness))
}

/// Whether a fill's response may be stored (RFC 9111 §3), and how.
pub(super) fn storability(
    ctx: &ShardCtx,
    req: &RequestHead,
    exchange: &Exchange<'_>,
    resp: &ResponseHead,
) -> Result<Storable, policy::NotStored> {
    // The behaviour's TTLs: its default for responses without a lifetime,
    // and every lifetime kept within its minimum and maximum.
    let behavior = ctx.behavior(req);
    let mut config = ctx.settings.policy.clone();
    config.default_ttl = behavior.clamp_ttl(None).unwrap_or_default();
    let mut storable = policy::assess(exchange, resp, &config)?;
    let f = &mut storable.freshness;
    if let Ok(lifetime) = f.expires.duration_since(f.born)
        && let Some(clamped) = behavior.clamp_ttl(Some(lifetime))
    {
        f.expires = f.born + clamped;
    }
    // Partial content is not stored yet.
    if storable.body != policy::StoredBody::Complete {
        return Err(policy::NotStored::PartialContent);
    }
    policy::storable_body(resp, ctx.cache.max_object())?;
    Ok(storable)
}

/// A 304 to a request without validators: a 502 (RFC 9111 §4.3.3).
async fn answer_unsolicited_304(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    req: &RequestHead,
    phase: CachePhase,
) -> Outcome {
    let detail = Some(Detail::Unsolicited304);
    let generated = Generated {
        allow: None,
        id: None,
        status: 502,
        message: "the origin answered 304 to a request without validators",
        keep_alive: req.keep_alive,
        phase,
        detail,
    };
    let bytes = send_generated(ctx, viewer, Some(req), &generated).await;
    Outcome {
        status: 502,
        phase,
        bytes: bytes.as_ref().copied().unwrap_or(0),
        keep_alive: req.keep_alive && bytes.is_ok(),
        detail,
    }
}

/// Sends the head (and body) upstream and returns the response head with
/// its connection, asking the hops of `route`'s plan in turn: a hop that
/// cannot be reached, times out, or answers a status it fails over on is
/// marked and the next one asked (a request whose body is under way only
/// moves on when nothing was sent). A reused connection that turns out dead
/// is replaced once, when the request has no body that was already consumed.
pub(super) async fn exchange(
    ctx: &ShardCtx,
    mut viewer: Option<&mut Conn>,
    req: &RequestHead,
    head: &[u8],
    with_body: bool,
    head_request: bool,
    route: UpstreamRoute,
) -> Result<(ResponseHead, Conn), Failure> {
    let hops = ctx.upstream.plan(route);
    let mut last = UpstreamError::new(UpstreamErrorKind::ConnectRefused, "no upstream to ask");
    let out = Outbound {
        req,
        head,
        with_body,
        head_request,
    };
    for (i, &hop) in hops.iter().enumerate() {
        let more = i + 1 < hops.len();
        match exchange_with(ctx, viewer.as_deref_mut(), &out, hop).await {
            Ok((resp, conn)) => {
                if more && !with_body && ctx.upstream.fails_over(hop, route, resp.status) {
                    ctx.upstream.mark_failed(hop);
                    continue;
                }
                return Ok((resp, conn));
            }
            Err(Failure::Upstream(e)) => {
                ctx.upstream.mark_failed(hop);
                let nothing_sent = matches!(
                    e.kind,
                    UpstreamErrorKind::ConnectRefused | UpstreamErrorKind::ConnectTimeout
                );
                if !more || (with_body && !nothing_sent) {
                    return Err(Failure::Upstream(e));
                }
                last = e;
            }
            Err(viewer_failed) => return Err(viewer_failed),
        }
    }
    Err(Failure::Upstream(last))
}

/// What `exchange` sends, the same to every hop.
struct Outbound<'a> {
    req: &'a RequestHead,
    head: &'a [u8],
    with_body: bool,
    head_request: bool,
}

/// One hop of `exchange`.
async fn exchange_with(
    ctx: &ShardCtx,
    mut viewer: Option<&mut Conn>,
    out: &Outbound<'_>,
    hop: Hop,
) -> Result<(ResponseHead, Conn), Failure> {
    let Outbound {
        req,
        head,
        with_body,
        head_request,
    } = *out;
    let mut retried = false;
    loop {
        let checkout = ctx
            .upstream
            .checkout(hop)
            .await
            .map_err(Failure::Upstream)?;
        let (mut origin, reused) = (checkout.conn, checkout.reused);
        // RFC 9110 §9.2.2: only a safe request is sent again on its own;
        // a POST or DELETE the origin may have acted on is not.
        let retry_ok = reused && !retried && !with_body && policy::is_safe(&req.method);
        if let Err(e) = ctx.upstream.send(&mut origin, head).await {
            if retry_ok {
                retried = true;
                continue;
            }
            return Err(Failure::Upstream(e));
        }
        if with_body && let Some(viewer) = viewer.as_deref_mut() {
            relay_request_body(ctx, viewer, &mut origin, req).await?;
        }
        match ctx.upstream.read_head(&mut origin, head_request).await {
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
    let started = std::time::Instant::now();
    let mut received = 0u64;
    while let Some(piece) = reader
        .next(viewer, io_timeout)
        .await
        .map_err(viewer_failed)?
    {
        received += piece.len() as u64;
        let took = started.elapsed();
        if took > io_timeout && received < ctx.settings.min_body_rate * took.as_secs() {
            return Err(viewer_failed(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body arrives slower than listen.min_body_rate",
            )));
        }
        ctx.upstream
            .send_body_piece(origin, &piece, chunked, &mut scratch)
            .await
            .map_err(Failure::Upstream)?;
    }
    ctx.upstream
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
    let id = ctx.next_request_id();
    let (status, message, detail, keep_alive) = match failure {
        Failure::Upstream(e) => {
            // The cause (an address, a parser's error) is for the log only.
            crate::warn_limited!(shard = ctx.shard, request_id = %format!("{id:016x}"), "upstream request failed: {e}");
            // A request body may be half read: the connection cannot be reused then.
            let keep = req.keep_alive && !with_body;
            (
                e.status(),
                e.kind.viewer_message(),
                Detail::Upstream(e.kind),
                keep,
            )
        }
        Failure::ViewerBody(kind, e) => {
            tracing::debug!(shard = ctx.shard, request_id = %format!("{id:016x}"), "request body failed: {e}");
            (
                kind.status(),
                kind.viewer_message(),
                Detail::ViewerBody(kind),
                false,
            )
        }
    };
    let generated = Generated {
        allow: None,
        id: Some(id),
        status,
        message,
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
