//! The request pipeline of one shard: read a request head (with its
//! deadlines and limits), route it — refuse, look up, hit, miss with fill, or
//! pass — and keep the connection for the next request when HTTP allows.
//! Every request ends in exactly one access-log line and one phase.

mod forward;
mod hit;
pub mod phase;
pub mod respond;

use crate::admin::metrics::ShardMetrics;
use crate::cache::key::{CacheKey, KeyPolicy};
use crate::cache::owner::OwnerRouter;
use crate::cache::policy::PolicyConfig;
use crate::http::{BodyFraming, Limits, Method, RequestHead, parse_request};
use crate::net::conn::Conn;
use crate::runtime::sync::StopSignal;
use crate::upstream::OriginPool;
use phase::CachePhase;
use respond::Generated;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Everything a shard's request handlers share. Shard-local: no locks.
pub struct ShardCtx {
    pub shard: u32,
    /// Name of this node in Via and Cache-Status.
    pub node: String,
    pub limits: Limits,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub io_timeout: Duration,
    pub origin_idle_timeout: Duration,
    /// Host names served; empty means any.
    pub hosts: Vec<String>,
    pub unknown_host_status: u16,
    /// Host header for the origin when the viewer gave none, or always when
    /// configured.
    pub origin_authority: String,
    pub host_header: Option<String>,
    pub key_policy: KeyPolicy,
    pub policy: PolicyConfig,
    pub cache: OwnerRouter,
    pub pool: OriginPool,
    pub metrics: ShardMetrics,
    pub access_log: bool,
    pub max_connections: usize,
    /// Set when the shard starts stopping: idle connections close, busy ones
    /// finish their request and close.
    pub stop: StopSignal,
}

/// What became of one request.
pub struct Outcome {
    pub status: u16,
    pub phase: CachePhase,
    pub bytes: u64,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
    pub detail: Option<&'static str>,
}

impl ShardCtx {
    /// Does this node serve `authority` ("host" or "host:port")?
    fn serves(&self, authority: Option<&str>) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        let Some(a) = authority else { return false };
        let host_only = match a.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
            _ => a,
        };
        self.hosts.iter().any(|h| h == a || h == host_only)
    }
}

/// Serves one viewer connection until it closes, errs, idles out, or the
/// shard stops.
pub async fn serve_conn(ctx: Rc<ShardCtx>, mut conn: Conn, peer: SocketAddr) {
    loop {
        if conn.buffered().is_empty() {
            let idle = conn.fill(ctx.idle_timeout, "idle timeout");
            let stop = async {
                ctx.stop.stopped().await;
                Ok(0)
            };
            match futures_lite::future::or(idle, stop).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let deadline = Instant::now() + ctx.header_timeout;
        let head = loop {
            match parse_request(conn.buffered(), &ctx.limits) {
                Ok(Some((head, n))) => {
                    conn.consume(n);
                    break head;
                }
                Ok(None) => match conn.fill_until(deadline, "request head timeout").await {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) => {
                        if e.kind() == std::io::ErrorKind::TimedOut {
                            ctx.metrics.viewer.header_timeouts.fetch_add(1, Relaxed);
                            let msg = "the request head did not arrive in time";
                            let _ = respond::send_simple(
                                &ctx,
                                &mut conn,
                                None,
                                Generated {
                                    status: 408,
                                    message: msg,
                                    keep_alive: false,
                                    phase: CachePhase::Start,
                                    detail: None,
                                },
                            )
                            .await;
                            log_refusal(&ctx, peer, 408, "header-timeout");
                        }
                        return;
                    }
                },
                Err(e) => {
                    ctx.metrics.viewer.requests.fetch_add(1, Relaxed);
                    let _ = respond::send_simple(
                        &ctx,
                        &mut conn,
                        None,
                        Generated {
                            status: e.status(),
                            message: e.reason(),
                            keep_alive: false,
                            phase: CachePhase::Start,
                            detail: None,
                        },
                    )
                    .await;
                    log_refusal(&ctx, peer, e.status(), e.reason());
                    conn.shutdown().await;
                    return;
                }
            }
        };
        ctx.metrics.viewer.requests.fetch_add(1, Relaxed);
        let started = Instant::now();
        let outcome = handle_request(&ctx, &mut conn, &head, peer).await;
        ctx.metrics
            .viewer
            .bytes_sent
            .fetch_add(outcome.bytes, Relaxed);
        if ctx.access_log {
            tracing::info!(
                target: "access",
                shard = ctx.shard,
                peer = %peer,
                method = head.method.as_str(),
                host = head.authority.as_deref().unwrap_or("-"),
                target = %head.target,
                status = outcome.status,
                phase = outcome.phase.as_str(),
                detail = outcome.detail.unwrap_or("-"),
                bytes = outcome.bytes,
                micros = started.elapsed().as_micros() as u64,
            );
        }
        if !outcome.keep_alive || !head.keep_alive || ctx.stop.is_set() {
            conn.shutdown().await;
            return;
        }
    }
}

fn log_refusal(ctx: &ShardCtx, peer: SocketAddr, status: u16, why: &str) {
    if ctx.access_log {
        tracing::info!(target: "access", shard = ctx.shard, peer = %peer, status, phase = "refused", detail = why);
    }
}

async fn handle_request(
    ctx: &ShardCtx,
    conn: &mut Conn,
    req: &RequestHead,
    peer: SocketAddr,
) -> Outcome {
    // A refused request's body was not read, so the connection cannot carry
    // another request unless there was no body.
    let refuse = async |conn: &mut Conn, status: u16, msg: &str, detail: &'static str| {
        let keep = req.keep_alive
            && matches!(
                req.framing,
                BodyFraming::None | BodyFraming::ContentLength(0)
            );
        let bytes = respond::send_simple(
            ctx,
            conn,
            Some(req),
            Generated {
                status,
                message: msg,
                keep_alive: keep,
                phase: CachePhase::Start,
                detail: Some(detail),
            },
        )
        .await
        .unwrap_or(0);
        Outcome {
            status,
            phase: CachePhase::Start,
            bytes,
            keep_alive: keep,
            detail: Some(detail),
        }
    };
    if !ctx.serves(req.authority.as_deref()) {
        let msg = "this server does not serve the requested host";
        return refuse(conn, ctx.unknown_host_status, msg, "unknown-host").await;
    }
    match req.method {
        Method::Connect => return refuse(conn, 405, "CONNECT is not supported", "method").await,
        Method::Trace => return refuse(conn, 405, "TRACE is not supported", "method").await,
        Method::Options if req.target == "*" => {
            return refuse(conn, 501, "OPTIONS * is not supported", "method").await;
        }
        _ => {}
    }
    if !req.method.is_cacheable_method() {
        ctx.metrics.viewer.passes.fetch_add(1, Relaxed);
        return forward::forward(
            ctx,
            conn,
            req,
            peer,
            forward::Mode::Pass(CachePhase::PassMethod, None),
        )
        .await;
    }
    let has_body = !matches!(
        req.framing,
        BodyFraming::None | BodyFraming::ContentLength(0)
    );
    let pass_why = if has_body {
        Some("request-body")
    } else if req.headers.contains("range") {
        Some("range")
    } else {
        None
    };
    let authority = req
        .authority
        .clone()
        .unwrap_or_else(|| ctx.origin_authority.clone());
    let key = CacheKey::new("http", &authority, &req.target, &ctx.key_policy);
    if let Some(why) = pass_why {
        // A range can still be answered from a complete stored object.
        if why == "range"
            && let Some(outcome) = hit::try_hit(ctx, conn, req, &key).await
        {
            return outcome;
        }
        ctx.metrics.viewer.passes.fetch_add(1, Relaxed);
        return forward::forward(
            ctx,
            conn,
            req,
            peer,
            forward::Mode::Pass(CachePhase::PassRequest, Some(why)),
        )
        .await;
    }
    match hit::lookup(ctx, conn, req, &key).await {
        hit::LookupOutcome::Served(o) => o,
        hit::LookupOutcome::Forward(phase) => {
            if phase == CachePhase::Stale {
                ctx.metrics.viewer.stale.fetch_add(1, Relaxed);
            } else {
                ctx.metrics.viewer.misses.fetch_add(1, Relaxed);
            }
            forward::forward(ctx, conn, req, peer, forward::Mode::Fill(key, phase)).await
        }
    }
}
