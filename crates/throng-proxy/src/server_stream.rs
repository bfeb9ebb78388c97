//! The server's side of a session: a TCP socket, or one with TLS over it (a backend's `tls`),
//! made here once the socket is connected. Both are tokio `AsyncRead`/`AsyncWrite`, so an
//! exchange, a tunnel and a health check need not care which.

use crate::config::ServerTls;
use rustls::client::UnbufferedClientConnection;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use throng_tls::stream::TlsStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub enum ServerStream {
    Plain(TcpStream),
    /// Boxed: the TLS state is about 1 KiB, and a plain connection need not be that size.
    Tls(TcpStream, Box<TlsStream<UnbufferedClientConnection>>),
}

/// Why TLS toward a server was not made.
pub enum Unsecured {
    /// The handshake failed: the certificate did not verify, the server refused us, or it
    /// answered garbage; the reason is rustls's, for the log line.
    Refused(String),
    /// The handshake did not finish within `timeout connect`.
    Timeout,
}

/// Makes TLS over `socket` to the server at `address`: its certificate verified against the
/// backend's CA and the name `tls` says (its `sni`, else the server's address), within `limit`.
/// The stream, and whether the handshake resumed a session.
pub async fn secure(
    socket: TcpStream,
    tls: &ServerTls,
    address: SocketAddr,
    limit: Duration,
) -> Result<(ServerStream, bool), Unsecured> {
    let name = tls.name_for(address);
    let session = UnbufferedClientConnection::new(std::sync::Arc::clone(&tls.config), name)
        .map_err(|e| Unsecured::Refused(e.to_string()))?;
    let mut session = Box::new(TlsStream::new(session));
    match tokio::time::timeout(limit, session.handshake(&socket)).await {
        Err(_) => Err(Unsecured::Timeout),
        Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
            Err(Unsecured::Refused(e.to_string()))
        }
        Ok(Err(e)) => Err(Unsecured::Refused(format!("during the handshake: {e}"))),
        Ok(Ok(())) => {
            let resumed = session.resumed();
            Ok((ServerStream::Tls(socket, session), resumed))
        }
    }
}

impl ServerStream {
    pub fn socket(&self) -> &TcpStream {
        match self {
            ServerStream::Plain(s) | ServerStream::Tls(s, _) => s,
        }
    }

    /// Ready when a read may find something (registered with the task's waker).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket().poll_read_ready(cx)
    }

    /// Whether bytes can be read without waiting for the socket (TLS has some decrypted).
    pub fn has_pending(&mut self) -> io::Result<bool> {
        match self {
            ServerStream::Plain(_) => Ok(false),
            ServerStream::Tls(socket, tls) => tls.has_readable(socket),
        }
    }

    /// Reads what is there without waiting: `WouldBlock` when nothing is, 0 at the end.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ServerStream::Plain(s) => throng_net::sockets::read_now(s, buf),
            ServerStream::Tls(socket, tls) => tls.try_read(socket, buf),
        }
    }

    /// Whether an idle connection is still open and quiet, fit for the next request. Anything
    /// to read means the server closed it (or sent garbage); over TLS, records that carry no
    /// data (session tickets, a key update) are taken in on the way, and the connection stays.
    pub fn still_open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ServerStream::Tls(socket, tls) => tls.poll_read(socket, cx, buf),
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_write(cx, data),
            ServerStream::Tls(socket, tls) => tls.poll_write(socket, cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ServerStream::Tls(socket, tls) => tls.poll_send(socket, cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ServerStream::Tls(socket, tls) => tls.poll_shutdown(socket, cx),
        }
    }
}
