//! The life of one shard on its pinned executor, in phases: open (its store,
//! its place in the mesh, its request context), serve (accept until the stop
//! flag is raised), drain (let open requests finish, up to
//! `listen.drain_timeout`) and checkpoint (once every shard has drained, so
//! no fill from a peer is still on its way).

use super::mesh::ShardPeers;
use super::plan::ShardPlan;
use super::sync::StopSignal;
use super::{StartError, task};
use crate::admin::invalidations::Invalidations;
use crate::admin::metrics::ShardMetrics;
use crate::cache::bans::BanBoard;
use crate::cache::owner::{OwnerMsg, OwnerRouter};
use crate::cache::store::ShardStore;
use crate::cache::store::device::PreparedDevice;
use crate::config::Config;
use crate::net::listener::{BoundListener, Listener};
use crate::proxy::{ShardCtx, serve_conn};
use crate::upstream::{UpstreamClient, UpstreamMap};
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often a serving shard looks at the process-wide stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How long a drained shard waits for its peers before its checkpoint.
const PEER_DRAIN_WAIT: Duration = Duration::from_secs(5);

/// After the stop, how long the accept under way may take to complete
/// before it is cancelled.
const ACCEPT_GRACE: Duration = Duration::from_millis(200);

/// Pause after a failed accept (EMFILE and the like) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Why a shard could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] crate::cache::store::OpenError),
    #[error("cannot join the shard mesh: {0}")]
    Mesh(String),
}

/// Everything a shard needs to start, built on the main thread.
pub(super) struct ShardSeed {
    pub index: u32,
    pub shards: u32,
    pub listener: BoundListener,
    pub admin: Option<BoundListener>,
    /// Shard 0's: the admin API's handle on invalidations.
    pub invalidations: Option<Invalidations>,
    /// The invalidations in force, shared by every shard.
    pub bans: BanBoard,
    pub device: PreparedDevice,
    pub config: Arc<Config>,
    pub upstreams: Arc<UpstreamMap>,
    pub metrics: ShardMetrics,
    pub all_metrics: Arc<Vec<ShardMetrics>>,
    pub mesh: MeshBuilder<OwnerMsg, Full>,
    pub stop: Arc<AtomicBool>,
    /// Shards done draining; checkpoints start when all are.
    pub drained: Arc<AtomicUsize>,
    /// The access log's writer (None: `log.access_log` is off).
    pub access_log: Option<crate::access_log::Writer>,
    /// Bumped by each shard while its event loop turns (the watchdog's).
    pub heartbeats: super::notify::Heartbeats,
    pub ready: crossbeam_channel::Sender<Result<u32, StartError>>,
}

/// After the drain deadline, how long connections get to send their 503s
/// and log their lines.
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

pub(super) async fn run(seed: ShardSeed) {
    let index = seed.index;
    name_this_thread(&format!("edgeslab-s{index}"));
    let (ctx, receivers) = match open(&seed).await {
        Ok(opened) => opened,
        Err(source) => {
            let _ = seed.ready.send(Err(StartError::Shard { index, source }));
            return;
        }
    };
    serve_peers(&ctx, receivers);
    let listener = seed.listener.into_listener();
    if index == 0 {
        crate::upstream::health::spawn_checks(seed.upstreams.clone());
    }
    if let Some(admin) = seed.admin {
        let served = crate::admin::Admin {
            shards: seed.all_metrics.to_vec(),
            invalidations: seed.invalidations,
        };
        task::spawn_detached(crate::admin::serve(admin.into_listener(), Rc::new(served)));
    }
    spawn_heartbeat(seed.heartbeats.clone(), index as usize);
    spawn_log_flusher(&ctx);
    let _ = seed.ready.send(Ok(index));
    drop(seed.ready);

    let active = Rc::new(Cell::new(0usize));
    let stop_flag = seed.stop.clone();
    let stop_watch = async move {
        while !stop_flag.load(Ordering::Relaxed) {
            task::sleep(STOP_POLL).await;
        }
        // See `accept_loop`: the accept under way gets a moment to finish.
        task::sleep(ACCEPT_GRACE).await;
    };
    futures_lite::future::or(
        accept_loop(&ctx, &listener, &active, &seed.stop),
        stop_watch,
    )
    .await;
    ctx.stop.trigger();
    drop(listener);
    let drain_timeout = seed.config.listen.drain_timeout.get();
    tracing::info!(
        shard = index,
        open_connections = active.get(),
        drain_timeout = %humantime::format_duration(drain_timeout),
        "stopping: no new connections; draining"
    );
    wait_until(Instant::now() + drain_timeout, || active.get() == 0).await;
    if active.get() > 0 {
        tracing::warn!(
            shard = index,
            open_connections = active.get(),
            "drain deadline passed: unanswered requests get 503, responses under way are cut"
        );
        ctx.deadline.trigger();
        wait_until(Instant::now() + DEADLINE_GRACE, || active.get() == 0).await;
    }
    seed.drained.fetch_add(1, Ordering::SeqCst);
    let shards = seed.shards as usize;
    wait_until(Instant::now() + PEER_DRAIN_WAIT, || {
        seed.drained.load(Ordering::SeqCst) >= shards
    })
    .await;
    match ctx.cache.store().checkpoint().await {
        Ok(objects) => tracing::info!(shard = index, objects, "index checkpoint written"),
        Err(e) => tracing::error!(
            shard = index,
            "index checkpoint failed (the next start will scan): {e}"
        ),
    }
    if let Some(log) = &ctx.access_log {
        log.flush_if_due(true);
    }
    tracing::info!(
        shard = index,
        open_connections = active.get(),
        "shard stopped"
    );
}

/// Opens the shard's store, joins the mesh and builds its request context.
async fn open(seed: &ShardSeed) -> Result<(Rc<ShardCtx>, Receivers<OwnerMsg>), OpenError> {
    let c = &seed.config;
    let plan = ShardPlan::new(c, seed.shards, seed.upstreams.default_authority());
    let store = ShardStore::open(
        &seed.device,
        seed.index,
        &plan.store,
        seed.metrics.store.clone(),
    )
    .await?;
    let (senders, receivers) = seed
        .mesh
        .clone()
        .join()
        .await
        .map_err(|e| OpenError::Mesh(e.to_string()))?;
    let cache = OwnerRouter::new(
        store,
        Some(Rc::new(ShardPeers::new(senders))),
        seed.index,
        seed.shards,
        seed.metrics.cache.clone(),
    );
    let upstream = UpstreamClient::new(
        seed.upstreams.clone(),
        plan.origin,
        seed.metrics.upstream.clone(),
    );
    let ctx = Rc::new(ShardCtx {
        shard: seed.index,
        bans: std::cell::RefCell::new(seed.bans.reader()),
        tags: plan.tags,
        settings: plan.settings,
        cache,
        upstream,
        stats: seed.metrics.viewer.clone(),
        stop: StopSignal::new(),
        deadline: StopSignal::new(),
        // Seeded from the clock so that ids differ between runs.
        request_ids: std::cell::Cell::new(
            (crate::cache::policy::to_unix_millis(std::time::SystemTime::now()) << 20)
                & ((1 << 56) - 1),
        ),
        access_log: seed
            .access_log
            .clone()
            .map(|w| crate::access_log::ShardLog::new(w, seed.metrics.viewer.clone())),
    });
    Ok((ctx, receivers))
}

/// Answers the messages peers send to this shard as a key's owner.
fn serve_peers(ctx: &Rc<ShardCtx>, mut receivers: Receivers<OwnerMsg>) {
    for (_, stream) in receivers.streams() {
        let ctx = ctx.clone();
        task::spawn_detached(async move {
            while let Some(msg) = stream.recv().await {
                ctx.cache.handle(msg).await;
            }
        });
    }
}

/// Hands the shard's access-log lines to the writer once they are
/// `FLUSH_EVERY` old, however quiet the shard.
fn spawn_log_flusher(ctx: &Rc<ShardCtx>) {
    if ctx.access_log.is_none() {
        return;
    }
    let ctx = ctx.clone();
    task::spawn_detached(async move {
        loop {
            task::sleep(crate::access_log::FLUSH_EVERY).await;
            if let Some(log) = &ctx.access_log {
                log.flush_if_due(false);
            }
        }
    });
}

/// Bumps this shard's heartbeat for as long as its event loop turns (the
/// task ends with the executor).
fn spawn_heartbeat(beats: super::notify::Heartbeats, index: usize) {
    #[cfg(feature = "failpoints")]
    let stall = std::env::var("EDGESLAB_TEST_STALL_SHARD")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        == Some(index);
    task::spawn_detached(async move {
        #[cfg(feature = "failpoints")]
        let started = Instant::now();
        loop {
            beats[index].fetch_add(1, Ordering::Relaxed);
            task::sleep(super::notify::HEARTBEAT).await;
            // Test-only: blocks the whole event loop 2 s after the start,
            // as a shard stuck in a system call or a loop would be.
            #[cfg(feature = "failpoints")]
            if stall && started.elapsed() >= Duration::from_secs(2) {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    });
}

/// Sleeps in short steps until `done` holds or `deadline` passes.
async fn wait_until(deadline: Instant, done: impl Fn() -> bool) {
    while !done() && Instant::now() < deadline {
        task::sleep(Duration::from_millis(10)).await;
    }
}

/// Sets the kernel's name of the calling thread (15 bytes at most), which
/// `ps -L`, `top -H` and /proc show.
fn name_this_thread(name: &str) {
    let mut buf = [0u8; 16];
    let n = name.len().min(15);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: buf is NUL-terminated and outlives the call.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

/// Accepts until the stop flag is seen after an accept. The stop does not
/// cancel the accept under way at once: io_uring may complete it just as
/// the cancel goes in, and the connection it took would then be lost
/// (reset when the process exits). Under load, the next connection
/// completes it within the grace and is served; only an idle listener's
/// accept is cancelled, when no connection is arriving.
async fn accept_loop(
    ctx: &Rc<ShardCtx>,
    listener: &Listener,
    active: &Rc<Cell<usize>>,
    stop: &AtomicBool,
) {
    use std::sync::atomic::Ordering::Relaxed;
    while !stop.load(Relaxed) {
        let conn = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                crate::warn_limited!(shard = ctx.shard, "accept failed: {e}");
                task::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if active.get() >= ctx.settings.max_connections {
            ctx.stats.connections_refused.fetch_add(1, Relaxed);
            continue;
        }
        let Ok(peer) = conn.peer_addr() else {
            continue;
        };
        ctx.stats.connections_accepted.fetch_add(1, Relaxed);
        ctx.stats.connections_active.fetch_add(1, Relaxed);
        active.set(active.get() + 1);
        let ctx = ctx.clone();
        let active = active.clone();
        task::spawn_detached(async move {
            serve_conn(ctx.clone(), conn, peer).await;
            active.set(active.get() - 1);
            ctx.stats.connections_active.fetch_sub(1, Relaxed);
        });
    }
}
