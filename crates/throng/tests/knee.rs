//! `throng knee` against `throng pong --max-rps R`, whose tipping point is R by construction:
//! below R every request is answered at once; above, a queue grows and latency climbs.

mod common;

use common::proxy::{Dir, Proxy};
use common::{report_json, throng, Pong};
use serde_json::Value;
use std::io::Write;
use std::process::{Output, Stdio};
use std::sync::Mutex;

/// Knee searches measure latency: one at a time, or they would measure each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn knee(target: &str, dir: &Dir, args: &[&str]) -> Output {
    let mut child = throng()
        .args([
            "knee",
            "--json",
            "--step",
            "2s",
            "--pause",
            "300ms",
            "--validate",
            "1s",
        ])
        .args(["--slo", "p99=50ms", "--dir"])
        .arg(dir.path("steps"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("GET {target}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn outcome(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Asserts the knee is within 5% of `rate` (and not above it), found in at most 12 steps.
fn assert_knee_near(output: &Output, rate: f64) -> Value {
    let found = outcome(output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let knee = found["knee"]
        .as_f64()
        .unwrap_or_else(|| panic!("{found}\n{stderr}"));
    assert!(
        knee >= rate * 0.95 && knee <= rate * 1.05,
        "knee {knee} for --max-rps {rate}:\n{stderr}"
    );
    // Rates tried (a failure's confirming runs are not new rates).
    let steps = found["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["attempt"] == 1)
        .count();
    assert!(steps <= 12, "{steps} rates tried:\n{stderr}");
    assert_eq!(found["validation"]["verdict"], "pass", "{stderr}");
    found
}

#[test]
fn finds_a_small_knee_and_keeps_every_step_as_results() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pong = Pong::start(&["--max-rps", "200"]);
    let dir = Dir::new("knee-small");
    let output = knee(&pong.url(), &dir, &[]);
    let found = assert_knee_near(&output, 200.0);
    // Each step is an ordinary results file, and the graph is written beside them.
    let first = found["steps"][0]["results"].as_str().unwrap();
    let report = report_json(&[first]);
    assert_eq!(report["throng"]["offered_rate"], 10.0);
    let page = std::fs::read_to_string(dir.path("steps/knee.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("knee "), "no graph");
    // Failed steps are there with their reason.
    let failed = found["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["verdict"] == "fail");
    assert!(failed.count() >= 1);
}

/// A transient in the target (pong stopped for 100 ms inside a step below the knee) makes that
/// step fail once; its second and third runs pass, and the knee lands where it should, with the
/// disagreement said. (60 ms made p99 55.8 ms against the 50 ms SLO here: too close to call.)
#[test]
fn a_stalled_target_does_not_move_the_knee() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pong = Pong::start(&["--max-rps", "200"]);
    let dir = Dir::new("knee-stall");
    let steps = dir.path("steps");
    let pid = pong.pid();
    // Step 3 runs at 160/s: stop pong a second into it.
    let stopper = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let third_step_began = || {
            std::fs::read_dir(&steps).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("step-03-"))
            })
        };
        while !third_step_began() {
            if started.elapsed() > std::time::Duration::from_secs(60) {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        // SAFETY: kill(2) on our own child process.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        std::thread::sleep(std::time::Duration::from_millis(100));
        unsafe { libc::kill(pid, libc::SIGCONT) };
        true
    });
    let output = knee(&pong.url(), &dir, &[]);
    assert!(stopper.join().unwrap(), "step 3 never began");
    let found = assert_knee_near(&output, 200.0);
    let third: Vec<&Value> = found["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["results"].as_str().unwrap_or("").contains("step-03-"))
        .collect();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The stalled run failed; the runs after it passed and outvoted it. (A busy machine may make
    // some other step disagree with itself too: only the stalled one's story is asserted.)
    assert_eq!(third[0]["verdict"], "fail", "{stderr}");
    let passed = third[1..].iter().filter(|s| s["verdict"] == "pass").count();
    assert!(
        passed >= 2,
        "the confirming runs of step 3 did not pass:\n{stderr}"
    );
    assert_eq!(found["confidence"], "low", "{stderr}");
    let disagreed: Vec<f64> = found["disagreed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert!(disagreed.contains(&160.0), "{disagreed:?}\n{stderr}");
}

#[test]
fn finds_a_knee_in_the_thousands() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pong = Pong::start(&["--max-rps", "2000"]);
    let dir = Dir::new("knee-thousands");
    let output = knee(&pong.url(), &dir, &["--threads", "1"]);
    assert_knee_near(&output, 2000.0);
}

#[test]
fn finds_the_knee_through_the_proxy() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pong = Pong::start(&["--max-rps", "500"]);
    let dir = Dir::new("knee-proxy");
    let config = format!(
        "[global]\nthreads = 1\nlog = \"off\"\n\n[frontends.web]\nbind = [\"127.0.0.1:0\"]\ndefault_backend = \"app\"\n\n\
         [backends.app]\nservers = [{{ name = \"pong\", address = \"{}\" }}]\n",
        pong.addr()
    );
    let proxy = Proxy::start(&dir, &config);
    let output = knee(
        &format!("http://{}/", proxy.addr("web")),
        &dir,
        &["--threads", "1"],
    );
    assert_knee_near(&output, 500.0);
}

#[test]
fn a_generator_that_cannot_keep_up_is_reported_as_such() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pong = Pong::start(&[]);
    let dir = Dir::new("knee-generator");
    // One request in flight at a time, each waiting up to 20 ms at pong: at most ~100/s.
    let output = knee(
        &pong.url(),
        &dir,
        &[
            "--threads",
            "1",
            "--max-inflight",
            "1",
            "--header",
            "sleep: 20",
            "--from",
            "400",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let found = outcome(&output);
    assert!(found["knee"].is_null(), "{found}");
    let reason = found["generator_bound"].as_str().unwrap();
    assert!(reason.contains("generator could not keep up"), "{reason}");
    assert_eq!(found["steps"][0]["verdict"], "generator-bound");
}
