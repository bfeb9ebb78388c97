//! MQTT 5 properties (§2.2.2): a variable byte integer length, then (identifier, value) pairs
//! whose value's form the identifier fixes. Walked in place; an unknown identifier is malformed,
//! as the specification says, since its length cannot be known.

use crate::read::{Bytes, ReadError};

/// A property's value, borrowed from the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Byte(u8),
    Two(u16),
    Four(u32),
    Varint(u32),
    Text(&'a str),
    Binary(&'a [u8]),
    Pair(&'a str, &'a str),
}

pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
pub const SERVER_KEEP_ALIVE: u8 = 0x13;
pub const REASON_STRING: u8 = 0x1F;
pub const RECEIVE_MAXIMUM: u8 = 0x21;
pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;

/// Reads a property block and hands each property to `each`.
pub(crate) fn walk<'a>(
    bytes: &mut Bytes<'a>,
    mut each: impl FnMut(u8, Value<'a>),
) -> Result<(), ReadError> {
    let length = bytes.varint()?;
    let mut block = Bytes::new(bytes.take(length as usize)?);
    while !block.is_empty() {
        let id = block.varint()?;
        let id = u8::try_from(id).map_err(|_| ReadError::Malformed("a property identifier"))?;
        let value = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => Value::Byte(block.byte()?),
            0x13 | 0x21 | 0x22 | 0x23 => Value::Two(block.two()?),
            0x02 | 0x11 | 0x18 | 0x27 => Value::Four(block.four()?),
            0x0B => Value::Varint(block.varint()?),
            0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => Value::Text(block.text()?),
            0x09 | 0x16 => Value::Binary(block.binary()?),
            0x26 => Value::Pair(block.text()?, block.text()?),
            _ => return Err(ReadError::Malformed("an unknown property identifier")),
        };
        each(id, value);
    }
    Ok(())
}
