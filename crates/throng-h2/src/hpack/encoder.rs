//! Header blocks encoded without a dynamic table: a field is indexed when the static table has
//! it whole, else a literal "without indexing" naming the static entry when it can. The encoder
//! then holds no state per connection; what it gives up is a few bytes per repeated field, on
//! responses, where the bytes that matter are the body's.

use super::huffman;
use super::integer;
use super::table::STATIC;

/// A dynamic table size update to 0 (§6.3), sent first in a connection's first block so the
/// peer's decoder keeps no table for us either.
pub const TABLE_SIZE_ZERO: u8 = 0x20;

/// Appends one field. `name` must be lowercase already (HTTP/2 field names are).
pub fn encode_field(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let mut name_index = 0;
    for (i, (n, v)) in STATIC.iter().enumerate() {
        if *n == name {
            if *v == value {
                integer::encode(i + 1, 7, 0x80, out);
                return;
            }
            if name_index == 0 {
                name_index = i + 1;
            }
        }
    }
    // Literal without indexing (§6.2.2): 0000 and a 4-bit prefix for the name's index.
    integer::encode(name_index, 4, 0x00, out);
    if name_index == 0 {
        encode_string(name, out);
    }
    encode_string(value, out);
}

/// `:status`, indexed when the static table has it (200, 204, 206, 304, 400, 404, 500).
pub fn encode_status(status: u16, out: &mut Vec<u8>) {
    let mut digits = [b'0'; 3];
    let mut rest = status.min(999);
    for d in digits.iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    encode_field(b":status", &digits, out);
}

/// A string literal (§5.2), Huffman-coded when that is shorter.
fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    let coded = huffman::encoded_len(s);
    if coded < s.len() {
        integer::encode(coded, 7, 0x80, out);
        huffman::encode(s, out);
    } else {
        integer::encode(s.len(), 7, 0x00, out);
        out.extend_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::super::decoder::{Decoder, ListLimits};
    use super::*;

    #[test]
    fn fields_decode_to_what_was_encoded() {
        let fields: [(&[u8], &[u8]); 6] = [
            (b":status", b"200"),
            (b":status", b"302"),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"x-served-by", b"throng"),
            (b"content-length", b"0"),
            (b"set-cookie", &[b'z'; 300]),
        ];
        let mut block = vec![TABLE_SIZE_ZERO];
        for (n, v) in fields {
            encode_field(n, v, &mut block);
        }
        assert_eq!(block[1], 0x88, ":status 200 is static index 8");
        let mut decoder = Decoder::new(4096);
        let mut got: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let limits = ListLimits {
            max_list_size: 1 << 16,
            max_fields: 100,
        };
        decoder
            .decode(&block, limits, |n, v| got.push((n.to_vec(), v.to_vec())))
            .unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> = fields
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(got, want);
        assert!(decoder.table().is_empty(), "nothing was indexed");
        let mut status = Vec::new();
        encode_status(404, &mut status);
        assert_eq!(status, [0x8d]);
    }
}
