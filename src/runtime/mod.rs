//! Start-up and the life of the shards: topology, one glommio executor pinned
//! per configured core, the shard mesh, the listeners handed to each shard,
//! signals and an orderly stop. Everything that can fail at start-up fails
//! here, before any shard serves, with a message an operator can act on.

pub mod mesh;
pub mod sync;
pub mod task;
pub mod topology;

use crate::admin::metrics::ShardMetrics;
use crate::cache::key::KeyPolicy;
use crate::cache::owner::{OwnerMsg, OwnerRouter};
use crate::cache::policy::PolicyConfig;
use crate::cache::store::device::{self, PreparedDevice};
use crate::cache::store::eviction::EvictionParams;
use crate::cache::store::{ShardStore, StoreOptions};
use crate::config::{Config, Cores};
use crate::http::Limits;
use crate::net::listener::{self, BoundListener, Listener};
use crate::proxy::{ShardCtx, serve_conn};
use crate::upstream::{OriginAddr, OriginPool, PoolSettings};
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use topology::Topology;

/// How long a stopping shard waits for open requests to finish.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// What `start` reports once every shard serves.
#[derive(Clone, Debug)]
pub struct Ready {
    pub listen: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub cores: Vec<usize>,
}

/// A running server: wait on it, or ask it to stop.
pub struct Server {
    handles: Vec<glommio::ExecutorJoinHandle<()>>,
    stop: Arc<AtomicBool>,
    pub ready: Ready,
}

impl Server {
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Blocks until every shard has stopped.
    pub fn join(self) -> Result<(), String> {
        for h in self.handles {
            h.join().map_err(|e| format!("a shard failed: {e}"))?;
        }
        Ok(())
    }
}

fn pick_cores(cores: &Cores, topo: &Topology) -> Result<Vec<usize>, String> {
    let available = topo.cpu_ids();
    match cores {
        Cores::All => Ok(available),
        Cores::List(list) => {
            for c in list {
                if !available.contains(c) {
                    return Err(format!(
                        "cores: core {c} is not online or not allowed for this process (available: {available:?})"
                    ));
                }
            }
            Ok(list.clone())
        }
    }
}

/// Everything a shard needs to start, built on the main thread.
struct ShardSeed {
    index: u32,
    shards: u32,
    listener: BoundListener,
    admin: Option<BoundListener>,
    device: PreparedDevice,
    config: Arc<Config>,
    origin: SocketAddr,
    origin_authority: String,
    metrics: ShardMetrics,
    all_metrics: Arc<Vec<ShardMetrics>>,
    mesh: MeshBuilder<OwnerMsg, glommio::channels::channel_mesh::Full>,
    stop: Arc<AtomicBool>,
    /// Shards done draining; checkpoints start when all are (so no fill
    /// from another shard is still on its way).
    drained: Arc<std::sync::atomic::AtomicUsize>,
    ready: crossbeam_channel::Sender<Result<u32, String>>,
}

/// Starts every shard and returns once all serve (or the first fails).
pub fn start(config: Config) -> Result<Server, String> {
    let topo = Topology::detect();
    let cores = pick_cores(&config.cores, &topo)?;
    tracing::info!(
        source = topo.source,
        cpus = ?topo.cpu_ids(),
        numa_nodes = topo.numa_nodes,
        nics = ?topo.nics.iter().map(|n| format!("{}:rx{}", n.name, n.rx_queues)).collect::<Vec<_>>(),
        shards = ?cores,
        "topology"
    );
    let origin_addr =
        OriginAddr::parse(&config.origin.url).map_err(|e| format!("origin.url: {e}"))?;
    let origin = origin_addr
        .resolve()
        .map_err(|e| format!("origin.url: {e}"))?;
    let shards = cores.len() as u32;
    let device = device::prepare(&device::DeviceSpec {
        path: &config.cache.path,
        size: config.cache.size.get(),
        segment_size: config.cache.segment_size.get(),
        shards,
        avg_object_size: config.cache.avg_object_size.get(),
        reformat: config.cache.reformat,
        reformat_if_corrupt: config.cache.reformat_if_corrupt,
    })
    .map_err(|e| e.to_string())?;
    let listeners: Vec<BoundListener> = listener::bind_group(config.listen.addr, &cores)
        .map_err(|e| format!("listen.addr: cannot listen: {e}"))?;
    let listen = listeners[0].local_addr().map_err(|e| e.to_string())?;
    let admin = if config.admin.enabled {
        let l = std::net::TcpListener::bind(config.admin.addr)
            .map_err(|e| format!("admin.addr: cannot listen on {}: {e}", config.admin.addr))?;
        Some(l)
    } else {
        None
    };
    let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
    let mut admin = admin.map(BoundListener::from_std);

    let all_metrics: Arc<Vec<ShardMetrics>> =
        Arc::new((0..shards).map(|_| ShardMetrics::default()).collect());
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("cannot install signal handler: {e}"))?;
    }
    let mesh = MeshBuilder::full(shards as usize, 1024);
    let drained = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let config = Arc::new(config);
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
    let mut handles = Vec::new();
    for (i, (&cpu, l)) in cores.iter().zip(listeners).enumerate() {
        let seed = ShardSeed {
            index: i as u32,
            shards,
            listener: l,
            admin: if i == 0 { admin.take() } else { None },
            device: device.clone(),
            config: config.clone(),
            origin,
            origin_authority: origin_addr.authority(),
            metrics: all_metrics[i].clone(),
            all_metrics: all_metrics.clone(),
            mesh: mesh.clone(),
            stop: stop.clone(),
            drained: drained.clone(),
            ready: ready_tx.clone(),
        };
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            // glommio's helper threads inherit this name; the executor
            // thread renames itself to edgeslab-s<index> once it runs.
            .name("edgeslab-io")
            .spawn(move || shard_main(seed))
            .map_err(|e| format!("cannot start the executor for core {cpu}: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..shards {
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("shards did not start within 60 s".into()),
        }
    }
    Ok(Server {
        handles,
        stop,
        ready: Ready {
            listen,
            admin: admin_addr,
            cores,
        },
    })
}

async fn shard_main(seed: ShardSeed) {
    let ShardSeed {
        index,
        shards,
        listener,
        admin,
        device,
        config,
        origin,
        origin_authority,
        metrics,
        all_metrics,
        mesh,
        stop,
        drained,
        ready,
    } = seed;
    name_this_thread(&format!("edgeslab-s{index}"));
    let c = &config;
    let options = StoreOptions {
        max_object: c.cache.max_object_size.get(),
        ram_bytes: (c.cache.ram_size.get() / shards as u64) as usize,
        ram_max_object: c.cache.ram_max_object.get() as usize,
        eviction: EvictionParams::default(),
    };
    let store = match ShardStore::open(&device, index, &options, metrics.store.clone()).await {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(format!("shard {index}: {e}")));
            return;
        }
    };
    let (senders, mut receivers) = match mesh.join().await {
        Ok(pair) => pair,
        Err(e) => {
            let _ = ready.send(Err(format!(
                "shard {index}: cannot join the shard mesh: {e}"
            )));
            return;
        }
    };
    let limits = Limits {
        max_header_bytes: c.listen.max_header_bytes,
        max_uri_bytes: c.listen.max_uri_bytes,
        max_headers: c.listen.max_headers,
    };
    let cache = OwnerRouter::new(
        store,
        Some(Rc::new(mesh::ShardPeers::new(senders))),
        index,
        shards,
        metrics.cache.clone(),
    );
    let pool = OriginPool::new(
        origin,
        PoolSettings {
            connect_timeout: c.origin.connect_timeout.get(),
            first_byte_timeout: c.origin.first_byte_timeout.get(),
            idle_timeout: c.origin.idle_timeout.get(),
            pool_idle_timeout: c.origin.pool_idle_timeout.get(),
            max_idle: c.origin.max_idle_per_shard,
            limits: Limits {
                max_header_bytes: c.listen.max_header_bytes.max(64 << 10),
                max_uri_bytes: c.listen.max_uri_bytes,
                max_headers: c.listen.max_headers.max(200),
            },
        },
        metrics.upstream.clone(),
    );
    let ctx = Rc::new(ShardCtx {
        shard: index,
        node: "edgeslab".into(),
        limits,
        header_timeout: c.listen.header_timeout.get(),
        idle_timeout: c.listen.idle_timeout.get(),
        io_timeout: c.listen.io_timeout.get(),
        origin_idle_timeout: c.origin.idle_timeout.get(),
        hosts: c
            .listen
            .hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        unknown_host_status: c.listen.unknown_host_status,
        origin_authority,
        host_header: c.origin.host_header.clone(),
        key_policy: KeyPolicy::default(),
        policy: PolicyConfig {
            default_ttl: c.cache.default_ttl.get(),
            max_heuristic_ttl: c.cache.max_heuristic_ttl.get(),
            cache_set_cookie: c.cache.cache_set_cookie,
        },
        cache,
        pool,
        metrics: metrics.clone(),
        access_log: c.log.access_log,
        max_connections: c.listen.max_connections_per_shard,
        stop: sync::StopSignal::new(),
    });
    for (_, stream) in receivers.streams() {
        let ctx = ctx.clone();
        task::spawn_detached(async move {
            while let Some(msg) = stream.recv().await {
                ctx.cache.handle(msg).await;
            }
        });
    }
    let listener = listener.into_listener();
    if let Some(admin) = admin {
        task::spawn_detached(crate::admin::serve(
            admin.into_listener(),
            Rc::new(all_metrics.to_vec()),
        ));
    }
    let _ = ready.send(Ok(index));
    drop(ready);

    let active = Rc::new(Cell::new(0usize));
    let stop_watch = {
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                task::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    futures_lite::future::or(accept_loop(&ctx, &listener, &active), stop_watch).await;
    ctx.stop.trigger();
    drop(listener);
    let deadline = std::time::Instant::now() + DRAIN_GRACE;
    while active.get() > 0 && std::time::Instant::now() < deadline {
        task::sleep(Duration::from_millis(20)).await;
    }
    drained.fetch_add(1, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while drained.load(Ordering::SeqCst) < shards as usize && std::time::Instant::now() < deadline {
        task::sleep(Duration::from_millis(10)).await;
    }
    match ctx.cache.store().checkpoint().await {
        Ok(objects) => tracing::info!(shard = index, objects, "index checkpoint written"),
        Err(e) => tracing::error!(
            shard = index,
            "index checkpoint failed (the next start will scan): {e}"
        ),
    }
    tracing::info!(
        shard = index,
        open_connections = active.get(),
        "shard stopped"
    );
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

async fn accept_loop(ctx: &Rc<ShardCtx>, listener: &Listener, active: &Rc<Cell<usize>>) {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        let conn = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(shard = ctx.shard, "accept failed: {e}");
                task::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if active.get() >= ctx.max_connections {
            ctx.metrics.viewer.connections_refused.fetch_add(1, Relaxed);
            continue;
        }
        let peer = match conn.peer_addr() {
            Ok(p) => p,
            Err(_) => continue,
        };
        ctx.metrics
            .viewer
            .connections_accepted
            .fetch_add(1, Relaxed);
        ctx.metrics.viewer.connections_active.fetch_add(1, Relaxed);
        active.set(active.get() + 1);
        let ctx = ctx.clone();
        let active = active.clone();
        task::spawn_detached(async move {
            serve_conn(ctx.clone(), conn, peer).await;
            active.set(active.get() - 1);
            ctx.metrics.viewer.connections_active.fetch_sub(1, Relaxed);
        });
    }
}
