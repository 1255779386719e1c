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
use crate::cache::policy::{Freshness, to_unix_millis};
use crate::cache::store::FillMeta;
use crate::cache::variants::FillTarget;
use crate::gateway::decision::{CachePhase, CacheStatus, Detail, Storing};
use crate::gateway::viewer::{
    Generated, HeadContext, TransferCodingForHttp10, ViewerFraming, apply_streamed_range,
    stored_head,
};
use crate::http::range::{self, Window};
use crate::http::{BodyFraming, Method, RequestHead, ResponseHead};
use crate::net::body::BodyReader;
use crate::net::conn::Conn;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

/// What arrived from the origin.
pub struct UpstreamResponse {
    pub head: ResponseHead,
    pub conn: Conn,
    /// The request sent was HEAD: no body follows whatever the head says.
    pub was_head: bool,
}

/// Whether the response is stored.
pub enum Keep<'c> {
    Store {
        /// The key (and, for a variant, the marker) it is stored under.
        target: FillTarget,
        freshness: Freshness,
        /// The coalesced fetch this fill answers, if it led one.
        lead: Option<LeadTicket<'c>>,
    },
    /// Relayed only; the detail says why, when there is more to say than
    /// the phase.
    Pass(Option<Detail>),
}

pub async fn relay(
    ctx: &ShardCtx,
    viewer: &mut Conn,
    req: &RequestHead,
    phase: CachePhase,
    upstream: UpstreamResponse,
    keep: Keep<'_>,
) -> Outcome {
    let resp = &upstream.head;
    let head_only = req.method == Method::Head;
    let mut viewer_head = resp.clone();
    // A GET's Range is served from the whole body as it arrives, when its
    // length is known up front.
    let window = match resp.framing {
        BodyFraming::ContentLength(len) if !head_only => {
            let plan = range::plan(&req.headers, req.method == Method::Get, resp, len);
            apply_streamed_range(&mut viewer_head, plan, len).map(Window::new)
        }
        _ => None,
    };
    let framing = match (&window, head_only) {
        (_, true) => ViewerFraming::NoBody,
        (Some(w), false) => ViewerFraming::Length(w.len()),
        (None, false) => match ViewerFraming::choose(req.version, resp) {
            Ok(framing) => framing,
            // The origin connection goes with its unread body.
            Err(coded) => return refuse_coded_body(ctx, viewer, req, phase, coded).await,
        },
    };
    let keep_alive = req.keep_alive && framing != ViewerFraming::Close;
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
            phase,
            storing,
            ttl: None,
            detail,
        },
        now,
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
    if viewer
        .write_all(&out, ctx.settings.io_timeout)
        .await
        .is_err()
    {
        outcome.keep_alive = false;
        return outcome;
    }
    let sink = match keep {
        Keep::Store {
            target: FillTarget { key, variant },
            freshness,
            lead,
        } => {
            let meta = FillMeta {
                key: key.as_str().to_string(),
                hash: key.hash(),
                head: stored_head(resp, now),
                born_ms: to_unix_millis(freshness.born),
                expires_ms: to_unix_millis(freshness.expires),
                declared_len: match resp.framing {
                    BodyFraming::ContentLength(n) => Some(n),
                    _ => None,
                },
                variant,
            };
            Some(ctx.cache.fill(&key, meta, lead).await)
        }
        // A HEAD fetched as GET and not stored: the body is not worth
        // reading, so the origin connection is simply dropped.
        Keep::Pass(_) if head_only => {
            if upstream.was_head && resp.keep_alive {
                ctx.origin.checkin(upstream.conn);
            }
            return outcome;
        }
        Keep::Pass(_) => None,
    };
    relay_body(ctx, viewer, framing, window, upstream, sink, &mut outcome).await;
    outcome
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
                if let Some(s) = &sink {
                    s.data(&piece).await;
                }
                if reader.is_done()
                    && framing.ends_with_data()
                    && let Some(s) = sink.take()
                {
                    s.finish(true).await;
                }
                let to_viewer = match &mut window {
                    Some(w) => w.clip(&piece),
                    None => &piece[..],
                };
                if viewer_ok && body.write(to_viewer).await.is_err() {
                    viewer_ok = false;
                    if sink.is_none() {
                        break Ok(());
                    }
                }
                // The viewer's range is out and nothing is stored: the rest
                // of the body is not worth reading.
                if sink.is_none() && window.as_ref().is_some_and(Window::done) {
                    break Ok(());
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
                ctx.origin.checkin(origin);
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
