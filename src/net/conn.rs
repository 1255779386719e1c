//! A TCP connection, plain or TLS, with a read buffer and deadlines, used
//! for both viewers and origins. Bytes read but not yet consumed stay in
//! the buffer, so pipelined requests and the bytes after a response body
//! are never lost.

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The bytes' way: the socket itself, or TLS over it.
enum Stream {
    Plain(TcpStream),
    /// A viewer's HTTPS connection.
    TlsServer(Box<futures_rustls::server::TlsStream<TcpStream>>),
    /// A connection to an `https://` upstream.
    TlsClient(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::TlsServer(s) => s.get_ref().0,
            Stream::TlsClient(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::TlsServer(s) => Pin::new(s).poll_read(cx, buf),
            Stream::TlsClient(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::TlsServer(s) => Pin::new(s).poll_write(cx, buf),
            Stream::TlsClient(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::TlsServer(s) => Pin::new(s).poll_flush(cx),
            Stream::TlsClient(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::TlsServer(s) => Pin::new(s).poll_close(cx),
            Stream::TlsClient(s) => Pin::new(s).poll_close(cx),
        }
    }
}

/// How a TLS handshake with a viewer went, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// A full handshake.
    Full,
    /// A resumed session (ticket or session id).
    Resumed,
}

/// Where an upstream connection goes back to: the address it was opened
/// to and, over TLS, the server name it verified (two names on one address
/// are two pools).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Remote {
    pub addr: SocketAddr,
    pub tls_name: Option<Arc<str>>,
}

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 << 10;
/// How long a TLS close_notify may take to go out before the socket is shut.
const CLOSE_NOTIFY_WITHIN: Duration = Duration::from_secs(1);
/// The least buffer a connection's next message is read into when the
/// thread has no spare (enough for a typical request head).
const IDLE_CHUNK: usize = 2 << 10;

pub struct Conn {
    stream: Stream,
    /// Read buffer, initialised over its whole length (taken from and
    /// given back to `crate::spare`'s read buffers): the data are
    /// `buf[start..filled]`, the rest is stale, so a read never zeroes it.
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    /// Where this side connected to (None for accepted connections): an
    /// upstream connection goes back to that pool.
    remote: Option<Remote>,
    /// Bytes handed to `write_all` over the connection's life.
    written: u64,
    /// When the first write since `mark_first_write` began.
    first_write: Option<Instant>,
    /// Bounds the connection's reads and writes one after another (see
    /// `Lazy`): made at the first that waits, so a wait allocates nothing.
    timer: Lazy,
}

/// Sends what of `head` then `body` the socket `fd` takes now, in one
/// `sendmsg` that never waits; the bytes sent (0 when it would wait or
/// fails: the caller's ordinary write then meets the error itself).
fn send_two_now(fd: std::os::fd::RawFd, head: &[u8], body: &[u8]) -> usize {
    let iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        },
    ];
    // SAFETY: an all-zero msghdr is valid (no address, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: `msg` points at two iovecs over live slices that the kernel
    // only reads, for the duration of the call.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    usize::try_from(n).unwrap_or(0)
}

/// Runs `fut` but gives up with `TimedOut` after `d`, on a timer of its
/// own.
pub async fn with_timeout<T>(
    d: Duration,
    what: &'static str,
    fut: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    timed(&mut Lazy::default(), d, what, fut).await
}

/// A timer that bounds one operation after another, left armed between
/// them. Registering a timer with the reactor and taking it out again
/// costs two ordered-map updates, and a connection waits twice or more per
/// request; deadlines are seconds away and operations take microseconds.
/// So the timer stays registered at the deadline of an earlier operation,
/// and an operation that waits checks only that it fires no later than its
/// own deadline and wakes the task now waiting. When it fires early, the
/// operation finds its own deadline not yet reached and arms it again for
/// what is left (a task may be polled when nothing it waits on is ready).
/// A connection left idle (between requests, or in an upstream pool) keeps
/// its timer until it fires: the wake then finds the task waiting on
/// something else, or finished, and does nothing; the task that uses the
/// connection next arms it for itself.
#[derive(Default)]
struct Lazy {
    timer: Option<Timer>,
    /// When the registered timer fires, and which task it wakes.
    armed: Option<(Instant, WakerId)>,
}

/// Which task a waker wakes (what `Waker::will_wake` compares), kept
/// without holding the task: while the timer is registered, the reactor's
/// clone of the waker keeps the task, so the identity cannot pass to
/// another task before the time it is kept with has passed; after that it
/// is never trusted (`wake_by` re-arms).
#[derive(Clone, Copy, PartialEq, Eq)]
struct WakerId(*const (), *const std::task::RawWakerVTable);

impl WakerId {
    fn of(w: &Waker) -> WakerId {
        WakerId(w.data(), w.vtable())
    }
}

impl Lazy {
    /// Makes sure a wake reaches the task of `cx` by `deadline` (now:
    /// `now`); Err when the deadline has passed.
    fn wake_by(&mut self, deadline: Instant, now: Instant, cx: &mut Context<'_>) -> Result<(), ()> {
        if now >= deadline {
            return Err(());
        }
        if let Some((at, task)) = self.armed
            && at > now
            && at <= deadline
            && task == WakerId::of(cx.waker())
        {
            return Ok(());
        }
        let t = self.timer.get_or_insert_with(|| Timer::new(deadline - now));
        // Taken out first, so the reset below only moves the time and the
        // poll registers it once, with this task's waker.
        t.cancel();
        t.reset(deadline - now);
        match Pin::new(&mut *t).poll(cx) {
            Poll::Pending => {
                self.armed = Some((deadline, WakerId::of(cx.waker())));
                Ok(())
            }
            // Reached between the clock read and the poll.
            Poll::Ready(_) => {
                self.armed = None;
                Err(())
            }
        }
    }
}

/// Runs `fut` but gives up with `TimedOut` after `d`, on `timer`: the
/// operation is polled first, so one that completes at once reads no clock
/// and touches no timer.
async fn timed<T>(
    timer: &mut Lazy,
    d: Duration,
    what: &'static str,
    fut: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let mut fut = std::pin::pin!(fut);
    let mut deadline = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = fut.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        let now = Instant::now();
        let deadline = *deadline.get_or_insert(now + d);
        match timer.wake_by(deadline, now, cx) {
            Ok(()) => Poll::Pending,
            Err(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what))),
        }
    })
    .await
}

/// Opens a connection to `addr`, giving up with `TimedOut` after `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(io::Error::from)?;
    let mut conn = Conn::new(stream);
    conn.remote = Some(Remote {
        addr,
        tls_name: None,
    });
    Ok(conn)
}

/// Opens a connection to `addr` and a TLS session over it, verifying the
/// upstream's certificate for `name`; both steps within `timeout`.
pub async fn connect_tls(
    addr: SocketAddr,
    name: &str,
    config: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> io::Result<Conn> {
    let started = Instant::now();
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(io::Error::from)?;
    let _ = stream.set_nodelay(true);
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let connector = futures_rustls::TlsConnector::from(config.clone());
    let left = timeout.saturating_sub(started.elapsed());
    let tls = with_timeout(
        left,
        "TLS handshake timed out",
        connector.connect(server_name, stream),
    )
    .await?;
    let mut conn = Conn::with_stream(Stream::TlsClient(Box::new(tls)));
    conn.remote = Some(Remote {
        addr,
        tls_name: Some(name.into()),
    });
    Ok(conn)
}

impl Conn {
    pub(super) fn new(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn::with_stream(Stream::Plain(stream))
    }

    fn with_stream(stream: Stream) -> Conn {
        Conn {
            stream,
            // Allocated by the first read, sized by what it waits for.
            buf: Vec::new(),
            start: 0,
            filled: 0,
            remote: None,
            written: 0,
            first_write: None,
            timer: Lazy::default(),
        }
    }

    /// Where `connect` went, for a connection this side opened.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    /// The address of the other end.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.tcp().peer_addr().map_err(io::Error::from)
    }

    /// Runs a viewer's TLS handshake on a freshly accepted connection,
    /// within `timeout`.
    pub async fn accept_tls(
        self,
        config: &Arc<rustls::ServerConfig>,
        timeout: Duration,
    ) -> io::Result<(Conn, Handshake)> {
        let Stream::Plain(tcp) = self.stream else {
            return Err(io::Error::other("TLS over TLS"));
        };
        let acceptor = futures_rustls::TlsAcceptor::from(config.clone());
        let tls = with_timeout(timeout, "TLS handshake timed out", acceptor.accept(tcp)).await?;
        let kind = match tls.get_ref().1.handshake_kind() {
            Some(rustls::HandshakeKind::Resumed) => Handshake::Resumed,
            _ => Handshake::Full,
        };
        Ok((Conn::with_stream(Stream::TlsServer(Box::new(tls))), kind))
    }

    /// The socket, when bytes go over it as they are (no TLS): what a
    /// splice may move from or to.
    pub fn plain_fd(&self) -> Option<std::os::fd::RawFd> {
        match &self.stream {
            Stream::Plain(s) => Some(s.as_raw_fd()),
            _ => None,
        }
    }

    /// Holds (true) or releases (false) partial segments on a plain
    /// connection (TCP_CORK): a response written in several pieces, a head
    /// then a body's chunks, leaves in full segments, not one small one per
    /// piece. Releasing sends what is held. Does nothing over TLS.
    pub fn cork(&self, on: bool) {
        let Some(fd) = self.plain_fd() else { return };
        let v = libc::c_int::from(on);
        // SAFETY: an int option on an open socket, read for its size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_CORK,
                (&raw const v).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    /// Counts bytes that went to the peer by another way than `write_all`
    /// (a splice).
    pub fn count_written(&mut self, n: u64) {
        self.written += n;
        if self.first_write.is_none() && n > 0 {
            self.first_write = Some(Instant::now());
        }
    }

    /// Whether the viewer came over TLS.
    pub fn is_tls(&self) -> bool {
        !matches!(self.stream, Stream::Plain(_))
    }

    /// Unconsumed bytes.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.filled]
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.filled);
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
        }
    }

    /// Takes up to `max` unconsumed bytes.
    pub fn take(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.buffered().len());
        let v = self.buffered()[..n].to_vec();
        self.consume(n);
        v
    }

    /// Reads more bytes into the buffer; Ok(0) at end of stream.
    pub async fn read_more(&mut self, timeout: Duration, what: &'static str) -> io::Result<usize> {
        self.read_up_to(READ_CHUNK, timeout, what).await
    }

    /// Waits for the first bytes of a connection's next message holding no
    /// buffer: a read that would wait hands the buffer it was lent back to
    /// the thread's spares before it does, so a connection idle between
    /// requests holds none. Once bytes come, the buffer they are in stays
    /// with the connection until it is idle again.
    pub async fn read_idle(&mut self, timeout: Duration, what: &'static str) -> io::Result<usize> {
        self.release_buffer();
        if !self.buf.is_empty() {
            // Bytes are buffered after all: read on behind them.
            return self.read_up_to(IDLE_CHUNK, timeout, what).await;
        }
        let stream = &mut self.stream;
        let (buf, filled) = (&mut self.buf, &mut self.filled);
        let read = std::future::poll_fn(|cx| {
            let mut lent = crate::spare::take_read_buffer(IDLE_CHUNK);
            let len = lent.len().min(READ_CHUNK);
            match Pin::new(&mut *stream).poll_read(cx, &mut lent[..len]) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    *buf = lent;
                    *filled = n;
                    Poll::Ready(Ok(n))
                }
                other => {
                    crate::spare::give_read_buffer(lent);
                    other
                }
            }
        });
        timed(&mut self.timer, timeout, what, read).await
    }

    /// Gives the read buffer back to the thread's spares when nothing is
    /// buffered (a connection going idle, or into a pool).
    pub fn release_buffer(&mut self) {
        if self.buffered().is_empty() && !self.buf.is_empty() {
            crate::spare::give_read_buffer(std::mem::take(&mut self.buf));
            self.start = 0;
            self.filled = 0;
        }
    }

    async fn read_up_to(
        &mut self,
        chunk: usize,
        timeout: Duration,
        what: &'static str,
    ) -> io::Result<usize> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        let need = self.filled + chunk;
        if self.buf.is_empty() {
            self.buf = crate::spare::take_read_buffer(need);
        } else if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        let stream = &mut self.stream;
        let target = &mut self.buf[self.filled..need];
        let r = timed(&mut self.timer, timeout, what, stream.read(target)).await;
        self.filled += *r.as_ref().unwrap_or(&0);
        r
    }

    /// Reads at most `max` more bytes (never beyond: what follows stays on
    /// the socket), by `deadline`; Ok(0) at end of stream.
    pub async fn read_at_most(&mut self, max: usize, deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "header timeout"));
        }
        self.read_up_to(max, left, "header timeout").await
    }

    /// Like `read_more`, with an absolute deadline.
    pub async fn read_more_until(
        &mut self,
        deadline: Instant,
        what: &'static str,
    ) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, what));
        }
        self.read_more(left, what).await
    }

    /// Bytes handed to `write_all` so far (counted before they are sent,
    /// so a write under way counts).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Forgets the first write: the next one is a new response's first.
    pub fn mark_first_write(&mut self) {
        self.first_write = None;
    }

    /// When the first write since `mark_first_write` began (None: nothing
    /// was written).
    pub fn first_write(&self) -> Option<Instant> {
        self.first_write
    }

    pub async fn write_all(&mut self, data: &[u8], timeout: Duration) -> io::Result<()> {
        self.count_write(data.len());
        self.send_all(data, timeout).await
    }

    /// Writes `head` and then `body` from where they are: on a plain
    /// connection in one system call when the socket takes both at once,
    /// with what it does not take (or everything, over TLS) written as
    /// `write_all` writes. So a small hit's body is not copied behind its
    /// head first.
    pub async fn write_all_two(
        &mut self,
        head: &[u8],
        body: &[u8],
        timeout: Duration,
    ) -> io::Result<()> {
        self.count_write(head.len() + body.len());
        let sent = match self.plain_fd() {
            Some(fd) => send_two_now(fd, head, body),
            None => 0,
        };
        if sent < head.len() {
            self.send_all(&head[sent..], timeout).await?;
            self.send_all(body, timeout).await
        } else {
            self.send_all(&body[sent - head.len()..], timeout).await
        }
    }

    /// Writes a head that more of the same response follows at once (a
    /// body sent by `write_file`): on a plain connection with `MSG_MORE`,
    /// so the kernel holds the head to leave in one segment with the start
    /// of the body instead of in a small one of its own, as `TCP_CORK`
    /// would, but only until the next send, which pushes as usual. What the
    /// socket does not take at once is written as `write_all` writes.
    pub async fn write_head_more(&mut self, head: &[u8], timeout: Duration) -> io::Result<()> {
        self.count_write(head.len());
        let sent = match self.plain_fd() {
            // SAFETY: the kernel only reads `head`, for the duration of the
            // call, on a socket this connection keeps open.
            Some(fd) => usize::try_from(unsafe {
                libc::send(
                    fd,
                    head.as_ptr().cast(),
                    head.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | libc::MSG_MORE,
                )
            })
            .unwrap_or(0),
            None => 0,
        };
        self.send_all(&head[sent..], timeout).await
    }

    /// Writes `data`, which are the bytes of `file` from `offset`: on a
    /// plain connection by sendfile(2), the file's pages lent to the socket
    /// rather than copied into it; otherwise (TLS, or no splice ring on
    /// this shard) `data` is written. Returns whether the pages were lent.
    pub async fn write_file(
        &mut self,
        data: &[u8],
        file: std::os::fd::RawFd,
        offset: u64,
        timeout: Duration,
    ) -> io::Result<bool> {
        let (Some(sock), Some(ring)) = (self.plain_fd(), crate::net::splice::ring()) else {
            return self.write_all(data, timeout).await.map(|()| false);
        };
        self.count_write(data.len());
        match ring
            .send_file(sock, file, offset, data.len(), timeout)
            .await
        {
            (_, Ok(())) => Ok(true),
            // A file the kernel will not send from, or a sendfile(2) a
            // seccomp filter refuses: nothing went, so the bytes are
            // written instead.
            (0, Err(e))
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EPERM | libc::EOPNOTSUPP)
                ) =>
            {
                self.send_all(data, timeout).await.map(|()| false)
            }
            (_, Err(e)) => Err(e),
        }
    }

    fn count_write(&mut self, len: usize) {
        self.written += len as u64;
        if self.first_write.is_none() && len > 0 {
            self.first_write = Some(Instant::now());
        }
    }

    async fn send_all(&mut self, data: &[u8], timeout: Duration) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let write = self.stream.write_all(data);
        timed(&mut self.timer, timeout, "write timed out", write).await
    }

    pub async fn flush(&mut self, timeout: Duration) -> io::Result<()> {
        let flush = self.stream.flush();
        timed(&mut self.timer, timeout, "flush timed out", flush).await
    }

    /// Shuts down our sending side so the peer sees the end of the response
    /// (after TLS's close_notify, bounded: the peer may not be reading).
    pub async fn shutdown(&mut self) {
        if !matches!(self.stream, Stream::Plain(_)) {
            let stream = &mut self.stream;
            let _ = with_timeout(CLOSE_NOTIFY_WITHIN, "close_notify", stream.close()).await;
        }
        let _ = self.stream.tcp().shutdown(std::net::Shutdown::Write).await;
    }

    /// Whether an idle pooled connection is still usable: no EOF or stray
    /// bytes waiting. Never blocks.
    pub fn is_idle_and_open(&self) -> bool {
        if !self.buffered().is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        // SAFETY: recv into a valid 1-byte buffer on an open socket.
        let n = unsafe {
            libc::recv(
                self.stream.tcp().as_raw_fd(),
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// One connection's reads, one after another with different timeouts,
    /// against a peer (a plain std socket on its own thread) that writes
    /// at set times: the timer left armed between them never cuts a read
    /// short and never lets one run past its own deadline.
    #[test]
    fn each_read_times_out_on_its_own_deadline_whatever_came_before() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // The peer writes one byte at each of these times after it connects.
        let peer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let start = Instant::now();
            for at_ms in [0u64, 200, 900, 1_500, 2_400] {
                let at = start + Duration::from_millis(at_ms);
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                s.write_all(b"x").unwrap();
            }
            // Held open (nothing more sent) until the reader is done.
            std::thread::sleep(Duration::from_secs(3));
        });
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let mut conn = connect(addr, Duration::from_secs(5)).await.unwrap();
                let ms = Duration::from_millis;
                let read = async |conn: &mut Conn, timeout: Duration| {
                    let t = Instant::now();
                    let r = conn.read_more(timeout, "r").await;
                    (r.map_err(|e| e.kind()), Instant::now().duration_since(t))
                };
                let timed_out = Err(io::ErrorKind::TimedOut);
                assert_eq!(read(&mut conn, ms(10_000)).await.0, Ok(1), "the byte at 0");
                // Waits, and leaves its timer armed 400 ms out.
                assert_eq!(read(&mut conn, ms(400)).await.0, Ok(1), "the byte at 200");
                // That timer fires at 400, before this read's deadline: the
                // read goes on to the byte at 900.
                let (r, took) = read(&mut conn, ms(2_000)).await;
                assert_eq!(r, Ok(1), "the byte at 900, after {took:?}");
                // A deadline before the armed one (2.2 s): cut at its own.
                let (r, took) = read(&mut conn, ms(300)).await;
                assert_eq!(r, timed_out);
                assert!(took >= ms(295) && took < ms(1_000), "{took:?}");
                // The timer fired with that read; the next arms it again.
                assert_eq!(
                    read(&mut conn, ms(2_000)).await.0,
                    Ok(1),
                    "the byte at 1.5 s"
                );
                let (r, took) = read(&mut conn, ms(700)).await;
                assert_eq!(r, timed_out);
                assert!(took >= ms(695) && took < ms(1_400), "{took:?}");
                // Armed 1 s out for this task, which then hands the
                // connection to another (as a pool does): that task's read
                // is not left to a timer that would wake this one.
                assert_eq!(
                    read(&mut conn, ms(1_000)).await.0,
                    Ok(1),
                    "the byte at 2.4 s"
                );
                let other = glommio::spawn_local(async move {
                    let (r, took) = read(&mut conn, ms(1_200)).await;
                    assert_eq!(r, timed_out);
                    assert!(took >= ms(1_195) && took < ms(2_000), "{took:?}");
                });
                other.await;
            })
            .unwrap()
            .join()
            .unwrap();
        peer.join().unwrap();
    }
}
