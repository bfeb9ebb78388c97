//! Several processes of one command, past the open-files limit of one: `global.processes` for
//! the proxy, `--procs` for pong and the attack. Real processes on loopback.

mod common;

use common::proxy::{Dir, Proxy};
use common::{
    assert_succeeded, attack, free_port_range, http_exchange, report_json, throng, wait_until, Pong,
};

/// The pids of `parent`'s children, from /proc.
fn children(parent: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let mut fields = after.split_whitespace();
        let state = fields.next();
        let ppid: i32 = fields.next().unwrap().parse().unwrap();
        if ppid == parent && state != Some("Z") {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn proxy_workers_share_the_port_are_restarted_and_report_as_one() {
    let pong = Pong::start(&["--threads", "1"]);
    let port = free_port_range(1);
    let dir = Dir::new("processes");
    let mut proxy = Proxy::start(
        &dir,
        &format!(
            "[global]\nprocesses = 2\nthreads = 1\nadmin = \"127.0.0.1:0\"\n\n\
             [frontends.web]\nbind = [\"127.0.0.1:{port}\"]\ndefault_backend = \"app\"\n\n\
             [backends.app]\nservers = [{{ name = \"p1\", address = \"{}\" }}]\n",
            pong.addr()
        ),
    );
    let addr = proxy.addr("web");
    let workers = children(proxy.pid());
    assert_eq!(workers.len(), 2, "two worker processes");
    // Requests on fresh connections spread over both (SO_REUSEPORT hashes each connection).
    for _ in 0..40 {
        let (status, _, body) = http_exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 200);
        assert!(body.contains("pong"), "{body}");
    }
    // One merged /metrics: the sessions of both add up.
    assert_eq!(proxy.metric("throng_proxy_processes"), 2.0);
    assert_eq!(
        proxy.metric("throng_proxy_frontend_sessions_total{frontend=\"web\"}"),
        40.0
    );
    assert_eq!(
        proxy.metric("throng_proxy_server_up{backend=\"app\",server=\"p1\"}"),
        1.0
    );
    let (status, _, page) = http_exchange(
        proxy.admin.unwrap(),
        b"GET /stats HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        page.contains("2 processes") && page.contains("frontend web"),
        "{page}"
    );
    // The access log of both comes out of the master, a whole line each.
    wait_until(|| (proxy.log().len() == 40).then_some(())).expect("40 log lines");

    // A worker killed outright is started again, and the port keeps answering.
    // SAFETY: kill(2) on a worker of our own child.
    unsafe { libc::kill(workers[0], libc::SIGKILL) };
    proxy.wait_for_message("starting it again");
    wait_until(|| (proxy.metric("throng_proxy_process_restarts_total") == 1.0).then_some(()))
        .expect("the restart counted");
    wait_until(|| (children(proxy.pid()).len() == 2).then_some(())).expect("two workers again");
    for _ in 0..10 {
        let (status, _, _) = http_exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 200);
    }

    // SIGTERM stops every worker, then the master.
    let workers = children(proxy.pid());
    proxy.signal(libc::SIGTERM);
    assert!(proxy.wait_exit().success(), "{}", proxy.stderr());
    for pid in workers {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z")),
            "worker {pid} still runs"
        );
    }
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port still taken"
    );
}

#[test]
fn a_port_zero_bind_is_refused_with_processes() {
    let dir = Dir::new("processes-port-zero");
    let path = dir.write(
        "proxy.toml",
        "[global]\nprocesses = 2\n[frontends.web]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n[backends.app]\nservers = [{ name = \"p\", address = \"127.0.0.1:1\" }]\n",
    );
    let out = throng()
        .args(["proxy", "--check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("frontends.web.bind") && stderr.contains("must be given"),
        "{stderr}"
    );
}

#[test]
fn pong_procs_share_the_ports_and_report_as_one() {
    let port = free_port_range(1);
    let listen = format!("127.0.0.1:{port}");
    let mut pong = Pong::start(&[
        "--listen",
        &listen,
        "--threads",
        "1",
        "--procs",
        "3",
        "--admin",
        "127.0.0.1:0",
    ]);
    assert_eq!(children(pong.pid()).len(), 3);
    for _ in 0..20 {
        let (status, _, body) = http_exchange(
            pong.addr(),
            b"GET / HTTP/1.1\r\nHost: a\r\nsleep: 1-2\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status, 200);
        assert!(body.contains("pong"), "{body}");
    }
    // One /metrics for the three: the requests of all add up.
    assert_eq!(pong.metric("pong_processes"), 3.0);
    let requests: f64 = pong
        .metrics()
        .lines()
        .filter(|l| l.starts_with("pong_requests_total"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(requests, 20.0);
    pong.signal(libc::SIGTERM);
    assert!(pong.wait_exit().success(), "{}", pong.stderr());
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port still taken"
    );
}

#[test]
fn an_attack_split_over_processes_is_one_schedule_and_one_result() {
    let pong = Pong::start(&["--threads", "1"]);
    let dir = Dir::new("attack-procs");
    let file = dir.path("split.bin");
    let out = attack(
        &format!("GET {}a\n\nGET {}b\n", pong.url(), pong.url()),
        &[
            "-rate=400",
            "-duration=2s",
            "--threads",
            "1",
            "--procs",
            "3",
            "-output",
            file.to_str().unwrap(),
        ],
    );
    assert_succeeded(&out);
    // Exactly the 800 requests one process would have sent: sequence numbers 0..800, each once,
    // each at its own intended time, the targets in turn.
    let csv = throng()
        .args(["encode", "--to", "csv"])
        .arg(&file)
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&csv.stdout).to_string();
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (seq, intended, url) = (column("seq"), column("intended"), column("url"));
    let mut seen: Vec<(u64, u64, String)> = rows
        .map(|row| {
            let fields: Vec<&str> = row.split(',').collect();
            (
                fields[seq].parse().unwrap(),
                fields[intended].parse().unwrap(),
                fields[url].to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 800);
    let start = seen[0].1;
    for (i, (seq, intended, url)) in seen.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        // Due at start + i / 400 s (to the nanosecond's rounding).
        let due = start + i as u64 * 2_500_000;
        assert!(
            intended.abs_diff(due) <= 1,
            "request {i} due at {intended}, not {due}"
        );
        assert!(
            url.ends_with(if i % 2 == 0 { "a" } else { "b" }),
            "{i}: {url}"
        );
    }
    let report = report_json(&[&file]);
    assert_eq!(report["requests"], 800);
    assert_eq!(report["success"], 1.0);
    assert_eq!(report["throng"]["runs"], 1, "one run, not three");
    assert_eq!(report["throng"]["scheduled"], 800);
    let offered = report["throng"]["offered_rate"].as_f64().unwrap();
    assert!((offered - 400.0).abs() < 1.0, "offered {offered}");
}

/// Out of source ports toward a server, the proxy answers 503 and says so, naming the pool
/// and how to widen it. In a network namespace of its own, where the ephemeral port range
/// (a per-namespace setting) can be six ports wide without touching the machine's.
#[test]
fn port_exhaustion_toward_a_server_names_the_pool_and_the_way_out() {
    let ns = format!("throng-ports-{}", std::process::id());
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        ip(&["netns", "add", &ns]),
        "cannot make a network namespace (needs root and iproute2)"
    );
    let dir = Dir::new("ports");
    let config = dir.write(
        "proxy.toml",
        "[global]\nthreads = 1\nlog = \"off\"\n[frontends.web]\nbind = [\"127.0.0.1:8088\"]\ndefault_backend = \"pong\"\n\
         [backends.pong]\nservers = [{ name = \"p\", address = \"127.0.0.1:8282\" }]\n",
    );
    let throng = env!("CARGO_BIN_EXE_throng");
    // Twelve held requests, from client ports outside the range: the proxy finds six ports
    // toward pong, and no more.
    let script = format!(
        "ip link set lo up\n\
         echo '40000 40005' > /proc/sys/net/ipv4/ip_local_port_range\n\
         {throng} pong --listen 127.0.0.1:8282 --threads 1 >/dev/null 2>&1 & pong=$!\n\
         {throng} proxy -c {config} >/dev/null 2>{log} & proxy=$!\n\
         for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8088/ 2>/dev/null && break; sleep 0.1; done\n\
         sleep 1\n\
         for i in $(seq 12); do curl -s -m 10 --local-port 50000-50100 -H 'sleep: 2000-2000' -o /dev/null -w '%{{http_code}}\\n' http://127.0.0.1:8088/ & done\n\
         wait %3 %4 %5 %6 %7 %8 %9 %10 %11 %12 %13 %14\n\
         kill $proxy $pong\n",
        config = config.display(),
        log = dir.path("proxy.log").display(),
    );
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "bash", "-c", &script])
        .output()
        .unwrap();
    ip(&["netns", "delete", &ns]);
    let codes = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(dir.path("proxy.log")).unwrap_or_default();
    // About six get through (one may reuse the readiness probe's idle server connection).
    let ok = codes.lines().filter(|c| *c == "200").count();
    let refused = codes.lines().filter(|c| *c == "503").count();
    assert_eq!(ok + refused, 12, "{codes}\n{log}");
    assert!(ok >= 5 && refused >= 5, "{codes}\n{log}");
    assert!(
        log.contains("backend pong: no free source port toward 127.0.0.1:8282")
            && log.contains("6 ports per server (net.ipv4.ip_local_port_range 40000-40005)")
            && log.contains("add addresses to backends.pong.source"),
        "{log}"
    );
}

/// A returning TLS client resumes its session whichever worker the kernel hands it to: the
/// workers share the master's ticket key (each with its own, only one in N would).
#[test]
fn any_worker_resumes_a_session_another_began() {
    let pong = Pong::start(&["--threads", "1"]);
    let port = free_port_range(1);
    let dir = Dir::new("processes-tickets");
    dir.certificate("site", &["localhost"]);
    let _proxy = Proxy::start(
        &dir,
        &format!(
            "[global]\nprocesses = 4\nthreads = 1\nlog = \"off\"\n\n\
             [frontends.tls]\nbind = [\"127.0.0.1:{port}\"]\ndefault_backend = \"app\"\n\
             tls = {{ certificates = [{{ cert = \"site.pem\", key = \"site.key\" }}] }}\n\n\
             [backends.app]\nservers = [{{ name = \"p1\", address = \"{}\" }}]\n",
            pong.addr()
        ),
    );
    // A new connection per request, 200 of them, each spread by the kernel over 4 workers.
    let file = dir.path("resume.bin");
    let out = attack(
        &format!("GET https://localhost:{port}/\n"),
        &[
            "-insecure",
            "-keepalive=false",
            "-rate=200",
            "-duration=1s",
            "--threads",
            "1",
            "-output",
            file.to_str().unwrap(),
        ],
    );
    assert_succeeded(&out);
    let report = report_json(&[&file]);
    assert_eq!(report["success"], 1.0, "{report}");
    let handshakes = report["throng"]["tls"]["count"].as_u64().unwrap();
    let resumed = report["throng"]["tls_resumed"].as_u64().unwrap();
    assert_eq!(handshakes, 200, "{report}");
    // The first handshakes come before any ticket (more of them on a busy machine, where a
    // handshake takes longer than the 5 ms between connections: 173 of 200 resumed beside a
    // fuzzer); after that, all resume. With a key per worker one in four would: about 50.
    assert!(resumed >= 150, "{resumed} of {handshakes} resumed");
}
