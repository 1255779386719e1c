//! Validating stored responses with the origin (RFC 9111 §4.3): the
//! conditional request built from the stored validators, a 304 that
//! freshens the stored copy — its head and freshness updated, its body kept
//! (a large object gets a new manifest over the same chunks) — and served,
//! a failing origin answered from the stored copy inside its stale-if-error
//! window (RFC 5861 §4), and the background revalidation that follows a
//! stale-while-revalidate answer (RFC 5861 §3), one per object at a time.

use super::forward;
use super::hit::{self, Answer, Found, Hit};
use super::relay::{self, UpstreamResponse};
use super::{Outcome, ShardCtx};
use crate::cache::index::Location;
use crate::cache::key::CacheKey;
use crate::cache::owner::Fetch;
use crate::cache::policy::{
    self, Conditional, Exchange, FieldNames, ForwardReason, NotStored, OriginOutcome, Revalidate,
    Storable,
};
use crate::cache::store::inflight::Release;
use crate::cache::store::{FillMeta, RefreshBody};
use crate::cache::variants::Selecting;
use crate::gateway::decision::{CachePhase, CacheStatus, Detail, Fwd, Storing};
use crate::gateway::forwarded::{Purpose, upstream_head};
use crate::gateway::viewer::stored_head;
use crate::http::{RequestHead, ResponseHead};
use crate::net::conn::Conn;
use crate::runtime::task;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::SystemTime;

/// A stored response that may not answer until the origin validates it.
pub struct StaleCopy {
    pub hit: Hit,
    pub revalidate: Revalidate,
}

impl StaleCopy {
    /// The validators to send (RFC 9111 §4.3.1), if the copy has any.
    pub fn validators(&self) -> Option<Conditional> {
        let c = policy::conditional_request(self.hit.head());
        (!c.is_empty()).then_some(c)
    }

    /// Why the request went forward, for `Cache-Status`.
    pub fn fwd(&self) -> Fwd {
        match self.revalidate.reason.forward_reason() {
            ForwardReason::Stale => Fwd::Stale,
            ForwardReason::Request => Fwd::Request,
        }
    }

    /// Whether the stored copy may answer after the origin failed so.
    pub fn answers_error(&self, outcome: OriginOutcome) -> bool {
        self.revalidate
            .on_origin_outcome(outcome, SystemTime::now())
            .is_some()
    }
}

/// Answers from the stored copy after the origin failed (`outcome`), when
/// its stale-if-error window allows; None (nothing sent) otherwise.
pub async fn serve_if_error(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: &RequestHead,
    key: &CacheKey,
    stale: StaleCopy,
    outcome: OriginOutcome,
) -> Option<Outcome> {
    let now = SystemTime::now();
    let serve = stale.revalidate.on_origin_outcome(outcome, now)?;
    let mut answer = Answer::serve(&serve);
    answer.status.fwd = Some(stale.fwd());
    if let OriginOutcome::Status(status) = outcome {
        answer.status.fwd_status = Some(status);
    }
    match hit::serve_stored(ctx, conn, req, key, stale.hit, answer, now).await {
        Found::Served(outcome) => Some(outcome),
        _ => None,
    }
}

/// A 304 answered the validation: freshen the stored copy (RFC 9111
/// §4.3.4), keep the update, and serve it. `Err` when the 304 does not
/// select the stored response (fetch again without validators), or the
/// stored body turned out unreadable.
pub async fn serve_freshened(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: &RequestHead,
    key: &CacheKey,
    stale: StaleCopy,
    not_modified: &ResponseHead,
    exchange: &Exchange<'_>,
) -> Result<Outcome, ()> {
    let StaleCopy {
        mut hit,
        revalidate,
    } = stale;
    let freshened = policy::freshen(exchange, hit.head(), not_modified, &ctx.settings.policy)
        .map_err(|_| ())?;
    let storing = keep_freshened(ctx, key, &hit, &freshened.head, &freshened.storage).await;
    if let Ok(storable) = &freshened.storage {
        hit.freshness = storable.freshness;
    }
    hit.replaced = Some(freshened.head);
    let now = SystemTime::now();
    let fwd = match revalidate.reason.forward_reason() {
        ForwardReason::Stale => Fwd::Stale,
        ForwardReason::Request => Fwd::Request,
    };
    let answer = Answer {
        status: CacheStatus {
            fwd: Some(fwd),
            fwd_status: Some(304),
            storing,
            ttl: Some(hit.freshness.ttl(now)),
            detail: Some(Detail::Revalidation(revalidate.reason)),
            ..CacheStatus::of(CachePhase::Revalidated)
        },
        age: hit.freshness.age(now),
        strip: FieldNames::new(),
    };
    match hit::serve_stored(ctx, conn, req, key, hit, answer, now).await {
        Found::Served(outcome) => Ok(outcome),
        _ => Err(()),
    }
}

/// Stores a freshened head over the stored body, or drops the stored copy
/// when the 304 forbids keeping it.
async fn keep_freshened(
    ctx: &ShardCtx,
    key: &CacheKey,
    hit: &Hit,
    head: &ResponseHead,
    storage: &Result<Storable, NotStored>,
) -> Storing {
    let Ok(storable) = storage else {
        ctx.cache.remove(key).await;
        return Storing::No;
    };
    let mut kept = head.clone();
    storable.strip_unstorable_fields(&mut kept.headers);
    let meta = FillMeta {
        key: key.as_str().to_string(),
        hash: key.hash(),
        head: stored_head(kept, SystemTime::now()),
        born_ms: policy::to_unix_millis(storable.freshness.born),
        expires_ms: policy::to_unix_millis(storable.freshness.expires),
        declared_len: Some(hit.entry.body_len()),
        // The URL's marker, if any, already names this entry.
        variant: None,
    };
    let body = match (hit.entry.inline_body(), hit.entry.chunks()) {
        (Some(bytes), _) => RefreshBody::Inline(bytes.to_vec()),
        (None, Some((nonce, chunks))) => RefreshBody::Chunks {
            nonce,
            chunks,
            total: hit.entry.body_len(),
        },
        (None, None) => return Storing::No,
    };
    if ctx.cache.refresh(key, meta, hit.seen, body).await {
        Storing::Yes
    } else {
        Storing::No
    }
}

/// Revalidates `key` after a stale-while-revalidate answer, unless a fetch
/// of it is already under way. Runs on its own; nobody waits for it.
pub fn in_background(
    ctx: Rc<ShardCtx>,
    req: RequestHead,
    peer: SocketAddr,
    selecting: Selecting,
    seen: Location,
) {
    task::spawn_detached(async move { revalidate_alone(&ctx, &req, peer, selecting, seen).await });
}

async fn revalidate_alone(
    ctx: &ShardCtx,
    req: &RequestHead,
    peer: SocketAddr,
    mut selecting: Selecting,
    seen: Location,
) {
    let key = selecting.key().clone();
    let key = &key;
    let Fetch::Lead(lead) = ctx.cache.lead_if_idle(key, Some(seen)).await else {
        return;
    };
    // The lead, dropped on any early return, lets waiters ask again.
    let Ok(hit) = hit::find(ctx, req, &mut selecting).await else {
        return;
    };
    let validators = policy::conditional_request(hit.head());
    let validators = (!validators.is_empty()).then_some(validators);
    let forwarding = forward::forwarding(ctx, req, peer, validators.as_ref());
    let head = upstream_head(req, Purpose::Fill, &forwarding);
    let request_time = SystemTime::now();
    let Ok((resp, origin)) =
        forward::exchange(ctx, None, req, &head, false, false, ctx.fill_route(req)).await
    else {
        return;
    };
    let exchange = Exchange {
        method: &req.method,
        request: &req.headers,
        request_time,
        response_time: SystemTime::now(),
    };
    if resp.status == 304 {
        if validators.is_none() {
            return;
        }
        let Ok(freshened) = policy::freshen(&exchange, hit.head(), &resp, &ctx.settings.policy)
        else {
            return;
        };
        keep_freshened(ctx, key, &hit, &freshened.head, &freshened.storage).await;
        if resp.keep_alive {
            ctx.upstream.checkin(origin);
        }
        lead.release(Release::Refreshed).await;
        return;
    }
    let stored = forward::storability(ctx, req, &exchange, &resp)
        .and_then(|storable| Ok((storable, selecting.plan_fill(&resp.headers, &req.headers)?)));
    match stored {
        Ok((storable, target)) => {
            let upstream = UpstreamResponse {
                head: resp,
                conn: origin,
                was_head: false,
                fetched_whole: true,
            };
            relay::fill_only(ctx, target, storable, lead, upstream).await;
        }
        Err(_) => lead.release(Release::Uncacheable).await,
    }
}
