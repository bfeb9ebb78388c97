//! A server connection fed a client's bytes (the preface and an empty SETTINGS first, so the
//! fuzzer starts past them), cut where the first byte says, answering every request: no panic,
//! every limit holding, and what it writes always whole, well-formed frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Instant;
use throng_h2::frame;
use throng_h2::server::{Connection, Event, Limits, Step};

fuzz_target!(|data: &[u8]| {
    let Some((&piece, body)) = data.split_first() else {
        return;
    };
    let mut input = throng_h2::PREFACE.to_vec();
    input.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    input.extend_from_slice(body);
    let piece = usize::from(piece).max(1);
    let mut conn = Connection::new(Limits::default());
    let mut out = Vec::new();
    conn.start(&mut out);
    let now = Instant::now();
    let mut buffered: Vec<u8> = Vec::new();
    'reading: for part in input.chunks(piece) {
        buffered.extend_from_slice(part);
        let mut at = 0;
        loop {
            match conn.next(&buffered[at..], &mut out, now) {
                Err(_) => break 'reading,
                Ok(Step::More) => break,
                Ok(Step::Frame { consumed, event }) => {
                    at += consumed;
                    match event {
                        Some(Event::Request { stream, .. }) | Some(Event::TooLarge { stream }) => {
                            conn.send_head(stream, 200, [(&b"x"[..], &b"y"[..])], false, &mut out);
                            conn.send_data(stream, b"body", true, &mut out);
                        }
                        Some(Event::Data { stream, data, .. }) => {
                            conn.release(stream, data.len() as u32, &mut out);
                        }
                        _ => {}
                    }
                }
            }
        }
        buffered.drain(..at);
        assert!(conn.open_streams() <= 100, "past the concurrent streams");
    }
    let mut at = 0;
    while at < out.len() {
        match frame::parse(&out[at..], frame::MAX_MAX_FRAME_SIZE) {
            Ok(Some((_, n))) => at += n,
            other => panic!("the server wrote a bad frame: {other:?}"),
        }
    }
});
