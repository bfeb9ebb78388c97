//! TLS over a tokio socket, for servers (the proxy's clients) and clients (attack's
//! connections) alike. rustls's unbuffered API makes the handshake; then a TLS 1.3 connection
//! moves to throng's own record layer ([`crate::records`], kernel TLS in user space), so an
//! idle connection keeps its keys and little else: about 0.3 KiB, against 3.5 KiB for rustls's
//! unbuffered server state and 7.7 KiB for its buffered one, whose 4 KiB read buffer is never
//! freed. TLS 1.2 connections stay with rustls for life.
//! Ciphertext in, plaintext out and ciphertext out each use a pooled buffer
//! ([`throng_net::buffers`]) only while bytes are in it.

use crate::records::secrets::{self, TrafficSecrets};
use crate::records::{self, Records, Tickets};
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::CommonState;
use std::io;
use std::task::{ready, Context, Poll};
use throng_net::buffers::Buffer;
use tokio::net::TcpStream;

/// What differs between rustls's unbuffered server and client connections here.
pub trait Unbuffered {
    type Data: Tickets;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn common(&self) -> &CommonState;
    /// The connection on throng's record layer, its handshake having made `traffic`.
    fn into_records(self, traffic: TrafficSecrets) -> io::Result<Records<Self::Data>>;
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
    fn into_records(self, traffic: TrafficSecrets) -> io::Result<Records<Self::Data>> {
        let suite = self.common().negotiated_cipher_suite();
        let suite = suite.ok_or_else(|| tls_error("no cipher suite"))?;
        // What rustls keeps past this is for tickets, which a server never receives: dropped.
        let (made, _) = self.dangerous_into_kernel_connection().map_err(tls_error)?;
        Records::new(made, traffic, false, suite, None)
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
    fn into_records(self, traffic: TrafficSecrets) -> io::Result<Records<Self::Data>> {
        let suite = self.common().negotiated_cipher_suite();
        let suite = suite.ok_or_else(|| tls_error("no cipher suite"))?;
        // The kernel connection stays, for the session tickets the server sends after this.
        let (made, kernel) = self.dangerous_into_kernel_connection().map_err(tls_error)?;
        Records::new(made, traffic, true, suite, Some(kernel))
    }
}

/// The most plaintext one record carries.
const MAX_RECORD: usize = 16 * 1024;

/// What the handshake may hold unread at most: rustls's largest handshake message (64 KiB)
/// spread over records, with their headers, and a record after it.
const MAX_HANDSHAKE_BYTES: usize = 64 * 1024 + 5 * 5 + 18 * 1024;

pub struct TlsStream<C: Unbuffered> {
    layer: Layer<C>,
    flight: Flight,
    /// The handshake resumed an earlier session.
    resumed: bool,
    /// Something the peer sent was refused (a record, a post-handshake message, a limit).
    refused: bool,
    /// ALPN chose HTTP/2 (known once the handshake is done; rustls's state is gone after it).
    alpn_h2: bool,
}

/// Who makes and opens records.
// The record layer's state is inline on purpose: callers box the whole stream, so a connection
// that moved to it holds one allocation of about 0.5 KiB, not two.
#[allow(clippy::large_enum_variant)]
enum Layer<C: Unbuffered> {
    /// rustls: the handshake, and a TLS 1.2 connection for life. Boxed, so that its kilobyte
    /// of state is freed when the connection moves on.
    Rustls(Box<Handshaking<C>>),
    /// throng's record layer: a TLS 1.3 connection past its handshake.
    Records(Records<C::Data>),
    /// For a moment while moving from the one to the other.
    Moving,
}

/// A connection in rustls's hands, and the traffic secrets its handshake made so far.
struct Handshaking<C> {
    conn: C,
    traffic: TrafficSecrets,
}

/// The bytes in flight, each in a pooled buffer only while there are some.
#[derive(Default)]
struct Flight {
    /// Ciphertext read, not yet processed (a partial record, usually nothing).
    incoming: Option<Buffer>,
    /// Plaintext decrypted, not yet taken by the session.
    plaintext: Option<Buffer>,
    /// Plaintext that did not fit `plaintext` (records decrypted while earlier ones were still
    /// unread); bounded by one incoming buffer's worth, and freed once read.
    overflow: Vec<u8>,
    /// Ciphertext made, not yet sent.
    outgoing: Option<Buffer>,
    /// The peer sent close_notify: no more data will come.
    peer_closed: bool,
    /// close_notify is queued: nothing more is sent.
    closing: bool,
}

impl Flight {
    /// Gives back the buffers that are empty.
    fn release_empty(&mut self) {
        if self.incoming.as_ref().is_some_and(Buffer::is_empty) {
            self.incoming = None;
        }
        if self.outgoing.as_ref().is_some_and(Buffer::is_empty) {
            self.outgoing = None;
        }
    }
}

/// Keeps decrypted `payload` for the session: in the plaintext buffer while it has room, after
/// it in `overflow`.
fn deliver(plaintext: &mut Option<Buffer>, overflow: &mut Vec<u8>, payload: &[u8]) {
    let room = plaintext.get_or_insert_with(Buffer::take);
    let spare = room.spare();
    if let (true, Some(into)) = (overflow.is_empty(), spare.get_mut(..payload.len())) {
        into.copy_from_slice(payload);
        room.end += payload.len();
    } else {
        overflow.extend_from_slice(payload);
    }
}

/// Where processing stopped.
enum Stop {
    /// The handshake is done and everything that came is processed (perhaps a partial record).
    Traffic,
    /// The handshake waits for the peer.
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

/// Copies as much of `from` as `to` holds; returns how much.
fn copy_prefix(from: &[u8], to: &mut [u8]) -> usize {
    let n = from.len().min(to.len());
    if let (Some(to), Some(from)) = (to.get_mut(..n), from.get(..n)) {
        to.copy_from_slice(from);
    }
    n
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

/// Processes what has come in with rustls, and does `then` once in the traffic state; returns
/// where it stopped and how many plaintext bytes `then` encrypted.
fn process_rustls<C: Unbuffered>(
    handshaking: &mut Handshaking<C>,
    flight: &mut Flight,
    mut then: Then<'_>,
) -> io::Result<(Stop, usize)> {
    let mut taken = 0;
    loop {
        let Handshaking { conn, traffic } = handshaking;
        let UnbufferedStatus { discard, state } = conn.process(filled_mut(&mut flight.incoming));
        // Secrets made in that call, taken before anything else runs on this thread.
        traffic.absorb(secrets::take());
        let mut stop = None;
        let mut refused = None;
        match state {
            Err(error) => refused = Some(error),
            Ok(ConnectionState::ReadTraffic(mut records)) => {
                // Every record is taken now (rustls asks for that before anything else).
                while let Some(record) = records.next_record() {
                    match record {
                        Ok(record) => {
                            deliver(&mut flight.plaintext, &mut flight.overflow, record.payload)
                        }
                        Err(error) => {
                            refused = Some(error);
                            break;
                        }
                    }
                }
            }
            // Early data is off in every configuration throng makes.
            Ok(ConnectionState::ReadEarlyData(_)) => {
                return Err(tls_error("early data, which is not accepted"))
            }
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                let out = flight.outgoing.get_or_insert_with(Buffer::take);
                match encode.encode(out.spare()) {
                    Ok(n) => out.end += n,
                    Err(EncodeError::InsufficientSize(_)) => {
                        return Err(tls_error("a handshake message larger than the buffer"))
                    }
                    Err(e) => return Err(tls_error(e)),
                }
            }
            // What was encoded is in `outgoing`, which is always sent before anything else.
            Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
            Ok(ConnectionState::BlockedHandshake) => stop = Some(Stop::NeedInput),
            Ok(ConnectionState::PeerClosed) => flight.peer_closed = true,
            Ok(ConnectionState::Closed) => stop = Some(Stop::Closed),
            Ok(ConnectionState::WriteTraffic(mut write)) => {
                let out = flight.outgoing.get_or_insert_with(Buffer::take);
                match std::mem::replace(&mut then, Then::Nothing) {
                    Then::Nothing => {}
                    Then::Encrypt(data) => {
                        // Room for the record's framing and tag as well.
                        let fits = out.spare().len().saturating_sub(64).min(MAX_RECORD);
                        let chunk = data.get(..data.len().min(fits)).unwrap_or_default();
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
            Ok(_) => return Err(tls_error("an unexpected TLS state")),
        }
        if discard > 0 {
            if let Some(incoming) = flight.incoming.as_mut() {
                incoming.consume(discard);
            }
        }
        if let Some(error) = refused {
            encode_fatal_alert(conn, flight);
            flight.release_empty();
            return Err(tls_error(error));
        }
        flight.release_empty();
        if let Some(stop) = stop {
            return Ok((stop, taken));
        }
    }
}

/// rustls refused what the peer sent and queued the fatal alert that says why (RFC 8446 6.2):
/// the alert is encoded into `outgoing`, for the caller to send before it closes. rustls hands
/// out what it has queued before it reads anything (`sendable_tls` first), so it is asked only
/// while it has something to send: past that it would read the incoming bytes again (a second
/// refusal of the same record), or, given none, index into bytes its record joiner still
/// points at (tlsfuzzer found both). Nothing queued (some refusals have no alert in rustls):
/// nothing sent.
fn encode_fatal_alert<C: Unbuffered>(conn: &mut C, flight: &mut Flight) {
    for _ in 0..4 {
        if !conn.common().wants_write() {
            return;
        }
        let UnbufferedStatus { state, .. } = conn.process(&mut []);
        let Ok(ConnectionState::EncodeTlsData(mut encode)) = state else {
            return;
        };
        let out = flight.outgoing.get_or_insert_with(Buffer::take);
        match encode.encode(out.spare()) {
            Ok(n) => out.end += n,
            Err(_) => return,
        }
    }
}

/// The same for a connection on throng's record layer.
fn process_records<D: Tickets>(
    records: &mut Records<D>,
    flight: &mut Flight,
    then: Then<'_>,
) -> io::Result<(Stop, usize)> {
    let Flight {
        incoming,
        plaintext,
        overflow,
        outgoing,
        peer_closed,
        closing,
    } = flight;
    if let Some(ciphertext) = incoming.as_mut() {
        let opened = records.open(ciphertext, outgoing, |payload| {
            deliver(plaintext, overflow, payload)
        })?;
        *peer_closed |= opened.closed;
    }
    let mut taken = 0;
    match then {
        Then::Nothing => {}
        Then::Encrypt(_) if *closing => return Ok((Stop::Closed, 0)),
        Then::Encrypt(data) => taken = records.seal(data, outgoing)?,
        Then::CloseNotify => records.close_notify(outgoing)?,
    }
    flight.release_empty();
    Ok((Stop::Traffic, taken))
}

impl<C: Unbuffered> TlsStream<C> {
    pub fn new(conn: C) -> TlsStream<C> {
        TlsStream {
            layer: Layer::Rustls(Box::new(Handshaking {
                conn,
                traffic: TrafficSecrets::default(),
            })),
            flight: Flight::default(),
            resumed: false,
            refused: false,
            alpn_h2: false,
        }
    }

    /// Whether the handshake resumed an earlier session (known once it is done).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Whether ALPN chose `h2` (known once the handshake is done).
    pub fn alpn_h2(&self) -> bool {
        self.alpn_h2
    }

    /// Whether the connection runs on throng's record layer (TLS 1.3 past its handshake).
    pub fn on_own_records(&self) -> bool {
        matches!(self.layer, Layer::Records(_))
    }

    /// Whether the peer sent something that was refused, and the connection given up for it.
    pub fn refused(&self) -> bool {
        self.refused
    }

    fn process(&mut self, then: Then<'_>) -> io::Result<(Stop, usize)> {
        // One refusal, one alert: a connection given up processes nothing more (the bytes that
        // followed would only make a second alert, RFC 8446 6.2: the connection is closed).
        if self.refused {
            return Err(tls_error("the connection was given up"));
        }
        let processed = match &mut self.layer {
            Layer::Rustls(handshaking) => process_rustls(handshaking, &mut self.flight, then),
            Layer::Records(records) => process_records(records, &mut self.flight, then),
            Layer::Moving => Err(tls_error("a connection lost between record layers")),
        };
        if let Err(error) = &processed {
            if error.kind() == io::ErrorKind::InvalidData && !self.refused {
                self.refused = true;
                tracing::debug!("TLS: refused what the peer sent: {error}");
            }
        }
        processed
    }

    /// [`TlsStream::process`], and when it gives the connection up, the fatal alert that says
    /// why is sent if the socket takes it at once: a refusal is never a silent close.
    fn process_or_tell(&mut self, socket: &TcpStream, then: Then<'_>) -> io::Result<(Stop, usize)> {
        let processed = self.process(then);
        if processed.is_err() {
            let _ = self.try_send_now(socket);
        }
        processed
    }

    /// Once the handshake is done: a TLS 1.3 connection with nothing left to send moves to
    /// throng's record layer, and rustls's state is freed. One whose configuration did not
    /// capture its secrets ([`secrets::prepare_server`]) stays with rustls.
    fn leave_rustls(&mut self) -> io::Result<()> {
        let Layer::Rustls(handshaking) = &self.layer else {
            return Ok(());
        };
        let common = handshaking.conn.common();
        self.resumed = common.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        self.alpn_h2 = common.alpn_protocol() == Some(b"h2");
        let movable = common
            .negotiated_cipher_suite()
            .is_some_and(records::supports)
            && handshaking.traffic.client.is_some()
            && handshaking.traffic.server.is_some()
            && self.flight.outgoing.is_none()
            && !self.flight.closing;
        if !movable {
            return Ok(());
        }
        if let Layer::Rustls(handshaking) = std::mem::replace(&mut self.layer, Layer::Moving) {
            let Handshaking { conn, traffic } = *handshaking;
            self.layer = Layer::Records(conn.into_records(traffic)?);
        }
        Ok(())
    }

    /// Makes the record layer roll its sending key every `records` records (the suite's
    /// confidentiality limit otherwise, 2^24 for AES-GCM: too many for a test).
    #[cfg(test)]
    fn roll_keys_every(&mut self, records: u64) {
        if let Layer::Records(own) = &mut self.layer {
            own.roll_keys_every(records);
        }
    }

    /// Seals a record of any `kind` and `content` under the current key for the peer (a test's
    /// crafted bytes), its ciphertext changed if `tamper`; false when not on throng's records.
    #[cfg(test)]
    fn inject(&mut self, kind: u8, content: &[u8], tamper: bool) -> bool {
        let Layer::Records(records) = &mut self.layer else {
            return false;
        };
        let out = self.flight.outgoing.get_or_insert_with(Buffer::take);
        let before = out.filled().len();
        if records.seal_record(kind, content, out).is_err() {
            return false;
        }
        if tamper {
            if let Some(byte) = out.filled_mut().get_mut(before + 8) {
                *byte ^= 1;
            }
        }
        true
    }

    /// Frees the record layer's AEAD contexts when nothing is in flight: the connection waits.
    fn rest_if_idle(&mut self) {
        if let Layer::Records(records) = &mut self.layer {
            if self.flight.incoming.is_none() && self.flight.outgoing.is_none() {
                records.rest();
            }
        }
    }

    /// Reads ciphertext from the socket without waiting; `Ok(false)` at its end.
    fn read_socket(&mut self, socket: &TcpStream) -> io::Result<bool> {
        let handshaking =
            matches!(&self.layer, Layer::Rustls(h) if h.conn.common().is_handshaking());
        let incoming = self.flight.incoming.get_or_insert_with(Buffer::take);
        if incoming.spare().is_empty() && handshaking && incoming.capacity() < MAX_HANDSHAKE_BYTES {
            // rustls reads a handshake message only once all its records are in (it joins them
            // where they lie): a ClientHello of many groups or extensions may take more than a
            // buffer. At most a whole message of rustls's limit and a record's framing.
            incoming.grow(MAX_HANDSHAKE_BYTES);
        }
        let spare = incoming.spare();
        if spare.is_empty() {
            return Err(tls_error("a TLS record larger than the buffer"));
        }
        match throng_net::sockets::read_now(socket, spare) {
            Ok(0) => Ok(false),
            Ok(n) => {
                incoming.end += n;
                Ok(true)
            }
            Err(e) => {
                if incoming.is_empty() {
                    self.flight.incoming = None;
                }
                Err(e)
            }
        }
    }

    /// Sends what is encrypted; `Pending` until the socket has taken all of it.
    pub fn poll_send(&mut self, socket: &TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(out) = self.flight.outgoing.as_mut() {
            if out.is_empty() {
                self.flight.outgoing = None;
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
        self.rest_if_idle();
        Poll::Ready(Ok(()))
    }

    /// Encrypts and sends all of `data`, waiting as long as it takes.
    pub async fn write_all(&mut self, socket: &TcpStream, data: &[u8]) -> io::Result<()> {
        let mut written = 0;
        while written < data.len() {
            written += std::future::poll_fn(|cx| {
                let rest = data.get(written..).unwrap_or_default();
                self.poll_write(socket, cx, rest)
            })
            .await?;
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
            let (stop, _) = self.process_or_tell(socket, Then::Nothing)?;
            self.send(socket).await?;
            match stop {
                Stop::Traffic => return self.leave_rustls(),
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
    pub fn has_readable(&mut self, socket: &TcpStream) -> io::Result<bool> {
        let flight = &self.flight;
        if flight.plaintext.as_ref().is_some_and(|b| !b.is_empty())
            || !flight.overflow.is_empty()
            || flight.peer_closed
        {
            return Ok(true);
        }
        if flight.incoming.is_some() {
            self.process_or_tell(socket, Then::Nothing)?;
        }
        let flight = &self.flight;
        Ok(flight.plaintext.as_ref().is_some_and(|b| !b.is_empty()) || flight.peer_closed)
    }

    /// Reads plaintext without waiting: `WouldBlock` when none is there, 0 at the end.
    pub fn try_read(&mut self, socket: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let flight = &mut self.flight;
            if let Some(plain) = flight.plaintext.as_mut().filter(|b| !b.is_empty()) {
                let n = copy_prefix(plain.filled(), buf);
                plain.consume(n);
                if plain.is_empty() {
                    flight.plaintext = None;
                }
                return Ok(n);
            }
            if !flight.overflow.is_empty() {
                let n = copy_prefix(&flight.overflow, buf);
                flight.overflow.drain(..n);
                if flight.overflow.is_empty() {
                    flight.overflow = Vec::new();
                }
                return Ok(n);
            }
            if flight.peer_closed {
                return Ok(0);
            }
            if flight.incoming.is_some() {
                let processed = self.process(Then::Nothing);
                // Anything the processing made (tickets, key updates, or the fatal alert that
                // says why the connection is given up) goes out when it can.
                let _ = self.try_send_now(socket);
                let (stop, _) = processed?;
                if matches!(stop, Stop::Closed) {
                    return Ok(0);
                }
                let flight = &self.flight;
                if flight.plaintext.is_some() || !flight.overflow.is_empty() || flight.peer_closed {
                    continue;
                }
            }
            match self.read_socket(socket) {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        self.rest_if_idle();
                    }
                    return Err(e);
                }
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
        let (stop, taken) = self.process_or_tell(socket, Then::Encrypt(data))?;
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
        if !self.flight.closing {
            self.flight.closing = true;
            let _ = self.process(Then::CloseNotify);
        }
        self.poll_send(socket, cx)
    }

    /// tokio's `AsyncRead::poll_read` on this stream over `socket`: plaintext into `buf`, or
    /// `Pending` with the socket's readiness registered.
    pub fn poll_read(
        &mut self,
        socket: &TcpStream,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self.try_read(socket, buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(socket.poll_read_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// tokio's `AsyncWrite::poll_shutdown`: close_notify sent, then the socket's half-close.
    pub fn poll_shutdown(
        &mut self,
        socket: &mut TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_close(socket, cx))?;
        tokio::io::AsyncWrite::poll_shutdown(std::pin::Pin::new(socket), cx)
    }
}

/// The fuzz target's way in (`fuzzing::handshake`): `wire` handed to a server's handshake in
/// pieces of `piece` bytes, as the proxy's accept path hands what it reads, what it would send
/// dropped. Errors are expected; a panic, a hang or unbounded memory is the bug.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_handshake(
    config: std::sync::Arc<rustls::ServerConfig>,
    wire: &[u8],
    piece: usize,
) {
    let Ok(conn) = UnbufferedServerConnection::new(config) else {
        return;
    };
    let mut handshaking = Handshaking {
        conn,
        traffic: TrafficSecrets::default(),
    };
    let mut flight = Flight::default();
    for part in wire.chunks(piece.max(1)) {
        let incoming = flight.incoming.get_or_insert_with(Buffer::take);
        let spare = incoming.spare();
        let Some(room) = spare.get_mut(..part.len()) else {
            return; // past the buffer: what the stream refuses too
        };
        room.copy_from_slice(part);
        incoming.end += part.len();
        match process_rustls(&mut handshaking, &mut flight, Then::Nothing) {
            Ok((Stop::NeedInput | Stop::Traffic, _)) => {}
            Ok((Stop::Closed, _)) | Err(_) => return,
        }
        flight.outgoing = None;
    }
}

#[cfg(test)]
mod refusals;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        client_config, parse_certs, parse_key, self_signed, server_config, ClientOptions,
    };
    use std::io::{Read, Write};
    use std::sync::Arc;

    /// A server connection for a fresh self-signed certificate, and that certificate's PEM.
    fn server() -> (Arc<rustls::ServerConfig>, String) {
        let (cert_pem, key_pem) = self_signed(&["localhost"]).unwrap();
        let certs = parse_certs(cert_pem.as_bytes()).unwrap();
        let key = parse_key(key_pem.as_bytes()).unwrap();
        let config = server_config(certs, key, &[b"http/1.1"], &[]).unwrap();
        let mut config = (*config).clone();
        secrets::prepare_server(&mut config);
        (Arc::new(config), cert_pem)
    }

    /// A client configuration that trusts `cert_pem` (written to a file named by `test`).
    fn client_trusting(cert_pem: &str, test: &str, resume: bool) -> Arc<rustls::ClientConfig> {
        let dir = std::env::temp_dir().join(format!("throng-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), cert_pem).unwrap();
        client_config(&ClientOptions {
            root_certs: vec![dir.join("ca.pem")],
            resume,
            ..ClientOptions::default()
        })
        .unwrap()
    }

    /// A client that connects and leaves: the server's handshake ends at once with an error
    /// (the buffered driver this replaced spun on the closed socket until its timeout).
    #[tokio::test(flavor = "current_thread")]
    async fn a_peer_closing_mid_handshake_ends_it() {
        let (config, _) = server();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(TcpStream::connect(addr).await.unwrap());
        let (stream, _) = listener.accept().await.unwrap();
        let mut tls = TlsStream::new(UnbufferedServerConnection::new(config).unwrap());
        let ended =
            tokio::time::timeout(std::time::Duration::from_secs(5), tls.handshake(&stream)).await;
        assert!(matches!(ended, Ok(Err(_))), "{ended:?}");
    }

    /// Reads until `want` bytes of plaintext came.
    async fn read_exactly<C: Unbuffered>(
        tls: &mut TlsStream<C>,
        socket: &TcpStream,
        want: usize,
    ) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < want {
            match tls.try_read(socket, &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.readable().await.unwrap(),
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    /// Both sides on the unbuffered stream over loopback: a large message each way (many
    /// records, more than a buffer), then a clean close.
    #[tokio::test(flavor = "current_thread")]
    async fn both_sides_exchange_many_records_and_close() {
        let (config, cert_pem) = server();
        let client_config = client_trusting(&cert_pem, "stream", true);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let message: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let expected = message.clone();
        let server_side = tokio::task::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut tls = TlsStream::new(UnbufferedServerConnection::new(config).unwrap());
            tls.handshake(&stream).await.unwrap();
            assert!(tls.on_own_records());
            let got = read_exactly(&mut tls, &stream, expected.len()).await;
            assert_eq!(got, expected);
            tls.write_all(&stream, &got).await.unwrap();
            std::future::poll_fn(|cx| tls.poll_close(&stream, cx))
                .await
                .unwrap();
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let conn = crate::config::connect_unbuffered(&client_config, "localhost").unwrap();
        let mut tls = TlsStream::new(conn);
        tls.handshake(&stream).await.unwrap();
        assert!(tls.on_own_records());
        tls.write_all(&stream, &message).await.unwrap();
        let echoed = read_exactly(&mut tls, &stream, message.len()).await;
        assert_eq!(echoed, message);
        // close_notify from the server: the end of the stream.
        assert_eq!(read_exactly(&mut tls, &stream, 1).await, Vec::<u8>::new());
        server_side.await.unwrap();
    }

    /// Records that arrive while earlier plaintext is unread are kept in order, not lost or
    /// spun on: the server writes (which processes what came in) between small reads.
    #[tokio::test(flavor = "current_thread")]
    async fn plaintext_left_unread_while_writing_stays_in_order() {
        let (config, cert_pem) = server();
        let client_config = client_trusting(&cert_pem, "order", true);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let message: Vec<u8> = (0..60_000u32).map(|i| (i % 249) as u8).collect();
        let sent = message.clone();
        let client_side = tokio::task::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let conn = crate::config::connect_unbuffered(&client_config, "localhost").unwrap();
            let mut tls = TlsStream::new(conn);
            tls.handshake(&stream).await.unwrap();
            // Many small records, then many large ones.
            for chunk in sent.chunks(1000).take(20) {
                tls.write_all(&stream, chunk).await.unwrap();
            }
            tls.write_all(&stream, &sent[20_000..]).await.unwrap();
            // Everything the server writes, up to its close_notify.
            read_exactly(&mut tls, &stream, usize::MAX).await
        });
        let (stream, _) = listener.accept().await.unwrap();
        let mut tls = TlsStream::new(UnbufferedServerConnection::new(config).unwrap());
        tls.handshake(&stream).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 700];
        while got.len() < message.len() {
            match tls.try_read(&stream, &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stream.readable().await.unwrap();
                }
                Err(e) => panic!("{e}"),
            }
            // A write now and then, with plaintext still unread: the write processes what came
            // in meanwhile, and nothing may be lost or reordered by it.
            if got.len() % 3 == 0 {
                tls.write_all(&stream, b".").await.unwrap();
            }
        }
        assert_eq!(got, message);
        tls.write_all(&stream, b"k").await.unwrap();
        std::future::poll_fn(|cx| tls.poll_close(&stream, cx))
            .await
            .unwrap();
        let echoed = client_side.await.unwrap();
        assert_eq!(echoed.last(), Some(&b'k'));
        assert!(echoed[..echoed.len() - 1].iter().all(|&b| b == b'.'));
    }

    /// A real handshake, once full and once resumed, then with resumption off; against a
    /// blocking rustls server on a thread, so both APIs meet.
    #[tokio::test(flavor = "current_thread")]
    async fn handshakes_resume_unless_told_not_to() {
        let (config, cert_pem) = server();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(4).flatten() {
                let mut conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
                let mut stream = stream;
                let mut tls = rustls::Stream::new(&mut conn, &mut stream);
                let mut buf = [0u8; 4];
                if tls.read_exact(&mut buf).is_ok() {
                    let _ = tls.write_all(b"pong");
                    let _ = tls.flush();
                }
            }
        });
        let kinds = |resume: bool| {
            let config = client_trusting(&cert_pem, "resume", resume);
            async move {
                let mut kinds = Vec::new();
                for _ in 0..2 {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    let conn = crate::config::connect_unbuffered(&config, "localhost").unwrap();
                    let mut tls = TlsStream::new(conn);
                    tls.handshake(&stream).await.unwrap();
                    tls.write_all(&stream, b"ping").await.unwrap();
                    assert_eq!(read_exactly(&mut tls, &stream, 4).await, b"pong");
                    kinds.push(tls.resumed());
                }
                kinds
            }
        };
        assert_eq!(kinds(true).await, vec![false, true]);
        assert_eq!(kinds(false).await, vec![false, false]);
    }

    /// A blocking rustls client (the buffered API) connected to `addr`, its handshake done.
    fn rustls_client(
        addr: std::net::SocketAddr,
        cert_pem: &str,
        versions: &[&'static rustls::SupportedProtocolVersion],
        suite: Option<rustls::SupportedCipherSuite>,
    ) -> (rustls::ClientConnection, std::net::TcpStream) {
        let mut roots = rustls::RootCertStore::empty();
        for cert in parse_certs(cert_pem.as_bytes()).unwrap() {
            roots.add(cert).unwrap();
        }
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        if let Some(suite) = suite {
            provider.cipher_suites = vec![suite];
        }
        let provider = Arc::new(provider);
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut socket = std::net::TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut socket).unwrap();
        }
        (conn, socket)
    }

    /// Reads from a blocking rustls connection until `want` bytes of plaintext came.
    fn rustls_read(
        conn: &mut rustls::ClientConnection,
        socket: &mut std::net::TcpStream,
        want: usize,
    ) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < want {
            let mut buf = [0u8; 4096];
            match conn.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if conn.read_tls(socket).unwrap() == 0 {
                        break;
                    }
                    conn.process_new_packets().unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    /// Accepts one connection and completes the server's handshake on it.
    async fn accept_tls(
        listener: &tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> (TcpStream, TlsStream<UnbufferedServerConnection>) {
        let (stream, _) = listener.accept().await.unwrap();
        let mut tls = TlsStream::new(UnbufferedServerConnection::new(config).unwrap());
        tls.handshake(&stream).await.unwrap();
        (stream, tls)
    }

    /// A server on this stream, and a blocking rustls TLS 1.3 client on a thread that runs
    /// `client` once its handshake is done.
    async fn against_rustls_client<T: Send + 'static>(
        client: impl FnOnce(rustls::ClientConnection, std::net::TcpStream) -> T + Send + 'static,
    ) -> (
        TcpStream,
        TlsStream<UnbufferedServerConnection>,
        std::thread::JoinHandle<T>,
    ) {
        let (config, cert_pem) = server();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (conn, socket) = rustls_client(addr, &cert_pem, &[&rustls::version::TLS13], None);
            client(conn, socket)
        });
        let (stream, tls) = accept_tls(&listener, config).await;
        (stream, tls, handle)
    }

    /// TLS 1.3 moves to throng's record layer; TLS 1.2 stays with rustls and works the same.
    #[tokio::test(flavor = "current_thread")]
    async fn tls13_leaves_rustls_after_the_handshake_and_tls12_stays() {
        use rustls::version::{TLS12, TLS13};
        let (config, cert_pem) = server();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (version, own) in [(&TLS13, true), (&TLS12, false)] {
            let pem = cert_pem.clone();
            let client = std::thread::spawn(move || {
                let (mut conn, mut socket) = rustls_client(addr, &pem, &[version], None);
                conn.writer().write_all(b"ping").unwrap();
                conn.complete_io(&mut socket).unwrap();
                rustls_read(&mut conn, &mut socket, 4)
            });
            let (stream, mut tls) = accept_tls(&listener, Arc::clone(&config)).await;
            assert_eq!(tls.on_own_records(), own);
            assert_eq!(read_exactly(&mut tls, &stream, 4).await, b"ping");
            tls.write_all(&stream, b"pong").await.unwrap();
            assert_eq!(client.join().unwrap(), b"pong");
        }
    }

    /// Differential: each TLS 1.3 suite against rustls's own record layer on the other end:
    /// records of every size up to the maximum, coalesced in one write and split across
    /// reads, key updates asked for by the peer, and the server's own at its key's limit.
    #[tokio::test(flavor = "current_thread")]
    async fn every_tls13_suite_against_rustls() {
        use rustls::crypto::aws_lc_rs::cipher_suite::{
            TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
        };
        let (config, cert_pem) = server();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sizes = [1usize, 100, 16 * 1024, 16 * 1024 + 1, 40_000];
        for suite in [
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
        ] {
            let pem = cert_pem.clone();
            let client = std::thread::spawn(move || {
                let (mut conn, mut socket) =
                    rustls_client(addr, &pem, &[&rustls::version::TLS13], Some(suite));
                let mut echoed = Vec::new();
                for (i, size) in sizes.iter().enumerate() {
                    conn.writer().write_all(&vec![i as u8; *size]).unwrap();
                    if i % 2 == 1 {
                        conn.refresh_traffic_keys().unwrap();
                    }
                    while conn.wants_write() {
                        conn.write_tls(&mut socket).unwrap();
                    }
                    echoed.extend(rustls_read(&mut conn, &mut socket, *size));
                }
                echoed
            });
            let (stream, mut tls) = accept_tls(&listener, Arc::clone(&config)).await;
            assert!(tls.on_own_records(), "{suite:?}");
            tls.roll_keys_every(2);
            let mut sent = Vec::new();
            for size in sizes {
                let got = read_exactly(&mut tls, &stream, size).await;
                tls.write_all(&stream, &got).await.unwrap();
                sent.extend(got);
            }
            let echoed = client.join().unwrap();
            assert_eq!(echoed.len(), sent.len(), "{suite:?}");
            assert!(echoed == sent, "{suite:?}: the echo differs");
        }
    }

    /// A peer's KeyUpdate that asks for ours: the server opens what follows under the peer's
    /// next key and answers under its own next key, which the peer (rustls) then opens.
    #[tokio::test(flavor = "current_thread")]
    async fn a_key_update_from_the_peer_rolls_both_directions() {
        let (stream, mut tls, client) = against_rustls_client(|mut conn, mut socket| {
            let mut echoed = Vec::new();
            for word in [&b"one"[..], b"two", b"three"] {
                conn.writer().write_all(word).unwrap();
                conn.refresh_traffic_keys().unwrap();
                conn.complete_io(&mut socket).unwrap();
                echoed.extend(rustls_read(&mut conn, &mut socket, word.len()));
            }
            echoed
        })
        .await;
        for word in [&b"one"[..], b"two", b"three"] {
            let got = read_exactly(&mut tls, &stream, word.len()).await;
            tls.write_all(&stream, &got).await.unwrap();
        }
        assert_eq!(client.join().unwrap(), b"onetwothree");
    }

    /// The same on a connection that stays with rustls (a configuration that does not capture
    /// secrets, as `record_layer = "rustls"`): rustls follows the peer's key updates.
    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_left_on_rustls_follows_key_updates() {
        let (cert_pem, key_pem) = self_signed(&["localhost"]).unwrap();
        let certs = parse_certs(cert_pem.as_bytes()).unwrap();
        let key = parse_key(key_pem.as_bytes()).unwrap();
        let config = server_config(certs, key, &[b"http/1.1"], &[]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let (mut conn, mut socket) =
                rustls_client(addr, &cert_pem, &[&rustls::version::TLS13], None);
            let mut echoed = Vec::new();
            for (i, word) in [&b"one"[..], b"two", b"three", b"four"].iter().enumerate() {
                conn.writer().write_all(word).unwrap();
                if i % 2 == 0 {
                    conn.refresh_traffic_keys().unwrap();
                }
                conn.complete_io(&mut socket).unwrap();
                echoed.extend(rustls_read(&mut conn, &mut socket, word.len()));
                // As `openssl s_client`'s `K`: a KeyUpdate on its own, between requests.
                conn.refresh_traffic_keys().unwrap();
                conn.complete_io(&mut socket).unwrap();
            }
            echoed
        });
        let (stream, mut tls) = accept_tls(&listener, config).await;
        assert!(!tls.on_own_records());
        for word in [&b"one"[..], b"two", b"three", b"four"] {
            let got = read_exactly(&mut tls, &stream, word.len()).await;
            assert_eq!(got, word);
            tls.write_all(&stream, &got).await.unwrap();
        }
        assert_eq!(client.join().unwrap(), b"onetwothreefour");
    }

    /// At its key's limit the record layer announces a KeyUpdate and seals under the next key;
    /// the peer (rustls) reads every record across the changes.
    #[tokio::test(flavor = "current_thread")]
    async fn the_sending_key_rolls_at_its_limit() {
        let (stream, mut tls, client) = against_rustls_client(|mut conn, mut socket| {
            rustls_read(&mut conn, &mut socket, 10 * 100)
        })
        .await;
        tls.roll_keys_every(3);
        let mut sent = Vec::new();
        for i in 0..10u8 {
            let record = [b'a' + i; 100];
            tls.write_all(&stream, &record).await.unwrap();
            sent.extend_from_slice(&record);
        }
        assert_eq!(client.join().unwrap(), sent);
    }

    /// A record changed on the way is an error that names bad_record_mac, not a panic or
    /// garbage handed to the session, and the peer is told so by a fatal alert.
    #[tokio::test(flavor = "current_thread")]
    async fn a_tampered_record_is_refused() {
        let (stream, mut tls, client) = against_rustls_client(|mut conn, mut socket| {
            conn.writer().write_all(b"hello, server").unwrap();
            let mut record = Vec::new();
            conn.write_tls(&mut record).unwrap();
            record[8] ^= 1;
            socket.write_all(&record).unwrap();
            // What the server answers before it closes: its alert.
            let mut answer = Vec::new();
            let _ = socket.read_to_end(&mut answer);
            let _ = conn.read_tls(&mut &answer[..]);
            conn.process_new_packets().err()
        })
        .await;
        let mut buf = [0u8; 64];
        let error = loop {
            match tls.try_read(&stream, &mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await.unwrap(),
                other => break other,
            }
        };
        let error = error.expect_err("a tampered record was read");
        assert!(error.to_string().contains("bad_record_mac"), "{error}");
        drop(stream);
        let told = client.join().unwrap();
        assert_eq!(
            told,
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::BadRecordMac
            ))
        );
    }
}
