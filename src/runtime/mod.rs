//! Start-up and the life of the shards: topology, one executor pinned per
//! configured core, the shard mesh, the listeners handed to each shard,
//! signals and an orderly stop. Everything that can fail at start-up fails
//! here, before any shard serves, with a typed error an operator can act on.
//! This module, `net` and the store's device layer are the only places that
//! name glommio; the rest of the crate uses `task`, `sync` and `mesh`.

pub mod handover;
pub mod heap;
pub mod mesh;
pub mod notify;
pub mod plan;
pub mod reload;
pub mod shard;
pub mod sync;
pub mod task;
pub mod topology;

use crate::admin::invalidations::Invalidations;
use crate::admin::metrics::ShardMetrics;
use crate::cache::bans::Journal;
use crate::cache::store::device::{self, DeviceError};
use crate::config::{Config, Cores};
use crate::net::listener::{self, BoundListener};
use crate::upstream::UpstreamMap;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};
use shard::ShardSeed;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;
use topology::Topology;

/// How long start-up waits for every shard to open its store and serve.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Beyond the old process's drain deadline, how long a takeover waits for
/// it to write its checkpoint and release the cache.
const HANDOVER_SLACK: Duration = Duration::from_secs(30);

/// How a server starts.
#[derive(Default)]
pub struct Launch {
    /// Take the listeners and then the cache over from the running process
    /// (a binary upgrade), instead of binding them.
    pub takeover: bool,
    /// How SIGHUP reads the configuration again; without one, SIGHUP
    /// only says that this process cannot reload.
    pub reloader: Option<reload::Reloader>,
}

/// Messages that may wait in one shard-to-shard queue of the mesh.
const MESH_QUEUE: usize = 1024;

/// Why the server could not start (or a shard failed).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cores: {0}")]
    Cores(String),
    #[error("upstreams: {0}")]
    Origin(String),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("listen.addr: cannot listen: {0}")]
    Listen(#[source] std::io::Error),
    #[error("tls.addr: cannot listen: {0}")]
    ListenTls(#[source] std::io::Error),
    #[error("tls: {0}")]
    Tls(#[from] crate::net::tls::TlsError),
    #[error("admin.addr: cannot listen on {addr}: {source}")]
    Admin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalidation.journal: {0}")]
    Journal(String),
    #[error("log.access_log_path: cannot open the access log: {0}")]
    AccessLog(#[source] std::io::Error),
    #[error("cannot install signal handler: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the executor for core {core}: {reason}")]
    Executor { core: usize, reason: String },
    #[error("shard {index}: {source}")]
    Shard {
        index: u32,
        #[source]
        source: shard::OpenError,
    },
    #[error(transparent)]
    Handover(#[from] handover::HandoverError),
    #[error(
        "--takeover: the old process (pid {pid}) still holds the cache after its drain deadline and {} s more",
        HANDOVER_SLACK.as_secs()
    )]
    HandoverTimeout { pid: u32 },
    #[error("shards did not start within {} s", START_TIMEOUT.as_secs())]
    StartTimeout,
    #[error("a shard failed: {0}")]
    ShardFailed(String),
}

/// What `start` reports once every shard serves.
#[derive(Clone, Debug)]
pub struct Ready {
    pub listen: SocketAddr,
    /// The HTTPS listener, when `tls.addr` is set.
    pub https: Option<SocketAddr>,
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
    pub fn join(self) -> Result<(), StartError> {
        for h in self.handles {
            h.join()
                .map_err(|e| StartError::ShardFailed(e.to_string()))?;
        }
        Ok(())
    }
}

pub(crate) fn pick_cores(cores: &Cores, topo: &Topology) -> Result<Vec<usize>, StartError> {
    let available = topo.cpu_ids();
    match cores {
        Cores::All => Ok(available),
        Cores::List(list) => {
            if let Some(c) = list.iter().find(|c| !available.contains(c)) {
                return Err(StartError::Cores(format!(
                    "core {c} is not online or not allowed for this process (available: {available:?})"
                )));
            }
            Ok(list.clone())
        }
    }
}

/// What the control thread acts on.
struct Control {
    stop: Arc<AtomicBool>,
    reopen_log: Arc<AtomicBool>,
    live: Arc<reload::Live>,
    reloader: Option<reload::Reloader>,
    shards: u32,
}

/// SIGTERM and SIGINT stop the server; SIGHUP reloads the configuration;
/// SIGUSR1 reopens the access log (after logrotate moved it). A thread of
/// its own says which arrived, then acts or sets the flag the shards (or
/// the log writer) poll.
fn watch_signals(control: Control) -> Result<(), StartError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
        .map_err(StartError::Signals)?;
    let Control {
        stop,
        reopen_log,
        live,
        reloader,
        shards,
    } = control;
    let notifier = notify::Notifier::from_env();
    std::thread::Builder::new()
        .name("edgeslab-ctl".into())
        .spawn(move || {
            for sig in signals.forever() {
                let name = signal_hook::low_level::signal_name(sig).unwrap_or("a signal");
                if sig == SIGUSR1 {
                    tracing::info!(signal = name, "reopening the access log");
                    reopen_log.store(true, std::sync::atomic::Ordering::SeqCst);
                    continue;
                }
                if sig == SIGHUP {
                    match (&reloader, stop.load(std::sync::atomic::Ordering::SeqCst)) {
                        (_, true) => tracing::warn!(signal = name, "stopping: reload ignored"),
                        (None, false) => {
                            tracing::warn!(
                                signal = name,
                                "this process has no configuration to reload"
                            )
                        }
                        (Some(r), false) => {
                            tracing::info!(signal = name, "reloading the configuration");
                            notify::reloading(notifier.as_ref());
                            let _ = reload::reload(&live, r, shards);
                            notify::reloaded(notifier.as_ref());
                        }
                    }
                    continue;
                }
                tracing::info!(
                    signal = name,
                    "stop requested: draining, then checkpointing"
                );
                // Said here, at once: an idle server may drain and exit
                // before the notify thread's next look at the flag.
                notify::stopping(notifier.as_ref());
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        })
        .map_err(StartError::Signals)?;
    Ok(())
}

/// Starts every shard and returns once all serve (or the first fails).
pub fn start(config: Config, launch: Launch) -> Result<Server, StartError> {
    let topo = Topology::detect();
    let cores = pick_cores(&config.cores, &topo)?;
    tracing::info!(
        source = topo.source.as_str(),
        cpus = ?topo.cpu_ids(),
        numa_nodes = topo.numa_nodes,
        nics = ?topo.nics.iter().map(|n| format!("{}:rx{}", n.name, n.rx_queues)).collect::<Vec<_>>(),
        shards = ?cores,
        "topology"
    );
    // Whether each NIC queue's interrupt lands on a shard's core (see
    // `edgeslab irq`); a misfit costs a cross-core hop per packet.
    let alignment = crate::irq::alignment(std::path::Path::new("/"), &cores);
    match alignment.is_aligned() {
        true => tracing::info!("{alignment}"),
        false => tracing::warn!("{alignment}"),
    }
    let shards = cores.len() as u32;
    plan::check(&config, shards)?;
    let upstreams = UpstreamMap::from_config(&config).map_err(StartError::Origin)?;
    let handed = if launch.takeover {
        let h = handover::take(&config.cache.path, config.listen.addr, cores.len())?;
        tracing::info!(
            old_pid = h.pid,
            old_drain_timeout = %humantime::format_duration(h.drain),
            "took the listeners over; waiting for the old process to drain and release the cache"
        );
        Some(h)
    } else {
        None
    };
    let device = prepare_device(&config, shards, handed.as_ref())?;
    let journal_path = config.invalidation.journal_path(&config.cache.path);
    let journal = Journal::open(
        &journal_path,
        config.invalidation.retain.get(),
        crate::cache::policy::to_unix_millis(std::time::SystemTime::now()),
    )
    .map_err(|e| StartError::Journal(e.to_string()))?;
    let bans = journal.board();
    let invalidations = Invalidations::start(
        journal,
        config.node_name().to_string(),
        config.admin.token.clone(),
        config.invalidation.peers.clone(),
        config.invalidation.peer_timeout.get(),
    )
    .map_err(|e| StartError::Journal(e.to_string()))?;
    let mut invalidations = Some(invalidations);
    let sessions = crate::net::tls::Sessions::new()?;
    let viewer_tls = reload::viewer_tls(&config, &sessions)?;
    let Listeners {
        viewers: listeners,
        https,
        mut admin,
    } = listeners(&config, &cores, handed)?;
    let listen = listeners[0].local_addr().map_err(StartError::Listen)?;
    let https_addr = match https.first() {
        Some(l) => Some(l.local_addr().map_err(StartError::ListenTls)?),
        None => None,
    };
    let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
    let stop = Arc::new(AtomicBool::new(false));
    let offer = handover::Offer {
        listen,
        viewers: listeners
            .iter()
            .map(BoundListener::duplicate)
            .collect::<Result<_, _>>()
            .map_err(StartError::Listen)?,
        https: https
            .iter()
            .map(BoundListener::duplicate)
            .collect::<Result<_, _>>()
            .map_err(StartError::ListenTls)?,
        admin: admin
            .as_ref()
            .map(BoundListener::duplicate)
            .transpose()
            .map_err(StartError::Listen)?,
        drain: config.listen.drain_timeout.get(),
    };
    if let Err(e) = handover::offer(&config.cache.path, offer, stop.clone()) {
        tracing::warn!("{e}; a later `serve --takeover` will not find this process");
    }

    let all_metrics: Arc<Vec<ShardMetrics>> =
        Arc::new((0..shards).map(|_| ShardMetrics::default()).collect());
    let reopen_log = Arc::new(AtomicBool::new(false));
    let config = Arc::new(config);
    let live = reload::Live::new(config.clone(), upstreams, viewer_tls, sessions);
    watch_signals(Control {
        stop: stop.clone(),
        reopen_log: reopen_log.clone(),
        live: live.clone(),
        reloader: launch.reloader,
        shards,
    })?;
    let access_log = match config.log.access_log {
        true => Some(
            crate::access_log::Writer::start(&config.log, reopen_log)
                .map_err(StartError::AccessLog)?,
        ),
        false => None,
    };
    let mesh = MeshBuilder::full(shards as usize, MESH_QUEUE);
    let heartbeats: notify::Heartbeats = Arc::new(
        (0..shards)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect(),
    );
    let drained = Arc::new(AtomicUsize::new(0));
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
    let mut handles = Vec::new();
    let mut https = https.into_iter();
    for (i, (&cpu, l)) in cores.iter().zip(listeners).enumerate() {
        let seed = ShardSeed {
            index: i as u32,
            shards,
            listener: l,
            https: https.next(),
            admin: if i == 0 { admin.take() } else { None },
            invalidations: if i == 0 { invalidations.take() } else { None },
            bans: bans.clone(),
            device: device.clone(),
            config: config.clone(),
            live: live.clone(),
            metrics: all_metrics[i].clone(),
            all_metrics: all_metrics.clone(),
            mesh: mesh.clone(),
            stop: stop.clone(),
            drained: drained.clone(),
            heartbeats: heartbeats.clone(),
            access_log: access_log.clone(),
            ready: ready_tx.clone(),
        };
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            // glommio's helper threads inherit this name; the executor
            // thread renames itself to edgeslab-s<index> once it runs.
            .name("edgeslab-io")
            .io_memory(crate::cache::store::device::IO_MEMORY)
            .spawn(move || shard::run(seed))
            .map_err(|e| StartError::Executor {
                core: cpu,
                reason: e.to_string(),
            })?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..shards {
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(StartError::StartTimeout),
        }
    }
    if let Some(notifier) = notify::Notifier::from_env() {
        notify::serve(
            notifier,
            heartbeats,
            all_metrics,
            stop.clone(),
            launch.takeover,
        )
        .map_err(StartError::Signals)?;
    }
    Ok(Server {
        handles,
        stop,
        ready: Ready {
            listen,
            https: https_addr,
            admin: admin_addr,
            cores,
        },
    })
}

/// Opens the cache device. On a takeover, the old process holds it until
/// it has drained and written its checkpoint: wait for its lock, bounded by
/// the old process's drain deadline and some slack.
fn prepare_device(
    config: &Config,
    shards: u32,
    handed: Option<&handover::Handed>,
) -> Result<device::PreparedDevice, StartError> {
    let spec = device::DeviceSpec {
        path: &config.cache.path,
        size: config.cache.size.get(),
        segment_size: config.cache.segment_size.get(),
        shards,
        avg_object_size: config.cache.avg_object_size.get(),
        reformat: config.cache.reformat,
        reformat_if_corrupt: config.cache.reformat_if_corrupt,
    };
    let Some(h) = handed else {
        return Ok(device::prepare(&spec)?);
    };
    let deadline = std::time::Instant::now() + h.drain + HANDOVER_SLACK;
    loop {
        match device::prepare(&spec) {
            Err(DeviceError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(DeviceError::Locked { .. }) => {
                return Err(StartError::HandoverTimeout { pid: h.pid });
            }
            Ok(d) => {
                tracing::info!(old_pid = h.pid, "the old process released the cache");
                return Ok(d);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A server's listening sockets.
struct Listeners {
    /// One per shard.
    viewers: Vec<BoundListener>,
    /// One per shard when `tls.addr` is set, else none.
    https: Vec<BoundListener>,
    admin: Option<BoundListener>,
}

/// The viewer listeners (one per shard, plain and HTTPS) and the admin
/// listener: handed over by the old process, or bound here.
fn listeners(
    config: &Config,
    cores: &[usize],
    handed: Option<handover::Handed>,
) -> Result<Listeners, StartError> {
    let admin_addr = config.admin.addr;
    let bind_admin = || {
        listener::bind_single(admin_addr).map_err(|source| StartError::Admin {
            addr: admin_addr,
            source,
        })
    };
    let bind_https = |addr| listener::bind_group(addr, cores).map_err(StartError::ListenTls);
    let Some(h) = handed else {
        let viewers =
            listener::bind_group(config.listen.addr, cores).map_err(StartError::Listen)?;
        let https = config.tls.addr.map(bind_https).transpose()?;
        let admin = config.admin.enabled.then(bind_admin).transpose()?;
        return Ok(Listeners {
            viewers,
            https: https.unwrap_or_default(),
            admin,
        });
    };
    listener::steer(&h.viewers, cores).map_err(StartError::Listen)?;
    // The old HTTPS group is kept where this configuration listens too.
    let https = match config.tls.addr {
        None => Vec::new(),
        Some(addr) if same_place(&h.https, addr) => {
            listener::steer(&h.https, cores).map_err(StartError::ListenTls)?;
            h.https
        }
        Some(addr) => bind_https(addr)?,
    };
    // The old admin socket is kept only where this configuration listens
    // too; otherwise it closes with the old process.
    let same_admin = h
        .admin
        .filter(|a| same_place(std::slice::from_ref(a), admin_addr));
    let admin = match (config.admin.enabled, same_admin) {
        (false, _) => None,
        (true, Some(a)) => Some(a),
        (true, None) => Some(bind_admin()?),
    };
    Ok(Listeners {
        viewers: h.viewers,
        https,
        admin,
    })
}

/// Whether handed-over listeners listen where `want` says (port 0: any
/// port on that address).
fn same_place(group: &[BoundListener], want: SocketAddr) -> bool {
    group.first().is_some_and(|l| {
        l.local_addr()
            .is_ok_and(|got| handover::same_place(got, want))
    })
}
