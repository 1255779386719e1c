//! A TCP connection with a read buffer and deadlines, used for both viewers
//! and origins. Bytes read but not yet consumed stay in the buffer, so
//! pipelined requests and the bytes after a response body are never lost.

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 64 << 10;
/// Bytes asked while waiting for a connection's next message: enough for a
/// typical request head, and all an idle keep-alive connection holds.
const IDLE_CHUNK: usize = 2 << 10;

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    /// The address this side connected to (None for accepted connections):
    /// an upstream connection goes back to that address's pool.
    remote: Option<SocketAddr>,
    /// Bytes handed to `write_all` over the connection's life.
    written: u64,
}

/// Runs `fut` but gives up with `TimedOut` after `d`.
pub async fn with_timeout<T>(
    d: Duration,
    what: &'static str,
    fut: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    futures_lite::future::or(fut, async move {
        glommio::timer::sleep(d).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, what))
    })
    .await
}

/// Opens a connection to `addr`, giving up with `TimedOut` after `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(io::Error::from)?;
    let mut conn = Conn::new(stream);
    conn.remote = Some(addr);
    Ok(conn)
}

impl Conn {
    pub(super) fn new(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            // Allocated by the first read, sized by what it waits for.
            buf: Vec::new(),
            start: 0,
            remote: None,
            written: 0,
        }
    }

    /// The address `connect` dialled, for a connection this side opened.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// The address of the other end.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr().map_err(io::Error::from)
    }

    /// Unconsumed bytes.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Takes up to `max` unconsumed bytes.
    pub fn take(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.buffered().len());
        let v = self.buf[self.start..self.start + n].to_vec();
        self.consume(n);
        v
    }

    /// Reads more bytes into the buffer; Ok(0) at end of stream.
    pub async fn read_more(&mut self, timeout: Duration, what: &'static str) -> io::Result<usize> {
        self.read_up_to(READ_CHUNK, timeout, what).await
    }

    /// Waits for the first bytes of a connection's next message holding
    /// only a small buffer: a connection idle between requests keeps
    /// `IDLE_CHUNK` bytes, not a whole read buffer.
    pub async fn read_idle(&mut self, timeout: Duration, what: &'static str) -> io::Result<usize> {
        self.release_buffer();
        self.read_up_to(IDLE_CHUNK, timeout, what).await
    }

    /// Frees the read buffer when nothing is buffered (a connection going
    /// idle, or into a pool).
    pub fn release_buffer(&mut self) {
        if self.buffered().is_empty() && self.buf.capacity() > IDLE_CHUNK {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    async fn read_up_to(
        &mut self,
        chunk: usize,
        timeout: Duration,
        what: &'static str,
    ) -> io::Result<usize> {
        if self.start > 0 && self.start * 2 >= self.buf.capacity() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + chunk, 0);
        let stream = &mut self.stream;
        let target = &mut self.buf[old..];
        let r = with_timeout(timeout, what, async { stream.read(target).await }).await;
        let n = *r.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        r
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

    pub async fn write_all(&mut self, data: &[u8], timeout: Duration) -> io::Result<()> {
        self.written += data.len() as u64;
        let stream = &mut self.stream;
        with_timeout(timeout, "write timed out", async {
            stream.write_all(data).await
        })
        .await
    }

    pub async fn flush(&mut self, timeout: Duration) -> io::Result<()> {
        let stream = &mut self.stream;
        with_timeout(timeout, "flush timed out", async { stream.flush().await }).await
    }

    /// Shuts down our sending side so the peer sees the end of the response.
    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write).await;
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
                self.stream.as_raw_fd(),
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
    }
}
