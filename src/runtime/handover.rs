//! Binary upgrade without dropped connections: a running server offers its
//! listening sockets on a local control socket, and a new process started
//! with `serve --takeover` asks for them. The sockets themselves pass
//! (SCM_RIGHTS), so the kernel's accept queues, the reuseport group and its
//! steering program carry over and no connection is refused: connections
//! that arrive in between wait in the queue. The old process then stops
//! accepting, drains, writes its checkpoint and exits, which releases the
//! cache device's lock; the new process waits for that lock, loads the
//! checkpoint and starts accepting.
//!
//! The control socket lives in the abstract namespace (nothing on disk to
//! clean up or protect), is named after the cache path (one per cache), and
//! answers only a peer with the server's own user id or root.

use crate::net::listener::BoundListener;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The request a new process sends, and the version of this exchange.
const HELLO: &str = "edgeslab-takeover 1";

/// How often the offer looks for a request or a stop.
const STOP_POLL: Duration = Duration::from_millis(20);

/// How long either side waits on the other during the exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a takeover could not be had.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error(
        "--takeover: no running edgeslab offers the cache {path} (is it running, with this cache path?): {source}"
    )]
    NoOffer {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("--takeover: the running process refused: {0}")]
    Refused(String),
    #[error("--takeover: exchange with the running process failed: {0}")]
    Exchange(#[source] io::Error),
    #[error("handover.socket: cannot offer the listeners for a later takeover: {0}")]
    Offer(#[source] io::Error),
}

/// The abstract socket name for a cache path: stable across builds (the
/// old and the new binary must agree), short enough for `sun_path`.
fn socket_name(cache_path: &Path) -> Vec<u8> {
    let canonical = std::fs::canonicalize(cache_path).unwrap_or_else(|_| cache_path.to_path_buf());
    let hash = xxhash_rust::xxh3::xxh3_64(canonical.as_os_str().as_encoded_bytes());
    format!("edgeslab-handover-{hash:016x}").into_bytes()
}

/// What the running process hands over.
pub struct Handed {
    /// The viewer listeners, in the old process's shard order.
    pub viewers: Vec<BoundListener>,
    /// The HTTPS listeners, likewise (none when it had no `tls.addr`).
    pub https: Vec<BoundListener>,
    pub admin: Option<BoundListener>,
    /// The old process, which holds the cache until it exits.
    pub pid: u32,
    /// How long the old process may take to drain before its checkpoint.
    pub drain: Duration,
}

/// What a serving process can offer: duplicates of its listening sockets
/// (the shards own the originals).
pub struct Offer {
    /// Where the viewer listeners listen.
    pub listen: std::net::SocketAddr,
    pub viewers: Vec<OwnedFd>,
    pub https: Vec<OwnedFd>,
    pub admin: Option<OwnedFd>,
    pub drain: Duration,
}

/// Whether a socket listening at `got` is the one a configuration asking
/// for `want` means: the same address, or any port on the same IP when it
/// asks for port 0.
pub fn same_place(got: std::net::SocketAddr, want: std::net::SocketAddr) -> bool {
    got == want || (want.port() == 0 && got.ip() == want.ip())
}

/// Starts answering takeover requests on a thread of its own. The first
/// accepted takeover raises `stop` (the process then drains, writes its
/// checkpoint and exits, as on SIGTERM). Once `stop` is raised for any
/// reason, the offer ends and its duplicates close, so that a stopping
/// server's listeners close with its shards' and refuse new connections.
pub fn offer(cache_path: &Path, offer: Offer, stop: Arc<AtomicBool>) -> Result<(), HandoverError> {
    let addr =
        UnixAddr::from_abstract_name(socket_name(cache_path)).map_err(HandoverError::Offer)?;
    let listener = UnixListener::bind_addr(&addr).map_err(HandoverError::Offer)?;
    listener
        .set_nonblocking(true)
        .map_err(HandoverError::Offer)?;
    std::thread::Builder::new()
        .name("edgeslab-handover".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let conn = match listener.accept() {
                    Ok((conn, _)) => conn,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(STOP_POLL);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!("takeover requests: accept failed: {e}");
                        std::thread::sleep(STOP_POLL);
                        continue;
                    }
                };
                match answer(&conn, &offer) {
                    Ok(pid) => {
                        tracing::info!(
                            new_pid = pid,
                            "listeners handed over: draining, then checkpointing and exiting"
                        );
                        stop.store(true, Ordering::SeqCst);
                    }
                    Err(e) => tracing::warn!("takeover request not served: {e}"),
                }
            }
        })
        .map_err(HandoverError::Offer)?;
    Ok(())
}

/// Serves one request; returns the new process's pid once the sockets have
/// been sent.
fn answer(conn: &UnixStream, offer: &Offer) -> io::Result<u32> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    conn.set_write_timeout(Some(EXCHANGE_TIMEOUT))?;
    let cred = nix::sys::socket::getsockopt(conn, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(io::Error::from)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if cred.uid() != 0 && cred.uid() != me {
        return Err(io::Error::other(format!(
            "pid {} runs as uid {}, not {me} or root",
            cred.pid(),
            cred.uid()
        )));
    }
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    let field = |name: &str| {
        line.trim_end()
            .strip_prefix(HELLO)?
            .split(' ')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let refuse = |why: String| -> io::Result<u32> {
        let _ = (&*conn).write_all(format!("refused {why}\n").as_bytes());
        Err(io::Error::other(why))
    };
    let shards = field("shards").and_then(|n| n.parse::<usize>().ok());
    let listen = field("listen").and_then(|a| a.parse::<std::net::SocketAddr>().ok());
    let (Some(shards), Some(listen)) = (shards, listen) else {
        return refuse(format!("unknown request {:?}", line.trim_end()));
    };
    if !same_place(offer.listen, listen) {
        return refuse(format!(
            "this process listens on {} and the new one would listen on {listen}: start it with the same listen.addr, or stop this one first",
            offer.listen
        ));
    }
    if shards != offer.viewers.len() {
        return refuse(format!(
            "this process serves {} shards and the new one would run {shards}: start it with the same cores, or stop this one first",
            offer.viewers.len()
        ));
    }
    let header = format!(
        "ok pid={} drain_ms={} https={} admin={}\n",
        std::process::id(),
        offer.drain.as_millis(),
        offer.https.len(),
        u8::from(offer.admin.is_some())
    );
    let mut fds: Vec<RawFd> = offer.viewers.iter().map(|f| f.as_raw_fd()).collect();
    fds.extend(offer.https.iter().map(|f| f.as_raw_fd()));
    fds.extend(offer.admin.as_ref().map(|f| f.as_raw_fd()));
    sendmsg::<()>(
        conn.as_raw_fd(),
        &[io::IoSlice::new(header.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(io::Error::from)?;
    Ok(cred.pid() as u32)
}

/// Asks the process serving `cache_path` for its listeners, for `shards`
/// shards listening on `listen`.
pub fn take(
    cache_path: &Path,
    listen: std::net::SocketAddr,
    shards: usize,
) -> Result<Handed, HandoverError> {
    let no_offer = |source| HandoverError::NoOffer {
        path: cache_path.display().to_string(),
        source,
    };
    let addr = UnixAddr::from_abstract_name(socket_name(cache_path)).map_err(no_offer)?;
    let conn = UnixStream::connect_addr(&addr).map_err(no_offer)?;
    conn.set_read_timeout(Some(EXCHANGE_TIMEOUT))
        .and_then(|_| conn.set_write_timeout(Some(EXCHANGE_TIMEOUT)))
        .and_then(|_| {
            (&conn).write_all(format!("{HELLO} shards={shards} listen={listen}\n").as_bytes())
        })
        .map_err(HandoverError::Exchange)?;
    let mut buf = [0u8; 512];
    let mut space = nix::cmsg_space!([RawFd; 256]);
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| HandoverError::Exchange(e.into()))?;
    let mut fds = Vec::new();
    for c in msg.cmsgs() {
        if let ControlMessageOwned::ScmRights(received) = c {
            // SAFETY: the kernel just installed these descriptors for us;
            // each is owned once, here.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let n = msg.bytes;
    let header = String::from_utf8_lossy(&buf[..n]).trim_end().to_string();
    if let Some(why) = header.strip_prefix("refused ") {
        return Err(HandoverError::Refused(why.to_string()));
    }
    let bad = || HandoverError::Exchange(io::Error::other(format!("unexpected answer {header:?}")));
    let field = |name: &str| -> Option<u64> {
        header
            .strip_prefix("ok ")?
            .split(' ')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    let (Some(pid), Some(drain_ms), Some(admin)) =
        (field("pid"), field("drain_ms"), field("admin"))
    else {
        return Err(bad());
    };
    // Absent from an older process's answer: it had no HTTPS listeners.
    let https = field("https").unwrap_or(0) as usize;
    if fds.len() != shards + https + admin as usize {
        return Err(bad());
    }
    let admin = (admin == 1).then(|| fds.pop()).flatten();
    let https_fds = fds.split_off(shards);
    Ok(Handed {
        viewers: fds.into_iter().map(BoundListener::from_fd).collect(),
        https: https_fds.into_iter().map(BoundListener::from_fd).collect(),
        admin: admin.map(BoundListener::from_fd),
        pid: pid as u32,
        drain: Duration::from_millis(drain_ms),
    })
}
