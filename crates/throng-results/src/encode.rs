//! Records as JSON lines or CSV, with vegeta's field names where vegeta has the field, so that
//! scripts written for `vegeta encode` keep working; and JSON lines back to a results stream.
//!
//! vegeta's fields keep vegeta's meanings: `timestamp` is the actual send and `latency` runs
//! from it. throng adds `intended` (when the schedule said the request was due) and
//! `latency_from_intended` (the latency free of coordinated omission that throng reports), the
//! phases, `served_by`, `source`, `error_class` and `timeout_phase`.

use crate::record::{ErrorClass, Phase, Record};
use crate::stream::{Frame, IntervalLog, Meta, Reader, TargetInfo, Writer};
use crate::time::{parse_rfc3339, rfc3339};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Read, Write};

#[derive(Serialize, Deserialize)]
struct JsonResult {
    attack: String,
    seq: u64,
    code: u16,
    timestamp: String,
    latency: u64,
    bytes_out: u64,
    bytes_in: u64,
    error: String,
    body: Option<String>,
    method: String,
    url: String,
    headers: Option<serde_json::Value>,
    // throng's fields: absent from vegeta's JSON, which reads as results with no lag known (the
    // intended time is the send, latency from it the latency) and no phases.
    #[serde(default)]
    intended: String,
    #[serde(default)]
    latency_from_intended: u64,
    #[serde(default)]
    connect: u64,
    #[serde(default)]
    tls: u64,
    #[serde(default)]
    tls_resumed: bool,
    #[serde(default)]
    retried: bool,
    /// "HTTP/2.0" or "HTTP/1.1", as Go's `Response.Proto` says it; empty in older files.
    #[serde(default)]
    proto: String,
    #[serde(default)]
    waited_for_stream: bool,
    #[serde(default)]
    first_byte: u64,
    #[serde(default)]
    served_by: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    error_class: String,
    #[serde(default)]
    timeout_phase: String,
}

/// The formats `throng encode --to` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    /// The binary results stream (from JSON lines).
    Throng,
}

impl Format {
    pub fn parse(name: &str) -> Result<Format, String> {
        match name {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "throng" | "binary" => Ok(Format::Throng),
            other => Err(format!(
                "unknown encoding `{other}`: use json, csv or throng"
            )),
        }
    }
}

/// The CSV columns: vegeta's, then throng's.
pub const CSV_HEADER: &str =
    "timestamp,code,latency,bytes_out,bytes_in,error,body,attack,seq,method,url,headers,\
intended,latency_from_intended,connect,tls,first_byte,served_by,source,error_class,timeout_phase";

fn json_result(meta: &Meta, record: &Record) -> JsonResult {
    let target = meta
        .targets
        .get(record.target as usize)
        .cloned()
        .unwrap_or_default();
    JsonResult {
        attack: meta.name.clone(),
        seq: record.seq,
        code: record.status,
        timestamp: rfc3339(meta.start_unix_ns.saturating_add(record.sent)),
        latency: record.service_time(),
        bytes_out: record.bytes_out,
        bytes_in: record.bytes_in,
        error: record.error_text.clone(),
        body: None,
        method: target.method,
        url: target.url,
        headers: None,
        intended: rfc3339(meta.start_unix_ns.saturating_add(record.intended)),
        latency_from_intended: record.latency,
        connect: record.connect,
        tls: record.tls,
        tls_resumed: record.tls_resumed,
        retried: record.retried,
        proto: match record.http2 {
            true => "HTTP/2.0".into(),
            false => "HTTP/1.1".into(),
        },
        waited_for_stream: record.waited_for_stream,
        first_byte: record.first_byte,
        served_by: record.served_by.clone(),
        source: record
            .source
            .and_then(|i| meta.sources.get(usize::from(i)).cloned())
            .unwrap_or_default(),
        error_class: record.error.map_or("", ErrorClass::name).to_string(),
        timeout_phase: record.timeout_phase.map_or("", Phase::name).to_string(),
    }
}

/// Writes every record of every input in `format` (JSON lines or CSV).
pub fn records_to<R: Read>(
    inputs: Vec<Reader<R>>,
    format: Format,
    out: &mut impl Write,
) -> io::Result<usize> {
    // Each kind's CSV header comes before its first row; with no rows at all, the HTTP one.
    let mut http_header_written = false;
    let mut mqtt_header_written = false;
    let mut truncated = 0;
    for mut reader in inputs {
        let mut meta = Meta::default();
        while let Some(frame) = reader.next_frame()? {
            match frame {
                Frame::Meta(m) => meta = *m,
                Frame::Record(record) => {
                    let result = json_result(&meta, &record);
                    match format {
                        Format::Json => {
                            serde_json::to_writer(&mut *out, &result).map_err(io::Error::other)?;
                            writeln!(out)?;
                        }
                        Format::Csv => {
                            if mqtt_header_written {
                                return Err(io::Error::other(
                                    "HTTP results and an MQTT run have different columns: encode them apart",
                                ));
                            }
                            if !http_header_written {
                                writeln!(out, "{CSV_HEADER}")?;
                                http_header_written = true;
                            }
                            write_csv(out, &meta, &record, &result)?
                        }
                        Format::Throng => {
                            return Err(io::Error::other("records_to writes json or csv; use json_to_stream for the binary format"))
                        }
                    }
                }
                // An MQTT run has no per-request records: each second is a line (JSON) or
                // row (CSV) of its own columns.
                Frame::MqttSecond(_) if http_header_written => {
                    return Err(io::Error::other(
                        "HTTP results and an MQTT run have different columns: encode them apart",
                    ))
                }
                Frame::MqttSecond(second) => match format {
                    Format::Csv => {
                        if !mqtt_header_written {
                            writeln!(out, "{}", crate::mqtt::frames::CSV_HEADER)?;
                            mqtt_header_written = true;
                        }
                        writeln!(out, "{}", second.csv_row())?;
                    }
                    _ => {
                        serde_json::to_writer(&mut *out, &second.json())
                            .map_err(io::Error::other)?;
                        writeln!(out)?;
                    }
                },
                Frame::Interval(_) | Frame::End(_) | Frame::Progress(_) | Frame::MqttTotals(_) => {}
            }
        }
        truncated += usize::from(reader.truncated());
    }
    if format == Format::Csv && !http_header_written && !mqtt_header_written {
        writeln!(out, "{CSV_HEADER}")?;
    }
    Ok(truncated)
}

fn write_csv(
    out: &mut impl Write,
    meta: &Meta,
    record: &Record,
    result: &JsonResult,
) -> io::Result<()> {
    let fields: [String; 21] = [
        meta.start_unix_ns.saturating_add(record.sent).to_string(),
        result.code.to_string(),
        result.latency.to_string(),
        result.bytes_out.to_string(),
        result.bytes_in.to_string(),
        csv_quote(&result.error),
        String::new(),
        csv_quote(&result.attack),
        result.seq.to_string(),
        csv_quote(&result.method),
        csv_quote(&result.url),
        String::new(),
        meta.start_unix_ns
            .saturating_add(record.intended)
            .to_string(),
        result.latency_from_intended.to_string(),
        result.connect.to_string(),
        result.tls.to_string(),
        result.first_byte.to_string(),
        csv_quote(&result.served_by),
        csv_quote(&result.source),
        result.error_class.clone(),
        result.timeout_phase.clone(),
    ];
    writeln!(out, "{}", fields.join(","))
}

fn csv_quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// A result read from JSON lines or from vegeta's files, with its send and intended times.
struct Parsed {
    result: JsonResult,
    sent: u64,
    intended: u64,
}

/// Reads JSON lines (as [`records_to`] writes them, or vegeta's) back into a results stream.
/// Errors name the line.
pub fn json_to_stream(input: impl BufRead, out: impl Write) -> Result<(), String> {
    let mut results = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("reading JSON results: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let result: JsonResult =
            serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", index + 1))?;
        let mut result = result;
        let sent = parse_rfc3339(&result.timestamp)
            .ok_or_else(|| format!("line {}: bad timestamp", index + 1))?;
        let intended = if result.intended.is_empty() {
            // vegeta's JSON: no intended time; the send stands for it, latency for its latency.
            result.latency_from_intended = result.latency;
            if result.error_class.is_empty() && !result.error.is_empty() {
                result.error_class = classify_text(&result.error).to_string();
            }
            sent
        } else {
            parse_rfc3339(&result.intended)
                .ok_or_else(|| format!("line {}: bad intended time", index + 1))?
        };
        results.push(Parsed {
            result,
            sent,
            intended,
        });
    }
    write_stream(results, out)
}

/// vegeta's results (from its gob or CSV) as a results stream: each sent when it was due, as
/// vegeta's JSON reads.
pub fn vegeta_to_stream(
    results: Vec<crate::vegeta::VegetaResult>,
    out: impl Write,
) -> Result<(), String> {
    let results = results
        .into_iter()
        .map(|v| Parsed {
            sent: v.timestamp_unix_ns,
            intended: v.timestamp_unix_ns,
            result: JsonResult {
                error_class: if v.error.is_empty() {
                    String::new()
                } else {
                    classify_text(&v.error).to_string()
                },
                attack: v.attack,
                seq: v.seq,
                code: v.code,
                timestamp: String::new(),
                latency: v.latency_ns,
                latency_from_intended: v.latency_ns,
                bytes_out: v.bytes_out,
                bytes_in: v.bytes_in,
                error: v.error,
                body: None,
                method: v.method,
                url: v.url,
                headers: None,
                intended: String::new(),
                connect: 0,
                tls: 0,
                tls_resumed: false,
                retried: false,
                proto: String::new(),
                waited_for_stream: false,
                first_byte: 0,
                served_by: String::new(),
                source: String::new(),
                timeout_phase: String::new(),
            },
        })
        .collect();
    write_stream(results, out)
}

/// The run's start becomes the earliest intended time; targets and sources are rebuilt from
/// the records' URLs and addresses; the offered rate, which these formats do not carry, is 0.
fn write_stream(results: Vec<Parsed>, out: impl Write) -> Result<(), String> {
    let start = results.iter().map(|r| r.intended).min().unwrap_or(0);
    let mut meta = Meta {
        name: results
            .first()
            .map(|r| r.result.attack.clone())
            .unwrap_or_default(),
        start_unix_ns: start,
        generator: concat!("throng encode ", env!("CARGO_PKG_VERSION")).to_string(),
        ..Meta::default()
    };
    let mut records = Vec::with_capacity(results.len());
    for Parsed {
        result,
        sent,
        intended,
    } in results
    {
        let target_info = TargetInfo {
            method: result.method.clone(),
            url: result.url.clone(),
        };
        let target = index_of(&mut meta.targets, target_info);
        let source = (!result.source.is_empty())
            .then(|| index_of(&mut meta.sources, result.source.clone()) as u16);
        records.push(Record {
            seq: result.seq,
            intended: intended.saturating_sub(start),
            sent: sent.saturating_sub(start),
            latency: result.latency_from_intended,
            connect: result.connect,
            tls: result.tls,
            tls_resumed: result.tls_resumed,
            retried: result.retried,
            http2: result.proto == "HTTP/2.0",
            waited_for_stream: result.waited_for_stream,
            first_byte: result.first_byte,
            status: result.code,
            bytes_in: result.bytes_in,
            bytes_out: result.bytes_out,
            error: ErrorClass::from_name(&result.error_class),
            timeout_phase: Phase::ALL
                .into_iter()
                .find(|p| p.name() == result.timeout_phase),
            error_text: result.error,
            served_by: result.served_by,
            target: target as u32,
            source,
        });
    }
    // The per-second histograms an attack writes beside its records, for `plot` and reports.
    let mut intervals = IntervalLog::default();
    let mut writer = Writer::new(out, &meta).map_err(|e| e.to_string())?;
    for record in &records {
        writer.record(record).map_err(|e| e.to_string())?;
        intervals.add(start, record);
    }
    for interval in intervals.take_all() {
        writer.interval(&interval).map_err(|e| e.to_string())?;
    }
    writer.flush().map_err(|e| e.to_string())
}

/// The class of a failure known only by its words (vegeta's error strings, from Go's net/http).
fn classify_text(error: &str) -> &'static str {
    let error = error.to_ascii_lowercase();
    let class = if error.contains("timeout") || error.contains("deadline exceeded") {
        ErrorClass::Timeout
    } else if error.contains("connection refused") {
        ErrorClass::ConnectionRefused
    } else if error.contains("connection reset") || error.contains("broken pipe") {
        ErrorClass::ConnectionReset
    } else if error.contains("cannot assign requested address") {
        ErrorClass::NoSourcePort
    } else if error.contains("tls") || error.contains("x509") || error.contains("certificate") {
        ErrorClass::Tls
    } else if error.contains("dial") {
        ErrorClass::Connect
    } else {
        ErrorClass::Protocol
    };
    class.name()
}

/// What an input holds, told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// throng's results stream.
    Throng,
    /// JSON lines: throng's `encode --to json`, or vegeta's.
    Json,
    /// vegeta's binary results (what `vegeta attack` writes).
    VegetaGob,
    /// vegeta's `encode --to csv` (no header row).
    VegetaCsv,
    /// throng's `encode --to csv` (a header row).
    ThrongCsv,
}

fn kind_of(prefix: &[u8]) -> Kind {
    let first = prefix.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'{') {
        Kind::Json
    } else if crate::vegeta::looks_like_gob(prefix) {
        Kind::VegetaGob
    } else if prefix.starts_with(CSV_HEADER.as_bytes()) {
        Kind::ThrongCsv
    } else if first.is_some_and(|b| b.is_ascii_digit()) {
        Kind::VegetaCsv
    } else {
        // throng's stream, or nothing known: its reader says which.
        Kind::Throng
    }
}

/// Converts JSON lines or vegeta's binary or CSV results into a results stream (`encode --to
/// throng`, and [`read_any`] on the way). A results stream is refused: it needs no conversion.
pub fn to_stream(input: impl Read, out: impl Write) -> Result<(), String> {
    let mut input = io::BufReader::new(input);
    let prefix = input.fill_buf().map_err(|e| e.to_string())?.to_vec();
    convert(kind_of(&prefix), input, out)
}

fn convert(kind: Kind, input: impl BufRead, out: impl Write) -> Result<(), String> {
    match kind {
        Kind::Json => json_to_stream(input, out),
        Kind::VegetaGob => vegeta_to_stream(crate::vegeta::read_gob(input)?, out),
        Kind::VegetaCsv => vegeta_to_stream(crate::vegeta::csv::read(input)?, out),
        Kind::ThrongCsv => Err("throng's CSV is an export, not read back: use the results \
                                file it came from, or `throng encode --to json`"
            .into()),
        Kind::Throng => Err(
            "not JSON lines, nor vegeta's binary or CSV results (a throng results file needs \
             no conversion)"
                .into(),
        ),
    }
}

/// A results reader over `input`, whatever it holds: throng's results stream, or anything
/// [`to_stream`] converts (in memory, on the way).
pub fn read_any(input: impl Read + 'static) -> Result<Reader<Box<dyn Read>>, String> {
    let mut input = io::BufReader::new(input);
    let prefix = input.fill_buf().map_err(|e| e.to_string())?.to_vec();
    let input: Box<dyn Read> = match kind_of(&prefix) {
        Kind::Throng => Box::new(input),
        kind => {
            let mut stream = Vec::new();
            convert(kind, input, &mut stream)?;
            Box::new(io::Cursor::new(stream))
        }
    };
    Reader::new(input).map_err(|e| {
        format!(
            "{e}; throng reads its own results, JSON lines, and vegeta's binary and CSV results"
        )
    })
}

fn index_of<T: PartialEq>(table: &mut Vec<T>, item: T) -> usize {
    match table.iter().position(|t| *t == item) {
        Some(i) => i,
        None => {
            table.push(item);
            table.len() - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Vec<u8> {
        let meta = Meta {
            name: "story".into(),
            start_unix_ns: 1_795_962_014_000_000_000,
            targets: vec![TargetInfo {
                method: "GET".into(),
                url: "http://127.0.0.1:8282/".into(),
            }],
            sources: vec!["127.0.0.2".into()],
            ..Meta::default()
        };
        let mut writer = Writer::new(Vec::new(), &meta).unwrap();
        for seq in 0..3 {
            let mut record = Record {
                seq,
                intended: seq * 1_000,
                sent: seq * 1_000 + 7,
                latency: 5_000,
                status: 200,
                source: Some(0),
                served_by: "x,y".into(),
                ..Record::default()
            };
            if seq == 2 {
                record.error = Some(ErrorClass::Timeout);
                record.timeout_phase = Some(Phase::Body);
                record.error_text = "timeout (1s) while reading the response body".into();
            }
            writer.record(&record).unwrap();
        }
        writer.into_inner()
    }

    fn to_text(bytes: &[u8], format: Format) -> String {
        let mut out = Vec::new();
        records_to(vec![Reader::new(bytes).unwrap()], format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_lines_use_vegetas_names_and_meanings() {
        let json = to_text(&stream(), Format::Json);
        let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(first["attack"], "story");
        assert_eq!(first["code"], 200);
        assert_eq!(first["method"], "GET");
        assert_eq!(first["timestamp"], "2026-11-29T14:20:14.000000007Z");
        assert_eq!(first["latency"], 4_993);
        assert_eq!(first["latency_from_intended"], 5_000);
        assert_eq!(first["source"], "127.0.0.2");
    }

    #[test]
    fn json_round_trips_through_the_binary_stream() {
        let json = to_text(&stream(), Format::Json);
        let mut binary = Vec::new();
        json_to_stream(json.as_bytes(), &mut binary).unwrap();
        assert_eq!(to_text(&binary, Format::Json), json);
    }

    #[test]
    fn csv_has_vegetas_columns_first_and_quotes_what_needs_it() {
        let csv = to_text(&stream(), Format::Csv);
        let mut lines = csv.lines();
        assert_eq!(lines.next().unwrap(), CSV_HEADER);
        let first = lines.next().unwrap();
        assert!(
            first.starts_with(
                "1795962014000000007,200,4993,0,0,,,story,0,GET,http://127.0.0.1:8282/,,"
            ),
            "{first}"
        );
        assert!(first.contains(",\"x,y\",127.0.0.2,,"), "{first}");
        assert!(csv.contains(",timeout,body"), "{csv}");
    }

    #[test]
    fn a_bad_json_line_is_named() {
        let error = json_to_stream(&b"{}\n"[..], Vec::new()).unwrap_err();
        assert!(error.starts_with("line 1:"), "{error}");
    }

    /// vegeta's JSON (`vegeta encode --to json`), which has none of throng's fields: read as
    /// results whose intended time is their send, failures classed by their words.
    #[test]
    fn vegetas_json_lines_are_read() {
        let vegeta = concat!(
            r#"{"attack":"","seq":0,"code":200,"timestamp":"2026-11-30T11:44:22.422462674Z","latency":770449,"bytes_out":0,"bytes_in":4,"error":"","body":"cG9uZw==","method":"GET","url":"http://127.0.0.1:18600/ping","headers":{"Content-Length":["4"]}}"#,
            "\n",
            r#"{"attack":"","seq":1,"code":0,"timestamp":"2026-11-30T11:44:22.442462674Z","latency":120000,"bytes_out":0,"bytes_in":0,"error":"Get \"http://127.0.0.1:1/\": dial tcp 0.0.0.0:0->127.0.0.1:1: connect: connection refused","body":null,"method":"GET","url":"http://127.0.0.1:1/","headers":null}"#,
            "\n"
        );
        let mut stream = Vec::new();
        json_to_stream(vegeta.as_bytes(), &mut stream).unwrap();
        let mut reader = read_any(std::io::Cursor::new(stream)).unwrap();
        let mut records = Vec::new();
        while let Some(frame) = reader.next_frame().unwrap() {
            if let Frame::Record(record) = frame {
                records.push(record);
            }
        }
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].intended, records[0].sent);
        assert_eq!(records[0].latency, 770_449);
        assert!(records[0].is_success());
        assert_eq!(records[1].error, Some(ErrorClass::ConnectionRefused));
        assert_eq!(records[1].intended - records[0].intended, 20_000_000);
        // The start of a gob stream cut short is read as vegeta's binary results, and refused.
        let error = read_any(std::io::Cursor::new(b"\x0e\xff\x81\x03".to_vec()))
            .err()
            .unwrap();
        assert!(error.contains("not a gob stream vegeta wrote"), "{error}");
    }
}
