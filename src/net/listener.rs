//! Viewer listeners: one socket per shard in a single SO_REUSEPORT group, with
//! a classic BPF program that picks the socket of the shard running on the CPU
//! that received the connection. A connection then lives its whole life on the
//! core whose NIC queue delivered it. Sockets are bound here, on the main
//! thread and in shard order, because the kernel indexes the group by bind
//! order and the BPF program returns that index.

use super::conn::Conn;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// A bound, listening socket waiting to be handed to its shard's executor.
pub struct BoundListener {
    socket: Socket,
}

impl BoundListener {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("listener has no inet address"))
    }

    /// Wraps a listening socket bound elsewhere (the admin listener).
    pub fn from_std(listener: std::net::TcpListener) -> BoundListener {
        BoundListener {
            socket: Socket::from(listener),
        }
    }

    /// Wraps a listening socket received from another process.
    pub fn from_fd(fd: OwnedFd) -> BoundListener {
        BoundListener {
            socket: Socket::from(fd),
        }
    }

    /// A second descriptor of the same socket (to hand over later, while
    /// the shard accepts on this one).
    pub fn duplicate(&self) -> io::Result<OwnedFd> {
        Ok(self.socket.try_clone()?.into())
    }

    /// Hands the socket to the executor of the calling thread. Call it on the
    /// shard that will accept on it.
    pub fn into_listener(self) -> Listener {
        let fd = self.socket.into_raw_fd();
        // SAFETY: `fd` is a bound, listening TCP socket whose ownership we
        // just took from `socket`; nothing else holds it.
        Listener(unsafe { glommio::net::TcpListener::from_raw_fd(fd) })
    }
}

/// A listening socket served by this shard's executor.
pub struct Listener(glommio::net::TcpListener);

impl Listener {
    /// The next connection. Errors (EMFILE and the like) are the caller's to
    /// back off from.
    pub async fn accept(&self) -> io::Result<Conn> {
        let stream = self.0.accept().await.map_err(io::Error::from)?;
        Ok(Conn::new(stream))
    }
}

fn bind_one(addr: SocketAddr, backlog: i32) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_cloexec(true)?;
    socket.set_nodelay(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(backlog)?;
    Ok(socket)
}

/// How long a bind waits for a listener of a process that just exited to
/// leave LISTEN: io_uring tears its sockets down after the process is
/// reaped, measured here at up to ~70 ms under load (shared/notes).
const BIND_PATIENCE: Duration = Duration::from_secs(3);

/// Waits (bounded) until no socket listens on `addr`. A viewer group must
/// not join the reuseport group of a process that is going away: the
/// steering program's indexes would point at the dying sockets, whose
/// connections are reset. Tested with a plain bind, which fails while any
/// socket listens there. Past the wait, the caller binds anyway (another
/// live process: the cache lock decides whether it may serve).
fn wait_until_free(addr: SocketAddr) {
    if addr.port() == 0 {
        return;
    }
    let deadline = Instant::now() + BIND_PATIENCE;
    loop {
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .and_then(|s| {
                s.set_reuse_address(true)?;
                s.bind(&SockAddr::from(addr))
            });
        match probe {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => return,
        }
    }
}

/// Binds a plain listener (the admin API) with `SO_REUSEADDR`, retrying
/// while a previous process's socket is still being torn down.
pub fn bind_single(addr: SocketAddr) -> io::Result<BoundListener> {
    let deadline = Instant::now() + BIND_PATIENCE;
    loop {
        let attempt = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .and_then(|s| {
                s.set_reuse_address(true)?;
                s.set_cloexec(true)?;
                s.bind(&SockAddr::from(addr))?;
                s.listen(1024)?;
                Ok(s)
            });
        match attempt {
            Ok(socket) => return Ok(BoundListener { socket }),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Binds one listener per shard on `addr`. With port 0 the first bind picks a
/// port and the others join it. `shard_cpus[i]` is the CPU of shard i.
pub fn bind_group(addr: SocketAddr, shard_cpus: &[usize]) -> io::Result<Vec<BoundListener>> {
    wait_until_free(addr);
    let mut sockets = Vec::with_capacity(shard_cpus.len());
    let mut addr = addr;
    for _ in shard_cpus {
        let s = bind_one(addr, 4096)
            .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
        if addr.port() == 0
            && let Some(a) = s.local_addr()?.as_socket()
        {
            addr = a;
        }
        sockets.push(s);
    }
    if let Some(first) = sockets.first()
        && shard_cpus.len() > 1
    {
        attach_cpu_steering(first.as_raw_fd(), shard_cpus)?;
    }
    Ok(sockets
        .into_iter()
        .map(|socket| BoundListener { socket })
        .collect())
}

// Classic BPF opcodes (linux/filter.h), spelled out because libc has no constants for them.
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
const SKF_AD_OFF: i32 = -0x1000;
const SKF_AD_CPU: i32 = 36;

/// The steering program: load the current CPU, map it to a shard index, or
/// return an out-of-range index so the kernel falls back to its hash.
pub fn steering_program(shard_cpus: &[usize]) -> Vec<libc::sock_filter> {
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut prog = vec![op(BPF_LD_W_ABS, 0, 0, (SKF_AD_OFF + SKF_AD_CPU) as u32)];
    for (index, &cpu) in shard_cpus.iter().enumerate() {
        prog.push(op(BPF_JEQ_K, 0, 1, cpu as u32));
        prog.push(op(BPF_RET_K, 0, 0, index as u32));
    }
    prog.push(op(BPF_RET_K, 0, 0, u32::MAX));
    prog
}

/// Points the steering program of a group received from another process
/// at this process's shard CPUs (the group keeps its order of sockets).
pub fn steer(group: &[BoundListener], shard_cpus: &[usize]) -> io::Result<()> {
    match group.first() {
        Some(first) if shard_cpus.len() > 1 => {
            attach_cpu_steering(first.socket.as_raw_fd(), shard_cpus)
        }
        _ => Ok(()),
    }
}

fn attach_cpu_steering(fd: RawFd, shard_cpus: &[usize]) -> io::Result<()> {
    let mut prog = steering_program(shard_cpus);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: fprog points at `prog`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("SO_ATTACH_REUSEPORT_CBPF: {e}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_maps_each_cpu_to_its_shard() {
        let p = steering_program(&[2, 5]);
        assert_eq!(p.len(), 1 + 2 * 2 + 1);
        assert_eq!((p[1].code, p[1].k), (BPF_JEQ_K, 2));
        assert_eq!((p[2].code, p[2].k), (BPF_RET_K, 0));
        assert_eq!((p[3].code, p[3].k), (BPF_JEQ_K, 5));
        assert_eq!((p[4].code, p[4].k), (BPF_RET_K, 1));
        assert_eq!(p[5].k, u32::MAX);
    }

    #[test]
    fn group_shares_one_port_and_accepts_the_program() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), &[0, 1]).unwrap();
        let a = group[0].local_addr().unwrap();
        let b = group[1].local_addr().unwrap();
        assert_eq!(a, b);
        assert_ne!(a.port(), 0);
    }
}
