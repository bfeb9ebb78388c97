//! HPACK's prefixed integers (RFC 7541 §5.1).

/// Why an integer does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegerError {
    /// The input ended inside it.
    Truncated,
    /// Over what any field of HTTP/2 can mean (2^32): refused rather than wrapped.
    Overflow,
}

/// Decodes an integer whose first byte keeps its low `prefix` bits for it; returns the value
/// and the bytes it took.
pub fn decode(input: &[u8], prefix: u8) -> Result<(u64, usize), IntegerError> {
    let mask = ((1u16 << prefix) - 1) as u8;
    let Some(&first) = input.first() else {
        return Err(IntegerError::Truncated);
    };
    let mut value = u64::from(first & mask);
    if value < u64::from(mask) {
        return Ok((value, 1));
    }
    let mut shift = 0u32;
    for (i, &byte) in input.iter().enumerate().skip(1) {
        value += u64::from(byte & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return Err(IntegerError::Overflow);
        }
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
        shift += 7;
        // Five continuation bytes carry 35 bits: more are padding by zeros, or an attack.
        if shift > 28 {
            return Err(IntegerError::Overflow);
        }
    }
    Err(IntegerError::Truncated)
}

/// Appends `value` with `prefix` bits in the first byte, whose high bits are `flags`.
pub fn encode(value: usize, prefix: u8, flags: u8, out: &mut Vec<u8>) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7541 C.1.
    #[test]
    fn the_rfc_examples() {
        let mut out = Vec::new();
        encode(10, 5, 0, &mut out);
        assert_eq!(out, [0b01010]);
        out.clear();
        encode(1337, 5, 0, &mut out);
        assert_eq!(out, [0b11111, 0b1001_1010, 0b0000_1010]);
        assert_eq!(decode(&out, 5), Ok((1337, 3)));
        out.clear();
        encode(42, 8, 0, &mut out);
        assert_eq!(out, [42]);
        assert_eq!(decode(&[42], 8), Ok((42, 1)));
    }

    #[test]
    fn truncated_and_huge_integers_are_refused() {
        assert_eq!(decode(&[], 5), Err(IntegerError::Truncated));
        assert_eq!(decode(&[0x1f, 0x80], 5), Err(IntegerError::Truncated));
        assert_eq!(
            decode(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x7f], 5),
            Err(IntegerError::Overflow)
        );
        // Zero padding forever is refused too, not read to the end.
        assert_eq!(
            decode(&[0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], 5),
            Err(IntegerError::Overflow)
        );
        for value in [0, 30, 31, 127, 128, 4096, 16_384, u32::MAX as usize] {
            let mut out = vec![];
            encode(value, 7, 0x80, &mut out);
            assert_eq!(decode(&out, 7), Ok((value as u64, out.len())), "{value}");
        }
    }
}
