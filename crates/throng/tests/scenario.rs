//! `throng scenario` end to end: a small scenario, every process started and stopped, the
//! results folder written.

mod common;

use common::{free_port_range, scratch_dir, throng};
use std::path::Path;

/// Runs `throng scenario FILE --dir RESULTS` to its end.
fn scenario(file: &Path, results: &Path) -> std::process::Output {
    throng()
        .arg("scenario")
        .arg(file)
        .arg("--dir")
        .arg(results)
        .output()
        .unwrap()
}

#[test]
fn a_small_scenario_runs_end_to_end_and_writes_its_folder() {
    let dir = scratch_dir("scenario");
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
    let out = scenario(&file, &results);
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

#[test]
fn the_same_phases_run_through_an_external_proxy() {
    let dir = scratch_dir("scenario-nginx");
    std::fs::create_dir_all(dir.join("nginx")).unwrap();
    let ports = free_port_range(3);
    let (pong, nginx_port) = (ports, ports + 2);
    // nginx with TLS in front of the scenario's pong ports: the proxy being compared.
    let (cert, key) = throng_tls::config::self_signed(&["localhost"]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    let d = dir.display();
    let conf = format!(
        "master_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/nginx/body;\n  proxy_temp_path {d}/nginx/proxy;\n\
           fastcgi_temp_path {d}/nginx/fastcgi;\n  uwsgi_temp_path {d}/nginx/uwsgi;\n  scgi_temp_path {d}/nginx/scgi;\n\
           upstream pong {{ server 127.0.0.1:{pong}; server 127.0.0.1:{}; keepalive 32; }}\n\
           server {{\n    listen 127.0.0.1:{nginx_port} ssl;\n    ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
             location / {{ proxy_pass http://pong; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n  }}\n}}\n",
        pong + 1
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut nginx = std::process::Command::new("/usr/sbin/nginx")
        .args([
            "-e",
            &format!("{d}/nginx/error.log"),
            "-p",
            &format!("{d}/nginx"),
            "-c",
            &format!("{d}/nginx.conf"),
            "-g",
            "daemon off;",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx is not installed: apt-get install nginx-light (.ci/run does)");
    common::wait_until(|| std::net::TcpStream::connect(("127.0.0.1", nginx_port)).ok())
        .expect("nginx listening");
    let file = dir.join("nginx.toml");
    std::fs::write(
        &file,
        format!(
            "[pong]\nlisten = \"127.0.0.1:{pong}-{}\"\n\n[proxy]\nexternal = \"127.0.0.1:{nginx_port}\"\ntls = true\n\n\
             [monitor]\ninterval = \"250ms\"\n\n[[phase]]\nname = \"steady\"\nrate = 100\nduration = \"2s\"\n",
            pong + 1
        ),
    )
    .unwrap();
    let out = scenario(&file, &dir.join("run"));
    let _ = nginx.kill();
    let _ = nginx.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all phases: 200 requests"), "{stdout}");
    assert!(stdout.contains("success 100.000%"), "{stdout}");
    // No throng proxy was started: its files are not there.
    assert!(!dir.join("run/proxy.toml").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

fn small_file(dir: &std::path::Path, ports: u16, phase_seconds: u32) -> std::path::PathBuf {
    let file = dir.join("s.toml");
    std::fs::write(
        &file,
        format!(
            "[pong]\nlisten = \"127.0.0.1:{ports}-{}\"\n\n[proxy]\nlisten = \"127.0.0.1:{}\"\n\n[monitor]\ninterval = \"250ms\"\n\n\
             [[phase]]\nname = \"long\"\nrate = 50\nduration = \"{phase_seconds}s\"\n",
            ports + 1,
            ports + 2
        ),
    )
    .unwrap();
    file
}

#[test]
fn a_component_that_cannot_start_is_named_and_the_others_are_stopped() {
    let dir = scratch_dir("scenario-busy");
    let ports = free_port_range(3);
    let file = small_file(&dir, ports, 2);
    // Someone else holds the proxy's port (without SO_REUSEPORT, so the proxy cannot share it).
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", ports + 2)).unwrap();
    let out = scenario(&file, &dir.join("run"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("proxy did not start"), "{stderr}");
    // pong, started before, was stopped: its ports are free.
    for port in ports..ports + 2 {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} still taken"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_ends_the_phase_and_still_writes_what_was_measured() {
    let dir = scratch_dir("scenario-int");
    let file = small_file(&dir, free_port_range(3), 60);
    let results = dir.join("run");
    let child = throng()
        .arg("scenario")
        .arg(&file)
        .arg("--dir")
        .arg(&results)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_until(|| results.join("01-long.bin").exists().then_some(()))
        .expect("phase started");
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "did not stop promptly"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    let report = std::fs::read_to_string(results.join("report.txt")).unwrap();
    assert!(report.contains("== 01-long"), "{report}");
    assert!(results.join("report.html").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn components_run_as_several_processes_and_a_phase_runs_alongside_another() {
    let dir = scratch_dir("scenario-procs");
    let ports = free_port_range(3);
    let file = dir.join("procs.toml");
    std::fs::write(
        &file,
        format!(
            "[pong]\nlisten = \"127.0.0.1:{}-{}\"\nprocs = 2\n\n[proxy]\nlisten = \"127.0.0.1:{}\"\nprocesses = 2\nthreads = 1\n\n[monitor]\ninterval = \"250ms\"\n\n\
             [[phase]]\nname = \"hold\"\nrate = 100\nduration = \"2s\"\nprocs = 2\nthreads = 1\nsource = \"127.0.0.2-127.0.0.3\"\n\
             targets = [[\"sleep: 2000-2500\"], [\"sleep: 500-600\", \"times: 3\"]]\n\n\
             [[phase]]\nname = \"probe\"\nat = \"1s\"\nrate = 20\nduration = \"1s\"\n",
            ports,
            ports + 1,
            ports + 2
        ),
    )
    .unwrap();
    let results = dir.join("run");
    let started = std::time::Instant::now();
    let out = scenario(&file, &results);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The probe ran during the hold, not after it: the two took about as long as the hold.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(12),
        "{stderr}"
    );
    let done = |phase: &str| {
        stderr
            .find(&format!("phase {phase}: done"))
            .unwrap_or_else(|| panic!("{stderr}"))
    };
    assert!(
        done("probe") < done("hold"),
        "the probe ends first: {stderr}"
    );
    assert!(stdout.contains("phase 01-hold: 200 requests"), "{stdout}");
    assert!(stdout.contains("phase 02-probe: 20 requests"), "{stdout}");
    assert!(stdout.contains("success 100.000%"), "{stdout}");
    assert!(stdout.contains("errors: none"), "{stdout}");
    // Memory per connection of each component, its processes summed (a master and its
    // workers), and of the kernel.
    for line in [
        "proxy: ",
        "(3 processes)",
        "pong: ",
        "attack: ",
        "B per socket",
        "projection: ",
    ] {
        assert!(stdout.contains(line), "{line:?} missing in:\n{stdout}");
    }
    // Both targets were used in turn, and the connections came from both source addresses.
    let report = std::fs::read_to_string(results.join("report.txt")).unwrap();
    assert!(
        report.contains("127.0.0.2=") && report.contains("127.0.0.3="),
        "{report}"
    );
    let access = std::fs::read_to_string(results.join("proxy-access.log")).unwrap();
    assert_eq!(
        access.lines().count(),
        220,
        "one access log line per request"
    );
    for port in ports..ports + 3 {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} still taken"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A phase on `hosts`: a part per host, started through `[hosts]`' launcher (here a stand-in for
/// ssh that runs the command locally, and refuses host `down` as ssh would), at one
/// `--start-at`; each part's file brought back by `collect` and merged into one phase; the host
/// that could not be reached named with the launcher's error, and the rest still reported.
#[test]
fn a_phase_split_over_hosts_by_a_launcher_reports_as_one() {
    let dir = scratch_dir("scenario-hosts");
    let ports = free_port_range(3);
    let launcher = dir.join("fake-ssh");
    std::fs::write(
        &launcher,
        "#!/bin/sh\nhost=$1; shift\n\
         if [ \"$host\" = down ]; then echo \"ssh: connect to host $host port 22: Connection refused\" >&2; exit 255; fi\n\
         exec \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &launcher,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let remote = dir.join("on-the-hosts");
    std::fs::create_dir_all(&remote).unwrap();
    let file = dir.join("hosts.toml");
    std::fs::write(
        &file,
        format!(
            "[pong]\nlisten = \"127.0.0.1:{}-{}\"\n\n[proxy]\nlisten = \"127.0.0.1:{}\"\n\n[monitor]\ninterval = \"250ms\"\n\n\
             [hosts]\nnames = [\"c0\", \"c1\", \"down\"]\nlauncher = \"{} {{host}}\"\nresults = \"{}\"\n\
             collect = \"cp {{remote}} {{local}}\"\nstart_lead = \"2s\"\nmonitor = true\n\n\
             [[phase]]\nname = \"spread\"\nrate = 90\nduration = \"2s\"\nhosts = [\"c0\", \"c1\", \"down\"]\n",
            ports,
            ports + 1,
            ports + 2,
            launcher.display(),
            remote.display()
        ),
    )
    .unwrap();
    let results = dir.join("run");
    let out = scenario(&file, &results);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let said = String::from_utf8_lossy(&out.stderr);
    // The unreachable host fails the run, and says so; the two others report.
    assert!(!out.status.success(), "{stdout}");
    assert!(
        said.contains("part 0/3 on c0") && said.contains("part 2/3 on down"),
        "{said}"
    );
    assert!(
        said.contains("phase spread on down: the attack ended with exit status: 255"),
        "{said}"
    );
    let log = std::fs::read_to_string(results.join("attack.log")).unwrap();
    assert!(
        log.contains("connect to host down port 22: Connection refused"),
        "{log}"
    );
    // Two parts of three: two thirds of the schedule's 180 requests, one phase.
    assert!(
        stdout.contains("phase 01-spread (2 hosts): 120 requests"),
        "{stdout}"
    );
    assert!(stdout.contains("success 100.000%"), "{stdout}");
    for host in ["c0", "c1"] {
        assert!(
            results.join(format!("01-spread.{host}.bin")).exists(),
            "{host}'s part missing"
        );
        assert!(remote.join(format!("01-spread.{host}.bin")).exists());
    }
    // A monitor ran on each host through the launcher, its samples came back and are drawn
    // a series per host; the one that could not be reached is said.
    for host in ["c0", "c1"] {
        let samples = std::fs::read_to_string(results.join(format!("monitor.{host}.jsonl")))
            .unwrap_or_else(|e| panic!("monitor.{host}.jsonl: {e}\n{said}"));
        let first: serde_json::Value =
            serde_json::from_str(samples.lines().next().unwrap()).unwrap();
        assert_eq!(first["host"], host);
    }
    assert!(said.contains("monitor on down: collect:"), "{said}");
    let page = std::fs::read_to_string(results.join("report.html")).unwrap();
    for host in ["c0", "c1"] {
        assert!(
            page.contains(&format!("■ {host}</text>")),
            "no series for {host}"
        );
    }
    // The parts are one run's: `throng report` merges them, naming the missing one.
    let report = throng()
        .args(["report"])
        .arg(results.join("01-spread.c0.bin"))
        .arg(results.join("01-spread.c1.bin"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("1 of 3 parts missing: 2"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_scenario_starts_mosquitto_and_runs_mqtt_phases_through_the_proxy_beside_http() {
    let dir = scratch_dir("scenario-mqtt");
    let ports = free_port_range(6);
    let file = dir.join("mqtt.toml");
    // Two brokers, bridged by the scenario: a subscriber gets every message whichever broker
    // the proxy gave its publisher.
    std::fs::write(
        &file,
        format!(
            "[pong]\nlisten = \"127.0.0.1:{ports}-{}\"\n\n[proxy]\nlisten = \"127.0.0.1:{}\"\n\n\
             [mqtt]\nbrokers = \"127.0.0.1:{}-{}\"\nlisten = \"127.0.0.1:{}\"\n\n[monitor]\ninterval = \"250ms\"\n\n\
             [[phase]]\nname = \"hold\"\nmqtt = \"conn\"\nclients = 300\nconnect_rate = 300\nkeep_alive = 1\nduration = \"3s\"\n\n\
             [[phase]]\nname = \"publish\"\nat = \"1500ms\"\nmqtt = \"pub\"\nclients = 10\nsubscribers = 2\nrate = 300\nqos = 1\nduration = \"2s\"\n\n\
             [[phase]]\nname = \"http\"\nrate = 50\nduration = \"1s\"\n",
            ports + 1,
            ports + 2,
            ports + 3,
            ports + 4,
            ports + 5
        ),
    )
    .unwrap();
    let results = dir.join("run");
    let out = scenario(&file, &results);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("2 processes, bridged to the first"),
        "{stderr}"
    );
    // 300 connections held over TLS through the proxy's MQTT frontend, pinging every second;
    // alongside, 600 messages at QoS 1 to two subscribers, none lost.
    assert!(
        stdout.contains("phase 01-hold: mqtt conn, 300 of 300 connected"),
        "{stdout}"
    );
    assert!(
        stdout.contains("phase 02-publish: mqtt pub, 12 of 12 connected"),
        "{stdout}"
    );
    assert!(
        stdout.contains("600 messages at 300.0/s (offered 300.0/s), 1200 received, 0 lost"),
        "{stdout}"
    );
    assert!(stdout.contains("phase 03-http: 50 requests"), "{stdout}");
    let report = std::fs::read_to_string(results.join("report.txt")).unwrap();
    assert!(report.contains("== 01-hold\nConnections"), "{report}");
    // The proxy read each CONNECT: its log names the scenario's client ids.
    let log = std::fs::read_to_string(results.join("proxy-access.log")).unwrap();
    assert!(log.contains("throng-hold-conn-299"), "{log}");
    // A page for the HTTP phase and one for the MQTT phases; mosquitto was stopped.
    assert!(results.join("report.html").exists());
    let page = std::fs::read_to_string(results.join("report-mqtt.html")).unwrap();
    assert!(page.contains("Connections held"));
    for port in [ports + 3, ports + 4] {
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A phase's thresholds are judged on its results at the end: met ones said, a broken one
/// said with its figure and the scenario's exit status 1, everything still written; a phase
/// with `http2 = true` goes over HTTP/2 (the proxy's frontend then offers h2); a malformed
/// threshold is refused with its file, line and key before anything starts.
#[test]
fn phase_thresholds_gate_the_exit_status_and_a_phase_runs_over_http2() {
    let dir = scratch_dir("scenario-thresholds");
    let ports = free_port_range(3);
    let file = dir.join("t.toml");
    let write = |phases: &str| {
        std::fs::write(
            &file,
            format!(
                "[pong]\nlisten = \"127.0.0.1:{ports}-{}\"\n\n[proxy]\nlisten = \"127.0.0.1:{}\"\n\n[monitor]\ninterval = \"250ms\"\n\n{phases}",
                ports + 1,
                ports + 2
            ),
        )
        .unwrap();
    };
    write(
        "[[phase]]\nname = \"fast\"\nrate = 50\nduration = \"1s\"\nhttp2 = true\n\
         thresholds = [\"success>=99%\", \"requests==50\"]\n\n\
         [[phase]]\nname = \"slow\"\nrate = 50\nduration = \"1s\"\nheaders = [\"sleep: 200\"]\n\
         thresholds = [\"p99<1ms\"]\n",
    );
    let results = dir.join("run");
    let out = scenario(&file, &results);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let said = format!("{stdout}{stderr}");
    assert!(said.contains("phase fast: Thresholds: all 2 met"), "{said}");
    assert!(
        said.contains("phase slow: Thresholds: 1 of 1 BROKEN"),
        "{said}"
    );
    assert!(said.contains("p99<1ms: BROKEN (p99 "), "{said}");
    assert!(
        stderr.contains("a threshold of phase slow is broken"),
        "{stderr}"
    );
    let report = std::fs::read_to_string(results.join("report.txt")).unwrap();
    assert!(
        report.contains("phase slow: Thresholds: 1 of 1 BROKEN"),
        "{report}"
    );
    // The first phase went over HTTP/2, through the proxy's TLS frontend.
    let fast = throng()
        .args(["report", "-type=json"])
        .arg(results.join("01-fast.bin"))
        .output()
        .unwrap();
    let fast: serde_json::Value = serde_json::from_slice(&fast.stdout).unwrap();
    assert_eq!(fast["throng"]["http2"], 50, "{fast}");

    write("[[phase]]\nname = \"x\"\nrate = 10\nduration = \"1s\"\nthresholds = [\"p99 < soon\"]\n");
    let out = throng().arg("scenario").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("t.toml:14: phase[0].thresholds[0]")
            && stderr.contains("a latency is a duration"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
