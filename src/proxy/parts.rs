//! Serving an object kept in parts (`cache::parts`): the viewer's range (or
//! the whole object) is cut into the parts that hold it; each part comes
//! from the cache when stored and of the same representation, otherwise
//! from the origin with a byte range — one fetch per part, coalesced with
//! other viewers needing it — and is stored for the next viewer. The first
//! part is had before anything is sent, so an object whose parts cannot be
//! had is passed to the origin whole; a part that fails later (the object
//! changed) drops the marker and closes the connection, so a viewer never
//! mistakes a mixed or short body for a whole one.

use super::forward::{self, Forward};
use super::hit::STORED_HEAD_LIMITS;
use super::respond::{ViewerBody, answer_preconditions, encode_head};
use super::{Outcome, ShardCtx};
use crate::cache::key::CacheKey;
use crate::cache::owner::{Fetch, FillReader, StoredEntry};
use crate::cache::parts::PartsMarker;
use crate::cache::policy::{self, Freshness};
use crate::cache::store::{FillMeta, Lookup};
use crate::cache::variants::FillTarget;
use crate::gateway::decision::{CachePhase, CacheStatus, Detail, PassReason};
use crate::gateway::forwarded::{Purpose, upstream_head};
use crate::gateway::viewer::{HeadContext, ViewerFraming, stored_head};
use crate::http::range::{self, RangePlan, content_range, unsatisfied_range};
use crate::http::{Method, RequestHead, ResponseHead, parse_response, reason_phrase};
use crate::net::body::BodyReader;
use crate::net::conn::Conn;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

/// An object kept in parts, as its marker describes it.
pub struct PartsObject {
    /// The key the marker stands under (the URL's, or its variant's).
    pub key: CacheKey,
    /// The origin's head of the whole representation.
    pub head: ResponseHead,
    pub marker: PartsMarker,
    pub freshness: Freshness,
}

/// One part's bytes.
enum Part {
    Entry(StoredEntry),
    Bytes(Vec<u8>),
}

impl Part {
    fn data(&self) -> &[u8] {
        match self {
            Part::Entry(entry) => entry.inline_body().unwrap_or_default(),
            Part::Bytes(bytes) => bytes,
        }
    }
}

/// Why a part could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PartFailure {
    /// The origin's answer was not this part of this representation.
    Changed,
    /// The origin could not be reached or cut the part short.
    Origin,
}

/// Stores the marker of an object kept in parts under `key`: the origin's
/// head as its body, the representation's freshness as its own.
pub async fn keep_marker(
    ctx: &ShardCtx,
    target: &FillTarget,
    marker: &PartsMarker,
    head: &ResponseHead,
    freshness: Freshness,
) {
    let key = &target.key;
    let meta = FillMeta {
        key: key.as_str().to_string(),
        hash: key.hash(),
        head: marker.encode(),
        born_ms: policy::to_unix_millis(freshness.born),
        expires_ms: policy::to_unix_millis(freshness.expires),
        declared_len: None,
        variant: target.variant.clone(),
    };
    let fill = ctx.cache.fill(key, meta, None).await;
    fill.data(&stored_head(head.clone(), SystemTime::now()))
        .await;
    fill.finish(true).await;
}

/// The head of the whole representation a response (a 200, or a 206 the
/// origin sent for all of a plain GET) stands for.
pub fn whole_head(resp: &ResponseHead) -> ResponseHead {
    let mut head = resp.clone();
    head.status = 200;
    head.reason = reason_phrase(200).into();
    head.headers.remove("content-range");
    head
}

/// Answers `req` from the parts of `object` (fetching those not stored).
pub async fn serve(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: &RequestHead,
    peer: SocketAddr,
    object: PartsObject,
) -> Outcome {
    let PartsObject {
        key,
        mut head,
        marker,
        freshness,
    } = object;
    let now = SystemTime::now();
    let total = marker.total;
    let mut head_only = req.method == Method::Head;
    if let Some(answered) = answer_preconditions(
        ctx,
        conn,
        req,
        &mut head,
        &mut head_only,
        CachePhase::Hit,
        Some(Detail::Parts),
    )
    .await
    {
        return answered;
    }
    let plan = if head_only {
        RangePlan::Full
    } else {
        range::plan(&req.headers, req.method == Method::Get, &head, total)
    };
    let (status, wanted) = match plan {
        RangePlan::Full => (head.status, 0..total),
        RangePlan::Partial(ranges) if ranges.len() == 1 => (206, ranges[0].clone()),
        // Several ranges of an object this size are the origin's to cut.
        RangePlan::Partial(_) => return pass(ctx, conn, req, peer).await,
        RangePlan::Unsatisfiable => (416, 0..0),
    };
    if status == 206 {
        head.headers
            .set("Content-Range", content_range(&wanted, total));
    } else if status == 416 {
        head.headers.set("Content-Range", unsatisfied_range(total));
        head.headers.remove("content-type");
    }
    head.status = status;
    head.reason = reason_phrase(status).into();
    head.headers.set("Accept-Ranges", "bytes");
    head.headers.set("Age", freshness.age(now).to_string());
    let parts = if head_only || wanted.is_empty() {
        0..0
    } else {
        marker.parts_for(&wanted)
    };
    // Whether any part must come from the origin decides Cache-Status.
    let mut all_stored = true;
    for i in parts.clone() {
        if matches!(
            ctx.cache.lookup(&marker.part_key(&key, i)).await,
            Lookup::Miss
        ) {
            all_stored = false;
            break;
        }
    }
    let obtaining = Obtaining {
        ctx,
        req,
        peer,
        key: &key,
        marker: &marker,
        freshness,
    };
    // The first part before the head: an object whose parts cannot be had
    // is passed whole instead.
    let mut current = match parts.clone().next() {
        Some(i) => match obtaining.part(i).await {
            Ok(part) => Some(part),
            Err(_) => {
                ctx.cache.remove(&key).await;
                return pass(ctx, conn, req, peer).await;
            }
        },
        None => None,
    };
    let phase = if all_stored {
        CachePhase::Hit
    } else {
        CachePhase::Partial
    };
    let framing = if head_only {
        ViewerFraming::NoBody
    } else {
        ViewerFraming::Length(wanted.end - wanted.start)
    };
    let detail = Some(Detail::Parts);
    let cx = HeadContext {
        node: &ctx.settings.node,
        version: req.version,
        framing,
        length: Some(if head_only {
            total
        } else {
            wanted.end - wanted.start
        }),
        keep_alive: req.keep_alive,
        status: CacheStatus {
            ttl: Some(freshness.ttl(now)),
            detail,
            ..CacheStatus::of(phase)
        },
        now,
        strip: ctx.settings.downstream_strip,
    };
    let out = encode_head(&mut head, &cx);
    ctx.stats.count_status(head.status);
    if all_stored {
        ctx.stats.hits.fetch_add(1, Relaxed);
    }
    let mut outcome = Outcome {
        status: head.status,
        phase,
        bytes: 0,
        keep_alive: req.keep_alive,
        detail,
    };
    if conn.write_all(&out, ctx.settings.io_timeout).await.is_err() {
        outcome.keep_alive = false;
        return outcome;
    }
    let mut body = ViewerBody::new(conn, framing, ctx.settings.io_timeout);
    for i in parts.clone() {
        let Some(part) = current.take() else { break };
        // Send this part while the next one is had.
        let slice = slice_of(&marker.part(i), &wanted, part.data());
        let next = (i + 1 < parts.end).then(|| obtaining.part(i + 1));
        let (written, next) = match next {
            Some(next) => {
                let (w, n) = futures_lite::future::zip(body.write(slice), next).await;
                (w, Some(n))
            }
            None => (body.write(slice).await, None),
        };
        if written.is_err() {
            outcome.keep_alive = false;
            break;
        }
        match next {
            None => {}
            Some(Ok(part)) => current = Some(part),
            Some(Err(why)) => {
                // Headers are out: closing tells the viewer the body is cut.
                if why == PartFailure::Changed {
                    ctx.cache.remove(&key).await;
                }
                outcome.keep_alive = false;
                outcome.detail = Some(Detail::OriginBodyTruncated);
                break;
            }
        }
    }
    outcome.bytes = body.sent;
    outcome
}

/// The bytes of a part (covering `part` of the object) inside `wanted`.
fn slice_of<'d>(part: &Range<u64>, wanted: &Range<u64>, data: &'d [u8]) -> &'d [u8] {
    let from = wanted
        .start
        .saturating_sub(part.start)
        .min(data.len() as u64) as usize;
    let to = (wanted.end.min(part.end) - part.start).min(data.len() as u64) as usize;
    &data[from..to.max(from)]
}

/// Sends the request to the origin as it came: the object cannot be
/// answered from parts.
async fn pass(ctx: &ShardCtx, conn: &mut Conn, req: &RequestHead, peer: SocketAddr) -> Outcome {
    ctx.stats.passes.fetch_add(1, Relaxed);
    let pass = Forward::Pass(PassReason::PartsUnavailable);
    // Boxed: a fill that turns to parts may come back here to pass.
    Box::pin(forward::forward(ctx, conn, req, peer, pass)).await
}

/// How many times a part is looked up again after a fetch of it by
/// another viewer ended, before this one fetches it alone.
const PART_LOOKS: u32 = 3;

/// What getting a part needs.
struct Obtaining<'a> {
    ctx: &'a ShardCtx,
    req: &'a RequestHead,
    peer: SocketAddr,
    key: &'a CacheKey,
    marker: &'a PartsMarker,
    freshness: Freshness,
}

impl Obtaining<'_> {
    /// Part `i`: stored, followed from another viewer's fetch, or fetched.
    /// A fetch that another viewer finished (or failed) between the lookup
    /// and the request to lead means looking again, not fetching again.
    async fn part(&self, i: u64) -> Result<Part, PartFailure> {
        let ctx = self.ctx;
        let pkey = self.marker.part_key(self.key, i);
        let len = (self.marker.part(i).end - self.marker.part(i).start) as usize;
        for _ in 0..PART_LOOKS {
            if let Some(part) = self.stored(&pkey, i).await {
                return Ok(part);
            }
            match ctx
                .cache
                .begin_fetch(&pkey, None, ctx.settings.lead_wait)
                .await
            {
                Fetch::Follow(reader) => {
                    return follow(reader, len, ctx.settings.follow_wait).await;
                }
                Fetch::Lead(lead) => return self.fetch(&pkey, i, Some(lead)).await,
                Fetch::Stored | Fetch::Retry => continue,
                Fetch::Alone | Fetch::TimedOut | Fetch::Busy => break,
            }
        }
        self.fetch(&pkey, i, None).await
    }

    /// Part `i` as stored, if it is and belongs to this representation. A
    /// part as large as a chunk is stored as one, under a manifest.
    async fn stored(&self, pkey: &CacheKey, i: u64) -> Option<Part> {
        let cache = &self.ctx.cache;
        let Lookup::Found {
            loc,
            seq,
            bytes,
            buffered,
        } = cache.lookup(pkey).await
        else {
            return None;
        };
        let entry = cache
            .read_entry(pkey, loc, seq, bytes, &buffered)
            .await
            .ok()?;
        let (head, _) = parse_response(entry.head(), &STORED_HEAD_LIMITS, false).ok()??;
        if self.ctx.banned(pkey, &head, entry.header.born_ms) {
            return None;
        }
        let want = self.marker.part(i);
        let len = want.end - want.start;
        if !self.marker.is_part(i, &head) || entry.body_len() != len {
            return None;
        }
        if entry.inline_body().is_some() {
            return Some(Part::Entry(entry));
        }
        let (fill_id, chunks) = entry.chunks()?;
        let mut bytes = Vec::with_capacity(len as usize);
        for (index, c) in chunks.iter().enumerate() {
            let chunk = cache
                .read_chunk(pkey, fill_id, index as u32, c, &buffered)
                .await
                .ok()?;
            bytes.extend_from_slice(chunk.data());
        }
        (bytes.len() as u64 == len).then_some(Part::Bytes(bytes))
    }

    /// Fetches part `i` with a byte range, and stores it.
    async fn fetch(
        &self,
        pkey: &CacheKey,
        i: u64,
        lead: Option<crate::cache::owner::LeadTicket<'_>>,
    ) -> Result<Part, PartFailure> {
        let ctx = self.ctx;
        let range = self.marker.part(i);
        let mut forwarding = forward::forwarding(ctx, self.req, self.peer, None);
        forwarding.part = Some(range.clone());
        let head = upstream_head(self.req, Purpose::Fill, &forwarding);
        let (resp, mut origin) = forward::exchange(
            ctx,
            None,
            self.req,
            &head,
            false,
            false,
            ctx.fill_route(self.req),
        )
        .await
        .map_err(|_| PartFailure::Origin)?;
        if !self.marker.is_part(i, &resp) {
            return Err(PartFailure::Changed);
        }
        let want = (range.end - range.start) as usize;
        let mut bytes = Vec::with_capacity(want);
        let mut reader = BodyReader::new(resp.framing);
        while bytes.len() <= want {
            match reader
                .next(&mut origin, ctx.settings.origin_idle_timeout)
                .await
            {
                Ok(Some(piece)) => bytes.extend_from_slice(&piece),
                Ok(None) => break,
                Err(_) => return Err(PartFailure::Origin),
            }
        }
        if bytes.len() != want || !reader.is_done() {
            return Err(PartFailure::Origin);
        }
        ctx.stats.origin_bytes.fetch_add(want as u64, Relaxed);
        if resp.keep_alive {
            ctx.upstream.checkin(origin);
        }
        let meta = FillMeta {
            key: pkey.as_str().to_string(),
            hash: pkey.hash(),
            head: stored_head(resp, SystemTime::now()),
            born_ms: policy::to_unix_millis(self.freshness.born),
            expires_ms: policy::to_unix_millis(self.freshness.expires),
            declared_len: Some(want as u64),
            variant: None,
        };
        let fill = ctx.cache.fill(pkey, meta, lead).await;
        fill.data(&bytes).await;
        fill.finish(true).await;
        Ok(Part::Bytes(bytes))
    }
}

/// Reads a whole part another viewer is fetching.
async fn follow(
    mut reader: FillReader<'_>,
    len: usize,
    wait: std::time::Duration,
) -> Result<Part, PartFailure> {
    let mut bytes = Vec::with_capacity(len);
    while let Some(piece) = reader.next(wait).await.map_err(|_| PartFailure::Origin)? {
        bytes.extend_from_slice(piece.data());
    }
    if bytes.len() != len {
        return Err(PartFailure::Origin);
    }
    Ok(Part::Bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_cut_to_the_wanted_bytes() {
        let data = b"0123456789";
        assert_eq!(slice_of(&(10..20), &(0..100), data), b"0123456789");
        assert_eq!(slice_of(&(10..20), &(15..100), data), b"56789");
        assert_eq!(slice_of(&(10..20), &(0..13), data), b"012");
        assert_eq!(slice_of(&(10..20), &(12..14), data), b"23");
    }
}
