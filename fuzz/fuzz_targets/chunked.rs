//! The chunked decoder fed in pieces of every size the first byte picks: it must consume the
//! same bytes and deliver the same data however the input is cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use throng_http1::ChunkedDecoder;

fn decode(input: &[u8], piece: usize) -> Option<(Vec<u8>, usize, bool)> {
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut consumed = 0;
    for part in input.chunks(piece) {
        let progress = decoder.feed(part, |d| body.extend_from_slice(d)).ok()?;
        consumed += progress.consumed;
        if progress.done {
            return Some((body, consumed, true));
        }
    }
    Some((body, consumed, false))
}

fuzz_target!(|data: &[u8]| {
    let Some((&piece, input)) = data.split_first() else {
        return;
    };
    let whole = decode(input, input.len().max(1));
    let cut = decode(input, usize::from(piece).max(1));
    assert_eq!(whole, cut, "the result depends on how the input was cut");
});
