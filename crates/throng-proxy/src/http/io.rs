//! Waiting and reading without holding a buffer, and writing with a deadline: the socket
//! operations every step of an exchange uses.

use super::ClientStream;
use crate::server_stream::ServerStream;
use std::future::Future;
use std::io;
use std::time::Duration;
use throng_net::buffers::Buffer;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

pub(super) enum ReadFailure {
    Timeout,
    Io,
}

pub(super) fn is_empty(buffer: &Option<Buffer>) -> bool {
    buffer.as_ref().is_none_or(Buffer::is_empty)
}

/// A socket that can be waited on without a buffer, then read without waiting.
pub(super) trait Readable {
    /// Ready when a read may find something (readiness registered with the task's waker).
    fn poll_read_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>>;
    /// Whether bytes can be read without waiting for the socket (TLS has some decrypted).
    fn has_pending(&mut self) -> io::Result<bool>;
    fn try_read_now(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

impl Readable for ServerStream {
    fn poll_read_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        ServerStream::poll_read_ready(self, cx)
    }
    fn has_pending(&mut self) -> io::Result<bool> {
        ServerStream::has_pending(self)
    }
    fn try_read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_read(buf)
    }
}

impl Readable for ClientStream {
    fn poll_read_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        ClientStream::poll_read_ready(self, cx)
    }
    fn has_pending(&mut self) -> io::Result<bool> {
        ClientStream::has_pending(self)
    }
    fn try_read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.try_read(buf)
    }
}

/// Waits until the socket is readable or the deadline passes. The wait lives in the socket's
/// readiness slot: no future per wait beyond the timer.
pub(super) async fn wait_socket<R: Readable>(
    socket: &R,
    mut deadline: std::pin::Pin<&mut tokio::time::Sleep>,
) -> Result<(), ReadFailure> {
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(ready) = socket.poll_read_ready(cx) {
            return std::task::Poll::Ready(ready.map_err(|_| ReadFailure::Io));
        }
        if deadline.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Err(ReadFailure::Timeout));
        }
        std::task::Poll::Pending
    })
    .await
}

/// Waits until `from` has something to read, or `deadline`.
pub(super) async fn wait_readable<R: Readable>(
    from: &mut R,
    deadline: Instant,
) -> Result<(), ReadFailure> {
    if from.has_pending().map_err(|_| ReadFailure::Io)? {
        return Ok(());
    }
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    wait_socket(from, sleep).await
}

/// Waits (holding no buffer) until `from` has bytes, then reads them into `buffer`, taking one
/// from the pool if it has none; 0 at the end of the stream.
pub(super) async fn read_into<R: Readable>(
    from: &mut R,
    buffer: &mut Option<Buffer>,
    deadline: Instant,
) -> Result<usize, ReadFailure> {
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    loop {
        if is_empty(buffer) {
            *buffer = None;
        }
        if !from.has_pending().map_err(|_| ReadFailure::Io)? {
            wait_socket(&*from, sleep.as_mut()).await?;
        }
        let filled = buffer.get_or_insert_with(Buffer::take);
        let spare = filled.spare();
        if spare.is_empty() {
            return Ok(0);
        }
        match from.try_read_now(spare) {
            Ok(n) => {
                filled.end += n;
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(ReadFailure::Io),
        }
    }
}

pub(super) async fn write_with_timeout<W: AsyncWrite + Unpin>(
    to: &mut W,
    data: &[u8],
    limit: Duration,
) -> io::Result<()> {
    match tokio::time::timeout(limit, async {
        to.write_all(data).await?;
        to.flush().await
    })
    .await
    {
        Ok(result) => result,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}
