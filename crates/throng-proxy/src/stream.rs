//! The client's side of a session: a TCP socket, or a socket with a rustls server connection
//! over it. Both are tokio `AsyncRead`/`AsyncWrite`, so sessions need not care which.

use rustls::ServerConnection;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use throng_net::tls::Socket;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub enum ClientStream {
    Plain(TcpStream),
    /// Boxed: a rustls connection is about 1 KiB, and most of a session's life is spent idle.
    Tls(TcpStream, Box<ServerConnection>),
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

    /// Waits until reading would not wait: data, or the end of the stream.
    pub async fn readable(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.readable().await,
            ClientStream::Tls(s, tls) => {
                let state = tls.process_new_packets().map_err(tls_error)?;
                if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
                    return Ok(());
                }
                s.readable().await
            }
        }
    }

    /// Reads what is there without waiting: `WouldBlock` when nothing is, 0 at the end.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => throng_net::sockets::read_now(s, buf),
            ClientStream::Tls(socket, tls) => loop {
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                // Nothing decrypted: take records from the socket (WouldBlock when none came).
                if tls.read_tls(&mut Socket(socket))? == 0 {
                    return Ok(0);
                }
                if let Err(error) = tls.process_new_packets() {
                    let _ = tls.write_tls(&mut Socket(socket));
                    return Err(tls_error(error));
                }
                if tls.wants_write() {
                    let _ = tls.write_tls(&mut Socket(socket));
                }
            },
        }
    }

    /// Resolves when the client closes or fails; waits forever once it sends data instead (that
    /// data is for later, and stays where it is).
    pub async fn closed(&mut self) {
        let mut probe = [0u8; 1];
        loop {
            let socket = self.socket();
            if socket.readable().await.is_err() {
                return;
            }
            match socket.peek(&mut probe).await {
                Ok(0) | Err(_) => return,
                Ok(_) => std::future::pending::<()>().await,
            }
        }
    }
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// Writes out what rustls has encrypted; `Pending` until the socket takes all of it.
fn poll_send_tls(
    socket: &TcpStream,
    tls: &mut ServerConnection,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while tls.wants_write() {
        match tls.write_tls(&mut Socket(socket)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(socket.poll_write_ready(cx))?;
            }
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    Poll::Ready(Ok(()))
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
                match tls.reader().read(buf.initialize_unfilled()) {
                    Ok(n) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // Closed without close_notify: the end of the stream, as for TCP.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Poll::Ready(Ok(()))
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
                ready!(socket.poll_read_ready(cx))?;
                match tls.read_tls(&mut Socket(socket)) {
                    Ok(0) => return Poll::Ready(Ok(())),
                    Ok(_) => {
                        if let Err(error) = tls.process_new_packets() {
                            // Send the alert saying why, if the socket takes it now.
                            let _ = tls.write_tls(&mut Socket(socket));
                            return Poll::Ready(Err(tls_error(error)));
                        }
                        if tls.wants_write() {
                            // Key updates and the like: send them while we are here.
                            let _ = tls.write_tls(&mut Socket(socket));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
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
            ClientStream::Tls(socket, tls) => {
                // What was encrypted before goes out first: rustls holds one write at a time.
                ready!(poll_send_tls(socket, tls, cx))?;
                let n = tls.writer().write(data)?;
                // Start sending now; what the socket does not take waits for the next call.
                while tls.wants_write() {
                    match tls.write_tls(&mut Socket(socket)) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                Poll::Ready(Ok(n))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(socket, tls) => poll_send_tls(socket, tls, cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(socket, tls) => {
                tls.send_close_notify();
                ready!(poll_send_tls(socket, tls, cx))?;
                Pin::new(socket).poll_shutdown(cx)
            }
        }
    }
}
