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
use crate::net::conn::Conn;
use crate::net::listener::{BoundListener, Listener};
use crate::proxy::{Current, ShardCtx, ShardState, serve_conn};
use crate::spare::Boxed;
use crate::upstream::UpstreamClient;
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
/// How often a shard hands freed memory back to the OS.
const HEAP_UPKEEP: Duration = Duration::from_secs(1);

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
    /// This shard's HTTPS listener, when `tls.addr` is set.
    pub https: Option<BoundListener>,
    pub admin: Option<BoundListener>,
    /// Shard 0's: the admin API's handle on invalidations.
    pub invalidations: Option<Invalidations>,
    /// The invalidations in force, shared by every shard.
    pub bans: BanBoard,
    pub device: PreparedDevice,
    /// The configuration the process started with (generation 1).
    pub config: Arc<Config>,
    /// The configuration generation in force; reloads publish new ones.
    pub live: Arc<super::reload::Live>,
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
    let (current, receivers) = match open(&seed).await {
        Ok(opened) => opened,
        Err(source) => {
            let _ = seed.ready.send(Err(StartError::Shard { index, source }));
            return;
        }
    };
    let ctx = current.get().state.clone();
    serve_peers(&ctx, receivers);
    let listener = seed.listener.into_listener();
    let https = seed.https.map(BoundListener::into_listener);
    if index == 0 {
        crate::upstream::health::spawn_checks(&seed.live.get().upstreams);
    }
    spawn_reload_watch(&current, seed.live.clone(), seed.shards, &seed.metrics);
    if let Some(admin) = seed.admin {
        let served = crate::admin::Admin {
            shards: seed.all_metrics.to_vec(),
            invalidations: seed.invalidations,
        };
        task::spawn_detached(crate::admin::serve(admin.into_listener(), Rc::new(served)));
    }
    spawn_heartbeat(seed.heartbeats.clone(), index as usize);
    spawn_heap_upkeep(&current);
    spawn_log_flusher(&ctx);
    let _ = seed.ready.send(Ok(index));
    drop(seed.ready);

    let active = Rc::new(Cell::new(0usize));
    let stop_flag = seed.stop.clone();
    let stop_watch = async move {
        let mut sleeper = task::Sleeper::default();
        while !stop_flag.load(Ordering::Relaxed) {
            sleeper.sleep(STOP_POLL).await;
        }
        // See `accept_loop`: the accept under way gets a moment to finish.
        task::sleep(ACCEPT_GRACE).await;
    };
    let plain = accept_loop(&current, &listener, &active, &seed.stop, Transport::Plain);
    let accepting = async {
        match &https {
            Some(h) => {
                let tls = accept_loop(&current, h, &active, &seed.stop, Transport::Tls);
                futures_lite::future::zip(plain, tls).await;
            }
            None => plain.await,
        }
    };
    futures_lite::future::or(accepting, stop_watch).await;
    ctx.stop.trigger();
    drop(listener);
    drop(https);
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

/// Opens the shard's store, joins the mesh and builds its request context
/// from the generation in force.
async fn open(seed: &ShardSeed) -> Result<(Rc<Current>, Receivers<OwnerMsg>), OpenError> {
    let first = seed.live.get();
    let plan = ShardPlan::new(
        &seed.config,
        seed.shards,
        first.upstreams.default_authority(),
    );
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
    let state = Rc::new(ShardState {
        shard: seed.index,
        bans: std::cell::RefCell::new(seed.bans.reader()),
        cache,
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
        decoded: crate::proxy::decoded::DecodedHeads::new(
            crate::proxy::decoded::MAX_HEADS,
            crate::proxy::decoded::MAX_HEAD_BYTES,
        ),
    });
    let ctx = generation_ctx(state, &first, seed.shards, &seed.metrics);
    Ok((Rc::new(Current::new(ctx)), receivers))
}

/// The request context one configuration generation makes of the shard.
fn generation_ctx(
    state: Rc<ShardState>,
    generation: &super::reload::Generation,
    shards: u32,
    metrics: &ShardMetrics,
) -> Rc<ShardCtx> {
    let plan = ShardPlan::new(
        &generation.config,
        shards,
        generation.upstreams.default_authority(),
    );
    Rc::new(ShardCtx {
        state,
        generation: generation.number,
        tags: plan.tags,
        settings: plan.settings,
        tls: generation.tls.clone(),
        upstream: UpstreamClient::new(
            generation.upstreams.clone(),
            plan.origin,
            metrics.upstream.clone(),
        ),
    })
}

/// Puts each new configuration generation in force on this shard for new
/// requests (shard 0 also moves the origin health checks to it). The old
/// context lives on in the requests that hold it, and goes with the last.
fn spawn_reload_watch(
    current: &Rc<Current>,
    live: Arc<super::reload::Live>,
    shards: u32,
    metrics: &ShardMetrics,
) {
    let current = current.clone();
    let metrics = metrics.clone();
    task::spawn_detached(async move {
        let mut sleeper = task::Sleeper::default();
        loop {
            sleeper.sleep(super::reload::RELOAD_POLL).await;
            let running = current.get();
            if running.stop.is_set() {
                return;
            }
            if live.number() == running.generation {
                continue;
            }
            let generation = live.get();
            let ctx = generation_ctx(running.state.clone(), &generation, shards, &metrics);
            if running.shard == 0 {
                crate::upstream::health::spawn_checks(&generation.upstreams);
            }
            tracing::debug!(
                shard = running.shard,
                generation = generation.number,
                "new requests use the reloaded configuration"
            );
            current.replace(ctx);
        }
    });
}

/// Answers the messages peers send to this shard as a key's owner.
fn serve_peers(ctx: &Rc<ShardState>, mut receivers: Receivers<OwnerMsg>) {
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
fn spawn_log_flusher(ctx: &Rc<ShardState>) {
    if ctx.access_log.is_none() {
        return;
    }
    let ctx = ctx.clone();
    task::spawn_detached(async move {
        let mut sleeper = task::Sleeper::default();
        loop {
            sleeper.sleep(crate::access_log::FLUSH_EVERY).await;
            if let Some(log) = &ctx.access_log {
                log.flush_if_due(false);
            }
        }
    });
}

/// Once a second, hands memory this shard freed back to the OS.
fn spawn_heap_upkeep(current: &Rc<Current>) {
    let current = current.clone();
    task::spawn_detached(async move {
        let mut sleeper = task::Sleeper::default();
        while !current.get().stop.is_set() {
            sleeper.sleep(HEAP_UPKEEP).await;
            crate::runtime::heap::return_freed();
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
        let mut sleeper = task::Sleeper::default();
        loop {
            beats[index].fetch_add(1, Ordering::Relaxed);
            sleeper.sleep(super::notify::HEARTBEAT).await;
            // Test-only: blocks the whole event loop 2 s after the start,
            // as a shard stuck in a system call or a loop would be.
            #[cfg(feature = "failpoints")]
            if stall && started.elapsed() >= Duration::from_secs(2) {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    });
}

/// What a listener's connections speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Plain,
    Tls,
}

/// With `listen.proxy_protocol` on, reads the PROXY header and returns the
/// viewer's address it names; a connection from an untrusted peer, or with
/// no valid header within `listen.header_timeout`, is counted and closed
/// (None). With it off, the connection as accepted.
async fn behind_proxy(current: &Current, conn: &mut Conn, peer: &mut std::net::SocketAddr) -> bool {
    let ctx = current.get();
    let Some(trusted) = &ctx.settings.proxy_trusted else {
        return true;
    };
    let deadline = Instant::now() + ctx.settings.header_timeout;
    match crate::net::proxy_protocol::accept(conn, *peer, trusted, deadline).await {
        Ok((viewer, kind)) => {
            use crate::net::proxy_protocol::HeaderKind;
            let counter = match kind {
                HeaderKind::V1 => &ctx.stats.proxy_v1,
                HeaderKind::V2 => &ctx.stats.proxy_v2,
                HeaderKind::Local => &ctx.stats.proxy_local,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            *peer = viewer;
            true
        }
        Err(e) => {
            ctx.stats.proxy_refused.fetch_add(1, Ordering::Relaxed);
            crate::warn_limited!(shard = ctx.shard, %peer, "connection refused: {e}");
            false
        }
    }
}

/// A viewer's TLS handshake, with the certificates in force now and within
/// `tls.handshake_timeout`; counted either way. None: it failed (the
/// connection closes).
async fn handshake(current: &Current, conn: Conn, peer: std::net::SocketAddr) -> Option<Conn> {
    use crate::net::conn::Handshake;
    let ctx = current.get();
    let config = ctx.tls.clone()?;
    let timeout = ctx.settings.tls_handshake_timeout;
    match conn.accept_tls(&config, timeout).await {
        Ok((conn, kind)) => {
            let counter = match kind {
                Handshake::Full => &ctx.stats.tls_full_handshakes,
                Handshake::Resumed => &ctx.stats.tls_resumed_handshakes,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            Some(conn)
        }
        Err(e) => {
            ctx.stats
                .tls_failed_handshakes
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(shard = ctx.shard, %peer, "TLS handshake failed: {e}");
            None
        }
    }
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
    current: &Rc<Current>,
    listener: &Listener,
    active: &Rc<Cell<usize>>,
    stop: &AtomicBool,
    transport: Transport,
) {
    use std::sync::atomic::Ordering::Relaxed;
    while !stop.load(Relaxed) {
        let accepted = listener.accept().await;
        let ctx = current.get();
        let mut conn = match accepted {
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
        let Ok(mut peer) = conn.peer_addr() else {
            continue;
        };
        ctx.stats.connections_accepted.fetch_add(1, Relaxed);
        ctx.stats.connections_active.fetch_add(1, Relaxed);
        active.set(active.get() + 1);
        let state = ctx.state.clone();
        drop(ctx);
        let current = current.clone();
        let active = active.clone();
        // The task holds the connection once, in place, and lends it to
        // each stage: moved from stage to stage, every move took a slot of
        // its own in the task (a connection idle between requests held
        // four copies of the `Conn`).
        task::spawn_detached(async move {
            // Boxed: these futures (a TLS handshake holds a whole rustls
            // connection) live on the heap only while they run, instead of
            // widening every connection's task for its whole life; in
            // blocks the shard reuses from one connection to the next.
            if Boxed::with(|| behind_proxy(&current, &mut conn, &mut peer)).await {
                match transport {
                    Transport::Plain => serve_conn(current, &mut conn, peer).await,
                    Transport::Tls => {
                        if let Some(tls) = Boxed::with(|| handshake(&current, conn, peer)).await {
                            conn = tls;
                            serve_conn(current, &mut conn, peer).await;
                        }
                    }
                }
            }
            active.set(active.get() - 1);
            state.stats.connections_active.fetch_sub(1, Relaxed);
        });
    }
}
