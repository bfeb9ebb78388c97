//! The client's side of a session: a TCP socket, or a socket with TLS over it ([`Tls`]). Both
//! are tokio `AsyncRead`/`AsyncWrite`, so sessions need not care which.

use rustls::server::UnbufferedServerConnection;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use throng_tls::stream::TlsStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub enum ClientStream {
    Plain(TcpStream),
    /// Boxed: the TLS state is about 1 KiB, and a plain session need not be that size.
    Tls(TcpStream, Box<TlsStream<UnbufferedServerConnection>>),
}

impl ClientStream {
    pub fn socket(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) | ClientStream::Tls(s, _) => s,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(..))
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
        }
    }

    /// Reads what is there without waiting: `WouldBlock` when nothing is, 0 at the end.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => throng_net::sockets::read_now(s, buf),
            ClientStream::Tls(socket, tls) => tls.try_read(socket, buf),
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
            ClientStream::Tls(socket, tls) => loop {
                match tls.try_read(socket, buf.initialize_unfilled()) {
                    Ok(n) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready!(socket.poll_read_ready(cx))?;
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            },
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
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(socket, tls) => tls.poll_send(socket, cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(socket, tls) => {
                ready!(tls.poll_close(socket, cx))?;
                Pin::new(socket).poll_shutdown(cx)
            }
        }
    }
}
