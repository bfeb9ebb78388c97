//! TLS 1.3's record layer after the handshake, done here instead of in rustls: what kernel TLS
//! does, in user space. rustls makes the handshake, then hands over the traffic keys through its
//! kernel-TLS interface (`dangerous_into_kernel_connection`; a client keeps what rustls returns
//! with them, for the session tickets that come after the handshake). An idle connection then holds, per direction, a secret, a key, an IV and a
//! sequence number (about 0.3 KiB in all) instead of rustls's whole connection state (about
//! 3.5 KiB), and the AEAD contexts (about 600 B each in aws-lc) exist only while records move:
//! [`Records::rest`] drops them when the connection waits. Key updates are derived here from the
//! traffic secrets, which [`secrets`] captures during the handshake.
//!
//! RFC 8446 section 5.2: every record is `application_data` on the outside, its real type is the
//! last non-zero byte of the decrypted plaintext, the nonce is the IV XOR the record's sequence
//! number, and the additional data is the record's 5-byte header.

pub(crate) mod keys;
pub mod secrets;

use aws_lc_rs::aead::{Aad, Tag};
use keys::Keys;
use rustls::kernel::KernelConnection;
use rustls::{CipherSuite, ExtractedSecrets, SupportedCipherSuite};
use secrets::TrafficSecrets;
use std::io;
use throng_net::buffers::Buffer;

/// The most plaintext a record carries (2^14), and the most ciphertext (RFC 8446 5.2).
const MAX_PLAINTEXT: usize = 16 * 1024;
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
const HEADER: usize = 5;
const TAG: usize = 16;
/// A post-handshake message larger than this is refused rather than buffered (tickets and key
/// updates are a few hundred bytes).
const MAX_HANDSHAKE_MESSAGE: usize = 16 * 1024;

/// What a peer may send without sending data, as rustls (and BoringSSL) allow: empty records
/// in a row, KeyUpdates that ask for ours since the last data, and warning alerts
/// (`user_canceled`) over the connection. Each costs work and sends nothing; past the limit the
/// connection ends with `unexpected_message`.
const MAX_EMPTY_RECORDS_IN_A_ROW: u8 = 32;
const MAX_KEY_UPDATE_REQUESTS: u8 = 32;
const MAX_WARNING_ALERTS: u8 = 4;

const APPLICATION_DATA: u8 = 23;
const HANDSHAKE: u8 = 22;
const ALERT: u8 = 21;
const NEW_SESSION_TICKET: u8 = 4;
const KEY_UPDATE: u8 = 24;
const CLOSE_NOTIFY: u8 = 0;
const USER_CANCELED: u8 = 90;
// Fatal alerts throng sends before it gives a connection up (RFC 8446 6.2).
const UNEXPECTED_MESSAGE: u8 = 10;
const BAD_RECORD_MAC: u8 = 20;
const RECORD_OVERFLOW: u8 = 22;
const ILLEGAL_PARAMETER: u8 = 47;
const DECODE_ERROR: u8 = 50;
const INTERNAL_ERROR: u8 = 80;

/// Why a connection is given up: the alert to tell the peer (none when the peer's own alert
/// ended it) and the reason for the log.
struct Fault {
    alert: Option<u8>,
    reason: String,
}

fn fault(alert: u8, reason: impl Into<String>) -> Fault {
    Fault {
        alert: Some(alert),
        reason: reason.into(),
    }
}

impl From<io::Error> for Fault {
    fn from(error: io::Error) -> Fault {
        fault(INTERNAL_ERROR, error.to_string())
    }
}

/// Whether this record layer can carry a connection that negotiated `suite`: TLS 1.3 with one of
/// its three AEADs (TLS 1.2 stays with rustls).
pub fn supports(suite: SupportedCipherSuite) -> bool {
    matches!(
        suite.suite(),
        CipherSuite::TLS13_AES_128_GCM_SHA256
            | CipherSuite::TLS13_AES_256_GCM_SHA384
            | CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
    )
}

/// What a side of the connection does with a NewSessionTicket: a client gives it to rustls,
/// which keeps it for resuming (so a client keeps rustls's kernel connection; a server does
/// not, and its 0.8 KiB are freed).
pub trait Tickets: Sized {
    fn new_session_ticket(
        kernel: Option<&mut KernelConnection<Self>>,
        payload: &[u8],
    ) -> Result<(), rustls::Error>;
}

impl Tickets for rustls::client::ClientConnectionData {
    fn new_session_ticket(
        kernel: Option<&mut KernelConnection<Self>>,
        payload: &[u8],
    ) -> Result<(), rustls::Error> {
        match kernel {
            Some(kernel) => kernel.handle_new_session_ticket(payload),
            None => Ok(()),
        }
    }
}

impl Tickets for rustls::server::ServerConnectionData {
    fn new_session_ticket(
        _: Option<&mut KernelConnection<Self>>,
        _: &[u8],
    ) -> Result<(), rustls::Error> {
        Err(rustls::Error::General(
            "a client sent a NewSessionTicket".into(),
        ))
    }
}

/// What opening the records that came did.
#[derive(Default)]
pub struct Opened {
    /// The peer's close_notify came: nothing more will.
    pub closed: bool,
}

/// A TLS 1.3 connection past its handshake.
pub struct Records<Data> {
    /// rustls's remainder, for a client's session tickets, until the first application data.
    kernel: Option<Box<KernelConnection<Data>>>,
    tx: Keys,
    rx: Keys,
    /// Records sealed under one key before it is replaced (the suite's confidentiality limit).
    tx_limit: u64,
    /// A post-handshake message split over records, until its end comes.
    partial: Vec<u8>,
    /// Counted toward the limits above.
    empty_records: u8,
    key_update_requests: u8,
    warning_alerts: u8,
}

impl<Data: Tickets> Records<Data> {
    /// A connection whose handshake made `made` (keys and sequence numbers) from `traffic`
    /// (secrets), for a client (`is_client`) or a server; `kernel` for a client's tickets.
    pub fn new(
        made: ExtractedSecrets,
        traffic: TrafficSecrets,
        is_client: bool,
        suite: SupportedCipherSuite,
        kernel: Option<KernelConnection<Data>>,
    ) -> io::Result<Records<Data>> {
        let tx_limit = match suite.tls13() {
            Some(suite) => suite.common.confidentiality_limit,
            None => return Err(tls_error("a TLS 1.2 connection")),
        };
        let missing = || tls_error("the handshake's traffic secrets were not captured");
        let TrafficSecrets { client, server } = traffic;
        let (client, server) = (client.ok_or_else(missing)?, server.ok_or_else(missing)?);
        let (tx, rx) = if is_client {
            (client, server)
        } else {
            (server, client)
        };
        Ok(Records {
            tx: Keys::new(made.tx, tx)?,
            rx: Keys::new(made.rx, rx)?,
            kernel: kernel.map(Box::new),
            tx_limit,
            partial: Vec::new(),
            empty_records: 0,
            key_update_requests: 0,
            warning_alerts: 0,
        })
    }

    /// A connection on keys made here, not handed over (tests that seal a hostile peer's records).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn from_keys(tx: Keys, rx: Keys) -> Records<Data> {
        Records {
            kernel: None,
            tx,
            rx,
            tx_limit: u64::MAX,
            partial: Vec::new(),
            empty_records: 0,
            key_update_requests: 0,
            warning_alerts: 0,
        }
    }

    #[cfg(test)]
    pub fn roll_keys_every(&mut self, records: u64) {
        self.tx_limit = records;
    }

    /// Drops the AEAD contexts; the next record builds them again from the keys.
    pub fn rest(&mut self) {
        self.tx.rest();
        self.rx.rest();
    }

    /// Opens every whole record in `incoming` (a partial one stays), giving application data to
    /// `deliver`; what the peer asks for (a key update) is sealed into `outgoing`. When the
    /// connection must be given up, the fatal alert that says why is sealed into `outgoing`
    /// too, for the caller to send if it can, and the error names the reason.
    pub fn open(
        &mut self,
        incoming: &mut Buffer,
        outgoing: &mut Option<Buffer>,
        deliver: impl FnMut(&[u8]),
    ) -> io::Result<Opened> {
        self.open_records(incoming, outgoing, deliver)
            .map_err(|Fault { alert, reason }| {
                if let Some(description) = alert {
                    let out = outgoing.get_or_insert_with(Buffer::take);
                    let _ = self.seal_record(ALERT, &[2, description], out);
                }
                tls_error(reason)
            })
    }

    fn open_records(
        &mut self,
        incoming: &mut Buffer,
        outgoing: &mut Option<Buffer>,
        mut deliver: impl FnMut(&[u8]),
    ) -> Result<Opened, Fault> {
        let mut opened = Opened::default();
        while let Some(&header) = incoming.filled().first_chunk::<HEADER>() {
            let [outer_type, _, _, high, low] = header;
            let length = usize::from(u16::from_be_bytes([high, low]));
            if outer_type != APPLICATION_DATA {
                return Err(fault(
                    UNEXPECTED_MESSAGE,
                    format!("a record of type {outer_type} after the handshake"),
                ));
            }
            if length > MAX_CIPHERTEXT {
                return Err(fault(
                    RECORD_OVERFLOW,
                    format!("a record of {length} bytes"),
                ));
            }
            if length <= TAG {
                return Err(fault(DECODE_ERROR, format!("a record of {length} bytes")));
            }
            let Some(record) = incoming.filled_mut().get_mut(HEADER..HEADER + length) else {
                break; // the rest of the record has not come yet
            };
            let nonce = self.rx.next_nonce()?;
            let inner = self
                .rx
                .context()?
                .open_in_place(nonce, Aad::from(header), record)
                .map_err(|_| {
                    fault(
                        BAD_RECORD_MAC,
                        "a record that does not decrypt (bad_record_mac)",
                    )
                })?;
            // The real type is the last byte that is not padding.
            let Some(end) = inner.iter().rposition(|&b| b != 0) else {
                return Err(fault(UNEXPECTED_MESSAGE, "a record with no content type"));
            };
            let (content, kind) = match inner.split_at_checked(end) {
                Some((content, [kind, ..])) => (content, *kind),
                _ => return Err(fault(UNEXPECTED_MESSAGE, "a record with no content type")),
            };
            if inner.len() > MAX_PLAINTEXT + 1 {
                return Err(fault(
                    RECORD_OVERFLOW,
                    "a record over 2^14 bytes (record_overflow)",
                ));
            }
            if !self.partial.is_empty() && kind != HANDSHAKE {
                return Err(fault(
                    UNEXPECTED_MESSAGE,
                    "a handshake message interleaved with other records",
                ));
            }
            self.count_empty(content)?;
            match kind {
                APPLICATION_DATA if content.is_empty() => {}
                APPLICATION_DATA => {
                    self.key_update_requests = 0;
                    // Servers send their session tickets right after the handshake, before any
                    // data (OpenSSL, rustls, Go): from the first data on, rustls's remainder
                    // (the peer's certificates, the resumption secret) is let go, and a ticket
                    // that still comes is ignored. An idle client keeps only its keys.
                    self.kernel = None;
                    deliver(content)
                }
                // RFC 8446 5.1: handshake and alert records are never empty.
                HANDSHAKE | ALERT if content.is_empty() => {
                    return Err(fault(
                        UNEXPECTED_MESSAGE,
                        "an empty handshake or alert record",
                    ))
                }
                HANDSHAKE => self.post_handshake(content, outgoing)?,
                ALERT => match content {
                    [_, CLOSE_NOTIFY] => opened.closed = true,
                    [_, USER_CANCELED] => self.warning_alert()?,
                    [_, description] => {
                        return Err(Fault {
                            alert: None,
                            reason: format!("the peer sent alert {description}"),
                        })
                    }
                    _ => return Err(fault(DECODE_ERROR, "a malformed alert")),
                },
                other => {
                    return Err(fault(
                        UNEXPECTED_MESSAGE,
                        format!("a record of inner type {other}"),
                    ))
                }
            }
            incoming.consume(HEADER + length);
            if opened.closed {
                // Nothing after close_notify counts.
                incoming.consume(incoming.filled().len());
                break;
            }
        }
        Ok(opened)
    }

    /// Counts empty records in a row (any type), up to [`MAX_EMPTY_RECORDS_IN_A_ROW`].
    fn count_empty(&mut self, content: &[u8]) -> Result<(), Fault> {
        if !content.is_empty() {
            self.empty_records = 0;
            return Ok(());
        }
        self.empty_records += 1;
        if self.empty_records > MAX_EMPTY_RECORDS_IN_A_ROW {
            return Err(fault(
                UNEXPECTED_MESSAGE,
                format!("more than {MAX_EMPTY_RECORDS_IN_A_ROW} empty records in a row"),
            ));
        }
        Ok(())
    }

    /// A `user_canceled` alert: allowed, up to [`MAX_WARNING_ALERTS`] in a connection.
    fn warning_alert(&mut self) -> Result<(), Fault> {
        self.warning_alerts += 1;
        if self.warning_alerts > MAX_WARNING_ALERTS {
            return Err(fault(
                UNEXPECTED_MESSAGE,
                format!("more than {MAX_WARNING_ALERTS} warning alerts"),
            ));
        }
        Ok(())
    }

    /// Handles post-handshake messages, which may be split over records or share one.
    fn post_handshake(
        &mut self,
        content: &[u8],
        outgoing: &mut Option<Buffer>,
    ) -> Result<(), Fault> {
        let mut messages = std::mem::take(&mut self.partial);
        messages.extend_from_slice(content);
        let mut rest = &messages[..];
        while let Some(&[kind, l1, l2, l3]) = rest.first_chunk::<4>() {
            let length = u32::from_be_bytes([0, l1, l2, l3]) as usize;
            if length > MAX_HANDSHAKE_MESSAGE {
                return Err(fault(
                    DECODE_ERROR,
                    format!("a post-handshake message of {length} bytes"),
                ));
            }
            let Some((body, after)) = rest.get(4..).and_then(|r| r.split_at_checked(length)) else {
                break; // the rest of the message comes in a later record
            };
            match kind {
                NEW_SESSION_TICKET => Data::new_session_ticket(self.kernel.as_deref_mut(), body)
                    .map_err(|e| fault(UNEXPECTED_MESSAGE, e.to_string()))?,
                // RFC 8446 5.1: a key change must fall on a record's end; what follows it in the
                // record was sealed under the old key.
                KEY_UPDATE if !after.is_empty() => {
                    return Err(fault(
                        UNEXPECTED_MESSAGE,
                        "a KeyUpdate that does not end its record",
                    ))
                }
                KEY_UPDATE => self.key_update(body, outgoing)?,
                other => {
                    return Err(fault(
                        UNEXPECTED_MESSAGE,
                        format!("a post-handshake message of type {other}"),
                    ))
                }
            }
            rest = after;
        }
        if !rest.is_empty() {
            self.partial = rest.to_vec();
        }
        Ok(())
    }

    /// The peer's KeyUpdate: its records now come under the next key, and if it asks, ours go
    /// under our next key too, announced by a KeyUpdate of our own.
    fn key_update(&mut self, body: &[u8], outgoing: &mut Option<Buffer>) -> Result<(), Fault> {
        // RFC 8446 4.6.3: a request_update other than 0 or 1 is illegal_parameter; a body that
        // is not one byte does not decode.
        let requested = match body {
            [0] => false,
            [1] => true,
            [other] => {
                return Err(fault(
                    ILLEGAL_PARAMETER,
                    format!("a KeyUpdate with request_update {other}"),
                ))
            }
            _ => return Err(fault(DECODE_ERROR, "a malformed KeyUpdate")),
        };
        self.rx = self.rx.next()?;
        if requested {
            self.key_update_requests += 1;
            if self.key_update_requests > MAX_KEY_UPDATE_REQUESTS {
                return Err(fault(
                    UNEXPECTED_MESSAGE,
                    format!("more than {MAX_KEY_UPDATE_REQUESTS} KeyUpdate requests without data"),
                ));
            }
            self.update_tx(outgoing)?;
        }
        Ok(())
    }

    /// Sends KeyUpdate(update_not_requested) under the current key, then moves to the next.
    fn update_tx(&mut self, outgoing: &mut Option<Buffer>) -> io::Result<()> {
        let out = outgoing.get_or_insert_with(Buffer::take);
        self.seal_record(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out)?;
        self.tx = self.tx.next()?;
        Ok(())
    }

    /// Seals up to one record of `data` into `outgoing`; returns how much of `data` it took
    /// (0 when `outgoing` has no room for a record).
    pub fn seal(&mut self, data: &[u8], outgoing: &mut Option<Buffer>) -> io::Result<usize> {
        if self.tx.seq >= self.tx_limit {
            self.update_tx(outgoing)?;
        }
        let out = outgoing.get_or_insert_with(Buffer::take);
        let room = out.spare().len().saturating_sub(HEADER + 1 + TAG);
        let chunk = data
            .get(..data.len().min(room).min(MAX_PLAINTEXT))
            .unwrap_or_default();
        if chunk.is_empty() && !data.is_empty() {
            return Ok(0);
        }
        self.seal_record(APPLICATION_DATA, chunk, out)?;
        Ok(chunk.len())
    }

    /// Seals close_notify into `outgoing`.
    pub fn close_notify(&mut self, outgoing: &mut Option<Buffer>) -> io::Result<()> {
        let out = outgoing.get_or_insert_with(Buffer::take);
        self.seal_record(ALERT, &[1, CLOSE_NOTIFY], out)
    }

    /// One record of `kind` carrying `content`, appended to `out` (which has room for it).
    pub(crate) fn seal_record(
        &mut self,
        kind: u8,
        content: &[u8],
        out: &mut Buffer,
    ) -> io::Result<()> {
        let length = content.len() + 1 + TAG;
        let Ok(wire_length) = u16::try_from(length) else {
            return Err(tls_error("a record too long to seal"));
        };
        let spare = out.spare();
        let Some(record) = spare.get_mut(..HEADER + length) else {
            return Err(tls_error("no room for a record"));
        };
        let [high, low] = wire_length.to_be_bytes();
        let header = [APPLICATION_DATA, 3, 3, high, low];
        let (head, rest) = record.split_at_mut(HEADER);
        head.copy_from_slice(&header);
        let (body, tag_room) = rest.split_at_mut(content.len() + 1);
        let (inner, kind_byte) = body.split_at_mut(content.len());
        inner.copy_from_slice(content);
        kind_byte.fill(kind);
        let nonce = self.tx.next_nonce()?;
        let tag: Tag = self
            .tx
            .context()?
            .seal_in_place_separate_tag(nonce, Aad::from(header), body)
            .map_err(|_| tls_error("sealing a record failed"))?;
        tag_room.copy_from_slice(tag.as_ref());
        out.end += HEADER + length;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

fn tls_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}
