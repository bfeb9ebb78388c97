//! One HTTP/2 stream as its exchange sees it: a byte stream carrying an HTTP/1.1 request (the
//! downgrade of the stream's HEADERS and DATA) and taking the HTTP/1.1 response the exchange
//! writes, which the connection turns into HEADERS and DATA within the client's windows.
//!
//! The exchange then runs unchanged, with every check of throng's HTTP/1 codec: one exchange
//! for both protocols, and one codec deciding where a message ends.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use throng_http1::BodyReader;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// The most response bytes an exchange may write ahead of what the client's windows let go:
/// past it, its writes wait (and a client that never opens its window meets `timeout client`).
pub const RESPONSE_AHEAD: usize = 64 * 1024;

/// Where the response's conversion is.
#[derive(Debug)]
pub enum Response {
    /// Waiting for the head (1xx heads are passed on as they come).
    Head,
    /// The body, read by the framing the head gave.
    Body(BodyReader),
    /// All of it sent, END_STREAM included (or the stream was reset).
    Done,
}

/// What a stream's exchange and its connection share.
#[derive(Debug)]
pub struct Shared {
    pub id: u32,
    pub tls: bool,
    pub local: SocketAddr,
    /// The request was HEAD: its response has no body, whatever its head says.
    pub is_head: bool,
    /// The request as HTTP/1.1 bytes, read from `read_at` on.
    pub request: Vec<u8>,
    pub read_at: usize,
    /// The request is all in `request`: reading past it is the end of the stream.
    pub request_done: bool,
    /// Request body bytes (from DATA) not yet read by the exchange; what it reads of them is
    /// added to `to_release`, which the connection gives back to the client's window.
    pub body_unread: u32,
    pub to_release: u32,
    /// The response as the exchange wrote it, not yet converted.
    pub response: Vec<u8>,
    /// Body bytes decoded from `response` that the windows have not let go yet.
    pub unsent: Vec<u8>,
    /// A chunked response's trailer section as it came (bounded by the chunked decoder), sent
    /// on as the stream's trailers once the body has gone.
    pub trailers: Vec<u8>,
    pub state: Response,
    /// The exchange has ended (its end of the stream dropped).
    pub exchange_done: bool,
    /// The stream was reset or its connection ended: why, for the exchange's reads and writes.
    pub gone: Option<&'static str>,
    /// The exchange's task, waiting for request bytes, room for its response, or the end.
    pub waker: Option<Waker>,
}

pub type SharedRef = Rc<RefCell<Shared>>;

impl Shared {
    pub fn new(id: u32, tls: bool, local: SocketAddr, is_head: bool) -> Shared {
        Shared {
            id,
            tls,
            local,
            is_head,
            request: Vec::new(),
            read_at: 0,
            request_done: false,
            body_unread: 0,
            to_release: 0,
            response: Vec::new(),
            unsent: Vec::new(),
            trailers: Vec::new(),
            state: Response::Head,
            exchange_done: false,
            gone: None,
            waker: None,
        }
    }

    pub fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Ends the stream for the exchange: its reads and writes fail from now on.
    pub fn set_gone(&mut self, why: &'static str) {
        if self.gone.is_none() {
            self.gone = Some(why);
        }
        self.wake();
    }

    fn readable(&self) -> bool {
        self.gone.is_some() || self.read_at < self.request.len() || self.request_done
    }
}

/// The exchange's end of a stream.
pub struct StreamIo {
    shared: SharedRef,
    /// Wakes the connection's task: response bytes to send, window to give back.
    connection: Rc<Notify>,
}

impl StreamIo {
    pub fn new(shared: SharedRef, connection: Rc<Notify>) -> StreamIo {
        StreamIo { shared, connection }
    }

    pub fn is_tls(&self) -> bool {
        self.shared.borrow().tls
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.borrow().local
    }

    pub fn has_pending(&self) -> bool {
        self.shared.borrow().readable()
    }

    /// Ready when something can be read (or the stream is gone).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = self.shared.borrow_mut();
        if shared.readable() {
            return Poll::Ready(Ok(()));
        }
        shared.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Ready when the client reset the stream or left: the exchange waiting for its server
    /// then stops (`CH`).
    pub fn poll_gone(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut shared = self.shared.borrow_mut();
        if shared.gone.is_some() {
            return Poll::Ready(());
        }
        shared.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Reads what is there: `WouldBlock` when nothing is, 0 at the request's end.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut shared = self.shared.borrow_mut();
        if let Some(why) = shared.gone {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, why));
        }
        let available = shared.request.get(shared.read_at..).unwrap_or_default();
        if available.is_empty() {
            return if shared.request_done {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = available.len().min(buf.len());
        if let (Some(to), Some(from)) = (buf.get_mut(..n), available.get(..n)) {
            to.copy_from_slice(from);
        }
        shared.read_at += n;
        if shared.read_at == shared.request.len() {
            // All read: the bytes go, and the allocation with them.
            shared.request = Vec::new();
            shared.read_at = 0;
        }
        // Framing the downgrade added is read too; counting it as body gives a window back a
        // few bytes early, never more than a chunk line per DATA frame.
        let credit = (n as u32).min(shared.body_unread);
        if credit > 0 {
            shared.body_unread -= credit;
            shared.to_release += credit;
            self.connection.notify_one();
        }
        Ok(n)
    }
}

impl Drop for StreamIo {
    fn drop(&mut self) {
        self.shared.borrow_mut().exchange_done = true;
        self.connection.notify_one();
    }
}

impl AsyncRead for StreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.try_read(buf.initialize_unfilled()) {
            Ok(n) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                this.shared.borrow_mut().waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for StreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut shared = self.shared.borrow_mut();
        if let Some(why) = shared.gone {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, why)));
        }
        let room = RESPONSE_AHEAD.saturating_sub(shared.response.len());
        if room == 0 {
            shared.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(data.len());
        shared
            .response
            .extend_from_slice(data.get(..n).unwrap_or_default());
        self.connection.notify_one();
        Poll::Ready(Ok(n))
    }

    /// Done when the connection has sent all of it: what the client's windows hold back
    /// keeps the exchange waiting here, under its `timeout client`.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = self.shared.borrow_mut();
        if let Some(why) = shared.gone {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, why)));
        }
        if shared.response.is_empty() && shared.unsent.is_empty() {
            return Poll::Ready(Ok(()));
        }
        shared.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
