//! One run over many machines, with network namespaces as the machines: four client hosts, a
//! proxy host and a backend host, each with its own address on a bridge (veth pairs), the
//! parts started by pdsh (`-R exec` with `ip netns exec %h`) at one `--start-at`, their files
//! merged into one report.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};

const SUBNET: &str = "10.77.0";

/// The test's hosts: namespaces on one bridge (itself in a namespace), removed when dropped.
struct Lab {
    prefix: String,
    hosts: Vec<String>,
}

impl Lab {
    fn new(hosts: &[&str]) -> Lab {
        // Tests run side by side: each lab its own names.
        static LABS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let lab_number = LABS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let prefix = format!("throng-lab-{pid}-{lab_number}");
        let lab = Lab {
            prefix: prefix.clone(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        };
        let switch = format!("{prefix}-sw");
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for (k, host) in hosts.iter().enumerate() {
            let ns = lab.namespace(host);
            ip(&["netns", "add", &ns]);
            // Names unique in the root namespace while the pair is made there.
            let (inside, outside) = (
                format!("tl{}{lab_number}{k}a", pid % 100_000),
                format!("tl{}{lab_number}{k}b", pid % 100_000),
            );
            ip(&[
                "link", "add", &inside, "type", "veth", "peer", "name", &outside,
            ]);
            ip(&["link", "set", &inside, "netns", &ns]);
            ip(&["link", "set", &outside, "netns", &switch]);
            ip(&[
                "-n", &switch, "link", "set", &outside, "master", "br0", "up",
            ]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", lab.addr(k)),
                "dev",
                &inside,
            ]);
            ip(&["-n", &ns, "link", "set", &inside, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn namespace(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    fn addr(&self, k: usize) -> String {
        format!("{SUBNET}.{}", 10 + k)
    }

    fn addr_of(&self, host: &str) -> String {
        self.addr(self.hosts.iter().position(|h| h == host).unwrap())
    }

    /// `throng ARGS` on `host`.
    fn throng(&self, host: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args([
                "netns",
                "exec",
                &self.namespace(host),
                env!("CARGO_BIN_EXE_throng"),
            ])
            .args(args);
        command
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.namespace(host)])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &format!("{}-sw", self.prefix)])
            .status();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("iproute2 (.ci/run installs it)");
    assert!(
        status.success(),
        "ip {args:?}: this test needs root and iproute2"
    );
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn four_client_hosts_started_by_pdsh_make_one_run_through_the_proxy_host() {
    let lab = Lab::new(&["c0", "c1", "c2", "c3", "proxy", "backend"]);
    let dir = scratch_dir("lab");
    let backend = format!("{}:8080", lab.addr_of("backend"));
    let _pong = Killed(
        lab.throng("backend", &["pong", "--listen", &backend])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let log = dir.join("access.log");
    let config = format!(
        "[global]\nthreads = 1\nlog = \"file:{}\"\n\n[frontends.web]\nbind = [\"{}:8443\"]\n\
         default_backend = \"pong\"\ntls = {{ self_signed = [\"localhost\"] }}\n\n\
         [backends.pong]\nservers = [{{ name = \"p\", address = \"{backend}\" }}]\n",
        log.display(),
        lab.addr_of("proxy")
    );
    std::fs::write(dir.join("proxy.toml"), config).unwrap();
    let _proxy = Killed(
        lab.throng(
            "proxy",
            &["proxy", "-c", dir.join("proxy.toml").to_str().unwrap()],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let target = format!("https://{}:8443/", lab.addr_of("proxy"));
    // The proxy host answers once it is up (seen from a client host).
    let up = wait_until(|| answered(&lab, "c0", &target).then_some(()));
    assert!(up.is_some(), "the proxy host did not answer");

    // pdsh starts the four parts, each in its host, at one shared start.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3;
    let script = format!(
        "echo 'GET {target}' | {throng} attack -rate=400 -duration=2s -insecure -threads=1 \
         --part %n/4 --start-at {start} -output {dir}/run-%h.bin",
        throng = env!("CARGO_BIN_EXE_throng"),
        dir = dir.display()
    );
    let pdsh = Command::new("pdsh")
        .args(["-R", "exec", "-w", "c[0-3]", "ip", "netns", "exec"])
        .arg(format!("{}-%h", lab.prefix))
        .args(["sh", "-c", &script])
        .output()
        .expect("pdsh (.ci/run installs it)");
    assert_succeeded(&pdsh);
    let files: Vec<_> = (0..4).map(|k| dir.join(format!("run-c{k}.bin"))).collect();
    let report = report_json(&files);
    // One run: the schedule's 800 requests, each once, none failed.
    assert_eq!(report["throng"]["scheduled"], 800, "{report}");
    let requests = report["requests"].as_u64().unwrap() as usize;
    assert!(requests > 700, "{report}");
    assert_eq!(report["success"], 1.0, "{report}");
    let parts = &report["throng"]["parts"];
    assert_eq!(parts["of"], 4, "{report}");
    assert_eq!(parts["missing"], serde_json::json!([]), "{report}");
    // Over the veth links from each client host's own address, not loopback.
    let lines = wait_until(|| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.lines().count() >= requests).then_some(text)
    })
    .expect("the proxy's access log");
    for k in 0..4 {
        let from = format!("{}:", lab.addr(k));
        assert!(
            lines.contains(&from),
            "no connection from {from} in:\n{lines}"
        );
    }
    assert!(!lines.contains("127.0.0.1"), "{lines}");
}

/// Whether a request from `host` to `target` is answered 200 (a one-request attack, reported).
fn answered(lab: &Lab, host: &str, target: &str) -> bool {
    use std::io::Write;
    let mut attack = lab
        .throng(
            host,
            &[
                "attack",
                "-rate=1",
                "-duration=1s",
                "-insecure",
                "-output",
                "-",
            ],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let targets = format!("GET {target}\n");
    attack
        .stdin
        .take()
        .unwrap()
        .write_all(targets.as_bytes())
        .unwrap();
    let results = attack.wait_with_output().unwrap().stdout;
    let mut report = throng()
        .args(["report", "-type=json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    report.stdin.take().unwrap().write_all(&results).unwrap();
    let report = report.wait_with_output().unwrap();
    serde_json::from_slice::<serde_json::Value>(&report.stdout)
        .is_ok_and(|r| r["status_codes"]["200"] == 1)
}

/// `throng scenario` run on the proxy host, pong on a backend host and its phase split over two
/// client hosts, all through the launcher `ip netns exec {host}`: one phase of the schedule's
/// requests, from each client host's own address over the veth links, each part itself two
/// processes; pong and the hosts' monitors stopped with the scenario.
#[test]
fn a_scenario_on_the_proxy_host_runs_its_phase_from_two_client_hosts() {
    let lab = Lab::new(&["c0", "c1", "proxy", "backend"]);
    let dir = scratch_dir("lab-scenario");
    let file = dir.join("lab.toml");
    std::fs::write(
        &file,
        format!(
            "[pong]\nprocs = 2\n[pong.hosts]\nbackend = \"{}:8282-8283\"\n\n\
             [proxy]\nlisten = \"{}:8443\"\n\n\
             [monitor]\ninterval = \"250ms\"\n\n\
             [hosts]\nnames = [\"c0\", \"c1\"]\nlauncher = \"ip netns exec {}-{{host}}\"\nstart_lead = \"2s\"\nmonitor = true\n\n\
             [[phase]]\nname = \"spread\"\nrate = 100\nduration = \"2s\"\nhosts = [\"c0\", \"c1\"]\nprocs = 2\n",
            lab.addr_of("backend"),
            lab.addr_of("proxy"),
            lab.prefix
        ),
    )
    .unwrap();
    let results = dir.join("run");
    let out = lab
        .throng(
            "proxy",
            &[
                "scenario",
                file.to_str().unwrap(),
                "--dir",
                results.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("phase 01-spread (2 hosts): 200 requests"),
        "{stdout}"
    );
    assert!(stdout.contains("success 100.000%"), "{stdout}");
    let access = std::fs::read_to_string(results.join("proxy-access.log")).unwrap();
    for k in 0..2 {
        let from = format!("{}:", lab.addr(k));
        assert!(
            access.contains(&from),
            "no request from {from} in:\n{access}"
        );
    }
    // Each part names its host (namespaces share the machine's host name).
    let report = std::fs::read_to_string(results.join("report.txt")).unwrap();
    for host in ["c0", "c1"] {
        assert!(
            report.contains(&format!(" {host} ")),
            "no part from {host} in:\n{report}"
        );
    }
    assert!(
        stdout.contains("sockets on this machine, the proxy's two here"),
        "{stdout}"
    );
    // Every request was answered, and the only pong is the backend host's (the proxy host
    // has none), so it was reached over the link.
    assert!(results.join("pong.backend.log").exists());
    for host in ["c0", "c1", "backend"] {
        let samples = results.join(format!("monitor.{host}.jsonl"));
        assert!(samples.exists(), "no monitor samples from {host}");
    }
    // Nothing is left running on the hosts.
    for host in ["c0", "c1", "backend"] {
        let left = Command::new("ip")
            .args(["netns", "pids", &lab.namespace(host)])
            .output()
            .unwrap();
        let pids = String::from_utf8_lossy(&left.stdout);
        assert!(pids.trim().is_empty(), "still running on {host}: {pids}");
    }
}
