//! One request's outcome.

use serde::{Deserialize, Serialize};

/// What kind of failure a request met. Each has a stable name for reports and encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// The `--timeout` fired; [`Record::timeout_phase`] says during which phase.
    Timeout,
    ConnectionRefused,
    ConnectionReset,
    /// No local port was free for the source address: add source addresses (`--source`).
    NoSourcePort,
    /// Any other failure to connect (unreachable network, address not on this host ...).
    Connect,
    Tls,
    /// The server's answer was not valid HTTP/1.x, or it closed before a whole response.
    Protocol,
    /// The server answered with a status of 500 or more.
    ServerError,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 8] = [
        ErrorClass::Timeout,
        ErrorClass::ConnectionRefused,
        ErrorClass::ConnectionReset,
        ErrorClass::NoSourcePort,
        ErrorClass::Connect,
        ErrorClass::Tls,
        ErrorClass::Protocol,
        ErrorClass::ServerError,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::ConnectionRefused => "connection-refused",
            ErrorClass::ConnectionReset => "connection-reset",
            ErrorClass::NoSourcePort => "no-source-port",
            ErrorClass::Connect => "connect",
            ErrorClass::Tls => "tls",
            ErrorClass::Protocol => "protocol",
            ErrorClass::ServerError => "server-error",
        }
    }

    pub fn from_name(name: &str) -> Option<ErrorClass> {
        ErrorClass::ALL
            .into_iter()
            .find(|class| class.name() == name)
    }

    fn code(self) -> u8 {
        ErrorClass::ALL
            .iter()
            .position(|c| *c == self)
            .map_or(0, |i| i as u8 + 1)
    }

    fn from_code(code: u8) -> Option<ErrorClass> {
        ErrorClass::ALL
            .get(usize::from(code).checked_sub(1)?)
            .copied()
    }
}

/// The phases of a request, in order; a timeout names the one it cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Waiting for a free slot under `--max-inflight` (the request was due but not yet sent).
    Queue,
    Connect,
    Tls,
    /// Writing the request.
    Send,
    /// Waiting for the first byte of the response.
    FirstByte,
    /// Reading the rest of the response.
    Body,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Queue,
        Phase::Connect,
        Phase::Tls,
        Phase::Send,
        Phase::FirstByte,
        Phase::Body,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Queue => "queue",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Send => "send",
            Phase::FirstByte => "first-byte",
            Phase::Body => "body",
        }
    }

    /// Words for a person: "while connecting".
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Queue => "waiting for a free slot (--max-inflight)",
            Phase::Connect => "while connecting",
            Phase::Tls => "during the TLS handshake",
            Phase::Send => "while sending the request",
            Phase::FirstByte => "waiting for the first byte of the response",
            Phase::Body => "while reading the response body",
        }
    }

    fn code(self) -> u8 {
        Phase::ALL
            .iter()
            .position(|p| *p == self)
            .map_or(0, |i| i as u8 + 1)
    }

    fn from_code(code: u8) -> Option<Phase> {
        Phase::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

/// One request. Times are nanoseconds since the run's start ([`crate::Meta::start_unix_ns`]);
/// durations are nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// When the open-model schedule said the request was due.
    pub intended: u64,
    /// When it was actually sent (or its connection started); `sent - intended` is the
    /// generator's lag, or the wait for a `--max-inflight` slot.
    pub sent: u64,
    /// From the intended start to the end: the latency a user waiting on this schedule saw,
    /// free of coordinated omission.
    pub latency: u64,
    /// Connecting, when this request opened a connection (0 on a reused one).
    pub connect: u64,
    /// The TLS handshake, when this request made one.
    pub tls: u64,
    /// That handshake resumed an earlier session.
    pub tls_resumed: bool,
    /// Sent again on a new connection: the reused one it went out on closed before any byte of
    /// the response (a server closing idle connections), as Go's net/http and vegeta retry.
    pub retried: bool,
    /// Sent over HTTP/2 (as a stream), not HTTP/1.1.
    pub http2: bool,
    /// Waited for a stream slot: every HTTP/2 connection it could use was at the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS and no more connections were allowed. Its latency still
    /// runs from when it was due.
    pub waited_for_stream: bool,
    /// From the send to the first response byte (0 if none came).
    pub first_byte: u64,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub error: Option<ErrorClass>,
    /// For a timeout: the phase it cut.
    pub timeout_phase: Option<Phase>,
    /// Words for a person, as vegeta's error strings are (empty when it succeeded).
    pub error_text: String,
    /// The server's `x-served-by` header, if it sent one.
    pub served_by: String,
    /// Index into [`crate::Meta::targets`].
    pub target: u32,
    /// Index into [`crate::Meta::sources`], if a source pool was used.
    pub source: Option<u16>,
    /// Sequence number within its run.
    pub seq: u64,
}

impl Record {
    /// The time from the actual send to the end.
    pub fn service_time(&self) -> u64 {
        self.latency.saturating_sub(self.lag())
    }

    /// How late the send was against the schedule.
    pub fn lag(&self) -> u64 {
        self.sent.saturating_sub(self.intended)
    }

    /// vegeta's notion of success: a status in 200..400 and no error.
    pub fn is_success(&self) -> bool {
        self.error.is_none() && (200..400).contains(&self.status)
    }

    /// Appends the binary form (see [`crate::stream`]).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for value in [
            self.seq,
            self.intended,
            self.sent,
            self.latency,
            self.connect,
            self.tls,
            self.first_byte,
            self.bytes_in,
            self.bytes_out,
        ] {
            put_varint(out, value);
        }
        put_varint(out, u64::from(self.status));
        put_varint(out, u64::from(self.target));
        put_varint(out, self.source.map_or(0, |s| u64::from(s) + 1));
        out.push(self.error.map_or(0, ErrorClass::code));
        out.push(self.timeout_phase.map_or(0, Phase::code));
        out.push(
            u8::from(self.tls_resumed)
                | u8::from(self.retried) << 1
                | u8::from(self.http2) << 2
                | u8::from(self.waited_for_stream) << 3,
        );
        put_text(out, &self.error_text);
        put_text(out, &self.served_by);
    }

    /// Reads the binary form; `None` if it is malformed.
    pub(crate) fn decode(mut input: &[u8]) -> Option<Record> {
        let input = &mut input;
        let mut numbers = [0u64; 9];
        for number in &mut numbers {
            *number = get_varint(input)?;
        }
        let [seq, intended, sent, latency, connect, tls, first_byte, bytes_in, bytes_out] = numbers;
        let status = u16::try_from(get_varint(input)?).ok()?;
        let target = u32::try_from(get_varint(input)?).ok()?;
        let source = match get_varint(input)? {
            0 => None,
            n => Some(u16::try_from(n - 1).ok()?),
        };
        let (&error, rest) = input.split_first()?;
        let (&phase, rest) = rest.split_first()?;
        let (&flags, rest) = rest.split_first()?;
        *input = rest;
        Some(Record {
            seq,
            intended,
            sent,
            latency,
            connect,
            tls,
            tls_resumed: flags & 1 != 0,
            retried: flags & 2 != 0,
            http2: flags & 4 != 0,
            waited_for_stream: flags & 8 != 0,
            first_byte,
            bytes_in,
            bytes_out,
            status,
            target,
            source,
            error: if error == 0 {
                None
            } else {
                Some(ErrorClass::from_code(error)?)
            },
            timeout_phase: if phase == 0 {
                None
            } else {
                Some(Phase::from_code(phase)?)
            },
            error_text: get_text(input)?,
            served_by: get_text(input)?,
        })
    }
}

/// LEB128: small numbers (most timings in microseconds' range, statuses, indexes) take few bytes.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn get_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Text of at most 64 KiB (longer is cut at a character boundary).
fn put_text(out: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(u16::MAX as usize);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    put_varint(out, end as u64);
    out.extend_from_slice(&text.as_bytes()[..end]);
}

fn get_text(input: &mut &[u8]) -> Option<String> {
    let len = usize::try_from(get_varint(input)?).ok()?;
    if len > input.len() {
        return None;
    }
    let (text, rest) = input.split_at(len);
    *input = rest;
    String::from_utf8(text.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Record {
        Record {
            seq: 7,
            intended: 1_000_000,
            sent: 1_250_000,
            latency: 3_000_000,
            connect: 120_000,
            tls: 0,
            tls_resumed: false,
            retried: false,
            http2: true,
            waited_for_stream: true,
            first_byte: 2_000_000,
            status: 200,
            bytes_in: 4,
            bytes_out: 120,
            error: None,
            timeout_phase: None,
            error_text: String::new(),
            served_by: "127.0.0.1:8282".into(),
            target: 1,
            source: Some(3),
        }
    }

    #[test]
    fn a_record_round_trips() {
        let mut failed = sample();
        failed.tls = 2_000_000;
        failed.tls_resumed = true;
        failed.retried = true;
        failed.error = Some(ErrorClass::Timeout);
        failed.timeout_phase = Some(Phase::FirstByte);
        failed.error_text = "timeout (30s) waiting for the first byte — ünïcode".into();
        failed.source = None;
        for record in [sample(), failed, Record::default()] {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            assert_eq!(Record::decode(&bytes), Some(record));
        }
    }

    #[test]
    fn garbage_is_refused_not_misread() {
        let mut bytes = Vec::new();
        sample().encode(&mut bytes);
        assert_eq!(Record::decode(&bytes[..bytes.len() - 3]), None);
        assert_eq!(Record::decode(&[0xff; 12]), None);
    }

    #[test]
    fn derived_times_and_success() {
        let record = sample();
        assert_eq!(record.lag(), 250_000);
        assert_eq!(record.service_time(), 2_750_000);
        assert!(record.is_success());
        let server_error = Record {
            status: 503,
            ..sample()
        };
        assert!(!server_error.is_success());
        assert_eq!(
            ErrorClass::from_name("no-source-port"),
            Some(ErrorClass::NoSourcePort)
        );
    }
}
