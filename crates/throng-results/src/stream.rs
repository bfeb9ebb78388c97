//! The results stream.
//!
//! ```text
//! header  : "THRONGR\0" (8 bytes), version (u16 LE)
//! frame   : kind (u8), payload length (u32 LE), payload
//! kinds   : 1 meta (JSON)  2 record (binary, see Record)  3 interval (binary)  4 end (JSON)
//!           5 progress (JSON; only between a process of a split attack and its master)
//!           6 MQTT second (binary, see crate::mqtt::frames)  7 MQTT totals (JSON)
//! ```
//!
//! A run writes one meta frame first, then records and intervals as they come, and an end frame
//! if it ends in order. Files from many processes or machines are merged by reading them all:
//! records add up, intervals add up per second. A frame cut short (a killed run, a file still
//! being written) ends the reading there, and [`Reader::truncated`] says so. Unknown frame kinds
//! are skipped, so older readers keep reading newer files' records.

use crate::record::{get_varint, put_varint, Record};
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
// Re-exported: the histograms this stream carries are what its readers and writers hold.
pub use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};

const MAGIC: &[u8; 8] = b"THRONGR\0";
/// The version this code writes and the newest it reads.
pub const VERSION: u16 = 1;
/// No frame is larger than this; a larger length means a damaged file, not a bigger frame.
const MAX_FRAME: u32 = 64 << 20;

const KIND_META: u8 = 1;
const KIND_RECORD: u8 = 2;
const KIND_INTERVAL: u8 = 3;
const KIND_END: u8 = 4;
const KIND_PROGRESS: u8 = 5;
const KIND_MQTT_SECOND: u8 = 6;
const KIND_MQTT_TOTALS: u8 = 7;

/// The longest latency a histogram holds exactly; longer ones are recorded as this.
pub const HISTOGRAM_MAX_NS: u64 = 3_600_000_000_000;

/// A fresh latency histogram (nanoseconds, 3 significant digits, up to an hour).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).expect("valid histogram bounds")
}

/// What a run was asked to do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// `--name`, vegeta's attack name.
    pub name: String,
    /// The run's start; record times count from here.
    pub start_unix_ns: u64,
    /// The offered rate, requests per second.
    pub rate: f64,
    /// The planned duration (0: until stopped or the targets run out).
    pub duration_ns: u64,
    pub timeout_ns: u64,
    pub threads: u32,
    pub max_inflight: u64,
    pub targets: Vec<TargetInfo>,
    /// Source addresses, in the order records index them.
    pub sources: Vec<String>,
    /// The program and version that wrote the file.
    pub generator: String,
    /// A run over many processes or machines: the run (the same in every part), a hash of its
    /// schedule (rate, duration, targets), this part's place (I of N; 0 of 0: not a part), the
    /// host that sent it, and how late after the shared start it began. Absent from files of
    /// older versions, which read as not parts.
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub schedule: String,
    #[serde(default)]
    pub part_index: u32,
    #[serde(default)]
    pub part_of: u32,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub start_late_ns: u64,
    /// The HTTP/2 the attack asked for: "" (none), "alpn" (offered on https targets), "h2c"
    /// (prior knowledge on plain ones), or both, comma-separated. What each request got is in
    /// its record.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub http2: String,
    /// An MQTT run (`throng mqtt --output`): its shape. Absent for HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<crate::mqtt::Plan>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub method: String,
    pub url: String,
}

/// How a run ended, written last.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// Requests the schedule made due.
    pub scheduled: u64,
    /// Requests sent (each has a record).
    pub sent: u64,
    /// Requests that were due while `--max-inflight` requests were in flight, and waited.
    pub delayed_by_cap: u64,
    /// "duration", "interrupted", "targets exhausted".
    pub ended_by: String,
}

/// A process of an attack split over processes (`--procs`), telling its master what the live
/// line shows and records do not: what is in flight now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub sent: u64,
    pub in_flight: i64,
    pub open_connections: i64,
}

/// The requests that completed within one second (by wall clock), with their latencies.
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    pub unix_second: u64,
    pub requests: u64,
    pub errors: u64,
    pub latency: Histogram<u64>,
}

impl Interval {
    pub fn new(unix_second: u64) -> Interval {
        Interval {
            unix_second,
            requests: 0,
            errors: 0,
            latency: latency_histogram(),
        }
    }

    pub fn add(&mut self, record: &Record) {
        self.requests += 1;
        if !record.is_success() {
            self.errors += 1;
        }
        self.latency
            .saturating_record(record.latency.clamp(1, HISTOGRAM_MAX_NS));
    }

    /// Adds another interval of the same second (from another thread, process or machine).
    pub fn merge(&mut self, other: &Interval) {
        self.requests += other.requests;
        self.errors += other.errors;
        // Both come from latency_histogram(), so their bounds match and adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    fn encode(&self, out: &mut Vec<u8>) -> io::Result<()> {
        put_varint(out, self.unix_second);
        put_varint(out, self.requests);
        put_varint(out, self.errors);
        V2Serializer::new()
            .serialize(&self.latency, out)
            .map_err(|e| io::Error::other(format!("histogram: {e:?}")))?;
        Ok(())
    }

    fn decode(mut input: &[u8]) -> Option<Interval> {
        let input = &mut input;
        let unix_second = get_varint(input)?;
        let requests = get_varint(input)?;
        let errors = get_varint(input)?;
        if !is_our_histogram(input) {
            return None;
        }
        let latency: Histogram<u64> = Deserializer::new().deserialize(input).ok()?;
        Some(Interval {
            unix_second,
            requests,
            errors,
            latency,
        })
    }
}

/// Whether `serialized` is an uncompressed HdrHistogram V2 with [`latency_histogram`]'s bounds,
/// and a payload that fits in it. The deserializer sizes the histogram from the header's bounds
/// and its buffer from the header's payload length before it reads a byte of payload, so a
/// crafted header in a results file could ask for gigabytes (found by the `results_stream` fuzz
/// target: 1.8 GB); a file throng wrote always has these values.
pub(crate) fn is_our_histogram(serialized: &[u8]) -> bool {
    const V2_COOKIE: u32 = 0x1c84_9313; // hdrhistogram's V2 cookie: its base, 0x1c849303, | 0x10
    let Some(header) = serialized.first_chunk::<40>() else {
        return false;
    };
    let u32_at = |at: usize| {
        header
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    };
    let u64_at = |at: usize| {
        header
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
    };
    let payload_fits = u32_at(4)
        .and_then(|len| usize::try_from(len).ok())
        .is_some_and(|len| len <= serialized.len() - header.len());
    u32_at(0) == Some(V2_COOKIE)
        && payload_fits
        && u32_at(8) == Some(0)
        && u32_at(12) == Some(3)
        && u64_at(16) == Some(1)
        && u64_at(24) == Some(HISTOGRAM_MAX_NS)
}

/// Gathers records into per-second intervals by completion time, and hands out the seconds that
/// are over. A record that arrives after its second was handed out goes into a new interval for
/// that same second: readers add them up, so nothing is lost.
#[derive(Debug, Default)]
pub struct IntervalLog {
    open: BTreeMap<u64, Interval>,
}

impl IntervalLog {
    pub fn add(&mut self, start_unix_ns: u64, record: &Record) {
        let done = start_unix_ns
            .saturating_add(record.intended)
            .saturating_add(record.latency);
        let second = done / 1_000_000_000;
        self.open
            .entry(second)
            .or_insert_with(|| Interval::new(second))
            .add(record);
    }

    /// Takes the intervals of seconds before `unix_second`.
    pub fn take_before(&mut self, unix_second: u64) -> Vec<Interval> {
        let later = self.open.split_off(&unix_second);
        std::mem::replace(&mut self.open, later)
            .into_values()
            .collect()
    }

    /// Takes every interval.
    pub fn take_all(&mut self) -> Vec<Interval> {
        std::mem::take(&mut self.open).into_values().collect()
    }
}

/// One frame of a results stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// Boxed: a frame a run writes once should not size the one written per request.
    Meta(Box<Meta>),
    Record(Record),
    Interval(Interval),
    End(End),
    Progress(Progress),
    /// A second of an MQTT run (boxed: it holds nine histograms).
    MqttSecond(Box<crate::mqtt::Second>),
    /// An MQTT run's totals, written last (before its end frame).
    MqttTotals(Box<crate::mqtt::Totals>),
}

/// Writes a results stream. Frames are buffered; [`Writer::flush`] makes them readable.
pub struct Writer<W: Write> {
    out: W,
    frame: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Writes the header and the run's metadata.
    pub fn new(mut out: W, meta: &Meta) -> io::Result<Writer<W>> {
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        let mut writer = Writer {
            out,
            frame: Vec::with_capacity(256),
        };
        let json = serde_json::to_vec(meta).map_err(io::Error::other)?;
        writer.write_frame(KIND_META, |payload| payload.extend_from_slice(&json))?;
        Ok(writer)
    }

    pub fn record(&mut self, record: &Record) -> io::Result<()> {
        self.write_frame(KIND_RECORD, |payload| record.encode(payload))
    }

    pub fn interval(&mut self, interval: &Interval) -> io::Result<()> {
        let mut payload = Vec::with_capacity(256);
        interval.encode(&mut payload)?;
        self.write_frame(KIND_INTERVAL, |frame| frame.extend_from_slice(&payload))
    }

    pub fn end(&mut self, end: &End) -> io::Result<()> {
        let json = serde_json::to_vec(end).map_err(io::Error::other)?;
        self.write_frame(KIND_END, |payload| payload.extend_from_slice(&json))
    }

    pub fn progress(&mut self, progress: &Progress) -> io::Result<()> {
        let json = serde_json::to_vec(progress).map_err(io::Error::other)?;
        self.write_frame(KIND_PROGRESS, |payload| payload.extend_from_slice(&json))
    }

    pub fn mqtt_second(&mut self, second: &crate::mqtt::Second) -> io::Result<()> {
        let mut payload = Vec::with_capacity(1024);
        second.encode(&mut payload)?;
        self.write_frame(KIND_MQTT_SECOND, |frame| frame.extend_from_slice(&payload))
    }

    pub fn mqtt_totals(&mut self, totals: &crate::mqtt::Totals) -> io::Result<()> {
        let json = serde_json::to_vec(totals).map_err(io::Error::other)?;
        self.write_frame(KIND_MQTT_TOTALS, |payload| payload.extend_from_slice(&json))
    }

    /// Writes a frame read from another stream, as it was.
    pub fn frame(&mut self, frame: &Frame) -> io::Result<()> {
        match frame {
            Frame::Meta(_) => Err(io::Error::other(
                "a stream has one meta frame, written by Writer::new",
            )),
            Frame::Record(record) => self.record(record),
            Frame::Interval(interval) => self.interval(interval),
            Frame::End(end) => self.end(end),
            Frame::Progress(progress) => self.progress(progress),
            Frame::MqttSecond(second) => self.mqtt_second(second),
            Frame::MqttTotals(totals) => self.mqtt_totals(totals),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn write_frame(&mut self, kind: u8, fill: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        self.frame.clear();
        self.frame.extend_from_slice(&[kind, 0, 0, 0, 0]);
        fill(&mut self.frame);
        let len = u32::try_from(self.frame.len() - 5)
            .ok()
            .filter(|len| *len <= MAX_FRAME)
            .ok_or_else(|| io::Error::other("results frame over 64 MiB"))?;
        self.frame[1..5].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&self.frame)
    }
}

/// Reads a results stream frame by frame.
pub struct Reader<R: Read> {
    input: R,
    truncated: bool,
    payload: Vec<u8>,
}

impl<R: Read> Reader<R> {
    /// Checks the header. The error says what the input is not.
    pub fn new(mut input: R) -> io::Result<Reader<R>> {
        let mut header = [0u8; 10];
        let got = read_full(&mut input, &mut header)?;
        if got < 10 || &header[..8] != MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a throng results file (written by `throng attack --output`)",
            ));
        }
        let version = u16::from_le_bytes([header[8], header[9]]);
        if version > VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("results format version {version} is newer than this throng reads ({VERSION}): upgrade throng"),
            ));
        }
        Ok(Reader {
            input,
            truncated: false,
            payload: Vec::new(),
        })
    }

    /// Whether the stream ended inside a frame (the run was killed, or is still writing).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The next frame; `None` at the end of the stream or of its last whole frame.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            let mut head = [0u8; 5];
            match read_full(&mut self.input, &mut head)? {
                0 => return Ok(None),
                5 => {}
                _ => {
                    self.truncated = true;
                    return Ok(None);
                }
            }
            let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
            if len > MAX_FRAME {
                return Err(corrupt(format!("a frame claims {len} bytes")));
            }
            self.payload.resize(len as usize, 0);
            if read_full(&mut self.input, &mut self.payload)? < len as usize {
                self.truncated = true;
                return Ok(None);
            }
            let payload = &self.payload[..];
            let frame = match head[0] {
                KIND_META => Frame::Meta(Box::new(
                    serde_json::from_slice(payload).map_err(|e| corrupt(format!("meta: {e}")))?,
                )),
                KIND_RECORD => Frame::Record(
                    Record::decode(payload).ok_or_else(|| corrupt("a malformed record".into()))?,
                ),
                KIND_INTERVAL => Frame::Interval(
                    Interval::decode(payload)
                        .ok_or_else(|| corrupt("a malformed interval".into()))?,
                ),
                KIND_END => Frame::End(
                    serde_json::from_slice(payload).map_err(|e| corrupt(format!("end: {e}")))?,
                ),
                KIND_PROGRESS => Frame::Progress(
                    serde_json::from_slice(payload)
                        .map_err(|e| corrupt(format!("progress: {e}")))?,
                ),
                KIND_MQTT_SECOND => Frame::MqttSecond(Box::new(
                    crate::mqtt::Second::decode(payload)
                        .ok_or_else(|| corrupt("a malformed MQTT second".into()))?,
                )),
                KIND_MQTT_TOTALS => Frame::MqttTotals(Box::new(
                    serde_json::from_slice(payload)
                        .map_err(|e| corrupt(format!("MQTT totals: {e}")))?,
                )),
                _ => continue, // a newer kind of frame: skip it
            };
            return Ok(Some(frame));
        }
    }
}

fn corrupt(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("damaged results file: {what}"),
    )
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            name: "test".into(),
            start_unix_ns: 1_700_000_000_000_000_000,
            rate: 100.0,
            targets: vec![TargetInfo {
                method: "GET".into(),
                url: "http://127.0.0.1:8282/".into(),
            }],
            ..Meta::default()
        }
    }

    fn record(seq: u64) -> Record {
        Record {
            seq,
            intended: seq * 10_000_000,
            sent: seq * 10_000_000,
            latency: 1_000_000 + seq,
            status: 200,
            ..Record::default()
        }
    }

    fn written(records: u64) -> Vec<u8> {
        let mut writer = Writer::new(Vec::new(), &meta()).unwrap();
        let mut log = IntervalLog::default();
        for seq in 0..records {
            writer.record(&record(seq)).unwrap();
            log.add(meta().start_unix_ns, &record(seq));
        }
        for interval in log.take_all() {
            writer.interval(&interval).unwrap();
        }
        writer
            .end(&End {
                scheduled: records,
                sent: records,
                ended_by: "duration".into(),
                ..End::default()
            })
            .unwrap();
        writer.into_inner()
    }

    fn read_all(bytes: &[u8]) -> (Vec<Frame>, bool) {
        let mut reader = Reader::new(bytes).unwrap();
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame().unwrap() {
            frames.push(frame);
        }
        (frames, reader.truncated())
    }

    #[test]
    fn what_is_written_reads_back_in_order() {
        let (frames, truncated) = read_all(&written(150));
        assert!(!truncated);
        assert_eq!(frames[0], Frame::Meta(Box::new(meta())));
        assert_eq!(frames[1], Frame::Record(record(0)));
        assert_eq!(frames[150], Frame::Record(record(149)));
        let intervals: Vec<&Interval> = frames
            .iter()
            .filter_map(|f| {
                if let Frame::Interval(i) = f {
                    Some(i)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(
            intervals.len(),
            2,
            "150 records 10 ms apart span two seconds"
        );
        assert_eq!(intervals.iter().map(|i| i.requests).sum::<u64>(), 150);
        assert!(matches!(frames.last(), Some(Frame::End(end)) if end.sent == 150));
    }

    #[test]
    fn a_truncated_tail_is_read_up_to_the_last_whole_frame() {
        let bytes = written(10);
        let (whole, _) = read_all(&bytes);
        let mut boundaries = vec![10];
        while *boundaries.last().unwrap() < bytes.len() {
            let at = *boundaries.last().unwrap();
            let len = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
            boundaries.push(at + 5 + len);
        }
        for cut in 10..=bytes.len() {
            let (frames, truncated) = read_all(&bytes[..cut]);
            let whole_frames = boundaries.iter().filter(|&&b| b <= cut).count() - 1;
            assert_eq!(frames[..], whole[..whole_frames], "cut at {cut}");
            assert_eq!(truncated, !boundaries.contains(&cut), "cut at {cut}");
        }
    }

    #[test]
    fn what_is_not_a_results_file_is_named() {
        let error = Reader::new(&b"GET http://x/\n"[..]).err().unwrap();
        assert!(
            error.to_string().contains("not a throng results file"),
            "{error}"
        );
        let mut newer = MAGIC.to_vec();
        newer.extend_from_slice(&9u16.to_le_bytes());
        let error = Reader::new(&newer[..]).err().unwrap();
        assert!(error.to_string().contains("newer"), "{error}");
    }

    #[test]
    fn unknown_frames_are_skipped() {
        let mut bytes = written(1);
        let end_at = bytes.len();
        bytes.extend_from_slice(&[99, 3, 0, 0, 0, 1, 2, 3]);
        let (frames, truncated) = read_all(&bytes);
        assert!(!truncated);
        let (before, _) = read_all(&bytes[..end_at]);
        assert_eq!(frames, before);
    }

    #[test]
    fn an_interval_round_trips_and_a_forged_histogram_is_refused() {
        // Second 100, one request, no error: three one-byte varints before the histogram.
        let mut interval = Interval::new(100);
        interval.add(&Record {
            latency: 5_000_000,
            status: 200,
            ..Record::default()
        });
        let mut encoded = Vec::new();
        interval.encode(&mut encoded).unwrap();
        let decoded = Interval::decode(&encoded).unwrap();
        assert_eq!(decoded.latency.len(), 1);
        // The header's highest trackable value raised to 2^62: the deserializer would size a
        // histogram of gigabytes from it (the results_stream fuzz target's find).
        let prefix = 3;
        assert_eq!(
            &encoded[prefix..prefix + 4],
            &[0x1c, 0x84, 0x93, 0x13],
            "the V2 cookie"
        );
        let mut forged = encoded.clone();
        forged[prefix + 24..prefix + 32].copy_from_slice(&(1u64 << 62).to_be_bytes());
        assert!(Interval::decode(&forged).is_none());
        // A payload length past the frame: refused before any buffer is sized from it.
        let mut long = encoded.clone();
        long[prefix + 4..prefix + 8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Interval::decode(&long).is_none());
    }

    #[test]
    fn intervals_merge_by_adding() {
        let mut a = Interval::new(5);
        let mut b = Interval::new(5);
        a.add(&record(1));
        b.add(&record(2));
        b.add(&Record {
            status: 500,
            ..record(3)
        });
        a.merge(&b);
        assert_eq!((a.requests, a.errors, a.latency.len()), (3, 1, 3));
    }
}
