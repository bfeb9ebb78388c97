//! `throng pong` end to end: a real process on loopback, a real HTTP client (ureq) for what
//! clients do, raw sockets for what broken clients do.

mod common;

use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into()
}

/// GET with headers; returns (status, body, x-served-by, elapsed).
fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String, String, Duration) {
    let agent = agent();
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let started = Instant::now();
    let mut response = request.call().expect("request");
    let body = response.body_mut().read_to_string().expect("body");
    let served_by = response
        .headers()
        .get("x-served-by")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        response.status().as_u16(),
        body,
        served_by,
        started.elapsed(),
    )
}

#[test]
fn sleep_and_times_answer_pong_times_plus_one_in_chunks() {
    let pong = Pong::start(&[]);
    let (status, body, _, elapsed) = get(&pong.url(), &[("sleep", "150"), ("times", "3")]);
    assert_eq!(status, 200);
    assert_eq!(body, "pong".repeat(4));
    // Four waits of at most 150 ms each; the margin is for a loaded machine.
    assert!(elapsed < Duration::from_millis(600 + 2000), "{elapsed:?}");

    // On the wire: a chunked response, one chunk per pong, then the last chunk.
    let mut stream = connect(pong.addr());
    stream
        .write_all(
            b"GET /ping HTTP/1.1\r\nHost: x\r\nsleep: 10\r\ntimes: 2\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let (status, head, body) = split_response(&read_to_close(&mut stream));
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    assert_eq!(body, "4\r\npong\r\n".repeat(3) + "0\r\n\r\n");
}

#[test]
fn waits_are_uniform_between_zero_and_sleep() {
    let pong = Pong::start(&[]);
    let url = pong.url();
    let elapsed: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| get(&url, &[("sleep", "600")]).3))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (min, max) = (elapsed.iter().min().unwrap(), elapsed.iter().max().unwrap());
    // Uniform on 0..=600 ms: all 16 on one side of 300 ms has probability 2 * 2^-16.
    assert!(*min < Duration::from_millis(300), "{elapsed:?}");
    assert!(*max > Duration::from_millis(300), "{elapsed:?}");
    assert!(*max < Duration::from_millis(600 + 2000), "{elapsed:?}");

    let (status, body, _, immediate) = get(&url, &[]);
    assert_eq!((status, body.as_str()), (200, "pong"));
    assert!(
        immediate < Duration::from_millis(2000),
        "no sleep header, yet {immediate:?}"
    );
}

#[test]
fn listens_on_ranges_and_repeated_addresses_and_says_which_served() {
    let base = free_port_range(3);
    let range = format!("127.0.0.1:{base}-{}", base + 2);
    let pong = Pong::start(&[
        "--listen",
        &range,
        "--listen",
        "127.0.0.2:0",
        "--threads",
        "2",
    ]);
    assert_eq!(pong.addrs.len(), 4);
    assert_eq!(pong.addrs[0].port(), base);
    assert_eq!(pong.addrs[3].ip().to_string(), "127.0.0.2");
    for addr in &pong.addrs {
        let (status, body, served_by, _) = get(&format!("http://{addr}/any/path?q=1"), &[]);
        assert_eq!((status, body.as_str()), (200, "pong"));
        assert_eq!(served_by, addr.to_string());
    }
}

#[test]
fn max_rps_queues_the_excess_first_come_first_served() {
    let pong = Pong::start(&["--max-rps", "10", "--admin", "127.0.0.1:0"]);
    let url = pong.url();

    // Below the rate nobody waits.
    for _ in 0..3 {
        let (_, _, _, elapsed) = get(&url, &[]);
        assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
        std::thread::sleep(Duration::from_millis(150));
    }

    // A burst of 20 is served one every 100 ms: about 10 in the first second, the last near 1.9 s.
    let started = Instant::now();
    let mut done: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                scope.spawn(|| {
                    let (status, body, _, _) = get(&url, &[]);
                    assert_eq!((status, body.as_str()), (200, "pong"));
                    started.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    done.sort();
    let in_first_second = done.iter().filter(|d| **d < Duration::from_secs(1)).count();
    assert!(
        in_first_second <= 12,
        "{in_first_second} served in the first second: {done:?}"
    );
    assert!(done[19] >= Duration::from_millis(1500), "{done:?}");
    assert!(done[19] < Duration::from_millis(1900 + 3000), "{done:?}");
}

#[test]
fn metrics_count_requests_connections_bytes_and_held_responses() {
    let pong = Pong::start(&["--admin", "127.0.0.1:0"]);
    let listen = format!("{{listen=\"{}\"}}", pong.addr());
    for _ in 0..3 {
        assert_eq!(get(&pong.url(), &[]).1, "pong");
    }
    pong.wait_for_metric(&format!("pong_requests_total{listen}"), 3.0);
    assert!(pong.metric(&format!("pong_received_bytes_total{listen}")) > 0.0);
    assert!(pong.metric(&format!("pong_sent_bytes_total{listen}")) >= 3.0 * 4.0);

    // A response of 1001 pongs with waits of up to 30 s is certainly still going on.
    let mut held = connect(pong.addr());
    held.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nsleep: 30000\r\ntimes: 1000\r\n\r\n")
        .unwrap();
    pong.wait_for_metric("pong_responses_in_progress", 1.0);
    pong.wait_for_metric(&format!("pong_connections_open{listen}"), 1.0);

    // The client hangs up: the response is abandoned and the connection closed.
    drop(held);
    pong.wait_for_metric("pong_responses_in_progress", 0.0);
    pong.wait_for_metric(&format!("pong_connections_open{listen}"), 0.0);
    assert_eq!(pong.metric("pong_responses_abandoned_total"), 1.0);
    assert_eq!(pong.metric(&format!("pong_requests_total{listen}")), 4.0);
}

#[test]
fn bodies_are_read_and_dropped_and_the_connection_kept() {
    let pong = Pong::start(&[]);
    let agent = agent();
    let mut response = agent.post(pong.url()).send("a body to throw away").unwrap();
    assert_eq!(response.body_mut().read_to_string().unwrap(), "pong");

    // Content-Length and chunked bodies, then a third request on the same connection, all in one
    // write (pipelined): three answers in order.
    let mut stream = connect(pong.addr());
    stream
        .write_all(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
              POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
              GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let all = read_to_close(&mut stream);
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 3, "{all}");
    assert_eq!(all.matches("4\r\npong\r\n0\r\n\r\n").count(), 3, "{all}");
}

#[test]
fn expect_continue_http10_and_head_are_answered_as_clients_expect() {
    let pong = Pong::start(&[]);

    let mut stream = connect(pong.addr());
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 25];
    std::io::Read::read_exact(&mut stream, &mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"body").unwrap();
    let (status, _, body) = split_response(&read_to_close(&mut stream));
    assert_eq!((status, body.as_str()), (200, "4\r\npong\r\n0\r\n\r\n"));

    // HTTP/1.0 knows no chunks: plain bytes, and the close ends the body.
    let (status, head, body) = http_exchange(pong.addr(), b"GET / HTTP/1.0\r\ntimes: 1\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, "pongpong"));
    assert!(!head.contains("chunked"), "{head}");

    let (status, _, body) = http_exchange(
        pong.addr(),
        b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((status, body.as_str()), (200, ""));
}

#[test]
fn bad_requests_get_their_status_a_reason_and_a_log_line() {
    let pong = Pong::start(&[
        "--max-head-bytes",
        "1024",
        "--max-headers",
        "10",
        "--admin",
        "127.0.0.1:0",
    ]);
    let addr = pong.addr();

    let (status, _, body) = http_exchange(addr, b"GET / HTTP/1.1\r\nsleep: abc\r\n\r\n");
    assert_eq!(status, 400);
    assert!(
        body.contains("`sleep`") && body.contains("\"abc\""),
        "{body}"
    );
    let (status, _, body) = http_exchange(addr, b"GET / HTTP/1.1\r\ntimes: -1\r\n\r\n");
    assert_eq!(status, 400);
    assert!(body.contains("`times`"), "{body}");

    let (status, _, _) = http_exchange(addr, b"NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(status, 400);
    let tls_client_hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x00\x01\x02\x03";
    assert_eq!(http_exchange(addr, tls_client_hello).0, 400);
    let bad_chunk = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    assert_eq!(http_exchange(addr, bad_chunk).0, 400);
    let smuggle =
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(http_exchange(addr, smuggle).0, 400);

    let big_header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(2000));
    assert_eq!(http_exchange(addr, big_header.as_bytes()).0, 431);
    let many_headers = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(20));
    assert_eq!(http_exchange(addr, many_headers.as_bytes()).0, 431);
    let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(2000));
    assert_eq!(http_exchange(addr, long_line.as_bytes()).0, 414);

    // A megabyte without a line break is cut at the head limit, and the server carries on.
    let mut stream = connect(addr);
    let _ = stream.write_all(&vec![b'a'; 1 << 20]);
    let (status, _, _) = split_response(&read_to_close(&mut stream));
    assert_eq!(status, 414);
    assert_eq!(get(&pong.url(), &[]).1, "pong");

    assert_eq!(
        pong.metric("pong_rejected_requests_total{status=\"400\"}"),
        6.0
    );
    assert_eq!(
        pong.metric("pong_rejected_requests_total{status=\"431\"}"),
        2.0
    );
    assert_eq!(
        pong.metric("pong_rejected_requests_total{status=\"414\"}"),
        2.0
    );
    let log = pong.wait_for_log("431, too many header fields");
    assert!(log.contains("400, invalid `sleep` header"), "{log}");
}

#[test]
fn slow_heads_get_408_and_idle_connections_are_closed() {
    let pong = Pong::start(&[
        "--header-timeout",
        "300ms",
        "--timeout",
        "500ms",
        "--admin",
        "127.0.0.1:0",
    ]);

    let mut slow = connect(pong.addr());
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let (status, _, _) = split_response(&read_to_close(&mut slow));
    assert_eq!(status, 408);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    pong.wait_for_log("408, request head not received within the header timeout (300ms)");

    let mut idle = connect(pong.addr());
    let started = Instant::now();
    assert_eq!(read_to_close(&mut idle), "");
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );

    // A response that sleeps past the timeout is cut too, as Node's server.timeout did.
    let mut sleeper = connect(pong.addr());
    sleeper
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nsleep: 1000\r\ntimes: 100\r\n\r\n")
        .unwrap();
    let _ = read_to_close(&mut sleeper);
    assert_eq!(pong.metric("pong_timeouts_total{timeout=\"header\"}"), 1.0);
    assert_eq!(pong.metric("pong_timeouts_total{timeout=\"idle\"}"), 1.0);
    assert_eq!(
        pong.metric("pong_timeouts_total{timeout=\"response\"}"),
        1.0
    );
}

#[test]
fn max_connections_leaves_the_rest_waiting_in_the_accept_queue() {
    let pong = Pong::start(&["--max-connections", "2", "--threads", "1"]);
    let holding: Vec<_> = (0..2)
        .map(|_| {
            let mut stream = connect(pong.addr());
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nsleep: 60000\r\ntimes: 100\r\n\r\n")
                .unwrap();
            stream
        })
        .collect();
    pong.wait_for_log("2 connections open (--max-connections)");

    let mut waiting = connect(pong.addr());
    waiting
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = std::io::Read::read(&mut waiting, &mut byte);
    assert!(early.is_err(), "answered while at the limit: {early:?}");

    drop(holding);
    waiting.set_read_timeout(Some(PATIENCE)).unwrap();
    let (status, _, body) = split_response(&read_to_close(&mut waiting));
    assert_eq!((status, body.as_str()), (200, "4\r\npong\r\n0\r\n\r\n"));
}

#[test]
fn sigterm_finishes_responses_in_progress_then_exits() {
    let mut pong = Pong::start(&["--admin", "127.0.0.1:0"]);
    let idle = connect(pong.addr());
    let mut busy = connect(pong.addr());
    // Four waits of up to 2 s: about 4 s in all, far longer than what follows takes.
    busy.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nsleep: 2000\r\ntimes: 3\r\n\r\n")
        .unwrap();
    pong.wait_for_metric("pong_responses_in_progress", 1.0);

    pong.signal(libc::SIGTERM);
    pong.wait_for_log("SIGTERM: stopping");
    let refused = wait_until(|| {
        std::net::TcpStream::connect(pong.addr())
            .is_err()
            .then_some(())
    });
    assert!(refused.is_some(), "still accepting after SIGTERM");

    let (status, head, body) = split_response(&read_to_close(&mut busy));
    assert_eq!(status, 200);
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body, "4\r\npong\r\n".repeat(4) + "0\r\n\r\n");
    assert!(pong.wait_exit().success());
    drop(idle);
}

#[test]
fn start_up_problems_are_explained() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = throng().args(["pong", "--listen", &addr]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );

    let output = throng()
        .args(["pong", "--max-connections", "100000000"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("open files") && stderr.contains("several processes"),
        "{stderr}"
    );

    let output = throng()
        .args(["pong", "--listen", "127.0.0.1:9-8"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ends before it starts"));
}

#[test]
fn help_lists_every_subcommand() {
    let help = throng().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for command in [
        "proxy", "attack", "report", "encode", "plot", "pong", "monitor", "knee", "scenario",
    ] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
}

/// `--h2c`: a client that opens with HTTP/2's preface is served HTTP/2 (curl and h2load, real
/// clients), `sleep` and `times` meaning what they mean over HTTP/1.1, many streams at once on
/// one connection; an HTTP/1.1 client on the same port is served as before.
#[test]
fn h2c_by_prior_knowledge_beside_http1_on_one_port() {
    let pong = Pong::start(&["--h2c"]);
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-w",
                " %{http_version} %{http_code}",
            ])
            .args(args)
            .arg(pong.url())
            .output()
            .unwrap();
        assert_succeeded(&out);
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        curl(&[
            "--http2-prior-knowledge",
            "-H",
            "times: 2",
            "-H",
            "sleep: 20"
        ]),
        "pongpongpong 2 200"
    );
    assert_eq!(curl(&[]), "pong 1.1 200");
    let refused = curl(&["--http2-prior-knowledge", "-H", "sleep: x"]);
    assert!(
        refused.starts_with("invalid `sleep` header") && refused.ends_with(" 2 400"),
        "{refused}"
    );
    // 400 streams held 10-50 ms each, 100 at once on each of 2 connections: all answered.
    let out = std::process::Command::new("h2load")
        .args(["-n", "400", "-c", "2", "-m", "100", "-H", "sleep: 10-50"])
        .arg(pong.url())
        .output()
        .expect("h2load (nghttp2-client; test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("400 succeeded, 0 failed"), "{text}");
    assert!(text.contains("status codes: 400 2xx"), "{text}");
}

/// `--http2` over TLS: h2 offered by ALPN before http/1.1, so curl and throng attack get
/// HTTP/2 and a client that offers only http/1.1 gets that; every connection, whichever
/// protocol served it, is counted open while it is and closed after (h2c's too).
#[test]
fn http2_over_tls_by_alpn_beside_http1_and_connections_counted_both_ways() {
    let dir = scratch_dir("pong-h2-tls");
    let (cert, key) = throng_tls::config::self_signed(&["localhost"]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    let cert = dir.join("cert.pem");
    let pong = Pong::start(&[
        "--http2",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        dir.join("key.pem").to_str().unwrap(),
        "--admin",
        "127.0.0.1:0",
    ]);
    let url = format!("https://localhost:{}/", pong.addr().port());
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                cert.to_str().unwrap(),
            ])
            .args(["-w", " %{http_version} %{http_code}"])
            .args(args)
            .arg(&url)
            .output()
            .unwrap();
        assert_succeeded(&out);
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        curl(&["--http2", "-H", "times: 2", "-H", "sleep: 20"]),
        "pongpongpong 2 200"
    );
    assert_eq!(curl(&["--http1.1"]), "pong 1.1 200");

    let out = dir.join("run.bin");
    let roots = format!("-root-certs={}", cert.display());
    let result = attack(
        &format!("GET {url}\nsleep: 20\n"),
        &[
            "-rate=100",
            "-duration=1s",
            &roots,
            "-output",
            out.to_str().unwrap(),
        ],
    );
    assert_succeeded(&result);
    let report = report_json(&[&out]);
    assert_eq!(
        (
            report["success"].as_f64(),
            report["throng"]["http2"].as_u64()
        ),
        (Some(1.0), Some(100)),
        "{report}"
    );
    assert_eq!(report["bytes_in"]["total"], 400, "{report}");
    let listen = format!("{{listen=\"{}\"}}", pong.addr());
    pong.wait_for_metric(&format!("pong_connections_open{listen}"), 0.0);
    assert_eq!(pong.metric("pong_tls_failures_total"), 0.0);
}

/// An h2c connection is counted open while it is, and no longer once it closed.
#[test]
fn h2c_connections_are_counted_closed_when_they_close() {
    let pong = Pong::start(&["--h2c", "--admin", "127.0.0.1:0"]);
    let out = std::process::Command::new("h2load")
        .args(["-n", "20", "-c", "4", "-m", "5"])
        .arg(pong.url())
        .output()
        .expect("h2load (nghttp2-client; test.sh installs it)");
    assert!(String::from_utf8_lossy(&out.stdout).contains("20 succeeded"));
    let listen = format!("{{listen=\"{}\"}}", pong.addr());
    pong.wait_for_metric(&format!("pong_connections_open{listen}"), 0.0);
    assert_eq!(
        pong.metric(&format!("pong_connections_accepted_total{listen}")),
        4.0
    );
}

/// A graceful stop says GOAWAY to h2 clients in two steps (RFC 9113 §6.8): the first with the
/// highest id, a PING, the second with the last stream served once the PING comes back; the
/// stream in progress still gets its `pong`, and pong ends. Seen by nghttp's frame log.
#[test]
fn a_stop_says_goaway_in_two_steps_and_the_stream_in_progress_finishes() {
    let mut pong = Pong::start(&["--h2c", "--admin", "127.0.0.1:0"]);
    let client = std::process::Command::new("nghttp")
        .args(["-nv", "-H", "sleep: 800-1000"])
        .arg(pong.url())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("nghttp (nghttp2-client; test.sh installs it)");
    // The stop comes once the stream is held, however long nghttp took to start.
    pong.wait_for_metric("pong_responses_in_progress", 1.0);
    pong.signal(libc::SIGTERM);
    let out = client.wait_with_output().unwrap();
    assert_succeeded(&out);
    let log = String::from_utf8_lossy(&out.stdout);
    // The request's stream (nghttp numbers it past its priority streams).
    let stream = log
        .split("recv (stream_id=")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no response: {log}"));
    let first = log
        .find("last_stream_id=2147483647, error_code=NO_ERROR")
        .unwrap_or_else(|| panic!("no first GOAWAY: {log}"));
    let second = log
        .find(&format!("last_stream_id={stream}, error_code=NO_ERROR"))
        .unwrap_or_else(|| panic!("no second GOAWAY naming stream {stream}: {log}"));
    let data = log
        .find(&format!(
            "recv DATA frame <length=4, flags=0x01, stream_id={stream}>"
        ))
        .unwrap_or_else(|| panic!("the stream was not finished: {log}"));
    assert!(first < second && second < data, "{log}");
    assert!(pong.wait_exit().success());
}
