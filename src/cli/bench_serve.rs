//! `sextant bench serve`: load on the server's HTTP API over loopback, bounded in requests and time.
//!
//! The server runs in this process on a temporary store, exactly as `sextant serve` builds it; the
//! clients are tasks on the same runtime, one keep-alive connection each, like collectors and CLI
//! users would hold. Three measurements:
//! - ingest: concurrent collectors pushing batches of points, acknowledged only once durable;
//! - trials list: one experiment with many trials, a page sorted by objective;
//! - suggestion: random-search suggestion calls from concurrent clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rand::{Rng, RngExt, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::error::CliError;
use super::output::{Table, write_stdout};
use crate::api::{self, AccessConfig, AppState};
use crate::controller::supervisor::Supervisor;
use crate::runtime::gpu::GpuPool;
use crate::spec::{self, ParameterAssignment};
use crate::store::{
    ExperimentPhase, ExperimentRecord, MetricSummary, Store, TrialEvent, TrialRecord, TrialState,
};

/// Arguments of `sextant bench serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchServeArgs {
    /// Concurrent collectors pushing.
    #[arg(long, default_value_t = 64)]
    pub collectors: usize,
    /// Points per push.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Pushes per collector.
    #[arg(long, default_value_t = 100)]
    pub pushes: usize,
    /// Trials in the experiment that is listed.
    #[arg(long, default_value_t = 10_000)]
    pub trials: usize,
    /// Trials-list requests.
    #[arg(long, default_value_t = 500)]
    pub list_requests: usize,
    /// Concurrent suggestion clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Suggestion calls per client.
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// Stop any phase after this long (what was measured until then is reported).
    #[arg(long, default_value_t = 60)]
    pub max_seconds: u64,
}

const ADMIN: &str = "bench-admin-token";

/// Runs `sextant bench serve`.
pub async fn run(args: BenchServeArgs) -> Result<u8, CliError> {
    if [
        args.collectors,
        args.batch,
        args.pushes,
        args.trials,
        args.list_requests,
        args.clients,
        args.calls,
    ]
    .contains(&0)
    {
        return Err(CliError::input("every count must be at least 1"));
    }
    let dir = tempfile::tempdir().map_err(|e| CliError::failed(format!("temp dir: {e}")))?;
    let store = Store::open(&dir.path().join("store"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| CliError::failed(format!("cannot listen on loopback: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| CliError::failed(e.to_string()))?;
    let base = format!("http://{address}");
    let supervisor = Supervisor::new(
        store.clone(),
        dir.path().to_path_buf(),
        base.clone(),
        GpuPool::default(),
    );
    let state = AppState::new(
        store.clone(),
        supervisor,
        AccessConfig {
            admin_token: ADMIN.into(),
            auth_reads: false,
        },
    );
    state.set_ready();
    let router = api::router(state, api::DEFAULT_REQUEST_TIMEOUT);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    let deadline = Duration::from_secs(args.max_seconds.max(1));

    eprintln!(
        "seeding: {} collectors' trials, an experiment with {} trials",
        args.collectors, args.trials
    );
    let tokens = seed_ingest(&store, args.collectors)?;
    seed_listing(&store, args.trials)?;
    store.flush()?;

    let mut table = Table::new(["MEASUREMENT", "LOAD", "RESULT", "p50", "p99", "TARGET"]);
    // Each measurement runs on its own, the store-free one first: the ingest phase leaves sled
    // with background writing to do, which would otherwise land in the next measurement.
    eprintln!(
        "suggestion: {} clients × {} calls",
        args.clients, args.calls
    );
    let suggestion = suggest(address, &args, deadline).await?;
    table.row([
        "random suggestion".to_string(),
        format!("{} clients, 100-trial history", args.clients),
        format!(
            "{} calls, {:.0} calls/s",
            suggestion.latencies.len(),
            suggestion.latencies.len() as f64 / suggestion.elapsed.as_secs_f64()
        ),
        ms(percentile(&suggestion.latencies, 0.50)),
        ms(percentile(&suggestion.latencies, 0.99)),
        "p99 < 10 ms".to_string(),
    ]);

    for (label, query) in [
        (
            "trials list, sorted by objective",
            "?sort=objective&limit=100",
        ),
        ("trials list, Succeeded only", "?state=Succeeded&limit=100"),
    ] {
        eprintln!("{label}: {} requests", args.list_requests);
        let path = format!("/v1/experiments/listed/trials{query}");
        let latencies = list(address, &path, args.list_requests, deadline).await?;
        table.row([
            label.to_string(),
            format!("{} trials, page of 100, 1 client", args.trials),
            format!("{} requests", latencies.len()),
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            "p99 < 50 ms".to_string(),
        ]);
    }

    eprintln!(
        "ingest: {} collectors × {} pushes × {} points",
        args.collectors, args.pushes, args.batch
    );
    let ingest = ingest(address, &tokens, &args, deadline).await?;
    let stored = count_points(&store, args.collectors)?;
    table.row([
        "ingest (durable acks)".to_string(),
        format!("{} collectors, {} points/push", args.collectors, args.batch),
        format!(
            "{:.0} points/s ({} points in {:.2} s; {} stored)",
            ingest.points as f64 / ingest.elapsed.as_secs_f64(),
            ingest.points,
            ingest.elapsed.as_secs_f64(),
            stored
        ),
        ms(percentile(&ingest.latencies, 0.50)),
        ms(percentile(&ingest.latencies, 0.99)),
        "≥ 100000 points/s".to_string(),
    ]);
    let _ = stop.send(());
    let _ = server.await;
    write_stdout(&table.render())?;
    Ok(0)
}

struct Measured {
    points: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// A keep-alive HTTP/1.1 connection: the load generator's client. It runs as tasks on the same
/// runtime as the server, so the measurement is not inflated by dozens of client threads
/// competing with the server for two cores.
struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    async fn open(address: SocketAddr) -> Result<Connection, CliError> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| CliError::failed(format!("connect {address}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream: BufReader::new(stream),
        })
    }

    /// Sends one request and reads the whole reply; an error status is an error.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<u8>, CliError> {
        let failed = |e: std::io::Error| CliError::failed(format!("{method} {path}: {e}"));
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
        .into_bytes();
        if let Some(token) = token {
            request.extend_from_slice(format!("Authorization: Bearer {token}\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        self.stream
            .get_mut()
            .write_all(&request)
            .await
            .map_err(failed)?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await.map_err(failed)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                CliError::failed(format!("{method} {path}: bad status line {line:?}"))
            })?;
        let mut length = None;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.map_err(failed)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let length = length.ok_or_else(|| {
            CliError::failed(format!("{method} {path}: a reply without Content-Length"))
        })?;
        let mut reply = vec![0; length];
        self.stream.read_exact(&mut reply).await.map_err(failed)?;
        if !(200..300).contains(&status) {
            return Err(CliError::failed(format!(
                "{method} {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&reply)
            )));
        }
        Ok(reply)
    }
}

/// One experiment in phase Running, no driver, one Running trial per collector with a token.
fn seed_ingest(store: &Store, collectors: usize) -> Result<Vec<(String, String)>, CliError> {
    store.put_experiment(&experiment("ingest", ExperimentPhase::Running))?;
    let mut tokens = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for i in 0..collectors {
        let trial = trial("ingest", i as u64, TrialState::Running, &mut rng);
        let token = crate::auth::new_token();
        store.put_trial(&trial)?;
        store.put_trial_token(&trial.name, &token)?;
        tokens.push((trial.name, token));
    }
    Ok(tokens)
}

fn seed_listing(store: &Store, trials: usize) -> Result<(), CliError> {
    store.put_experiment(&experiment("listed", ExperimentPhase::Succeeded))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    for i in 0..trials {
        let state = match i % 10 {
            0 => TrialState::Failed,
            1 => TrialState::EarlyStopped,
            _ => TrialState::Succeeded,
        };
        store.put_trial(&trial("listed", i as u64, state, &mut rng))?;
    }
    Ok(())
}

fn experiment(name: &str, phase: ExperimentPhase) -> ExperimentRecord {
    let text = SPEC.replace("NAME", name);
    let checked = spec::check(&text).expect("the bench's experiment is valid");
    ExperimentRecord {
        name: name.into(),
        experiment: checked.experiment,
        source_file: None,
        work_dir: ".".into(),
        seed: 1,
        phase,
        reason: String::new(),
        message: String::new(),
        created: Timestamp::now(),
        started: None,
        completed: None,
        trials_created: 0,
    }
}

/// A trial shaped like a real one: five parameters, two metrics, a few events.
fn trial(experiment: &str, index: u64, state: TrialState, rng: &mut impl Rng) -> TrialRecord {
    let now = Timestamp::now();
    let accuracy: f64 = rng.random_range(0.5..0.99);
    let scored = matches!(state, TrialState::Succeeded | TrialState::EarlyStopped);
    let event = |state: TrialState, reason: &str| TrialEvent {
        time: now,
        state,
        reason: reason.into(),
        message: format!("Trial is {}", state.as_str()),
    };
    TrialRecord {
        name: crate::controller::driver::trial_name(experiment, index),
        experiment: experiment.into(),
        index,
        uid: 1_000_000 + index,
        assignments: vec![
            assignment("lr", format!("{}", rng.random_range(0.001..0.3))),
            assignment("hidden-units", rng.random_range(16..128).to_string()),
            assignment("batch-size", "64".into()),
            assignment("optimizer", "adam".into()),
            assignment("epochs", rng.random_range(1..20).to_string()),
        ],
        state,
        reason: format!("Trial{}", state.as_str()),
        message: format!("Trial is {}", state.as_str()),
        events: vec![
            event(TrialState::Pending, "TrialCreated"),
            event(TrialState::Running, "TrialRunning"),
            event(state, "TrialSucceeded"),
        ],
        created: now,
        started: Some(now),
        finished: scored.then_some(now),
        log_path: format!("/data/logs/{experiment}/trial-{index}.log").into(),
        pid: None,
        exit_code: Some(0),
        gpus: vec![],
        metrics: vec![
            summary("accuracy", accuracy),
            summary("loss", 1.0 - accuracy),
        ],
        objective: scored.then_some(accuracy),
    }
}

fn assignment(name: &str, value: String) -> ParameterAssignment {
    ParameterAssignment {
        name: name.into(),
        value,
    }
}

fn summary(name: &str, value: f64) -> MetricSummary {
    MetricSummary {
        name: name.into(),
        min: value * 0.8,
        max: value,
        latest: value,
        count: 20,
    }
}

async fn ingest(
    address: SocketAddr,
    tokens: &[(String, String)],
    args: &BenchServeArgs,
    deadline: Duration,
) -> Result<Measured, CliError> {
    let started = Instant::now();
    let (pushes, batch) = (args.pushes, args.batch);
    let collectors: Vec<_> = tokens
        .iter()
        .cloned()
        .map(|(trial, token)| {
            tokio::spawn(async move {
                let path = format!("/v1/experiments/ingest/trials/{trial}/metrics");
                let mut connection = Connection::open(address).await?;
                let mut latencies = Vec::with_capacity(pushes);
                for push in 0..pushes {
                    if started.elapsed() > deadline {
                        break;
                    }
                    let body = push_body(push * batch, batch);
                    let sent = Instant::now();
                    connection
                        .call("POST", &path, Some(&token), body.as_bytes())
                        .await?;
                    latencies.push(sent.elapsed());
                }
                Ok::<_, CliError>(latencies)
            })
        })
        .collect();
    let latencies = gather(collectors).await?;
    Ok(Measured {
        points: latencies.len() * batch,
        elapsed: started.elapsed(),
        latencies,
    })
}

/// Every task's latencies, or the first error.
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<Result<Vec<Duration>, CliError>>>,
) -> Result<Vec<Duration>, CliError> {
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(
            task.await
                .map_err(|e| CliError::failed(format!("a client task failed: {e}")))??,
        );
    }
    Ok(latencies)
}

fn push_body(first_step: usize, batch: usize) -> String {
    let points: Vec<String> = (first_step..first_step + batch)
        .map(|step| {
            let metric = if step % 2 == 0 { "loss" } else { "accuracy" };
            format!(
                r#"{{"metricName":"{metric}","value":{},"step":{step}}}"#,
                1.0 / (step as f64 + 1.0)
            )
        })
        .collect();
    format!(r#"{{"observations":[{}]}}"#, points.join(","))
}

fn count_points(store: &Store, collectors: usize) -> Result<usize, CliError> {
    let mut total = 0;
    for trial in store.trials("ingest")?.iter().take(collectors) {
        total += store.observations(trial.uid, None)?.len();
    }
    Ok(total)
}

async fn list(
    address: SocketAddr,
    path: &str,
    requests: usize,
    deadline: Duration,
) -> Result<Vec<Duration>, CliError> {
    let mut connection = Connection::open(address).await?;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(requests);
    for _ in 0..requests {
        if started.elapsed() > deadline {
            break;
        }
        let sent = Instant::now();
        connection.call("GET", path, None, b"").await?;
        latencies.push(sent.elapsed());
    }
    Ok(latencies)
}

async fn suggest(
    address: SocketAddr,
    args: &BenchServeArgs,
    deadline: Duration,
) -> Result<Measured, CliError> {
    let body = Arc::new(suggestion_body());
    let started = Instant::now();
    let calls = args.calls;
    let clients: Vec<_> = (0..args.clients)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move {
                let mut connection = Connection::open(address).await?;
                let mut latencies = Vec::with_capacity(calls);
                for _ in 0..calls {
                    if started.elapsed() > deadline {
                        break;
                    }
                    let sent = Instant::now();
                    connection
                        .call("POST", "/v1/suggestions", None, body.as_bytes())
                        .await?;
                    latencies.push(sent.elapsed());
                }
                Ok::<_, CliError>(latencies)
            })
        })
        .collect();
    let latencies = gather(clients).await?;
    Ok(Measured {
        points: 0,
        elapsed: started.elapsed(),
        latencies,
    })
}

/// A random-search request with a 100-trial history, as a controller would send mid-experiment.
fn suggestion_body() -> String {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let trials: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            serde_json::json!({
                "name": format!("bench-{i:04}"),
                "parameterAssignments": [
                    {"name": "lr", "value": format!("{}", rng.random_range(0.001..0.3))},
                    {"name": "units", "value": rng.random_range(16..128).to_string()},
                    {"name": "optimizer", "value": "adam"},
                ],
                "condition": "Succeeded",
                "observation": {"metrics": [{"name": "accuracy", "value": format!("{}", rng.random_range(0.5..0.99))}]},
            })
        })
        .collect();
    serde_json::json!({
        "experiment": {"name": "bench", "spec": {
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.001", "max": "0.3", "distribution": "logUniform"}},
                {"name": "units", "parameterType": "int", "feasibleSpace": {"min": "16", "max": "128"}},
                {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
            ],
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "random"},
        }},
        "trials": trials,
        "currentRequestNumber": 1,
    })
    .to_string()
}

fn percentile(latencies: &[Duration], q: f64) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

const SPEC: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: NAME
spec:
  objective:
    type: maximize
    objectiveMetricName: accuracy
    additionalMetricNames: [loss]
  algorithm:
    algorithmName: random
  maxTrialCount: 100000
  parallelTrialCount: 64
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.001", max: "0.3"}
  trialTemplate:
    primaryContainerName: training
    trialParameters:
      - name: lr
        reference: lr
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training
                image: python:3.12
                command: [python3, train.py, "--lr=${trialParameters.lr}"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&d, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&d, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn the_bench_experiment_is_valid_and_pushes_parse() {
        assert!(spec::check(&SPEC.replace("NAME", "x")).is_ok());
        let body: serde_json::Value = serde_json::from_str(&push_body(10, 3)).unwrap();
        assert_eq!(body["observations"].as_array().unwrap().len(), 3);
        let request: serde_json::Value = serde_json::from_str(&suggestion_body()).unwrap();
        assert_eq!(request["trials"].as_array().unwrap().len(), 100);
    }
}
