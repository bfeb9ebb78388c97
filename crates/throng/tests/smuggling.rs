//! Request smuggling, end to end: a table of vectors (CL.TE, TE.CL, TE.TE obfuscations, framing
//! fields named in `Connection`, duplicate and signed lengths, chunk-size and extension tricks,
//! line-ending tricks, HTTP/1.0, and responses with ambiguous framing) sent through a running
//! proxy to backends that record every request they parse. Two naive backends stand behind it:
//! one that frames by `Content-Length` first, one by `Transfer-Encoding` first, as the servers
//! that smuggling attacks have always relied on. No vector may reach either as a request of its
//! own: each carries its hidden request for `/smuggledNN`, and no backend may ever see that path.
//!
//! `cargo test --test smuggling -- --ignored` runs the same table through HAProxy (Debian's, if
//! installed) and prints both side by side: `docs/smuggling.md` keeps that table.

mod common;

use common::proxy::{Dir, Proxy};
use common::wait_until;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a vector's client waits for more bytes before it calls the exchange over.
const QUIET: Duration = Duration::from_secs(3);

/// A request vector: the bytes a client sends, and the status throng must answer first with.
struct Vector {
    name: &'static str,
    bytes: Vec<u8>,
    throng: u16,
}

fn smuggled(n: usize) -> String {
    format!("GET /smuggled{n:02} HTTP/1.1\r\nHost: internal\r\n\r\n")
}

/// A request head for `/vNN` with `fields` (each ending in CRLF), then `body`.
fn post(n: usize, version: &str, fields: &str, body: &str) -> Vec<u8> {
    format!("POST /v{n:02} HTTP/{version}\r\nHost: x\r\n{fields}\r\n{body}").into_bytes()
}

fn hex(len: usize) -> String {
    format!("{len:x}")
}

/// Every request vector, numbered from 1 (the number is in its paths).
fn request_vectors() -> Vec<Vector> {
    type Make = fn(usize, String) -> (Vec<u8>, u16);
    let table: Vec<(&'static str, Make)> = vec![
        (
            "CL.TE: length covers a chunked end and a request",
            |n, s| {
                let body = format!("0\r\n\r\n{s}");
                (
                    post(
                        n,
                        "1.1",
                        &format!(
                            "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                            body.len()
                        ),
                        &body,
                    ),
                    400,
                )
            },
        ),
        ("TE.CL: a chunk holds a request, length 4", |n, s| {
            let body = format!("{}\r\n{s}\r\n0\r\n\r\n", hex(s.len()));
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                    &body,
                ),
                400,
            )
        }),
        ("TE.TE: `xchunked` beside a length", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    &format!(
                        "Transfer-Encoding: xchunked\r\nContent-Length: {}\r\n",
                        s.len()
                    ),
                    &s,
                ),
                400,
            )
        }),
        ("TE.TE: space before the colon", |n, s| {
            let body = format!("0\r\n\r\n{s}");
            (
                post(
                    n,
                    "1.1",
                    &format!(
                        "Transfer-Encoding : chunked\r\nContent-Length: {}\r\n",
                        body.len()
                    ),
                    &body,
                ),
                400,
            )
        }),
        ("TE.TE: a second, bogus Transfer-Encoding", |n, s| {
            let body = format!("0\r\n\r\n{s}");
            (post(n, "1.1", &format!("Transfer-Encoding: chunked\r\nTransfer-encoding: cow\r\nContent-Length: {}\r\n", body.len()), &body), 400)
        }),
        ("TE.TE: tab before chunked, beside a length", |n, s| {
            let body = format!("0\r\n\r\n{s}");
            (
                post(
                    n,
                    "1.1",
                    &format!(
                        "Transfer-Encoding:\tchunked\r\nContent-Length: {}\r\n",
                        body.len()
                    ),
                    &body,
                ),
                400,
            )
        }),
        ("TE.TE: vertical tab before chunked", |n, s| {
            let body = format!("0\r\n\r\n{s}");
            (
                post(
                    n,
                    "1.1",
                    &format!(
                        "Transfer-Encoding: \x0bchunked\r\nContent-Length: {}\r\n",
                        body.len()
                    ),
                    &body,
                ),
                400,
            )
        }),
        ("TE.TE: Transfer-Encoding after a bare LF", |n, s| {
            let body = format!("0\r\n\r\n{s}");
            (
                post(
                    n,
                    "1.1",
                    &format!(
                        "X: y\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n",
                        body.len()
                    ),
                    &body,
                ),
                400,
            )
        }),
        ("TE.TE: chunked on a folded line (obs-fold)", |n, s| {
            let body = format!("0\r\n\r\n{s}");
            (
                post(
                    n,
                    "1.1",
                    &format!(
                        "Transfer-Encoding:\r\n chunked\r\nContent-Length: {}\r\n",
                        body.len()
                    ),
                    &body,
                ),
                400,
            )
        }),
        ("TE: chunked, identity (chunked not final)", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked, identity\r\n",
                    &format!("0\r\n\r\n{s}"),
                ),
                400,
            )
        }),
        ("TE: identity, chunked (another coding)", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: identity, chunked\r\n",
                    &format!("0\r\n\r\n{s}"),
                ),
                501,
            )
        }),
        ("TE: chunked, chunked", |n, s| {
            let chunk = format!("{}\r\n{s}\r\n0\r\n\r\n", hex(s.len()));
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked, chunked\r\n",
                    &format!("{chunk}0\r\n\r\n"),
                ),
                400,
            )
        }),
        ("Connection: content-length (the issue's vector)", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    &format!(
                        "Content-Length: {}\r\nConnection: content-length\r\n",
                        s.len()
                    ),
                    &s,
                ),
                400,
            )
        }),
        ("Connection: close, Content-Length", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    &format!(
                        "Content-Length: {}\r\nConnection: close, Content-Length\r\n",
                        s.len()
                    ),
                    &s,
                ),
                400,
            )
        }),
        ("Connection: transfer-encoding", |n, s| {
            let body = format!("{}\r\n{s}\r\n0\r\n\r\n", hex(s.len()));
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n",
                    &body,
                ),
                400,
            )
        }),
        ("Connection: host", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    &format!("Content-Length: {}\r\nConnection: host\r\n", s.len()),
                    &s,
                ),
                400,
            )
        }),
        ("two lengths: 0, then the request's", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    &format!("Content-Length: 0\r\nContent-Length: {}\r\n", s.len()),
                    &s,
                ),
                400,
            )
        }),
        ("two lengths in one list", |n, s| {
            (
                post(n, "1.1", &format!("Content-Length: 0, {}\r\n", s.len()), &s),
                400,
            )
        }),
        ("signed length", |n, s| {
            (
                post(n, "1.1", &format!("Content-Length: +{}\r\n", s.len()), &s),
                400,
            )
        }),
        ("hexadecimal length", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    &format!("Content-Length: 0x{:x}\r\n", s.len()),
                    &s,
                ),
                400,
            )
        }),
        ("length past 2^64", |n, s| {
            (
                post(n, "1.1", "Content-Length: 18446744073709551617\r\n", &s),
                400,
            )
        }),
        (
            "length with leading zeros (a number: body carried whole)",
            |n, s| {
                (
                    post(n, "1.1", &format!("Content-Length: 000{}\r\n", s.len()), &s),
                    200,
                )
            },
        ),
        (
            "length and a body holding a request (carried whole)",
            |n, s| {
                (
                    post(n, "1.1", &format!("Content-Length: {}\r\n", s.len()), &s),
                    200,
                )
            },
        ),
        ("chunk holding a request (carried whole)", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked\r\n",
                    &format!("{}\r\n{s}\r\n0\r\n\r\n", hex(s.len())),
                ),
                200,
            )
        }),
        ("chunk size with junk after it", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked\r\n",
                    &format!("1 x\r\nA\r\n0\r\n\r\n{s}"),
                ),
                400,
            )
        }),
        ("chunk size past 2^64", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked\r\n",
                    &format!("1ffffffffffffffff\r\n{s}\r\n0\r\n\r\n"),
                ),
                400,
            )
        }),
        ("negative chunk size", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked\r\n",
                    &format!("-1\r\n{s}\r\n0\r\n\r\n"),
                ),
                400,
            )
        }),
        ("chunk extension ended by a bare LF", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked\r\n",
                    &format!("1;a\nA\r\n0\r\n\r\n{s}"),
                ),
                400,
            )
        }),
        ("chunk extension of 5,000 bytes", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked\r\n",
                    &format!("1;{}\r\nA\r\n0\r\n\r\n{s}", "a".repeat(5000)),
                ),
                400,
            )
        }),
        ("chunk data longer than its size", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked\r\n",
                    &format!("1\r\nAB\r\n0\r\n\r\n{s}"),
                ),
                400,
            )
        }),
        ("last chunk ended by bare LFs", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked\r\n",
                    &format!("0\n\n{s}"),
                ),
                400,
            )
        }),
        ("trailer ended by a bare LF", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    "Transfer-Encoding: chunked\r\n",
                    &format!("0\r\nX: y\n\r\n{s}"),
                ),
                400,
            )
        }),
        ("HTTP/1.0 with Transfer-Encoding", |n, s| {
            (
                post(
                    n,
                    "1.0",
                    "Transfer-Encoding: chunked\r\n",
                    &format!("0\r\n\r\n{s}"),
                ),
                400,
            )
        }),
        ("HTTP/1.0 with length and Transfer-Encoding", |n, s| {
            let body = format!("0\r\n\r\n{s}");
            (
                post(
                    n,
                    "1.0",
                    &format!(
                        "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                        body.len()
                    ),
                    &body,
                ),
                400,
            )
        }),
        ("bare LF line ends throughout", |n, s| {
            (
                format!("POST /v{n:02} HTTP/1.1\nHost: x\nContent-Length: 0\n\n{s}").into_bytes(),
                400,
            )
        }),
        ("NUL in a field value", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    &format!("X: a\0b\r\nContent-Length: {}\r\n", s.len()),
                    &s,
                ),
                400,
            )
        }),
        ("two Host fields", |n, s| {
            (
                post(
                    n,
                    "1.1",
                    &format!("Host: internal\r\nContent-Length: {}\r\n", s.len()),
                    &s,
                ),
                400,
            )
        }),
    ];
    table
        .into_iter()
        .enumerate()
        .map(|(i, (name, make))| {
            let n = i + 1;
            let (bytes, throng) = make(n, smuggled(n));
            Vector {
                name,
                bytes,
                throng,
            }
        })
        .collect()
}

/// A response vector: what a server answers `/rNN` with, and what throng's client must get.
struct ResponseVector {
    name: &'static str,
    response: &'static [u8],
    throng: u16,
}

fn response_vectors() -> Vec<ResponseVector> {
    vec![
        ResponseVector {
            name: "response with both Content-Length and Transfer-Encoding",
            response: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
            throng: 502,
        },
        ResponseVector {
            name: "response whose Connection names Content-Length",
            response: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: content-length\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
            throng: 502,
        },
        ResponseVector {
            name: "response with two different lengths",
            response: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 0\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
            throng: 502,
        },
        ResponseVector {
            name: "response head with bare LF line ends",
            response: b"HTTP/1.1 200 OK\nContent-Length: 2\n\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
            throng: 502,
        },
        ResponseVector {
            name: "response with chunked twice",
            response: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
            throng: 502,
        },
        ResponseVector {
            name: "a second response after a length-framed one",
            response: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
            throng: 200,
        },
        ResponseVector {
            name: "101 to a request that asked for no upgrade",
            response: b"HTTP/1.1 101 Switching Protocols\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
            throng: 502,
        },
        ResponseVector {
            name: "a second response after a chunked one",
            response: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled",
            throng: 200,
        },
    ]
}

/// Which field a naive backend frames a body by when a request has both.
#[derive(Clone, Copy, PartialEq)]
enum Prefers {
    ContentLength,
    TransferEncoding,
}

/// A backend that parses requests leniently (bare LF line ends, the first framing field it
/// prefers) and records the path of every one; `scripted` answers `/rNN` with response vector
/// NN, anything else with a clean 200.
struct Recorder {
    addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start(prefers: Prefers, scripted: bool) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&paths);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || serve(stream, prefers, scripted, &seen));
            }
        });
        Recorder { addr, paths }
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

/// One backend connection: requests until it closes or a parse fails (bounded by a timeout).
fn serve(stream: TcpStream, prefers: Prefers, scripted: bool, seen: &Mutex<Vec<String>>) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for _ in 0..64 {
        let Some((path, fields)) = naive_head(&mut reader) else {
            return;
        };
        seen.lock().unwrap().push(path.clone());
        let field = |name: &str| {
            fields
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let length = field("content-length").map(|v| {
            v.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<usize>()
                .unwrap_or(0)
        });
        let chunked =
            field("transfer-encoding").is_some_and(|v| v.to_lowercase().contains("chunked"));
        let read_body = match (prefers, length, chunked) {
            (Prefers::ContentLength, Some(n), _) | (Prefers::TransferEncoding, Some(n), false) => {
                let mut body = vec![0u8; n.min(1 << 20)];
                reader.read_exact(&mut body).is_ok()
            }
            (_, _, true) => naive_chunked(&mut reader),
            (_, None, false) => true,
        };
        if !read_body {
            return;
        }
        let answer = match path
            .strip_prefix("/r")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if scripted => response_vectors().get(n - 1).map_or(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
                |v| v.response.to_vec(),
            ),
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean".to_vec(),
        };
        if writer.write_all(&answer).is_err() {
            return;
        }
    }
}

/// A request line and fields, lines ended by LF with or without CR.
fn naive_head(reader: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut fields = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Some((path, fields));
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
}

/// Reads a chunked body as lenient servers do: size up to `;` or space, lines by LF.
fn naive_chunked(reader: &mut impl BufRead) -> bool {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        let size = line.trim().split([';', ' ']).next().unwrap_or("");
        let Ok(size) = usize::from_str_radix(size, 16) else {
            return false;
        };
        if size == 0 {
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer).unwrap_or(0) == 0 {
                    return false;
                }
                if trailer.trim().is_empty() {
                    return true;
                }
            }
        }
        let mut data = vec![0u8; size.min(1 << 20)];
        let mut end = String::new();
        if reader.read_exact(&mut data).is_err() || reader.read_line(&mut end).is_err() {
            return false;
        }
    }
}

/// Sends `bytes` then a closing request, and reads what comes back until the proxy closes or
/// is quiet for [`QUIET`]; returns the statuses of the responses, in order.
fn exchange(addr: SocketAddr, bytes: &[u8], n: usize) -> Vec<u16> {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return Vec::new();
    };
    stream.set_read_timeout(Some(QUIET)).unwrap();
    let closing = format!("GET /end{n:02} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(bytes);
    let _ = stream.write_all(closing.as_bytes());
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(got) = stream.read(&mut buf) {
        if got == 0 {
            break;
        }
        all.extend_from_slice(&buf[..got]);
    }
    let _ = stream.shutdown(Shutdown::Both);
    statuses(&String::from_utf8_lossy(&all))
}

fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.")
        .filter(|(at, _)| {
            *at == 0 || text[..*at].ends_with('\n') || text[..*at].ends_with("</html>\n")
        })
        .filter_map(|(at, _)| text[at..].split(' ').nth(1)?.parse().ok())
        .collect()
}

/// What one vector did through one proxy, in front of one kind of backend.
struct Outcome {
    first_status: Option<u16>,
    smuggled: bool,
}

/// Frontend addresses of a proxy under test: one per naive backend, and one in front of the
/// scripted backend; the guard keeps the proxy running.
struct UnderTest {
    content_length_first: SocketAddr,
    transfer_encoding_first: SocketAddr,
    scripted: SocketAddr,
    _guard: Box<dyn std::any::Any>,
}

struct Backends {
    cl: Recorder,
    te: Recorder,
    scripted: Recorder,
}

impl Backends {
    fn start() -> Backends {
        Backends {
            cl: Recorder::start(Prefers::ContentLength, false),
            te: Recorder::start(Prefers::TransferEncoding, false),
            scripted: Recorder::start(Prefers::ContentLength, true),
        }
    }
}

fn throng_proxy(dir: &Dir, backends: &Backends) -> UnderTest {
    // One thread: a reused server connection is the one the last request left (the pool is
    // per thread).
    let config = format!(
        "[global]\nthreads = 1\n\n\
         [frontends.cl]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"cl\"\n\
         [frontends.te]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"te\"\n\
         [frontends.scripted]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"scripted\"\n\n\
         [backends.cl]\nservers = [{{ name = \"cl\", address = \"{}\" }}]\n\
         [backends.te]\nservers = [{{ name = \"te\", address = \"{}\" }}]\n\
         [backends.scripted]\nservers = [{{ name = \"scripted\", address = \"{}\" }}]\n",
        backends.cl.addr, backends.te.addr, backends.scripted.addr
    );
    let proxy = Proxy::start(dir, &config);
    UnderTest {
        content_length_first: proxy.addr("cl"),
        transfer_encoding_first: proxy.addr("te"),
        scripted: proxy.addr("scripted"),
        _guard: Box::new(proxy),
    }
}

/// Runs every request vector through both naive backends at once; outcomes by vector, for the
/// content-length-first and transfer-encoding-first backend.
fn run_requests(under: &UnderTest, backends: &Backends) -> Vec<(Outcome, Outcome)> {
    let vectors = request_vectors();
    let (cl_first, te_first) = (under.content_length_first, under.transfer_encoding_first);
    let statuses: Vec<(Vec<u16>, Vec<u16>)> = std::thread::scope(|scope| {
        let running: Vec<_> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                scope.spawn(move || {
                    (
                        exchange(cl_first, &v.bytes, i + 1),
                        exchange(te_first, &v.bytes, i + 1),
                    )
                })
            })
            .collect();
        running.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let (cl_paths, te_paths) = (backends.cl.paths(), backends.te.paths());
    let smuggled = |paths: &[String], n: usize| {
        paths
            .iter()
            .any(|p| p.starts_with(&format!("/smuggled{n:02}")))
    };
    statuses
        .into_iter()
        .enumerate()
        .map(|(i, (cl, te))| {
            (
                Outcome {
                    first_status: cl.first().copied(),
                    smuggled: smuggled(&cl_paths, i + 1),
                },
                Outcome {
                    first_status: te.first().copied(),
                    smuggled: smuggled(&te_paths, i + 1),
                },
            )
        })
        .collect()
}

/// Runs each response vector, then a clean request: whether its answer was the smuggled one.
fn run_responses(under: &UnderTest) -> Vec<Outcome> {
    response_vectors()
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let n = i + 1;
            let request = format!("GET /r{n:02} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let first = exchange_alone(under.scripted, request.as_bytes());
            let after = exchange_alone(
                under.scripted,
                b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            Outcome {
                first_status: statuses(&first).first().copied(),
                smuggled: after.contains("smuggled") || first.matches("HTTP/1.1").count() > 1,
            }
        })
        .collect()
}

/// Sends one request and reads to close (or quiet).
fn exchange_alone(addr: SocketAddr, request: &[u8]) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return String::new();
    };
    stream.set_read_timeout(Some(QUIET)).unwrap();
    let _ = stream.write_all(request);
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn no_vector_smuggles_a_request_past_throng_proxy() {
    let dir = Dir::new("smuggling");
    let backends = Backends::start();
    let under = throng_proxy(&dir, &backends);
    let vectors = request_vectors();
    assert!(
        vectors.len() >= 30,
        "the table keeps at least 30 request vectors"
    );
    let outcomes = run_requests(&under, &backends);
    let mut wrong = Vec::new();
    for (v, (cl, te)) in vectors.iter().zip(&outcomes) {
        for (backend, outcome) in [("CL-first", cl), ("TE-first", te)] {
            if outcome.smuggled || outcome.first_status != Some(v.throng) {
                wrong.push(format!(
                    "{}: through to a {backend} backend: status {:?} (want {}), smuggled: {}",
                    v.name, outcome.first_status, v.throng, outcome.smuggled
                ));
            }
        }
    }
    for (v, outcome) in response_vectors().iter().zip(run_responses(&under)) {
        if outcome.smuggled || outcome.first_status != Some(v.throng) {
            wrong.push(format!(
                "{}: status {:?} (want {}), smuggled: {}",
                v.name, outcome.first_status, v.throng, outcome.smuggled
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Nothing hidden ever reached a backend, whatever the vector.
    for paths in [
        backends.cl.paths(),
        backends.te.paths(),
        backends.scripted.paths(),
    ] {
        assert!(
            paths.iter().all(|p| !p.contains("smuggled")),
            "a backend parsed a hidden request: {paths:?}"
        );
    }
}

/// HAProxy in front of the same backends, for the side-by-side table.
fn haproxy(dir: &Dir, backends: &Backends) -> Option<UnderTest> {
    let ports: Vec<SocketAddr> = (0..3).map(|_| common::free_addr()).collect();
    let config = format!(
        "global\n  maxconn 1000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 5s\n  timeout server 5s\n\
         frontend cl\n  bind {}\n  default_backend cl\n\
         frontend te\n  bind {}\n  default_backend te\n\
         frontend scripted\n  bind {}\n  default_backend scripted\n\
         backend cl\n  server cl {}\n\
         backend te\n  server te {}\n\
         backend scripted\n  http-reuse always\n  server scripted {}\n",
        ports[0], ports[1], ports[2], backends.cl.addr, backends.te.addr, backends.scripted.addr
    );
    let path = dir.write("haproxy.cfg", &config);
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(child);
    wait_until(|| {
        ports
            .iter()
            .all(|p| TcpStream::connect(p).is_ok())
            .then_some(())
    })?;
    Some(UnderTest {
        content_length_first: ports[0],
        transfer_encoding_first: ports[1],
        scripted: ports[2],
        _guard: Box::new(guard),
    })
}

fn cell(outcome: &Outcome) -> String {
    let status = outcome
        .first_status
        .map_or("no answer".to_string(), |s| s.to_string());
    if outcome.smuggled {
        format!("{status}, hidden request forwarded")
    } else {
        status
    }
}

#[test]
#[ignore = "needs haproxy; prints the side-by-side table kept in docs/smuggling.md"]
fn the_table_beside_haproxy() {
    let dir = Dir::new("smuggling-haproxy");
    let backends = Backends::start();
    let throng = throng_proxy(&dir, &backends);
    let throng_requests = run_requests(&throng, &backends);
    let throng_responses = run_responses(&throng);
    drop(throng);
    let backends = Backends::start();
    let peer = haproxy(&dir, &backends).expect("haproxy in PATH");
    let peer_requests = run_requests(&peer, &backends);
    let peer_responses = run_responses(&peer);
    println!("| # | vector | throng (CL-first / TE-first backend) | HAProxy (CL-first / TE-first backend) |");
    println!("|---:|---|---|---|");
    for (i, (v, (t, h))) in request_vectors()
        .iter()
        .zip(throng_requests.iter().zip(&peer_requests))
        .enumerate()
    {
        println!(
            "| {} | {} | {} / {} | {} / {} |",
            i + 1,
            v.name,
            cell(&t.0),
            cell(&t.1),
            cell(&h.0),
            cell(&h.1)
        );
    }
    for (i, (v, (t, h))) in response_vectors()
        .iter()
        .zip(throng_responses.iter().zip(&peer_responses))
        .enumerate()
    {
        println!("| R{} | {} | {} | {} |", i + 1, v.name, cell(t), cell(h));
    }
}
