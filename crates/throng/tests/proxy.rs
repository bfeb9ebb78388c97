//! `throng proxy` end to end: real proxy processes in front of `throng pong`, nginx, mosquitto
//! and scripted backends, with real clients (raw sockets, curl, openssl, mosquitto_pub/sub).

mod common;

use common::proxy::{read_head, Backend, Dir, Proxy};
use common::{
    assert_succeeded, attack, capture, connect, http_exchange, read_to_close, report_json,
    split_response, throng, wait_until, Nginx, Pong,
};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GLOBAL: &str = "[global]\nthreads = 2\nadmin = \"127.0.0.1:0\"\n";

/// A GET on a fresh connection: (status, headers, body).
fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n");
    http_exchange(addr, request.as_bytes())
}

fn served_by(headers: &str) -> String {
    headers
        .lines()
        .find_map(|l| l.strip_prefix("x-served-by: "))
        .unwrap_or_else(|| panic!("no x-served-by in {headers}"))
        .trim()
        .to_string()
}

fn servers_list(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{ name = \"s{}\", address = \"{a}\" }}", i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

fn http_config(balance: &str, servers: &str, extra_backend: &str) -> String {
    format!(
        "{GLOBAL}\n[frontends.web]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\n\
         [backends.app]\nbalance = \"{balance}\"\nservers = [{servers}]\n{extra_backend}\n"
    )
}

#[test]
fn requests_go_through_to_pong_and_each_gets_an_haproxy_log_line() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("basic");
    let proxy = Proxy::start(
        &dir,
        &http_config("roundrobin", &servers_list(&[pong.addr()]), ""),
    );
    let (status, headers, body) = get(proxy.addr("web"), "/hello", "sleep: 5\r\ntimes: 2\r\n");
    assert_eq!(status, 200, "{headers}");
    // Streamed as pong chunks it: four chunks and the last one, framing untouched.
    assert_eq!(
        body,
        "4\r\npong\r\n".repeat(3) + "0\r\n\r\n",
        "chunked body passed through whole"
    );
    assert_eq!(served_by(&headers), pong.addr().to_string());
    let line = proxy.wait_for_line(&["\"GET /hello HTTP/1.1\""]);
    // 127.0.0.1:PORT [24/Nov/2026:17:01:57.017] web app/s1 0/0/0/1/1 200 90 - - ---- 1/1/0/0/0 0/0 "GET /hello HTTP/1.1"
    let fields: Vec<&str> = line.split(' ').collect();
    assert!(fields[0].starts_with("127.0.0.1:"), "{line}");
    assert!(
        fields[1].starts_with('[') && fields[1].ends_with(']'),
        "{line}"
    );
    assert_eq!(fields[2], "web");
    assert_eq!(fields[3], "app/s1");
    let timers: Vec<i64> = fields[4].split('/').map(|t| t.parse().unwrap()).collect();
    assert_eq!(timers.len(), 5, "Tq/Tw/Tc/Tr/Tt: {line}");
    assert!(
        timers.iter().all(|&t| t >= 0) && timers[4] >= timers[3],
        "{line}"
    );
    assert_eq!(fields[5], "200");
    assert!(fields[6].parse::<u64>().unwrap() > 12, "bytes: {line}");
    assert_eq!(fields[9], "----", "{line}");
    assert_eq!(fields[10].split('/').count(), 5, "{line}");
}

#[test]
fn keep_alive_on_both_sides_reuses_the_server_connection() {
    let backend = Backend::echo_head();
    let dir = Dir::new("keepalive");
    let proxy = Proxy::start(
        &dir,
        &http_config("roundrobin", &servers_list(&[backend.addr]), ""),
    );
    let mut client = connect(proxy.addr("web"));
    for i in 0..10 {
        let request = format!("GET /{i} HTTP/1.1\r\nHost: test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: hop\r\nKeep-Alive: timeout=5\r\n\r\n");
        client.write_all(request.as_bytes()).unwrap();
        let head = read_head(&mut client).expect("response head");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0u8; length];
        client.read_exact(&mut body).unwrap();
        let seen = String::from_utf8(body).unwrap();
        assert!(
            seen.starts_with(&format!("GET /{i} HTTP/1.1\r\n")),
            "{seen}"
        );
        assert!(seen.contains("X-Forwarded-For: 127.0.0.1\r\n"), "{seen}");
        // Hop-by-hop fields, and those `Connection` names, stay on the client's hop.
        assert!(
            !seen.contains("X-Secret") && !seen.contains("Keep-Alive"),
            "{seen}"
        );
    }
    // Ten requests, one server connection (each proxy thread may open its own at most).
    assert_eq!(backend.accepted.load(Ordering::Relaxed), 1);
}

#[test]
fn tls_frontends_pick_the_certificate_by_sni_for_curl_and_openssl() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("sni");
    dir.certificate("a", &["a.test"]);
    dir.certificate("b", &["b.test"]);
    let config = format!(
        "{GLOBAL}\n[frontends.secure]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\
         tls = {{ certificates = [{{ cert = \"a.pem\", key = \"a.key\" }}, {{ cert = \"b.pem\", key = \"b.key\" }}] }}\n\n\
         [backends.app]\nservers = [{}]\n",
        servers_list(&[pong.addr()])
    );
    let proxy = Proxy::start(&dir, &config);
    let port = proxy.addr("secure").port();
    for name in ["a", "b"] {
        // curl checks the chain and the name: only the right certificate passes.
        let out = Command::new("curl")
            .args(["-sS", "--http1.1", "--max-time", "10", "--resolve"])
            .arg(format!("{name}.test:{port}:127.0.0.1"))
            .arg("--cacert")
            .arg(dir.path(&format!("{name}.pem")))
            .arg(format!("https://{name}.test:{port}/"))
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "curl {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "pong");
    }
    // openssl s_client: the certificate for b.test when asked for it, a.test when not asking
    // (the first is the default), compared whole with the files.
    for (servername, expect) in [(Some("b.test"), "b.test"), (None, "a.test")] {
        let mut command = Command::new("openssl");
        command
            .args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{port}"));
        if let Some(name) = servername {
            command.args(["-servername", name]);
        } else {
            command.arg("-noservername");
        }
        let out = command
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl");
        let text = String::from_utf8_lossy(&out.stdout);
        let served = text
            .split("-----BEGIN CERTIFICATE-----")
            .nth(1)
            .and_then(|rest| rest.split("-----END CERTIFICATE-----").next())
            .unwrap_or_else(|| panic!("no certificate in {text}"));
        let file = std::fs::read_to_string(dir.path(&format!("{}.pem", &expect[..1]))).unwrap();
        let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        assert!(
            squash(&file).contains(&squash(served)),
            "{servername:?} got the wrong certificate"
        );
    }
    proxy.wait_for_line(&["secure~ app/s1", " 200 "]);
    assert!(proxy.metric("throng_proxy_frontend_tls_handshakes_total{frontend=\"secure\"}") >= 4.0);

    // A client the proxy shares no suite with is told so (RFC 8446 6: handshake_failure), not
    // left with an unexpected end of file; the refusal is counted.
    let out = Command::new("openssl")
        .args(["s_client", "-tls1_2", "-cipher", "AES128-SHA", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("alert handshake failure"), "{said}");
    assert!(!said.contains("unexpected eof"), "{said}");
    wait_until(|| {
        let failed = proxy.metric("throng_proxy_frontend_tls_failures_total{frontend=\"secure\"}");
        (failed >= 1.0).then_some(())
    })
    .expect("the refused handshake is counted");
}

/// OpenSSL asks for a key update between requests (`K` in s_client): past the handshake a TLS 1.3
/// connection runs on throng's own record layer, which must open what follows under the
/// client's next key, answer with a KeyUpdate of its own and seal the next responses under its
/// next key, or OpenSSL could not read them. Each of the three TLS 1.3 suites, and the same
/// through a frontend that keeps connections on rustls's record layer (`record_layer`).
#[test]
fn openssl_key_updates_are_followed_both_ways_in_every_suite() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("keyupdate");
    let config = format!(
        "{GLOBAL}\n[frontends.secure]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\
         tls = {{ self_signed = [\"localhost\"] }}\n\n\
         [frontends.fallback]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\
         tls = {{ self_signed = [\"localhost\"], record_layer = \"rustls\" }}\n\n\
         [backends.app]\nservers = [{}]\n",
        servers_list(&[pong.addr()])
    );
    let proxy = Proxy::start(&dir, &config);
    for (frontend, suite) in [
        ("secure", "TLS_AES_128_GCM_SHA256"),
        ("secure", "TLS_AES_256_GCM_SHA384"),
        ("secure", "TLS_CHACHA20_POLY1305_SHA256"),
        ("fallback", "TLS_CHACHA20_POLY1305_SHA256"),
    ] {
        // rustls sends the KeyUpdate a `K` asks for with its next data, not at once (RFC 8446
        // allows either), so s_client would wait for it: the fallback is asked for none here
        // (its key updates are tested against rustls in throng-tls).
        let key_updates = frontend == "secure";
        openssl_rounds(proxy.addr(frontend), suite, key_updates);
    }
    // TLS 1.2 takes the server's order: a client that prefers ChaCha20 gets AES-256-GCM,
    // rustls's first.
    let out = Command::new("openssl")
        .args(["s_client", "-tls1_2", "-servername", "localhost", "-cipher"])
        .arg("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384")
        .arg("-connect")
        .arg(proxy.addr("secure").to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        seen.contains("Cipher is ECDHE-ECDSA-AES256-GCM-SHA384"),
        "{seen}"
    );
}

/// Three requests from `openssl s_client` limited to `suite`, and if `key_updates`, a key
/// update asked between them and the server's own awaited.
fn openssl_rounds(addr: SocketAddr, suite: &str, key_updates: bool) {
    let mut client = Command::new("openssl")
        .args([
            "s_client",
            "-crlf",
            "-msg",
            "-tls1_3",
            "-ciphersuites",
            suite,
            "-servername",
            "localhost",
            "-connect",
        ])
        .arg(addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl");
    let mut stdin = client.stdin.take().unwrap();
    let seen = capture(client.stdout.take().unwrap());
    // Lines s_client prints: a response's body, and a KeyUpdate the server sent.
    let count = |needle: &str| seen.lock().unwrap().matches(needle).count();
    const SERVER_KEY_UPDATE: &str = "<<< TLS 1.3, Handshake [length 0005], KeyUpdate";
    for round in 1..=3 {
        if let Err(e) = writeln!(stdin, "GET /{round} HTTP/1.1\nHost: localhost\n") {
            panic!("{suite}: s_client ended ({e}):\n{}", seen.lock().unwrap());
        }
        let answered = wait_until(|| (count("pong") >= round).then_some(()));
        assert!(
            answered.is_some(),
            "{suite}: request {round} unanswered:\n{}",
            seen.lock().unwrap()
        );
        if round < 3 && key_updates {
            if let Err(e) = writeln!(stdin, "K") {
                panic!("{suite}: s_client ended ({e}):\n{}", seen.lock().unwrap());
            }
            let updated = wait_until(|| (count(SERVER_KEY_UPDATE) >= round).then_some(()));
            assert!(
                updated.is_some(),
                "{suite}: no KeyUpdate {round} back:\n{}",
                seen.lock().unwrap()
            );
        }
    }
    drop(stdin);
    let _ = client.kill();
    let _ = client.wait();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.matches("HTTP/1.1 200 OK").count(), 3, "{seen}");
    assert!(
        seen.contains(&format!("Cipher is {suite}")),
        "{suite}:\n{seen}"
    );
}

#[test]
fn tls_garbage_and_tampered_records_are_counted_and_closed() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("garbage");
    let config = format!(
        "{GLOBAL}\n[frontends.secure]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\
         tls = {{ self_signed = [\"localhost\"] }}\ntimeout = {{ handshake = \"500ms\" }}\n\n[backends.app]\nservers = [{}]\n",
        servers_list(&[pong.addr()])
    );
    let proxy = Proxy::start(&dir, &config);
    let mut garbage = connect(proxy.addr("secure"));
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: plain-text-to-a-tls-port\r\n\r\n")
        .unwrap();
    let _ = read_to_close(&mut garbage);
    let _silent = connect(proxy.addr("secure")); // never says anything: the handshake times out
    wait_until(|| {
        (proxy.metric("throng_proxy_frontend_tls_failures_total{frontend=\"secure\"}") >= 2.0)
            .then_some(())
    })
    .expect("both failures counted");

    // Past the handshake: a record changed on the way is refused with bad_record_mac, the
    // connection given up and counted.
    let client_config = throng_tls::config::client_config(&throng_tls::config::ClientOptions {
        insecure: true,
        ..Default::default()
    })
    .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = rustls::ClientConnection::new(client_config, name).unwrap();
    let mut socket = connect(proxy.addr("secure"));
    while tls.is_handshaking() {
        tls.complete_io(&mut socket).unwrap();
    }
    tls.writer()
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut record = Vec::new();
    tls.write_tls(&mut record).unwrap();
    let last = record.len() - 1;
    record[last] ^= 1;
    socket.write_all(&record).unwrap();
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    let _ = tls.read_tls(&mut &answer[..]);
    assert_eq!(
        tls.process_new_packets().err(),
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::BadRecordMac
        ))
    );
    wait_until(|| {
        (proxy.metric("throng_proxy_frontend_tls_refusals_total{frontend=\"secure\"}") >= 1.0)
            .then_some(())
    })
    .expect("the refusal counted");
}

#[test]
fn every_balance_algorithm_spreads_or_sticks_as_it_should() {
    let pong = Pong::start(&[
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.1:0",
    ]);
    let servers = servers_list(&pong.addrs);
    // roundrobin: 9 requests, 3 each.
    let dir = Dir::new("rr");
    let proxy = Proxy::start(&dir, &http_config("roundrobin", &servers, ""));
    let mut counts = std::collections::HashMap::new();
    for _ in 0..9 {
        *counts
            .entry(served_by(&get(proxy.addr("web"), "/", "").1))
            .or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&c| c == 3), "{counts:?}");
    drop(proxy);

    // random (power of two choices): every server gets some of 30.
    let dir = Dir::new("random");
    let proxy = Proxy::start(&dir, &http_config("random", &servers, ""));
    let mut seen = std::collections::HashSet::new();
    for _ in 0..30 {
        seen.insert(served_by(&get(proxy.addr("web"), "/", "").1));
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    drop(proxy);

    // source: one client address, one server, every time.
    let dir = Dir::new("source");
    let proxy = Proxy::start(&dir, &http_config("source", &servers, ""));
    let first = served_by(&get(proxy.addr("web"), "/", "").1);
    for _ in 0..5 {
        assert_eq!(served_by(&get(proxy.addr("web"), "/", "").1), first);
    }
    drop(proxy);

    // leastconn: with a slow request held on one server, the next ones go to the others.
    // Backends of our own here: pong's sleeps are random; these hold `/slow` until told.
    let release = Arc::new(AtomicBool::new(false));
    let backends: Vec<Backend> = (0..3)
        .map(|_| answering_backend(Arc::clone(&release)))
        .collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let dir = Dir::new("leastconn");
    let proxy = Proxy::start(&dir, &http_config("leastconn", &servers_list(&addrs), ""));
    let addr = proxy.addr("web");
    let mut held = connect(addr);
    held.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    wait_until(|| {
        backends
            .iter()
            .any(|b| b.accepted.load(Ordering::Relaxed) > 0)
            .then_some(())
    })
    .expect("the slow request reached no server");
    let busy_ones: Vec<String> = (0..4).map(|_| served_by(&get(addr, "/", "").1)).collect();
    release.store(true, Ordering::Relaxed);
    let (_, headers, _) = split_response(&read_to_close(&mut held));
    let slow = served_by(&headers);
    assert!(
        !busy_ones.contains(&slow),
        "{slow} was busy but got {busy_ones:?}"
    );
}

/// A backend answering `x-served-by: <its address>`; `/slow` only once `release` is set (or
/// after the tests' patience).
fn answering_backend(release: Arc<AtomicBool>) -> Backend {
    Backend::start(move |mut stream| {
        let me = stream.local_addr().unwrap();
        while let Some(head) = read_head(&mut stream) {
            if head.starts_with("GET /slow ") {
                let held_since = std::time::Instant::now();
                while !release.load(Ordering::Relaxed) && held_since.elapsed() < common::PATIENCE {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let response =
                format!("HTTP/1.1 200 OK\r\nx-served-by: {me}\r\nContent-Length: 2\r\n\r\nok");
            if stream.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    })
}

#[test]
fn health_checks_take_a_dead_server_out_and_bring_it_back() {
    let steady = Pong::start(&[]);
    let flaky = Pong::start(&[]);
    let flaky_addr = flaky.addr();
    let dir = Dir::new("health");
    let check =
        "check = { type = \"http\", path = \"/\", interval = \"100ms\", rise = 2, fall = 2 }";
    let proxy = Proxy::start(
        &dir,
        &http_config(
            "roundrobin",
            &servers_list(&[steady.addr(), flaky_addr]),
            check,
        ),
    );
    drop(flaky);
    proxy.wait_for_message("Server app/s2 is DOWN");
    for _ in 0..6 {
        let (status, headers, _) = get(proxy.addr("web"), "/", "");
        assert_eq!(status, 200);
        assert_eq!(served_by(&headers), steady.addr().to_string());
    }
    assert_eq!(
        proxy.metric("throng_proxy_server_up{backend=\"app\",server=\"s2\"}"),
        0.0
    );
    assert_eq!(
        proxy.metric("throng_proxy_server_went_down_total{backend=\"app\",server=\"s2\"}"),
        1.0
    );
    let _back = Pong::start(&["--listen", &flaky_addr.to_string()]);
    proxy.wait_for_message("Server app/s2 is UP");
    let seen: std::collections::HashSet<String> = (0..6)
        .map(|_| served_by(&get(proxy.addr("web"), "/", "").1))
        .collect();
    assert!(seen.contains(&flaky_addr.to_string()), "{seen:?}");
}

/// A backend that reads the request and never answers.
fn hanging_backend() -> Backend {
    Backend::start(|mut stream| {
        let _ = read_head(&mut stream);
        std::thread::sleep(Duration::from_secs(30));
    })
}

#[test]
fn server_maxconn_queues_requests_and_the_queue_timeout_answers_503() {
    // Requests beyond maxconn wait and are served in turn.
    let pong = Pong::start(&[]);
    let dir = Dir::new("queue");
    let servers = format!(
        "{{ name = \"s1\", address = \"{}\", maxconn = 1 }}",
        pong.addr()
    );
    let proxy = Proxy::start(
        &dir,
        &http_config("roundrobin", &servers, "timeout = { queue = \"10s\" }"),
    );
    let addr = proxy.addr("web");
    let clients: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || get(addr, "/", "sleep: 100\r\n").0))
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), 200);
    }
    assert!(proxy.metric("throng_proxy_backend_queue_max{backend=\"app\"}") >= 1.0);
    drop(proxy);

    // A request that waits longer than `timeout queue` gets 503 and sQ.
    let hanging = hanging_backend();
    let dir = Dir::new("queue-timeout");
    let servers = format!(
        "{{ name = \"s1\", address = \"{}\", maxconn = 1 }}",
        hanging.addr
    );
    let proxy = Proxy::start(
        &dir,
        &http_config(
            "roundrobin",
            &servers,
            "timeout = { queue = \"300ms\", server = \"20s\" }",
        ),
    );
    let mut first = connect(proxy.addr("web"));
    first
        .write_all(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    wait_until(|| (hanging.accepted.load(Ordering::Relaxed) == 1).then_some(()))
        .expect("the first request reached the hanging server");
    let started = Instant::now();
    let (status, _, body) = get(proxy.addr("web"), "/second", "");
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    proxy.wait_for_line(&["\"GET /second HTTP/1.1\"", " 503 ", "sQ--"]);
}

#[test]
fn errors_get_haproxy_statuses_and_termination_states() {
    let hanging = hanging_backend();
    let closing = Backend::start(|mut stream| {
        let _ = read_head(&mut stream);
    });
    let garbage = Backend::start(|mut stream| {
        let _ = read_head(&mut stream);
        let _ = stream.write_all(b"SMTP ready\r\n\r\n");
    });
    let nothing = common::free_addr(); // nobody listens there
    let dir = Dir::new("errors");
    let config = format!(
        "{GLOBAL}\n[frontends.web]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"hang\"\n\
         timeout = {{ http-request = \"300ms\" }}\n\
         route = [{{ path_prefix = \"/close\", backend = \"close\" }}, {{ path_prefix = \"/garbage\", backend = \"garbage\" }}, {{ path_prefix = \"/refused\", backend = \"refused\" }}]\n\n\
         [backends.hang]\nservers = [{{ name = \"h\", address = \"{}\" }}]\ntimeout = {{ server = \"300ms\" }}\n\n\
         [backends.close]\nservers = [{{ name = \"c\", address = \"{}\" }}]\n\n\
         [backends.garbage]\nservers = [{{ name = \"g\", address = \"{}\" }}]\n\n\
         [backends.refused]\nretries = 2\nservers = [{{ name = \"r\", address = \"{nothing}\" }}]\n",
        hanging.addr, closing.addr, garbage.addr
    );
    let proxy = Proxy::start(&dir, &config);
    let addr = proxy.addr("web");

    assert_eq!(get(addr, "/slow", "").0, 504);
    proxy.wait_for_line(&["\"GET /slow HTTP/1.1\"", " 504 ", "sH--", "hang/h"]);
    assert_eq!(get(addr, "/close", "").0, 502);
    proxy.wait_for_line(&["\"GET /close HTTP/1.1\"", " 502 ", "SH--"]);
    assert_eq!(get(addr, "/garbage", "").0, 502);
    proxy.wait_for_line(&["\"GET /garbage HTTP/1.1\"", " 502 ", "PH--"]);
    assert_eq!(get(addr, "/refused", "").0, 503);
    let line = proxy.wait_for_line(&["\"GET /refused HTTP/1.1\"", " 503 ", "SC--"]);
    assert!(line.contains("/2 0/0"), "two retries logged: {line}");

    let (status, _, _) = http_exchange(addr, b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n");
    assert_eq!(status, 400);
    proxy.wait_for_line(&["<BADREQ>", " 400 ", "PR--"]);
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "x".repeat(20_000)
    );
    assert_eq!(http_exchange(addr, huge.as_bytes()).0, 431);
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(20_000));
    assert_eq!(http_exchange(addr, long.as_bytes()).0, 414);
    // Slowloris: half a head, then nothing: 408 after `timeout http-request`.
    let mut slow = connect(addr);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
    let (status, _, _) = split_response(&read_to_close(&mut slow));
    assert_eq!(status, 408);
    proxy.wait_for_line(&[" 408 ", "cR--"]);
    assert!(proxy.metric("throng_proxy_frontend_bad_requests_total{frontend=\"web\"}") >= 3.0);
    assert!(proxy.stderr().is_empty() || !proxy.stderr().contains("panicked"));
}

#[test]
fn websocket_upgrades_become_a_tunnel() {
    let backend = Backend::start(|mut stream| {
        let Some(head) = read_head(&mut stream) else {
            return;
        };
        assert!(
            head.to_ascii_lowercase().contains("upgrade: websocket"),
            "{head}"
        );
        stream
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || stream.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let dir = Dir::new("upgrade");
    let proxy = Proxy::start(
        &dir,
        &http_config("roundrobin", &servers_list(&[backend.addr]), ""),
    );
    let mut client = connect(proxy.addr("web"));
    client
        .write_all(
            b"GET /chat HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .unwrap();
    let head = read_head(&mut client).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for message in ["hello", "again"] {
        client.write_all(message.as_bytes()).unwrap();
        let mut echoed = vec![0u8; message.len()];
        client.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, message.as_bytes());
    }
    drop(client);
    proxy.wait_for_line(&["\"GET /chat HTTP/1.1\"", " 101 "]);
}

#[test]
fn nginx_behind_the_proxy_over_tls() {
    let nginx = Nginx::start("proxied");
    let dir = Dir::new("nginx");
    let config = format!(
        "{GLOBAL}\n[frontends.secure]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"nginx\"\ntls = {{ self_signed = [\"localhost\"] }}\n\n\
         [backends.nginx]\nservers = [{{ name = \"n\", address = \"{}\" }}]\n",
        nginx.plain
    );
    let proxy = Proxy::start(&dir, &config);
    let out = Command::new("curl")
        .args(["-sSk", "--http1.1", "--max-time", "10"])
        .arg(format!(
            "https://127.0.0.1:{}/ping",
            proxy.addr("secure").port()
        ))
        .arg(format!(
            "https://127.0.0.1:{}/ping",
            proxy.addr("secure").port()
        ))
        .output()
        .unwrap();
    assert_succeeded(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pongpong");
}

#[test]
fn tcp_mode_carries_mqtt_to_mosquitto_with_tls_in_front() {
    let dir = Dir::new("mqtt");
    let broker_addr = common::free_addr();
    dir.write(
        "mosquitto.conf",
        &format!(
            "listener {} 127.0.0.1\nallow_anonymous true\n",
            broker_addr.port()
        ),
    );
    let mut broker = Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(dir.path("mosquitto.conf"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto is not installed: apt-get install mosquitto mosquitto-clients (.ci/run does)");
    wait_until(|| std::net::TcpStream::connect(broker_addr).ok()).expect("mosquitto listening");
    dir.certificate("mqtt", &["localhost"]);
    let config = format!(
        "{GLOBAL}\n[defaults]\nmode = \"tcp\"\n\n[frontends.mqtt]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"brokers\"\n\
         tls = {{ certificates = [{{ cert = \"mqtt.pem\", key = \"mqtt.key\" }}] }}\n\n\
         [backends.brokers]\nservers = [{{ name = \"m1\", address = \"{broker_addr}\" }}]\n"
    );
    let proxy = Proxy::start(&dir, &config);
    let port = proxy.addr("mqtt").port().to_string();
    let cafile = dir.path("mqtt.pem");
    let mut subscriber = Command::new("mosquitto_sub")
        .args([
            "-h",
            "localhost",
            "-p",
            &port,
            "-t",
            "throng/test",
            "-C",
            "1",
            "-W",
            "10",
            "--cafile",
        ])
        .arg(&cafile)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Publish until the subscriber has subscribed and got one.
    let got = wait_until(|| {
        let published = Command::new("mosquitto_pub")
            .args([
                "-h",
                "localhost",
                "-p",
                &port,
                "-t",
                "throng/test",
                "-m",
                "through the proxy",
                "--cafile",
            ])
            .arg(&cafile)
            .status()
            .unwrap();
        assert!(published.success());
        subscriber.try_wait().unwrap()
    });
    assert!(got.is_some_and(|s| s.success()), "subscriber got nothing");
    let mut out = String::new();
    subscriber
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out.trim(), "through the proxy");
    // tcplog: Tw/Tc/Tt bytes termination counts queues.
    let line = proxy.wait_for_line(&["mqtt~ brokers/m1"]);
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[4].split('/').count(), 3, "{line}");
    assert_eq!(fields[6], "--", "{line}");
    let _ = broker.kill();
    let _ = broker.wait();
}

#[test]
fn sigterm_lets_requests_in_progress_finish() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("stop");
    // A grace period longer than wait_exit's patience: an idle keep-alive connection must not
    // hold the stop up, only the request in progress may.
    let config = http_config("roundrobin", &servers_list(&[pong.addr()]), "")
        .replace("[global]\n", "[global]\ngrace = \"60s\"\n");
    let mut proxy = Proxy::start(&dir, &config);
    let addr = proxy.addr("web");
    let mut idle = connect(addr);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let _ = read_head(&mut idle);
    let mut busy = connect(addr);
    // Four waits of 500 ms each: once the head has come, three are still to come.
    busy.write_all(
        b"GET / HTTP/1.1\r\nHost: t\r\nsleep: 500-500\r\ntimes: 3\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let head = read_head(&mut busy).expect("the response's head");
    proxy.signal(libc::SIGTERM);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = String::new();
    busy.read_to_string(&mut body)
        .expect("the rest of the response");
    assert_eq!(body, "4\r\npong\r\n".repeat(4) + "0\r\n\r\n");
    assert!(proxy.wait_exit().success());
    drop(idle);
}

#[test]
fn check_accepts_good_files_and_names_file_line_and_key_in_bad_ones() {
    let dir = Dir::new("check");
    dir.certificate("site", &["localhost"]);
    let good = "[frontends.web]\nbind = [\"127.0.0.1:8080\"]\ndefault_backend = \"app\"\ntls = { certificates = [{ cert = \"site.pem\", key = \"site.key\" }] }\n\n[backends.app]\nservers = [{ name = \"a\", address = \"127.0.0.1:9000-9003\" }]\n";
    let path = dir.write("good.toml", good);
    let out = throng()
        .args(["proxy", "--check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_succeeded(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("valid (1 frontends, 1 backends, 4 servers)")
    );

    let cases = [
        (
            good.replace("bind =", "binds ="),
            ":2",
            "unknown field `binds`",
        ),
        (
            good.replace("site.key", "missing.key"),
            ":4",
            "tls.certificates[0].key",
        ),
        (
            good.replace("address = ", "weight = 0, address = "),
            ":7",
            "weight",
        ),
        (
            good.replace("\"app\"", "\"nope\""),
            ":3",
            "no backend named `nope`",
        ),
        (
            good.replace("127.0.0.1:9000-9003", "localhost"),
            ":7",
            "address",
        ),
        (
            good.replace(
                "[backends.app]",
                "[backends.app]\ntimeout = { connect = \"soon\" }",
            ),
            ":7",
            "timeout.connect",
        ),
    ];
    for (text, line, words) in cases {
        let path = dir.write("bad.toml", &text);
        let out = throng()
            .args(["proxy", "--check", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("bad.toml{line}")),
            "line {line} in: {err}"
        );
        assert!(err.contains(words), "{words:?} in: {err}");
    }
    // The embedded default is valid too.
    let out = throng().args(["proxy", "--check"]).output().unwrap();
    assert_succeeded(&out);
}

#[test]
fn json_log_lines_and_forwarded_header() {
    let backend = Backend::echo_head();
    let dir = Dir::new("json");
    let config = format!(
        "[global]\nlog_format = \"json\"\n\n[defaults]\nforwarded = true\n\n[frontends.web]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\n[backends.app]\nservers = [{}]\n",
        servers_list(&[backend.addr])
    );
    let proxy = Proxy::start(&dir, &config);
    let (status, _, body) = get(proxy.addr("web"), "/j", "");
    assert_eq!(status, 200);
    assert!(
        body.contains("Forwarded: for=127.0.0.1;proto=http\r\n"),
        "{body}"
    );
    let line = proxy.wait_for_line(&["\"GET /j HTTP/1.1\""]);
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["status"], 200);
    assert_eq!(value["termination"], "--");
    assert_eq!(value["backend"], "app");
}

#[test]
fn a_client_that_leaves_while_the_server_thinks_ends_the_exchange() {
    let hanging = hanging_backend();
    let dir = Dir::new("leaves");
    let proxy = Proxy::start(
        &dir,
        &http_config(
            "roundrobin",
            &servers_list(&[hanging.addr]),
            "timeout = { server = \"30s\" }",
        ),
    );
    let mut client = connect(proxy.addr("web"));
    client
        .write_all(b"GET /leaving HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    wait_until(|| (hanging.accepted.load(Ordering::Relaxed) == 1).then_some(()))
        .expect("the request reached the hanging server");
    drop(client);
    // Logged at once as CH (client left while waiting for the response head), not after 30 s.
    let line = proxy.wait_for_line(&["\"GET /leaving HTTP/1.1\"", "CH--"]);
    assert!(line.contains(" -1 "), "nothing was answered: {line}");
    assert_eq!(
        proxy.metric("throng_proxy_backend_current_sessions{backend=\"app\"}"),
        0.0
    );
}

#[test]
fn throng_attack_speaks_tls_to_the_proxy_with_rustls() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("rustls-client");
    let config = format!(
        "{GLOBAL}\n[frontends.secure]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\ntls = {{ self_signed = [\"localhost\"] }}\n\n\
         [backends.app]\nservers = [{}]\n",
        servers_list(&[pong.addr()])
    );
    let proxy = Proxy::start(&dir, &config);
    let results = dir.path("results.bin");
    let target = format!("GET https://127.0.0.1:{}/\n", proxy.addr("secure").port());
    let out = attack(
        &target,
        &[
            "-rate=100",
            "-duration=1s",
            "-insecure",
            "-output",
            results.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    let report = report_json(&[&results]);
    assert_eq!(report["requests"], 100, "{report}");
    assert_eq!(report["status_codes"]["200"], 100, "{report}");
}

#[test]
fn maxconn_and_the_memory_budget_leave_new_connections_waiting() {
    let pong = Pong::start(&[]);
    let dir = Dir::new("limits");
    let config = format!(
        "{GLOBAL}\n[frontends.web]\nbind = [\"127.0.0.1:0\"]\nmaxconn = 1\ndefault_backend = \"app\"\n\n\
         [backends.app]\nservers = [{}]\n",
        servers_list(&[pong.addr()])
    );
    let proxy = Proxy::start(&dir, &config);
    let addr = proxy.addr("web");
    // One connection open (idle keep-alive): the frontend is at its maxconn.
    let mut first = connect(addr);
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert!(read_head(&mut first).unwrap().starts_with("HTTP/1.1 200"));
    // A second one is accepted by the kernel but not by the proxy while the first stays: the
    // proxy says it paused, and its count of sessions stays at one however long one looks.
    let mut second = connect(addr);
    second
        .write_all(b"GET /second HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    proxy.wait_for_message(
        "frontend web maxconn 1 reached: new connections wait in the accept queue",
    );
    // Counted once per thread that paused.
    assert!(proxy.metric("throng_proxy_frontend_limit_waits_total{frontend=\"web\"}") >= 1.0);
    let sessions = "throng_proxy_frontend_sessions_total{frontend=\"web\"}";
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(second.read(&mut byte).is_err(), "served beyond maxconn");
    assert_eq!(proxy.metric(sessions), 1.0, "accepted beyond maxconn");
    // When the first leaves, the second is served.
    drop(first);
    second.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let (status, _, _) = split_response(&read_to_close(&mut second));
    assert_eq!(status, 200);
    assert_eq!(proxy.metric(sessions), 2.0);
    drop(proxy);

    // A memory budget below what the process already uses: nothing new is accepted.
    let dir = Dir::new("budget");
    let config = format!(
        "{GLOBAL}memory_budget = \"1MiB\"\n\n[frontends.web]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\n\
         [backends.app]\nservers = [{}]\n",
        servers_list(&[pong.addr()])
    );
    let proxy = Proxy::start(&dir, &config);
    proxy.wait_for_message("is over global.memory_budget 1 MiB");
    let mut refused = connect(proxy.addr("web"));
    refused
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    refused
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert!(
        refused.read(&mut byte).is_err(),
        "served over the memory budget"
    );
    assert_eq!(proxy.metric("throng_proxy_over_memory_budget"), 1.0);
    assert_eq!(
        proxy.metric("throng_proxy_frontend_sessions_total{frontend=\"web\"}"),
        0.0,
        "accepted over the memory budget"
    );
}

#[test]
fn access_log_lines_go_to_syslog_over_udp() {
    let backend = Backend::echo_head();
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    syslog.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let dir = Dir::new("syslog");
    let config = http_config("roundrobin", &servers_list(&[backend.addr]), "").replace(
        "[global]\n",
        &format!(
            "[global]\nlog = \"syslog:{}\"\n",
            syslog.local_addr().unwrap()
        ),
    );
    let proxy = Proxy::start(&dir, &config);
    assert_eq!(get(proxy.addr("web"), "/logged", "").0, 200);
    let mut datagram = [0u8; 2048];
    let n = syslog.recv(&mut datagram).unwrap();
    let line = String::from_utf8_lossy(&datagram[..n]);
    // <134> is local0.info; then the date, the program and its pid, and HAProxy's line.
    assert!(line.starts_with("<134>"), "{line}");
    assert!(line.contains(" throng["), "{line}");
    assert!(
        line.contains("web app/s1") && line.contains("\"GET /logged HTTP/1.1\""),
        "{line}"
    );
    assert!(
        proxy.log().is_empty(),
        "nothing on stdout when logging to syslog"
    );
}
