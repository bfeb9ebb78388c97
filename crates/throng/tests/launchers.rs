//! The launchers of docs/distributed.md run for real, their recipes taken from that page so
//! that the page cannot drift from what works:
//! - Slurm: Debian's `slurm-wlm` and `munge` on one node (the test makes the munge key and
//!   starts `munged`, `slurmctld` and `slurmd` in a folder of its own, and stops them), the
//!   page's `srun` line run as `srun -N1 -n4 --overcommit`, each task taking its part from
//!   `SLURM_PROCID`/`SLURM_NTASKS`;
//! - Kubernetes: the page's Indexed Job validated against Kubernetes' schemas
//!   (`kubernetes-validate`, which `./test.sh` installs in `target/python`), then its
//!   container's args run verbatim as four pods would run them.
//!
//! Either way the parts' files must report as one run equal to the whole schedule.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const PAGE: &str = include_str!("../../../docs/distributed.md");

/// The first fenced block of `language` after `heading` on the page.
fn recipe(heading: &str, language: &str) -> String {
    let section = &PAGE[PAGE.find(heading).unwrap_or_else(|| panic!("no {heading}"))..];
    let fence = format!("```{language}\n");
    let start = section.find(&fence).expect("a fenced block") + fence.len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_string()
}

/// `text` with `from` replaced, which must be there (or the page changed under the test).
#[track_caller]
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the recipe no longer has {from:?}:\n{text}"
    );
    text.replace(from, to)
}

/// The parts' files as `throng report` merges them: one run of `rate` for `seconds`.
fn assert_one_whole_run(files: &[PathBuf], parts: usize, rate: u64, seconds: u64) {
    assert_eq!(files.len(), parts, "{files:?}");
    let report = report_json(files);
    assert_eq!(report["requests"], rate * seconds, "{report}");
    assert_eq!(report["success"], 1.0, "{report}");
    assert_eq!(report["throng"]["offered_rate"], rate as f64, "{report}");
    let found = &report["throng"]["parts"];
    assert_eq!(found["of"], parts, "{report}");
    assert_eq!(found["missing"], serde_json::json!([]), "{report}");
    let each = found["each"].as_array().unwrap();
    assert_eq!(each.len(), parts, "{report}");
    // The schedule dealt out evenly: every part sent its share.
    for part in each {
        assert_eq!(part["requests"], rate * seconds / parts as u64, "{report}");
    }
}

/// The daemons of a one-node Slurm cluster, killed when dropped.
struct Slurm {
    dir: PathBuf,
    conf: PathBuf,
    daemons: Vec<Child>,
}

impl Drop for Slurm {
    fn drop(&mut self) {
        for daemon in &mut self.daemons {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[track_caller]
fn installed(program: &str, package: &str) {
    let found = ["/usr/bin", "/usr/sbin"]
        .iter()
        .any(|dir| Path::new(dir).join(program).exists());
    assert!(
        found,
        "{program} is not installed: apt-get install {package} (./test.sh does)"
    );
}

impl Slurm {
    fn start() -> Slurm {
        for (program, package) in [
            ("munged", "munge"),
            ("mungekey", "munge"),
            ("slurmctld", "slurmctld"),
            ("slurmd", "slurmd"),
            ("srun", "slurm-client"),
        ] {
            installed(program, package);
        }
        let dir = scratch_dir("slurm");
        for sub in ["munge", "state", "spool"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let mut slurm = Slurm {
            conf: dir.join("slurm.conf"),
            dir: dir.clone(),
            daemons: Vec::new(),
        };
        // munge: a key of the test's own, and a daemon on a socket of its own.
        let key = dir.join("munge/munge.key");
        let made = Command::new("mungekey")
            .arg("--create")
            .arg("--keyfile")
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success(), "mungekey");
        let socket = dir.join("munge/socket");
        let munged = Command::new("munged")
            .args(["--foreground", "--force"])
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("munge/pid").display()))
            .arg(format!("--log-file={}", dir.join("munge/log").display()))
            .arg(format!("--seed-file={}", dir.join("munge/seed").display()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        slurm.daemons.push(munged);
        wait_until(|| socket.exists().then_some(())).expect("munged's socket");

        let node = String::from_utf8(Command::new("hostname").arg("-s").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let ports = free_port_range(2);
        let d = dir.display();
        let conf = format!(
            "ClusterName=throngtest\n\
             SlurmctldHost={node}(127.0.0.1)\n\
             SlurmctldPort={ports}\n\
             SlurmdPort={}\n\
             SlurmUser=root\n\
             AuthType=auth/munge\n\
             AuthInfo=socket={}\n\
             CredType=cred/munge\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             MpiDefault=none\n\
             ReturnToService=2\n\
             NodeName={node} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n\
             PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES\n",
            ports + 1,
            socket.display()
        );
        std::fs::write(&slurm.conf, conf).unwrap();
        let daemon = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .env("SLURM_CONF", &slurm.conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let controller = daemon("slurmctld", &["-D", "-i"]);
        slurm.daemons.push(controller);
        let node_daemon = daemon("slurmd", &["-D", "-N", &node]);
        slurm.daemons.push(node_daemon);
        let idle = wait_until(|| {
            let out = Command::new("sinfo")
                .args(["-h", "-o", "%T"])
                .env("SLURM_CONF", &slurm.conf)
                .output()
                .ok()?;
            (String::from_utf8_lossy(&out.stdout).trim() == "idle").then_some(())
        });
        assert!(idle.is_some(), "the node never came up:\n{}", slurm.logs());
        slurm
    }

    fn logs(&self) -> String {
        ["slurmctld.log", "slurmd.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Seconds since the epoch, `seconds` from now: a `--start-at` for parts started together.
fn start_in(seconds: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + seconds
}

#[test]
fn the_slurm_recipe_runs_four_tasks_as_one_run() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip(
            "the_slurm_recipe_runs_four_tasks_as_one_run",
            "slurmd runs tasks as root here",
        );
    }
    let slurm = Slurm::start();
    let pong = Pong::start(&[]);
    let work = scratch_dir("slurm-work");
    std::fs::write(work.join("t.txt"), format!("GET {}/\n", pong.url())).unwrap();

    // The page's lines, on one node with four tasks, at a rate and length a test can run.
    let recipe = recipe("## Slurm", "sh");
    let recipe = replaced(&recipe, "$(( $(date +%s) + 15 ))", &start_in(3).to_string());
    let recipe = replaced(
        &recipe,
        "srun --nodes=8 --ntasks-per-node=1",
        "srun -N1 -n4 --overcommit",
    );
    let recipe = replaced(
        &recipe,
        "-rate=80000 -duration=5m",
        "-rate=100 -duration=2s",
    );
    let recipe = replaced(&recipe, "'throng attack", &format!("'{} attack", bin()));
    let recipe = replaced(&recipe, "throng report run-*.bin", "");
    let out = Command::new("sh")
        .args(["-c", &recipe])
        .current_dir(&work)
        .env("SLURM_CONF", &slurm.conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{recipe}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        slurm.logs()
    );
    let files: Vec<PathBuf> = (0..4).map(|i| work.join(format!("run-{i}.bin"))).collect();
    assert_one_whole_run(&files, 4, 100, 2);
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_throng")
}

/// `kubernetes-validate` and a Python with PyYAML: the virtual environment `./test.sh` makes in
/// `target/python`, else whatever is on the PATH.
fn python_tool(name: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/python/bin");
    if venv.join(name).exists() {
        return venv.join(name);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!("{name} is missing: ./test.sh installs kubernetes-validate in target/python")
    })
}

#[test]
fn the_kubernetes_job_validates_and_its_args_run_as_four_pods() {
    let pong = Pong::start(&[]);
    let work = scratch_dir("kubernetes");
    let manifest = recipe("## Kubernetes: an Indexed Job", "yaml");
    let rendered = Command::new("envsubst")
        .env("START", start_in(3).to_string())
        .env("PARTS", "4")
        .env("RATE", "100")
        .env("DURATION", "2s")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(manifest.as_bytes())?;
            child.wait_with_output()
        })
        .expect("envsubst (gettext-base)");
    let job = work.join("job.yaml");
    std::fs::write(&job, &rendered.stdout).unwrap();

    let validated = Command::new(python_tool("kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(&job)
        .output()
        .unwrap();
    assert!(
        validated.status.success(),
        "{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );

    // What the Job controller makes of it: completions, the container's args and its mounts.
    let read = Command::new(python_tool("python3"))
        .arg("-c")
        .arg(
            "import json, sys, yaml\n\
             job = yaml.safe_load(open(sys.argv[1]))\n\
             pod = job['spec']['template']['spec']\n\
             container = pod['containers'][0]\n\
             print(json.dumps({'completions': job['spec']['completions'], \
             'mode': job['spec']['completionMode'], 'args': container['args'], \
             'mounts': [m['mountPath'] for m in container['volumeMounts']]}))",
        )
        .arg(&job)
        .output()
        .unwrap();
    assert!(read.status.success(), "{read:?}");
    let spec: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(spec["mode"], "Indexed");
    let completions = spec["completions"].as_u64().unwrap();
    assert_eq!(completions, 4);

    // Each mount a folder of the test's; the ConfigMap's targets in /config.
    let mounts: Vec<(String, PathBuf)> = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mount = m.as_str().unwrap().to_string();
            let folder = work.join(mount.trim_start_matches('/'));
            std::fs::create_dir_all(&folder).unwrap();
            (mount, folder)
        })
        .collect();
    let config = &mounts.iter().find(|(m, _)| m == "/config").unwrap().1;
    std::fs::write(config.join("targets.txt"), format!("GET {}/\n", pong.url())).unwrap();

    let pods: Vec<Child> = (0..completions)
        .map(|index| {
            let args: Vec<String> = spec["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|arg| {
                    let arg = arg
                        .as_str()
                        .unwrap()
                        .replace("$(JOB_COMPLETION_INDEX)", &index.to_string());
                    mounts.iter().fold(arg, |arg, (mount, folder)| {
                        match arg.strip_prefix(&format!("{mount}/")) {
                            Some(rest) => folder.join(rest).display().to_string(),
                            None => arg,
                        }
                    })
                })
                .collect();
            Command::new(bin())
                .args(&args)
                .env("JOB_COMPLETION_INDEX", index.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for pod in pods {
        assert_succeeded(&pod.wait_with_output().unwrap());
    }
    let results = &mounts.iter().find(|(m, _)| m == "/results").unwrap().1;
    let files: Vec<PathBuf> = (0..4)
        .map(|i| results.join(format!("part-{i}.bin")))
        .collect();
    assert_one_whole_run(&files, 4, 100, 2);
}
