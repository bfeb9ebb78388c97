//! A scripted client against one connection: frames in, the connection's frames out.

use super::*;
use crate::frame::{flag, kind, write_header};
use crate::hpack::encoder::encode_field;
use std::time::Duration;

/// The client's side: what it writes, and what the server wrote back.
struct Client {
    conn: Connection,
    now: Instant,
    /// Bytes the server wrote, not yet looked at.
    out: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Request(u32, Vec<(Vec<u8>, Vec<u8>)>, bool),
    Data(u32, Vec<u8>, bool),
    Trailers(u32),
    TooLarge(u32),
    Reset(u32, ErrorCode, bool),
    Refused(u32, ErrorCode),
    WindowOpened,
    GoAway(u32),
}

fn own(event: Event<'_>) -> Owned {
    match event {
        Event::Request {
            stream,
            head,
            end_stream,
        } => {
            let mut fields = vec![
                (b":method".to_vec(), head.method().to_vec()),
                (b":path".to_vec(), head.path().unwrap_or_default().to_vec()),
            ];
            fields.extend(head.fields().map(|(n, v)| (n.to_vec(), v.to_vec())));
            Owned::Request(stream, fields, end_stream)
        }
        Event::Data {
            stream,
            data,
            end_stream,
        } => Owned::Data(stream, data.to_vec(), end_stream),
        Event::Trailers { stream, .. } => Owned::Trailers(stream),
        Event::TooLarge { stream } => Owned::TooLarge(stream),
        Event::Reset {
            stream,
            code,
            by_peer,
            ..
        } => Owned::Reset(stream, code, by_peer),
        Event::Refused { stream, code, .. } => Owned::Refused(stream, code),
        Event::WindowOpened => Owned::WindowOpened,
        Event::GoAway { last_stream, .. } => Owned::GoAway(last_stream),
    }
}

/// A frame the server wrote: kind, flags, stream, payload.
type Written = (u8, u8, u32, Vec<u8>);

fn get(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (n, v) in fields {
        encode_field(n.as_bytes(), v.as_bytes(), &mut block);
    }
    block
}

const GET: [(&str, &str); 4] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "example.com"),
    (":path", "/"),
];

fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_header(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out
}

impl Client {
    fn new(limits: Limits) -> Client {
        let mut client = Client {
            conn: Connection::new(limits),
            now: Instant::now(),
            out: Vec::new(),
        };
        client.conn.start(&mut client.out);
        let mut hello = PREFACE.to_vec();
        hello.extend(raw(kind::SETTINGS, 0, 0, b""));
        assert_eq!(client.feed(&hello).unwrap(), vec![]);
        let written = client.written();
        assert_eq!(written[0].0, kind::SETTINGS, "the server's SETTINGS first");
        let opened = written[1].0 == kind::WINDOW_UPDATE;
        assert_eq!(
            opened,
            limits.connection_window > 65_535,
            "the connection's window opened"
        );
        let ack = &written[1 + usize::from(opened)];
        assert_eq!((ack.0, ack.1), (kind::SETTINGS, flag::ACK));
        client
    }

    /// Feeds bytes as one read; every event, or the connection error.
    fn feed(&mut self, mut input: &[u8]) -> Result<Vec<Owned>, H2Error> {
        let mut events = Vec::new();
        loop {
            match self.conn.next(input, &mut self.out, self.now)? {
                Step::More => {
                    assert!(input.is_empty(), "a whole frame left unread");
                    return Ok(events);
                }
                Step::Frame { consumed, event } => {
                    events.extend(event.map(own));
                    input = &input[consumed..];
                }
            }
        }
    }

    fn headers(
        &mut self,
        stream: u32,
        block: &[u8],
        end_stream: bool,
    ) -> Result<Vec<Owned>, H2Error> {
        let flags = flag::END_HEADERS | if end_stream { flag::END_STREAM } else { 0 };
        self.feed(&raw(kind::HEADERS, flags, stream, block))
    }

    fn data(&mut self, stream: u32, data: &[u8], end_stream: bool) -> Result<Vec<Owned>, H2Error> {
        let flags = if end_stream { flag::END_STREAM } else { 0 };
        self.feed(&raw(kind::DATA, flags, stream, data))
    }

    fn written(&mut self) -> Vec<Written> {
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some(h) = frame::Header::parse(&self.out[at..]) {
            let end = at + 9 + h.len as usize;
            frames.push((h.kind, h.flags, h.stream, self.out[at + 9..end].to_vec()));
            at = end;
        }
        self.out.clear();
        frames
    }

    /// The GOAWAY the server wrote: its last stream and code.
    fn goaway(&mut self) -> Option<(u32, ErrorCode)> {
        self.written()
            .into_iter()
            .find(|f| f.0 == kind::GOAWAY)
            .map(|f| {
                (
                    u32::from_be_bytes(f.3[0..4].try_into().unwrap()),
                    ErrorCode(u32::from_be_bytes(f.3[4..8].try_into().unwrap())),
                )
            })
    }

    fn resets(&mut self) -> Vec<(u32, ErrorCode)> {
        self.written()
            .into_iter()
            .filter(|f| f.0 == kind::RST_STREAM)
            .map(|f| {
                (
                    f.2,
                    ErrorCode(u32::from_be_bytes(f.3[..4].try_into().unwrap())),
                )
            })
            .collect()
    }
}

fn connection_error(result: Result<Vec<Owned>, H2Error>) -> ErrorCode {
    result.expect_err("a connection error").code
}

#[test]
fn a_request_and_its_response_on_one_stream() {
    let mut c = Client::new(Limits::default());
    let events = c.headers(1, &get(&GET), true).unwrap();
    assert!(matches!(&events[..], [Owned::Request(1, _, true)]));
    c.conn.send_head(
        1,
        200,
        [(&b"content-type"[..], &b"text/plain"[..])],
        false,
        &mut c.out,
    );
    assert_eq!(c.conn.send_data(1, b"pong", true, &mut c.out), 4);
    let written = c.written();
    assert_eq!(written.len(), 2);
    assert_eq!(
        (written[0].0, written[0].1),
        (kind::HEADERS, flag::END_HEADERS)
    );
    assert_eq!(
        written[1],
        (kind::DATA, flag::END_STREAM, 1, b"pong".to_vec())
    );
    let mut decoder = crate::hpack::Decoder::new(4096);
    let mut fields = Vec::new();
    let limits = ListLimits {
        max_list_size: 1 << 16,
        max_fields: 10,
    };
    decoder
        .decode(&written[0].3, limits, |n, v| {
            fields.push((n.to_vec(), v.to_vec()))
        })
        .unwrap();
    assert_eq!(fields[0], (b":status".to_vec(), b"200".to_vec()));
    assert!(c.conn.is_idle(), "both ends closed: the stream is gone");
}

#[test]
fn a_body_arrives_in_pieces_and_its_window_opens_as_it_is_passed_on() {
    let mut c = Client::new(Limits::default());
    let mut post = get(&[
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "a"),
        (":path", "/up"),
    ]);
    encode_field(b"content-length", b"40768", &mut post);
    c.headers(1, &post, false).unwrap();
    let chunk = vec![7u8; 16_384];
    assert_eq!(
        c.data(1, &chunk, false).unwrap(),
        vec![Owned::Data(1, chunk.clone(), false)]
    );
    c.conn.release(1, 16_384, &mut c.out);
    assert!(
        c.written().is_empty(),
        "no update for less than half a window"
    );
    c.data(1, &chunk, false).unwrap();
    c.conn.release(1, 16_384, &mut c.out);
    let updates: Vec<_> = c
        .written()
        .into_iter()
        .filter(|f| f.0 == kind::WINDOW_UPDATE)
        .collect();
    assert_eq!(
        updates,
        vec![(kind::WINDOW_UPDATE, 0, 1, 32_768u32.to_be_bytes().to_vec())]
    );
    let last = vec![7u8; 8_000];
    assert_eq!(
        c.data(1, &last, true).unwrap(),
        vec![Owned::Data(1, last, true)]
    );
}

#[test]
fn a_body_that_disagrees_with_its_content_length_resets_its_stream() {
    let mut c = Client::new(Limits::default());
    let mut post = get(&[
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "a"),
        (":path", "/"),
    ]);
    encode_field(b"content-length", b"3", &mut post);
    c.headers(1, &post, false).unwrap();
    let events = c.data(1, b"four", false).unwrap();
    assert_eq!(
        events,
        vec![Owned::Reset(1, ErrorCode::PROTOCOL_ERROR, false)]
    );
    assert_eq!(c.resets(), vec![(1, ErrorCode::PROTOCOL_ERROR)]);
    c.headers(3, &post, false).unwrap();
    let events = c.data(3, b"tw", true).unwrap();
    assert_eq!(
        events,
        vec![Owned::Reset(3, ErrorCode::PROTOCOL_ERROR, false)]
    );
    // A length with no DATA at all.
    let events = c.headers(5, &post, true).unwrap();
    assert_eq!(events, vec![Owned::Refused(5, ErrorCode::PROTOCOL_ERROR)]);
}

#[test]
fn the_preface_and_the_first_settings_are_required() {
    let mut conn = Connection::new(Limits::default());
    let mut out = Vec::new();
    let now = Instant::now();
    assert_eq!(conn.next(b"PRI * HTTP/2", &mut out, now), Ok(Step::More));
    let mut conn = Connection::new(Limits::default());
    let got = conn.next(b"GET / HTTP/1.1\r\n", &mut out, now);
    assert_eq!(got.unwrap_err().code, ErrorCode::PROTOCOL_ERROR);
    let mut conn = Connection::new(Limits::default());
    let mut bytes = PREFACE.to_vec();
    bytes.extend(raw(kind::PING, 0, 0, &[0; 8]));
    let Step::Frame { consumed, .. } = conn.next(&bytes, &mut out, now).unwrap() else {
        panic!("the preface is whole");
    };
    let got = conn.next(&bytes[consumed..], &mut out, now);
    assert_eq!(got.unwrap_err().code, ErrorCode::PROTOCOL_ERROR);
    assert!(conn.is_closed());
}

#[test]
fn stream_ids_must_be_odd_and_increasing_and_closed_ones_stay_closed() {
    let mut c = Client::new(Limits::default());
    assert_eq!(
        connection_error(c.headers(2, &get(&GET), true)),
        ErrorCode::PROTOCOL_ERROR
    );
    let mut c = Client::new(Limits::default());
    c.headers(5, &get(&GET), true).unwrap();
    assert_eq!(
        connection_error(c.headers(3, &get(&GET), true)),
        ErrorCode::PROTOCOL_ERROR
    );
    let mut c = Client::new(Limits::default());
    c.headers(1, &get(&GET), true).unwrap();
    c.conn.send_head(1, 204, [], true, &mut c.out);
    assert_eq!(
        connection_error(c.headers(1, &get(&GET), true)),
        ErrorCode::STREAM_CLOSED
    );
    let mut c = Client::new(Limits::default());
    assert_eq!(
        connection_error(c.data(1, b"x", true)),
        ErrorCode::PROTOCOL_ERROR
    );
    let mut c = Client::new(Limits::default());
    c.headers(1, &get(&GET), true).unwrap();
    // Half-closed (remote): DATA is a stream error, STREAM_CLOSED.
    assert_eq!(
        c.data(1, b"x", false).unwrap(),
        vec![Owned::Reset(1, ErrorCode::STREAM_CLOSED, false)]
    );
}

#[test]
fn a_header_block_may_not_be_interrupted_and_continuations_are_bounded() {
    let block = get(&GET);
    let mut c = Client::new(Limits::default());
    c.feed(&raw(kind::HEADERS, flag::END_STREAM, 1, &block[..2]))
        .unwrap();
    assert_eq!(
        connection_error(c.feed(&raw(kind::PING, 0, 0, &[0; 8]))),
        ErrorCode::PROTOCOL_ERROR
    );

    let mut c = Client::new(Limits::default());
    c.feed(&raw(kind::HEADERS, flag::END_STREAM, 1, &block[..2]))
        .unwrap();
    c.feed(&raw(kind::CONTINUATION, 0, 1, &block[2..4]))
        .unwrap();
    let events = c
        .feed(&raw(kind::CONTINUATION, flag::END_HEADERS, 1, &block[4..]))
        .unwrap();
    assert!(matches!(&events[..], [Owned::Request(1, _, true)]));

    // The 2024 CONTINUATION flood: empty CONTINUATIONs, never END_HEADERS.
    let mut c = Client::new(Limits::default());
    c.feed(&raw(kind::HEADERS, 0, 1, &block)).unwrap();
    let mut flood = Vec::new();
    for _ in 0..1000 {
        flood.extend(raw(kind::CONTINUATION, 0, 1, b""));
    }
    let error = c.feed(&flood).unwrap_err();
    assert_eq!(
        (error.code, error.flood),
        (ErrorCode::ENHANCE_YOUR_CALM, Some(Flood::Continuations))
    );
    assert_eq!(c.goaway(), Some((0, ErrorCode::ENHANCE_YOUR_CALM)));

    let mut c = Client::new(Limits::default());
    c.feed(&raw(kind::HEADERS, 0, 1, &block)).unwrap();
    let big = vec![0x82u8; 16_000];
    c.feed(&raw(kind::CONTINUATION, 0, 1, &big)).unwrap();
    c.feed(&raw(kind::CONTINUATION, 0, 1, &big)).unwrap();
    let error = c.feed(&raw(kind::CONTINUATION, 0, 1, &big)).unwrap_err();
    assert_eq!(error.flood, Some(Flood::HeaderBlock));
}

#[test]
fn streams_past_the_concurrency_limit_are_refused_and_may_be_retried() {
    let limits = Limits {
        max_concurrent_streams: 2,
        ..Limits::default()
    };
    let mut c = Client::new(limits);
    c.headers(1, &get(&GET), true).unwrap();
    c.headers(3, &get(&GET), true).unwrap();
    assert_eq!(
        c.headers(5, &get(&GET), true).unwrap(),
        vec![Owned::Refused(5, ErrorCode::REFUSED_STREAM)]
    );
    assert_eq!(c.resets(), vec![(5, ErrorCode::REFUSED_STREAM)]);
    c.conn.send_head(1, 200, [], true, &mut c.out);
    assert!(matches!(
        &c.headers(7, &get(&GET), true).unwrap()[..],
        [Owned::Request(7, _, true)]
    ));
}

#[test]
fn rapid_reset_and_made_you_reset_end_the_connection() {
    // Rapid Reset: open, reset, again and again.
    let mut c = Client::new(Limits::default());
    let mut attack = Vec::new();
    let block = get(&GET);
    for i in 0..200u32 {
        let id = 2 * i + 1;
        attack.extend(raw(kind::HEADERS, flag::END_HEADERS, id, &block));
        attack.extend(raw(
            kind::RST_STREAM,
            0,
            id,
            &ErrorCode::CANCEL.0.to_be_bytes(),
        ));
    }
    let error = c.feed(&attack).unwrap_err();
    assert_eq!(error.flood, Some(Flood::Resets));
    assert!(c.conn.is_closed());

    // MadeYouReset: frames that make the server reset (WINDOW_UPDATE overflowing a stream).
    let mut c = Client::new(Limits::default());
    let mut attack = Vec::new();
    for i in 0..200u32 {
        let id = 2 * i + 1;
        attack.extend(raw(kind::HEADERS, flag::END_HEADERS, id, &block));
        attack.extend(raw(kind::WINDOW_UPDATE, 0, id, &MAX_WINDOW.to_be_bytes()));
    }
    let error = c.feed(&attack).unwrap_err();
    assert_eq!(error.flood, Some(Flood::Resets));

    // The same resets spread over seconds are a client's right.
    let mut c = Client::new(Limits::default());
    for i in 0..300u32 {
        let id = 2 * i + 1;
        c.now += Duration::from_millis(20);
        c.headers(id, &block, false).unwrap();
        c.feed(&raw(
            kind::RST_STREAM,
            0,
            id,
            &ErrorCode::CANCEL.0.to_be_bytes(),
        ))
        .unwrap();
    }
}

#[test]
fn control_frame_floods_each_have_their_limit() {
    let cases: [(Vec<u8>, Flood); 5] = [
        (raw(kind::PING, 0, 0, &[1; 8]), Flood::Pings),
        (raw(kind::SETTINGS, 0, 0, b""), Flood::Settings),
        (raw(kind::PRIORITY, 0, 3, &[0, 0, 0, 1, 16]), Flood::Ignored),
        (
            raw(kind::WINDOW_UPDATE, 0, 0, &1u32.to_be_bytes()),
            Flood::WindowUpdates,
        ),
        (raw(0xee, 0, 0, b"unknown"), Flood::Ignored),
    ];
    for (frame, flood) in cases {
        let mut c = Client::new(Limits::default());
        let many: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * 20_000)
            .collect();
        let error = c.feed(&many).unwrap_err();
        assert_eq!(error.flood, Some(flood), "{flood:?}");
        assert_eq!(c.goaway().map(|g| g.1), Some(ErrorCode::ENHANCE_YOUR_CALM));
    }
    let mut c = Client::new(Limits::default());
    let mut post = get(&[
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "a"),
        (":path", "/"),
    ]);
    post.truncate(post.len());
    c.headers(1, &post, false).unwrap();
    let empty = raw(kind::DATA, 0, 1, b"");
    let many: Vec<u8> = empty
        .iter()
        .copied()
        .cycle()
        .take(empty.len() * 1000)
        .collect();
    assert_eq!(c.feed(&many).unwrap_err().flood, Some(Flood::EmptyData));
}

#[test]
fn flow_control_errors_on_both_levels() {
    let mut c = Client::new(Limits::default());
    let post = get(&[
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "a"),
        (":path", "/"),
    ]);
    c.headers(1, &post, false).unwrap();
    let chunk = vec![0u8; 16_384];
    for _ in 0..3 {
        c.data(1, &chunk, false).unwrap();
    }
    // 49,152 sent; 16,384 more is past the stream's 65,535: a stream error.
    assert_eq!(
        c.data(1, &chunk, false).unwrap(),
        vec![Owned::Reset(1, ErrorCode::FLOW_CONTROL_ERROR, false)]
    );
    // The connection's window is larger; the bytes nobody took were given back to it.
    c.headers(3, &post, false).unwrap();
    c.data(3, &chunk, false).unwrap();
    // Past the connection's window: a connection error.
    let mut c = Client::new(Limits {
        connection_window: 65_535,
        ..Limits::default()
    });
    c.headers(1, &post, false).unwrap();
    c.headers(3, &post, false).unwrap();
    c.data(1, &chunk, false).unwrap();
    c.data(1, &chunk, false).unwrap();
    c.data(3, &chunk, false).unwrap();
    c.data(3, &chunk[..16_383], false).unwrap();
    assert_eq!(
        connection_error(c.data(3, b"x", false)),
        ErrorCode::FLOW_CONTROL_ERROR
    );

    // A WINDOW_UPDATE past 2^31-1 on the connection.
    let mut c = Client::new(Limits::default());
    let e = c
        .feed(&raw(kind::WINDOW_UPDATE, 0, 0, &MAX_WINDOW.to_be_bytes()))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::FLOW_CONTROL_ERROR);
}

#[test]
fn sending_waits_for_the_clients_windows() {
    let mut c = Client::new(Limits::default());
    // The client allows 10 bytes per stream.
    let mut settings = settings::INITIAL_WINDOW_SIZE.to_be_bytes().to_vec();
    settings.extend(10u32.to_be_bytes());
    c.feed(&raw(kind::SETTINGS, 0, 0, &settings)).unwrap();
    c.headers(1, &get(&GET), true).unwrap();
    c.conn.send_head(1, 200, [], false, &mut c.out);
    assert_eq!(
        c.conn.send_data(1, b"0123456789abcdef", true, &mut c.out),
        10
    );
    assert_eq!(c.conn.send_capacity(1), 0);
    let events = c
        .feed(&raw(kind::WINDOW_UPDATE, 0, 1, &100u32.to_be_bytes()))
        .unwrap();
    assert_eq!(events, vec![Owned::WindowOpened]);
    assert_eq!(c.conn.send_data(1, b"abcdef", true, &mut c.out), 6);
    let data: Vec<_> = c
        .written()
        .into_iter()
        .filter(|f| f.0 == kind::DATA)
        .collect();
    assert_eq!(data[0].3, b"0123456789");
    assert_eq!(data[0].1, 0, "not the end yet");
    assert_eq!(
        (data[1].1, &data[1].3[..]),
        (flag::END_STREAM, &b"abcdef"[..])
    );
    assert!(c.conn.is_idle());
}

#[test]
fn a_request_over_the_field_limits_is_answered_431_and_the_table_stays_in_step() {
    let limits = Limits {
        max_header_list_size: 300,
        ..Limits::default()
    };
    let mut c = Client::new(limits);
    let mut block = get(&GET);
    // A literal with incremental indexing: name "x-big", 300 bytes of value.
    block.push(0x40);
    block.push(5);
    block.extend_from_slice(b"x-big");
    crate::hpack::integer::encode(300, 7, 0, &mut block);
    block.extend(std::iter::repeat_n(b'v', 300));
    assert_eq!(
        c.headers(1, &block, true).unwrap(),
        vec![Owned::TooLarge(1)]
    );
    // A malformed request that adds an entry too; then one naming both entries by index.
    let mut malformed = get(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "a"),
    ]);
    malformed.extend([0x40, 1, b'y', 1, b'1']);
    assert_eq!(
        c.headers(3, &malformed, true).unwrap(),
        vec![Owned::Refused(3, ErrorCode::PROTOCOL_ERROR)]
    );
    let mut next = get(&GET);
    next.push(0x80 | 62); // y: 1, the newest entry
    let events = c.headers(5, &next, true).unwrap();
    let Owned::Request(5, fields, true) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(fields.last().unwrap(), &(b"y".to_vec(), b"1".to_vec()));
}

#[test]
fn a_graceful_shutdown_is_two_goaways_and_streams_in_flight_finish() {
    let mut c = Client::new(Limits::default());
    c.headers(1, &get(&GET), true).unwrap();
    c.conn.shutdown(&mut c.out);
    let written = c.written();
    assert_eq!(written[0].0, kind::GOAWAY);
    assert_eq!(&written[0].3[..4], &MAX_WINDOW.to_be_bytes());
    assert_eq!(written[1].0, kind::PING);
    // A stream the client opened before it saw the GOAWAY is still served.
    assert!(matches!(
        &c.headers(3, &get(&GET), true).unwrap()[..],
        [Owned::Request(3, _, true)]
    ));
    c.feed(&raw(kind::PING, flag::ACK, 0, &written[1].3))
        .unwrap();
    assert_eq!(c.goaway(), Some((3, ErrorCode::NO_ERROR)));
    // Past the final GOAWAY: ignored.
    assert_eq!(c.headers(5, &get(&GET), true).unwrap(), vec![]);
    assert!(!c.conn.is_drained());
    c.conn.send_head(1, 200, [], true, &mut c.out);
    c.conn.send_head(3, 200, [], true, &mut c.out);
    assert!(c.conn.is_drained());
}

#[test]
fn malformed_frames_for_one_stream_reset_only_it() {
    let mut c = Client::new(Limits::default());
    c.headers(1, &get(&GET), false).unwrap();
    let events = c
        .feed(&raw(kind::PRIORITY, 0, 1, &[0, 0, 0, 1, 0]))
        .unwrap();
    assert_eq!(
        events,
        vec![Owned::Reset(1, ErrorCode::PROTOCOL_ERROR, false)]
    );
    let mut with_priority = vec![0, 0, 0, 3, 16];
    with_priority.extend(get(&GET));
    let events = c
        .feed(&raw(
            kind::HEADERS,
            flag::END_HEADERS | flag::PRIORITY,
            3,
            &with_priority,
        ))
        .unwrap();
    assert_eq!(events, vec![Owned::Refused(3, ErrorCode::PROTOCOL_ERROR)]);
    assert!(matches!(
        &c.headers(5, &get(&GET), true).unwrap()[..],
        [Owned::Request(5, _, true)]
    ));
}
