//! The downgrade from HTTP/2 to HTTP/1.1, where smuggling lives. A client's bytes (past the
//! preface and an empty SETTINGS) go through throng-h2's server connection; each stream's
//! request, body and trailers are written as HTTP/1.1 by the proxy's downgrade, and each
//! finished one is read back by throng's HTTP/1 codec, as a naive server would read it.
//! Either the codec refuses it (the exchange answers 400; nothing reaches a server), or it
//! reads exactly one request: the stream's method, path and authority, the stream's body byte
//! for byte, ending where the bytes end, so nothing is left to be read as a second request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Instant;
use throng_h2::server::{Connection, Event, Limits, Step};
use throng_http1::{header_slots, parse_request, BodyReader};
use throng_proxy::http::h2::downgrade::{request_data, request_head, request_trailers, RequestBody};
use throng_proxy::http::LIMITS;

/// A stream on its way to a server: what it should say, and the HTTP/1.1 written for it.
struct Downgraded {
    stream: u32,
    method: Vec<u8>,
    path: Vec<u8>,
    authority: Vec<u8>,
    body: RequestBody,
    sent_body: Vec<u8>,
    http1: Vec<u8>,
}

fuzz_target!(|data: &[u8]| {
    let mut input = throng_h2::PREFACE.to_vec();
    input.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    input.extend_from_slice(data);
    let mut conn = Connection::new(Limits::default());
    let mut out = Vec::new();
    conn.start(&mut out);
    let now = Instant::now();
    let mut open: Vec<Downgraded> = Vec::new();
    let mut at = 0;
    loop {
        let (consumed, finished) = match conn.next(&input[at..], &mut out, now) {
            Err(_) | Ok(Step::More) => return,
            Ok(Step::Frame { consumed, event }) => (consumed, on_event(event, &mut open)),
        };
        at += consumed;
        if let Some(stream) = finished {
            let index = open.iter().position(|d| d.stream == stream);
            if let Some(done) = index.map(|i| open.swap_remove(i)) {
                check(&done);
            }
        }
        out.clear();
    }
});

/// Writes the event's HTTP/1.1; the stream whose request is now whole, if one is.
fn on_event(event: Option<Event<'_>>, open: &mut Vec<Downgraded>) -> Option<u32> {
    match event? {
        Event::Request {
            stream,
            head,
            end_stream,
        } => {
            if head.is_connect() {
                return None; // refused 501 on its stream, never downgraded
            }
            let mut http1 = Vec::new();
            let body = request_head(&head, end_stream, &mut http1);
            open.push(Downgraded {
                stream,
                method: head.method().to_vec(),
                path: head.path().unwrap_or(b"/").to_vec(),
                authority: head.authority().unwrap_or_default().to_vec(),
                body,
                sent_body: Vec::new(),
                http1,
            });
            end_stream.then_some(stream)
        }
        Event::Data {
            stream,
            data,
            end_stream,
        } => {
            let d = open.iter_mut().find(|d| d.stream == stream)?;
            request_data(d.body, data, end_stream, &mut d.http1);
            if d.body != RequestBody::None {
                d.sent_body.extend_from_slice(data);
            }
            end_stream.then_some(stream)
        }
        Event::Trailers { stream, fields } => {
            let d = open.iter_mut().find(|d| d.stream == stream)?;
            request_trailers(d.body, &fields, &mut d.http1);
            Some(stream)
        }
        Event::Reset { stream, .. } => {
            open.retain(|d| d.stream != stream);
            None
        }
        _ => None,
    }
}

/// What a naive HTTP/1.1 server reads from the downgraded bytes.
fn check(d: &Downgraded) {
    let mut slots = header_slots();
    let head = match parse_request(&d.http1, &mut slots, &LIMITS) {
        Ok(Some(head)) => head,
        // Refused by the codec the exchange reads with: a 400 or 431, nothing sent on.
        Err(_) => return,
        Ok(None) => panic!("a whole request read as incomplete: {:?}", d.http1),
    };
    assert_eq!(head.method.as_bytes(), d.method, "method");
    assert_eq!(head.target.as_bytes(), d.path, "path");
    assert_eq!(head.header("host").unwrap_or_default(), d.authority, "host");
    let hosts = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count();
    assert_eq!(hosts, 1, "one Host field");
    let rest = &d.http1[head.head_len..];
    let mut reader = BodyReader::new(head.body);
    let mut body = Vec::new();
    let consumed = reader
        .feed(rest, |piece| body.extend_from_slice(piece))
        .expect("the downgrade's framing reads back");
    assert!(reader.is_done(), "the body ends: {:?}", d.http1);
    assert_eq!(body, d.sent_body, "the body, byte for byte");
    assert_eq!(consumed, rest.len(), "nothing after the request: {:?}", d.http1);
}
