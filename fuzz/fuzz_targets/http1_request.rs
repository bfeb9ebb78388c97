//! A request head and its body, as the proxy, pong and attack parse them: the head in place,
//! then the body by the framing the head decided, fed in two pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use throng_http1::{header_slots, parse_request, BodyReader, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_head_bytes: 4096,
        max_headers: 32,
    };
    let mut slots = header_slots();
    let Ok(Some(head)) = parse_request(data, &mut slots, &limits) else {
        return;
    };
    assert!(head.head_len <= data.len());
    let body = &data[head.head_len..];
    let mut reader = BodyReader::new(head.body);
    let split = body.len() / 2;
    let mut seen = 0usize;
    for part in [&body[..split], &body[split..]] {
        match reader.feed(part, |d| seen += d.len()) {
            Ok(consumed) => assert!(consumed <= part.len()),
            Err(_) => return,
        }
    }
    assert!(seen <= body.len());
});
