//! httpwg-cli's RFC 9113 cases (h2spec's successor) against the codec behind a socket: the
//! example server, on a loopback port of its own. Every case must pass.
//!
//! httpwg is installed by ./test.sh (`cargo install httpwg-cli`, into target/tools) and found
//! through `THRONG_TEST_HTTPWG`, else on PATH; without it the test fails, saying so.

#[allow(dead_code)]
#[path = "../examples/h2c_server.rs"]
mod h2c_server;

use std::net::TcpListener;
use std::process::Command;

#[test]
fn every_rfc_9113_case_of_httpwg_passes() {
    let httpwg = std::env::var("THRONG_TEST_HTTPWG").unwrap_or_else(|_| "httpwg".into());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            std::thread::spawn(move || h2c_server::serve(socket));
        }
    });
    let output = Command::new(&httpwg)
        .args(["-a", &address.to_string(), "--frame-timeout", "5000"])
        .output()
        .unwrap_or_else(|e| {
            panic!("{httpwg}: {e}: install it with `cargo install httpwg-cli` (./test.sh does)")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let all = format!("{stdout}{stderr}");
    let failed: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("Test failed") || l.contains("❌"))
        .collect();
    let summary = all
        .lines()
        .rfind(|l| l.contains("Passed") && l.contains("tests in"))
        .unwrap_or("no summary");
    assert!(
        output.status.success() && failed.is_empty(),
        "httpwg: {summary}\n{}",
        failed.join("\n")
    );
    // The count, so a suite that ran nothing does not pass: 107 cases in httpwg-cli 0.2.5.
    let plain = without_colours(summary);
    let counted = plain
        .split_whitespace()
        .find_map(|w| {
            let (p, t) = w.split_once('/')?;
            Some((p.parse::<u32>().ok()?, t.parse::<u32>().ok()?))
        })
        .expect("a count of passed cases");
    assert_eq!(counted.0, counted.1, "{plain}");
    assert!(counted.1 >= 100, "only {} cases ran: {plain}", counted.1);
}

/// The line without its terminal colour codes (ESC [ ... m).
fn without_colours(line: &str) -> String {
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
