//! The client against throng's own server codec (both sides sans I/O, bytes passed by hand),
//! and against scripted frames a bad server could send.

use super::*;
use crate::frame::{flag, kind, write_header};
use crate::hpack::encoder::encode_status;
use crate::server;

#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Response(u32, u16, bool),
    Data(u32, Vec<u8>, bool),
    Trailers(u32, Vec<(Vec<u8>, Vec<u8>)>),
    Reset(u32, ErrorCode, bool, &'static str),
    Capacity,
    GoAway(u32, ErrorCode),
}

fn own(event: Event<'_>) -> Owned {
    match event {
        Event::Response {
            stream,
            head,
            end_stream,
        } => Owned::Response(stream, head.status, end_stream),
        Event::Data {
            stream,
            data,
            end_stream,
        } => Owned::Data(stream, data.to_vec(), end_stream),
        Event::Trailers { stream, fields } => Owned::Trailers(
            stream,
            fields
                .fields()
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect(),
        ),
        Event::Reset {
            stream,
            code,
            by_peer,
            reason,
        } => Owned::Reset(stream, code, by_peer, reason),
        Event::Capacity => Owned::Capacity,
        Event::GoAway { last_stream, code } => Owned::GoAway(last_stream, code),
    }
}

/// Feeds `bytes` to the client; returns its events (Capacity left out) and what it wrote.
fn feed(client: &mut Connection, bytes: &[u8]) -> Result<(Vec<Owned>, Vec<u8>), H2Error> {
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut at = 0;
    let now = Instant::now();
    while at < bytes.len() {
        match client.next(&bytes[at..], &mut out, now)? {
            Step::More => break,
            Step::Frame { consumed, event } => {
                at += consumed;
                if let Some(event) = event.map(own) {
                    if event != Owned::Capacity {
                        events.push(event);
                    }
                }
            }
        }
    }
    Ok((events, out))
}

/// What the server codec makes of the client's bytes: its events' request streams, in order.
fn serve(server: &mut server::Connection, bytes: &[u8], out: &mut Vec<u8>) -> Vec<u32> {
    let mut at = 0;
    let mut requests = Vec::new();
    while at < bytes.len() {
        match server.next(&bytes[at..], out, Instant::now()).unwrap() {
            server::Step::More => break,
            server::Step::Frame { consumed, event } => {
                at += consumed;
                if let Some(server::Event::Request { stream, .. }) = event {
                    requests.push(stream);
                }
            }
        }
    }
    requests
}

fn get_block() -> Vec<u8> {
    request_block(
        b"GET",
        b"https",
        b"example.com",
        b"/x",
        [(&b"user-agent"[..], &b"throng"[..])],
    )
}

/// A client and a server that have exchanged prefaces and SETTINGS.
fn pair(limits: Limits) -> (Connection, server::Connection) {
    let mut client = Connection::new(Limits::default());
    let mut server = server::Connection::new(limits);
    let mut to_server = Vec::new();
    client.start(&mut to_server);
    let mut to_client = Vec::new();
    server.start(&mut to_client);
    serve(&mut server, &to_server, &mut to_client);
    let (events, acks) = feed(&mut client, &to_client).unwrap();
    assert!(events.is_empty(), "{events:?}");
    let mut more = Vec::new();
    serve(&mut server, &acks, &mut more);
    (client, server)
}

#[test]
fn a_request_and_its_response_go_through_the_servers_codec() {
    let (mut client, mut server) = pair(Limits::default());
    let mut to_server = Vec::new();
    let id = client
        .open_stream(&get_block(), true, false, &mut to_server)
        .unwrap();
    assert_eq!(id, 1);
    let mut to_client = Vec::new();
    assert_eq!(serve(&mut server, &to_server, &mut to_client), vec![1]);
    server.send_head(
        1,
        200,
        [(&b"content-length"[..], &b"4"[..])],
        false,
        &mut to_client,
    );
    server.send_data(1, b"pong", true, &mut to_client);
    let (events, _) = feed(&mut client, &to_client).unwrap();
    assert_eq!(
        events,
        vec![
            Owned::Response(1, 200, false),
            Owned::Data(1, b"pong".to_vec(), true)
        ]
    );
    assert!(client.is_idle());
    // The next stream takes the next odd id.
    let mut to_server = Vec::new();
    assert_eq!(
        client.open_stream(&get_block(), true, false, &mut to_server),
        Ok(3)
    );
}

#[test]
fn a_request_body_goes_within_the_window_and_trailers_come_back() {
    let (mut client, mut server) = pair(Limits::default());
    let mut to_server = Vec::new();
    let id = client
        .open_stream(&get_block(), false, false, &mut to_server)
        .unwrap();
    let body = vec![7u8; 100_000];
    let sent = client.send_data(id, &body, true, &mut to_server);
    assert_eq!(sent, 65_535, "the server's window, not more");
    assert_eq!(client.send_capacity(id), 0);
    let mut to_client = Vec::new();
    serve(&mut server, &to_server, &mut to_client);
    server.release(id, 65_535, &mut to_client);
    server.send_head(id, 200, [], false, &mut to_client);
    server.send_trailers(id, [(&b"grpc-status"[..], &b"0"[..])], &mut to_client);
    let (events, _) = feed(&mut client, &to_client).unwrap();
    assert_eq!(
        events,
        vec![
            Owned::Response(id, 200, false),
            Owned::Trailers(id, vec![(b"grpc-status".to_vec(), b"0".to_vec())])
        ]
    );
    // The response is complete; the request is not: its window opened again.
    assert_eq!(client.open_streams(), 1);
    assert!(client.send_capacity(id) > 0);
    let mut rest = Vec::new();
    assert_eq!(
        client.send_data(id, &body[sent..], true, &mut rest),
        body.len() - sent
    );
    assert!(client.is_idle());
}

#[test]
fn streams_open_up_to_the_servers_limit_and_a_goaway_refuses_the_rest() {
    let limits = Limits {
        max_concurrent_streams: 2,
        ..Limits::default()
    };
    let (mut client, mut server) = pair(limits);
    assert_eq!(client.max_streams(), 2);
    let mut to_server = Vec::new();
    for _ in 0..2 {
        client
            .open_stream(&get_block(), true, false, &mut to_server)
            .unwrap();
    }
    assert_eq!(
        client.open_stream(&get_block(), true, false, &mut to_server),
        Err(Unavailable::Full)
    );
    let mut to_client = Vec::new();
    serve(&mut server, &to_server, &mut to_client);
    // The server shuts down: GOAWAY(2^31-1), a PING, then (once the PING is answered) the
    // final GOAWAY naming stream 3 as the last it serves.
    server.shutdown(&mut to_client);
    let (events, pong) = feed(&mut client, &to_client).unwrap();
    assert_eq!(events, vec![Owned::GoAway(MAX_WINDOW, ErrorCode::NO_ERROR)]);
    assert_eq!(
        client.open_stream(&get_block(), true, false, &mut to_server),
        Err(Unavailable::GoingAway)
    );
    let mut last = Vec::new();
    serve(&mut server, &pong, &mut last);
    let (events, _) = feed(&mut client, &last).unwrap();
    assert_eq!(events, vec![Owned::GoAway(3, ErrorCode::NO_ERROR)]);
    assert_eq!(client.open_streams(), 2, "streams 1 and 3 finish");
}

#[test]
fn a_goaway_closes_the_streams_past_its_last_and_never_raises_it() {
    let (mut client, _server) = pair(Limits::default());
    let mut out = Vec::new();
    for _ in 0..3 {
        client
            .open_stream(&get_block(), true, false, &mut out)
            .unwrap();
    }
    let mut goaway = Vec::new();
    frame::write_goaway(&mut goaway, 1, ErrorCode::NO_ERROR, b"");
    frame::write_goaway(&mut goaway, 5, ErrorCode::NO_ERROR, b"");
    let (events, _) = feed(&mut client, &goaway).unwrap();
    assert_eq!(
        events,
        vec![
            Owned::GoAway(1, ErrorCode::NO_ERROR),
            Owned::GoAway(1, ErrorCode::NO_ERROR)
        ]
    );
    assert_eq!(client.stream_ids().collect::<Vec<_>>(), vec![1]);
}

fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_header(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out
}

fn status_block(status: u16, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    encode_status(status, &mut block);
    for (n, v) in fields {
        encode_field(n.as_bytes(), v.as_bytes(), &mut block);
    }
    block
}

use crate::hpack::encoder::encode_field;

/// A client with stream 1 open, talking to a scripted server that has sent its SETTINGS.
fn scripted() -> Connection {
    let mut client = Connection::new(Limits::default());
    let mut out = Vec::new();
    client.start(&mut out);
    client
        .open_stream(&get_block(), true, false, &mut out)
        .unwrap();
    let (events, _) = feed(&mut client, &raw(kind::SETTINGS, 0, 0, &[])).unwrap();
    assert!(events.is_empty());
    client
}

#[test]
fn a_malformed_response_fails_its_stream_only() {
    let cases: [(Vec<u8>, &str); 5] = [
        (
            raw(
                kind::HEADERS,
                flag::END_HEADERS,
                1,
                &status_block(200, &[("connection", "close")]),
            ),
            "connection-specific field",
        ),
        (
            raw(
                kind::HEADERS,
                flag::END_HEADERS | flag::END_STREAM,
                1,
                &status_block(101, &[]),
            ),
            "101 Switching Protocols in HTTP/2",
        ),
        (
            raw(
                kind::HEADERS,
                flag::END_HEADERS | flag::END_STREAM,
                1,
                &status_block(200, &[("content-length", "3")]),
            ),
            "content-length with no DATA",
        ),
        (
            [
                raw(
                    kind::HEADERS,
                    flag::END_HEADERS,
                    1,
                    &status_block(200, &[("content-length", "3")]),
                ),
                raw(kind::DATA, flag::END_STREAM, 1, b"toolong"),
            ]
            .concat(),
            "DATA disagrees with content-length",
        ),
        (
            raw(kind::DATA, flag::END_STREAM, 1, b"x"),
            "DATA before the response head",
        ),
    ];
    for (bytes, reason) in cases {
        let mut client = scripted();
        let (events, out) = feed(&mut client, &bytes).unwrap();
        let last = events.last().unwrap();
        assert_eq!(
            *last,
            Owned::Reset(1, ErrorCode::PROTOCOL_ERROR, false, reason),
            "{events:?}"
        );
        assert_eq!(
            out[3],
            kind::RST_STREAM,
            "the stream is reset, not the connection"
        );
        assert!(!client.is_closed());
    }
}

#[test]
fn interim_heads_are_passed_over_and_a_head_response_has_no_body() {
    let mut client = scripted();
    let bytes = [
        raw(
            kind::HEADERS,
            flag::END_HEADERS,
            1,
            &status_block(103, &[("link", "</a>")]),
        ),
        raw(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            1,
            &status_block(204, &[]),
        ),
    ]
    .concat();
    let (events, _) = feed(&mut client, &bytes).unwrap();
    assert_eq!(events, vec![Owned::Response(1, 204, true)]);

    let mut client = Connection::new(Limits::default());
    let mut out = Vec::new();
    client.start(&mut out);
    client
        .open_stream(&get_block(), true, true, &mut out)
        .unwrap();
    let head = [
        raw(kind::SETTINGS, 0, 0, &[]),
        raw(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            1,
            &status_block(200, &[("content-length", "1000")]),
        ),
    ]
    .concat();
    let (events, _) = feed(&mut client, &head).unwrap();
    assert_eq!(events, vec![Owned::Response(1, 200, true)]);
}

#[test]
fn frames_on_a_stream_the_client_reset_are_dropped_and_their_window_comes_back() {
    let mut client = scripted();
    let mut out = Vec::new();
    client.reset(1, ErrorCode::CANCEL, &mut out);
    assert_eq!(out[3], kind::RST_STREAM);
    let late = [
        raw(kind::HEADERS, flag::END_HEADERS, 1, &status_block(200, &[])),
        raw(kind::DATA, 0, 1, &[0u8; 16_000]),
        raw(kind::DATA, 0, 1, &[0u8; 16_000]),
    ]
    .concat();
    let (events, _) = feed(&mut client, &late).unwrap();
    assert!(events.is_empty(), "{events:?}");
    assert!(!client.is_closed());
}

#[test]
fn what_no_server_may_send_ends_the_connection() {
    for (bytes, reason) in [
        (
            raw(kind::PING, 0, 0, &[0; 8]),
            "the server's first frame not SETTINGS",
        ),
        (
            [
                raw(kind::SETTINGS, 0, 0, &[]),
                raw(kind::PUSH_PROMISE, flag::END_HEADERS, 1, &[0, 0, 0, 2]),
            ]
            .concat(),
            "PUSH_PROMISE though push is disabled",
        ),
        (
            [
                raw(kind::SETTINGS, 0, 0, &[]),
                raw(kind::HEADERS, flag::END_HEADERS, 3, &status_block(200, &[])),
            ]
            .concat(),
            "HEADERS on a stream the client did not open",
        ),
    ] {
        let mut client = Connection::new(Limits::default());
        let mut out = Vec::new();
        client.start(&mut out);
        client
            .open_stream(&get_block(), true, false, &mut out)
            .unwrap();
        let error = feed(&mut client, &bytes).unwrap_err();
        if error.reason != reason {
            // PUSH_PROMISE may be refused by the frame parser first; either way it is fatal.
            assert!(reason.starts_with("PUSH_PROMISE"), "{error}");
        }
        assert!(client.is_closed());
        assert_eq!(client.available(), Err(Unavailable::Closed));
    }
}

#[test]
fn a_continuation_flood_from_a_server_is_bounded() {
    let mut client = scripted();
    let mut bytes = raw(kind::HEADERS, 0, 1, &status_block(200, &[]));
    for _ in 0..40 {
        bytes.extend(raw(kind::CONTINUATION, 0, 1, &[]));
    }
    let error = feed(&mut client, &bytes).unwrap_err();
    assert_eq!(error.flood, Some(Flood::Continuations));
}
