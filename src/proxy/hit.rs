//! The hit path: look the key up at its owner, read and verify the entry,
//! ask `cache::policy::reuse` whether it may answer this request now (fresh,
//! stale inside a window, or only after revalidation), evaluate the
//! viewer's preconditions (`http::conditional`: 304, 412) and ranges
//! (`http::range`: 206, multipart/byteranges, 416), and stream the body
//! (small objects in one write, large ones chunk by chunk — only the chunks a
//! range needs — never whole in memory). Anything that cannot be served
//! exactly as stored becomes a miss; a chunk that fails mid-response closes
//! the connection.

use super::decoded::{Decoded, EntryId};
use super::parts::{self, PartsObject};
use super::respond::{ViewerBody, answer_preconditions, encode_head_with_room};
use super::revalidate::{self, StaleCopy};
use super::{Outcome, ShardCtx};
use crate::cache::index::Location;
use crate::cache::key::CacheKey;
use crate::cache::owner::{ReadFailure, StoredChunk, StoredEntry};
use crate::cache::parts::PartsMarker;
use crate::cache::policy::{self, FieldNames, Freshness, Reuse, Stored, from_unix_millis};
use crate::cache::store::SegmentId;
use crate::cache::store::layout::ChunkRef;
use crate::cache::variants::{self, Selecting};
use crate::gateway::decision::{CachePhase, CacheStatus, Detail};
use crate::gateway::viewer::{
    BodyShape, HeadContext, ViewerFraming, apply_range, connection_value,
};
use crate::http::conditional::{Precondition, evaluate};
use crate::http::range;
use crate::http::{Limits, Method, RequestHead, ResponseHead, parse_response, status_has_no_body};
use crate::net::conn::Conn;
use crate::spare;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

/// Why a cacheable request goes to the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillPhase {
    /// Nothing usable is stored.
    Miss,
    /// The URL's responses vary and the variant this request selects is
    /// not stored (RFC 9211 `fwd=vary-miss`).
    VaryMiss,
    /// A copy is stored but may not answer without the origin.
    Stale,
}

impl FillPhase {
    pub fn phase(self) -> CachePhase {
        match self {
            FillPhase::Miss => CachePhase::Miss,
            FillPhase::VaryMiss => CachePhase::VaryMiss,
            FillPhase::Stale => CachePhase::Stale,
        }
    }

    /// The phase of a request answered from another one's fetch.
    pub fn collapsed(self) -> CachePhase {
        match self {
            FillPhase::Miss => CachePhase::CollapsedMiss,
            FillPhase::VaryMiss => CachePhase::CollapsedVaryMiss,
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
    /// Nothing servable; `variant` when the request was after one of its
    /// URL's variants.
    fn miss(variant: bool, seen: Option<Location>) -> Missing {
        let phase = match variant {
            true => FillPhase::VaryMiss,
            false => FillPhase::Miss,
        };
        Missing { phase, seen }
    }
}

/// What a lookup found.
pub enum Found {
    /// A stored response, already sent to the viewer.
    Served(Outcome),
    /// Nothing servable: the request goes to the origin.
    Nothing(Missing),
    /// A stored response that must be validated with the origin first.
    Stale(Box<StaleCopy>),
    /// `only-if-cached`, and the stored response may not answer (504).
    OnlyIfCached,
}

/// A verified stored response.
pub struct Hit {
    pub entry: StoredEntry,
    /// The stored head as the shard keeps it decoded, with its directives.
    pub decoded: Rc<Decoded>,
    /// A head to serve instead of `decoded`'s: the stored one freshened by
    /// a revalidation.
    pub replaced: Option<ResponseHead>,
    pub freshness: Freshness,
    pub buffered: Vec<SegmentId>,
    /// Where the index pointed: a hit that turns out unreadable is a miss
    /// that saw this copy, and a refresh replaces only this copy.
    pub seen: Location,
    /// Set when the entry is the marker of an object kept in parts: `head`
    /// is then the origin's head it keeps, and the body is in the parts.
    pub parts: Option<PartsMarker>,
}

impl Hit {
    /// The head this hit serves.
    pub fn head(&self) -> &ResponseHead {
        self.replaced.as_ref().unwrap_or(&self.decoded.head)
    }

    /// The head this hit serves, to shape into a response.
    fn take_head(&mut self) -> ResponseHead {
        self.replaced
            .take()
            .unwrap_or_else(|| self.decoded.head.clone())
    }
}

/// How a stored response is answered: what `Cache-Status` says, its `Age`,
/// and the fields that may not go out.
pub struct Answer {
    pub status: CacheStatus,
    pub age: u64,
    pub strip: FieldNames,
}

impl Answer {
    /// The answer `reuse` allows without going forward.
    pub fn serve(serve: &policy::Serve) -> Answer {
        let (phase, detail) = match serve.kind {
            policy::ServeKind::Fresh => (CachePhase::Hit, None),
            kind @ (policy::ServeKind::StaleWhileRevalidate | policy::ServeKind::MaxStale) => {
                (CachePhase::HitStale, Some(Detail::ServedStale(kind)))
            }
            kind @ policy::ServeKind::StaleIfError => {
                (CachePhase::StaleIfError, Some(Detail::ServedStale(kind)))
            }
        };
        Answer {
            status: CacheStatus {
                ttl: Some(serve.ttl),
                detail,
                ..CacheStatus::of(phase)
            },
            age: serve.age,
            strip: serve.strip_fields.clone(),
        }
    }
}

/// Stored heads were written by us; allow them generous limits.
pub const STORED_HEAD_LIMITS: Limits = Limits {
    max_header_bytes: crate::cache::store::MAX_HEAD,
    max_uri_bytes: 8192,
    max_headers: 1000,
};

/// Finds and verifies the stored response `selecting` is after (the URL's
/// object, or through its Vary marker the variant `req` selects), fresh or
/// not.
pub(super) async fn find(
    ctx: &ShardCtx,
    req: &RequestHead,
    selecting: &mut Selecting,
) -> Result<Hit, Missing> {
    let (entry, loc, buffered) = match selecting.find(&ctx.cache, &req.headers).await {
        variants::Found::Entry {
            entry,
            loc,
            buffered,
        } => (entry, loc, buffered),
        variants::Found::Missing { seen } => {
            return Err(Missing::miss(selecting.is_variant(), seen));
        }
    };
    let seen = Some(loc);
    let key = selecting.key();
    let freshness = Freshness {
        born: from_unix_millis(entry.header.born_ms),
        expires: from_unix_millis(entry.header.expires_ms),
    };
    // A parts marker keeps the origin's head as its body.
    let parts = PartsMarker::decode(entry.head());
    let head_bytes = match (&parts, entry.inline_body()) {
        (Some(_), Some(origin_head)) => origin_head,
        (Some(_), None) => return Err(Missing::miss(selecting.is_variant(), seen)),
        (None, _) => entry.head(),
    };
    let id = EntryId {
        key_hash: entry.header.key_hash,
        seq: entry.header.seq,
        slot: loc.slot,
        offset: loc.offset,
        born_ms: entry.header.born_ms,
        head_len: entry.header.head_len,
    };
    let decoded = ctx.decoded.get_or_decode(id, || {
        ctx.stats.stored_head_decodes.fetch_add(1, Relaxed);
        match parse_response(head_bytes, &STORED_HEAD_LIMITS, false) {
            Ok(Some((head, _))) => Some(head),
            _ => None,
        }
    });
    let Some(decoded) = decoded else {
        crate::warn_limited!(
            key = key.as_str(),
            "stored response head does not parse; treating as a miss"
        );
        return Err(Missing::miss(selecting.is_variant(), seen));
    };
    // An invalidation newer than the entry makes it a miss; the fill that
    // follows replaces it.
    if ctx.banned(key, &decoded.head, entry.header.born_ms) {
        ctx.stats.invalidated_hits.fetch_add(1, Relaxed);
        // An object kept in parts goes with all its parts, so that no part
        // of it counts as stored when its marker is filled again.
        if let Some(marker) = &parts {
            for i in 0..marker.parts() {
                ctx.cache.remove(&marker.part_key(key, i)).await;
            }
        }
        return Err(Missing::miss(selecting.is_variant(), seen));
    }
    Ok(Hit {
        entry,
        decoded,
        replaced: None,
        freshness,
        buffered,
        seen: loc,
        parts,
    })
}

/// Looks up what `selecting` is after (moving it to the request's variant
/// when the URL's responses vary) and answers from the cache when the
/// policy allows; a stale-while-revalidate answer starts one background
/// revalidation.
pub async fn lookup(
    ctx: &Rc<ShardCtx>,
    conn: &mut Conn,
    req: &RequestHead,
    peer: SocketAddr,
    selecting: &mut Selecting,
) -> Found {
    let hit = match find(ctx, req, selecting).await {
        Ok(hit) => hit,
        Err(missing) => return Found::Nothing(missing),
    };
    let key = selecting.key();
    let variant = selecting.is_variant();
    let now = SystemTime::now();
    let stored = Stored {
        head: hit.head(),
        freshness: hit.freshness,
    };
    let reuse = policy::reuse_under(
        &req.headers,
        &stored,
        &hit.decoded.controls,
        now,
        &ctx.settings.policy,
    );
    let mut hit = hit;
    match (reuse, hit.parts.take()) {
        (Reuse::GatewayTimeout, _) => Found::OnlyIfCached,
        (Reuse::Serve(_), Some(marker)) => {
            let object = PartsObject {
                key: key.clone(),
                head: hit.take_head(),
                marker,
                freshness: hit.freshness,
            };
            Found::Served(Box::pin(parts::serve(ctx, conn, req, peer, object)).await)
        }
        // A stale parts marker is not validated: the object's head is
        // fetched again, which keeps or replaces the marker.
        (Reuse::Revalidate(_), Some(_)) => Found::Nothing(Missing {
            phase: FillPhase::Stale,
            seen: Some(hit.seen),
        }),
        (Reuse::Serve(serve), None) => {
            let seen = hit.seen;
            let mut answer = Answer::serve(&serve);
            if variant && answer.status.detail.is_none() {
                answer.status.detail = Some(Detail::Variant);
            }
            let found = serve_stored(ctx, conn, req, key, hit, answer, now).await;
            if variant && matches!(found, Found::Served(_)) {
                ctx.stats.variant_hits.fetch_add(1, Relaxed);
            }
            if serve.revalidate_in_background() && matches!(found, Found::Served(_)) {
                let selecting = selecting.clone();
                revalidate::in_background(ctx.clone(), req.clone(), peer, selecting, seen);
            }
            found
        }
        (Reuse::Revalidate(revalidate), None) => {
            Found::Stale(Box::new(StaleCopy { hit, revalidate }))
        }
    }
}

/// Where a stored body's bytes are.
enum Source {
    Inline,
    Chunks {
        fill_id: u64,
        chunks: Vec<ChunkRef>,
        chunk_size: u64,
    },
}

/// Why a body stopped early.
enum Stop {
    Viewer,
    Chunk { index: usize, why: ReadFailure },
}

/// Sends a stored response to the viewer as `answer` says, after its
/// preconditions and range, as of `now` (the time the answer was decided
/// at). `Found::Nothing` when a large object's first needed chunk cannot be
/// read (nothing was sent).
pub async fn serve_stored(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: &RequestHead,
    key: &CacheKey,
    hit: Hit,
    answer: Answer,
    now: SystemTime,
) -> Found {
    let mut hit = hit;
    let body_len = hit.entry.body_len();
    let phase = answer.status.phase;
    let detail = answer.status.detail;
    let plain = match hit.replaced {
        None => plain_hit_head(&ctx.settings, req, &hit.decoded, &answer, body_len),
        Some(_) => None,
    };
    // The way most hits take: a whole 200 from the decoded head's
    // pre-encoded fields. Any other is shaped from a copy of the head.
    let (status, shape, wire_len, head_only, mut out) = match plain {
        Some(out) => (200, BodyShape::Whole, body_len, false, out),
        None => {
            let mut head = hit.take_head();
            let mut head_only = req.method == Method::Head || status_has_no_body(head.status);
            if let Some(answered) =
                answer_preconditions(ctx, conn, req, &mut head, &mut head_only, phase, detail).await
            {
                ctx.stats.hits.fetch_add(1, Relaxed);
                return Found::Served(answered);
            }
            let (shape, wire_len) =
                shape_stored(req, &mut head, &answer, body_len, head_only, seed(key, now));
            // A small body in several ranges is written behind the head,
            // in its buffer; a whole one or one range goes out from where
            // it is stored.
            let room = match (hit.entry.chunks(), head_only, &shape) {
                (None, false, BodyShape::Multi(_)) => usize::try_from(wire_len).unwrap_or(0),
                _ => 0,
            };
            let out = encode_stored_head(
                &ctx.settings,
                req,
                &mut head,
                &answer,
                (wire_len, room),
                head_only,
                now,
            );
            (head.status, shape, wire_len, head_only, out)
        }
    };
    let Hit {
        entry,
        buffered,
        seen,
        ..
    } = hit;
    let source = match entry.chunks() {
        None => Source::Inline,
        Some((fill_id, chunks)) => Source::Chunks {
            fill_id,
            chunks,
            chunk_size: ctx.cache.store().chunk_size(),
        },
    };
    // A large object's first needed chunk is read before anything is sent,
    // so that an unreadable object is a miss rather than a broken response.
    let first = match (&source, head_only, first_offset(&shape)) {
        (
            Source::Chunks {
                fill_id,
                chunks,
                chunk_size,
            },
            false,
            Some(at),
        ) => {
            let i = (at / chunk_size) as usize;
            let Some(c) = chunks.get(i) else {
                return Found::Nothing(Missing::miss(false, Some(seen)));
            };
            match Box::pin(ctx.cache.read_chunk(key, *fill_id, i as u32, c, &buffered)).await {
                Ok(chunk) => Some(chunk),
                Err(_) => return Found::Nothing(Missing::miss(false, Some(seen))),
            }
        }
        _ => None,
    };
    ctx.stats.hits.fetch_add(1, Relaxed);
    let framing = stored_framing(head_only, wire_len);
    let io_timeout = ctx.settings.io_timeout;
    ctx.stats.count_status(status);
    let mut outcome = Outcome {
        status,
        phase,
        bytes: 0,
        keep_alive: req.keep_alive,
        detail: answer.status.detail,
    };
    if head_only {
        outcome.keep_alive &= conn.write_all(&out, io_timeout).await.is_ok();
        spare::give(out);
        return Found::Served(outcome);
    }
    if let (Source::Inline, Some(stored)) = (&source, entry.inline_body()) {
        // One write for head and body: most hits are small.
        let written = match inline_slice(stored, &shape) {
            // A large entry the RAM tier holds in a file: its pages are lent.
            Some(body) if let Some((fd, at)) = entry.inline_body_file() => {
                let offset =
                    at + body.as_ptr().addr().saturating_sub(stored.as_ptr().addr()) as u64;
                // The head waits for the body's first segment (MSG_MORE),
                // and the body's last piece pushes all. Under TCP_CORK,
                // released by a `setsockopt` after the body, a 100 KiB hit
                // left partly from a TCP pacing timer and woke the viewer
                // twice: 39 against 18 µs of shard CPU per hit
                // (`benches/results/compare-2026-12-03.md`).
                let sent = async {
                    conn.write_head_more(&out, io_timeout).await?;
                    conn.write_file(body, fd, offset, io_timeout).await
                };
                sent.await.map(|lent| {
                    if lent {
                        ctx.stats.lent_bytes.fetch_add(body.len() as u64, Relaxed);
                    }
                    body.len()
                })
            }
            Some(body) => conn
                .write_all_two(&out, body, io_timeout)
                .await
                .map(|()| body.len()),
            None => {
                let before = out.len();
                inline_body(stored, &shape, &mut out);
                let len = out.len() - before;
                conn.write_all(&out, io_timeout).await.map(|()| len)
            }
        };
        match written {
            Ok(len) => outcome.bytes = len as u64,
            Err(_) => outcome.keep_alive = false,
        }
        spare::give(out);
        return Found::Served(outcome);
    }
    // Head, chunks and a short last chunk leave in full segments rather
    // than a small one per piece: fewer packets for the viewer to take in
    // (1 MiB hits: 20-40% more MiB/s in one run beside the uncorked way).
    // A write that fails closes the connection, held bytes and all.
    conn.cork(true);
    let written = conn.write_all(&out, io_timeout).await;
    spare::give(out);
    if written.is_err() {
        outcome.keep_alive = false;
        return Found::Served(outcome);
    }
    let Source::Chunks {
        fill_id,
        chunks,
        chunk_size,
    } = &source
    else {
        outcome.keep_alive = false;
        return Found::Served(outcome);
    };
    let mut body = ViewerBody::new(conn, framing, io_timeout);
    let chunked = ChunkedBody {
        ctx,
        key,
        fill_id: *fill_id,
        chunks,
        chunk_size: *chunk_size,
        buffered: &buffered,
    };
    // Boxed: a large object's state stays out of every small hit's future.
    let result = Box::pin(chunked.send(&mut body, &shape, body_len, first)).await;
    outcome.bytes = body.sent;
    ctx.stats.lent_bytes.fetch_add(body.lent, Relaxed);
    conn.cork(false);
    match result {
        Ok(()) => {}
        Err(Stop::Viewer) => outcome.keep_alive = false,
        Err(Stop::Chunk { index, why }) => {
            // Headers are out; closing early tells the viewer the body is
            // incomplete. The object is dropped so no one else gets it.
            crate::warn_limited!(
                key = key.as_str(),
                chunk = index,
                ?why,
                "stored chunk unreadable; closing"
            );
            ctx.cache.remove(key).await;
            outcome.keep_alive = false;
            outcome.detail = Some(Detail::ChunkUnreadable);
        }
    }
    Found::Served(outcome)
}

/// The head of a plain hit, written from the decoded head's pre-encoded
/// prefix without a copy of the head to shape: a whole 200 to a GET with
/// no range, no precondition and no field to strip. It carries the fields
/// `shape_stored` and `encode_stored_head` would give it (in another
/// order); None for any other hit, which takes that way.
pub fn plain_hit_head(
    settings: &super::settings::ProxySettings,
    req: &RequestHead,
    decoded: &Decoded,
    answer: &Answer,
    body_len: u64,
) -> Option<Vec<u8>> {
    let prefix = decoded.hit_prefix.as_deref()?;
    let stored = &decoded.head;
    let plain = req.method == Method::Get
        && answer.strip.is_empty()
        && !req.headers.contains("range")
        && (settings.downstream_strip.is_empty() || !decoded.carries_strippable)
        && matches!(evaluate(&req.headers, stored), Precondition::Proceed);
    if !plain {
        return None;
    }
    let mut out = spare::take(prefix.len() + 128 + 2 * settings.node.len());
    out.extend_from_slice(prefix);
    // Numbers by `itoa`, not `fmt`: this head is written on every hit.
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b"Age: ");
    out.extend_from_slice(number.format(answer.age).as_bytes());
    out.extend_from_slice(b"\r\nAccept-Ranges: bytes\r\nContent-Length: ");
    out.extend_from_slice(number.format(body_len).as_bytes());
    out.extend_from_slice(b"\r\nVia: ");
    out.extend_from_slice(stored.version.number().as_bytes());
    out.push(b' ');
    out.extend_from_slice(settings.node.as_bytes());
    out.extend_from_slice(b"\r\nCache-Status: ");
    answer.status.rendered(&settings.node).append_to(&mut out);
    out.extend_from_slice(b"\r\n");
    let framing = ViewerFraming::Length(body_len);
    if let Some(value) = connection_value(req.keep_alive, framing, req.version) {
        out.extend_from_slice(b"Connection: ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some(out)
}

/// Readies a stored head for this request as `answer` says, after its
/// preconditions: strips the fields that may not go out, sets `Age`, and
/// applies the request's range. Returns the body's shape and the length it
/// sends.
pub fn shape_stored(
    req: &RequestHead,
    head: &mut ResponseHead,
    answer: &Answer,
    body_len: u64,
    head_only: bool,
    seed: u64,
) -> (BodyShape, u64) {
    answer.strip.strip_from(&mut head.headers);
    head.headers.set_fmt("Age", format_args!("{}", answer.age));
    let shaped = if head_only {
        (BodyShape::Whole, body_len)
    } else {
        let plan = range::plan(&req.headers, req.method == Method::Get, head, body_len);
        apply_range(head, plan, body_len, seed)
    };
    // This cache answers byte ranges of what it stores, whatever the
    // origin supports (RFC 9110 §14.3).
    if head.status == 200 {
        head.headers.set("Accept-Ranges", "bytes");
    }
    shaped
}

/// How a stored response's body is framed for the viewer.
fn stored_framing(head_only: bool, wire_len: u64) -> ViewerFraming {
    match head_only {
        true => ViewerFraming::NoBody,
        false => ViewerFraming::Length(wire_len),
    }
}

/// Encodes a shaped stored head for the viewer, with this node's
/// `Cache-Status` entry, into a buffer with `room` bytes to spare for the
/// body. A head-only answer still gives the length the body would have.
pub fn encode_stored_head(
    settings: &super::settings::ProxySettings,
    req: &RequestHead,
    head: &mut ResponseHead,
    answer: &Answer,
    (wire_len, room): (u64, usize),
    head_only: bool,
    now: SystemTime,
) -> Vec<u8> {
    let cx = HeadContext {
        node: &settings.node,
        version: req.version,
        framing: stored_framing(head_only, wire_len),
        length: Some(wire_len),
        keep_alive: req.keep_alive,
        status: answer.status,
        now,
        strip: settings.downstream_strip,
    };
    encode_head_with_room(head, &cx, room)
}

/// The multipart boundary seed: varies between responses and objects.
fn seed(key: &CacheKey, now: SystemTime) -> u64 {
    key.hash() ^ crate::cache::policy::to_unix_millis(now).rotate_left(32)
}

/// The first body byte a shape sends, if it sends any.
fn first_offset(shape: &BodyShape) -> Option<u64> {
    match shape {
        BodyShape::Whole => Some(0),
        BodyShape::Single(r) => Some(r.start),
        BodyShape::Multi(m) => m.ranges().first().map(|r| r.start),
        BodyShape::Unsatisfiable => None,
    }
}

/// The one slice of a small object's body a shape sends: all of it, or one
/// range (None: several ranges, or none).
pub fn inline_slice<'a>(stored: &'a [u8], shape: &BodyShape) -> Option<&'a [u8]> {
    match shape {
        BodyShape::Whole => Some(stored),
        BodyShape::Single(r) => stored.get(r.start as usize..r.end as usize),
        BodyShape::Multi(_) | BodyShape::Unsatisfiable => None,
    }
}

/// Appends a small object's body, shaped, to `out`.
pub fn inline_body(stored: &[u8], shape: &BodyShape, out: &mut Vec<u8>) {
    let slice = |r: &std::ops::Range<u64>| &stored[r.start as usize..r.end as usize];
    match shape {
        BodyShape::Whole => out.extend_from_slice(stored),
        BodyShape::Single(r) => out.extend_from_slice(slice(r)),
        BodyShape::Multi(m) => {
            for (i, r) in m.ranges().iter().enumerate() {
                out.extend_from_slice(&m.part_head(i));
                out.extend_from_slice(slice(r));
            }
            out.extend_from_slice(&m.tail());
        }
        BodyShape::Unsatisfiable => {}
    }
}

/// A large object's chunks, read on demand.
struct ChunkedBody<'a> {
    ctx: &'a ShardCtx,
    key: &'a CacheKey,
    fill_id: u64,
    chunks: &'a [ChunkRef],
    chunk_size: u64,
    buffered: &'a [SegmentId],
}

impl ChunkedBody<'_> {
    async fn read(&self, index: usize) -> Result<StoredChunk, Stop> {
        let c = self.chunks.get(index).ok_or(Stop::Chunk {
            index,
            why: ReadFailure::Corrupt,
        })?;
        self.ctx
            .cache
            .read_chunk(self.key, self.fill_id, index as u32, c, self.buffered)
            .await
            .map_err(|why| Stop::Chunk { index, why })
    }

    async fn send(
        &self,
        body: &mut ViewerBody<'_>,
        shape: &BodyShape,
        len: u64,
        first: Option<StoredChunk>,
    ) -> Result<(), Stop> {
        match shape {
            BodyShape::Whole => self.copy(body, 0..len, first).await,
            BodyShape::Single(r) => self.copy(body, r.clone(), first).await,
            BodyShape::Multi(m) => {
                let mut first = first;
                for (i, r) in m.ranges().iter().enumerate() {
                    body.write(&m.part_head(i))
                        .await
                        .map_err(|_| Stop::Viewer)?;
                    self.copy(body, r.clone(), first.take()).await?;
                }
                body.write(&m.tail()).await.map_err(|_| Stop::Viewer)
            }
            BodyShape::Unsatisfiable => Ok(()),
        }
    }

    /// Sends the bytes of `range`, writing each chunk while the next is read.
    /// `first`, when given, is the chunk holding `range.start`.
    async fn copy(
        &self,
        body: &mut ViewerBody<'_>,
        range: std::ops::Range<u64>,
        first: Option<StoredChunk>,
    ) -> Result<(), Stop> {
        if range.is_empty() {
            return Ok(());
        }
        let cs = self.chunk_size;
        let (first_index, last_index) =
            ((range.start / cs) as usize, ((range.end - 1) / cs) as usize);
        let mut current = match first {
            Some(c) => c,
            None => self.read(first_index).await?,
        };
        for i in first_index..=last_index {
            let start = i as u64 * cs;
            let data = current.data();
            let from = range.start.saturating_sub(start).min(data.len() as u64) as usize;
            let to = (range.end - start).min(data.len() as u64) as usize;
            let piece = &data[from..to.max(from)];
            let file = current.file().map(|(fd, at)| (fd, at + from as u64));
            if i == last_index {
                return body.write_file(piece, file).await.map_err(|_| Stop::Viewer);
            }
            let (written, next) =
                futures_lite::future::zip(body.write_file(piece, file), self.read(i + 1)).await;
            written.map_err(|_| Stop::Viewer)?;
            current = next?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::http::parse_request;
    use crate::proxy::settings::ProxySettings;

    const STORED: &str = "HTTP/1.1 200 OK\r\nDate: Tue, 10 Jun 2025 17:12:45 GMT\r\n\
        Content-Type: text/plain\r\nETag: \"v1\"\r\nCache-Control: max-age=60\r\n\
        X-Twice: a\r\nX-Twice: b\r\n\r\n";

    /// The status line, then the fields sorted: the two ways may order
    /// fields differently, which HTTP allows for fields of different names.
    fn fields(bytes: &[u8]) -> (String, Vec<String>) {
        let text = std::str::from_utf8(bytes).expect("a head is text");
        let head = text.strip_suffix("\r\n\r\n").expect("a whole head");
        let mut lines = head.split("\r\n").map(str::to_string);
        let status = lines.next().expect("a status line");
        let mut rest: Vec<String> = lines.collect();
        rest.sort();
        (status, rest)
    }

    #[test]
    fn a_plain_hit_sends_what_the_shaped_way_sends_and_only_when_it_may() {
        let settings = ProxySettings::from_config(&Config::default(), "origin.test".into());
        let stored = match parse_response(STORED.as_bytes(), &STORED_HEAD_LIMITS, false) {
            Ok(Some((head, _))) => head,
            other => panic!("the stored head parses: {other:?}"),
        };
        let decoded = Decoded::new(stored);
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_749_575_600);
        let answer = Answer {
            status: CacheStatus::of(CachePhase::Hit),
            age: 7,
            strip: FieldNames::new(),
        };
        let cases = [
            ("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", true),
            (
                "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                true,
            ),
            (
                "GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
                true,
            ),
            ("GET /a HTTP/1.0\r\nHost: x\r\n\r\n", true),
            (
                "GET /a HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"v0\"\r\n\r\n",
                true,
            ),
            (
                "GET /a HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"v1\"\r\n\r\n",
                false,
            ),
            (
                "GET /a HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3\r\n\r\n",
                false,
            ),
            ("HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n", false),
        ];
        for (raw, plain) in cases {
            let req = match parse_request(raw.as_bytes(), &settings.limits) {
                Ok(Some((req, _))) => req,
                other => panic!("{raw:?} parses: {other:?}"),
            };
            let fast = plain_hit_head(&settings, &req, &decoded, &answer, 1024);
            assert_eq!(fast.is_some(), plain, "{raw:?}");
            let Some(fast) = fast else { continue };
            let mut head = decoded.head.clone();
            let (shape, wire_len) = shape_stored(&req, &mut head, &answer, 1024, false, 1);
            assert!(matches!(shape, BodyShape::Whole));
            let shaped = encode_stored_head(
                &settings,
                &req,
                &mut head,
                &answer,
                (wire_len, 0),
                false,
                now,
            );
            assert_eq!(fields(&fast), fields(&shaped), "{raw:?}");
        }
        // A field to strip, or a head a hit would append to, takes the
        // shaped way.
        let req = match parse_request(cases[0].0.as_bytes(), &settings.limits) {
            Ok(Some((req, _))) => req,
            other => panic!("parses: {other:?}"),
        };
        let mut strip = FieldNames::new();
        strip.add("etag");
        let stripping = Answer { strip, ..answer };
        assert!(plain_hit_head(&settings, &req, &decoded, &stripping, 1024).is_none());
        let via = STORED.replace("ETag", "Via: 1.1 upstream\r\nETag");
        let Ok(Some((with_via, _))) = parse_response(via.as_bytes(), &STORED_HEAD_LIMITS, false)
        else {
            panic!("the head with Via parses");
        };
        assert!(Decoded::new(with_via).hit_prefix.is_none());
        // An edge strips the targeted fields it obeyed.
        let cdn = STORED.replace("ETag", "CDN-Cache-Control: max-age=9\r\nETag");
        let Ok(Some((with_cdn, _))) = parse_response(cdn.as_bytes(), &STORED_HEAD_LIMITS, false)
        else {
            panic!("the head with CDN-Cache-Control parses");
        };
        assert!(!settings.downstream_strip.is_empty(), "an edge by default");
        let with_cdn = Decoded::new(with_cdn);
        assert!(plain_hit_head(&settings, &req, &with_cdn, &answer, 1024).is_none());
    }
}
