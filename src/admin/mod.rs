//! The admin listener (loopback by default): `GET /metrics` in the
//! Prometheus text format, `GET /healthz`, and the invalidation API
//! (`POST /invalidations`, `GET /invalidations/ID`, bearer token required).
//! It runs on shard 0, reads counters, and hands invalidations to their own
//! thread (`invalidations`); it must never be reachable from viewers by
//! default.

pub mod cli;
pub mod invalidations;
pub mod metrics;
pub mod stats;
pub mod top;

use crate::cache::bans::InvalidationRequest;
use crate::http::{BodyFraming, Limits, Method, RequestHead, ResponseHead, parse_request};
use crate::net::conn::Conn;
use crate::net::listener::Listener;
use crate::runtime::task;
use invalidations::{Authorised, Invalidations};
use metrics::ShardMetrics;
use std::rc::Rc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body the admin API reads (an invalidation's JSON).
const MAX_BODY: u64 = 4 << 20;

/// What the admin listener serves.
pub struct Admin {
    pub shards: Vec<ShardMetrics>,
    pub invalidations: Option<Invalidations>,
}

pub async fn serve(listener: Listener, admin: Rc<Admin>) {
    loop {
        let mut conn = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                crate::warn_limited!("admin accept failed: {e}");
                task::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        task::spawn_detached(async move {
            let _ = answer(&mut conn, &admin).await;
            conn.shutdown().await;
        });
    }
}

/// One answer: status, content type, body, and extra fields.
struct Reply {
    status: u16,
    ctype: &'static str,
    body: String,
    extra: Vec<(&'static str, &'static str)>,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            ctype: "text/plain; charset=utf-8",
            body: body.into(),
            extra: Vec::new(),
        }
    }

    fn json(status: u16, body: String) -> Reply {
        Reply {
            status,
            ctype: "application/json",
            body,
            extra: Vec::new(),
        }
    }
}

async fn answer(conn: &mut Conn, admin: &Admin) -> std::io::Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    let req = loop {
        match parse_request(conn.buffered(), &Limits::default()) {
            Ok(Some((req, n))) => {
                conn.consume(n);
                break Some(req);
            }
            Ok(None) => {
                if conn
                    .read_more_until(deadline, "admin request timeout")
                    .await?
                    == 0
                {
                    return Ok(());
                }
            }
            Err(_) => break None,
        }
    };
    let reply = match &req {
        None => Reply::text(400, "bad request\n"),
        Some(r) => route(conn, r, admin, deadline).await,
    };
    let mut head = ResponseHead::new(reply.status);
    head.headers.set("Content-Type", reply.ctype);
    head.headers
        .set("Content-Length", reply.body.len().to_string());
    head.headers.set("Cache-Control", "no-store");
    head.headers.set("Connection", "close");
    for (name, value) in &reply.extra {
        head.headers.set(name, *value);
    }
    let mut out = Vec::with_capacity(reply.body.len() + 256);
    head.encode(&mut out);
    if req.as_ref().is_none_or(|r| r.method != Method::Head) {
        out.extend_from_slice(reply.body.as_bytes());
    }
    conn.write_all(&out, TIMEOUT).await
}

/// URLs `/stats/misses` lists.
const TOP_MISSES_SHOWN: usize = 20;

async fn route(conn: &mut Conn, r: &RequestHead, admin: &Admin, deadline: Instant) -> Reply {
    let path = r.path();
    if path == "/invalidations" || path.starts_with("/invalidations/") {
        return invalidation(conn, r, admin, deadline).await;
    }
    if r.method != Method::Get && r.method != Method::Head {
        let mut reply = Reply::text(405, "only GET is supported here\n");
        // RFC 9110 15.5.6: a 405 names the methods the resource allows.
        reply.extra.push(("Allow", "GET, HEAD"));
        return reply;
    }
    match path {
        "/metrics" => Reply {
            ctype: "text/plain; version=0.0.4",
            ..Reply::text(200, metrics::render(&admin.shards))
        },
        "/healthz" => Reply::text(200, "ok\n"),
        "/stats/misses" => Reply {
            ctype: "application/json",
            ..Reply::text(200, metrics::top_misses(&admin.shards, TOP_MISSES_SHOWN))
        },
        _ => Reply::text(
            404,
            "not found: try /metrics, /healthz, /stats/misses or /invalidations\n",
        ),
    }
}

async fn invalidation(conn: &mut Conn, r: &RequestHead, admin: &Admin, deadline: Instant) -> Reply {
    let Some(inv) = &admin.invalidations else {
        return Reply::text(503, "invalidations are not available on this node\n");
    };
    match inv.authorised(r.headers.get_str("authorization")) {
        Authorised::Yes => {}
        Authorised::No => {
            let mut reply =
                Reply::text(401, "a valid \"Authorization: Bearer TOKEN\" is required\n");
            reply
                .extra
                .push(("WWW-Authenticate", "Bearer realm=\"edgeslab-admin\""));
            return reply;
        }
        Authorised::NoTokenConfigured => {
            return Reply::text(
                403,
                "invalidations are off: set admin.token (or --admin-token) to enable them\n",
            );
        }
    }
    let path = r.path();
    match (&r.method, path.strip_prefix("/invalidations/")) {
        (Method::Post, None) => {
            let body = match read_body(conn, r, deadline).await {
                Ok(b) => b,
                Err(reply) => return reply,
            };
            let request = match InvalidationRequest::parse(&body) {
                Ok(req) => req,
                Err(e) => return Reply::text(400, format!("{e}\n")),
            };
            match inv.submit(request).await {
                Ok(accepted) => {
                    Reply::json(202, serde_json::to_string(&accepted).unwrap_or_default())
                }
                Err(e) => {
                    tracing::error!("invalidation failed: {e}");
                    Reply::text(
                        500,
                        "the invalidation could not be journaled; see the log\n",
                    )
                }
            }
        }
        (Method::Get | Method::Head, Some(id)) => match inv
            .report(id, r.query() == Some("scope=own"))
        {
            Some(report) => Reply::json(200, serde_json::to_string(&report).unwrap_or_default()),
            None => Reply::text(404, "no invalidation with this id\n"),
        },
        (_, None) => {
            let mut reply = Reply::text(405, "POST a JSON body to /invalidations\n");
            reply.extra.push(("Allow", "POST"));
            reply
        }
        (_, Some(_)) => {
            let mut reply = Reply::text(405, "GET /invalidations/ID\n");
            reply.extra.push(("Allow", "GET, HEAD"));
            reply
        }
    }
}

/// Reads a Content-Length body of at most `MAX_BODY` bytes.
async fn read_body(conn: &mut Conn, r: &RequestHead, deadline: Instant) -> Result<Vec<u8>, Reply> {
    let len = match r.framing {
        BodyFraming::ContentLength(n) if n <= MAX_BODY => n as usize,
        BodyFraming::ContentLength(_) => return Err(Reply::text(413, "body too large\n")),
        BodyFraming::None => 0,
        _ => return Err(Reply::text(411, "send the body with a Content-Length\n")),
    };
    while conn.buffered().len() < len {
        match conn.read_more_until(deadline, "admin body timeout").await {
            Ok(n) if n > 0 => {}
            _ => return Err(Reply::text(400, "the body did not arrive\n")),
        }
    }
    Ok(conn.take(len))
}
