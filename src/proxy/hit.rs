//! The hit path: look the key up at its owner, read and verify the entry,
//! check freshness, answer conditionals (`http::conditional`), and stream the
//! body (small objects in one write, large ones chunk by chunk, never whole
//! in memory). Anything that cannot be served exactly as stored becomes a
//! miss; a chunk that fails mid-response closes the connection.

use super::respond::{ViewerBody, encode_head};
use super::{Outcome, ShardCtx};
use crate::cache::index::Location;
use crate::cache::key::CacheKey;
use crate::cache::owner::{StoredChunk, StoredEntry};
use crate::cache::policy::{Freshness, from_unix_millis};
use crate::cache::store::{Lookup, SegmentId};
use crate::gateway::decision::{CachePhase, CacheStatus, Detail, Storing};
use crate::gateway::viewer::{HeadContext, ViewerFraming};
use crate::http::conditional::{is_not_modified, not_modified_head};
use crate::http::{Limits, Method, RequestHead, ResponseHead, parse_response, status_has_no_body};
use crate::net::conn::Conn;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

/// Why a cacheable request goes to the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillPhase {
    /// Nothing usable is stored.
    Miss,
    /// A copy is stored but no longer fresh.
    Stale,
}

impl FillPhase {
    pub fn phase(self) -> CachePhase {
        match self {
            FillPhase::Miss => CachePhase::Miss,
            FillPhase::Stale => CachePhase::Stale,
        }
    }

    /// The phase of a request answered from another one's fetch.
    pub fn collapsed(self) -> CachePhase {
        match self {
            FillPhase::Miss => CachePhase::CollapsedMiss,
            FillPhase::Stale => CachePhase::CollapsedStale,
        }
    }
}

/// Nothing servable was found for a key.
#[derive(Clone, Copy, Debug)]
pub struct Missing {
    pub phase: FillPhase,
    /// Where the index pointed, when there was a (stale or unreadable) copy.
    pub seen: Option<Location>,
}

impl Missing {
    fn miss(seen: Option<Location>) -> Missing {
        Missing {
            phase: FillPhase::Miss,
            seen,
        }
    }
}

/// What a lookup found.
pub enum Found {
    /// A fresh object, already sent to the viewer.
    Served(Outcome),
    /// Nothing servable: the request goes to the origin.
    Nothing(Missing),
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
pub(super) const STORED_HEAD_LIMITS: Limits = Limits {
    max_header_bytes: crate::cache::store::MAX_HEAD,
    max_uri_bytes: 8192,
    max_headers: 1000,
};

async fn find(ctx: &ShardCtx, key: &CacheKey) -> Result<Hit, Missing> {
    let Lookup::Found {
        loc,
        seq,
        bytes,
        buffered,
    } = ctx.cache.lookup(key).await
    else {
        return Err(Missing::miss(None));
    };
    let seen = Some(loc);
    let entry = ctx
        .cache
        .read_entry(key, loc, seq, bytes, &buffered)
        .await
        .map_err(|_| Missing::miss(seen))?;
    let fresh = Freshness {
        born: from_unix_millis(entry.header.born_ms),
        expires: from_unix_millis(entry.header.expires_ms),
    };
    if !fresh.is_fresh(SystemTime::now()) {
        return Err(Missing {
            phase: FillPhase::Stale,
            seen,
        });
    }
    let Ok(Some((head, _))) = parse_response(entry.head(), &STORED_HEAD_LIMITS, false) else {
        crate::warn_limited!(
            key = key.as_str(),
            "stored response head does not parse; treating as a miss"
        );
        return Err(Missing::miss(seen));
    };
    let first_chunk = match entry.chunks() {
        Some((fill_id, chunks)) => match chunks.first() {
            Some(c) => Some(
                ctx.cache
                    .read_chunk(key, fill_id, 0, c, &buffered)
                    .await
                    .map_err(|_| Missing::miss(seen))?,
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

pub async fn lookup(ctx: &ShardCtx, conn: &mut Conn, req: &RequestHead, key: &CacheKey) -> Found {
    match find(ctx, key).await {
        Ok(hit) => Found::Served(serve(ctx, conn, req, key, hit).await),
        Err(missing) => Found::Nothing(missing),
    }
}

/// Serves a fresh hit if there is one, without counting a miss otherwise.
pub async fn serve_if_fresh(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: &RequestHead,
    key: &CacheKey,
) -> Option<Outcome> {
    let hit = find(ctx, key).await.ok()?;
    Some(serve(ctx, conn, req, key, hit).await)
}

async fn serve(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: &RequestHead,
    key: &CacheKey,
    hit: Hit,
) -> Outcome {
    ctx.stats.hits.fetch_add(1, Relaxed);
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
    if is_not_modified(&req.headers, &head) {
        head = not_modified_head(&head);
        head_only = true;
    }
    head.headers.set("Age", fresh.age(now).to_string());
    let framing = if head_only {
        ViewerFraming::NoBody
    } else {
        ViewerFraming::Length(body_len)
    };
    let cx = HeadContext {
        node: &ctx.settings.node,
        version: req.version,
        framing,
        length: Some(body_len),
        keep_alive: req.keep_alive,
        status: CacheStatus {
            phase: CachePhase::Hit,
            storing: Storing::No,
            ttl: Some(fresh.ttl(now)),
            detail: None,
        },
        now,
    };
    let mut out = encode_head(&mut head, &cx);
    let io_timeout = ctx.settings.io_timeout;
    ctx.stats.count_status(head.status);
    let mut outcome = Outcome {
        status: head.status,
        phase: CachePhase::Hit,
        bytes: 0,
        keep_alive: req.keep_alive,
        detail: None,
    };
    if head_only {
        outcome.keep_alive &= conn.write_all(&out, io_timeout).await.is_ok();
        return outcome;
    }
    if let Some(body) = entry.inline_body() {
        // One write for head and body: most hits are small.
        out.extend_from_slice(body);
        match conn.write_all(&out, io_timeout).await {
            Ok(()) => outcome.bytes = body.len() as u64,
            Err(_) => outcome.keep_alive = false,
        }
        return outcome;
    }
    let Some((fill_id, chunks)) = entry.chunks() else {
        outcome.keep_alive = false;
        return outcome;
    };
    if conn.write_all(&out, io_timeout).await.is_err() {
        outcome.keep_alive = false;
        return outcome;
    }
    let mut body = ViewerBody::new(conn, framing, io_timeout);
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
                crate::warn_limited!(
                    key = key.as_str(),
                    chunk = i + 1,
                    ?why,
                    "stored chunk unreadable; closing"
                );
                ctx.cache.remove(key).await;
                outcome.keep_alive = false;
                outcome.detail = Some(Detail::ChunkUnreadable);
                break;
            }
        }
    }
    outcome.bytes = body.sent;
    outcome
}
