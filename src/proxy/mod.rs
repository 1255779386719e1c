//! The request pipeline of one shard, as async phases over the pure rules of
//! `gateway`: read a request head (with its deadline and limits), route it —
//! refuse, look up and hit, miss and fill, or pass — and keep the connection
//! for the next request when HTTP allows. Every request ends in exactly one
//! `Outcome`, which the access log and the metrics read. This module never
//! decides HTTP semantics itself: it asks `gateway`, `cache::policy` and
//! `http`, and moves the bytes.

pub mod decoded;
mod follow;
mod forward;
pub mod hit;
mod parts;
mod relay;
mod respond;
mod revalidate;
pub mod settings;
pub mod stats;

use crate::cache::bans::{BanReader, TagFields};
use crate::cache::key::CacheKey;
use crate::cache::owner::{Fetch, OwnerRouter};
use crate::cache::policy::{self, OnMiss};
use crate::cache::variants::Selecting;
use crate::gateway::decision::{CachePhase, Detail, PassReason, Refusal, RequestErrorKind};
use crate::gateway::route::{Route, route};
use crate::gateway::viewer::Generated;
use crate::http::{RequestHead, parse_request};
use crate::net::conn::Conn;
use crate::runtime::sync::StopSignal;
use crate::spare::Boxed;
use crate::upstream::{UpstreamClient, UpstreamRoute};
use forward::Forward;
use settings::ProxySettings;
use stats::ViewerStats;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// What a shard keeps for its whole life, whatever configuration is in
/// force: its store, its counters, its stop signals. Shard-local: no locks.
pub struct ShardState {
    pub shard: u32,
    /// The invalidations in force (`cache::bans`), as this shard last saw them.
    pub bans: std::cell::RefCell<BanReader>,
    pub cache: OwnerRouter,
    pub stats: ViewerStats,
    /// Set when the shard starts stopping: idle connections close, busy ones
    /// finish their request and close.
    pub stop: StopSignal,
    /// Set when the drain deadline passes: requests still unanswered get a
    /// 503 (or are cut where their response stands), and are logged.
    pub deadline: StopSignal,
    /// The last request id this shard gave out (see `next_request_id`).
    pub request_ids: std::cell::Cell<u64>,
    /// None when `log.access_log` is off.
    pub access_log: Option<crate::access_log::ShardLog>,
    /// Stored heads this shard has decoded, kept for later hits.
    pub decoded: decoded::DecodedHeads,
}

/// Everything a shard's request handlers share: the shard's lasting state
/// (through `Deref`) and what one configuration generation made of it.
/// A request takes the generation in force when its head is read and keeps
/// it to its end, so a reload applies to new requests while the ones in
/// flight finish on the configuration they began with.
pub struct ShardCtx {
    pub state: Rc<ShardState>,
    /// The configuration generation this context was built from (1 at start).
    pub generation: u64,
    /// The response fields that tag objects for invalidation.
    pub tags: TagFields,
    pub settings: ProxySettings,
    pub upstream: UpstreamClient,
    /// The HTTPS listener's certificates (None without `tls.addr`).
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl std::ops::Deref for ShardCtx {
    type Target = ShardState;

    fn deref(&self) -> &ShardState {
        &self.state
    }
}

/// The generation a shard serves new requests with; swapped on reload.
pub struct Current(std::cell::RefCell<Rc<ShardCtx>>);

impl Current {
    pub fn new(ctx: Rc<ShardCtx>) -> Current {
        Current(std::cell::RefCell::new(ctx))
    }

    /// The context new requests use now.
    pub fn get(&self) -> Rc<ShardCtx> {
        self.0.borrow().clone()
    }

    /// Puts a new generation in force; requests holding the old one keep it.
    pub fn replace(&self, ctx: Rc<ShardCtx>) {
        *self.0.borrow_mut() = ctx;
    }
}

/// What became of one request.
pub struct Outcome {
    pub status: u16,
    pub phase: CachePhase,
    /// Body bytes sent to the viewer.
    pub bytes: u64,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
    pub detail: Option<Detail>,
}

/// What the connection holds next.
enum NextRequest {
    /// A request head, and when its first byte was in (the request's
    /// latency counts from there).
    Head(RequestHead, Instant),
    /// The viewer closed or idled out, or the shard is stopping.
    Gone,
    /// The head was malformed or too slow: it was answered and the
    /// connection must close.
    Refused,
}

/// Serves one viewer connection until it closes, errs, idles out, or the
/// shard stops.
pub async fn serve_conn(current: Rc<Current>, conn: &mut Conn, peer: SocketAddr) {
    let mut first = true;
    loop {
        let (head, started) = match next_request(&current.get(), conn, peer, first).await {
            NextRequest::Head(head, started) => (head, started),
            NextRequest::Gone => return,
            NextRequest::Refused => {
                conn.shutdown().await;
                return;
            }
        };
        // The generation in force once the head is in: a reload while the
        // connection idled applies to this request.
        let ctx = current.get();
        first = false;
        ctx.stats.requests.fetch_add(1, Relaxed);
        // Boxed: the request's (large) state lives only while it is handled,
        // so a connection idle between requests holds little memory; in a
        // block the shard reuses, so handling it allocates nothing.
        let written = conn.written();
        conn.mark_first_write();
        let handled = async { Some(Boxed::with(|| handle_request(&ctx, conn, &head, peer)).await) };
        let deadline = async {
            ctx.deadline.stopped().await;
            None
        };
        let outcome = match futures_lite::future::or(handled, deadline).await {
            Some(outcome) => outcome,
            None => {
                let sent = conn_sent(conn, written);
                // Boxed: rare, and out of the connection's task for its life.
                Boxed::with(|| cut_at_deadline(&ctx, conn, &head, sent)).await
            }
        };
        ctx.stats.bytes_sent.fetch_add(outcome.bytes, Relaxed);
        record_latency(&ctx, &head, &outcome, started, conn.first_write());
        log_access(&ctx, peer, Some(&head), &outcome, started);
        if !outcome.keep_alive || !head.keep_alive || ctx.stop.is_set() {
            conn.shutdown().await;
            return;
        }
    }
}

/// Bytes written to `conn` since it had written `mark`.
fn conn_sent(conn: &Conn, mark: u64) -> u64 {
    conn.written().saturating_sub(mark)
}

/// The node is stopping and its drain deadline passed with this request
/// unanswered: a 503 if nothing of a response went out yet, else the
/// connection is closed where the response stands. Either way it is
/// counted and logged.
async fn cut_at_deadline(ctx: &ShardCtx, conn: &mut Conn, req: &RequestHead, sent: u64) -> Outcome {
    if sent == 0 {
        return refuse(ctx, conn, req, Refusal::DrainDeadline).await;
    }
    Outcome {
        // 0: a response was under way; what went out is in `bytes`.
        status: 0,
        phase: CachePhase::Refused,
        bytes: sent,
        keep_alive: false,
        detail: Some(Detail::Refused(Refusal::DrainDeadline)),
    }
}

/// Waits for the next request head: for its first byte up to the idle
/// timeout, then for the rest up to the header timeout. When the shard
/// stops, a persistent connection idle between requests closes at once
/// (its client may retry, RFC 9112 §9.3.1); a connection accepted before
/// the stop still gets its first request answered, up to the drain
/// deadline, since its client has no answer to retry from.
async fn next_request(
    ctx: &ShardCtx,
    conn: &mut Conn,
    peer: SocketAddr,
    first: bool,
) -> NextRequest {
    let s = &ctx.settings;
    if conn.buffered().is_empty() {
        let first_bytes = conn.read_idle(s.idle_timeout, "idle timeout");
        let stop = async {
            if first {
                ctx.deadline.stopped().await;
            } else {
                ctx.stop.stopped().await;
            }
            Ok(0)
        };
        match futures_lite::future::or(first_bytes, stop).await {
            Ok(0) | Err(_) => return NextRequest::Gone,
            Ok(_) => {}
        }
    }
    let started = Instant::now();
    let deadline = started + s.header_timeout;
    loop {
        match parse_request(conn.buffered(), &s.limits) {
            Ok(Some((mut head, n))) => {
                conn.consume(n);
                // A field named with `_` is never forwarded: dropped, or
                // the request refused, as configured.
                if underscore_fields(&mut head, s.underscore_headers) {
                    ctx.stats.requests.fetch_add(1, Relaxed);
                    let refusal = Refusal::BadHead(RequestErrorKind::BadRequest);
                    let msg = "a header field name holds an underscore";
                    Boxed::with(|| refuse_unparsed(ctx, conn, peer, refusal, msg, started)).await;
                    return NextRequest::Refused;
                }
                return NextRequest::Head(head, started);
            }
            Ok(None) => match conn.read_more_until(deadline, "request head timeout").await {
                Ok(0) => return NextRequest::Gone,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    ctx.stats.header_timeouts.fetch_add(1, Relaxed);
                    let msg = "the request head did not arrive in time";
                    let refusal = Refusal::HeaderTimeout;
                    Boxed::with(|| refuse_unparsed(ctx, conn, peer, refusal, msg, started)).await;
                    return NextRequest::Refused;
                }
                Err(_) => return NextRequest::Gone,
            },
            Err(e) => {
                ctx.stats.requests.fetch_add(1, Relaxed);
                let refusal = Refusal::BadHead(RequestErrorKind::from(&e));
                Boxed::with(|| refuse_unparsed(ctx, conn, peer, refusal, e.reason(), started))
                    .await;
                return NextRequest::Refused;
            }
        }
    }
}

/// Drops the fields whose names hold `_`; true when the setting refuses
/// such a request instead (and there is one).
fn underscore_fields(head: &mut RequestHead, rule: crate::config::UnderscoreHeaders) -> bool {
    let names: Vec<String> = head
        .headers
        .iter()
        .filter(|(name, _)| name.contains('_'))
        .map(|(name, _)| name.to_string())
        .collect();
    if names.is_empty() {
        return false;
    }
    if rule == crate::config::UnderscoreHeaders::Refuse {
        return true;
    }
    for name in names {
        head.headers.remove(&name);
    }
    false
}

/// Answers a head that never parsed; the connection closes after it.
/// Awaited boxed: rare, and kept out of every connection's task.
async fn refuse_unparsed(
    ctx: &ShardCtx,
    conn: &mut Conn,
    peer: SocketAddr,
    refusal: Refusal,
    message: &str,
    started: Instant,
) {
    let generated = Generated {
        allow: None,
        id: None,
        status: refusal.status(),
        message,
        keep_alive: false,
        phase: CachePhase::Refused,
        // The viewer learns why from the status and the body; the detail
        // token is for the access log.
        detail: None,
    };
    let bytes = respond::send_generated(ctx, conn, None, &generated)
        .await
        .unwrap_or(0);
    let outcome = Outcome {
        status: refusal.status(),
        phase: CachePhase::Refused,
        bytes,
        keep_alive: false,
        detail: Some(Detail::Refused(refusal)),
    };
    ctx.stats
        .latency
        .record(stats::LatencyClass::Refused, started.elapsed(), None);
    log_access(ctx, peer, None, &outcome, started);
}

/// The request's time in its latency class, and a miss's URL among the
/// top misses.
fn record_latency(
    ctx: &ShardCtx,
    head: &RequestHead,
    outcome: &Outcome,
    started: Instant,
    first_write: Option<Instant>,
) {
    let class = stats::LatencyClass::of(outcome.phase);
    let first_byte = first_write.map(|t| t.saturating_duration_since(started));
    ctx.stats
        .latency
        .record(class, started.elapsed(), first_byte);
    if class == stats::LatencyClass::Miss
        && let Ok(mut top) = ctx.stats.top_misses.lock()
    {
        let host = head.authority.as_deref().unwrap_or("-");
        top.record(host, head.target.as_str());
    }
}

/// One access-log line per request (target `access`), from its `Outcome`.
fn log_access(
    ctx: &ShardCtx,
    peer: SocketAddr,
    head: Option<&RequestHead>,
    outcome: &Outcome,
    started: Instant,
) {
    let Some(log) = &ctx.access_log else {
        return;
    };
    log.record(&crate::access_log::Line {
        at: std::time::SystemTime::now(),
        shard: ctx.shard,
        peer,
        method: head.map_or("-", |h| h.method.as_str()),
        host: head.and_then(|h| h.authority.as_deref()).unwrap_or("-"),
        target: head.map_or("-", |h| h.target.as_str()),
        received: head
            .and_then(|h| h.received_target.as_deref())
            .unwrap_or("-"),
        status: outcome.status,
        phase: outcome.phase.as_str(),
        detail: outcome.detail.map_or("-", Detail::token),
        bytes: outcome.bytes,
        micros: started.elapsed().as_micros() as u64,
    });
}

/// The paths other than a hit's (forwarding, filling, following a fill)
/// are awaited boxed: their state is large, and out of this future a hit
/// neither allocates nor moves it (this future is boxed per request).
async fn handle_request(
    ctx: &Rc<ShardCtx>,
    conn: &mut Conn,
    req: &RequestHead,
    peer: SocketAddr,
) -> Outcome {
    match route(req, &ctx.settings.hosts, ctx.behavior(req)) {
        Route::Refuse(refusal) => refuse(ctx, conn, req, refusal).await,
        Route::Pass(reason) => pass(ctx, conn, req, peer, reason).await,
        Route::LookupElsePass(reason) => {
            let mut selecting = Selecting::new(cache_key(ctx, req));
            if let hit::Found::Served(outcome) =
                hit::lookup(ctx, conn, req, peer, &mut selecting).await
            {
                return outcome;
            }
            // Nothing the cache may answer with: the request goes as sent.
            pass(ctx, conn, req, peer, reason).await
        }
        Route::Lookup => lookup_or_fetch(ctx, conn, req, peer).await,
    }
}

/// Forwards a request as sent, counted as a pass.
async fn pass(
    ctx: &Rc<ShardCtx>,
    conn: &mut Conn,
    req: &RequestHead,
    peer: SocketAddr,
    reason: PassReason,
) -> Outcome {
    ctx.stats.passes.fetch_add(1, Relaxed);
    Boxed::with(|| forward::forward(ctx, conn, req, peer, Forward::Pass(reason))).await
}

/// Lookups one request makes before it fetches on its own.
const MAX_LOOKS: u32 = 3;

/// A cacheable request: a hit, or a miss (or a stored copy that must be
/// validated) that leads a fetch, follows one under way, or fetches alone
/// (see `cache::store::inflight`).
async fn lookup_or_fetch(
    ctx: &Rc<ShardCtx>,
    conn: &mut Conn,
    req: &RequestHead,
    peer: SocketAddr,
) -> Outcome {
    let mut selecting = Selecting::new(cache_key(ctx, req));
    let mut counted = false;
    // A miss looks again when its leader failed, refreshed the stored copy,
    // or a copy landed meanwhile (the usual end of a wait: the object is
    // then a hit), a bounded number of times; then it fetches on its own.
    let mut looks = 0;
    loop {
        looks += 1;
        let (phase, seen, stale) = match hit::lookup(ctx, conn, req, peer, &mut selecting).await {
            hit::Found::Served(outcome) => return outcome,
            hit::Found::OnlyIfCached => return refuse(ctx, conn, req, Refusal::OnlyIfCached).await,
            hit::Found::Nothing(_) if policy::on_miss(&req.headers) == OnMiss::GatewayTimeout => {
                return refuse(ctx, conn, req, Refusal::OnlyIfCached).await;
            }
            hit::Found::Nothing(missing) => (missing.phase, missing.seen, None),
            hit::Found::Stale(copy) => (hit::FillPhase::Stale, Some(copy.hit.seen), Some(copy)),
        };
        if !counted {
            counted = true;
            let counter = match phase {
                hit::FillPhase::Miss | hit::FillPhase::VaryMiss => &ctx.stats.misses,
                hit::FillPhase::Stale => &ctx.stats.stale,
            };
            counter.fetch_add(1, Relaxed);
            if phase == hit::FillPhase::VaryMiss {
                ctx.stats.vary_misses.fetch_add(1, Relaxed);
            }
        }
        let lead = match ctx
            .cache
            .begin_fetch(selecting.key(), seen, ctx.settings.lead_wait)
            .await
        {
            Fetch::Lead(ticket) => Some(ticket),
            // Another variant of the URL is being fetched: this request's
            // own is looked up, and coalesced on, next.
            Fetch::Follow(reader) if !selecting.accepts(reader.info(), &req.headers) => {
                match looks < MAX_LOOKS {
                    true => continue,
                    false => None,
                }
            }
            Fetch::Follow(reader) => {
                match Box::pin(follow::follow(ctx, conn, req, reader, phase)).await {
                    Some(outcome) => {
                        ctx.stats.collapsed.fetch_add(1, Relaxed);
                        return outcome;
                    }
                    // A range the fill did not reach in time is asked of the
                    // origin as sent, rather than fetching the object twice.
                    None if req.headers.contains("range") => {
                        let pass = Forward::Pass(PassReason::Range);
                        return Box::pin(forward::forward(ctx, conn, req, peer, pass)).await;
                    }
                    None => None,
                }
            }
            Fetch::Retry | Fetch::Stored if looks < MAX_LOOKS => continue,
            Fetch::Alone => {
                ctx.stats.hit_for_pass.fetch_add(1, Relaxed);
                // Nothing will be stored: the origin answers a range itself.
                if req.headers.contains("range") {
                    let pass = Forward::Pass(PassReason::Range);
                    return Box::pin(forward::forward(ctx, conn, req, peer, pass)).await;
                }
                None
            }
            Fetch::Retry | Fetch::Stored | Fetch::TimedOut | Fetch::Busy => None,
        };
        let fill = Forward::Fill {
            selecting,
            phase,
            lead,
            stale,
        };
        return Boxed::with(|| forward::forward(ctx, conn, req, peer, fill)).await;
    }
}

impl ShardCtx {
    /// A request id for a generated answer and its log line: the shard in
    /// the top byte, a per-shard count below, the process's start mixed in
    /// so ids from one run do not repeat in the next.
    pub(crate) fn next_request_id(&self) -> u64 {
        let n = self.request_ids.get().wrapping_add(1);
        self.request_ids.set(n);
        (u64::from(self.shard) << 56) | (n & ((1 << 56) - 1))
    }

    /// The behaviour that governs a request.
    pub(crate) fn behavior(&self, req: &RequestHead) -> &crate::gateway::behavior::Behavior {
        self.settings.behaviors.select(req.path())
    }

    /// Whether a response to this request may come from a cache (a parent's
    /// included): a GET or HEAD without a body, under a behaviour that is
    /// not dynamic.
    pub(crate) fn cacheable(&self, req: &RequestHead) -> bool {
        req.method.is_cacheable_method() && req.framing.is_empty() && !self.behavior(req).dynamic()
    }

    /// The origin group of a request's behaviour.
    fn group(&self, req: &RequestHead) -> usize {
        let name = self.behavior(req).origin_group();
        self.upstream
            .map()
            .group(name)
            .unwrap_or(self.settings.default_group)
    }

    /// Whether an invalidation covers the entry stored under `key` with
    /// this head, born (age zero) at `born_ms`.
    pub(crate) fn banned(
        &self,
        key: &CacheKey,
        head: &crate::http::ResponseHead,
        born_ms: u64,
    ) -> bool {
        let mut bans = self.bans.borrow_mut();
        bans.current()
            .bans(key.as_str(), || self.tags.of_response(head), born_ms)
    }

    /// Where a cacheable request's fill goes: through the parent that
    /// holds its key (if this node has parents), else its origin group.
    pub(crate) fn fill_route(&self, req: &RequestHead) -> UpstreamRoute {
        UpstreamRoute {
            fill_key: Some(cache_key(self, req).hash()),
            group: self.group(req),
        }
    }

    /// Where a request that is not filled goes: a safe request without a
    /// body may still be answered by a parent's cache; anything else
    /// (unsafe methods, bodies) goes straight to the origin group.
    pub(crate) fn pass_route(&self, req: &RequestHead) -> UpstreamRoute {
        let via_parent = self.cacheable(req);
        UpstreamRoute {
            fill_key: via_parent.then(|| cache_key(self, req).hash()),
            group: self.group(req),
        }
    }
}

fn cache_key(ctx: &ShardCtx, req: &RequestHead) -> CacheKey {
    let s = &ctx.settings;
    let authority = req.authority.as_deref().unwrap_or(&s.origin_authority);
    ctx.behavior(req).cache_key("http", authority, req)
}

/// Answers a routed request that is refused. Its body was not read, so the
/// connection can carry another request only if there was none.
async fn refuse(ctx: &ShardCtx, conn: &mut Conn, req: &RequestHead, refusal: Refusal) -> Outcome {
    let keep_alive =
        req.keep_alive && !Route::leaves_body_unread(req) && refusal != Refusal::DrainDeadline;
    let message = match refusal {
        Refusal::UnknownHost { .. } => "this server does not serve the requested host",
        Refusal::MethodNotAllowed => "this method is not allowed for this path",
        Refusal::Method => match req.method {
            crate::http::Method::Connect => "CONNECT is not supported",
            _ => "TRACE is not supported",
        },
        Refusal::OptionsAsterisk => "OPTIONS * is not supported",
        Refusal::OnlyIfCached => "only-if-cached, and nothing usable is stored",
        Refusal::HeaderTimeout | Refusal::BadHead(_) => "the request cannot be served",
        Refusal::DrainDeadline => "the server is restarting; try again",
    };
    let detail = Some(Detail::Refused(refusal));
    let generated = Generated {
        allow: (refusal == Refusal::MethodNotAllowed).then(|| ctx.behavior(req).allow_header()),
        id: None,
        status: refusal.status(),
        message,
        keep_alive,
        phase: CachePhase::Refused,
        detail,
    };
    let bytes = respond::send_generated(ctx, conn, Some(req), &generated)
        .await
        .unwrap_or(0);
    Outcome {
        status: refusal.status(),
        phase: CachePhase::Refused,
        bytes,
        keep_alive,
        detail,
    }
}
