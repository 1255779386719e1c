//! Zero-copy relaying of a body from one plain TCP socket to another:
//! splice(2) from the source socket into a pipe and from the pipe into the
//! sink socket, so the bytes never enter user space. glommio's ring has no
//! splice operation, so each shard drives a small io_uring ring of its own
//! (`IORING_OP_SPLICE`, and `IORING_OP_POLL_ADD` with a linked timeout to
//! wait for a socket); the ring signals an eventfd that the shard awaits
//! through glommio, so its completions wake the shard's tasks like any other
//! I/O.
//!
//! Both sockets are non-blocking while a body is spliced: the kernel runs a
//! splice on a worker thread of the ring, and a non-blocking one only moves
//! what is there and returns, so no worker ever sits on a stalled peer; the
//! waits are polls, which hold no thread. A shard's ring is made on its first
//! use; a kernel that refuses it (or a socket that is not plain TCP) leaves
//! the caller's copying path in charge.

use glommio::io::BufferedFile;
use io_uring::{IoUring, opcode, squeue, types};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Submission slots of a shard's ring: two per wait, one per splice.
const RING_ENTRIES: u32 = 256;
/// Bytes a pipe is asked to hold: one splice moves up to this much.
const PIPE_SIZE: libc::c_int = 1 << 20;
/// Empty pipes a shard keeps for the next relay.
const SPARE_PIPES: usize = 16;
/// Worker threads a ring may run at once. Splices are non-blocking and
/// short, so a few serve a shard's relays; more would only compete with
/// the shards for the cores.
const MAX_WORKERS: u32 = 4;
/// user_data of the entries whose completions nobody awaits (linked
/// timeouts, cancellations).
const UNWATCHED: u64 = u64::MAX;

/// Which side of a relay failed.
#[derive(Debug)]
pub enum SpliceError {
    /// The source ended early, failed or stalled past its timeout.
    Source(io::Error),
    /// The sink failed or did not take bytes within its timeout.
    Sink(io::Error),
}

/// How the body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// Exactly this many bytes.
    Length(u64),
    /// When the source closes.
    Close,
}

/// Timeouts of a relay.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// Longest wait for the source's next bytes.
    pub source_idle: Duration,
    /// Longest wait for the sink to take bytes.
    pub sink_idle: Duration,
}

struct Slot {
    result: Option<i32>,
    waker: Option<Waker>,
    /// Its future was dropped: the completion is discarded.
    abandoned: bool,
}

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors we then own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both were just opened and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A larger pipe may be refused (pipe-max-size, the user's pipe
        // pages): the default size still works, in smaller steps.
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        // SAFETY: as above.
        let capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        if capacity <= 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe {
            read,
            write,
            capacity: capacity as usize,
        })
    }
}

/// A shard's splice ring, its pending operations and spare pipes.
pub struct Ring {
    uring: RefCell<IoUring>,
    slots: RefCell<HashMap<u64, Slot>>,
    next_id: Cell<u64>,
    pipes: RefCell<Vec<Pipe>>,
    /// The eventfd could no longer be read: nothing would ever complete.
    dead: Cell<bool>,
    /// sendfile(2) was refused outright (a seccomp filter, a kernel
    /// without it): it is not tried again on this shard.
    sendfile_refused: Cell<bool>,
}

thread_local! {
    /// This shard's ring: made on first use; None if the kernel refused it.
    static RING: RefCell<Option<Option<Rc<Ring>>>> = const { RefCell::new(None) };
}

/// This shard's ring, made (and its completions driven) on first use.
pub fn ring() -> Option<Rc<Ring>> {
    RING.with(|r| {
        r.borrow_mut()
            .get_or_insert_with(|| match Ring::start() {
                Ok(ring) => Some(ring),
                Err(e) => {
                    tracing::warn!("no splice ring on this shard, bodies are copied: {e}");
                    None
                }
            })
            .clone()
    })
}

impl Ring {
    fn start() -> io::Result<Rc<Ring>> {
        // As the shard's own rings (see vendor/README.md): completions
        // caused on another CPU run at this thread's next system call rather
        // than interrupting it. A kernel before 5.19 refuses the flag.
        let uring = IoUring::builder()
            .setup_coop_taskrun()
            .build(RING_ENTRIES)
            .or_else(|_| IoUring::new(RING_ENTRIES))?;
        // A kernel without the limit runs as many workers as it likes.
        let mut workers = [MAX_WORKERS, MAX_WORKERS];
        let _ = uring.submitter().register_iowq_max_workers(&mut workers);
        // SAFETY: eventfd returns a new descriptor we own (or -1).
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `efd` is ours; the file owns it from here on.
        let event = unsafe { BufferedFile::from_raw_fd(efd) };
        uring.submitter().register_eventfd(efd)?;
        let ring = Rc::new(Ring {
            uring: RefCell::new(uring),
            slots: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            pipes: RefCell::new(Vec::new()),
            dead: Cell::new(false),
            sendfile_refused: Cell::new(false),
        });
        let driver = Rc::downgrade(&ring);
        crate::runtime::task::spawn_detached(async move {
            // Each completion bumps the eventfd; reading it resets the count,
            // and the completions that came before are then reaped.
            while event.read_at(0, 8).await.is_ok() {
                let Some(ring) = driver.upgrade() else { return };
                ring.reap();
            }
            if let Some(ring) = driver.upgrade() {
                tracing::error!("the splice ring's eventfd failed: bodies are copied from now on");
                ring.fail_all();
            }
        });
        Ok(ring)
    }

    /// Hands every completion to its waiting operation.
    fn reap(&self) {
        let mut uring = self.uring.borrow_mut();
        let mut slots = self.slots.borrow_mut();
        for cqe in uring.completion() {
            let id = cqe.user_data();
            if id == UNWATCHED {
                continue;
            }
            let Some(slot) = slots.get_mut(&id) else {
                continue;
            };
            if slot.abandoned {
                slots.remove(&id);
                continue;
            }
            slot.result = Some(cqe.result());
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    /// Ends every waiting operation with an error, and the ring's use.
    fn fail_all(&self) {
        self.dead.set(true);
        RING.with(|r| *r.borrow_mut() = Some(None));
        let mut slots = self.slots.borrow_mut();
        slots.retain(|_, slot| !slot.abandoned);
        for slot in slots.values_mut() {
            slot.result.get_or_insert(-libc::EIO);
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    /// Queues entries and tells the kernel.
    fn submit(&self, entries: &[squeue::Entry]) -> io::Result<()> {
        if self.dead.get() {
            return Err(io::Error::other("splice ring stopped"));
        }
        let mut uring = self.uring.borrow_mut();
        // SAFETY: the entries name descriptors and a timespec that stay
        // valid until the submit below has returned, which is when the
        // kernel has read them (no SQPOLL thread on this ring).
        if unsafe { uring.submission().push_multiple(entries) }.is_err() {
            uring.submit()?;
            // SAFETY: as above.
            unsafe { uring.submission().push_multiple(entries) }
                .map_err(|_| io::Error::other("splice ring full"))?;
        }
        uring.submit()?;
        Ok(())
    }

    fn op(&self, entry: squeue::Entry, timeout: Option<Duration>) -> Op<'_> {
        Op {
            ring: self,
            entry: Some(entry),
            timeout: timeout.map(|d| {
                types::Timespec::new()
                    .sec(d.as_secs())
                    .nsec(d.subsec_nanos())
            }),
            id: None,
        }
    }

    /// One non-blocking splice of up to `len` bytes; Ok(0) at the end of the
    /// source, `WouldBlock` when nothing could move.
    async fn splice(&self, from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
        let len = len.min(u32::MAX as usize) as u32;
        let e = opcode::Splice::new(types::Fd(from), -1, types::Fd(to), -1, len)
            .flags(libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE)
            .build();
        self.op(e, None).await.map(|n| n as usize)
    }

    /// Waits until `fd` is ready for `events` (or has an error or hang-up),
    /// at most `timeout`.
    async fn wait(&self, fd: RawFd, events: i16, timeout: Duration) -> io::Result<()> {
        let e = opcode::PollAdd::new(types::Fd(fd), events as u32).build();
        match self.op(e, Some(timeout)).await {
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "splice peer stalled",
            )),
            r => r.map(|_| ()),
        }
    }

    /// Sends `len` bytes of `file` from `offset` to socket `sock` (plain
    /// TCP, blocking as glommio keeps it) with sendfile(2): the file's pages
    /// go to the socket by reference, not copied. Waits for room at most
    /// `idle` at a time. Returns the bytes sent, and any error.
    pub async fn send_file(
        &self,
        sock: RawFd,
        file: RawFd,
        offset: u64,
        len: usize,
        idle: Duration,
    ) -> (usize, io::Result<()>) {
        if self.sendfile_refused.get() {
            return (0, Err(io::Error::from_raw_os_error(libc::ENOSYS)));
        }
        let _sock = match NonBlocking::set(sock) {
            Ok(g) => g,
            Err(e) => return (0, Err(e)),
        };
        let mut sent = 0;
        while sent < len {
            let mut off = (offset + sent as u64) as libc::off_t;
            // SAFETY: both descriptors are open for the call; `off` is ours.
            let n = unsafe { libc::sendfile(sock, file, &mut off, len - sent) };
            if n > 0 {
                sent += n as usize;
                continue;
            }
            if n == 0 {
                return (sent, Err(io::ErrorKind::UnexpectedEof.into()));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.wait(sock, libc::POLLOUT, idle).await {
                        return (sent, Err(e));
                    }
                }
                _ => {
                    if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
                        self.sendfile_refused.set(true);
                        tracing::warn!("sendfile(2) refused ({e}): RAM-tier hits are copied");
                    }
                    return (sent, Err(e));
                }
            }
        }
        (sent, Ok(()))
    }

    fn take_pipe(&self) -> io::Result<Pipe> {
        match self.pipes.borrow_mut().pop() {
            Some(p) => Ok(p),
            None => Pipe::new(),
        }
    }

    fn give_back(&self, pipe: Pipe) {
        let mut pipes = self.pipes.borrow_mut();
        if pipes.len() < SPARE_PIPES {
            pipes.push(pipe);
        }
    }

    /// Moves a body from socket `from` to socket `to` (both plain TCP, in
    /// blocking mode as glommio keeps them; they are switched to
    /// non-blocking for the relay and back after). Returns the bytes moved;
    /// on an error, how many had reached the sink too.
    pub async fn relay(
        &self,
        from: RawFd,
        to: RawFd,
        extent: Extent,
        deadlines: Deadlines,
    ) -> (u64, Result<(), SpliceError>) {
        let pipe = match self.take_pipe() {
            Ok(p) => p,
            Err(e) => return (0, Err(SpliceError::Sink(e))),
        };
        let _from = match NonBlocking::set(from) {
            Ok(g) => g,
            Err(e) => return (0, Err(SpliceError::Source(e))),
        };
        let _to = match NonBlocking::set(to) {
            Ok(g) => g,
            Err(e) => return (0, Err(SpliceError::Sink(e))),
        };
        let mut moved = Moved {
            left: match extent {
                Extent::Length(n) => n,
                Extent::Close => u64::MAX,
            },
            in_pipe: 0,
            sent: 0,
            ended: false,
        };
        let result = self.pump(from, to, &pipe, &mut moved, deadlines).await;
        let result = match (result, extent) {
            (Ok(()), Extent::Length(_)) if moved.left > 0 => {
                Err(SpliceError::Source(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "source closed inside the body",
                )))
            }
            (r, _) => r,
        };
        // A pipe that still holds bytes would hand them to the next relay.
        if moved.in_pipe == 0 {
            self.give_back(pipe);
        }
        (moved.sent, result)
    }

    async fn pump(
        &self,
        from: RawFd,
        to: RawFd,
        pipe: &Pipe,
        m: &mut Moved,
        deadlines: Deadlines,
    ) -> Result<(), SpliceError> {
        let (pipe_r, pipe_w) = (pipe.read.as_raw_fd(), pipe.write.as_raw_fd());
        loop {
            let reading = !m.ended && m.left > 0;
            if !reading && m.in_pipe == 0 {
                return Ok(());
            }
            let mut progressed = false;
            if reading && m.in_pipe < pipe.capacity {
                let room = (pipe.capacity - m.in_pipe) as u64;
                match self.splice(from, pipe_w, room.min(m.left) as usize).await {
                    Ok(0) => m.ended = true,
                    Ok(n) => {
                        m.in_pipe += n;
                        m.left -= n as u64;
                        progressed = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(SpliceError::Source(e)),
                }
            }
            if m.in_pipe > 0 {
                match self.splice(pipe_r, to, m.in_pipe).await {
                    Ok(n) => {
                        m.in_pipe -= n;
                        m.sent += n as u64;
                        progressed |= n > 0;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(SpliceError::Sink(e)),
                }
            }
            if progressed {
                continue;
            }
            // Nothing moved: wait for whichever side holds things up. With
            // bytes in the pipe that is the sink (the source is only read
            // while the pipe has room, and a full or draining pipe waits on
            // the sink anyway); with none, the source.
            if m.in_pipe > 0 {
                self.wait(to, libc::POLLOUT, deadlines.sink_idle)
                    .await
                    .map_err(SpliceError::Sink)?;
            } else if !m.ended {
                self.wait(from, libc::POLLIN | libc::POLLRDHUP, deadlines.source_idle)
                    .await
                    .map_err(SpliceError::Source)?;
            }
        }
    }
}

struct Moved {
    /// Bytes still to read from the source.
    left: u64,
    in_pipe: usize,
    sent: u64,
    /// The source reached its end.
    ended: bool,
}

/// A socket switched to non-blocking mode for as long as this lives.
struct NonBlocking {
    fd: RawFd,
    flags: libc::c_int,
}

impl NonBlocking {
    fn set(fd: RawFd) -> io::Result<NonBlocking> {
        // SAFETY: fcntl on a descriptor the caller keeps open for our life.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(NonBlocking { fd, flags })
    }
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        // SAFETY: the descriptor is still open (see `set`).
        unsafe { libc::fcntl(self.fd, libc::F_SETFL, self.flags) };
    }
}

/// One operation on the ring, submitted on first poll.
struct Op<'r> {
    ring: &'r Ring,
    entry: Option<squeue::Entry>,
    /// Read by the kernel while the entry is submitted (the future is
    /// pinned by then).
    timeout: Option<types::Timespec>,
    id: Option<u64>,
}

impl Future for Op<'_> {
    type Output = io::Result<i32>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<i32>> {
        let this = self.get_mut();
        if let Some(entry) = this.entry.take() {
            let id = this.ring.next_id.get();
            this.ring.next_id.set(id.wrapping_add(1) % UNWATCHED);
            let entry = entry.user_data(id);
            let submitted = match &this.timeout {
                Some(ts) => {
                    let t = opcode::LinkTimeout::new(ts).build().user_data(UNWATCHED);
                    this.ring.submit(&[entry.flags(squeue::Flags::IO_LINK), t])
                }
                None => this.ring.submit(&[entry]),
            };
            if let Err(e) = submitted {
                return Poll::Ready(Err(e));
            }
            this.ring.slots.borrow_mut().insert(
                id,
                Slot {
                    result: None,
                    waker: Some(cx.waker().clone()),
                    abandoned: false,
                },
            );
            this.id = Some(id);
            return Poll::Pending;
        }
        let Some(id) = this.id else {
            return Poll::Ready(Err(io::Error::other(
                "splice operation polled after its end",
            )));
        };
        let mut slots = this.ring.slots.borrow_mut();
        let Some(slot) = slots.get_mut(&id) else {
            return Poll::Ready(Err(io::Error::other("splice operation lost")));
        };
        match slot.result {
            Some(res) => {
                slots.remove(&id);
                this.id = None;
                Poll::Ready(if res < 0 {
                    Err(io::Error::from_raw_os_error(-res))
                } else {
                    Ok(res)
                })
            }
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Op<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let pending = {
            let mut slots = self.ring.slots.borrow_mut();
            match slots.get_mut(&id) {
                Some(slot) if slot.result.is_none() => {
                    slot.abandoned = true;
                    true
                }
                _ => {
                    slots.remove(&id);
                    false
                }
            }
        };
        if pending {
            let cancel = opcode::AsyncCancel::new(id).build().user_data(UNWATCHED);
            let _ = self.ring.submit(&[cancel]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_is_made_non_blocking_and_sized() {
        let p = Pipe::new().unwrap();
        assert!(p.capacity >= 4096);
        // SAFETY: fcntl on a descriptor the pipe owns.
        let flags = unsafe { libc::fcntl(p.read.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(flags & libc::O_NONBLOCK, 0);
    }
}
