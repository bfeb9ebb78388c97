//! Every refusal is told to the peer with the alert RFC 8446 names for it (section 6), never a
//! silent close: the same crafted bytes go to a server on throng's record layer and to one left
//! on rustls's (`record_layer = "rustls"`), and the alert each sends back is read by the client.
//! Where rustls and the RFC differ, the RFC wins and the case says so.

use super::*;
use crate::config::{
    client_config, connect_unbuffered, parse_certs, parse_key, self_signed, server_config,
    ClientOptions,
};
use rustls::client::UnbufferedClientConnection;
use std::sync::Arc;
use std::time::Duration;

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

// RFC 8446 6.2's descriptions.
const UNEXPECTED_MESSAGE: u8 = 10;
const BAD_RECORD_MAC: u8 = 20;
const RECORD_OVERFLOW: u8 = 22;
const HANDSHAKE_FAILURE: u8 = 40;
const ILLEGAL_PARAMETER: u8 = 47;
const DECODE_ERROR: u8 = 50;

/// The two kinds of server: on throng's record layer past the handshake, or on rustls's.
struct Servers {
    own: Arc<rustls::ServerConfig>,
    rustls: Arc<rustls::ServerConfig>,
    cert_pem: String,
}

fn servers() -> Servers {
    let (cert_pem, key_pem) = self_signed(&["localhost"]).unwrap();
    let certs = parse_certs(cert_pem.as_bytes()).unwrap();
    let key = parse_key(key_pem.as_bytes()).unwrap();
    let rustls = server_config(certs, key, &[b"http/1.1"], &[]).unwrap();
    let mut own = (*rustls).clone();
    secrets::prepare_server(&mut own);
    Servers {
        own: Arc::new(own),
        rustls,
        cert_pem,
    }
}

/// A server that completes its handshake, echoes one read, then reads until it gives up; the
/// socket closes once it has (with the alert sent, if any).
async fn serve_once(listener: tokio::net::TcpListener, config: Arc<rustls::ServerConfig>) {
    let Ok((stream, _)) = listener.accept().await else {
        return;
    };
    let mut tls = TlsStream::new(UnbufferedServerConnection::new(config).unwrap());
    if tls.handshake(&stream).await.is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    let mut echoed = false;
    loop {
        match tls.try_read(&stream, &mut buf) {
            Ok(0) => return,
            Ok(n) if !echoed => {
                echoed = true;
                let got = buf[..n].to_vec();
                if tls.write_all(&stream, &got).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if stream.readable().await.is_err() {
                    return;
                }
            }
            Err(_) => {
                // As the proxy's sessions do: a clean shutdown is tried on the way out.
                let _ = std::future::poll_fn(|cx| tls.poll_close(&stream, cx)).await;
                return;
            }
        }
    }
}

/// What the client saw after it sent its crafted bytes: the alert's description, or how the
/// connection ended without one.
#[derive(Debug, PartialEq, Eq)]
enum Told {
    Alert(u8),
    Nothing(String),
}

/// The number in "the peer sent alert N" (throng's records) or rustls's alert error.
fn told(error: &io::Error) -> Told {
    let text = error.to_string();
    if let Some(n) = text
        .strip_prefix("the peer sent alert ")
        .and_then(|n| n.parse().ok())
    {
        return Told::Alert(n);
    }
    Told::Nothing(text)
}

async fn write_raw(stream: &TcpStream, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        stream.writable().await.unwrap();
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// Everything the server sends until it closes (or resets), raw; `None` if it is still open
/// after 10 s.
async fn read_to_close(stream: &TcpStream) -> Option<Vec<u8>> {
    let mut wire = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            stream.readable().await.unwrap();
            match stream.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => wire.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
    })
    .await;
    read.ok().map(|()| wire)
}

/// What a client sends once the connection carries data.
enum Crafted {
    /// A record sealed under the client's traffic key, changed on the way if `tamper`.
    Sealed {
        kind: u8,
        content: Vec<u8>,
        tamper: bool,
    },
    /// Bytes as they are, outside any protection.
    Plain(Vec<u8>),
}

/// A TLS 1.3 client on throng's records connected to a server of `config`, past one round
/// trip of data (so the server is past its handshake and its tickets); the server's task.
async fn connected(
    servers: &Servers,
    config: &Arc<rustls::ServerConfig>,
) -> (
    TcpStream,
    TlsStream<UnbufferedClientConnection>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve_once(listener, Arc::clone(config)));
    // A file of each connection's own: tests run side by side, and one writing the file while
    // another reads it would hand that one an empty file.
    static CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("throng-tls-refusals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join(format!("ca-{n}.pem"));
    std::fs::write(&ca, &servers.cert_pem).unwrap();
    let client = client_config(&ClientOptions {
        root_certs: vec![ca],
        resume: false,
        ..ClientOptions::default()
    })
    .unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    let conn: UnbufferedClientConnection = connect_unbuffered(&client, "localhost").unwrap();
    let mut tls = TlsStream::new(conn);
    tls.handshake(&stream).await.unwrap();
    assert!(tls.on_own_records(), "the client runs on throng's records");
    tls.write_all(&stream, b"ping").await.unwrap();
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 4 {
        match tls.try_read(&stream, &mut buf[got..]) {
            Ok(0) => panic!("closed before the echo"),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await.unwrap(),
            Err(e) => panic!("{e}"),
        }
    }
    (stream, tls, server)
}

async fn send_crafted(
    tls: &mut TlsStream<UnbufferedClientConnection>,
    stream: &TcpStream,
    crafted: &Crafted,
) {
    match crafted {
        Crafted::Sealed {
            kind,
            content,
            tamper,
        } => {
            assert!(tls.inject(*kind, content, *tamper));
            tls.send(stream).await.unwrap();
        }
        Crafted::Plain(bytes) => write_raw(stream, bytes).await,
    }
}

/// Connects to a server of `config`, sends `crafted` once data flows, and reads what comes back.
async fn after_handshake(
    servers: &Servers,
    config: &Arc<rustls::ServerConfig>,
    crafted: &Crafted,
) -> Told {
    let (stream, mut tls, server) = connected(servers, config).await;
    send_crafted(&mut tls, &stream, crafted).await;
    let mut buf = [0u8; 64];
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tls.try_read(&stream, &mut buf) {
                Ok(0) => break Told::Nothing("a close without an alert".into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await.unwrap(),
                Err(e) => break told(&e),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Told::Nothing("no answer within 10 s".into()));
    server.abort();
    answer
}

/// One refusal, one alert: after a record it refuses, a server sends its alert and nothing
/// more, whatever came after that record (tlsfuzzer's cases saw a second alert for the next).
#[tokio::test(flavor = "current_thread")]
async fn a_refusal_sends_one_alert_whatever_follows() {
    let servers = servers();
    for config in [&servers.own, &servers.rustls] {
        let (stream, mut tls, server) = connected(&servers, config).await;
        let tampered = |content: &[u8]| Crafted::Sealed {
            kind: APPLICATION_DATA,
            content: content.to_vec(),
            tamper: true,
        };
        for crafted in [
            tampered(b"first"),
            sealed(APPLICATION_DATA, b"second"),
            tampered(b"third"),
        ] {
            send_crafted(&mut tls, &stream, &crafted).await;
        }
        // What the server sends from here, as records on the wire, until it closes.
        let wire = read_to_close(&stream).await;
        server.abort();
        let wire = wire.expect("the server did not close");
        let mut records = 0;
        let mut rest = &wire[..];
        while let [_, _, _, high, low, after @ ..] = rest {
            let length = usize::from(u16::from_be_bytes([*high, *low]));
            rest = after.get(length..).unwrap_or_default();
            records += 1;
        }
        assert_eq!(records, 1, "{} bytes after the refused record", wire.len());
    }
}

fn sealed(kind: u8, content: &[u8]) -> Crafted {
    Crafted::Sealed {
        kind,
        content: content.to_vec(),
        tamper: false,
    }
}

/// A refusal past the handshake: what is sent, the alert RFC 8446 names for it, and what
/// rustls's own record layer does with the same bytes.
struct Case {
    name: &'static str,
    crafted: Crafted,
    rfc: u8,
    rustls: Rustls,
}

enum Rustls {
    AsTheRfc,
    Sends(u8),
    /// Takes it without a word (not tried: the test would wait for nothing).
    Ignores,
}

/// A ClientHello message of `suites` (no record header): well formed, so that only its place
/// is wrong.
fn client_hello_message(suites: &[u16]) -> Vec<u8> {
    client_hello(suites, &[(13, u16_list(&[0x0403]))])[5..].to_vec()
}

fn cases_after_handshake() -> Vec<Case> {
    let case = |name, crafted, rfc| Case {
        name,
        crafted,
        rfc,
        rustls: Rustls::AsTheRfc,
    };
    // lifetime, age_add, an empty nonce, a one-byte ticket, no extensions.
    let ticket = [4, 0, 0, 14, 0, 0, 0, 60, 1, 2, 3, 4, 0, 0, 1, 9, 0, 0];
    vec![
        case(
            "a record that does not decrypt (5.2)",
            Crafted::Sealed {
                kind: APPLICATION_DATA,
                content: b"hello".to_vec(),
                tamper: true,
            },
            BAD_RECORD_MAC,
        ),
        case(
            "2^14 + 1 bytes of plaintext (5.4)",
            sealed(APPLICATION_DATA, &vec![b'x'; 16 * 1024 + 1]),
            RECORD_OVERFLOW,
        ),
        Case {
            // rustls reads records of up to 2^14 + 2048 bytes in every version (TLS 1.2's
            // limit) and so tries to open this one.
            rustls: Rustls::Sends(BAD_RECORD_MAC),
            ..case(
                "a ciphertext over 2^14 + 256 bytes (5.2)",
                Crafted::Plain({
                    let mut record = vec![APPLICATION_DATA, 3, 3];
                    record.extend_from_slice(&(16u16 * 1024 + 257).to_be_bytes());
                    record.resize(5 + 16 * 1024 + 257, 0);
                    record
                }),
                RECORD_OVERFLOW,
            )
        },
        case(
            "a KeyUpdate whose request_update is 2 (4.6.3)",
            sealed(HANDSHAKE, &[24, 0, 0, 1, 2]),
            ILLEGAL_PARAMETER,
        ),
        case(
            "a KeyUpdate of two bytes (4.6.3)",
            sealed(HANDSHAKE, &[24, 0, 0, 2, 0, 0]),
            DECODE_ERROR,
        ),
        case(
            "a ClientHello after the handshake (4)",
            sealed(HANDSHAKE, &client_hello_message(&[0x1301])),
            UNEXPECTED_MESSAGE,
        ),
        case(
            "a NewSessionTicket from the client (4.6.1)",
            sealed(HANDSHAKE, &ticket),
            UNEXPECTED_MESSAGE,
        ),
        case(
            "change_cipher_spec after the handshake (5)",
            Crafted::Plain(vec![CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1]),
            UNEXPECTED_MESSAGE,
        ),
        Case {
            // rustls cannot decode a content type it does not know.
            rustls: Rustls::Sends(DECODE_ERROR),
            ..case(
                "a record of an unknown inner type (5)",
                sealed(99, b"what"),
                UNEXPECTED_MESSAGE,
            )
        },
        case(
            "an alert of three bytes (6)",
            sealed(ALERT, &[2, 10, 0]),
            DECODE_ERROR,
        ),
        Case {
            // rustls counts it as one of the empty records it lets pass.
            rustls: Rustls::Ignores,
            ..case(
                "an empty handshake record (5.1)",
                sealed(HANDSHAKE, b""),
                UNEXPECTED_MESSAGE,
            )
        },
    ]
}

#[tokio::test(flavor = "current_thread")]
async fn every_refusal_past_the_handshake_sends_the_alert_the_rfc_names() {
    let servers = servers();
    let mut wrong = Vec::new();
    for case in cases_after_handshake() {
        let own = after_handshake(&servers, &servers.own, &case.crafted).await;
        if own != Told::Alert(case.rfc) {
            wrong.push(format!(
                "{}: RFC {}, throng's records {own:?}",
                case.name, case.rfc
            ));
        }
        let rustls_sends = match case.rustls {
            Rustls::AsTheRfc => case.rfc,
            Rustls::Sends(alert) => alert,
            Rustls::Ignores => continue,
        };
        let rustls = after_handshake(&servers, &servers.rustls, &case.crafted).await;
        if rustls != Told::Alert(rustls_sends) {
            wrong.push(format!(
                "{}: rustls's record layer {rustls:?}, known to send {rustls_sends}",
                case.name
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A ClientHello of `version` with `suites` and `extensions` (each a type and its body), in a
/// handshake record.
fn client_hello(suites: &[u16], extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0); // no session id
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for suite in suites {
        body.extend_from_slice(&suite.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    let mut ext = Vec::new();
    for (kind, data) in extensions {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(data);
    }
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut message = vec![1];
    message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    message.extend_from_slice(&body);
    let mut record = vec![HANDSHAKE, 3, 1];
    record.extend_from_slice(&(message.len() as u16).to_be_bytes());
    record.extend_from_slice(&message);
    record
}

/// A list of u16 with its length in bytes before it, as an extension carries it.
fn u16_list(items: &[u16]) -> Vec<u8> {
    let mut out = ((items.len() * 2) as u16).to_be_bytes().to_vec();
    for item in items {
        out.extend_from_slice(&item.to_be_bytes());
    }
    out
}

/// Sends `bytes` as the client's first flight and reads the server's answer: the alert in its
/// (plaintext) alert record, or how the connection ended.
async fn during_handshake(config: &Arc<rustls::ServerConfig>, bytes: &[u8]) -> Told {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve_once(listener, Arc::clone(config)));
    let stream = TcpStream::connect(addr).await.unwrap();
    write_raw(&stream, bytes).await;
    let answer = read_to_close(&stream).await;
    server.abort();
    let Some(answer) = answer else {
        return Told::Nothing("no answer within 10 s".into());
    };
    // Records until the alert: a server may have sent its hello first.
    let mut rest = &answer[..];
    while let [kind, _, _, high, low, after @ ..] = rest {
        let length = usize::from(u16::from_be_bytes([*high, *low]));
        let Some((body, next)) = after.split_at_checked(length) else {
            break;
        };
        if *kind == ALERT {
            if let [2, description] = body {
                return Told::Alert(*description);
            }
        }
        rest = next;
    }
    Told::Nothing(format!("no alert in {} bytes", answer.len()))
}

#[tokio::test(flavor = "current_thread")]
async fn every_refusal_in_the_handshake_sends_an_alert() {
    let servers = servers();
    let tls13 = |groups: &[u16]| {
        vec![
            (43u16, vec![2, 3, 4]),            // supported_versions: TLS 1.3
            (10, u16_list(groups)),            // supported_groups
            (13, u16_list(&[0x0403, 0x0804])), // signature_algorithms
            (51, vec![0, 0]),                  // key_share: none yet
        ]
    };
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        (
            "TLS 1.2 offering only AES128-SHA: no shared suite",
            client_hello(&[0x002f], &[(13, u16_list(&[0x0401]))]),
            HANDSHAKE_FAILURE,
        ),
        (
            "TLS 1.3 offering only ffdhe2048: no shared group",
            client_hello(&[0x1301], &tls13(&[0x0100])),
            HANDSHAKE_FAILURE,
        ),
        (
            "a handshake record of no bytes (5.1)",
            vec![HANDSHAKE, 3, 1, 0, 0],
            DECODE_ERROR,
        ),
        (
            "an application data record before the handshake (5)",
            vec![APPLICATION_DATA, 3, 3, 0, 1, 0],
            UNEXPECTED_MESSAGE,
        ),
    ];
    let mut wrong = Vec::new();
    for (name, bytes, rfc) in cases {
        for (kind, config) in [("own", &servers.own), ("rustls", &servers.rustls)] {
            let got = during_handshake(config, &bytes).await;
            if got != Told::Alert(rfc) {
                wrong.push(format!(
                    "{name} ({kind}): expected alert {rfc}, got {got:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A refusal rustls queues no alert for (a record of another type between the records of one
/// handshake message, which its record joiner holds positions into) ends the handshake with
/// an error, never a panic: the alert is looked for with the bytes rustls was given.
#[tokio::test(flavor = "current_thread")]
async fn a_refusal_without_an_alert_ends_the_handshake_without_a_panic() {
    let servers = servers();
    let hello = client_hello(&[0x1301], &[(43, vec![2, 3, 4]), (10, u16_list(&[0x001d]))]);
    let message = &hello[5..];
    let (first, second) = message.split_at(message.len() / 2);
    let record = |kind: u8, body: &[u8]| {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    };
    let mut bytes = record(HANDSHAKE, first);
    bytes.extend(record(APPLICATION_DATA, b"x"));
    bytes.extend(record(HANDSHAKE, second));
    for config in [&servers.own, &servers.rustls] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_once(listener, Arc::clone(config)));
        let stream = TcpStream::connect(addr).await.unwrap();
        write_raw(&stream, &bytes).await;
        let ended = tokio::time::timeout(Duration::from_secs(10), server).await;
        assert!(matches!(ended, Ok(Ok(()))), "the server's task: {ended:?}");
    }
}

/// A ClientHello larger than a buffer (30 KB of padding, over two records: what a hello of
/// thousands of groups or schemes takes) is read whole and answered with a ServerHello, where
/// it was once closed without a word.
#[tokio::test(flavor = "current_thread")]
async fn a_client_hello_larger_than_a_buffer_is_answered() {
    let servers = servers();
    let mut key = vec![9u8];
    key.resize(32, 0); // x25519's base point: a valid public key
    let mut share = 0x001du16.to_be_bytes().to_vec();
    share.extend_from_slice(&32u16.to_be_bytes());
    share.extend_from_slice(&key);
    let mut shares = (share.len() as u16).to_be_bytes().to_vec();
    shares.extend_from_slice(&share);
    let hello = client_hello(
        &[0x1301],
        &[
            (43, vec![2, 3, 4]),
            (10, u16_list(&[0x001d])),
            (13, u16_list(&[0x0403, 0x0804])),
            (51, shares),
            (21, vec![0u8; 30_000]), // padding (RFC 7685)
        ],
    );
    let message = &hello[5..];
    let mut bytes = Vec::new();
    for part in message.chunks(16 * 1024) {
        bytes.extend_from_slice(&[HANDSHAKE, 3, 1]);
        bytes.extend_from_slice(&(part.len() as u16).to_be_bytes());
        bytes.extend_from_slice(part);
    }
    for config in [&servers.own, &servers.rustls] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_once(listener, Arc::clone(config)));
        let stream = TcpStream::connect(addr).await.unwrap();
        write_raw(&stream, &bytes).await;
        let mut first = [0u8; 6];
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut got = 0;
            while got < first.len() {
                stream.readable().await.unwrap();
                match stream.try_read(&mut first[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            got
        })
        .await;
        server.abort();
        assert_eq!(read.ok(), Some(6), "no answer to a large ClientHello");
        // A handshake record holding a ServerHello (type 2).
        assert_eq!((first[0], first[5]), (HANDSHAKE, 2), "{first:?}");
    }
}
