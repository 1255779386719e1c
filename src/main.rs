//! The `edgeslab` command: serve, demo, check-config.

use clap::{Parser, Subcommand};
use edgeslab::config::{self, Config, Cores, Role, Size};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: edgeslab::runtime::heap::Counting<mimalloc::MiMalloc> =
    edgeslab::runtime::heap::Counting(mimalloc::MiMalloc);

#[derive(Parser)]
#[command(
    name = "edgeslab",
    version,
    about = "A thread-per-core CDN cache appliance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve viewers: from a config file, or from flags alone (flags override the file).
    Serve(Box<ServeArgs>),
    /// Start a demo origin, a regional and two edges on loopback.
    Demo(DemoArgs),
    /// Invalidate paths or tags on every tier, through one node's admin API,
    /// and follow it until every node has applied it.
    Invalidate(InvalidateArgs),
    /// Check a config file; print every error with its key and line.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Print a sysctl profile (to install in /etc/sysctl.d), or with
    /// --check compare it with the running kernel and say what differs.
    Tune {
        /// Compare with the running kernel instead of printing the profile;
        /// exits 1 when a setting differs.
        #[arg(long)]
        check: bool,
        #[arg(long, value_enum, default_value = "edge")]
        profile: edgeslab::tune::Profile,
    },
    /// Pin NIC queue interrupts, XPS and RPS to the shard cores (dry run or apply).
    Irq(edgeslab::irq::IrqArgs),
    /// Print a node's totals, rates and per-shard figures (like varnishstat).
    Stats(edgeslab::admin::stats::StatsArgs),
    /// A live full-screen view of a node (like traffic_top); q, Esc or Ctrl-C quits.
    Top(edgeslab::admin::top::TopArgs),
}

#[derive(clap::Args)]
struct InvalidateArgs {
    /// The admin URL of any node, e.g. http://127.0.0.1:9090.
    #[arg(long, value_name = "URL")]
    admin: String,
    /// The admin token (admin.token on the node).
    #[arg(long, value_name = "T", env = "EDGESLAB_ADMIN_TOKEN")]
    token: String,
    /// A tag to invalidate (Surrogate-Key / Cache-Tag); repeat for several.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// How long to follow the invalidation, e.g. 60s.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    wait: std::time::Duration,
    /// Paths: "/a.jpg" exactly, "/images/*" for every path under /images/.
    paths: Vec<String>,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Where the edge listens [default: 127.0.0.1:8080, or a free port if taken].
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Where /metrics is served [default: 127.0.0.1:9090, or a free port if taken].
    #[arg(long, value_name = "ADDR")]
    admin: Option<std::net::SocketAddr>,
}

#[derive(Clone, clap::Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// "edge" or "regional" (role); without a file, the role's defaults apply.
    #[arg(long, value_parser = ["edge", "regional"])]
    role: Option<String>,
    /// This node's name in Via, Cache-Status and invalidation reports (name).
    #[arg(long)]
    name: Option<String>,
    /// A regional parent, HOST:PORT; repeat for several (parents.addrs).
    #[arg(long = "parent", value_name = "HOST:PORT")]
    parents: Vec<String>,
    /// Token the admin invalidation API requires (admin.token).
    #[arg(long, value_name = "T")]
    admin_token: Option<String>,
    /// Admin URL of a node invalidations are passed on to; repeat for
    /// several (invalidation.peers).
    #[arg(long = "peer-admin", value_name = "URL")]
    peer_admins: Vec<String>,
    /// Viewer address, e.g. 0.0.0.0:80 (listen.addr).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Origin URL, e.g. http://10.0.0.5:8080 (origin.url).
    #[arg(long)]
    origin: Option<String>,
    /// Cache device as PATH:SIZE, e.g. /var/cache/edgeslab.slab:100GiB, or a block device path.
    #[arg(long)]
    cache: Option<String>,
    /// Cores to run shards on: "all" or a list such as "0,2-3" (cores).
    #[arg(long)]
    cores: Option<String>,
    /// Admin (metrics) address, e.g. 127.0.0.1:9090 (admin.addr).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// HTTPS viewer address, e.g. 0.0.0.0:443 (tls.addr); needs --cert.
    #[arg(long, value_name = "ADDR")]
    https: Option<SocketAddr>,
    /// A certificate chain and its key, CHAIN.pem:KEY.pem; repeat for
    /// several (chosen by SNI). The first also serves unknown or absent
    /// names (tls.certs).
    #[arg(long = "cert", value_name = "CHAIN.pem:KEY.pem")]
    certs: Vec<String>,
    /// Discard the cache device's contents and format it anew (cache.reformat).
    #[arg(long)]
    reformat: bool,
    /// Binary upgrade: take the listening sockets over from the edgeslab
    /// running with this cache, let it drain and write its checkpoint, then
    /// load the cache and serve. No connection is refused meanwhile.
    #[arg(long)]
    takeover: bool,
}

/// Puts a new `log.level` filter in force (a reload).
type LogLevelHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// RUST_LOG when set and not empty: it then wins over `log.level`, at
/// start and on reload alike.
fn rust_log() -> Option<String> {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Logs to stderr at `level`, unless RUST_LOG says otherwise.
fn init_logging(level: &str) -> LogLevelHandle {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = rust_log()
        .ok_or(())
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).map_err(|_| ()))
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .try_init();
    handle
}

/// How SIGHUP rebuilds the configuration: the same file and flags as at
/// start, and the log filter put in force once the rest is accepted.
fn reloader(args: ServeArgs, log: LogLevelHandle) -> edgeslab::runtime::reload::Reloader {
    edgeslab::runtime::reload::Reloader {
        load: Box::new(move || build_config(&args)),
        set_log_level: Box::new(move |level| {
            if rust_log().is_some() {
                return Ok(());
            }
            let filter =
                tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())?;
            log.reload(filter).map_err(|e| e.to_string())
        }),
    }
}

/// Applies the flags on top of the file's (or the default) config.
fn build_config(args: &ServeArgs) -> Result<Config, String> {
    let role = match args.role.as_deref() {
        Some("regional") => Some(Role::Regional),
        Some(_) => Some(Role::Edge),
        None => None,
    };
    let mut c = match &args.config {
        Some(path) => config::load_file(path).map_err(|e| e.to_string())?,
        None => Config::for_role(role.unwrap_or_default()),
    };
    if let Some(r) = role {
        c.role = r;
    }
    if let Some(n) = &args.name {
        c.name = Some(n.clone());
    }
    if !args.parents.is_empty() {
        c.parents.addrs = args.parents.clone();
    }
    if let Some(t) = &args.admin_token {
        c.admin.token = Some(t.clone());
    }
    if !args.peer_admins.is_empty() {
        c.invalidation.peers = args.peer_admins.clone();
    }
    if let Some(a) = args.listen {
        c.listen.addr = a;
    }
    if let Some(o) = &args.origin {
        c.origin.url = o.clone();
    }
    if let Some(spec) = &args.cache {
        let (path, size) = split_cache_spec(spec);
        c.cache.path = path;
        if let Some(size) = size {
            c.cache.size = size;
        }
    }
    if let Some(cores) = &args.cores {
        c.cores = cores
            .parse::<Cores>()
            .map_err(|e| format!("--cores: {e}"))?;
    }
    if let Some(a) = args.admin {
        c.admin.addr = a;
        c.admin.enabled = true;
    }
    if args.reformat {
        c.cache.reformat = true;
    }
    if let Some(a) = args.https {
        c.tls.addr = Some(a);
    }
    if !args.certs.is_empty() {
        c.tls.certs = args
            .certs
            .iter()
            .map(|spec| split_cert_spec(spec))
            .collect::<Result<_, _>>()?;
    }
    let errors = config::validate(&c);
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(|(k, m)| format!("{k}: {m}")).collect();
        return Err(lines.join("\n"));
    }
    Ok(c)
}

/// `--cert CHAIN.pem:KEY.pem`: split at the last `:` (paths may hold
/// colons; the key's path then may not).
fn split_cert_spec(spec: &str) -> Result<config::CertPair, String> {
    match spec.rsplit_once(':') {
        Some((chain, key)) if !chain.is_empty() && !key.is_empty() => Ok(config::CertPair {
            chain: PathBuf::from(chain),
            key: PathBuf::from(key),
        }),
        _ => Err(format!(
            "--cert: {spec:?} is not CHAIN.pem:KEY.pem (a certificate chain and its private key)"
        )),
    }
}

/// `--cache PATH[:SIZE]`. Device paths carry colons of their own
/// (`/dev/disk/by-path/pci-0000:3b:00.0-nvme-1`): a path that exists is
/// taken whole, and otherwise only a suffix that reads as a non-zero size
/// is one.
fn split_cache_spec(spec: &str) -> (PathBuf, Option<Size>) {
    if std::path::Path::new(spec).exists() {
        return (PathBuf::from(spec), None);
    }
    match spec.rsplit_once(':') {
        Some((path, size)) if !path.is_empty() => match size.parse::<Size>() {
            Ok(size) if size.get() > 0 => (PathBuf::from(path), Some(size)),
            _ => (PathBuf::from(spec), None),
        },
        _ => (PathBuf::from(spec), None),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match config::load_file(&file).and_then(|c| {
            // The file holds together; now check it against this host as
            // `serve` would (cores, cache path, journal directory).
            let problems = edgeslab::runtime::plan::check_host(&c);
            match problems.is_empty() {
                true => Ok(c),
                false => Err(config::errors_at_keys(&file, problems)),
            }
        }) {
            Ok(_) => {
                println!("{}: OK", file.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{} error(s)", errors.errors.len());
                ExitCode::from(1)
            }
        },
        Command::Tune { check, profile } => {
            if !check {
                print!("{}", profile.text());
                return ExitCode::SUCCESS;
            }
            let results = edgeslab::tune::check(profile, edgeslab::tune::read_sysctl);
            let (text, all_match) = edgeslab::tune::report(profile, &results);
            print!("{text}");
            match all_match {
                true => ExitCode::SUCCESS,
                false => ExitCode::from(1),
            }
        }
        Command::Irq(args) => match edgeslab::irq::run(&args, &mut std::io::stdout()) {
            Ok(outcome) => outcome.exit_code(),
            Err(e) => {
                eprintln!("edgeslab irq: {e}");
                ExitCode::from(1)
            }
        },
        Command::Invalidate(args) => {
            let run = edgeslab::admin::cli::InvalidateArgs {
                admin: &args.admin,
                token: &args.token,
                paths: &args.paths,
                tags: &args.tags,
                wait: args.wait,
            };
            use edgeslab::admin::cli::Finished;
            match edgeslab::admin::cli::invalidate(&run, &mut std::io::stdout()) {
                Ok(Finished::Complete) => ExitCode::SUCCESS,
                Ok(Finished::Unreachable(nodes)) => {
                    eprintln!("edgeslab invalidate: unreachable: {}", nodes.join(", "));
                    ExitCode::from(1)
                }
                Ok(Finished::StillPending(nodes)) => {
                    eprintln!(
                        "edgeslab invalidate: still pending after the wait: {}",
                        nodes.join(", ")
                    );
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("edgeslab invalidate: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Stats(args) => {
            match edgeslab::admin::stats::stats(&args, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("edgeslab stats: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Top(args) => match edgeslab::admin::top::top(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("edgeslab top: {e}");
                ExitCode::from(1)
            }
        },
        Command::Demo(args) => {
            init_logging("info");
            match edgeslab::demo::run(args.listen, args.admin) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("edgeslab demo: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Serve(args) => {
            let config = match build_config(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("edgeslab: configuration error:\n{e}");
                    return ExitCode::from(2);
                }
            };
            let log = init_logging(&config.log.level);
            let server = match edgeslab::runtime::start(
                config,
                edgeslab::runtime::Launch {
                    takeover: args.takeover,
                    reloader: Some(reloader((*args).clone(), log)),
                },
            ) {
                Ok(s) => s,
                Err(e) => {
                    // Once, on stderr (the journal under systemd), whatever
                    // the log level.
                    eprintln!("edgeslab: cannot start: {e}");
                    return ExitCode::from(1);
                }
            };
            let admin = server
                .ready
                .admin
                .map_or_else(|| "-".to_string(), |a| a.to_string());
            tracing::info!(
                listen = %server.ready.listen,
                https = ?server.ready.https,
                admin = %admin,
                cores = ?server.ready.cores,
                "edgeslab serving"
            );
            // One machine-readable line for scripts and supervisors.
            let https = server
                .ready
                .https
                .map_or_else(|| "-".to_string(), |a| a.to_string());
            println!(
                "ready listen={} https={https} admin={admin} shards={}",
                server.ready.listen,
                server.ready.cores.len()
            );
            let _ = std::io::Write::flush(&mut std::io::stdout());
            let code = match server.join() {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("edgeslab: {e}");
                    1
                }
            };
            exit_now(code)
        }
    }
}

/// Ends a server whose shards have stopped and written their checkpoints,
/// without the C runtime's exit handlers. One of them is mimalloc's, which
/// collects the main thread's heap while the process's other threads (the
/// signal watcher, blocking pools) may still free memory into it: about
/// one stop in thirty died there with SIGSEGV. Nothing durable is left to
/// do; stdout is flushed, stderr is unbuffered.
fn exit_now(code: i32) -> ! {
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // SAFETY: `_exit` takes no pointers and ends the process at once.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_specs_keep_colons_that_are_not_a_size() {
        let dev = "/dev/disk/by-path/pci-0000:3b:00.0-nvme-1";
        assert_eq!(split_cache_spec(dev), (PathBuf::from(dev), None));
        assert_eq!(
            split_cache_spec("/srv/c.slab:100GiB"),
            (PathBuf::from("/srv/c.slab"), Some(Size::bytes(100 << 30)))
        );
        assert_eq!(
            split_cache_spec("/srv/a:b/c.slab"),
            (PathBuf::from("/srv/a:b/c.slab"), None)
        );
        // An existing path is taken whole, whatever its last part reads as.
        let dir = std::env::temp_dir().join(format!("edgeslab-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let odd = dir.join("x:64");
        std::fs::write(&odd, b"").unwrap();
        let spec = odd.to_str().unwrap();
        assert_eq!(split_cache_spec(spec), (odd.clone(), None));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
