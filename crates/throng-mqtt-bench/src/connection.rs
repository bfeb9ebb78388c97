//! One MQTT connection's socket: TCP (from the source pool) and TLS when asked, whole packets
//! written, bytes read into the thread's scratch buffer and cut into packets. A packet split
//! over reads is the only thing a connection keeps between reads.

use crate::run::ThreadCtx;
use crate::stamp::Stamp;
use std::io;
use throng_mqtt::read::{self, Packet, ReadError};
use throng_mqtt::{kind, QoS};
use throng_tls::config as tls;
use throng_tls::stream::TlsStream;
use tokio::net::TcpStream;

pub(crate) struct Connection {
    pub stream: TcpStream,
    pub tls: Option<Box<TlsStream<rustls::client::UnbufferedClientConnection>>>,
    /// What was read and not yet acted on; boxed, and only while there is some, so that a
    /// held connection keeps a pointer's worth for it.
    inbox: Option<Box<Inbox>>,
}

#[derive(Default)]
struct Inbox {
    /// The start of a packet whose end has not arrived.
    pending: Vec<u8>,
    /// Packets read and not yet acted on (several can come in one read).
    events: std::collections::VecDeque<Event>,
}

/// Why a connection ended, named as the report names it.
#[derive(Debug)]
pub(crate) struct Failure {
    pub class: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(class: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            class,
            message: message.into(),
        }
    }

    pub fn io(error: io::Error) -> Failure {
        let class = match error.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => "connection-reset",
            io::ErrorKind::InvalidData => "tls",
            _ => "io",
        };
        Failure::new(class, error.to_string())
    }
}

/// What a packet from the broker asks of the client, owned so the client can answer it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    ConnAck {
        code: u8,
        receive_maximum: Option<u16>,
    },
    SubAck {
        refused: bool,
    },
    Publish {
        qos: QoS,
        packet_id: Option<u16>,
        stamp: Option<Stamp>,
    },
    Ack {
        kind: u8,
        packet_id: u16,
        code: u8,
    },
    PingResp,
    Disconnect {
        code: u8,
    },
    Other(u8),
}

impl Connection {
    pub async fn open(ctx: &ThreadCtx) -> Result<(Connection, OpenTimes), Failure> {
        let config = &ctx.config;
        let source = ctx.next_source();
        let started = std::time::Instant::now();
        let socket = throng_net::sockets::outgoing_socket(config.broker, source)
            .map_err(|e| connect_failure(e, source))?;
        let stream = socket
            .connect(config.broker)
            .await
            .map_err(|e| connect_failure(e, source))?;
        let _ = stream.set_nodelay(true);
        let tcp = started.elapsed();
        let mut connection = Connection {
            stream,
            tls: None,
            inbox: None,
        };
        let mut tls_time = None;
        if let Some(client_config) = &ctx.tls {
            let started = std::time::Instant::now();
            let session = tls::connect_unbuffered(client_config, &config.server_name)
                .map_err(|e| Failure::new("tls", e))?;
            let mut session = Box::new(TlsStream::new(session));
            session
                .handshake(&connection.stream)
                .await
                .map_err(|e| Failure::new("tls", format!("tls: {e}")))?;
            connection.tls = Some(session);
            tls_time = Some(started.elapsed());
        }
        Ok((connection, OpenTimes { tcp, tls: tls_time }))
    }

    /// Writes `bytes` whole: at once when the socket takes them (a plain connection's small
    /// packets nearly always), else in a boxed wait, so that a held connection's future keeps
    /// no room for a write that waits.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let written = match &self.tls {
            Some(_) => 0,
            None => write_now(&self.stream, bytes)?,
        };
        match bytes.get(written..) {
            Some(rest) if !rest.is_empty() => Box::pin(self.send_waiting(rest)).await,
            _ => Ok(()),
        }
    }

    async fn send_waiting(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let stream = &self.stream;
        if let Some(session) = &mut self.tls {
            return session.write_all(stream, bytes).await.map_err(Failure::io);
        }
        let mut written = 0;
        while let Some(rest) = bytes.get(written..).filter(|r| !r.is_empty()) {
            stream.writable().await.map_err(Failure::io)?;
            written += write_now(stream, rest)?;
        }
        Ok(())
    }

    /// Waits until the socket has something to read (or TLS has plaintext waiting). A
    /// `poll_fn` over the socket's own readiness: the wait keeps a reference in the
    /// connection's future, where `readable()` would keep a waiter node.
    pub fn readable(&mut self) -> impl std::future::Future<Output = Result<(), Failure>> + '_ {
        std::future::poll_fn(move |cx| self.poll_readable(cx))
    }

    /// [`Connection::readable`] as a poll.
    pub fn poll_readable(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Failure>> {
        if let Some(session) = &mut self.tls {
            match session.has_readable(&self.stream) {
                Ok(true) => return std::task::Poll::Ready(Ok(())),
                Ok(false) => {}
                Err(e) => return std::task::Poll::Ready(Err(Failure::io(e))),
            }
        }
        self.stream.poll_read_ready(cx).map_err(Failure::io)
    }

    /// Lets go of the event queue's memory once it is empty: a held connection keeps none.
    pub fn release_events(&mut self) {
        if self
            .inbox
            .as_ref()
            .is_some_and(|inbox| inbox.events.is_empty() && inbox.pending.is_empty())
        {
            self.inbox = None;
        }
    }

    /// The next packet read and not yet acted on.
    pub fn take_event(&mut self) -> Option<Event> {
        self.inbox.as_mut()?.events.pop_front()
    }

    pub fn has_events(&self) -> bool {
        self.inbox
            .as_ref()
            .is_some_and(|inbox| !inbox.events.is_empty())
    }

    /// Reads what is there and queues each whole packet as an event; `Ok(false)` when the
    /// broker closed the connection.
    pub fn read_events(&mut self, ctx: &ThreadCtx) -> Result<bool, Failure> {
        let mut scratch = ctx.scratch.borrow_mut();
        let n = match &mut self.tls {
            // `read_now` also forgets the readiness when the read did not fill the buffer.
            None => match throng_net::sockets::read_now(&self.stream, &mut scratch[..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) => return Err(Failure::io(e)),
            },
            Some(session) => match session.try_read(&self.stream, &mut scratch[..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) => return Err(Failure::io(e)),
            },
        };
        if n == 0 {
            return Ok(false);
        }
        let fresh = scratch.get(..n).unwrap_or_default();
        let config = &ctx.config;
        let inbox = self.inbox.get_or_insert_with(Box::default);
        let mut rest: &[u8] = if inbox.pending.is_empty() {
            fresh
        } else {
            inbox.pending.extend_from_slice(fresh);
            &inbox.pending
        };
        let mut consumed = 0;
        loop {
            match read::packet(rest, config.version, config.max_packet) {
                Ok(Some((packet, used))) => {
                    inbox.events.push_back(event_of(&packet));
                    consumed += used;
                    rest = rest.get(used..).unwrap_or_default();
                }
                Ok(None) => break,
                Err(ReadError::TooLarge(length, limit)) => {
                    return Err(Failure::new(
                        "packet-too-large",
                        format!(
                            "the broker sent a packet of {length} bytes, over --max-packet {limit}"
                        ),
                    ))
                }
                Err(error) => return Err(Failure::new("protocol", error.to_string())),
            }
        }
        if inbox.pending.is_empty() {
            inbox
                .pending
                .extend_from_slice(fresh.get(consumed..).unwrap_or_default());
        } else {
            inbox.pending.drain(..consumed);
        }
        if inbox.pending.is_empty() && inbox.pending.capacity() > 4096 {
            inbox.pending = Vec::new();
        }
        Ok(true)
    }
}

/// Writes what the socket takes now.
fn write_now(stream: &TcpStream, bytes: &[u8]) -> Result<usize, Failure> {
    let mut written = 0;
    while let Some(rest) = bytes.get(written..).filter(|r| !r.is_empty()) {
        match stream.try_write(rest) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(Failure::io(e)),
        }
    }
    Ok(written)
}

pub(crate) struct OpenTimes {
    pub tcp: std::time::Duration,
    pub tls: Option<std::time::Duration>,
}

fn connect_failure(error: io::Error, source: Option<std::net::IpAddr>) -> Failure {
    let from = source.map_or(String::new(), |ip| format!(" from {ip}"));
    let class = match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection-refused",
        io::ErrorKind::AddrNotAvailable => "no-source-port",
        io::ErrorKind::TimedOut => "timeout",
        _ => "connect",
    };
    Failure::new(class, format!("connect{from}: {error}"))
}

fn event_of(packet: &Packet<'_>) -> Event {
    match packet {
        Packet::ConnAck {
            code,
            receive_maximum,
            ..
        } => Event::ConnAck {
            code: *code,
            receive_maximum: *receive_maximum,
        },
        Packet::SubAck { codes, .. } => Event::SubAck {
            refused: codes.iter().any(|c| *c >= 0x80),
        },
        Packet::Publish {
            qos,
            packet_id,
            payload,
            ..
        } => Event::Publish {
            qos: *qos,
            packet_id: *packet_id,
            stamp: Stamp::read(payload),
        },
        Packet::Ack {
            kind,
            packet_id,
            code,
        } => Event::Ack {
            kind: *kind,
            packet_id: *packet_id,
            code: *code,
        },
        Packet::PingResp => Event::PingResp,
        Packet::Disconnect { code } => Event::Disconnect { code: *code },
        Packet::Connect(_) => Event::Other(kind::CONNECT),
        Packet::UnsubAck { .. } => Event::Other(kind::UNSUBACK),
        Packet::PingReq => Event::Other(kind::PINGREQ),
        Packet::Auth { .. } => Event::Other(kind::AUTH),
    }
}
