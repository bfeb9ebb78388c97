//! Header blocks decoded (RFC 7541 §6) into fields handed to the caller one by one.
//!
//! A block is decoded to its end even when its fields are over the caller's limits: the
//! dynamic table must stay what the peer's encoder thinks it is, or every later block on the
//! connection would decode wrong. Past a limit the fields are only counted, never copied, so a
//! small block naming a big entry many times (an HPACK bomb) costs the decode, not memory.

use super::huffman;
use super::integer::{self, IntegerError};
use super::table::{entry_size, lookup, Dynamic};

/// Every error here is a connection error of type COMPRESSION_ERROR (RFC 9113 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecoderError {
    /// The block ended inside a representation.
    Truncated,
    /// An integer over 2^32.
    Overflow,
    /// Index 0, or past the end of both tables.
    BadIndex,
    /// A Huffman string with EOS in it or bad padding.
    Huffman,
    /// A size update over what this decoder's SETTINGS_HEADER_TABLE_SIZE allows.
    SizeUpdateTooLarge,
    /// A size update after the block's first field (§4.2: it must come first).
    SizeUpdateLate,
}

impl DecoderError {
    pub fn describe(self) -> &'static str {
        match self {
            DecoderError::Truncated => "header block ends inside a field",
            DecoderError::Overflow => "integer too large",
            DecoderError::BadIndex => "index not in the tables",
            DecoderError::Huffman => "bad Huffman string",
            DecoderError::SizeUpdateTooLarge => "table size update over the allowed size",
            DecoderError::SizeUpdateLate => "table size update after a field",
        }
    }
}

impl From<IntegerError> for DecoderError {
    fn from(e: IntegerError) -> Self {
        match e {
            IntegerError::Truncated => DecoderError::Truncated,
            IntegerError::Overflow => DecoderError::Overflow,
        }
    }
}

/// What the caller will take from one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListLimits {
    /// RFC 9113 §6.5.2's size: each field's name, value and 32.
    pub max_list_size: usize,
    pub max_fields: usize,
}

/// How a block ended, when it decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Every field was handed over.
    Complete,
    /// The fields went over a limit; those past it were not handed over.
    TooLarge,
}

#[derive(Debug)]
pub struct Decoder {
    table: Dynamic,
    /// The most our SETTINGS_HEADER_TABLE_SIZE lets the peer's encoder use.
    allowed: usize,
}

impl Decoder {
    /// A decoder whose peer may use `allowed` bytes of table (our SETTINGS_HEADER_TABLE_SIZE).
    pub fn new(allowed: usize) -> Decoder {
        Decoder {
            table: Dynamic::new(allowed),
            allowed,
        }
    }

    pub fn table(&self) -> &Dynamic {
        &self.table
    }

    /// Decodes `block`, calling `field` with each name and value within `limits`.
    pub fn decode(
        &mut self,
        mut block: &[u8],
        limits: ListLimits,
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<Decoded, DecoderError> {
        let mut list_size = 0usize;
        let mut fields = 0usize;
        let mut over = false;
        let mut name_buf = Vec::new();
        let mut value_buf = Vec::new();
        // Huffman output can never exceed 8/5 of the block; this bound only guards the code.
        let string_limit = block.len().saturating_mul(2);
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let (index, used) = integer::decode(block, 7)?;
                block = block.get(used..).unwrap_or_default();
                let (name, value) =
                    lookup(&self.table, index as usize).ok_or(DecoderError::BadIndex)?;
                fields += 1;
                list_size = list_size.saturating_add(entry_size(name, value));
                over |= list_size > limits.max_list_size || fields > limits.max_fields;
                if !over {
                    field(name, value);
                }
                continue;
            }
            if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3): only before the block's first field.
                if fields > 0 {
                    return Err(DecoderError::SizeUpdateLate);
                }
                let (size, used) = integer::decode(block, 5)?;
                block = block.get(used..).unwrap_or_default();
                if size as usize > self.allowed {
                    return Err(DecoderError::SizeUpdateTooLarge);
                }
                self.table.resize(size as usize);
                continue;
            }
            // A literal (§6.2): with incremental indexing (01), or without / never indexed.
            let indexing = first & 0xc0 == 0x40;
            let prefix = if indexing { 6 } else { 4 };
            let (name_index, used) = integer::decode(block, prefix)?;
            block = block.get(used..).unwrap_or_default();
            name_buf.clear();
            value_buf.clear();
            let name_raw: Option<&[u8]>;
            if name_index == 0 {
                let (raw, rest) = string(block, &mut name_buf, string_limit)?;
                name_raw = raw;
                block = rest;
            } else {
                let (name, _) =
                    lookup(&self.table, name_index as usize).ok_or(DecoderError::BadIndex)?;
                name_buf.extend_from_slice(name);
                name_raw = None;
            }
            let (value_raw, rest) = string(block, &mut value_buf, string_limit)?;
            block = rest;
            let name = name_raw.unwrap_or(&name_buf);
            let value = value_raw.unwrap_or(&value_buf);
            fields += 1;
            list_size = list_size.saturating_add(entry_size(name, value));
            over |= list_size > limits.max_list_size || fields > limits.max_fields;
            if !over {
                field(name, value);
            }
            if indexing {
                self.table.insert(name, value);
            }
        }
        Ok(if over {
            Decoded::TooLarge
        } else {
            Decoded::Complete
        })
    }
}

/// A string literal (§5.2): borrowed from the block when raw, decoded into `buf` when Huffman.
fn string<'b>(
    block: &'b [u8],
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<(Option<&'b [u8]>, &'b [u8]), DecoderError> {
    let Some(&first) = block.first() else {
        return Err(DecoderError::Truncated);
    };
    let (len, used) = integer::decode(block, 7)?;
    let rest = block.get(used..).unwrap_or_default();
    let len = usize::try_from(len).map_err(|_| DecoderError::Overflow)?;
    let (bytes, rest) = rest.split_at_checked(len).ok_or(DecoderError::Truncated)?;
    if first & 0x80 == 0 {
        return Ok((Some(bytes), rest));
    }
    huffman::decode(bytes, buf, limit).map_err(|_| DecoderError::Huffman)?;
    Ok((None, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const ROOMY: ListLimits = ListLimits {
        max_list_size: 1 << 20,
        max_fields: 1000,
    };

    fn decode_all(
        decoder: &mut Decoder,
        block: &[u8],
    ) -> Result<Vec<(String, String)>, DecoderError> {
        let mut fields = Vec::new();
        decoder.decode(block, ROOMY, |n, v| {
            fields.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })?;
        Ok(fields)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// RFC 7541 C.3 (requests without Huffman) and C.4 (with), each three blocks on one
    /// connection: the dynamic table carries from one to the next.
    #[test]
    fn the_rfc_request_examples() {
        for blocks in [
            [
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                "8286 84be 5808 6e6f 2d63 6163 6865",
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            ],
            [
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                "8286 84be 5886 a8eb 1064 9cbf",
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            ],
        ] {
            let mut decoder = Decoder::new(4096);
            assert_eq!(
                decode_all(&mut decoder, &hex(blocks[0])).unwrap(),
                pairs(&[
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/"),
                    (":authority", "www.example.com")
                ])
            );
            assert_eq!(decoder.table().size(), 57);
            assert_eq!(
                decode_all(&mut decoder, &hex(blocks[1])).unwrap(),
                pairs(&[
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/"),
                    (":authority", "www.example.com"),
                    ("cache-control", "no-cache")
                ])
            );
            assert_eq!(decoder.table().size(), 110);
            assert_eq!(
                decode_all(&mut decoder, &hex(blocks[2])).unwrap(),
                pairs(&[
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":path", "/index.html"),
                    (":authority", "www.example.com"),
                    ("custom-key", "custom-value")
                ])
            );
            assert_eq!(decoder.table().size(), 164);
            assert_eq!(decoder.table().len(), 3);
        }
    }

    /// RFC 7541 C.6: responses with Huffman and a 256-byte table, entries evicted.
    #[test]
    fn the_rfc_response_examples_with_eviction() {
        let mut decoder = Decoder::new(256);
        let first = decode_all(
            &mut decoder,
            &hex(
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                  2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            ),
        )
        .unwrap();
        assert_eq!(
            first,
            pairs(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com")
            ])
        );
        assert_eq!(decoder.table().size(), 222);
        decode_all(&mut decoder, &hex("4883 640e ff c1 c0 bf")).unwrap();
        assert_eq!(decoder.table().size(), 222);
        let third = decode_all(
            &mut decoder,
            &hex(
                "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                  77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                  9587 3160 65c0 03ed 4ee5 b106 3d50 07",
            ),
        )
        .unwrap();
        assert_eq!(third[0], (":status".to_string(), "200".to_string()));
        assert_eq!(third[4].0, "content-encoding");
        assert_eq!(
            third[5],
            (
                "set-cookie".to_string(),
                "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1".to_string()
            )
        );
        assert_eq!(decoder.table().size(), 215);
    }

    #[test]
    fn malformed_blocks_are_compression_errors() {
        let mut decoder = Decoder::new(4096);
        // Index 0; index 70 with an empty dynamic table.
        assert_eq!(
            decode_all(&mut decoder, &[0x80]),
            Err(DecoderError::BadIndex)
        );
        assert_eq!(
            decode_all(&mut decoder, &[0xc6]),
            Err(DecoderError::BadIndex)
        );
        // A literal whose value's length runs past the block.
        assert_eq!(
            decode_all(&mut decoder, &[0x04, 0x05, b'a']),
            Err(DecoderError::Truncated)
        );
        // A size update over 4096, and one after a field.
        assert_eq!(
            decode_all(&mut decoder, &[0x3f, 0xe2, 0x1f]),
            Err(DecoderError::SizeUpdateTooLarge)
        );
        assert_eq!(
            decode_all(&mut decoder, &[0x82, 0x20]),
            Err(DecoderError::SizeUpdateLate)
        );
        // A size update first is fine, and empties the table.
        assert_eq!(decode_all(&mut decoder, &[0x20, 0x82]).unwrap().len(), 1);
        // Huffman with bad padding (0x80 | length 1, then a byte of zeros).
        assert_eq!(
            decode_all(&mut decoder, &[0x04, 0x81, 0x00]),
            Err(DecoderError::Huffman)
        );
    }

    /// One big entry, then the block names it again and again: the fields past the limit are
    /// not handed over, the decode still ends, and the table stays in step for the next block.
    #[test]
    fn a_bomb_is_counted_not_copied_and_the_table_stays_in_step() {
        let mut decoder = Decoder::new(4096);
        // A literal with indexing: name "x", a raw value of 4,000 bytes (length 127 + rest).
        let mut block = vec![0x40, 0x01, b'x', 0x7f];
        integer_tail(4000 - 127, &mut block);
        block.extend(std::iter::repeat_n(b'v', 4000));
        block.extend(std::iter::repeat_n(0xbe, 10_000)); // index 62, ten thousand times
        let mut handed = 0;
        let limits = ListLimits {
            max_list_size: 16 * 1024,
            max_fields: 100,
        };
        let got = decoder.decode(&block, limits, |_, _| handed += 1).unwrap();
        assert_eq!(got, Decoded::TooLarge);
        assert_eq!(handed, 4);
        let next = decode_all(&mut decoder, &[0xbe]).unwrap();
        assert_eq!(next[0].1.len(), 4000);
    }

    fn integer_tail(mut rest: usize, out: &mut Vec<u8>) {
        while rest >= 0x80 {
            out.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        out.push(rest as u8);
    }
}
