//! Answering a miss from another request's fetch of the same key (request
//! coalescing; for a URL whose responses vary, only of the variant the
//! request selects, which the caller checks with `cache::variants`): the
//! stored head of the leader's response, then its body as the fill grows,
//! each piece as soon as the owner has it. The first piece is read before
//! anything is sent, so a fill that fails at once leaves this viewer free
//! to fetch on its own; a fill cut short later closes the connection, as
//! the leader's own viewer would see.

use super::hit::{FillPhase, STORED_HEAD_LIMITS};
use super::respond::{ViewerBody, answer_preconditions, encode_head};
use super::{Outcome, ShardCtx};
use crate::cache::owner::{FillReader, FollowFailure, FollowPiece};
use crate::cache::policy::{self, Freshness, Reuse, ServeKind, Stored, from_unix_millis};
use crate::gateway::decision::{CacheStatus, Detail, Storing};
use crate::gateway::viewer::{HeadContext, ViewerFraming, apply_streamed_range};
use crate::http::range::{self, Window};
use crate::http::{Method, RequestHead, ResponseHead, parse_response, status_has_no_body};
use crate::net::conn::Conn;
use std::time::SystemTime;

/// Whether a request that asked after the fill's head arrived may take it
/// as it stands: only fresh, with nothing to strip and nothing the request
/// demands validation for (RFC 9111 §4.2) — the same test a hit passes.
fn reusable_now(
    ctx: &ShardCtx,
    req: &RequestHead,
    head: &ResponseHead,
    freshness: Freshness,
    now: SystemTime,
) -> bool {
    let stored = Stored { head, freshness };
    matches!(
        policy::reuse(&req.headers, &stored, now, &ctx.settings.policy),
        Reuse::Serve(serve) if serve.kind == ServeKind::Fresh && serve.strip_fields.is_empty()
    )
}

/// Serves `req` from the fill `reader` follows. None when nothing was sent
/// and the request should fetch on its own.
pub async fn follow(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: &RequestHead,
    mut reader: FillReader<'_>,
    why: FillPhase,
) -> Option<Outcome> {
    let info = reader.info().clone();
    let Ok(Some((mut head, _))) = parse_response(&info.head, &STORED_HEAD_LIMITS, false) else {
        return None;
    };
    let now = SystemTime::now();
    let fresh = Freshness {
        born: from_unix_millis(info.born_ms),
        expires: from_unix_millis(info.expires_ms),
    };
    if info.late && !reusable_now(ctx, req, &head, fresh, now) {
        return None;
    }
    let mut head_only = req.method == Method::Head || status_has_no_body(head.status);
    let phase = why.collapsed();
    if let Some(answered) =
        answer_preconditions(ctx, conn, req, &mut head, &mut head_only, phase, None).await
    {
        return Some(answered);
    }
    // A GET's Range is served from the fill as it grows, when the length is
    // known up front; reading starts at the range, not at the first byte.
    let window = match info.declared_len {
        Some(len) if !head_only => {
            let plan = range::plan(&req.headers, req.method == Method::Get, &head, len);
            apply_streamed_range(&mut head, plan, len).map(|r| {
                reader.seek(r.start);
                Window::starting_at(r.clone(), r.start)
            })
        }
        _ => None,
    };
    let wait = ctx.settings.follow_wait;
    let nothing_to_read =
        head_only || info.declared_len == Some(0) || window.as_ref().is_some_and(|w| w.is_empty());
    let first = if nothing_to_read {
        None
    } else {
        match reader.next(wait).await {
            Ok(piece) => piece,
            Err(_) => return None,
        }
    };
    head.headers.set("Age", fresh.age(now).to_string());
    let framing = match (head_only, &window, info.declared_len) {
        (true, _, _) => ViewerFraming::NoBody,
        (false, Some(w), _) => ViewerFraming::Length(w.len()),
        (false, None, Some(n)) => ViewerFraming::Length(n),
        // The stored head names no framing: chunked for HTTP/1.1, close for
        // HTTP/1.0 (a stored head never keeps a transfer coding).
        (false, None, None) => match ViewerFraming::choose(req.version, &head) {
            Ok(framing) => framing,
            Err(_) => return None,
        },
    };
    let keep_alive = req.keep_alive && framing != ViewerFraming::Close;
    // The leader's response is the variant this request selects.
    let detail = info.variant.as_ref().map(|_| Detail::Variant);
    let cx = HeadContext {
        node: &ctx.settings.node,
        version: req.version,
        framing,
        length: info.declared_len,
        keep_alive,
        status: CacheStatus {
            phase,
            fwd: phase.fwd(),
            fwd_status: None,
            storing: Storing::No,
            ttl: None,
            detail,
        },
        now,
        strip: ctx.settings.downstream_strip,
    };
    let out = encode_head(&mut head, &cx);
    ctx.stats.count_status(head.status);
    let mut outcome = Outcome {
        status: head.status,
        phase,
        bytes: 0,
        keep_alive,
        detail,
    };
    if conn.write_all(&out, ctx.settings.io_timeout).await.is_err() {
        outcome.keep_alive = false;
        return Some(outcome);
    }
    if head_only {
        return Some(outcome);
    }
    let mut body = ViewerBody::new(conn, framing, ctx.settings.io_timeout);
    let result = stream(&mut body, &mut reader, first, window, wait).await;
    outcome.bytes = body.sent;
    match result {
        Ok(()) => {
            if body.finish().await.is_err() {
                outcome.keep_alive = false;
            }
        }
        Err(Stop::Viewer) => outcome.keep_alive = false,
        Err(Stop::Fill(failure)) => {
            outcome.keep_alive = false;
            outcome.detail = Some(match failure {
                FollowFailure::Truncated => Detail::OriginBodyTruncated,
                FollowFailure::Unreadable => Detail::ChunkUnreadable,
            });
        }
    }
    Some(outcome)
}

/// Why streaming stopped early.
enum Stop {
    Viewer,
    Fill(FollowFailure),
}

async fn stream(
    body: &mut ViewerBody<'_>,
    reader: &mut FillReader<'_>,
    first: Option<FollowPiece>,
    mut window: Option<Window>,
    wait: std::time::Duration,
) -> Result<(), Stop> {
    let mut piece = first;
    while let Some(p) = piece {
        let data = match &mut window {
            Some(w) => w.clip(p.data()),
            None => p.data(),
        };
        body.write(data).await.map_err(|_| Stop::Viewer)?;
        if window.as_ref().is_some_and(Window::done) {
            return Ok(());
        }
        piece = reader.next(wait).await.map_err(Stop::Fill)?;
    }
    Ok(())
}
