//! Relaying an origin's response to the viewer, cut-through: the head goes
//! out as soon as it arrived, and each body piece is written to the viewer
//! as it comes from the origin, while the same pieces go to the cache when
//! the response is stored. A body that ends early is never stored, and the
//! viewer's connection is then closed so it cannot mistake a truncated body
//! for a whole one. A body whose transfer coding the viewer cannot receive
//! (HTTP/1.0) is not relayed: the viewer gets a 502 instead.

use super::respond::{ViewerBody, encode_head, send_generated};
use super::{Outcome, ShardCtx};
use crate::cache::owner::{FillHandle, LeadTicket};
use crate::cache::policy::{Storable, to_unix_millis};
use crate::cache::store::FillMeta;
use crate::cache::variants::FillTarget;
use crate::gateway::decision::{CachePhase, CacheStatus, Detail, Fwd, Storing};
use crate::gateway::viewer::{
    Generated, HeadContext, TransferCodingForHttp10, ViewerFraming, apply_streamed_range,
    stored_head,
};
use crate::http::conditional::{Precondition, evaluate, not_modified_head};
use crate::http::range::{self, Window};
use crate::http::{BodyFraming, Method, RequestHead, ResponseHead};
use crate::net::body::BodyReader;
use crate::net::conn::Conn;
use crate::net::splice::{self, Deadlines, Extent, SpliceError};
use crate::spare::Boxed;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

/// What arrived from the origin.
pub struct UpstreamResponse {
    pub head: ResponseHead,
    pub conn: Conn,
    /// The request sent was HEAD: no body follows whatever the head says.
    pub was_head: bool,
    /// The request sent was a fill: a plain GET without the viewer's
    /// conditionals and range, which are then answered here.
    pub fetched_whole: bool,
}

/// Whether the response is stored.
pub enum Keep<'c> {
    Store {
        /// The key (and, for a variant, the marker) it is stored under.
        target: FillTarget,
        storable: Box<Storable>,
        /// The coalesced fetch this fill answers, if it led one.
        lead: Option<LeadTicket<'c>>,
    },
    /// Relayed only; the detail says why, when there is more to say than
    /// the phase.
    Pass(Option<Detail>),
}

/// What the viewer gets of the origin's response.
struct ViewerResponse {
    head: ResponseHead,
    framing: ViewerFraming,
    /// The part of the body the viewer asked for, when it asked a range.
    window: Option<Window>,
}

/// Shapes the origin's response for this viewer: after the viewer's
/// preconditions (a fill fetched without them, so they are answered here,
/// RFC 9110 §13.2.2) and its range (one range at most, as the body arrives).
fn for_viewer(
    req: &RequestHead,
    resp: &ResponseHead,
    fetched_whole: bool,
) -> Result<ViewerResponse, TransferCodingForHttp10> {
    let head_only = req.method == Method::Head;
    let precondition = match req.method {
        Method::Get | Method::Head if fetched_whole => evaluate(&req.headers, resp),
        _ => Precondition::Proceed,
    };
    match precondition {
        Precondition::NotModified => {
            return Ok(ViewerResponse {
                head: not_modified_head(resp),
                framing: ViewerFraming::NoBody,
                window: None,
            });
        }
        Precondition::Failed => {
            return Ok(ViewerResponse {
                head: ResponseHead::new(412),
                framing: ViewerFraming::Length(0),
                window: None,
            });
        }
        Precondition::Proceed => {}
    }
    let mut head = resp.clone();
    // A GET's Range is served from the whole body as it arrives, when its
    // length is known up front.
    let window = match resp.framing {
        BodyFraming::ContentLength(len) if !head_only && fetched_whole => {
            let plan = range::plan(&req.headers, req.method == Method::Get, resp, len);
            apply_streamed_range(&mut head, plan, len).map(Window::new)
        }
        _ => None,
    };
    let framing = match (&window, head_only) {
        (_, true) => ViewerFraming::NoBody,
        (Some(w), false) => ViewerFraming::Length(w.len()),
        (None, false) => ViewerFraming::choose(req.version, resp)?,
    };
    Ok(ViewerResponse {
        head,
        framing,
        window,
    })
}

/// Relays the origin's response. `fwd` overrides the phase's own reason
/// (`fwd=request` for a validation the viewer asked for).
pub async fn relay(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    req: &RequestHead,
    phase: CachePhase,
    fwd: Option<Fwd>,
    upstream: UpstreamResponse,
    keep: Keep<'_>,
) -> Outcome {
    let resp = &upstream.head;
    let fetched_whole = upstream.fetched_whole;
    let ViewerResponse {
        head: mut viewer_head,
        framing,
        window,
    } = match for_viewer(req, resp, fetched_whole) {
        Ok(v) => v,
        // The origin connection goes with its unread body.
        Err(coded) => return refuse_coded_body(ctx, viewer, req, phase, coded).await,
    };
    // A range that ends before the body of an object being stored is
    // complete while the fill still reads the rest: the connection ends
    // then (and the head says so) rather than hold the viewer's next
    // request until the whole object is stored.
    let range_ends_early = matches!(keep, Keep::Store { .. })
        && match (&window, resp.framing) {
            (Some(w), BodyFraming::ContentLength(len)) => w.end() < len,
            _ => false,
        };
    // A response being stored will answer ranges from the cache.
    if viewer_head.status == 200 && matches!(keep, Keep::Store { .. }) {
        viewer_head.headers.set("Accept-Ranges", "bytes");
    }
    let keep_alive = req.keep_alive && framing != ViewerFraming::Close && !range_ends_early;
    let (storing, detail) = match &keep {
        Keep::Store { target, .. } => (
            Storing::Yes,
            target.variant.as_ref().map(|_| Detail::Variant),
        ),
        Keep::Pass(detail) => (Storing::No, *detail),
    };
    let now = SystemTime::now();
    let cx = HeadContext {
        node: &ctx.settings.node,
        version: req.version,
        framing,
        length: match resp.framing {
            BodyFraming::ContentLength(n) => Some(n),
            _ => None,
        },
        keep_alive,
        status: CacheStatus {
            fwd: fwd.or(phase.fwd()),
            storing,
            detail,
            ..CacheStatus::of(phase)
        },
        now,
        strip: ctx.settings.downstream_strip,
    };
    let out = encode_head(&mut viewer_head, &cx);
    ctx.stats.count_status(viewer_head.status);
    let mut outcome = Outcome {
        status: viewer_head.status,
        phase,
        bytes: 0,
        keep_alive,
        detail,
    };
    if let Some(len) = whole_in_buffer(framing, window.as_ref(), &upstream) {
        let sink = open_fill(ctx, keep, resp, now).await;
        relay_whole(ctx, viewer, &out, upstream, len, sink, &mut outcome).await;
        return outcome;
    }
    if viewer
        .write_all(&out, ctx.settings.io_timeout)
        .await
        .is_err()
    {
        outcome.keep_alive = false;
        return outcome;
    }
    // The viewer needs no body byte and nothing is stored: the body is not
    // worth reading, so the origin connection is simply dropped.
    if matches!(keep, Keep::Pass(_)) && !framing.carries_body() {
        if upstream.was_head && resp.keep_alive {
            ctx.upstream.checkin(upstream.conn);
        }
        return outcome;
    }
    let sink = open_fill(ctx, keep, resp, now).await;
    if sink.is_none()
        && window.is_none()
        && ctx.settings.splice
        && let Some(extent) = splice_extent(framing, resp.framing)
    {
        // Boxed: a large future that a stored response never runs.
        Boxed::with(|| splice_body(ctx, viewer, extent, upstream, &mut outcome)).await;
        return outcome;
    }
    relay_body(ctx, viewer, framing, window, upstream, sink, &mut outcome).await;
    outcome
}

/// Begins storing the response, when it is stored.
async fn open_fill<'c>(
    ctx: &'c ShardCtx,
    keep: Keep<'_>,
    resp: &ResponseHead,
    now: SystemTime,
) -> Option<FillHandle<'c>> {
    match keep {
        Keep::Store {
            target,
            storable,
            lead,
        } => {
            let meta = fill_meta(&target, resp, &storable, now);
            Some(ctx.cache.fill(&target.key, meta, lead).await)
        }
        Keep::Pass(_) => None,
    }
}

/// The length of a body that came whole with the origin's head and goes to
/// the viewer as it is (same length, no range cut from it): a small
/// object's usual case, which `relay_whole` answers in one write.
fn whole_in_buffer(
    framing: ViewerFraming,
    window: Option<&Window>,
    upstream: &UpstreamResponse,
) -> Option<usize> {
    match (framing, upstream.head.framing, window) {
        (ViewerFraming::Length(n), BodyFraming::ContentLength(m), None)
            if n == m && n > 0 && upstream.conn.buffered().len() as u64 >= n =>
        {
            usize::try_from(n).ok()
        }
        _ => None,
    }
}

/// Relays a body of `len` bytes that is already in the origin connection's
/// buffer. Head and body leave in one write, not three (head; body but its
/// last byte; last byte once stored), which for a small miss was most of
/// its system calls and loopback segments.
///
/// The rule of `relay_body` holds: the viewer's bytes never wait for the
/// store, and only the last one waits for the fill to be indexed. So the
/// store is tried first, once: copying the body into the open segment and
/// indexing it usually completes there and then, and the one write
/// follows. When it has to wait (another shard owns the key, or a full
/// segment waits for the previous flush), all but the last byte go out
/// meanwhile, and the last once the object is indexed.
async fn relay_whole(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    head: &[u8],
    upstream: UpstreamResponse,
    len: usize,
    sink: Option<FillHandle<'_>>,
    outcome: &mut Outcome,
) {
    let UpstreamResponse {
        head: resp,
        conn: mut origin,
        ..
    } = upstream;
    ctx.stats.origin_bytes.fetch_add(len as u64, Relaxed);
    let timeout = ctx.settings.io_timeout;
    let body = &origin.buffered()[..len];
    let sent = match sink {
        None => viewer.write_all_two(head, body, timeout).await,
        Some(fill) => {
            let store = async move {
                fill.data(body).await;
                fill.finish(true).await;
            };
            let mut store = std::pin::pin!(store);
            if futures_lite::future::poll_once(&mut store).await.is_some() {
                viewer.write_all_two(head, body, timeout).await
            } else {
                let (now, last) = body.split_at(len - 1);
                let send = viewer.write_all_two(head, now, timeout);
                let ((), sent) = futures_lite::future::zip(store, send).await;
                match sent {
                    Ok(()) => viewer.write_all(last, timeout).await,
                    Err(e) => Err(e),
                }
            }
        }
    };
    origin.consume(len);
    if resp.keep_alive {
        ctx.upstream.checkin(origin);
    }
    match sent {
        Ok(()) => outcome.bytes = len as u64,
        Err(_) => outcome.keep_alive = false,
    }
}

/// The extent of a body that goes to the viewer exactly as the origin sends
/// it (same framing, no range cut from it): what a splice can move.
fn splice_extent(framing: ViewerFraming, origin: BodyFraming) -> Option<Extent> {
    match (framing, origin) {
        (ViewerFraming::Length(n), BodyFraming::ContentLength(m)) if n == m => {
            Some(Extent::Length(n))
        }
        (ViewerFraming::Close, BodyFraming::CloseDelimited) => Some(Extent::Close),
        _ => None,
    }
}

/// Relays a body nothing stores, and that goes out as it comes in, from
/// the origin's socket to the viewer's: by splice when both are plain TCP
/// (the bytes that arrived with the head first, from the buffer), else
/// through `relay_body`.
async fn splice_body(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    extent: Extent,
    upstream: UpstreamResponse,
    outcome: &mut Outcome,
) {
    let fds = viewer.plain_fd().zip(upstream.conn.plain_fd());
    let ring = fds.and_then(|_| splice::ring());
    let (Some((to, from)), Some(ring)) = (fds, ring) else {
        let framing = match extent {
            Extent::Length(n) => ViewerFraming::Length(n),
            Extent::Close => ViewerFraming::Close,
        };
        relay_body(ctx, viewer, framing, None, upstream, None, outcome).await;
        return;
    };
    let UpstreamResponse {
        head: resp,
        conn: mut origin,
        ..
    } = upstream;
    // What came with the head is in the origin connection's buffer.
    let early = match extent {
        Extent::Length(n) => origin.take(n.min(usize::MAX as u64) as usize),
        Extent::Close => origin.take(usize::MAX),
    };
    origin.release_buffer();
    ctx.stats
        .origin_bytes
        .fetch_add(early.len() as u64, Relaxed);
    if viewer
        .write_all(&early, ctx.settings.io_timeout)
        .await
        .is_err()
    {
        outcome.bytes = 0;
        outcome.keep_alive = false;
        return;
    }
    let rest = match extent {
        Extent::Length(n) => Extent::Length(n - early.len() as u64),
        Extent::Close => Extent::Close,
    };
    let deadlines = Deadlines {
        source_idle: ctx.settings.origin_idle_timeout,
        sink_idle: ctx.settings.io_timeout,
    };
    let (spliced, result) = ring.relay(from, to, rest, deadlines).await;
    viewer.count_written(spliced);
    ctx.stats.origin_bytes.fetch_add(spliced, Relaxed);
    ctx.stats.spliced_bytes.fetch_add(spliced, Relaxed);
    outcome.bytes = early.len() as u64 + spliced;
    match result {
        Ok(()) => {
            if resp.keep_alive && extent != Extent::Close {
                ctx.upstream.checkin(origin);
            }
            if extent == Extent::Close {
                outcome.keep_alive = false;
            }
        }
        Err(SpliceError::Source(e)) => {
            crate::warn_limited!(
                shard = ctx.shard,
                "origin body failed after {} bytes: {e}",
                outcome.bytes
            );
            outcome.keep_alive = false;
            outcome.detail = Some(Detail::OriginBodyTruncated);
        }
        Err(SpliceError::Sink(_)) => outcome.keep_alive = false,
    }
}

/// What the store keeps with a fill: the head as served later (minus the
/// fields the origin said not to store) and its freshness.
fn fill_meta(
    target: &FillTarget,
    resp: &ResponseHead,
    storable: &Storable,
    now: SystemTime,
) -> FillMeta {
    let mut kept = resp.clone();
    storable.strip_unstorable_fields(&mut kept.headers);
    let key = &target.key;
    FillMeta {
        key: key.as_str().to_string(),
        hash: key.hash(),
        head: stored_head(kept, now),
        born_ms: to_unix_millis(storable.freshness.born),
        expires_ms: to_unix_millis(storable.freshness.expires),
        declared_len: match resp.framing {
            BodyFraming::ContentLength(n) => Some(n),
            _ => None,
        },
        variant: target.variant.clone(),
    }
}

/// Stores an origin's response with no viewer waiting for it (a background
/// revalidation that found a new representation).
pub async fn fill_only(
    ctx: &ShardCtx,
    target: FillTarget,
    storable: Storable,
    lead: LeadTicket<'_>,
    upstream: UpstreamResponse,
) {
    let UpstreamResponse {
        head: resp,
        conn: mut origin,
        ..
    } = upstream;
    let meta = fill_meta(&target, &resp, &storable, SystemTime::now());
    let sink = ctx.cache.fill(&target.key, meta, Some(lead)).await;
    let mut reader = BodyReader::new(resp.framing);
    loop {
        match reader
            .next(&mut origin, ctx.settings.origin_idle_timeout)
            .await
        {
            Ok(Some(piece)) => {
                ctx.stats
                    .origin_bytes
                    .fetch_add(piece.len() as u64, Relaxed);
                sink.data(&piece).await;
            }
            Ok(None) => {
                sink.finish(true).await;
                if resp.keep_alive && resp.framing != BodyFraming::CloseDelimited {
                    ctx.upstream.checkin(origin);
                }
                return;
            }
            Err(_) => {
                sink.finish(false).await;
                return;
            }
        }
    }
}

/// Answers 502 for a body this viewer cannot receive in its coding.
async fn refuse_coded_body(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    req: &RequestHead,
    phase: CachePhase,
    coded: TransferCodingForHttp10,
) -> Outcome {
    let detail = Some(Detail::TransferCodingForHttp10);
    let generated = Generated {
        allow: None,
        id: None,
        status: TransferCodingForHttp10::STATUS,
        message: coded.message(),
        keep_alive: req.keep_alive,
        phase,
        detail,
    };
    let sent = send_generated(ctx, viewer, Some(req), &generated).await;
    Outcome {
        status: TransferCodingForHttp10::STATUS,
        phase,
        bytes: *sent.as_ref().unwrap_or(&0),
        keep_alive: req.keep_alive && sent.is_ok(),
        detail,
    }
}

/// Streams the origin's body to the viewer (and the fill), then returns the
/// origin connection to the pool if the body ended cleanly.
async fn relay_body(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    framing: ViewerFraming,
    mut window: Option<Window>,
    upstream: UpstreamResponse,
    mut sink: Option<FillHandle<'_>>,
    outcome: &mut Outcome,
) {
    let UpstreamResponse {
        head: resp,
        conn: mut origin,
        ..
    } = upstream;
    let mut body = ViewerBody::new(viewer, framing, ctx.settings.io_timeout);
    let mut reader = BodyReader::new(resp.framing);
    let mut viewer_ok = true;
    // The write that completes the viewer's response waits until the fill is
    // indexed: a viewer that saw a whole response finds it stored.
    let result = loop {
        match reader
            .next(&mut origin, ctx.settings.origin_idle_timeout)
            .await
        {
            Ok(Some(piece)) => {
                ctx.stats
                    .origin_bytes
                    .fetch_add(piece.len() as u64, Relaxed);
                let to_viewer = match &mut window {
                    Some(w) => w.clip(&piece),
                    None => &piece[..],
                };
                // The viewer's bytes never wait for the store: a chunk write,
                // or the segment flush it starts, goes on beside the viewer's
                // write. Only the response's very last byte waits for the
                // fill to be indexed.
                let last = reader.is_done() && framing.ends_with_data();
                let (now, after_store) = match last {
                    true => to_viewer.split_at(to_viewer.len().saturating_sub(1)),
                    false => (to_viewer, &[][..]),
                };
                let ending = if last { sink.take() } else { None };
                let store = async {
                    if let Some(s) = &sink {
                        s.data(&piece).await;
                    }
                    if let Some(s) = ending {
                        s.data(&piece).await;
                        s.finish(true).await;
                    }
                };
                let send = async { !viewer_ok || body.write(now).await.is_ok() };
                let ((), mut sent) = futures_lite::future::zip(store, send).await;
                if sent && viewer_ok {
                    sent = body.write(after_store).await.is_ok();
                }
                if !sent {
                    viewer_ok = false;
                    if sink.is_none() {
                        break Ok(());
                    }
                }
                let range_sent = window.as_ref().is_some_and(Window::done);
                // The viewer's range is out and nothing is stored: the rest
                // of the body is not worth reading.
                if sink.is_none() && range_sent {
                    break Ok(());
                }
                // The range is out but the fill goes on: the viewer is let
                // go now, as its head said (`range_ends_early` in `relay`).
                if viewer_ok && range_sent && !reader.is_done() {
                    body.conn.shutdown().await;
                    viewer_ok = false;
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let range_sent = window.as_ref().is_some_and(Window::done);
    match result {
        Ok(()) if reader.is_done() => {
            if let Some(s) = sink.take() {
                s.finish(true).await;
            }
            if viewer_ok && body.finish().await.is_err() {
                viewer_ok = false;
            }
            if resp.keep_alive && resp.framing != BodyFraming::CloseDelimited {
                // The last piece may still be lent from the buffer (the
                // loop ended on it, the viewer gone).
                reader.settle(&mut origin);
                ctx.upstream.checkin(origin);
            }
        }
        Ok(()) => {
            // The viewer's range is complete, or the viewer went away, and
            // nothing is being stored.
            if let Some(s) = sink.take() {
                s.finish(false).await;
            }
            if range_sent && viewer_ok && body.finish().await.is_err() {
                viewer_ok = false;
            }
        }
        Err(e) => {
            crate::warn_limited!(
                shard = ctx.shard,
                "origin body failed after {} bytes: {e}",
                reader.received()
            );
            if let Some(s) = sink.take() {
                s.finish(false).await;
            }
            outcome.keep_alive = false;
            outcome.detail = Some(Detail::OriginBodyTruncated);
        }
    }
    outcome.bytes = body.sent;
    if !viewer_ok {
        outcome.keep_alive = false;
    }
}
