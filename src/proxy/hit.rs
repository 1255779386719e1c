//! The hit path: look the key up at its owner, read and verify the entry,
//! check freshness, answer conditionals, and stream the body (small objects
//! in one write, large ones chunk by chunk, never whole in memory). Anything
//! that cannot be served exactly as stored becomes a miss.

use super::phase::{CachePhase, CacheStatus};
use super::respond::{ViewerBody, ViewerFraming, finish_head, status_has_no_body};
use super::{Outcome, ShardCtx};
use crate::cache::key::CacheKey;
use crate::cache::owner::{StoredChunk, StoredEntry};
use crate::cache::policy::{Freshness, from_unix_millis};
use crate::cache::store::{Lookup, SegmentId};
use crate::http::{Limits, Method, RequestHead, ResponseHead, parse_response};
use crate::net::conn::Conn;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

pub enum LookupOutcome {
    Served(Outcome),
    /// Go to the origin, as a plain miss or because the copy is stale.
    Forward(CachePhase),
}

struct Hit {
    entry: StoredEntry,
    head: ResponseHead,
    fresh: Freshness,
    buffered: Vec<SegmentId>,
    /// A large object's first chunk, read before anything is sent, so that
    /// an unreadable object is a miss rather than a broken response.
    first_chunk: Option<StoredChunk>,
}

/// Stored heads were written by us; allow them generous limits.
const STORED_HEAD_LIMITS: Limits = Limits {
    max_header_bytes: crate::cache::store::MAX_HEAD,
    max_uri_bytes: 8192,
    max_headers: 1000,
};

async fn find(ctx: &ShardCtx, key: &CacheKey) -> Result<Hit, CachePhase> {
    let Lookup::Found {
        loc,
        seq,
        bytes,
        buffered,
    } = ctx.cache.lookup(key).await
    else {
        return Err(CachePhase::Miss);
    };
    let entry = ctx
        .cache
        .read_entry(key, loc, seq, bytes, &buffered)
        .await
        .map_err(|_| CachePhase::Miss)?;
    let fresh = Freshness {
        born: from_unix_millis(entry.header.born_ms),
        expires: from_unix_millis(entry.header.expires_ms),
    };
    if !fresh.is_fresh(SystemTime::now()) {
        return Err(CachePhase::Stale);
    }
    let Ok(Some((head, _))) = parse_response(entry.head(), &STORED_HEAD_LIMITS, false) else {
        tracing::warn!(
            key = key.as_str(),
            "stored response head does not parse; treating as a miss"
        );
        return Err(CachePhase::Miss);
    };
    let first_chunk = match entry.chunks() {
        Some((fill_id, chunks)) => match chunks.first() {
            Some(c) => Some(
                ctx.cache
                    .read_chunk(key, fill_id, 0, c, &buffered)
                    .await
                    .map_err(|_| CachePhase::Miss)?,
            ),
            None => None,
        },
        None => None,
    };
    Ok(Hit {
        entry,
        head,
        fresh,
        buffered,
        first_chunk,
    })
}

pub async fn lookup(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: &RequestHead,
    key: &CacheKey,
) -> LookupOutcome {
    match find(ctx, key).await {
        Ok(hit) => LookupOutcome::Served(serve(ctx, conn, req, key, hit).await),
        Err(phase) => LookupOutcome::Forward(phase),
    }
}

/// Serves a fresh hit if there is one, without counting a miss otherwise.
pub async fn try_hit(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: &RequestHead,
    key: &CacheKey,
) -> Option<Outcome> {
    let hit = find(ctx, key).await.ok()?;
    Some(serve(ctx, conn, req, key, hit).await)
}

fn etag_matches(list: &str, etag: &str) -> bool {
    let weak = |t: &str| t.trim().trim_start_matches("W/").to_string();
    list.split(',')
        .any(|t| t.trim() == "*" || weak(t) == weak(etag))
}

/// RFC 9110 13.2.2: If-None-Match decides when present, else If-Modified-Since.
fn not_modified(req: &RequestHead, head: &ResponseHead) -> bool {
    if head.status != 200 {
        return false;
    }
    if let Some(inm) = req.headers.get_str("if-none-match") {
        return head
            .headers
            .get_str("etag")
            .is_some_and(|etag| etag_matches(inm, etag));
    }
    let ims = req
        .headers
        .get_str("if-modified-since")
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let lm = head
        .headers
        .get_str("last-modified")
        .and_then(|v| httpdate::parse_http_date(v).ok());
    matches!((ims, lm), (Some(ims), Some(lm)) if lm <= ims)
}

/// Headers a 304 carries (RFC 9110 15.4.5), plus validators.
const NOT_MODIFIED_HEADERS: &[&str] = &[
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
    "last-modified",
];

async fn serve(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: &RequestHead,
    key: &CacheKey,
    hit: Hit,
) -> Outcome {
    ctx.metrics.viewer.hits.fetch_add(1, Relaxed);
    let now = SystemTime::now();
    let Hit {
        entry,
        mut head,
        fresh,
        buffered,
        first_chunk,
    } = hit;
    let body_len = entry.body_len();
    let mut head_only = req.method == Method::Head || status_has_no_body(head.status);
    if not_modified(req, &head) {
        let mut h304 = ResponseHead::new(304);
        for name in NOT_MODIFIED_HEADERS {
            for v in head.headers.get_all(name) {
                h304.headers.push(name, v.to_vec());
            }
        }
        head = h304;
        head_only = true;
    }
    head.headers.set("Age", fresh.age(now).to_string());
    let framing = if head_only {
        ViewerFraming::NoBody
    } else {
        ViewerFraming::Length(body_len)
    };
    let status_entry = CacheStatus {
        phase: CachePhase::Hit,
        stored: false,
        ttl: Some(fresh.ttl(now)),
        fwd_status: None,
        detail: None,
    };
    finish_head(
        ctx,
        &mut head,
        req,
        framing,
        Some(body_len),
        req.keep_alive,
        &status_entry,
    );
    let mut out = Vec::with_capacity(1024);
    head.encode(&mut out);
    let status = head.status;
    ctx.metrics.viewer.count_status(status);
    let mut outcome = Outcome {
        status,
        phase: CachePhase::Hit,
        bytes: 0,
        keep_alive: req.keep_alive,
        detail: None,
    };
    if head_only {
        outcome.keep_alive &= conn.write_all(&out, ctx.io_timeout).await.is_ok();
        return outcome;
    }
    if let Some(body) = entry.inline_body() {
        // One write for head and body: most hits are small.
        out.extend_from_slice(body);
        match conn.write_all(&out, ctx.io_timeout).await {
            Ok(()) => outcome.bytes = body.len() as u64,
            Err(_) => outcome.keep_alive = false,
        }
        return outcome;
    }
    let Some((fill_id, chunks)) = entry.chunks() else {
        outcome.keep_alive = false;
        return outcome;
    };
    if conn.write_all(&out, ctx.io_timeout).await.is_err() {
        outcome.keep_alive = false;
        return outcome;
    }
    let mut body = ViewerBody::new(conn, framing, ctx.io_timeout);
    let mut current = first_chunk;
    for i in 0..chunks.len() {
        let Some(chunk) = current.take() else { break };
        // Send this chunk while the next one is read.
        let next = chunks.get(i + 1).map(|c| {
            ctx.cache
                .read_chunk(key, fill_id, i as u32 + 1, c, &buffered)
        });
        let (written, next) = match next {
            Some(read) => {
                let (w, r) = futures_lite::future::zip(body.write(chunk.data()), read).await;
                (w, Some(r))
            }
            None => (body.write(chunk.data()).await, None),
        };
        if written.is_err() {
            outcome.keep_alive = false;
            break;
        }
        match next {
            None => {}
            Some(Ok(c)) => current = Some(c),
            Some(Err(why)) => {
                // Headers are out; closing early tells the viewer the body is
                // incomplete. The object is dropped so no one else gets it.
                tracing::warn!(
                    key = key.as_str(),
                    chunk = i + 1,
                    ?why,
                    "stored chunk unreadable; closing"
                );
                ctx.cache.remove(key).await;
                outcome.keep_alive = false;
                outcome.detail = Some("chunk-unreadable");
                break;
            }
        }
    }
    outcome.bytes = body.sent;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_compare_weakly() {
        assert!(etag_matches("\"a\", W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"x\""));
        assert!(!etag_matches("\"a\"", "\"b\""));
    }
}
