//! `sextant-collector` against a real `sextant serve`: wrapping a trial's process, and carrying
//! its points across a server restart without losing one.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fixture::Workspace;
use crate::serve::Serve;

/// The collector binary beside the `sextant` binary under test; built if this run did not build it
/// (e.g. `cargo test -p sextant`).
fn collector_bin() -> PathBuf {
    let sextant = PathBuf::from(env!("CARGO_BIN_EXE_sextant"));
    let path = sextant.with_file_name("sextant-collector");
    if !path.exists() {
        let mut build = Command::new(env!("CARGO"));
        build.args([
            "build",
            "-p",
            "sextant-collector",
            "--bin",
            "sextant-collector",
        ]);
        if sextant.components().any(|c| c.as_os_str() == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cannot build sextant-collector");
    }
    path
}

/// A free loopback port (a restarted server must come back on the same one).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn push_experiment(name: &str, command: &str, max_trials: u32) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective: {{type: maximize, objectiveMetricName: accuracy}}
  algorithm: {{algorithmName: random, algorithmSettings: [{{name: random_state, value: "3"}}]}}
  maxTrialCount: {max_trials}
  parallelTrialCount: 1
  metricsCollectorSpec:
    collector: {{kind: Push}}
  parameters: [{{name: x, parameterType: double, feasibleSpace: {{min: "0", max: "1"}}}}]
  trialTemplate:
    primaryContainerName: training
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: training
                image: example/trainer
                command: {command}
"#
    )
}

#[test]
fn collector_wraps_a_served_trial_and_pushes_its_metrics() {
    let ws = Workspace::new();
    let mut server = Serve::start(&ws);
    let collector = collector_bin();
    // The trial is the collector wrapping a shell "trainer"; serve gives it SEXTANT_ENDPOINT, the
    // trial's name and token, and SEXTANT_METRICS (accuracy), and collects nothing itself (Push).
    let command = format!(
        r#"["{}", "--", sh, -c, 'echo "epoch=1 accuracy=0.5"; echo "epoch=2 accuracy=${{trialParameters.x}}"; exit 0']"#,
        collector.display()
    );
    server.submit(&push_experiment("wrapped", &command, 2), ws.path());
    server.wait_for_phase("wrapped", "Succeeded");
    let page = server.get("/v1/experiments/wrapped/trials");
    let trials = page["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 2);
    for trial in trials {
        assert_eq!(trial["state"], "Succeeded", "{trial}");
        let x: f64 = trial["assignments"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let objective = trial["objective"].as_f64().expect("objective");
        assert!(
            (objective - x.max(0.5)).abs() < 1e-9,
            "{objective} vs max(0.5, {x})"
        );
        let name = trial["name"].as_str().unwrap();
        let series = server.get(&format!("/v1/experiments/wrapped/trials/{name}/metrics"));
        let steps: Vec<i64> = series["metrics"][0]["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["step"].as_i64().unwrap())
            .collect();
        assert_eq!(steps, [1, 2]);
        // The trainer's output was passed through to the trial's log.
        let log = std::fs::read_to_string(trial["logPath"].as_str().unwrap()).unwrap();
        assert!(log.contains("epoch=2 accuracy="), "{log}");
    }
    assert!(server.terminate().success(), "{}", server.log());
}

#[test]
fn collector_keeps_every_point_across_a_server_restart() {
    let ws = Workspace::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Serve::start_on(&ws, &listen);
    // A trial that only hands its identity to the test and waits: the test runs the collector
    // itself, so the collector outlives the server (as a sidecar in a pod would).
    let command = r#"[sh, -c, 'env | grep ^SEXTANT_ > identity.env; echo ${trialParameters.x} > x.txt; sleep 120']"#;
    server.submit(&push_experiment("restart", command, 1), ws.path());
    let identity = ws.path().join("identity.env");
    wait_for("the trial to start", Duration::from_secs(30), || {
        std::fs::read_to_string(&identity).is_ok_and(|t| t.contains("SEXTANT_TOKEN="))
    });
    let env: Vec<(String, String)> = std::fs::read_to_string(&identity)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let trial = env
        .iter()
        .find(|(k, _)| k == "SEXTANT_TRIAL")
        .map(|(_, v)| v.clone())
        .expect("trial name");

    // 60 points over about 6 s, sent every 200 ms; the server is killed after the first second
    // and comes back two seconds later.
    let mut collector = Command::new(collector_bin())
        .args(["--metric", "accuracy", "--flush-interval", "0.2", "--flush-timeout", "60", "--"])
        .args(["sh", "-c", "i=1; while [ $i -le 60 ]; do echo \"epoch=$i accuracy=0.$i\"; i=$((i+1)); sleep 0.1; done"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("SEXTANT_METRICS", "accuracy")
        .current_dir(ws.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sextant-collector");
    std::thread::sleep(Duration::from_secs(1));
    server.kill9();
    std::thread::sleep(Duration::from_secs(2));
    let mut server = Serve::start_on(&ws, &listen);
    let status = collector.wait().expect("wait collector");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut collector.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "collector failed: {stderr}");

    let series = server.get(&format!(
        "/v1/experiments/restart/trials/{trial}/metrics?metric=accuracy"
    ));
    let steps: Vec<i64> = series["metrics"][0]["points"]
        .as_array()
        .unwrap_or_else(|| panic!("no series: {series}; collector said: {stderr}"))
        .iter()
        .map(|p| p["step"].as_i64().unwrap())
        .collect();
    assert_eq!(
        steps,
        (1..=60).collect::<Vec<i64>>(),
        "collector said: {stderr}"
    );
    // The restarted server marked the cut-off trial Killed (and killed its process); the points
    // that arrived for it afterwards are still its own.
    let record = server.get(&format!("/v1/experiments/restart/trials/{trial}"));
    assert_eq!(record["state"], "Killed", "{record}");
    assert!(server.terminate().success(), "{}", server.log());
}
