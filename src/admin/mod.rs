//! The admin listener (loopback by default): `GET /metrics` in the
//! Prometheus text format and `GET /healthz`. It runs on shard 0 and only
//! reads counters; it must never be reachable from viewers by default.

pub mod metrics;

use crate::http::{Limits, Method, ResponseHead, parse_request};
use crate::net::conn::Conn;
use crate::net::listener::Listener;
use crate::runtime::task;
use metrics::ShardMetrics;
use std::rc::Rc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(listener: Listener, shards: Rc<Vec<ShardMetrics>>) {
    loop {
        let mut conn = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                crate::warn_limited!("admin accept failed: {e}");
                task::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shards = shards.clone();
        task::spawn_detached(async move {
            let _ = answer(&mut conn, &shards).await;
            conn.shutdown().await;
        });
    }
}

async fn answer(conn: &mut Conn, shards: &[ShardMetrics]) -> std::io::Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    let req = loop {
        match parse_request(conn.buffered(), &Limits::default()) {
            Ok(Some((req, _))) => break Some(req),
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
    let (status, ctype, body) = match &req {
        None => (400, "text/plain", "bad request\n".to_string()),
        Some(r) if r.method != Method::Get && r.method != Method::Head => {
            (405, "text/plain", "only GET is supported\n".to_string())
        }
        Some(r) => match r.path() {
            "/metrics" => (200, "text/plain; version=0.0.4", metrics::render(shards)),
            "/healthz" => (200, "text/plain", "ok\n".to_string()),
            _ => (
                404,
                "text/plain",
                "not found: try /metrics or /healthz\n".to_string(),
            ),
        },
    };
    let mut head = ResponseHead::new(status);
    head.headers.set("Content-Type", ctype);
    head.headers.set("Content-Length", body.len().to_string());
    head.headers.set("Cache-Control", "no-store");
    head.headers.set("Connection", "close");
    if status == 405 {
        // RFC 9110 15.5.6: a 405 names the methods the resource allows.
        head.headers.set("Allow", "GET, HEAD");
    }
    let mut out = Vec::with_capacity(body.len() + 256);
    head.encode(&mut out);
    if req.as_ref().is_none_or(|r| r.method != Method::Head) {
        out.extend_from_slice(body.as_bytes());
    }
    conn.write_all(&out, TIMEOUT).await
}
