//! A client connection with three requests open, fed a server's bytes (an empty SETTINGS first,
//! so the fuzzer starts past it), cut where the first byte says, opening a new request whenever
//! one ends: no panic, never more streams than allowed, and what it writes always whole,
//! well-formed frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Instant;
use throng_h2::client::{request_block, Connection, Event, Step};
use throng_h2::frame;
use throng_h2::server::Limits;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, body)) = data.split_first() else {
        return;
    };
    let mut input = vec![0, 0, 0, 4, 0, 0, 0, 0, 0];
    input.extend_from_slice(body);
    let piece = usize::from(piece).max(1);
    let limits = Limits::default();
    let mut conn = Connection::new(limits);
    let mut out = Vec::new();
    conn.start(&mut out);
    let written_from = out.len();
    let block = request_block(b"POST", b"https", b"example.com", b"/", []);
    for _ in 0..3 {
        if let Ok(id) = conn.open_stream(&block, false, false, &mut out) {
            conn.send_data(id, b"body", true, &mut out);
        }
    }
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
                    let ended = match event {
                        Some(Event::Data {
                            stream,
                            data,
                            end_stream,
                        }) => {
                            conn.release(stream, data.len() as u32, &mut out);
                            end_stream
                        }
                        Some(Event::Response { end_stream, .. }) => end_stream,
                        Some(Event::Trailers { .. }) | Some(Event::Reset { .. }) => true,
                        _ => false,
                    };
                    if ended {
                        let _ = conn.open_stream(&block, true, false, &mut out);
                    }
                }
            }
        }
        buffered.drain(..at);
        assert!(
            conn.open_streams() <= limits.max_concurrent_streams as usize,
            "past the concurrent streams"
        );
    }
    let mut at = written_from;
    while at < out.len() {
        match frame::parse(&out[at..], frame::MAX_MAX_FRAME_SIZE) {
            Ok(Some((_, n))) => at += n,
            other => panic!("the client wrote a bad frame: {other:?}"),
        }
    }
});
