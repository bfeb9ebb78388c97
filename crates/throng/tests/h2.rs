//! HTTP/2 at the proxy's front door, end to end: real clients (curl, nghttp, h2load,
//! httpwg-cli) over TLS with ALPN and over h2c, and a scripted client writing frames by hand
//! for what no polite client sends: smuggling through the downgrade, floods.

mod common;

use common::proxy::{Backend, Dir, Proxy};
use common::{wait_until, Pong};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use throng_h2::frame::{self, Frame};
use throng_h2::hpack::decoder::ListLimits;
use throng_h2::hpack::{encode_field, Decoder};
use throng_h2::ErrorCode;

const GLOBAL: &str = "[global]\nthreads = 2\nadmin = \"127.0.0.1:0\"\n";

/// An h2c frontend and a TLS frontend offering h2 and http/1.1, both to `server`.
fn config(server: SocketAddr) -> String {
    format!(
        "{GLOBAL}\n[frontends.web]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\nh2c = true\n\n\
         [frontends.tls]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\
         tls = {{ self_signed = [\"localhost\"], alpn = [\"h2\", \"http/1.1\"] }}\n\n\
         [backends.app]\nservers = [{{ name = \"s1\", address = \"{server}\" }}]\n"
    )
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-k", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl (./test.sh installs it)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn curl_nghttp_and_h2load_speak_h2_through_the_proxy_and_http1_still_works() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("h2-clients");
    let proxy = Proxy::start(&dir, &config(pong.addr()));
    let tls = format!("https://localhost:{}/over-tls", proxy.addr("tls").port());
    let resolve = format!("localhost:{}:127.0.0.1", proxy.addr("tls").port());
    let h2c = format!("http://{}/h2c", proxy.addr("web"));
    // curl -w: the protocol it spoke, then the status; the body after.
    let write = "%{http_version} %{http_code}";
    assert_eq!(
        curl(&[
            "--http2",
            "--resolve",
            &resolve,
            "-o",
            "/dev/null",
            "-w",
            write,
            &tls
        ]),
        "2 200"
    );
    assert_eq!(
        curl(&[
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            write,
            &h2c
        ]),
        "2 200"
    );
    // The same h2c port still serves HTTP/1.1 to a client that does not open with the preface.
    assert_eq!(
        curl(&["--http1.1", "-o", "/dev/null", "-w", write, &h2c]),
        "1.1 200"
    );
    // A TLS client that offers only http/1.1 gets it.
    assert_eq!(
        curl(&[
            "--http1.1",
            "--resolve",
            &resolve,
            "-o",
            "/dev/null",
            "-w",
            write,
            &tls
        ]),
        "1.1 200"
    );
    assert_eq!(curl(&["--http2-prior-knowledge", &h2c]), "pong");
    // A body both ways: 100,000 bytes up (past a stream's window), through pong.
    let upload = dir.write("upload.bin", &"x".repeat(100_000));
    let sent = curl(&[
        "--http2",
        "--resolve",
        &resolve,
        "--data-binary",
        &format!("@{}", upload.display()),
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code} %{size_upload}",
        &tls,
    ]);
    assert_eq!(sent, "2 200 100000");

    let nghttp = Command::new("nghttp")
        .args(["-n", "-s", &h2c, &h2c, &h2c])
        .output()
        .expect("nghttp (nghttp2-client; ./test.sh installs it)");
    assert!(
        nghttp.status.success(),
        "{}",
        String::from_utf8_lossy(&nghttp.stderr)
    );

    // h2load: 10 streams at once on each of 4 connections, over TLS.
    let load = Command::new("h2load")
        .args([
            "-n",
            "1000",
            "-c",
            "4",
            "-m",
            "10",
            &tls.replace("localhost", "127.0.0.1"),
        ])
        .output()
        .expect("h2load (nghttp2-client)");
    let report = String::from_utf8_lossy(&load.stdout);
    assert!(
        report.contains("1000 succeeded, 0 failed, 0 errored"),
        "{report}"
    );
    assert!(report.contains("status codes: 1000 2xx"), "{report}");

    // One log line per stream, saying HTTP/2.0, and the counters by protocol.
    let line = proxy.wait_for_line(&["\"GET /h2c HTTP/2.0\""]);
    assert!(line.contains(" web app/s1 "), "{line}");
    assert!(line.contains(" 200 "), "{line}");
    proxy.wait_for_line(&["\"POST /over-tls HTTP/2.0\""]);
    assert!(proxy
        .wait_for_line(&["\"GET /h2c HTTP/1.1\""])
        .contains(" 200 "));
    let streams = wait_until(|| {
        let n = proxy.metric("throng_proxy_frontend_h2_streams_total{frontend=\"tls\"}");
        (n >= 1002.0).then_some(n)
    });
    assert!(streams.is_some(), "{}", proxy.metrics());
    assert!(proxy.metric("throng_proxy_frontend_h2_connections_total{frontend=\"web\"}") >= 3.0);
}

#[test]
fn every_rfc_9113_case_of_httpwg_passes_through_the_proxy() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("h2-httpwg");
    let proxy = Proxy::start(&dir, &config(pong.addr()));
    let httpwg = std::env::var("THRONG_TEST_HTTPWG").unwrap_or_else(|_| "httpwg".into());
    let out = Command::new(&httpwg)
        .args([
            "-a",
            &proxy.addr("web").to_string(),
            "--frame-timeout",
            "5000",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("{httpwg}: {e}: ./test.sh installs it (cargo install httpwg-cli)")
        });
    let all =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let failed: Vec<&str> = all.lines().filter(|l| l.contains("Test failed")).collect();
    let summary = all
        .lines()
        .rfind(|l| l.contains("tests in"))
        .unwrap_or("no summary");
    assert!(
        out.status.success() && failed.is_empty(),
        "{summary}\n{}",
        failed.join("\n")
    );
    assert!(summary.contains("107/107"), "{summary}");
}

/// A server that records every byte it is sent and answers each head it sees, as a naive
/// HTTP/1.1 server would: what a smuggled request would make of it shows in `heads`.
struct Recorder {
    backend: Backend,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&bytes);
        let backend = Backend::start(move |mut stream| {
            stream
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut buf = [0u8; 65_536];
            let mut answered = 0;
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => seen.lock().unwrap().extend_from_slice(&buf[..n]),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return,
                }
                let heads = count_heads(&seen.lock().unwrap());
                while answered < heads {
                    answered += 1;
                    if stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        Recorder { backend, bytes }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }

    /// What the server has seen once it ends with `tail`, or after 10 s: the recorder answers
    /// on a request's head, so its body may still be on the way when the response is read.
    fn text_ending_with(&self, tail: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text();
            if text.ends_with(tail) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Request lines a naive server would find: lines that end in " HTTP/1.1".
fn count_heads(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes)
        .split("\r\n")
        .filter(|l| l.ends_with(" HTTP/1.1"))
        .count()
}

/// A client that writes frames by hand.
struct RawClient {
    socket: TcpStream,
    read: Vec<u8>,
    decoder: Decoder,
}

/// What came back on a stream.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    status: Option<u16>,
    body: Vec<u8>,
    reset: Option<ErrorCode>,
    goaway: Option<ErrorCode>,
    /// Every GOAWAY: its last stream id and code.
    goaways: Vec<(u32, ErrorCode)>,
    ended: bool,
}

impl RawClient {
    fn connect(addr: SocketAddr) -> RawClient {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut hello = throng_h2::PREFACE.to_vec();
        frame::write_settings(&mut hello, &[]);
        socket.write_all(&hello).unwrap();
        RawClient {
            socket,
            read: Vec::new(),
            decoder: Decoder::new(4096),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        // The proxy may close as soon as it has seen what it refuses.
        let _ = self.socket.write_all(bytes);
    }

    /// Reads until `stream` ends, is reset, or the connection goes away (or 10 s pass).
    fn outcome(&mut self, stream: u32) -> Outcome {
        let mut outcome = Outcome::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 65_536];
        while Instant::now() < deadline {
            while let Ok(Some((f, n))) = frame::parse(&self.read, frame::MAX_MAX_FRAME_SIZE) {
                let mut done = false;
                match f {
                    Frame::Headers {
                        stream: s,
                        block,
                        end_stream,
                        ..
                    } if s == stream => {
                        let limits = ListLimits {
                            max_list_size: 1 << 20,
                            max_fields: 1000,
                        };
                        self.decoder
                            .decode(block, limits, |n, v| {
                                if n == b":status" {
                                    outcome.status =
                                        std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
                                }
                            })
                            .unwrap();
                        done = end_stream;
                    }
                    Frame::Headers { block, .. } => {
                        let limits = ListLimits {
                            max_list_size: 1 << 20,
                            max_fields: 1000,
                        };
                        self.decoder.decode(block, limits, |_, _| {}).unwrap();
                    }
                    Frame::Data {
                        stream: s,
                        data,
                        end_stream,
                        ..
                    } if s == stream => {
                        outcome.body.extend_from_slice(data);
                        done = end_stream;
                    }
                    Frame::RstStream { stream: s, code } if s == stream => {
                        outcome.reset = Some(code);
                        done = true;
                    }
                    Frame::GoAway {
                        last_stream, code, ..
                    } => {
                        outcome.goaways.push((last_stream, code));
                        if code != ErrorCode::NO_ERROR {
                            outcome.goaway = Some(code);
                            done = true;
                        }
                    }
                    Frame::Ping { ack: false, data } => {
                        // A client answers PINGs: the shutdown's second GOAWAY waits for one.
                        let mut pong = Vec::new();
                        frame::write_ping_ack(&mut pong, data);
                        let _ = self.socket.write_all(&pong);
                    }
                    _ => {}
                }
                self.read.drain(..n);
                if done {
                    outcome.ended = true;
                    return outcome;
                }
            }
            match self.socket.read(&mut buf) {
                Ok(0) => return outcome,
                Ok(n) => self.read.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return outcome,
            }
        }
        outcome
    }
}

fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (n, v) in fields {
        encode_field(n.as_bytes(), v.as_bytes(), &mut block);
    }
    block
}

fn headers(stream: u32, fields: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_headers(&mut out, stream, &block(fields), end_stream, 16_384);
    out
}

fn data(stream: u32, bytes: &[u8], end_stream: bool) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_data(&mut out, stream, bytes, end_stream);
    out
}

fn request(method: &'static str, path: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        (":method", method),
        (":scheme", "http"),
        (":authority", "example.com"),
        (":path", path),
    ]
}

#[test]
fn the_downgrade_writes_the_framing_and_a_naive_server_sees_one_request_each() {
    let recorder = Recorder::start();
    let dir = Dir::new("h2-downgrade");
    let proxy = Proxy::start(&dir, &config(recorder.backend.addr));
    let mut client = RawClient::connect(proxy.addr("web"));
    // A body without a length: chunked for the server, each DATA a chunk.
    let mut post = request("POST", "/chunked");
    post.push(("cookie", "a=1"));
    post.push(("cookie", "b=2"));
    client.send(&headers(1, &post, false));
    client.send(&data(1, b"hello ", false));
    client.send(&data(1, b"world", true));
    let got = client.outcome(1);
    assert_eq!(
        (got.status, &got.body[..]),
        (Some(200), &b"ok"[..]),
        "{got:?}"
    );
    // A body with a length: passed as it is.
    let mut put = request("PUT", "/sized");
    put.push(("content-length", "3"));
    client.send(&headers(3, &put, false));
    client.send(&data(3, b"abc", true));
    assert_eq!(client.outcome(3).status, Some(200));
    let seen = recorder.text_ending_with("\r\n\r\nabc");
    let chunked = seen
        .split("POST /chunked HTTP/1.1\r\n")
        .nth(1)
        .expect("the POST reached the server");
    assert!(chunked.contains("cookie: a=1; b=2\r\n"), "{seen}");
    assert!(
        chunked.contains("\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"),
        "{seen}"
    );
    assert!(
        chunked
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{seen}"
    );
    let sized = seen
        .split("PUT /sized HTTP/1.1\r\n")
        .nth(1)
        .expect("the PUT reached the server");
    assert!(
        sized.to_ascii_lowercase().contains("content-length: 3\r\n"),
        "{seen}"
    );
    assert!(sized.ends_with("\r\n\r\nabc"), "{seen}");
    assert_eq!(count_heads(&recorder.bytes.lock().unwrap()), 2, "{seen}");
}

/// HTTP/2's downgrade vectors (H2.CL, H2.TE, CRLF and request-line injection through fields
/// and pseudo-headers, :authority against Host, framing in trailers), each sent to a naive
/// server through the proxy: each is refused on its stream, and no byte of any reaches it.
#[test]
fn downgrade_smuggling_vectors_are_refused_before_the_server() {
    let recorder = Recorder::start();
    let dir = Dir::new("h2-smuggling");
    let proxy = Proxy::start(&dir, &config(recorder.backend.addr));
    type Vector = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        Option<&'static [u8]>,
    );
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut fields = request("POST", "/");
        fields.extend_from_slice(extra);
        fields
    };
    let vectors: Vec<Vector> = vec![
        (
            "H2.TE",
            with(&[("transfer-encoding", "chunked")]),
            Some(b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
        ),
        (
            "H2.CL: a length shorter than the DATA",
            with(&[("content-length", "0")]),
            Some(b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
        ),
        (
            "H2.CL: a length longer than the DATA",
            with(&[("content-length", "100")]),
            Some(b"x"),
        ),
        (
            "CRLF in a value",
            with(&[("x-a", "b\r\nTransfer-Encoding: chunked")]),
            None,
        ),
        ("LF in a value", with(&[("x-a", "b\nx: y")]), None),
        ("NUL in a value", with(&[("x-a", "b\0c")]), None),
        ("a name with a colon", with(&[("x-a:b", "c")]), None),
        ("an uppercase name", with(&[("X-A", "b")]), None),
        (
            "connection-specific field",
            with(&[("connection", "keep-alive")]),
            None,
        ),
        ("upgrade", with(&[("upgrade", "websocket")]), None),
        (
            "host and :authority disagree",
            with(&[("host", "evil.example")]),
            None,
        ),
        (
            "request line in :path",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a"),
                (":path", "/ HTTP/1.1\r\nHost: a\r\n\r\nGET /smuggled"),
            ],
            None,
        ),
        (
            "space in :path",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a"),
                (":path", "/a HTTP/1.1"),
            ],
            None,
        ),
        (
            "space in :method",
            vec![
                (":method", "GET /smuggled"),
                (":scheme", "http"),
                (":authority", "a"),
                (":path", "/"),
            ],
            None,
        ),
        (
            "userinfo in :authority",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a@evil"),
                (":path", "/"),
            ],
            None,
        ),
        (
            "CRLF in :authority",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "a\r\nx: y"),
                (":path", "/"),
            ],
            None,
        ),
    ];
    for (i, (name, fields, body)) in vectors.iter().enumerate() {
        let mut client = RawClient::connect(proxy.addr("web"));
        let id = 1;
        let end = body.is_none() && !fields.iter().any(|f| f.0 == ":method" && f.1 == "POST");
        // The head and its body in one write: the proxy reads the DATA with the HEADERS, so a
        // length the DATA breaks is seen before the server can answer the head (a naive server
        // answers a `Content-Length: 0` head at once, and its response would race the reset).
        let mut frames = headers(id, fields, end);
        if let Some(body) = body {
            frames.extend_from_slice(&data(id, body, true));
        } else if !end {
            frames.extend_from_slice(&data(id, b"", true));
        }
        client.send(&frames);
        let got = client.outcome(id);
        assert!(
            got.reset == Some(ErrorCode::PROTOCOL_ERROR)
                || got.goaway == Some(ErrorCode::PROTOCOL_ERROR),
            "vector {i} ({name}): {got:?}"
        );
    }
    // The vectors that must not reach a server at all did not; those refused mid-body may
    // have sent their head, never a second request.
    let seen = recorder.text();
    assert!(!seen.contains("smuggled"), "{seen}");
    assert!(count_heads(&recorder.bytes.lock().unwrap()) <= 2, "{seen}");
    // Trailers never carry framing: a content-length in a chunked request's trailers is dropped.
    let mut client = RawClient::connect(proxy.addr("web"));
    client.send(&headers(1, &request("POST", "/trailers"), false));
    client.send(&data(1, b"abc", false));
    client.send(&headers(
        1,
        &[("x-checksum", "1"), ("content-length", "999")],
        true,
    ));
    assert_eq!(client.outcome(1).status, Some(200));
    let seen = recorder.text();
    let trailed = seen
        .split("POST /trailers HTTP/1.1\r\n")
        .nth(1)
        .expect("reached the server");
    assert!(
        trailed.ends_with("\r\n\r\n3\r\nabc\r\n0\r\nx-checksum: 1\r\n\r\n"),
        "{seen}"
    );
}

#[test]
fn a_rapid_reset_flood_is_closed_with_enhance_your_calm_and_counted() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("h2-rapid-reset");
    let proxy = Proxy::start(&dir, &config(pong.addr()));
    let mut client = RawClient::connect(proxy.addr("web"));
    let mut attack = Vec::new();
    for i in 0..500u32 {
        let id = 2 * i + 1;
        attack.extend(headers(id, &request("GET", "/"), true));
        frame::write_rst_stream(&mut attack, id, ErrorCode::CANCEL);
    }
    client.send(&attack);
    let got = client.outcome(u32::MAX);
    assert_eq!(got.goaway, Some(ErrorCode::ENHANCE_YOUR_CALM), "{got:?}");
    let counted = wait_until(|| {
        let n = proxy.metric("throng_proxy_frontend_h2_flood_resets_total{frontend=\"web\"}");
        (n == 1.0).then_some(n)
    });
    assert!(counted.is_some(), "{}", proxy.metrics());
    // Other clients are served meanwhile.
    let mut polite = RawClient::connect(proxy.addr("web"));
    polite.send(&headers(1, &request("GET", "/"), true));
    assert_eq!(polite.outcome(1).status, Some(200));
}

#[test]
fn a_reload_sends_two_goaways_and_the_stream_in_flight_finishes() {
    let pong = Pong::start(&["--admin", "127.0.0.1:0"]);
    let dir = Dir::new("h2-reload");
    let proxy = Proxy::start(&dir, &config(pong.addr()));
    let mut client = RawClient::connect(proxy.addr("web"));
    let mut slow = request("GET", "/slow");
    slow.push(("sleep", "1500-1500"));
    client.send(&headers(1, &slow, true));
    // The request is at pong when the reload comes.
    let seen = wait_until(|| {
        let n = pong.metric(&format!(
            "pong_requests_total{{listen=\"{}\"}}",
            pong.addr()
        ));
        (n >= 1.0).then_some(n)
    });
    assert!(seen.is_some(), "the request never reached pong");
    proxy.signal(libc::SIGHUP);
    let got = client.outcome(1);
    assert_eq!(got.status, Some(200), "{got:?}");
    assert!(got.ended && got.reset.is_none(), "{got:?}");
    // RFC 9113 §6.8: first the highest id (no new stream is refused in the meantime), then
    // the last stream the client opened.
    assert_eq!(
        got.goaways,
        vec![
            ((1 << 31) - 1, ErrorCode::NO_ERROR),
            (1, ErrorCode::NO_ERROR)
        ],
        "{got:?}"
    );
    // New connections go to the new generation.
    let mut again = RawClient::connect(proxy.addr("web"));
    again.send(&headers(1, &request("GET", "/after"), true));
    assert_eq!(again.outcome(1).status, Some(200));
    proxy.wait_for_line(&["\"GET /slow HTTP/2.0\"", " 200 "]);
}

#[test]
fn an_idle_connection_gets_goaway_after_timeout_http_keep_alive() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("h2-idle");
    let file = config(pong.addr()).replace(
        "[frontends.web]",
        "[defaults.timeout]\nhttp-keep-alive = \"1s\"\n\n[frontends.web]",
    );
    let proxy = Proxy::start(&dir, &file);
    let mut client = RawClient::connect(proxy.addr("web"));
    client.send(&headers(1, &request("GET", "/"), true));
    assert_eq!(client.outcome(1).status, Some(200));
    // PINGs answered meanwhile do not keep a connection that serves nothing open.
    let started = Instant::now();
    let mut ping = Vec::new();
    frame::write_header(&mut ping, 8, 0x6, 0, 0);
    ping.extend_from_slice(b"still up");
    client.send(&ping);
    let got = client.outcome(u32::MAX);
    assert_eq!(got.goaways, vec![(1, ErrorCode::NO_ERROR)], "{got:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "closed at the timeout, not at the client's"
    );
}

/// Python's hyperframe and hpack (Debian's python3-h2; ./test.sh installs it), from
/// `tests/h2_adversary.py`: each flood it knows against the h2c bind, and how the proxy ended it.
fn adversary(addr: SocketAddr, flood: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2_adversary.py");
    let out = Command::new("/usr/bin/python3")
        .args([
            script,
            &addr.ip().to_string(),
            &addr.port().to_string(),
            flood,
        ])
        .output()
        .expect("/usr/bin/python3 (./test.sh installs python3-h2)");
    assert!(
        out.status.success(),
        "h2_adversary.py {flood}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Each flood of RFC 9113's §10.5 and the CVEs since (Rapid Reset, MadeYouReset, CONTINUATION)
/// from a scripted adversary: the connection ends in GOAWAY(ENHANCE_YOUR_CALM), the flood's own
/// counter says which it was, and a polite client is served on the same frontend afterwards.
#[test]
fn each_flood_from_a_scripted_adversary_is_closed_named_and_counted() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("h2-floods");
    let proxy = Proxy::start(&dir, &config(pong.addr()));
    let floods = [
        ("rapid_reset", "resets"),
        ("made_you_reset", "resets"),
        ("settings", "settings"),
        ("pings", "pings"),
        ("priority", "ignored_frames"),
        ("window_updates", "window_updates"),
        ("empty_data", "empty_data"),
        ("continuations", "continuations"),
        ("header_block", "header_block"),
    ];
    let counter = |name: &str| {
        proxy.metric(&format!(
            "throng_proxy_frontend_h2_flood_{name}_total{{frontend=\"web\"}}"
        ))
    };
    for (flood, name) in floods {
        let before = counter(name);
        let said = adversary(proxy.addr("web"), flood);
        // ENHANCE_YOUR_CALM is 0xb.
        assert!(said.contains("\"goaway\": 11"), "{flood}: {said}");
        let counted = wait_until(|| (counter(name) == before + 1.0).then_some(()));
        assert!(counted.is_some(), "{flood}: {}", proxy.metrics());
        let mut polite = RawClient::connect(proxy.addr("web"));
        polite.send(&headers(1, &request("GET", "/"), true));
        assert_eq!(polite.outcome(1).status, Some(200), "after {flood}");
    }
}

/// A client that never opens its window (slow read, §10.5): the stream's response waits within
/// the 64 KiB an exchange may write ahead, `timeout client` ends it with a reset and a log line,
/// and the connection's other streams and the server's connection are not held by it.
#[test]
fn a_client_that_never_opens_its_window_is_cut_at_timeout_client() {
    let big = big_server();
    let dir = Dir::new("h2-slow-read");
    let file = config(big.addr).replace(
        "[frontends.web]",
        "[defaults.timeout]\nclient = \"1s\"\n\n[frontends.web]",
    );
    let proxy = Proxy::start(&dir, &file);
    let mut client = RawClient::connect(proxy.addr("web"));
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: no stream may be sent a byte until a WINDOW_UPDATE.
    let mut closed = Vec::new();
    frame::write_settings(&mut closed, &[(0x4, 0)]);
    client.send(&closed);
    client.send(&headers(1, &request("GET", "/big"), true));
    let got = client.outcome(1);
    assert_eq!(got.status, Some(200), "{got:?}");
    assert!(got.body.is_empty(), "no byte past the window: {got:?}");
    assert!(got.reset.is_some(), "the stream is cut: {got:?}");
    assert!(got.goaway.is_none(), "the connection goes on: {got:?}");
    // The log line says the client stopped it in the body (CD).
    proxy.wait_for_line(&["\"GET /big HTTP/2.0\"", " 200 ", " CD"]);
    client.send(&headers(3, &request("GET", "/big"), true));
    assert_eq!(
        client.outcome(3).status,
        Some(200),
        "another stream is served"
    );
}

/// A server whose every response has a 1,000,000-byte body.
fn big_server() -> Backend {
    static BODY: [u8; 1_000_000] = [b'x'; 1_000_000];
    Backend::start(|mut stream| {
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
        let _ = stream.write_all(&BODY);
    })
}

/// The memory budget counts streams as well as connections: past it, a connection held already
/// may not open more, each refused with REFUSED_STREAM (not processed: safe to send again),
/// while the streams in flight go on.
#[test]
fn past_the_memory_budget_new_streams_are_refused_and_those_in_flight_go_on() {
    let big = big_server();
    let dir = Dir::new("h2-budget");
    // About 22 MiB at the start here, and 64 KiB more for each stream whose response waits
    // for a window: 1,080 such streams take it well past 48 MiB. Each connection opens 90,
    // within its 100 concurrent streams, so the refusal below is the budget's.
    let file = config(big.addr).replace(
        "[frontends.web]",
        "memory_budget = \"48MiB\"\n\n[frontends.web]",
    );
    let proxy = Proxy::start(&dir, &file);
    let mut clients: Vec<RawClient> = (0..12)
        .map(|_| RawClient::connect(proxy.addr("web")))
        .collect();
    let mut no_window = Vec::new();
    frame::write_settings(&mut no_window, &[(0x4, 0)]);
    for client in &mut clients {
        let mut streams = no_window.clone();
        for i in 0..90u32 {
            streams.extend(headers(2 * i + 1, &request("GET", "/big"), true));
        }
        client.send(&streams);
    }
    let over =
        wait_until(|| (proxy.metric("throng_proxy_over_memory_budget") == 1.0).then_some(()));
    assert!(over.is_some(), "never over the budget: {}", proxy.metrics());
    proxy.wait_for_message("is over global.memory_budget 48 MiB");
    let refusals = "throng_proxy_frontend_h2_stream_refusals_total{frontend=\"web\"}";
    let before = proxy.metric(refusals);
    clients[1].send(&headers(201, &request("GET", "/big"), true));
    let refused = clients[1].outcome(201);
    assert_eq!(
        refused.reset,
        Some(ErrorCode::REFUSED_STREAM),
        "{refused:?}"
    );
    assert_eq!(refused.status, None, "{refused:?}");
    assert_eq!(proxy.metric(refusals), before + 1.0);
    // A stream in flight gets its whole body once the client opens its windows.
    let mut open = Vec::new();
    frame::write_window_update(&mut open, 0, 1_000_000);
    frame::write_window_update(&mut open, 1, 1_000_000);
    clients[0].send(&open);
    let whole = clients[0].outcome(1);
    assert_eq!(whole.status, Some(200));
    assert_eq!(whole.body.len(), 1_000_000, "ended: {}", whole.ended);
}

/// A server that answers badly gets a 502 on that stream only: the connection's other streams,
/// before and after it, are served.
#[test]
fn a_bad_server_answer_is_a_502_on_its_stream_only() {
    let server = Backend::start(|mut stream| {
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let answer: &[u8] = if seen.starts_with(b"GET /bad ") {
                // Two lengths that disagree: no way to tell where the body ends.
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            };
            seen.drain(..end + 4);
            if stream.write_all(answer).is_err() {
                return;
            }
        }
    });
    let dir = Dir::new("h2-bad-server");
    let proxy = Proxy::start(&dir, &config(server.addr));
    let mut client = RawClient::connect(proxy.addr("web"));
    client.send(&headers(1, &request("GET", "/good"), true));
    assert_eq!(client.outcome(1).status, Some(200));
    client.send(&headers(3, &request("GET", "/bad"), true));
    let bad = client.outcome(3);
    assert_eq!(bad.status, Some(502), "{bad:?}");
    assert!(bad.goaway.is_none(), "{bad:?}");
    client.send(&headers(5, &request("GET", "/good"), true));
    let after = client.outcome(5);
    assert_eq!((after.status, &after.body[..]), (Some(200), &b"ok"[..]));
    proxy.wait_for_line(&["\"GET /bad HTTP/2.0\"", " 502 "]);
}

/// `[frontends.NAME.h2]` sets a connection's limits: two streams at once here, so a third,
/// while the two wait on a window, is refused with REFUSED_STREAM and counted.
#[test]
fn the_h2_table_sets_the_limits_a_connection_is_held_to() {
    let big = big_server();
    let dir = Dir::new("h2-limits");
    let file = config(big.addr).replace(
        "[frontends.tls]",
        "[frontends.web.h2]\nmax_concurrent_streams = 2\n\n[frontends.tls]",
    );
    let proxy = Proxy::start(&dir, &file);
    let mut client = RawClient::connect(proxy.addr("web"));
    let mut streams = Vec::new();
    frame::write_settings(&mut streams, &[(0x4, 0)]);
    streams.extend(headers(1, &request("GET", "/big"), true));
    streams.extend(headers(3, &request("GET", "/big"), true));
    streams.extend(headers(5, &request("GET", "/big"), true));
    client.send(&streams);
    let third = client.outcome(5);
    assert_eq!(third.reset, Some(ErrorCode::REFUSED_STREAM), "{third:?}");
    let refusals = "throng_proxy_frontend_h2_stream_refusals_total{frontend=\"web\"}";
    assert_eq!(proxy.metric(refusals), 1.0);
}

/// An HTTP/1.1 server's chunked trailers reach an h2 client as the stream's trailers (what gRPC
/// puts its status in): a HEADERS frame after the DATA, with END_STREAM, names lowercased, and
/// nothing that would frame a message (`content-length` in a trailer is dropped).
#[test]
fn chunked_trailers_from_an_http1_server_go_on_as_h2_trailers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\
                  Connection: close\r\n\r\n4\r\npong\r\n0\r\nGrpc-Status: 0\r\n\
                  Content-Length: 99\r\nx-sum: abc\r\n\r\n",
            );
        }
    });
    let dir = Dir::new("h2-trailers");
    let proxy = Proxy::start(&dir, &config(server));
    let out = Command::new("nghttp")
        .args(["-nv"])
        .arg(format!("http://{}/", proxy.addr("web")))
        .output()
        .expect("nghttp (./test.sh installs nghttp2-client)");
    assert!(out.status.success(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stdout);
    let data = log
        .find("recv DATA frame <length=4, flags=0x00")
        .unwrap_or_else(|| panic!("the body's DATA does not end the stream: {log}"));
    // nghttp prints a HEADERS frame's fields, then the frame.
    let trailers = &log[data..];
    let frame = trailers
        .find("recv HEADERS frame <length=")
        .unwrap_or_else(|| panic!("no trailers: {log}"));
    assert!(
        trailers[frame..].contains("END_STREAM | END_HEADERS"),
        "the trailers end the stream: {log}"
    );
    assert!(trailers.contains("grpc-status: 0"), "{log}");
    assert!(trailers.contains("x-sum: abc"), "{log}");
    assert!(!trailers.contains("content-length: 99"), "{log}");
}
