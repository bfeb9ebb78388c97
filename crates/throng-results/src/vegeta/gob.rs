//! Go's `encoding/gob`, as far as vegeta's binary results need it: a stream of messages, each a
//! byte count and then either a type's definition (a negative type id and a `wireType`) or a
//! value of a type already defined (a positive id). Values decode into [`Value`], a tree that
//! keeps struct fields by their Go names, so a field vegeta adds later is skipped rather than
//! misread.
//!
//! The rules follow <https://pkg.go.dev/encoding/gob>: unsigned integers are one byte below 128,
//! else a byte holding minus their length and that many big-endian bytes; signed integers keep
//! their sign in the low bit; floats are byte-reversed; strings and byte slices are a count and
//! the bytes; structs are (field delta, value) pairs ended by a zero delta; a type that encodes
//! itself (`time.Time`) is a count and its bytes.
//!
//! The input is untrusted: every count is checked against the bytes left in its message before
//! anything is allocated for it, messages have a size limit, and nesting has a depth limit.

use std::collections::HashMap;
use std::io::{self, Read};

/// The largest message read (Go's own limit is 1 GiB; a result with a body is far smaller).
pub const MAX_MESSAGE: u64 = 16 * 1024 * 1024;
/// The deepest nesting of structs, slices and maps decoded.
const MAX_DEPTH: usize = 32;
/// Types a stream may define: vegeta's results define a handful.
const MAX_TYPES: usize = 1024;

// Type ids gob predefines.
const BOOL: i64 = 1;
const INT: i64 = 2;
const UINT: i64 = 3;
const FLOAT: i64 = 4;
const BYTES: i64 = 5;
const STRING: i64 = 6;
const COMPLEX: i64 = 7;
const INTERFACE: i64 = 8;
/// The first id gob gives a type a program defines.
const FIRST_USER_TYPE: i64 = 64;

/// A decoded value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    /// A string or a byte slice (gob sends both the same way).
    Bytes(Vec<u8>),
    /// Fields by Go name, in the order they came; fields at their zero value are not sent.
    Struct(Vec<(String, Value)>),
    List(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// The bytes of a type that encodes itself (`GobEncode`, `MarshalBinary`, `MarshalText`).
    Encoded(Vec<u8>),
    /// An interface value, not decoded (vegeta's results have none).
    Interface,
}

impl Value {
    /// A field of a struct by its Go name.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// How a type defined in the stream is laid out.
#[derive(Clone, Debug)]
enum Layout {
    Struct(Vec<(String, i64)>),
    Slice(i64),
    Array(i64, u64),
    Map(i64, i64),
    SelfEncoded,
}

#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    /// The bytes are not gob, or not gob this decoder follows; says where.
    Malformed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Malformed(what) => write!(f, "not a gob stream vegeta wrote: {what}"),
        }
    }
}

fn malformed<T>(what: impl Into<String>) -> Result<T, Error> {
    Err(Error::Malformed(what.into()))
}

/// Reads values, one per message, learning types as they are defined.
pub struct Decoder<R> {
    input: R,
    types: HashMap<i64, Layout>,
    message: Vec<u8>,
}

impl<R: Read> Decoder<R> {
    pub fn new(input: R) -> Decoder<R> {
        Decoder {
            input,
            types: HashMap::new(),
            message: Vec::new(),
        }
    }

    /// The next value, or `None` at a clean end of the stream.
    pub fn next_value(&mut self) -> Result<Option<Value>, Error> {
        loop {
            let Some(length) = read_message_length(&mut self.input)? else {
                return Ok(None);
            };
            if length > MAX_MESSAGE {
                return malformed(format!(
                    "a message of {length} bytes, over the {MAX_MESSAGE} read"
                ));
            }
            self.message.clear();
            let read = (&mut self.input)
                .take(length)
                .read_to_end(&mut self.message)
                .map_err(Error::Io)?;
            if read as u64 != length {
                return malformed("the stream ends inside a message");
            }
            let mut bytes = Bytes(&self.message);
            let id = bytes.int()?;
            if id < 0 {
                let layout = wire_type(&mut bytes)?;
                if self.types.len() >= MAX_TYPES {
                    return malformed(format!("more than {MAX_TYPES} types defined"));
                }
                self.types.insert(-id, layout);
                continue;
            }
            let is_struct = matches!(self.types.get(&id), Some(Layout::Struct(_)));
            if !is_struct {
                // A value that is not a struct is sent as a struct's single field: delta 0.
                if bytes.uint()? != 0 {
                    return malformed("a single value without its zero field delta");
                }
            }
            let value = decode(&self.types, id, &mut bytes, 0)?;
            return Ok(Some(value));
        }
    }
}

/// Whether `prefix` starts with a message defining a type, as every gob stream does.
pub fn starts_a_type_definition(prefix: &[u8]) -> bool {
    let mut bytes = Bytes(prefix);
    let (Ok(_length), Ok(id), Ok(kind)) = (bytes.uint(), bytes.int(), bytes.uint()) else {
        return false;
    };
    id <= -FIRST_USER_TYPE && (1..=7).contains(&kind)
}

/// A message's byte count, or `None` at the end of the input before it.
fn read_message_length(input: &mut impl Read) -> Result<Option<u64>, Error> {
    let mut first = [0u8; 1];
    match input.read(&mut first) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return read_message_length(input),
        Err(e) => return Err(Error::Io(e)),
    }
    if first[0] < 0x80 {
        return Ok(Some(u64::from(first[0])));
    }
    let count = usize::from(first[0].wrapping_neg());
    if count == 0 || count > 8 {
        return malformed(format!("a message length of {count} bytes"));
    }
    let mut rest = [0u8; 8];
    let rest = rest.get_mut(..count).unwrap_or_default();
    input.read_exact(rest).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::Malformed("the stream ends in a length".into()),
        _ => Error::Io(e),
    })?;
    Ok(Some(rest.iter().fold(0, |n, b| n << 8 | u64::from(*b))))
}

/// A message being read.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, count: u64) -> Result<&'a [u8], Error> {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let Some((taken, rest)) = self.0.split_at_checked(count) else {
            return malformed(format!(
                "{count} bytes asked for, {} left in the message",
                self.0.len()
            ));
        };
        self.0 = rest;
        Ok(taken)
    }

    fn uint(&mut self) -> Result<u64, Error> {
        let [first] = self.take(1)? else {
            return malformed("an integer");
        };
        if *first < 0x80 {
            return Ok(u64::from(*first));
        }
        let count = u64::from(first.wrapping_neg());
        if count == 0 || count > 8 {
            return malformed(format!("an integer of {count} bytes"));
        }
        Ok(self
            .take(count)?
            .iter()
            .fold(0, |n, b| n << 8 | u64::from(*b)))
    }

    fn int(&mut self) -> Result<i64, Error> {
        let u = self.uint()?;
        let magnitude = (u >> 1) as i64;
        Ok(if u & 1 == 1 { !magnitude } else { magnitude })
    }

    /// A count of items each at least a byte long: never more than the bytes left.
    fn count(&mut self) -> Result<u64, Error> {
        let count = self.uint()?;
        if count > self.0.len() as u64 {
            return malformed(format!(
                "{count} items, with {} bytes left in the message",
                self.0.len()
            ));
        }
        Ok(count)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, Error> {
        let count = self.uint()?;
        Ok(self.take(count)?.to_vec())
    }

    fn string(&mut self) -> Result<String, Error> {
        String::from_utf8(self.bytes()?).or_else(|_| malformed("a type or field name not UTF-8"))
    }

    /// Reads a struct encoded inline: calls `field` with each field number sent.
    fn fields(
        &mut self,
        mut field: impl FnMut(u64, &mut Bytes<'a>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut number = 0u64;
        loop {
            let delta = self.uint()?;
            if delta == 0 {
                return Ok(());
            }
            number = number.saturating_add(delta);
            field(number, self)?;
        }
    }
}

/// A type's definition (gob's `wireType`: one of its fields is set).
fn wire_type(bytes: &mut Bytes<'_>) -> Result<Layout, Error> {
    let mut layout = None;
    bytes.fields(|number, bytes| {
        layout = Some(match number {
            // arrayType { CommonType; Elem typeId; Len int }
            1 => {
                let (mut elem, mut len) = (0, 0);
                bytes.fields(|n, b| {
                    match n {
                        1 => common_type(b)?,
                        2 => elem = b.int()?,
                        3 => len = b.int()?,
                        _ => return malformed("an arrayType field"),
                    }
                    Ok(())
                })?;
                Layout::Array(elem, u64::try_from(len).unwrap_or(0))
            }
            // sliceType { CommonType; Elem typeId }
            2 => {
                let mut elem = 0;
                bytes.fields(|n, b| {
                    match n {
                        1 => common_type(b)?,
                        2 => elem = b.int()?,
                        _ => return malformed("a sliceType field"),
                    }
                    Ok(())
                })?;
                Layout::Slice(elem)
            }
            // structType { CommonType; Field []fieldType }
            3 => {
                let mut fields = Vec::new();
                bytes.fields(|n, b| {
                    match n {
                        1 => common_type(b)?,
                        2 => {
                            for _ in 0..b.count()? {
                                fields.push(field_type(b)?);
                            }
                        }
                        _ => return malformed("a structType field"),
                    }
                    Ok(())
                })?;
                Layout::Struct(fields)
            }
            // mapType { CommonType; Key typeId; Elem typeId }
            4 => {
                let (mut key, mut elem) = (0, 0);
                bytes.fields(|n, b| {
                    match n {
                        1 => common_type(b)?,
                        2 => key = b.int()?,
                        3 => elem = b.int()?,
                        _ => return malformed("a mapType field"),
                    }
                    Ok(())
                })?;
                Layout::Map(key, elem)
            }
            // GobEncoderT, BinaryMarshalerT, TextMarshalerT: gobEncoderType { CommonType }
            5..=7 => {
                bytes.fields(|n, b| match n {
                    1 => common_type(b),
                    _ => malformed("a gobEncoderType field"),
                })?;
                Layout::SelfEncoded
            }
            _ => return malformed(format!("wireType field {number}")),
        });
        Ok(())
    })?;
    layout.map_or_else(|| malformed("an empty type definition"), Ok)
}

/// commonType { Name string; Id typeId }: nothing in it is needed.
fn common_type(bytes: &mut Bytes<'_>) -> Result<(), Error> {
    bytes.fields(|n, b| match n {
        1 => b.string().map(drop),
        2 => b.int().map(drop),
        _ => malformed("a commonType field"),
    })
}

/// fieldType { Name string; Id typeId }
fn field_type(bytes: &mut Bytes<'_>) -> Result<(String, i64), Error> {
    let (mut name, mut id) = (String::new(), 0);
    bytes.fields(|n, b| {
        match n {
            1 => name = b.string()?,
            2 => id = b.int()?,
            _ => return malformed("a fieldType field"),
        }
        Ok(())
    })?;
    Ok((name, id))
}

fn decode(
    types: &HashMap<i64, Layout>,
    id: i64,
    bytes: &mut Bytes<'_>,
    depth: usize,
) -> Result<Value, Error> {
    if depth > MAX_DEPTH {
        return malformed(format!("values nested over {MAX_DEPTH} deep"));
    }
    Ok(match id {
        BOOL => Value::Bool(bytes.uint()? != 0),
        INT => Value::Int(bytes.int()?),
        UINT => Value::Uint(bytes.uint()?),
        FLOAT => Value::Float(f64::from_bits(bytes.uint()?.swap_bytes())),
        BYTES | STRING => Value::Bytes(bytes.bytes()?),
        COMPLEX => {
            let re = f64::from_bits(bytes.uint()?.swap_bytes());
            let im = f64::from_bits(bytes.uint()?.swap_bytes());
            Value::List(vec![Value::Float(re), Value::Float(im)])
        }
        INTERFACE => {
            let name = bytes.bytes()?;
            if !name.is_empty() {
                // The concrete type's id, then its value with a byte count: skipped whole.
                bytes.int()?;
                let count = bytes.uint()?;
                bytes.take(count)?;
            }
            Value::Interface
        }
        _ => match types.get(&id) {
            None => return malformed(format!("a value of type {id}, never defined")),
            Some(Layout::SelfEncoded) => Value::Encoded(bytes.bytes()?),
            Some(Layout::Slice(elem)) => {
                let count = bytes.count()?;
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(decode(types, *elem, bytes, depth + 1)?);
                }
                Value::List(items)
            }
            Some(Layout::Array(elem, len)) => {
                let count = bytes.count()?;
                if count != *len {
                    return malformed(format!("an array of {len} sent with {count} items"));
                }
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(decode(types, *elem, bytes, depth + 1)?);
                }
                Value::List(items)
            }
            Some(Layout::Map(key, elem)) => {
                let count = bytes.count()?;
                let mut pairs = Vec::new();
                for _ in 0..count {
                    let k = decode(types, *key, bytes, depth + 1)?;
                    let v = decode(types, *elem, bytes, depth + 1)?;
                    pairs.push((k, v));
                }
                Value::Map(pairs)
            }
            Some(Layout::Struct(fields)) => {
                let mut values = Vec::new();
                bytes.fields(|number, b| {
                    let index = usize::try_from(number - 1).unwrap_or(usize::MAX);
                    let Some((name, field_id)) = fields.get(index) else {
                        return malformed(format!(
                            "field {number} of a struct of {}",
                            fields.len()
                        ));
                    };
                    values.push((name.clone(), decode(types, *field_id, b, depth + 1)?));
                    Ok(())
                })?;
                Value::Struct(values)
            }
        },
    })
}

/// A `time.Time` as gob sends it (its `MarshalBinary`): a version byte (1, or 2 with seconds in
/// the zone offset), seconds since year 1 (big-endian i64), nanoseconds (u32), the zone offset in
/// minutes (i16; -1 for UTC), and with version 2 a byte of offset seconds. As Unix nanoseconds.
pub fn time_unix_ns(encoded: &[u8]) -> Option<u64> {
    const UNIX_FROM_YEAR_1: i64 = 62_135_596_800;
    let (&version, rest) = encoded.split_first()?;
    let expected = match version {
        1 => 14,
        2 => 15,
        _ => return None,
    };
    if rest.len() != expected {
        return None;
    }
    let seconds = i64::from_be_bytes(*rest.first_chunk::<8>()?);
    let nanos = u32::from_be_bytes(*rest.get(8..12)?.first_chunk::<4>()?);
    let unix = seconds.checked_sub(UNIX_FROM_YEAR_1)?;
    u64::try_from(unix)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::from(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_gobs_rules() {
        // From the encoding/gob documentation: 7 → 07, 256 → FE 01 00; -129 → FE 01 01; 3.0 as
        // FE 31 40 ... here an int of 0x101 and -129.
        assert_eq!(Bytes(&[0x07]).uint().unwrap(), 7);
        assert_eq!(Bytes(&[0xFE, 0x01, 0x00]).uint().unwrap(), 256);
        assert_eq!(Bytes(&[0xFE, 0x01, 0x01]).int().unwrap(), -129);
        assert_eq!(Bytes(&[0x02]).int().unwrap(), 1);
        assert_eq!(
            Bytes(&[0xFE, 0x31, 0x40]).uint().unwrap().swap_bytes(),
            0x4031 << 48
        );
        assert!(Bytes(&[0xF7]).uint().is_err(), "nine bytes");
        assert!(Bytes(&[0xFE, 0x01]).uint().is_err(), "cut short");
    }

    #[test]
    fn counts_never_exceed_the_bytes_left() {
        let mut types = HashMap::new();
        types.insert(65, Layout::Slice(STRING));
        // A slice claiming 2^40 strings in a three-byte message.
        let message = [0xFB, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00];
        assert!(decode(&types, 65, &mut Bytes(&message), 0).is_err());
        let deep: Vec<u8> = std::iter::repeat_n(1u8, 100).collect();
        types.insert(66, Layout::Slice(66));
        assert!(decode(&types, 66, &mut Bytes(&deep), 0).is_err(), "depth");
    }

    #[test]
    fn times_read_as_unix_nanoseconds() {
        // 2026-11-30T13:56:40.5Z: Unix 1796047000, so 63931643800 seconds since year 1.
        let mut encoded = vec![1u8];
        encoded.extend_from_slice(&(1_796_047_000i64 + 62_135_596_800).to_be_bytes());
        encoded.extend_from_slice(&500_000_000u32.to_be_bytes());
        encoded.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(time_unix_ns(&encoded), Some(1_796_047_000_500_000_000));
        assert_eq!(time_unix_ns(&encoded[..10]), None);
    }
}
