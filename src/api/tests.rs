//! The API driven through its router with `oneshot` (no socket): every endpoint and every error
//! branch, over a temporary store.
//!
//! Read and push tests seed the store directly; experiments seeded in a finished phase have no
//! driver. Experiments created through the API run real, tiny trial processes (`sh -c ...`) in a
//! temporary work directory, and tests wait for them by polling GET with a deadline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use jiff::Timestamp;
use serde_json::{Value, json};
use sextant_collector::Observation;
use tower::ServiceExt;

use super::*;
use crate::controller::driver::trial_name;
use crate::controller::resume::{Prepared, prepare};
use crate::runtime::gpu::GpuPool;
use crate::spec::ParameterAssignment;
use crate::store::{ExperimentPhase, ExperimentRecord, TrialRecord, TrialState};

/// The admin token of every test server.
const ADMIN: &str = "admin";

/// How long a test waits for trials to reach a state: tiny shell trials take milliseconds, but a
/// loaded 2-core CI machine can be slow to schedule them.
const WAIT: Duration = Duration::from_secs(60);

/// A trial that reports `loss = x` at once.
const QUICK: &str = r#"[sh, -c, 'echo "loss=${trialParameters.x}"']"#;

/// A trial that sleeps until it is stopped (SIGTERM ends it at once).
const SLEEPING: &str = "[sh, -c, 'exec sleep 120 # ${trialParameters.x}']";

/// A trial that ignores SIGTERM: stopping it takes the runtime's whole grace period. It touches
/// `trapped` in its work directory once the trap is set.
const STUBBORN: &str =
    r#"[sh, -c, 'trap "" TERM; touch trapped; sleep 120 # ${trialParameters.x}']"#;

/// An Experiment with one double parameter `x` in [0, 1], objective `loss`, random search.
fn experiment_yaml(
    name: &str,
    direction: &str,
    command: &str,
    max_trials: u32,
    parallel: u32,
) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
  namespace: kubeflow
spec:
  objective: {{type: {direction}, objectiveMetricName: loss}}
  algorithm:
    algorithmName: random
    algorithmSettings: [{{name: random_state, value: "7"}}]
  maxTrialCount: {max_trials}
  parallelTrialCount: {parallel}
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: "0", max: "1"}}}}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: training-container
                image: docker.io/example/trainer:latest
                command: {command}
"#
    )
}

/// The token a seeded trial pushes with.
fn token_of(trial: &str) -> String {
    format!("token-of-{trial}")
}

fn point(metric: &str, step: i64, value: f64) -> Observation {
    Observation {
        metric_name: metric.to_string(),
        value,
        step,
        timestamp: Timestamp::from_second(1_800_000_000).unwrap(),
    }
}

/// A reply: status, content type, raw text, and the body as JSON (`{"raw": text}` when it is not).
struct Reply {
    status: StatusCode,
    content_type: String,
    text: String,
    json: Value,
}

impl Reply {
    /// The error object, after checking the reply has the JSON error shape with this status,
    /// code and field (`None`: the field is null).
    fn error(&self, status: u16, code: &str, field: Option<&str>) -> &Value {
        self.error_at(status, code);
        assert_eq!(
            self.json["error"]["field"],
            field.map_or(Value::Null, |f| json!(f)),
            "{}",
            self.text
        );
        &self.json["error"]
    }

    /// The error object, with any field, after checking the status, code and shape.
    fn error_at(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "an error is JSON, got {:?}: {}",
            self.content_type,
            self.text
        );
        let error = &self.json["error"];
        assert_eq!(error["code"], code, "{}", self.text);
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error has a message: {}",
            self.text
        );
        assert!(
            error.get("field").is_some(),
            "an error has a field (maybe null): {}",
            self.text
        );
        error
    }

    /// The error's field as a string.
    fn field(&self) -> String {
        self.json["error"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A router over a temporary store, with a temporary directory for trials to run in.
struct TestServer {
    router: Router,
    state: AppState,
    work: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl TestServer {
    fn new(auth_reads: bool) -> TestServer {
        let data = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        let supervisor = Supervisor::new(
            store.clone(),
            data.path().to_path_buf(),
            "http://127.0.0.1:1".into(),
            GpuPool::new(vec![]),
        );
        let state = AppState::new(
            store,
            supervisor,
            AccessConfig {
                admin_token: ADMIN.into(),
                auth_reads,
            },
        );
        state.set_ready();
        TestServer {
            router: router(state.clone(), DEFAULT_REQUEST_TIMEOUT),
            state,
            work,
            _data: data,
        }
    }

    fn store(&self) -> &Store {
        self.state.store()
    }

    /// `POST /v1/experiments?workDir=<the temporary work directory>`.
    fn create_uri(&self) -> String {
        format!("/v1/experiments?workDir={}", self.work.path().display())
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        send(&self.router, method, uri, token, body).await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, None, Body::empty()).await
    }

    /// Creates an experiment through the API; panics unless it is accepted.
    async fn create(&self, yaml: &str) -> Value {
        let reply = self
            .call("POST", &self.create_uri(), Some(ADMIN), yaml.to_string())
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.json
    }

    /// GETs `uri` until `done` holds for its JSON, or panics after [`WAIT`].
    async fn poll(&self, uri: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let reply = self.get(uri).await;
            if reply.status == StatusCode::OK && done(&reply.json) {
                return reply.json;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last reply from {uri}: {}",
                reply.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_for_phase(&self, name: &str, phase: &str) -> Value {
        self.poll(
            &format!("/v1/experiments/{name}"),
            &format!("experiment {name} to be {phase}"),
            |detail| detail["experiment"]["phase"] == phase,
        )
        .await
    }

    /// Waits until `count` trials of the experiment are Running; returns their records.
    async fn wait_for_running(&self, name: &str, count: u64) -> Vec<Value> {
        let page = self
            .poll(
                &format!("/v1/experiments/{name}/trials?state=Running"),
                &format!("{count} running trials of {name}"),
                |page| page["total"] == count,
            )
            .await;
        page["trials"].as_array().unwrap().clone()
    }

    /// A stored experiment (phase as given, no driver) whose objective is `direction`.
    fn seed_experiment(
        &self,
        name: &str,
        direction: &str,
        phase: ExperimentPhase,
    ) -> ExperimentRecord {
        let checked = crate::spec::check(&experiment_yaml(name, direction, QUICK, 10, 2)).unwrap();
        let Ok(Prepared::Run(mut record)) =
            prepare(self.store(), &checked, None, self.work.path().to_path_buf())
        else {
            panic!("{name} is new");
        };
        record.phase = phase;
        self.store().put_experiment(&record).unwrap();
        record
    }

    /// A stored trial with its token ([`token_of`] its name).
    fn seed_trial(
        &self,
        experiment: &str,
        index: u64,
        state: TrialState,
        objective: Option<f64>,
    ) -> TrialRecord {
        let now = Timestamp::now();
        let record = TrialRecord {
            name: trial_name(experiment, index),
            experiment: experiment.to_string(),
            index,
            uid: self.store().next_id().unwrap(),
            assignments: vec![ParameterAssignment {
                name: "x".into(),
                value: format!("0.{index}"),
            }],
            state,
            reason: String::new(),
            message: String::new(),
            events: Vec::new(),
            created: now,
            started: Some(now),
            finished: (!state.is_active()).then_some(now),
            log_path: PathBuf::from("/dev/null"),
            pid: None,
            exit_code: None,
            gpus: Vec::new(),
            metrics: Vec::new(),
            objective,
        };
        self.store().put_trial(&record).unwrap();
        self.store()
            .put_trial_token(&record.name, &token_of(&record.name))
            .unwrap();
        record
    }
}

async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    reply_of(response).await
}

async fn reply_of(response: Response) -> Reply {
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "raw": text }));
    Reply {
        status,
        content_type,
        text,
        json,
    }
}

/// Sends a request with arbitrary headers (no token added).
async fn send_with_headers(
    router: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    reply_of(response).await
}

/// Names of the trials in a page, in order.
fn names(page: &Value) -> Vec<String> {
    page["trials"]
        .as_array()
        .unwrap_or_else(|| panic!("no trials in {page}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// True while a process with this id exists and is not a zombie.
fn process_alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Waits until a process has gone (or panics after [`WAIT`]).
async fn wait_gone(pid: u64) {
    let deadline = Instant::now() + WAIT;
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still alive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of one sample line of a Prometheus text exposition (`name{labels} value`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

// --- POST /v1/experiments ---

#[tokio::test]
async fn create_answers_201_with_the_stored_experiment_and_runs_it_to_the_end() {
    let server = TestServer::new(false);
    let created = server
        .create(&experiment_yaml("created", "minimize", QUICK, 3, 2))
        .await;
    let record = &created["experiment"];
    assert_eq!(record["name"], "created");
    assert_eq!(record["workDir"], server.work.path().to_str().unwrap());
    assert!(
        matches!(record["phase"].as_str(), Some("Created" | "Running")),
        "{created}"
    );
    assert_eq!(record["experiment"]["metadata"]["name"], "created");
    assert_eq!(record["experiment"]["spec"]["maxTrialCount"], 3);
    assert!(record["created"].is_string(), "{created}");
    let status = &created["status"];
    assert_eq!(status["name"], "created");
    assert_eq!(status["algorithm"], "random");
    assert_eq!(status["objectiveMetricName"], "loss");
    assert_eq!(status["objectiveType"], "minimize");
    assert!(status["trials"]["total"].is_u64(), "{created}");

    let done = server.wait_for_phase("created", "Succeeded").await;
    assert_eq!(done["status"]["status"], "Succeeded");
    assert_eq!(done["status"]["trials"]["total"], 3);
    assert_eq!(done["status"]["trials"]["succeeded"], 3);
    let page = server.get("/v1/experiments/created/trials").await;
    assert_eq!(page.json["total"], 3);
    let mut best = f64::INFINITY;
    for trial in page.json["trials"].as_array().unwrap() {
        let x: f64 = trial["assignments"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let objective = trial["objective"].as_f64().unwrap();
        assert!(
            (objective - x).abs() < 1e-9,
            "the trial printed loss=x: {trial}"
        );
        best = best.min(objective);
    }
    assert_eq!(
        done["status"]["currentOptimalTrial"]["objective"].as_f64(),
        Some(best),
        "{done}"
    );
}

#[tokio::test]
async fn create_takes_json_bodies_too() {
    let server = TestServer::new(false);
    let value: Value =
        serde_saphyr::from_str(&experiment_yaml("from-json", "maximize", QUICK, 1, 1)).unwrap();
    let reply = server
        .call("POST", &server.create_uri(), Some(ADMIN), value.to_string())
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json["experiment"]["name"], "from-json");
    assert_eq!(reply.json["status"]["objectiveType"], "maximize");
    let done = server.wait_for_phase("from-json", "Succeeded").await;
    assert_eq!(done["status"]["trials"]["succeeded"], 1);
}

#[tokio::test]
async fn create_needs_the_admin_token() {
    let server = TestServer::new(false);
    server.seed_experiment("other", "minimize", ExperimentPhase::Succeeded);
    let trial = server.seed_trial("other", 0, TrialState::Succeeded, Some(0.1));
    let yaml = experiment_yaml("guarded", "minimize", QUICK, 1, 1);
    let uri = server.create_uri();

    let reply = server.call("POST", &uri, None, yaml.clone()).await;
    reply.error(401, "unauthenticated", Some("Authorization"));
    let reply = server
        .call("POST", &uri, Some("not-the-admin-token"), yaml.clone())
        .await;
    reply.error(401, "unauthenticated", Some("Authorization"));
    let reply = send_with_headers(
        &server.router,
        "POST",
        &uri,
        &[("authorization", "Basic YWRtaW46YWRtaW4=")],
        yaml.clone(),
    )
    .await;
    reply.error(401, "unauthenticated", Some("Authorization"));
    let reply = server
        .call("POST", &uri, Some(&token_of(&trial.name)), yaml.clone())
        .await;
    reply.error(403, "permission_denied", Some("Authorization"));

    assert!(server.store().experiment("guarded").unwrap().is_none());
    let list = server.get("/v1/experiments").await;
    assert_eq!(list.json["experiments"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn create_refuses_an_invalid_spec_naming_the_field() {
    let server = TestServer::new(false);
    let uri = server.create_uri();

    // One problem: `field` names it, no details.
    let yaml = experiment_yaml("bad", "minimize", QUICK, 1, 1)
        .replace(r#"{min: "0", max: "1"}"#, r#"{min: "2", max: "1"}"#);
    let reply = server.call("POST", &uri, Some(ADMIN), yaml).await;
    reply.error_at(400, "invalid_argument");
    assert!(
        reply
            .field()
            .starts_with("spec.parameters[0].feasibleSpace"),
        "{}",
        reply.text
    );
    assert!(
        reply.json["error"].get("details").is_none(),
        "{}",
        reply.text
    );

    // Several: the first in `field`, every one in `details`.
    let yaml = experiment_yaml("bad", "sideways", QUICK, 1, 0);
    let reply = server.call("POST", &uri, Some(ADMIN), yaml).await;
    let error = reply.error_at(400, "invalid_argument");
    let details = error["details"]
        .as_array()
        .unwrap_or_else(|| panic!("details: {}", reply.text));
    let fields: Vec<&str> = details
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"spec.objective.type"), "{fields:?}");
    assert!(fields.contains(&"spec.parallelTrialCount"), "{fields:?}");
    assert_eq!(error["field"], fields[0], "{}", reply.text);
    for detail in details {
        assert!(
            detail["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{detail}"
        );
    }

    // Not an Experiment at all.
    let reply = server
        .call("POST", &uri, Some(ADMIN), "metadata: [unclosed")
        .await;
    reply.error(400, "invalid_argument", Some("body"));

    // The template needs a GPU this server does not have: refused before anything is stored.
    let yaml = experiment_yaml("gpu", "minimize", QUICK, 1, 1).replace(
        "                command:",
        "                resources: {limits: {nvidia.com/gpu: 1}}\n                command:",
    );
    let reply = server.call("POST", &uri, Some(ADMIN), yaml).await;
    let error = reply.error(400, "invalid_argument", Some("body"));
    assert!(
        error["message"].as_str().unwrap().contains("GPU"),
        "{}",
        reply.text
    );
    assert!(server.store().experiments().unwrap().is_empty());
}

#[tokio::test]
async fn create_refuses_bad_bodies_and_query_parameters() {
    let server = TestServer::new(false);
    let uri = server.create_uri();
    let yaml = experiment_yaml("never", "minimize", QUICK, 1, 1);

    let reply = server.call("POST", &uri, Some(ADMIN), "").await;
    reply.error(400, "invalid_argument", Some("body"));
    let reply = server.call("POST", &uri, Some(ADMIN), "  \n\t\n").await;
    reply.error(400, "invalid_argument", Some("body"));
    let reply = server
        .call("POST", &uri, Some(ADMIN), vec![0xff, 0xfe, b'a', 0x80])
        .await;
    reply.error(400, "invalid_argument", Some("body"));

    let reply = server
        .call(
            "POST",
            &format!("{uri}&dryRun=true"),
            Some(ADMIN),
            yaml.clone(),
        )
        .await;
    reply.error(400, "invalid_argument", Some("dryRun"));
    let reply = server
        .call(
            "POST",
            "/v1/experiments?workDir=relative/dir",
            Some(ADMIN),
            yaml.clone(),
        )
        .await;
    reply.error(400, "invalid_argument", Some("workDir"));
    let missing = server.work.path().join("does-not-exist");
    let reply = server
        .call(
            "POST",
            &format!("/v1/experiments?workDir={}", missing.display()),
            Some(ADMIN),
            yaml.clone(),
        )
        .await;
    reply.error(400, "invalid_argument", Some("workDir"));
    let file = server.work.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let reply = server
        .call(
            "POST",
            &format!("/v1/experiments?workDir={}", file.display()),
            Some(ADMIN),
            yaml.clone(),
        )
        .await;
    reply.error(400, "invalid_argument", Some("workDir"));

    assert!(server.store().experiments().unwrap().is_empty());
}

#[tokio::test]
async fn create_refuses_a_name_that_is_taken_with_409() {
    let server = TestServer::new(false);
    let yaml = experiment_yaml("twice", "minimize", QUICK, 1, 1);
    server.create(&yaml).await;
    // While it may still run, and after it ended.
    let reply = server
        .call("POST", &server.create_uri(), Some(ADMIN), yaml.clone())
        .await;
    reply.error(409, "already_exists", None);
    server.wait_for_phase("twice", "Succeeded").await;
    let reply = server
        .call("POST", &server.create_uri(), Some(ADMIN), yaml.clone())
        .await;
    let error = reply.error(409, "already_exists", None);
    assert!(
        error["message"].as_str().unwrap().contains("twice"),
        "{}",
        reply.text
    );
    // The same name with another spec is refused the same way.
    let changed = experiment_yaml("twice", "maximize", QUICK, 1, 1);
    let reply = server
        .call("POST", &server.create_uri(), Some(ADMIN), changed)
        .await;
    reply.error(409, "already_exists", None);
    assert_eq!(
        server.store().trials("twice").unwrap().len(),
        1,
        "nothing ran again"
    );
}

#[tokio::test]
async fn bodies_over_4_mib_are_refused_with_413_and_the_json_shape() {
    let server = TestServer::new(false);
    // A YAML comment: valid if it were accepted, so only the size refuses it.
    let mut body = b"# ".to_vec();
    body.resize(MAX_BODY_BYTES + 1, b'x');
    let reply = server
        .call("POST", &server.create_uri(), Some(ADMIN), body.clone())
        .await;
    let error = reply.error(413, "payload_too_large", Some("body"));
    assert!(
        error["message"].as_str().unwrap().contains("too large"),
        "{}",
        reply.text
    );

    server.seed_experiment("big", "minimize", ExperimentPhase::Succeeded);
    let trial = server.seed_trial("big", 0, TrialState::Succeeded, Some(0.1));
    let reply = server
        .call(
            "POST",
            "/v1/experiments/big/trials/big-0001/metrics",
            Some(&token_of(&trial.name)),
            body,
        )
        .await;
    reply.error(413, "payload_too_large", Some("body"));
    assert!(
        server
            .store()
            .observations(trial.uid, None)
            .unwrap()
            .is_empty()
    );

    // Exactly the limit is not refused for its size (it is not an Experiment, so 400).
    let mut body = b"# ".to_vec();
    body.resize(MAX_BODY_BYTES, b'x');
    let reply = server
        .call("POST", &server.create_uri(), Some(ADMIN), body)
        .await;
    reply.error_at(400, "invalid_argument");
}

// --- GET/DELETE /v1/experiments/{name}, stop ---

#[tokio::test]
async fn experiments_are_listed_by_name_and_read_one_by_one() {
    let server = TestServer::new(false);
    let empty = server.get("/v1/experiments").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json, json!({"experiments": []}));
    let reply = server.get("/v1/experiments/zeta").await;
    let error = reply.error(404, "not_found", None);
    assert!(
        error["message"].as_str().unwrap().contains("none"),
        "{}",
        reply.text
    );

    server.seed_experiment("zeta", "minimize", ExperimentPhase::Succeeded);
    server.seed_experiment("alpha", "maximize", ExperimentPhase::Failed);
    server.seed_trial("alpha", 0, TrialState::Succeeded, Some(0.4));
    server.seed_trial("alpha", 1, TrialState::Succeeded, Some(0.8));
    server.seed_trial("alpha", 2, TrialState::Failed, None);

    let list = server.get("/v1/experiments").await;
    assert_eq!(list.status, StatusCode::OK);
    let experiments = list.json["experiments"].as_array().unwrap();
    let listed: Vec<&str> = experiments
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["alpha", "zeta"]);
    assert_eq!(experiments[0]["status"], "Failed");
    assert_eq!(experiments[0]["trials"]["total"], 3);

    let detail = server.get("/v1/experiments/alpha").await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.text);
    assert_eq!(detail.json["experiment"]["name"], "alpha");
    assert_eq!(detail.json["experiment"]["phase"], "Failed");
    let status = &detail.json["status"];
    assert_eq!(status["trials"]["total"], 3);
    assert_eq!(status["trials"]["succeeded"], 2);
    assert_eq!(status["trials"]["failed"], 1);
    assert_eq!(status["currentOptimalTrial"]["bestTrialName"], "alpha-0002");
    assert_eq!(status["currentOptimalTrial"]["objective"], 0.8);
    assert_eq!(
        status["currentOptimalTrial"]["parameterAssignments"][0]["value"],
        "0.1"
    );

    let reply = server.get("/v1/experiments/beta").await;
    let error = reply.error(404, "not_found", None);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("beta") && message.contains("alpha") && message.contains("zeta"),
        "the 404 names the known experiments: {message}"
    );
}

#[tokio::test]
async fn delete_needs_the_admin_token_and_removes_trials_tokens_and_points() {
    let server = TestServer::new(false);
    server.seed_experiment("doomed", "minimize", ExperimentPhase::Succeeded);
    server.seed_experiment("kept", "minimize", ExperimentPhase::Succeeded);
    let doomed: Vec<TrialRecord> = (0..3)
        .map(|i| server.seed_trial("doomed", i, TrialState::Succeeded, Some(0.1)))
        .collect();
    let kept = server.seed_trial("kept", 0, TrialState::Succeeded, Some(0.2));
    for trial in doomed.iter().chain([&kept]) {
        server
            .store()
            .put_observations(trial.uid, &[point("loss", 1, 0.5), point("loss", 2, 0.4)])
            .unwrap();
    }

    let reply = server
        .call("DELETE", "/v1/experiments/doomed", None, Body::empty())
        .await;
    reply.error(401, "unauthenticated", Some("Authorization"));
    let reply = server
        .call(
            "DELETE",
            "/v1/experiments/doomed",
            Some("wrong"),
            Body::empty(),
        )
        .await;
    reply.error(401, "unauthenticated", Some("Authorization"));
    let reply = server
        .call(
            "DELETE",
            "/v1/experiments/doomed",
            Some(&token_of(&doomed[0].name)),
            Body::empty(),
        )
        .await;
    reply.error(403, "permission_denied", Some("Authorization"));
    let reply = server
        .call(
            "DELETE",
            "/v1/experiments/nothing",
            Some(ADMIN),
            Body::empty(),
        )
        .await;
    reply.error(404, "not_found", None);
    assert!(server.store().experiment("doomed").unwrap().is_some());

    let reply = server
        .call(
            "DELETE",
            "/v1/experiments/doomed",
            Some(ADMIN),
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json, json!({"deleted": "doomed"}));

    let store = server.store();
    assert!(store.experiment("doomed").unwrap().is_none());
    assert!(store.trials("doomed").unwrap().is_empty());
    assert!(store.trial_summaries("doomed").unwrap().is_empty());
    assert!(store.engine_state("doomed").unwrap().is_none());
    for trial in &doomed {
        assert!(
            store.trial(&trial.name).unwrap().is_none(),
            "{}",
            trial.name
        );
        assert!(
            store.trial_token(&trial.name).unwrap().is_none(),
            "{}",
            trial.name
        );
        assert!(
            store.token_owner(&token_of(&trial.name)).unwrap().is_none(),
            "{}",
            trial.name
        );
        assert!(
            store.observations(trial.uid, None).unwrap().is_empty(),
            "{}",
            trial.name
        );
    }
    // The other experiment is untouched.
    assert!(store.experiment("kept").unwrap().is_some());
    assert_eq!(store.observations(kept.uid, None).unwrap().len(), 2);
    assert_eq!(
        store.token_owner(&token_of(&kept.name)).unwrap().as_deref(),
        Some(kept.name.as_str())
    );
    server
        .get("/v1/experiments/doomed")
        .await
        .error(404, "not_found", None);
    let reply = server
        .call(
            "DELETE",
            "/v1/experiments/doomed",
            Some(ADMIN),
            Body::empty(),
        )
        .await;
    reply.error(404, "not_found", None);
    // A deleted trial's token is no longer known: pushing with it is refused.
    let reply = server
        .call(
            "POST",
            "/v1/experiments/kept/trials/kept-0001/metrics",
            Some(&token_of(&doomed[0].name)),
            r#"{"observations": []}"#,
        )
        .await;
    reply.error(401, "unauthenticated", Some("Authorization"));
}

#[tokio::test]
async fn deleting_a_running_experiment_stops_its_trials_first() {
    let server = TestServer::new(false);
    server
        .create(&experiment_yaml("busy", "minimize", SLEEPING, 4, 2))
        .await;
    let running = server.wait_for_running("busy", 2).await;
    let pids: Vec<u64> = running.iter().map(|t| t["pid"].as_u64().unwrap()).collect();
    let reply = server
        .call("DELETE", "/v1/experiments/busy", Some(ADMIN), Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(server.store().experiment("busy").unwrap().is_none());
    assert!(server.store().trials("busy").unwrap().is_empty());
    assert!(!server.state.supervisor().is_running("busy"));
    for pid in pids {
        wait_gone(pid).await;
    }
}

#[tokio::test]
async fn stop_refuses_an_experiment_that_is_not_running() {
    let server = TestServer::new(false);
    server.seed_experiment("ended", "minimize", ExperimentPhase::Succeeded);
    let reply = server
        .call(
            "POST",
            "/v1/experiments/ended/stop",
            Some(ADMIN),
            Body::empty(),
        )
        .await;
    let error = reply.error(409, "failed_precondition", None);
    assert!(
        error["message"].as_str().unwrap().contains("not running"),
        "{}",
        reply.text
    );
    let reply = server
        .call("POST", "/v1/experiments/ended/stop", None, Body::empty())
        .await;
    reply.error(401, "unauthenticated", Some("Authorization"));
    let reply = server
        .call(
            "POST",
            "/v1/experiments/missing/stop",
            Some(ADMIN),
            Body::empty(),
        )
        .await;
    reply.error(404, "not_found", None);
    // A stored Running experiment without a driver (a server that has not resumed it) is not
    // stoppable either.
    server.seed_experiment("orphan", "minimize", ExperimentPhase::Running);
    let reply = server
        .call(
            "POST",
            "/v1/experiments/orphan/stop",
            Some(ADMIN),
            Body::empty(),
        )
        .await;
    reply.error(409, "failed_precondition", None);
}

#[tokio::test]
async fn stopping_a_running_experiment_kills_its_trials_and_ends_it_stopped() {
    let server = TestServer::new(false);
    server
        .create(&experiment_yaml("halted", "minimize", SLEEPING, 6, 2))
        .await;
    let running = server.wait_for_running("halted", 2).await;
    let first = running[0]["name"].as_str().unwrap();
    let token = server.store().trial_token(first).unwrap().unwrap();
    let reply = server
        .call(
            "POST",
            "/v1/experiments/halted/stop",
            Some(&token),
            Body::empty(),
        )
        .await;
    reply.error(403, "permission_denied", Some("Authorization"));
    assert!(server.state.supervisor().is_running("halted"));

    let reply = server
        .call(
            "POST",
            "/v1/experiments/halted/stop",
            Some(ADMIN),
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json["experiment"]["phase"], "Stopped",
        "{}",
        reply.text
    );
    assert_eq!(reply.json["experiment"]["reason"], "ExperimentStopped");
    assert!(
        reply.json["experiment"]["completed"].is_string(),
        "{}",
        reply.text
    );
    assert_eq!(reply.json["status"]["status"], "Stopped");
    assert_eq!(
        reply.json["status"]["trials"]["killed"], 2,
        "{}",
        reply.text
    );
    assert_eq!(
        reply.json["status"]["trials"]["running"], 0,
        "{}",
        reply.text
    );

    let page = server.get("/v1/experiments/halted/trials").await;
    assert_eq!(
        page.json["total"], 2,
        "no trial started after the stop: {}",
        page.text
    );
    for trial in page.json["trials"].as_array().unwrap() {
        assert_eq!(trial["state"], "Killed", "{trial}");
        assert!(trial["pid"].is_null(), "{trial}");
        assert!(
            trial["message"]
                .as_str()
                .unwrap()
                .contains("stopped on request"),
            "{trial}"
        );
    }
    for trial in &running {
        wait_gone(trial["pid"].as_u64().unwrap()).await;
    }
    let reply = server
        .call(
            "POST",
            "/v1/experiments/halted/stop",
            Some(ADMIN),
            Body::empty(),
        )
        .await;
    reply.error(409, "failed_precondition", None);
    // The stopped experiment stays readable.
    let detail = server.get("/v1/experiments/halted").await;
    assert_eq!(detail.json["experiment"]["phase"], "Stopped");
}

// --- trials ---

/// A maximize experiment `ranked` and a minimize one `lowest` with the same six trials:
/// objectives 0.5, none (Failed), 0.9, none (Killed), 0.1, none (Running).
fn seed_ranked(server: &TestServer) {
    let trials = [
        (TrialState::Succeeded, Some(0.5)),
        (TrialState::Failed, None),
        (TrialState::Succeeded, Some(0.9)),
        (TrialState::Killed, None),
        (TrialState::Succeeded, Some(0.1)),
        (TrialState::Running, None),
    ];
    for (name, direction) in [("ranked", "maximize"), ("lowest", "minimize")] {
        server.seed_experiment(name, direction, ExperimentPhase::Succeeded);
        for (i, (state, objective)) in trials.iter().enumerate() {
            server.seed_trial(name, i as u64, *state, *objective);
        }
    }
}

fn numbered(experiment: &str, indices: &[u64]) -> Vec<String> {
    indices.iter().map(|&i| trial_name(experiment, i)).collect()
}

#[tokio::test]
async fn trials_are_paginated_with_total_and_next_offset() {
    let server = TestServer::new(false);
    seed_ranked(&server);
    let all = server.get("/v1/experiments/ranked/trials").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(names(&all.json), numbered("ranked", &[0, 1, 2, 3, 4, 5]));
    assert_eq!(all.json["total"], 6);
    assert!(
        all.json.get("nextOffset").is_none_or(Value::is_null),
        "{}",
        all.text
    );
    assert_eq!(all.json["trials"][0]["experiment"], "ranked");
    assert!(all.json["trials"][0]["uid"].is_u64());

    let mut offset = Some(0u64);
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(at) = offset {
        let page = server
            .get(&format!(
                "/v1/experiments/ranked/trials?limit=4&offset={at}"
            ))
            .await;
        assert_eq!(page.json["total"], 6, "{}", page.text);
        seen.extend(names(&page.json));
        offset = page.json.get("nextOffset").and_then(Value::as_u64);
        pages += 1;
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, numbered("ranked", &[0, 1, 2, 3, 4, 5]));

    let page = server
        .get("/v1/experiments/ranked/trials?limit=2&offset=2")
        .await;
    assert_eq!(names(&page.json), numbered("ranked", &[2, 3]));
    assert_eq!(page.json["nextOffset"], 4);
    let past = server.get("/v1/experiments/ranked/trials?offset=100").await;
    assert_eq!(past.status, StatusCode::OK);
    assert!(names(&past.json).is_empty());
    assert_eq!(past.json["total"], 6);
    assert!(
        past.json.get("nextOffset").is_none_or(Value::is_null),
        "{}",
        past.text
    );
    let largest = server
        .get("/v1/experiments/ranked/trials?limit=10000")
        .await;
    assert_eq!(largest.status, StatusCode::OK, "{}", largest.text);
    assert_eq!(names(&largest.json).len(), 6);
}

#[tokio::test]
async fn trials_are_filtered_by_state_case_insensitively() {
    let server = TestServer::new(false);
    seed_ranked(&server);
    let page = server
        .get("/v1/experiments/ranked/trials?state=succeeded")
        .await;
    assert_eq!(names(&page.json), numbered("ranked", &[0, 2, 4]));
    assert_eq!(page.json["total"], 3);
    let page = server
        .get("/v1/experiments/ranked/trials?state=KILLED")
        .await;
    assert_eq!(names(&page.json), numbered("ranked", &[3]));
    let page = server
        .get("/v1/experiments/ranked/trials?state=Running")
        .await;
    assert_eq!(names(&page.json), numbered("ranked", &[5]));
    let page = server
        .get("/v1/experiments/ranked/trials?state=metricsunavailable")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.json["total"], 0);
    let page = server
        .get("/v1/experiments/ranked/trials?state=Succeeded&sort=objective&limit=1")
        .await;
    assert_eq!(names(&page.json), numbered("ranked", &[2]));
    assert_eq!(page.json["total"], 3);
    assert_eq!(page.json["nextOffset"], 1);
}

#[tokio::test]
async fn trials_sorted_by_objective_put_the_best_first_and_trials_without_one_last() {
    let server = TestServer::new(false);
    seed_ranked(&server);
    let page = server
        .get("/v1/experiments/ranked/trials?sort=objective")
        .await;
    assert_eq!(names(&page.json), numbered("ranked", &[2, 0, 4, 1, 3, 5]));
    let page = server
        .get("/v1/experiments/lowest/trials?sort=objective")
        .await;
    assert_eq!(names(&page.json), numbered("lowest", &[4, 0, 2, 1, 3, 5]));
    let page = server
        .get("/v1/experiments/lowest/trials?sort=objective&limit=2&offset=1")
        .await;
    assert_eq!(names(&page.json), numbered("lowest", &[0, 2]));
    let page = server.get("/v1/experiments/lowest/trials?sort=index").await;
    assert_eq!(names(&page.json), numbered("lowest", &[0, 1, 2, 3, 4, 5]));
}

#[tokio::test]
async fn bad_trial_listings_are_refused_naming_the_parameter() {
    let server = TestServer::new(false);
    seed_ranked(&server);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=x", "limit"),
        ("limit=-1", "limit"),
        ("limit=", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("state=Sleeping", "state"),
        ("state=", "state"),
        ("sort=name", "sort"),
        ("page=2", "page"),
    ] {
        let reply = server
            .get(&format!("/v1/experiments/ranked/trials?{query}"))
            .await;
        reply.error(400, "invalid_argument", Some(field));
    }
    let reply = server.get("/v1/experiments/unknown/trials").await;
    let error = reply.error(404, "not_found", None);
    assert!(
        error["message"].as_str().unwrap().contains("ranked"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn one_trial_is_read_by_name() {
    let server = TestServer::new(false);
    seed_ranked(&server);
    let reply = server
        .get("/v1/experiments/ranked/trials/ranked-0003")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["name"], "ranked-0003");
    assert_eq!(reply.json["experiment"], "ranked");
    assert_eq!(reply.json["index"], 2);
    assert_eq!(reply.json["state"], "Succeeded");
    assert_eq!(reply.json["objective"], 0.9);
    assert_eq!(
        reply.json["assignments"],
        json!([{"name": "x", "value": "0.2"}])
    );
    assert!(
        reply.json.get("token").is_none() && !reply.text.contains(&token_of("ranked-0003")),
        "a trial's token is never served: {}",
        reply.text
    );

    let reply = server
        .get("/v1/experiments/ranked/trials/ranked-0099")
        .await;
    let error = reply.error(404, "not_found", None);
    assert!(
        error["message"].as_str().unwrap().contains("ranked-0099"),
        "{}",
        reply.text
    );
    // A trial of another experiment is not found under this one.
    let reply = server
        .get("/v1/experiments/ranked/trials/lowest-0001")
        .await;
    reply.error(404, "not_found", None);
    let reply = server.get("/v1/experiments/nope/trials/ranked-0001").await;
    let error = reply.error(404, "not_found", None);
    assert!(
        error["message"].as_str().unwrap().contains("nope"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn stopping_a_trial_needs_the_admin_token_and_an_active_trial() {
    let server = TestServer::new(false);
    seed_ranked(&server);
    let uri = "/v1/experiments/ranked/trials/ranked-0001/stop";
    let reply = server.call("POST", uri, None, Body::empty()).await;
    reply.error(401, "unauthenticated", Some("Authorization"));
    let reply = server
        .call("POST", uri, Some(&token_of("ranked-0001")), Body::empty())
        .await;
    reply.error(403, "permission_denied", Some("Authorization"));
    let reply = server.call("POST", uri, Some(ADMIN), Body::empty()).await;
    let error = reply.error(409, "failed_precondition", None);
    assert!(
        error["message"].as_str().unwrap().contains("Succeeded"),
        "{}",
        reply.text
    );
    let reply = server
        .call(
            "POST",
            "/v1/experiments/ranked/trials/ranked-0042/stop",
            Some(ADMIN),
            Body::empty(),
        )
        .await;
    reply.error(404, "not_found", None);
    let reply = server
        .call(
            "POST",
            "/v1/experiments/nope/trials/ranked-0001/stop",
            Some(ADMIN),
            Body::empty(),
        )
        .await;
    reply.error(404, "not_found", None);
    // A trial stored as Running whose experiment has no driver cannot be stopped here.
    let reply = server
        .call(
            "POST",
            "/v1/experiments/ranked/trials/ranked-0006/stop",
            Some(ADMIN),
            Body::empty(),
        )
        .await;
    reply.error(409, "failed_precondition", None);
}

#[tokio::test]
async fn stopping_a_running_trial_kills_it_and_the_experiment_goes_on() {
    let server = TestServer::new(false);
    server
        .create(&experiment_yaml("single", "minimize", SLEEPING, 2, 1))
        .await;
    let running = server.wait_for_running("single", 1).await;
    assert_eq!(running[0]["name"], "single-0001");
    let pid = running[0]["pid"].as_u64().unwrap();
    let uri = "/v1/experiments/single/trials/single-0001/stop";
    let reply = server.call("POST", uri, Some(ADMIN), Body::empty()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["name"], "single-0001");

    let killed = server
        .poll(
            "/v1/experiments/single/trials/single-0001",
            "single-0001 to be Killed",
            |trial| trial["state"] == "Killed",
        )
        .await;
    assert!(
        killed["message"]
            .as_str()
            .unwrap()
            .contains("stopped on request"),
        "{killed}"
    );
    wait_gone(pid).await;
    let reply = server.call("POST", uri, Some(ADMIN), Body::empty()).await;
    reply.error(409, "failed_precondition", None);
    // A killed trial does not count toward maxTrialCount: the next one starts.
    let next = server.wait_for_running("single", 1).await;
    assert_eq!(next[0]["name"], "single-0002");
    let reply = server
        .call(
            "POST",
            "/v1/experiments/single/stop",
            Some(ADMIN),
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

// --- metrics: read ---

/// Experiment `series`, trial `series-0001` with `loss` at steps 0..=100 (|step - 50|) and
/// `accuracy` at steps 0..10.
fn seed_series(server: &TestServer) -> TrialRecord {
    server.seed_experiment("series", "minimize", ExperimentPhase::Succeeded);
    let trial = server.seed_trial("series", 0, TrialState::Succeeded, Some(0.0));
    let loss: Vec<Observation> = (0..=100)
        .map(|s| point("loss", s, (s as f64 - 50.0).abs()))
        .collect();
    let accuracy: Vec<Observation> = (0..10)
        .map(|s| point("accuracy", s, s as f64 / 10.0))
        .collect();
    server.store().put_observations(trial.uid, &loss).unwrap();
    server
        .store()
        .put_observations(trial.uid, &accuracy)
        .unwrap();
    trial
}

fn series<'a>(reply: &'a Value, metric: &str) -> &'a Value {
    reply["metrics"]
        .as_array()
        .unwrap_or_else(|| panic!("no metrics in {reply}"))
        .iter()
        .find(|s| s["metricName"] == metric)
        .unwrap_or_else(|| panic!("no {metric} in {reply}"))
}

fn steps(series: &Value) -> Vec<i64> {
    series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn metrics_are_read_per_metric_and_step_range() {
    let server = TestServer::new(false);
    seed_series(&server);
    let base = "/v1/experiments/series/trials/series-0001/metrics";

    let all = server.get(base).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(all.json["trial"], "series-0001");
    assert_eq!(all.json["metrics"].as_array().unwrap().len(), 2);
    let loss = series(&all.json, "loss");
    assert_eq!(loss["totalPoints"], 101);
    assert_eq!(loss["downsampled"], false);
    assert_eq!(steps(loss), (0..=100).collect::<Vec<_>>());
    assert_eq!(loss["points"][0]["value"], 50.0);
    assert_eq!(loss["points"][0]["timestamp"], "2027-01-15T08:00:00Z");
    assert_eq!(series(&all.json, "accuracy")["totalPoints"], 10);

    let one = server.get(&format!("{base}?metric=accuracy")).await;
    assert_eq!(one.json["metrics"].as_array().unwrap().len(), 1);
    assert_eq!(
        steps(series(&one.json, "accuracy")),
        (0..10).collect::<Vec<_>>()
    );

    let range = server
        .get(&format!("{base}?metric=loss&fromStep=10&toStep=20"))
        .await;
    let loss = series(&range.json, "loss");
    assert_eq!(steps(loss), (10..=20).collect::<Vec<_>>());
    assert_eq!(loss["totalPoints"], 11);
    let from = server.get(&format!("{base}?fromStep=95")).await;
    assert_eq!(
        steps(series(&from.json, "loss")),
        (95..=100).collect::<Vec<_>>()
    );
    assert!(
        from.json["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["metricName"] != "accuracy"),
        "a metric with no point in range is left out: {}",
        from.text
    );
    let to = server.get(&format!("{base}?metric=loss&toStep=-1")).await;
    assert_eq!(to.json["metrics"], json!([]));
    let equal = server
        .get(&format!("{base}?metric=loss&fromStep=7&toStep=7"))
        .await;
    assert_eq!(steps(series(&equal.json, "loss")), [7]);

    let unknown = server.get(&format!("{base}?metric=perplexity")).await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.json["metrics"], json!([]));
    // A trial with no points at all.
    server.seed_trial("series", 1, TrialState::Failed, None);
    let empty = server
        .get("/v1/experiments/series/trials/series-0002/metrics")
        .await;
    assert_eq!(empty.json, json!({"trial": "series-0002", "metrics": []}));
}

#[tokio::test]
async fn long_series_are_downsampled_keeping_the_first_and_last_points() {
    let server = TestServer::new(false);
    seed_series(&server);
    let base = "/v1/experiments/series/trials/series-0001/metrics";
    let reply = server
        .get(&format!("{base}?metric=loss&maxPoints=10"))
        .await;
    let loss = series(&reply.json, "loss");
    assert_eq!(loss["downsampled"], true);
    assert_eq!(loss["totalPoints"], 101);
    let kept = steps(loss);
    assert_eq!(kept.len(), 10);
    assert_eq!((kept[0], kept[9]), (0, 100));
    assert!(kept.windows(2).all(|w| w[0] < w[1]), "{kept:?}");
    assert!(kept.contains(&50), "the dip at step 50 survives: {kept:?}");

    let reply = server
        .get(&format!(
            "{base}?metric=loss&fromStep=10&toStep=20&maxPoints=5"
        ))
        .await;
    let loss = series(&reply.json, "loss");
    assert_eq!(loss["totalPoints"], 11);
    assert_eq!(loss["downsampled"], true);
    let kept = steps(loss);
    assert_eq!((kept.len(), kept[0], kept[4]), (5, 10, 20));

    // A series that fits is served whole, per metric.
    let reply = server.get(&format!("{base}?maxPoints=10")).await;
    assert_eq!(series(&reply.json, "accuracy")["downsampled"], false);
    assert_eq!(steps(series(&reply.json, "accuracy")).len(), 10);
    assert_eq!(series(&reply.json, "loss")["downsampled"], true);
    let reply = server.get(&format!("{base}?metric=loss&maxPoints=2")).await;
    assert_eq!(steps(series(&reply.json, "loss")), [0, 100]);
}

#[tokio::test]
async fn bad_metric_reads_are_refused() {
    let server = TestServer::new(false);
    seed_series(&server);
    let base = "/v1/experiments/series/trials/series-0001/metrics";
    for (query, field) in [
        ("fromStep=20&toStep=10", "fromStep"),
        ("fromStep=x", "fromStep"),
        ("toStep=1.5", "toStep"),
        ("maxPoints=1", "maxPoints"),
        ("maxPoints=0", "maxPoints"),
        ("maxPoints=100001", "maxPoints"),
        ("maxPoints=many", "maxPoints"),
        ("step=3", "step"),
    ] {
        let reply = server.get(&format!("{base}?{query}")).await;
        reply.error(400, "invalid_argument", Some(field));
    }
    let reply = server
        .get("/v1/experiments/series/trials/series-0077/metrics")
        .await;
    reply.error(404, "not_found", None);
    let reply = server
        .get("/v1/experiments/nope/trials/series-0001/metrics")
        .await;
    reply.error(404, "not_found", None);
}

// --- metrics: push ---

#[tokio::test]
async fn a_push_is_stored_and_resending_it_is_idempotent() {
    let server = TestServer::new(false);
    server.seed_experiment("pushed", "minimize", ExperimentPhase::Running);
    let trial = server.seed_trial("pushed", 0, TrialState::Running, None);
    let uri = "/v1/experiments/pushed/trials/pushed-0001/metrics";
    let token = token_of(&trial.name);
    let batch = |late_loss: &str| {
        format!(
            r#"{{"observations": [
                {{"metricName": "loss", "value": 0.5, "step": 1}},
                {{"metricName": "loss", "value": {late_loss}, "step": 2, "timestamp": "2026-11-22T10:00:00Z"}},
                {{"metricName": "accuracy", "value": 0.75, "step": 2}}]}}"#
        )
    };
    let reply = server
        .call("POST", uri, Some(&token), batch("\"0.25\""))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json, json!({"accepted": 3}));
    let stored = server
        .store()
        .observations(trial.uid, Some("loss"))
        .unwrap();
    let loss: Vec<(i64, f64)> = stored.iter().map(|p| (p.step, p.value)).collect();
    assert_eq!(loss, [(1, 0.5), (2, 0.25)]);
    assert_eq!(stored[1].timestamp.to_string(), "2026-11-22T10:00:00Z");
    assert_eq!(
        server.store().observations(trial.uid, None).unwrap().len(),
        3
    );

    // The same batch again, with one value changed: nothing is added, the value is replaced.
    let reply = server.call("POST", uri, Some(&token), batch("0.125")).await;
    assert_eq!(reply.json, json!({"accepted": 3}), "{}", reply.text);
    let stored = server.store().observations(trial.uid, None).unwrap();
    assert_eq!(stored.len(), 3);
    let late = stored
        .iter()
        .find(|p| p.metric_name == "loss" && p.step == 2)
        .unwrap();
    assert_eq!(late.value, 0.125);

    // An empty push is fine and stores nothing.
    let reply = server
        .call("POST", uri, Some(&token), r#"{"observations": []}"#)
        .await;
    assert_eq!(reply.json, json!({"accepted": 0}), "{}", reply.text);
    // The admin token may push for any trial.
    let reply = server
        .call(
            "POST",
            uri,
            Some(ADMIN),
            r#"{"observations": [{"metricName": "loss", "value": 0.3, "step": 3}]}"#,
        )
        .await;
    assert_eq!(reply.json, json!({"accepted": 1}), "{}", reply.text);
    assert_eq!(
        server.store().observations(trial.uid, None).unwrap().len(),
        4
    );
    // The trial is still Running: no driver here, so its record is left to the next run.
    let record = server.get(uri.trim_end_matches("/metrics")).await;
    assert_eq!(record.json["state"], "Running");
}

#[tokio::test]
async fn a_refused_push_names_the_field_and_stores_nothing() {
    let server = TestServer::new(false);
    server.seed_experiment("strict", "minimize", ExperimentPhase::Succeeded);
    let trial = server.seed_trial("strict", 0, TrialState::Succeeded, Some(0.9));
    server
        .store()
        .put_observations(trial.uid, &[point("loss", 0, 0.9)])
        .unwrap();
    let uri = "/v1/experiments/strict/trials/strict-0001/metrics";
    let token = token_of(&trial.name);
    let good = r#"{"metricName": "loss", "value": 0.1, "step": 1}"#;
    let cases = [
        (
            r#"{"metricName": "loss", "value": "NaN", "step": 2}"#,
            "observations[1].value",
        ),
        (
            r#"{"metricName": "loss", "value": "nan", "step": 2}"#,
            "observations[1].value",
        ),
        (
            r#"{"metricName": "loss", "value": "inf", "step": 2}"#,
            "observations[1].value",
        ),
        (
            r#"{"metricName": "loss", "value": "-Infinity", "step": 2}"#,
            "observations[1].value",
        ),
        (
            r#"{"metricName": "loss", "value": "0.5x", "step": 2}"#,
            "observations[1].value",
        ),
        (
            r#"{"metricName": "loss", "value": true, "step": 2}"#,
            "observations[1].value",
        ),
        (r#"{"metricName": "loss", "value": 0.2}"#, "observations[1]"),
        (
            r#"{"metricName": "loss", "value": 0.2, "step": 1.5}"#,
            "observations[1].step",
        ),
        (
            r#"{"metricName": "loss", "value": 0.2, "step": "2"}"#,
            "observations[1].step",
        ),
        (
            r#"{"metricName": "loss", "value": 0.2, "step": 2, "timestamp": "yesterday"}"#,
            "observations[1].timestamp",
        ),
        (
            r#"{"metricName": "", "value": 0.2, "step": 2}"#,
            "observations[1].metricName",
        ),
        (
            r#"{"metricName": "  ", "value": 0.2, "step": 2}"#,
            "observations[1].metricName",
        ),
        (r#"{"value": 0.2, "step": 2}"#, "observations[1]"),
        (
            r#"{"metricName": "loss", "value": 0.2, "step": 2, "unit": "nats"}"#,
            "observations[1]",
        ),
    ];
    for (bad, field) in cases {
        let body = format!(r#"{{"observations": [{good}, {bad}]}}"#);
        let reply = server.call("POST", uri, Some(&token), body).await;
        reply.error_at(400, "invalid_argument");
        assert!(
            reply.field().starts_with(field),
            "{bad}: field {:?}, expected {field}: {}",
            reply.field(),
            reply.text
        );
        assert_eq!(
            server.store().observations(trial.uid, None).unwrap().len(),
            1,
            "nothing of a refused push is stored: {bad}"
        );
    }
    let too_long = format!(
        r#"{{"metricName": "{}", "value": 0.2, "step": 2}}"#,
        "m".repeat(257)
    );
    let reply = server
        .call(
            "POST",
            uri,
            Some(&token),
            format!(r#"{{"observations": [{good}, {too_long}]}}"#),
        )
        .await;
    reply.error(400, "invalid_argument", Some("observations[1].metricName"));

    for (body, field) in [
        ("", "body"),
        ("{not json", "body"),
        ("[]", "body"),
        (
            r#"{"observations": [{"metricName": "loss", "value": 0.1, "step": 1}]"#,
            "body",
        ),
        (r#"{"observations": {}}"#, "observations"),
        (r#"{"points": []}"#, "points"),
        // A number JSON cannot hold is a syntax error of the whole body.
        (
            r#"{"observations": [{"metricName": "loss", "value": 1e999, "step": 1}]}"#,
            "body",
        ),
    ] {
        let reply = server.call("POST", uri, Some(&token), body).await;
        reply.error_at(400, "invalid_argument");
        assert!(reply.field().starts_with(field), "{body}: {}", reply.text);
    }

    let many: Vec<String> = (0..=series::MAX_POINTS_PER_PUSH)
        .map(|i| {
            format!(
                r#"{{"metricName": "loss", "value": 0.5, "step": {}}}"#,
                i + 10
            )
        })
        .collect();
    let body = format!(r#"{{"observations": [{}]}}"#, many.join(","));
    let reply = server.call("POST", uri, Some(&token), body).await;
    let error = reply.error(400, "invalid_argument", Some("observations"));
    assert!(
        error["message"].as_str().unwrap().contains("10000"),
        "{}",
        reply.text
    );
    // Exactly the most a push may carry is accepted.
    let most: Vec<String> = (0..series::MAX_POINTS_PER_PUSH)
        .map(|i| {
            format!(
                r#"{{"metricName": "loss", "value": 0.5, "step": {}}}"#,
                i + 10
            )
        })
        .collect();
    assert_eq!(
        server.store().observations(trial.uid, None).unwrap().len(),
        1
    );
    let body = format!(r#"{{"observations": [{}]}}"#, most.join(","));
    let reply = server.call("POST", uri, Some(&token), body).await;
    assert_eq!(
        reply.json,
        json!({"accepted": series::MAX_POINTS_PER_PUSH}),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn a_push_needs_that_trials_token_or_the_admin_token() {
    let server = TestServer::new(false);
    server.seed_experiment("owned", "minimize", ExperimentPhase::Succeeded);
    let mine = server.seed_trial("owned", 0, TrialState::Succeeded, Some(0.5));
    let other = server.seed_trial("owned", 1, TrialState::Succeeded, Some(0.6));
    let uri = "/v1/experiments/owned/trials/owned-0001/metrics";
    let body = r#"{"observations": [{"metricName": "loss", "value": 0.1, "step": 1}]}"#;

    let reply = server.call("POST", uri, None, body).await;
    reply.error(401, "unauthenticated", Some("Authorization"));
    let reply = server.call("POST", uri, Some("garbage"), body).await;
    reply.error(401, "unauthenticated", Some("Authorization"));
    let reply = send_with_headers(
        &server.router,
        "POST",
        uri,
        &[("authorization", "Bearer")],
        body,
    )
    .await;
    reply.error(401, "unauthenticated", Some("Authorization"));
    let reply = send_with_headers(
        &server.router,
        "POST",
        uri,
        &[("authorization", &token_of(&mine.name))],
        body,
    )
    .await;
    reply.error(401, "unauthenticated", Some("Authorization"));
    let reply = server
        .call("POST", uri, Some(&token_of(&other.name)), body)
        .await;
    let error = reply.error(403, "permission_denied", Some("Authorization"));
    assert!(
        error["message"].as_str().unwrap().contains(&other.name),
        "{}",
        reply.text
    );
    for trial in [&mine, &other] {
        assert!(
            server
                .store()
                .observations(trial.uid, None)
                .unwrap()
                .is_empty(),
            "a refused push stores nothing"
        );
    }
    // The bearer scheme is case-insensitive.
    let reply = send_with_headers(
        &server.router,
        "POST",
        uri,
        &[("authorization", &format!("bearer {}", token_of(&mine.name)))],
        body,
    )
    .await;
    assert_eq!(reply.json, json!({"accepted": 1}), "{}", reply.text);
    let reply = server.call("POST", uri, Some(ADMIN), body).await;
    assert_eq!(reply.json, json!({"accepted": 1}), "{}", reply.text);
    assert_eq!(
        server.store().observations(mine.uid, None).unwrap().len(),
        1
    );

    let reply = server
        .call(
            "POST",
            "/v1/experiments/owned/trials/owned-0009/metrics",
            Some(ADMIN),
            body,
        )
        .await;
    reply.error(404, "not_found", None);
    let reply = server
        .call(
            "POST",
            "/v1/experiments/gone/trials/owned-0001/metrics",
            Some(ADMIN),
            body,
        )
        .await;
    reply.error(404, "not_found", None);
}

#[tokio::test]
async fn a_push_for_a_finished_trial_is_accepted_and_updates_its_summary() {
    let server = TestServer::new(false);
    server.seed_experiment("late", "minimize", ExperimentPhase::Succeeded);
    let trial = server.seed_trial("late", 0, TrialState::Succeeded, Some(0.9));
    server
        .store()
        .put_observations(trial.uid, &[point("loss", 1, 0.9)])
        .unwrap();
    let uri = "/v1/experiments/late/trials/late-0001/metrics";
    let body = r#"{"observations": [
        {"metricName": "loss", "value": 0.4, "step": 2},
        {"metricName": "loss", "value": 0.6, "step": 3},
        {"metricName": "accuracy", "value": 0.8, "step": 3}]}"#;
    let reply = server
        .call("POST", uri, Some(&token_of(&trial.name)), body)
        .await;
    assert_eq!(reply.json, json!({"accepted": 3}), "{}", reply.text);

    let record = server.get("/v1/experiments/late/trials/late-0001").await;
    assert_eq!(record.json["state"], "Succeeded", "its state stays");
    let loss = record.json["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "loss")
        .unwrap_or_else(|| panic!("no loss summary: {}", record.text));
    assert_eq!(loss["count"], 3, "{}", record.text);
    assert_eq!(loss["min"], 0.4);
    assert_eq!(loss["max"], 0.9);
    assert_eq!(loss["latest"], 0.6);
    assert!(
        record.json["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "accuracy"),
        "{}",
        record.text
    );
    assert_eq!(
        record.json["objective"], 0.4,
        "minimize with the min strategy"
    );
    // The experiment's best trial follows.
    let detail = server.get("/v1/experiments/late").await;
    assert_eq!(
        detail.json["status"]["currentOptimalTrial"]["objective"],
        0.4
    );
}

// --- health, readiness, Prometheus, OpenAPI, unknown routes ---

#[tokio::test]
async fn health_and_readiness() {
    let server = TestServer::new(false);
    let reply = server.get("/healthz").await;
    assert_eq!((reply.status, reply.text.trim()), (StatusCode::OK, "ok"));
    assert_eq!(server.get("/readyz").await.status, StatusCode::OK);

    // A server that has not finished resuming is live but not ready.
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(data.path()).unwrap();
    let supervisor = Supervisor::new(
        store.clone(),
        data.path().to_path_buf(),
        "http://127.0.0.1:1".into(),
        GpuPool::new(vec![]),
    );
    let state = AppState::new(
        store,
        supervisor,
        AccessConfig {
            admin_token: ADMIN.into(),
            auth_reads: true,
        },
    );
    let starting = router(state.clone(), DEFAULT_REQUEST_TIMEOUT);
    let reply = send(&starting, "GET", "/readyz", None, Body::empty()).await;
    reply.error(503, "unavailable", None);
    let reply = send(&starting, "GET", "/healthz", None, Body::empty()).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "health needs no token even with auth_reads"
    );
    state.set_ready();
    let reply = send(&starting, "GET", "/readyz", None, Body::empty()).await;
    assert_eq!((reply.status, reply.text.trim()), (StatusCode::OK, "ready"));
}

#[tokio::test]
async fn prometheus_metrics_count_trials_ingested_points_and_rejected_requests() {
    let server = TestServer::new(false);
    server.seed_experiment("counted", "minimize", ExperimentPhase::Succeeded);
    for i in 0..3 {
        server.seed_trial("counted", i, TrialState::Succeeded, Some(0.1));
    }
    server.seed_trial("counted", 3, TrialState::Failed, None);
    let reply = server.get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        reply.content_type.contains("openmetrics-text")
            || reply.content_type.starts_with("text/plain"),
        "{}",
        reply.content_type
    );
    let text = &reply.text;
    assert_eq!(
        sample(text, r#"sextant_trials{state="Succeeded"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(text, r#"sextant_trials{state="Failed"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(text, r#"sextant_trials{state="Running"}"#),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(text, r#"sextant_experiments{phase="Succeeded"}"#),
        Some(1.0),
        "{text}"
    );
    let before = sample(text, "sextant_ingested_points_total").unwrap_or(0.0);
    assert_eq!(before, 0.0, "{text}");

    let body = r#"{"observations": [{"metricName": "loss", "value": 0.1, "step": 1},
                                     {"metricName": "loss", "value": 0.2, "step": 2}]}"#;
    let reply = server
        .call(
            "POST",
            "/v1/experiments/counted/trials/counted-0001/metrics",
            Some(&token_of("counted-0001")),
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    server
        .get("/v1/experiments/missing")
        .await
        .error(404, "not_found", None);
    server
        .get("/v1/experiments/counted/trials?limit=0")
        .await
        .error(400, "invalid_argument", Some("limit"));
    server
        .call("POST", "/v1/experiments/counted/stop", None, Body::empty())
        .await
        .error(401, "unauthenticated", Some("Authorization"));

    let text = server.get("/metrics").await.text;
    assert_eq!(
        sample(&text, "sextant_ingested_points_total"),
        Some(2.0),
        "{text}"
    );
    for code in ["not_found", "invalid_argument", "unauthenticated"] {
        assert_eq!(
            sample(
                &text,
                &format!(r#"sextant_rejected_requests_total{{code="{code}"}}"#)
            ),
            Some(1.0),
            "{code}: {text}"
        );
    }
    // A refused push does not count as ingested.
    server
        .call(
            "POST",
            "/v1/experiments/counted/trials/counted-0001/metrics",
            Some(&token_of("counted-0001")),
            r#"{"observations": [{"metricName": "loss", "value": "NaN", "step": 3}]}"#,
        )
        .await
        .error_at(400, "invalid_argument");
    let text = server.get("/metrics").await.text;
    assert_eq!(
        sample(&text, "sextant_ingested_points_total"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"sextant_rejected_requests_total{code="invalid_argument"}"#
        ),
        Some(2.0),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_with_its_methods() {
    let server = TestServer::new(false);
    let reply = server.get("/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.content_type.starts_with("application/json"),
        "{}",
        reply.content_type
    );
    let document = &reply.json;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3')),
        "an OpenAPI 3 document: {}",
        reply.text
    );
    let paths = document["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("no paths in the OpenAPI document: {}", reply.text));
    for (path, methods) in ROUTES {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not in the OpenAPI document"));
        for method in *methods {
            assert!(
                item.get(*method).is_some(),
                "{method} {path} is not in the OpenAPI document"
            );
        }
    }
    for (path, item) in paths {
        let route = ROUTES.iter().find(|(p, _)| p == path).unwrap_or_else(|| {
            panic!("the OpenAPI document has {path}, which the server does not route")
        });
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            assert_eq!(
                item.get(method).is_some(),
                route.1.contains(&method),
                "{method} {path}: the document and the router disagree"
            );
        }
    }
}

#[tokio::test]
async fn every_route_in_the_table_is_routed() {
    // ROUTES is what the document and docs are checked against; it must match the router.
    let server = TestServer::new(false);
    for (path, methods) in ROUTES {
        let concrete = path
            .replace("{name}", "nope")
            .replace("{trial}", "nope-0001");
        for method in *methods {
            let reply = server
                .call(
                    &method.to_uppercase(),
                    &concrete,
                    Some(ADMIN),
                    Body::empty(),
                )
                .await;
            assert!(
                reply.status != StatusCode::METHOD_NOT_ALLOWED
                    && !(reply.status == StatusCode::NOT_FOUND
                        && reply.json["error"]["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("no such endpoint"))),
                "{method} {path} is not routed: {} {}",
                reply.status,
                reply.text
            );
        }
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let server = TestServer::new(false);
    let reply = server.get("/v1/nothing-here").await;
    reply.error(404, "not_found", None);
    let reply = server.get("/v1/experiments/a/b/c/d/e/f").await;
    reply.error(404, "not_found", None);
    let reply = server
        .call("PUT", "/v1/experiments", Some(ADMIN), "{}")
        .await;
    reply.error(405, "method_not_allowed", None);
    let reply = server.call("DELETE", "/healthz", None, Body::empty()).await;
    reply.error(405, "method_not_allowed", None);
    let reply = server
        .call("GET", "/v1/suggestions", None, Body::empty())
        .await;
    reply.error(405, "method_not_allowed", None);
}

// --- auth_reads ---

#[tokio::test]
async fn with_auth_reads_every_read_needs_the_admin_token() {
    let server = TestServer::new(true);
    server.seed_experiment("locked", "minimize", ExperimentPhase::Succeeded);
    let trial = server.seed_trial("locked", 0, TrialState::Succeeded, Some(0.3));
    server
        .store()
        .put_observations(trial.uid, &[point("loss", 1, 0.3)])
        .unwrap();
    let reads = [
        "/v1/experiments",
        "/v1/experiments/locked",
        "/v1/experiments/locked/trials",
        "/v1/experiments/locked/trials/locked-0001",
        "/v1/experiments/locked/trials/locked-0001/metrics",
    ];
    for uri in reads {
        let reply = server.get(uri).await;
        reply.error(401, "unauthenticated", Some("Authorization"));
        let reply = server.call("GET", uri, Some("wrong"), Body::empty()).await;
        reply.error(401, "unauthenticated", Some("Authorization"));
        let reply = server
            .call("GET", uri, Some(&token_of(&trial.name)), Body::empty())
            .await;
        reply.error(403, "permission_denied", Some("Authorization"));
        let reply = server.call("GET", uri, Some(ADMIN), Body::empty()).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text);
    }
    // An unknown experiment is not revealed to a caller without the token.
    let reply = server.get("/v1/experiments/secret").await;
    reply.error(401, "unauthenticated", Some("Authorization"));
    // Pushes still take the trial's own token.
    let reply = server
        .call(
            "POST",
            "/v1/experiments/locked/trials/locked-0001/metrics",
            Some(&token_of(&trial.name)),
            r#"{"observations": [{"metricName": "loss", "value": 0.2, "step": 2}]}"#,
        )
        .await;
    assert_eq!(reply.json, json!({"accepted": 1}), "{}", reply.text);
    assert_eq!(server.get("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn with_auth_reads_a_push_without_a_token_gives_no_experiment_away() {
    // With --auth-reads nothing about the server's experiments is visible without a token. The
    // push endpoint looks the trial up before it checks the token, so its 404 (which lists every
    // experiment on the server) reached callers with no token at all.
    let server = TestServer::new(true);
    server.seed_experiment("private-project", "minimize", ExperimentPhase::Succeeded);
    server.seed_trial("private-project", 0, TrialState::Succeeded, Some(0.3));
    let body = r#"{"observations": [{"metricName": "loss", "value": 0.2, "step": 2}]}"#;
    for uri in [
        "/v1/experiments/guess/trials/guess-0001/metrics",
        "/v1/experiments/private-project/trials/private-project-0042/metrics",
    ] {
        for token in [None, Some("garbage")] {
            let reply = server.call("POST", uri, token, body).await;
            assert!(
                !reply.text.contains("private-project"),
                "POST {uri} with {token:?} reveals the experiment: {}",
                reply.text
            );
            reply.error(401, "unauthenticated", Some("Authorization"));
        }
    }
}

// --- request timeout ---

#[tokio::test]
async fn a_request_past_the_timeout_is_cancelled_with_408_and_the_json_shape() {
    // Stopping an experiment waits for its trials to exit; a trial that ignores SIGTERM takes the
    // runtime's whole grace period (10 s), so the stop reliably outlasts a 300 ms timeout.
    let server = TestServer::new(false);
    let impatient = router(server.state.clone(), Duration::from_millis(300));
    server
        .create(&experiment_yaml("stubborn", "minimize", STUBBORN, 1, 1))
        .await;
    let running = server.wait_for_running("stubborn", 1).await;
    let pid = running[0]["pid"].as_u64().unwrap();
    let trapped = server.work.path().join("trapped");
    let deadline = Instant::now() + WAIT;
    while !trapped.exists() {
        assert!(Instant::now() < deadline, "the trial never set its trap");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let reply = send(
        &impatient,
        "POST",
        "/v1/experiments/stubborn/stop",
        Some(ADMIN),
        Body::empty(),
    )
    .await;
    let error = reply.error(408, "timeout", None);
    assert!(
        error["message"].as_str().unwrap().contains("too long"),
        "{}",
        reply.text
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Fast requests on the same router are unaffected.
    assert_eq!(
        send(&impatient, "GET", "/healthz", None, Body::empty())
            .await
            .status,
        StatusCode::OK
    );

    // Clean up: kill the trial's process group; the stop already asked for goes on and ends it.
    let group = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).unwrap();
    server.wait_for_phase("stubborn", "Stopped").await;
    wait_gone(pid).await;
}
