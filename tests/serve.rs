//! `sextant serve` over real HTTP on loopback: the suggestion API, experiments submitted and run to
//! the end, trials that push their own metrics, token checks, refused bodies, and restarts (SIGKILL
//! right after an acknowledged push; SIGTERM with an experiment running).
//!
//! Each test starts its own server on a free port (`--listen 127.0.0.1:0`) with its own data
//! directory, and waits for trials with a deadline, so tests are independent and bounded.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fixture::{ExperimentFile, Workspace, text};

/// Longest a test waits for a server to start or trials to reach a state. Trials here take well
/// under a second; the margin is for a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(60);

/// The largest body the experiment and metrics endpoints take (`sextant::api::MAX_BODY_BYTES`).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A trial that writes its push token to `<trial name>.token` in its work directory (atomically,
/// by rename) and then sleeps until it is stopped.
const TOKEN_WRITER: &str = r#"[sh, -c, 'echo "$SEXTANT_TOKEN" > "$SEXTANT_TRIAL.tmp" && mv "$SEXTANT_TRIAL.tmp" "$SEXTANT_TRIAL.token"; exec sleep 120 # ${trialParameters.x}']"#;

/// One HTTP/1.1 exchange.
pub(crate) struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// Checks the JSON error shape, status and code; returns the error object.
    fn error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "an error is JSON: {}",
            self.head
        );
        let error = self.json()["error"].clone();
        assert_eq!(error["code"], code, "{}", self.body);
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        assert!(error.get("field").is_some(), "{}", self.body);
        error
    }
}

/// Sends raw bytes and reads the reply until the server closes the connection.
fn exchange(address: &str, raw: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    // The server may answer (and close) before it has read everything: keep what it said.
    let _ = stream.write_all(raw);
    let mut reply = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A server refusing a request it did not read whole may reset the connection.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "reading the reply: {e} (so far: {})",
                String::from_utf8_lossy(&reply)
            ),
        }
    }
    reply
}

/// One HTTP/1.1 request with `Connection: close` and extra headers.
fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        raw.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    parse_response(&exchange(address, &bytes))
}

fn parse_response(reply: &[u8]) -> Response {
    let text = String::from_utf8_lossy(reply).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or_else(|| (text.clone(), String::new()));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Response {
        status,
        body: if chunked { dechunk(&body) } else { body },
        head,
    }
}

/// The payload of a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// One HTTP/1.1 request; returns (status, body).
fn http(address: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let response = request(address, method, path, &[], body.as_bytes());
    (response.status, response.body)
}

/// A `sextant serve` child on a loopback port, with its stderr collected.
pub(crate) struct Serve {
    child: Option<Child>,
    address: String,
    admin: String,
    log: Arc<Mutex<String>>,
}

impl Serve {
    /// Starts `sextant serve` on the workspace's data directory and waits until it serves. The
    /// admin token is the one serve generates into DATA_DIR/admin-token (kept across restarts).
    pub(crate) fn start(ws: &Workspace) -> Serve {
        Serve::start_on(ws, "127.0.0.1:0")
    }

    /// [`Serve::start`] on a given address (a restarted server that must come back on its port).
    pub(crate) fn start_on(ws: &Workspace, listen: &str) -> Serve {
        let mut child = ws
            .sextant()
            .args(["serve", "--listen", listen])
            .env_remove("SEXTANT_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sextant serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (lines, incoming) = mpsc::channel();
        let collected = Arc::clone(&log);
        // Drained until serve exits, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                collected.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        let address = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match incoming.recv_timeout(left) {
                Ok(line) if line.contains("serving on http://") => {
                    break line
                        .split("http://")
                        .nth(1)
                        .and_then(|rest| rest.split_whitespace().next())
                        .unwrap_or_else(|| panic!("no address in {line:?}"))
                        .to_string();
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("serve did not start: {}", log.lock().unwrap());
                }
            }
        };
        let token_file = ws.data_dir().join("admin-token");
        let admin = std::fs::read_to_string(&token_file)
            .expect("serve writes a generated admin token into the data directory")
            .trim()
            .to_string();
        assert_eq!(admin.len(), 64, "a 32-byte hex token: {admin:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the admin token is readable by its owner only: {mode:o}"
        );
        Serve {
            child: Some(child),
            address,
            admin,
            log,
        }
    }

    /// The server's base URL.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> Response {
        let authorization = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        request(&self.address, method, path, &headers, body)
    }

    /// GET, expecting 200 and JSON.
    pub(crate) fn get(&self, path: &str) -> Value {
        let response = self.call("GET", path, None, b"");
        assert_eq!(response.status, 200, "GET {path}: {}", response.body);
        response.json()
    }

    /// Submits an experiment whose trials run in `work_dir`; expects 201.
    pub(crate) fn submit(&self, yaml: &str, work_dir: &Path) -> Value {
        let response = self.call(
            "POST",
            &format!("/v1/experiments?workDir={}", work_dir.display()),
            Some(&self.admin),
            yaml.as_bytes(),
        );
        assert_eq!(response.status, 201, "{}", response.body);
        response.json()
    }

    /// Pushes points for a trial with a token.
    pub(crate) fn push(
        &self,
        experiment: &str,
        trial: &str,
        token: Option<&str>,
        points: Value,
    ) -> Response {
        self.call(
            "POST",
            &format!("/v1/experiments/{experiment}/trials/{trial}/metrics"),
            token,
            json!({ "observations": points }).to_string().as_bytes(),
        )
    }

    /// GETs `path` until `done` holds, or panics after [`WAIT`] with the last reply and the log.
    pub(crate) fn poll(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let response = self.call("GET", path, None, b"");
            if response.status == 200 && done(&response.json()) {
                return response.json();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last reply: {} {}\nserve log:\n{}",
                response.status,
                response.body,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn wait_for_phase(&self, name: &str, phase: &str) -> Value {
        self.poll(
            &format!("/v1/experiments/{name}"),
            &format!("{name} to be {phase}"),
            |detail| detail["experiment"]["phase"] == phase,
        )
    }

    /// Waits until `count` trials of the experiment run; returns them.
    pub(crate) fn wait_for_running(&self, name: &str, count: u64) -> Vec<Value> {
        let page = self.poll(
            &format!("/v1/experiments/{name}/trials?state=Running"),
            &format!("{count} running trials of {name}"),
            |page| page["total"] == count,
        );
        page["trials"].as_array().unwrap().clone()
    }

    pub(crate) fn pid(&self) -> nix::unistd::Pid {
        let child = self.child.as_ref().expect("serve runs");
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap())
    }

    /// SIGKILL, as a crash would.
    pub(crate) fn kill9(&mut self) {
        let mut child = self.child.take().expect("serve runs");
        child.kill().expect("SIGKILL serve");
        child.wait().unwrap();
    }

    /// SIGTERM; returns serve's exit status once it has stopped.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
        let mut child = self.child.take().expect("serve runs");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not stop on SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    /// A test that failed half-way still stops serve and, through it, its trials.
    fn drop(&mut self) {
        if self.child.is_some() {
            // `terminate` kills serve itself if SIGTERM does not stop it in time.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.terminate()));
        }
    }
}

/// A file under tests/data.
fn data_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A fresh directory for trials to run in.
fn work_dir(ws: &Workspace) -> PathBuf {
    let dir = ws.path().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits until `count` trials have written their tokens into `dir` ([`TOKEN_WRITER`]); returns
/// (trial name, token) by trial name.
fn wait_for_tokens(dir: &Path, count: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut tokens: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let trial = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".token")?
                    .to_string();
                let token = std::fs::read_to_string(&path).ok()?.trim().to_string();
                Some((trial, token))
            })
            .collect();
        if tokens.len() >= count {
            tokens.sort();
            return tokens;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {count} trial tokens"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True while a process exists and is not a zombie (a killed orphan may stay a zombie in a
/// container whose init does not reap).
fn process_alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

fn wait_gone(pid: u64) {
    let deadline = Instant::now() + WAIT;
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still alive");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn by_name<'a>(items: &'a Value, key: &str, name: &str) -> &'a Value {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .find(|item| item[key] == name)
        .unwrap_or_else(|| panic!("no {name} in {items}"))
}

#[test]
fn serve_answers_suggestions_over_http_and_stops_on_sigterm() {
    let ws = Workspace::new();
    let mut server = Serve::start(&ws);
    let address = server.address.clone();

    let (status, body) = http(&address, "GET", "/healthz", "");
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = http(&address, "GET", "/readyz", "");
    assert_eq!((status, body.trim()), (200, "ready"));

    let request = serde_json::json!({
        "experiment": {"name": "http", "spec": {
            "parameters": [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}],
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "grid"}}},
        "trials": [],
        "currentRequestNumber": 5
    });
    let (status, body) = http(&address, "POST", "/v1/suggestions", &request.to_string());
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    let values: Vec<&str> = reply["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["parameterAssignments"][0]["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, vec!["1", "2", "3"]);
    assert_eq!(reply["exhausted"], true);

    let (status, body) = http(&address, "POST", "/v1/suggestions", "{}");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"field\""), "{body}");

    let status = server.terminate();
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
}

#[test]
fn a_submitted_experiment_runs_to_the_end_and_every_read_agrees() {
    let ws = Workspace::new();
    let server = Serve::start(&ws);
    let trainer = data_file("trainer.py");
    let command = format!(
        "[python3, '{}', --x, '${{trialParameters.x}}', --epochs, '3']",
        trainer.display()
    );
    let yaml = ExperimentFile {
        name: "served",
        objective: "{type: minimize, objectiveMetricName: loss, additionalMetricNames: [accuracy]}",
        command: &command,
        max_trials: 4,
        parallel: 2,
        ..Default::default()
    }
    .yaml();
    let created = server.submit(&yaml, ws.path());
    assert_eq!(created["experiment"]["name"], "served");

    let detail = server.wait_for_phase("served", "Succeeded");
    let status = &detail["status"];
    assert_eq!(status["status"], "Succeeded");
    assert_eq!(status["reason"], "ExperimentMaxTrialsReached");
    assert_eq!(status["trials"]["total"], 4, "{detail}");
    assert_eq!(status["trials"]["succeeded"], 4, "{detail}");

    let page = server.get("/v1/experiments/served/trials");
    assert_eq!(page["total"], 4);
    let trials = page["trials"].as_array().unwrap();
    for trial in trials {
        let name = trial["name"].as_str().unwrap();
        assert_eq!(trial["state"], "Succeeded", "{trial}");
        let x: f64 = trial["assignments"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let last_loss = (x - 0.3).powi(2) + 0.1 / 3.0;
        let objective = trial["objective"].as_f64().unwrap();
        assert!((objective - last_loss).abs() < 1e-5, "{trial}");

        // The series agree with the trial's summary and with what the trainer printed.
        let series = server.get(&format!("/v1/experiments/served/trials/{name}/metrics"));
        assert_eq!(series["trial"], name);
        for metric in ["loss", "accuracy"] {
            let read = by_name(&series["metrics"], "metricName", metric);
            let summary = by_name(&trial["metrics"], "name", metric);
            let points = read["points"].as_array().unwrap();
            let steps: Vec<i64> = points.iter().map(|p| p["step"].as_i64().unwrap()).collect();
            assert_eq!(steps, [1, 2, 3], "{read}");
            assert_eq!(read["totalPoints"], 3);
            assert_eq!(summary["count"], 3, "{trial}");
            let values: Vec<f64> = points
                .iter()
                .map(|p| p["value"].as_f64().unwrap())
                .collect();
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(summary["min"].as_f64(), Some(min), "{trial}");
            assert_eq!(summary["max"].as_f64(), Some(max), "{trial}");
            assert_eq!(summary["latest"].as_f64(), Some(values[2]), "{trial}");
        }
        let loss = by_name(&series["metrics"], "metricName", "loss");
        assert!((loss["points"][2]["value"].as_f64().unwrap() - last_loss).abs() < 1e-5);
    }

    // The best trial is the same everywhere: the detail, the objective sort, the objectives.
    let best = trials
        .iter()
        .min_by(|a, b| {
            a["objective"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["objective"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(
        status["currentOptimalTrial"]["bestTrialName"], best["name"],
        "{detail}"
    );
    assert_eq!(
        status["currentOptimalTrial"]["objective"],
        best["objective"]
    );
    let sorted = server.get("/v1/experiments/served/trials?sort=objective&limit=1");
    assert_eq!(sorted["trials"][0]["name"], best["name"]);
    assert_eq!(sorted["nextOffset"], 1);

    let listed = server.get("/v1/experiments");
    assert_eq!(
        by_name(&listed["experiments"], "name", "served")["status"],
        "Succeeded"
    );
    let metrics = server.call("GET", "/metrics", None, b"");
    assert!(
        metrics
            .body
            .contains("sextant_trials{state=\"Succeeded\"} 4"),
        "{}",
        metrics.body
    );
}

#[test]
fn a_push_collector_trial_sends_its_metrics_and_succeeds_with_them() {
    let ws = Workspace::new();
    let server = Serve::start(&ws);
    let command = format!(
        "[python3, '{}', '${{trialParameters.x}}']",
        data_file("push_trainer.py").display()
    );
    let yaml = ExperimentFile {
        name: "pusher",
        command: &command,
        metrics_collector: "{collector: {kind: Push}}",
        max_trials: 3,
        parallel: 3,
        ..Default::default()
    }
    .yaml();
    server.submit(&yaml, ws.path());
    let detail = server.wait_for_phase("pusher", "Succeeded");
    assert_eq!(detail["status"]["trials"]["succeeded"], 3, "{detail}");

    let page = server.get("/v1/experiments/pusher/trials");
    for trial in page["trials"].as_array().unwrap() {
        let name = trial["name"].as_str().unwrap();
        assert_eq!(trial["state"], "Succeeded", "{trial}");
        let x: f64 = trial["assignments"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let smallest = (x - 0.3).powi(2) + 0.1 / 3.0;
        assert!(
            (trial["objective"].as_f64().unwrap() - smallest).abs() < 1e-9,
            "the objective is the smallest pushed loss: {trial}"
        );
        let series = server.get(&format!(
            "/v1/experiments/pusher/trials/{name}/metrics?metric=loss"
        ));
        let loss = by_name(&series["metrics"], "metricName", "loss");
        assert_eq!(loss["totalPoints"], 3, "{series}");
        let log = std::fs::read_to_string(trial["logPath"].as_str().unwrap()).unwrap();
        assert!(log.contains("pushed 3 points of loss"), "{log}");
    }
    let metrics = server.call("GET", "/metrics", None, b"");
    assert!(
        metrics.body.contains("sextant_ingested_points_total 9"),
        "{}",
        metrics.body
    );
}

/// Submits `name` with [`TOKEN_WRITER`] trials in `dir` and returns the (trial, token) of the
/// `parallel` trials once they all run.
fn start_token_writers(
    server: &Serve,
    dir: &Path,
    name: &str,
    parallel: u32,
) -> Vec<(String, String)> {
    let yaml = ExperimentFile {
        name,
        command: TOKEN_WRITER,
        max_trials: parallel,
        parallel,
        ..Default::default()
    }
    .yaml();
    server.submit(&yaml, dir);
    server.wait_for_running(name, u64::from(parallel));
    wait_for_tokens(dir, parallel as usize)
}

#[test]
fn pushes_need_the_trials_own_token_over_http() {
    let ws = Workspace::new();
    let server = Serve::start(&ws);
    let dir = work_dir(&ws);
    let tokens = start_token_writers(&server, &dir, "tokens", 2);
    let [(mine, my_token), (other, other_token)] = [tokens[0].clone(), tokens[1].clone()];
    let point = json!([{"metricName": "loss", "value": 0.5, "step": 1}]);

    let response = server.push("tokens", &mine, None, point.clone());
    response.error(401, "unauthenticated");
    let response = server.push("tokens", &mine, Some("not-a-token"), point.clone());
    response.error(401, "unauthenticated");
    let response = server.push("tokens", &mine, Some(&other_token), point.clone());
    let error = response.error(403, "permission_denied");
    assert!(
        error["message"].as_str().unwrap().contains(&other),
        "{error}"
    );
    // A trial's token is no admin token either.
    let response = server.call("POST", "/v1/experiments/tokens/stop", Some(&my_token), b"");
    response.error(403, "permission_denied");
    for trial in [&mine, &other] {
        let series = server.get(&format!("/v1/experiments/tokens/trials/{trial}/metrics"));
        assert_eq!(
            series["metrics"],
            json!([]),
            "a refused push stores nothing: {series}"
        );
    }

    let response = server.push("tokens", &mine, Some(&my_token), point.clone());
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json(), json!({"accepted": 1}));
    let series = server.get(&format!("/v1/experiments/tokens/trials/{mine}/metrics"));
    assert_eq!(
        by_name(&series["metrics"], "metricName", "loss")["totalPoints"],
        1
    );

    let stopped = server.call(
        "POST",
        "/v1/experiments/tokens/stop",
        Some(&server.admin),
        b"",
    );
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    assert_eq!(stopped.json()["experiment"]["phase"], "Stopped");
}

#[test]
fn oversized_and_malformed_requests_are_refused_and_serving_goes_on() {
    let ws = Workspace::new();
    let server = Serve::start(&ws);
    let admin = server.admin.clone();
    let create = format!("/v1/experiments?workDir={}", ws.path().display());

    // One byte over the limit: the server reads it all, then refuses it.
    let mut oversized = b"# ".to_vec();
    oversized.resize(MAX_BODY_BYTES + 1, b'x');
    let response = server.call("POST", &create, Some(&admin), &oversized);
    let error = response.error(413, "payload_too_large");
    assert_eq!(error["field"], "body");
    let response = server.call(
        "POST",
        "/v1/experiments/any/trials/any-0001/metrics",
        Some(&admin),
        &oversized,
    );
    response.error(413, "payload_too_large");

    let response = server.call("POST", &create, Some(&admin), b"kind: [unclosed");
    assert_eq!(response.error(400, "invalid_argument")["field"], "body");
    let response = server.call("POST", &create, Some(&admin), &[0xff, 0xfe, 0x00, 0x80]);
    assert_eq!(response.error(400, "invalid_argument")["field"], "body");
    let response = server.call("POST", "/v1/suggestions", None, b"{\"experiment\": ");
    assert_eq!(response.status, 400, "{}", response.body);
    let response = server.call("GET", "/v1/experiments/none/trials?limit=zero", None, b"");
    assert_eq!(response.error(400, "invalid_argument")["field"], "limit");
    let response = server.call("GET", "/no/such/route", None, b"");
    response.error(404, "not_found");

    // Not HTTP at all, and a request cut off half-way through its body.
    let garbage = exchange(&server.address, b"\x00\x01GARBAGE \xff\r\n\r\n");
    let garbage = String::from_utf8_lossy(&garbage);
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage}"
    );
    {
        let mut stream = TcpStream::connect(&server.address).unwrap();
        write!(
            stream,
            "POST {create} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Length: 1000\r\n\r\nkind: Exp"
        )
        .unwrap();
    }

    let (status, body) = http(&server.address, "GET", "/healthz", "");
    assert_eq!((status, body.trim()), (200, "ok"));
    assert_eq!(server.get("/v1/experiments"), json!({"experiments": []}));
    let metrics = server.call("GET", "/metrics", None, b"");
    assert!(
        metrics
            .body
            .contains("sextant_rejected_requests_total{code=\"payload_too_large\"} 2"),
        "{}",
        metrics.body
    );
}

#[test]
fn a_push_acknowledged_right_before_kill_9_is_there_after_the_restart() {
    let ws = Workspace::new();
    let dir = work_dir(&ws);
    let mut server = Serve::start(&ws);
    let (trial, token) = start_token_writers(&server, &dir, "durable", 1)[0].clone();
    let record = server.get(&format!("/v1/experiments/durable/trials/{trial}"));
    let pid = record["pid"].as_u64().expect("a running trial's pid");

    let response = server.push(
        "durable",
        &trial,
        Some(&token),
        json!([{"metricName": "loss", "value": 0.42, "step": 7}]),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    server.kill9();
    assert!(process_alive(pid), "the trial outlives a crashed server");

    let server = Serve::start(&ws);
    let series = server.get(&format!("/v1/experiments/durable/trials/{trial}/metrics"));
    let loss = by_name(&series["metrics"], "metricName", "loss");
    assert_eq!(loss["points"][0]["step"], 7, "{series}");
    assert_eq!(loss["points"][0]["value"], 0.42, "{series}");

    // The restart resumed the experiment: the cut-off trial is Killed and its process is gone.
    let record = server.poll(
        &format!("/v1/experiments/durable/trials/{trial}"),
        "the cut-off trial to be Killed",
        |t| t["state"] == "Killed",
    );
    assert!(
        record["message"].as_str().unwrap().contains("cut off"),
        "{record}"
    );
    wait_gone(pid);
    assert!(
        server.log().contains("resumed 1 unfinished experiment"),
        "{}",
        server.log()
    );

    // Its token still pushes (a late flush to a finished trial is accepted) and reads follow.
    let response = server.push(
        "durable",
        &trial,
        Some(&token),
        json!([{"metricName": "loss", "value": 0.4, "step": 8}]),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    let series = server.get(&format!("/v1/experiments/durable/trials/{trial}/metrics"));
    assert_eq!(
        by_name(&series["metrics"], "metricName", "loss")["totalPoints"],
        2
    );
    // The running driver brings the finished trial's summary up to date (asynchronously).
    let record = server.poll(
        &format!("/v1/experiments/durable/trials/{trial}"),
        "the late push in the trial's summary",
        |t| {
            t["metrics"]
                .as_array()
                .is_some_and(|m| m.iter().any(|s| s["name"] == "loss" && s["count"] == 2))
        },
    );
    assert_eq!(record["state"], "Killed", "its state stays");
}

#[test]
fn a_trial_cut_off_by_kill_9_keeps_the_summary_of_its_points() {
    let ws = Workspace::new();
    let dir = work_dir(&ws);
    let mut server = Serve::start(&ws);
    let (trial, token) = start_token_writers(&server, &dir, "summed", 1)[0].clone();
    let points = json!([
        {"metricName": "loss", "value": 0.5, "step": 1},
        {"metricName": "loss", "value": 0.3, "step": 2}
    ]);
    let response = server.push("summed", &trial, Some(&token), points);
    assert_eq!(response.status, 200, "{}", response.body);
    server.kill9();

    let server = Serve::start(&ws);
    let record = server.poll(
        &format!("/v1/experiments/summed/trials/{trial}"),
        "the cut-off trial to be Killed",
        |t| t["state"] == "Killed",
    );
    let series = server.get(&format!("/v1/experiments/summed/trials/{trial}/metrics"));
    assert_eq!(
        by_name(&series["metrics"], "metricName", "loss")["totalPoints"],
        2
    );
    // The record and the series must agree: marking the trial Killed at the restart keeps the
    // summary of the points it had stored.
    let loss = by_name(&record["metrics"], "name", "loss");
    assert_eq!(
        (loss["count"].as_u64(), loss["min"].as_f64()),
        (Some(2), Some(0.3)),
        "{record}"
    );
}

#[test]
fn sigterm_stops_serve_cleanly_and_the_experiment_resumes_after_a_restart() {
    let ws = Workspace::new();
    let dir = work_dir(&ws);
    // Trials wait while `hold` exists, then report loss = x.
    let hold = dir.join("hold");
    std::fs::write(&hold, "").unwrap();
    let yaml = ExperimentFile {
        name: "resumed",
        command: r#"[sh, -c, 'while [ -e hold ]; do sleep 0.1; done; echo "loss=${trialParameters.x}"']"#,
        max_trials: 3,
        parallel: 2,
        ..Default::default()
    }
    .yaml();
    let mut server = Serve::start(&ws);
    server.submit(&yaml, &dir);
    let running = server.wait_for_running("resumed", 2);
    let pids: Vec<u64> = running.iter().map(|t| t["pid"].as_u64().unwrap()).collect();

    let status = server.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "serve exits 0 on SIGTERM:\n{}",
        server.log()
    );
    assert!(server.log().contains("stopping"), "{}", server.log());
    for pid in pids {
        assert!(
            !process_alive(pid),
            "serve stopped trial process {pid} before it exited"
        );
    }

    std::fs::remove_file(&hold).unwrap();
    let mut server = Serve::start(&ws);
    let detail = server.wait_for_phase("resumed", "Succeeded");
    assert!(
        server.log().contains("resumed 1 unfinished experiment"),
        "{}",
        server.log()
    );
    assert_eq!(detail["status"]["trials"]["killed"], 2, "{detail}");
    assert_eq!(detail["status"]["trials"]["succeeded"], 3, "{detail}");

    let page = server.get("/v1/experiments/resumed/trials");
    let trials = page["trials"].as_array().unwrap();
    let names: Vec<&str> = trials.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "resumed-0001",
            "resumed-0002",
            "resumed-0003",
            "resumed-0004",
            "resumed-0005"
        ]
    );
    for trial in &trials[..2] {
        assert_eq!(trial["state"], "Killed", "{trial}");
        assert!(
            trial["message"].as_str().unwrap().contains("interrupted"),
            "{trial}"
        );
    }
    for trial in &trials[2..] {
        assert_eq!(trial["state"], "Succeeded", "{trial}");
    }
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_cli_submits_watches_and_reads_from_a_server_with_the_same_output_as_locally() {
    let ws = Workspace::new();
    let mut server = Serve::start(&ws);
    let file = ws.write(
        "cli.yaml",
        &ExperimentFile {
            name: "cli-remote",
            max_trials: 3,
            parallel: 2,
            ..Default::default()
        }
        .yaml(),
    );
    // The admin token comes from DATA_DIR/admin-token, where serve generated it.
    let out = ws
        .sextant()
        .args(["submit", file.to_str().unwrap(), "--watch"])
        .env("SEXTANT_SERVER", server.url())
        .env_remove("SEXTANT_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("experiment cli-remote submitted to"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("best: cli-remote-"),
        "watch ends with the summary: {}",
        text(&out.stdout)
    );

    let reads: [&[&str]; 8] = [
        &["get", "experiments", "-o", "json"],
        &["get", "trials", "cli-remote"],
        &["get", "trials", "cli-remote", "-o", "yaml"],
        &["describe", "experiment", "cli-remote"],
        &["describe", "trial", "cli-remote-0002", "-o", "json"],
        &["metrics", "cli-remote-0001", "-o", "json"],
        &["best", "cli-remote"],
        &[
            "get",
            "trials",
            "cli-remote",
            "--state",
            "Succeeded",
            "-o",
            "json",
        ],
    ];
    let remote: Vec<String> = reads
        .iter()
        .map(|args| {
            let out = ws
                .sextant()
                .args(*args)
                .args(["--server", &server.url()])
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
            text(&out.stdout)
        })
        .collect();
    assert!(server.terminate().success());
    // With the server gone, the same commands read the store directly.
    for (args, remote) in reads.iter().zip(remote) {
        let out = ws.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            remote,
            "{args:?} differs between the server and the store"
        );
    }
}
