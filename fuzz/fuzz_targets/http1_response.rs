//! A response head and its body, as the proxy and attack parse what servers send; the first
//! byte says whether it answers a HEAD request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use throng_http1::{header_slots, parse_response, BodyReader, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let mut slots = header_slots();
    let Ok(Some(head)) = parse_response(data, &mut slots, &Limits::default(), flags & 1 == 1)
    else {
        return;
    };
    let mut reader = BodyReader::new(head.body);
    let _ = reader.feed(&data[head.head_len..], |_| {});
});
