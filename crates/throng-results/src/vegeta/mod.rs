//! vegeta's own results, read as they are: its binary files (Go's `encoding/gob` of
//! `vegeta.Result`, what `vegeta attack` writes) and its CSV (`vegeta encode --to csv`). Its
//! JSON lines share throng's JSON field names and are read by [`crate::encode`].
//!
//! vegeta records when each request was sent and its latency from then; it has no intended
//! time, so a vegeta result reads as a request sent on time (no lag known), and its error
//! string is classed by its words.

pub mod csv;
pub mod gob;

/// What throng keeps of one vegeta result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VegetaResult {
    pub attack: String,
    pub seq: u64,
    pub code: u16,
    /// When the request was sent, Unix nanoseconds.
    pub timestamp_unix_ns: u64,
    /// From the send to the end of the response.
    pub latency_ns: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub error: String,
    pub method: String,
    pub url: String,
}

/// Whether `prefix` (the first bytes of an input) starts a gob stream: a message length, then a
/// type definition (a negative type id, 64 or more as gob numbers the types a program defines),
/// then the field of its `wireType` that says what kind of type it is (1 to 7).
pub fn looks_like_gob(prefix: &[u8]) -> bool {
    gob::starts_a_type_definition(prefix)
}

/// Reads every result of a vegeta gob stream.
pub fn read_gob(input: impl std::io::Read) -> Result<Vec<VegetaResult>, String> {
    let mut decoder = gob::Decoder::new(input);
    let mut results = Vec::new();
    while let Some(value) = decoder
        .next_value()
        .map_err(|e| format!("result {}: {e}", results.len() + 1))?
    {
        results.push(from_gob(&value).map_err(|e| format!("result {}: {e}", results.len() + 1))?);
    }
    Ok(results)
}

/// A `vegeta.Result` from its decoded value; fields at their zero value are absent (gob does
/// not send them), fields throng does not keep (body, headers) are skipped.
fn from_gob(value: &gob::Value) -> Result<VegetaResult, String> {
    use gob::Value;
    if !matches!(value, Value::Struct(_)) {
        return Err("not a vegeta result (not a struct)".into());
    }
    let text = |name: &str| match value.field(name) {
        Some(Value::Bytes(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    };
    let uint = |name: &str| match value.field(name) {
        Some(Value::Uint(n)) => *n,
        _ => 0,
    };
    let timestamp_unix_ns = match value.field("Timestamp") {
        Some(Value::Encoded(bytes)) => {
            gob::time_unix_ns(bytes).ok_or("a Timestamp that is not a time vegeta wrote")?
        }
        _ => return Err("a result without a Timestamp".into()),
    };
    let latency_ns = match value.field("Latency") {
        Some(Value::Int(ns)) => u64::try_from(*ns).unwrap_or(0),
        _ => 0,
    };
    Ok(VegetaResult {
        attack: text("Attack"),
        seq: uint("Seq"),
        code: u16::try_from(uint("Code")).map_err(|_| "a Code over 65535")?,
        timestamp_unix_ns,
        latency_ns,
        bytes_out: uint("BytesOut"),
        bytes_in: uint("BytesIn"),
        error: text("Error"),
        method: text("Method"),
        url: text("URL"),
    })
}
