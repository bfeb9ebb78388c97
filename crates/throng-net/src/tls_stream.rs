//! TLS over a tokio socket with rustls's unbuffered API, for servers (the proxy's clients) and
//! clients (attack's connections) alike. The caller owns the buffers, so an idle connection keeps
//! rustls's state and no buffer: about 3.5 KiB for a server connection, against 7.7 KiB with the
//! buffered API, whose 4 KiB read buffer is never freed (clients: 4.1 against 8.3 KiB).
//! Ciphertext in, plaintext out and ciphertext out each use a pooled buffer
//! ([`crate::buffers`]) only while bytes are in it.

use crate::buffers::Buffer;
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::CommonState;
use std::io;
use std::task::{ready, Context, Poll};
use tokio::net::TcpStream;

/// The one thing that differs between rustls's unbuffered server and client connections here.
pub trait Unbuffered {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn common(&self) -> &CommonState;
}

impl Unbuffered for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn common(&self) -> &CommonState {
        self
    }
}

impl Unbuffered for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn common(&self) -> &CommonState {
        self
    }
}

/// The most plaintext one record carries.
const MAX_RECORD: usize = 16 * 1024;

pub struct TlsStream<C> {
    conn: C,
    /// Ciphertext read, not yet processed (a partial record, usually nothing).
    incoming: Option<Buffer>,
    /// Plaintext decrypted, not yet taken by the session.
    plaintext: Option<Buffer>,
    /// Ciphertext made, not yet sent.
    outgoing: Option<Buffer>,
    /// The client sent close_notify: no more data will come.
    peer_closed: bool,
    /// close_notify is queued: nothing more is sent.
    closing: bool,
}

/// Where processing stopped.
enum Stop {
    /// The handshake is done and everything that came is processed (perhaps a partial record).
    Traffic,
    /// The handshake waits for the client.
    NeedInput,
    /// The connection is closed both ways.
    Closed,
}

/// What to do once processing reaches the traffic state.
enum Then<'d> {
    Nothing,
    Encrypt(&'d [u8]),
    CloseNotify,
}

fn tls_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

fn filled_mut(buffer: &mut Option<Buffer>) -> &mut [u8] {
    match buffer {
        Some(b) => b.filled_mut(),
        None => &mut [],
    }
}

impl<C: Unbuffered> TlsStream<C> {
    pub fn new(conn: C) -> TlsStream<C> {
        TlsStream {
            conn,
            incoming: None,
            plaintext: None,
            outgoing: None,
            peer_closed: false,
            closing: false,
        }
    }

    /// The connection's state: handshake kind, negotiated protocol, and so on.
    pub fn common(&self) -> &CommonState {
        self.conn.common()
    }

    /// Processes what has come in, and does `then` once in the traffic state; returns where it
    /// stopped and how many plaintext bytes `then` encrypted.
    fn process(&mut self, mut then: Then<'_>) -> io::Result<(Stop, usize)> {
        let mut taken = 0;
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process(filled_mut(&mut self.incoming));
            let mut stop = None;
            match state.map_err(tls_error)? {
                ConnectionState::ReadTraffic(mut records) => {
                    // Take records while they fit the plaintext buffer; the rest wait.
                    while let Some(len) = records.peek_len() {
                        let room = self.plaintext.get_or_insert_with(Buffer::take);
                        if room.spare().len() < len.get() {
                            break;
                        }
                        let Some(record) = records.next_record() else {
                            break;
                        };
                        let record = record.map_err(tls_error)?;
                        let spare = room.spare();
                        spare[..record.payload.len()].copy_from_slice(record.payload);
                        room.end += record.payload.len();
                    }
                }
                // Early data is off in every configuration throng makes.
                ConnectionState::ReadEarlyData(_) => {
                    return Err(tls_error("early data, which is not accepted"))
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    let out = self.outgoing.get_or_insert_with(Buffer::take);
                    match encode.encode(out.spare()) {
                        Ok(n) => out.end += n,
                        Err(EncodeError::InsufficientSize(_)) => {
                            return Err(tls_error("a handshake message larger than the buffer"))
                        }
                        Err(e) => return Err(tls_error(e)),
                    }
                }
                // What was encoded is in `outgoing`, which is always sent before anything else.
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::BlockedHandshake => stop = Some(Stop::NeedInput),
                ConnectionState::PeerClosed => self.peer_closed = true,
                ConnectionState::Closed => stop = Some(Stop::Closed),
                ConnectionState::WriteTraffic(mut write) => {
                    let out = self.outgoing.get_or_insert_with(Buffer::take);
                    match std::mem::replace(&mut then, Then::Nothing) {
                        Then::Nothing => {}
                        Then::Encrypt(data) => {
                            // Room for the record's framing and tag as well.
                            let fits = out.spare().len().saturating_sub(64).min(MAX_RECORD);
                            let chunk = &data[..data.len().min(fits)];
                            if !chunk.is_empty() {
                                match write.encrypt(chunk, out.spare()) {
                                    Ok(n) => {
                                        out.end += n;
                                        taken = chunk.len();
                                    }
                                    Err(EncryptError::InsufficientSize(_)) => {}
                                    Err(e) => return Err(tls_error(e)),
                                }
                            }
                        }
                        Then::CloseNotify => {
                            let n = write.queue_close_notify(out.spare()).map_err(tls_error)?;
                            out.end += n;
                        }
                    }
                    stop = Some(Stop::Traffic);
                }
                _ => return Err(tls_error("an unexpected TLS state")),
            }
            if discard > 0 {
                if let Some(incoming) = self.incoming.as_mut() {
                    incoming.consume(discard);
                }
            }
            if self.incoming.as_ref().is_some_and(Buffer::is_empty) {
                self.incoming = None;
            }
            if self.outgoing.as_ref().is_some_and(Buffer::is_empty) {
                self.outgoing = None;
            }
            if let Some(stop) = stop {
                return Ok((stop, taken));
            }
        }
    }

    /// Reads ciphertext from the socket without waiting; `Ok(false)` at its end.
    fn read_socket(&mut self, socket: &TcpStream) -> io::Result<bool> {
        let incoming = self.incoming.get_or_insert_with(Buffer::take);
        let spare = incoming.spare();
        if spare.is_empty() {
            return Err(tls_error("a TLS record larger than the buffer"));
        }
        match crate::sockets::read_now(socket, spare) {
            Ok(0) => Ok(false),
            Ok(n) => {
                incoming.end += n;
                Ok(true)
            }
            Err(e) => {
                if incoming.is_empty() {
                    self.incoming = None;
                }
                Err(e)
            }
        }
    }

    /// Sends what is encrypted; `Pending` until the socket has taken all of it.
    pub fn poll_send(&mut self, socket: &TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(out) = self.outgoing.as_mut() {
            if out.is_empty() {
                self.outgoing = None;
                break;
            }
            match socket.try_write(out.filled()) {
                Ok(n) => out.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(socket.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Encrypts and sends all of `data`, waiting as long as it takes.
    pub async fn write_all(&mut self, socket: &TcpStream, data: &[u8]) -> io::Result<()> {
        let mut written = 0;
        while written < data.len() {
            written +=
                std::future::poll_fn(|cx| self.poll_write(socket, cx, &data[written..])).await?;
        }
        self.send(socket).await
    }

    /// Sends what is encrypted, waiting as long as it takes.
    pub async fn send(&mut self, socket: &TcpStream) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_send(socket, cx)).await
    }

    /// Completes the handshake.
    pub async fn handshake(&mut self, socket: &TcpStream) -> io::Result<()> {
        loop {
            let (stop, _) = self.process(Then::Nothing)?;
            self.send(socket).await?;
            match stop {
                Stop::Traffic => return Ok(()),
                Stop::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
                Stop::NeedInput => loop {
                    socket.readable().await?;
                    match self.read_socket(socket) {
                        Ok(true) => break,
                        Ok(false) => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                },
            }
        }
    }

    /// Whether plaintext (or the end of it) can be read without waiting for the socket.
    pub fn has_readable(&mut self) -> io::Result<bool> {
        if self.plaintext.as_ref().is_some_and(|b| !b.is_empty()) || self.peer_closed {
            return Ok(true);
        }
        if self.incoming.is_some() {
            self.process(Then::Nothing)?;
        }
        Ok(self.plaintext.as_ref().is_some_and(|b| !b.is_empty()) || self.peer_closed)
    }

    /// Reads plaintext without waiting: `WouldBlock` when none is there, 0 at the end.
    pub fn try_read(&mut self, socket: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(plain) = self.plaintext.as_mut().filter(|b| !b.is_empty()) {
                let n = plain.filled().len().min(buf.len());
                buf[..n].copy_from_slice(&plain.filled()[..n]);
                plain.consume(n);
                if plain.is_empty() {
                    self.plaintext = None;
                }
                return Ok(n);
            }
            if self.peer_closed {
                return Ok(0);
            }
            if self.incoming.is_some() {
                let (stop, _) = self.process(Then::Nothing)?;
                // Anything the processing made (tickets, key updates) goes out when it can.
                let _ = self.try_send_now(socket);
                if matches!(stop, Stop::Closed) {
                    return Ok(0);
                }
                if self.plaintext.is_some() || self.peer_closed {
                    continue;
                }
            }
            if !self.read_socket(socket)? {
                return Ok(0);
            }
        }
    }

    fn try_send_now(&mut self, socket: &TcpStream) -> io::Result<()> {
        let waker = std::task::Waker::noop();
        match self.poll_send(socket, &mut Context::from_waker(waker)) {
            Poll::Ready(result) => result,
            Poll::Pending => Ok(()),
        }
    }

    /// Encrypts and starts sending up to a record of `data`; `Pending` while earlier ciphertext
    /// is still going out.
    pub fn poll_write(
        &mut self,
        socket: &TcpStream,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_send(socket, cx))?;
        let (stop, taken) = self.process(Then::Encrypt(data))?;
        match stop {
            Stop::Traffic => {}
            Stop::Closed => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Stop::NeedInput => return Poll::Ready(Err(tls_error("write before the handshake"))),
        }
        let _ = self.try_send_now(socket);
        Poll::Ready(Ok(taken))
    }

    /// Queues close_notify and sends what is left.
    pub fn poll_close(&mut self, socket: &TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.closing {
            self.closing = true;
            let _ = self.process(Then::CloseNotify);
        }
        self.poll_send(socket, cx)
    }
}
