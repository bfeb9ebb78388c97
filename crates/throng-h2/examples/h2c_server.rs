//! The codec alone behind a socket, for conformance suites (httpwg-cli) and by-hand tests:
//! an h2c server (prior knowledge) that answers every request 200 with a small body once its
//! request has ended, a thread per connection. Not the proxy: `throng proxy` is.
//!
//!     cargo run -p throng-h2 --example h2c_server -- 127.0.0.1:8080

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};
use throng_h2::server::{Connection, Event, Limits, Step};

fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok().map(|p| format!("127.0.0.1:{p}")))
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(&address)?;
    eprintln!("h2c_server: listening on {address}");
    for socket in listener.incoming() {
        let socket = socket?;
        std::thread::spawn(move || serve(socket));
    }
    Ok(())
}

pub fn serve(mut socket: TcpStream) {
    let _ = socket.set_read_timeout(Some(Duration::from_secs(30)));
    let mut conn = Connection::new(Limits::default());
    let mut out = Vec::new();
    conn.start(&mut out);
    let mut input = Vec::new();
    let mut read = vec![0u8; 65_536];
    // Streams whose request ended, waiting to be answered (their window may be closed).
    let mut pending: Vec<(u32, &[u8])> = Vec::new();
    loop {
        if socket.write_all(&out).is_err() {
            return;
        }
        out.clear();
        if conn.is_closed() || conn.is_drained() {
            return;
        }
        let n = match socket.read(&mut read) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        input.extend_from_slice(&read[..n]);
        let mut at = 0;
        loop {
            match conn.next(&input[at..], &mut out, Instant::now()) {
                Err(e) => {
                    eprintln!("h2c_server: {e}");
                    let _ = socket.write_all(&out);
                    return;
                }
                Ok(Step::More) => break,
                Ok(Step::Frame { consumed, event }) => {
                    at += consumed;
                    match event {
                        Some(Event::Request {
                            stream,
                            end_stream: true,
                            ..
                        }) => pending.push((stream, b"hello from throng-h2\n")),
                        Some(Event::Data {
                            stream,
                            data,
                            end_stream,
                        }) => {
                            conn.release(stream, data.len() as u32, &mut out);
                            if end_stream {
                                pending.push((stream, b"got it\n"));
                            }
                        }
                        Some(Event::Trailers { stream, .. }) => pending.push((stream, b"got it\n")),
                        Some(Event::TooLarge { stream }) => {
                            conn.send_head(stream, 431, [], true, &mut out);
                        }
                        _ => {}
                    }
                }
            }
        }
        input.drain(..at);
        pending.retain_mut(|(stream, body)| {
            if !conn.stream_ids().any(|id| id == *stream) {
                return false;
            }
            conn.send_head(
                *stream,
                200,
                [(&b"content-type"[..], &b"text/plain"[..])],
                false,
                &mut out,
            );
            let sent = conn.send_data(*stream, body, true, &mut out);
            *body = &body[sent..];
            !body.is_empty()
        });
    }
}
