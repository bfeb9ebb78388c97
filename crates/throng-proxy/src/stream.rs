//! The client's side of a session: a TCP socket, a socket with TLS over it, or one HTTP/2
//! stream of either (its exchange's end, speaking HTTP/1.1). All are tokio
//! `AsyncRead`/`AsyncWrite`, so an exchange need not care which.

use crate::http::h2::H2Stream;
use rustls::server::UnbufferedServerConnection;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use throng_tls::stream::TlsStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub enum ClientStream {
    Plain(TcpStream),
    /// Boxed: the TLS state is about 1 KiB, and a plain session need not be that size.
    Tls(TcpStream, Box<TlsStream<UnbufferedServerConnection>>),
    /// One stream of an HTTP/2 connection, whose task owns the socket.
    H2(H2Stream),
}

impl ClientStream {
    /// The client's socket; an HTTP/2 stream has none of its own.
    pub fn socket(&self) -> Option<&TcpStream> {
        match self {
            ClientStream::Plain(s) | ClientStream::Tls(s, _) => Some(s),
            ClientStream::H2(_) => None,
        }
    }

    /// The address the client connected to.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        match self {
            ClientStream::Plain(s) | ClientStream::Tls(s, _) => s.local_addr(),
            ClientStream::H2(stream) => Ok(stream.local_addr()),
        }
    }

    pub fn is_tls(&self) -> bool {
        match self {
            ClientStream::Plain(_) => false,
            ClientStream::Tls(..) => true,
            ClientStream::H2(stream) => stream.is_tls(),
        }
    }

    pub fn is_h2(&self) -> bool {
        matches!(self, ClientStream::H2(_))
    }

    /// Whether TLS chose HTTP/2 by ALPN.
    pub fn alpn_h2(&self) -> bool {
        matches!(self, ClientStream::Tls(_, tls) if tls.alpn_h2())
    }

    /// Ready when something can be read without waiting (the socket, or the stream's queue).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ClientStream::Plain(s) | ClientStream::Tls(s, _) => s.poll_read_ready(cx),
            ClientStream::H2(stream) => stream.poll_read_ready(cx),
        }
    }

    /// Ready when the client is gone while a request waits for its response: the socket
    /// closed (peeked, so data the client sent stays for later), or the stream was reset.
    /// `watch` is cleared when the client sent data instead: no more peeking then.
    pub fn poll_gone(&self, cx: &mut Context<'_>, watch: &mut bool) -> Poll<()> {
        match self {
            ClientStream::Plain(s) | ClientStream::Tls(s, _) => {
                if *watch && s.poll_read_ready(cx).is_ready() {
                    let mut probe = [0u8; 1];
                    let mut probe = ReadBuf::new(&mut probe);
                    match s.poll_peek(cx, &mut probe) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Ready(Ok(_)) => *watch = false,
                        Poll::Pending => {}
                    }
                }
                Poll::Pending
            }
            ClientStream::H2(stream) => stream.poll_gone(cx),
        }
    }

    /// Whether TLS gave the connection up for something the client sent after the handshake.
    pub fn tls_refused(&self) -> bool {
        matches!(self, ClientStream::Tls(_, tls) if tls.refused())
    }

    /// Whether bytes can be read without waiting for the socket (TLS has some decrypted).
    pub fn has_pending(&mut self) -> io::Result<bool> {
        match self {
            ClientStream::Plain(_) => Ok(false),
            ClientStream::Tls(socket, tls) => tls.has_readable(socket),
            ClientStream::H2(stream) => Ok(stream.has_pending()),
        }
    }

    /// Reads what is there without waiting: `WouldBlock` when nothing is, 0 at the end.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => throng_net::sockets::read_now(s, buf),
            ClientStream::Tls(socket, tls) => tls.try_read(socket, buf),
            ClientStream::H2(stream) => stream.try_read(buf),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(socket, tls) => tls.poll_read(socket, cx, buf),
            ClientStream::H2(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, data),
            ClientStream::Tls(socket, tls) => tls.poll_write(socket, cx, data),
            ClientStream::H2(stream) => Pin::new(stream).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(socket, tls) => tls.poll_send(socket, cx),
            ClientStream::H2(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(socket, tls) => tls.poll_shutdown(socket, cx),
            ClientStream::H2(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
