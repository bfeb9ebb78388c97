//! `throng scenario` end to end: a small scenario, every process started and stopped, the
//! results folder written.

mod common;

use common::{free_port_range, throng};

#[test]
fn a_small_scenario_runs_end_to_end_and_writes_its_folder() {
    let dir = std::env::temp_dir().join(format!("throng-scenario-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ports = free_port_range(3);
    let file = dir.join("small.toml");
    std::fs::write(
        &file,
        format!(
            "[pong]\nlisten = \"127.0.0.1:{}-{}\"\n\n[proxy]\nlisten = \"127.0.0.1:{}\"\n\n[monitor]\ninterval = \"250ms\"\n\n\
             [[phase]]\nname = \"warm-up\"\nrate = 50\nduration = \"2s\"\n\n\
             [[phase]]\nname = \"hold\"\nrate = 200\nduration = \"2s\"\nheaders = [\"sleep: 3000\"]\n",
            ports,
            ports + 1,
            ports + 2
        ),
    )
    .unwrap();
    let results = dir.join("run");
    let out = throng()
        .arg("scenario")
        .arg(&file)
        .arg("--dir")
        .arg(&results)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // 500 requests over TLS through the proxy, all answered; connections held during "hold".
    assert!(stdout.contains("all phases: 500 requests"), "{stdout}");
    assert!(stdout.contains("phase 02-hold: 400 requests"), "{stdout}");
    assert!(stdout.contains("success 100.000%"), "{stdout}");
    let peak: u64 = stdout
        .split("peak established TCP sockets: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        peak >= 4 * 200,
        "at least 200 end-to-end connections held: {stdout}"
    );
    for name in [
        "01-warm-up.bin",
        "02-hold.bin",
        "monitor.jsonl",
        "report.txt",
        "report.html",
        "proxy-access.log",
        "proxy.toml",
    ] {
        assert!(results.join(name).exists(), "{name} missing");
    }
    let access = std::fs::read_to_string(results.join("proxy-access.log")).unwrap();
    assert_eq!(
        access.lines().count(),
        500,
        "one access log line per request"
    );
    assert!(std::fs::read_to_string(results.join("report.txt"))
        .unwrap()
        .contains("== all phases"));
    // Everything it started is stopped: the ports are free again.
    for port in ports..ports + 3 {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} still taken"
        );
    }

    // A bad scenario is refused with its line before anything starts.
    std::fs::write(
        &file,
        "[[phase]]\nname = \"x\"\nrate = -1\nduration = \"1s\"\n",
    )
    .unwrap();
    let out = throng().arg("scenario").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("small.toml:3: phase[0].rate"));
    let _ = std::fs::remove_dir_all(&dir);
}
