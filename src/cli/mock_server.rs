//! Tests only: a stand-in for `sextant serve` on 127.0.0.1:0 that answers the contract's
//! experiment, trial and metric reads and submits from a real [`Store`], so the CLI's HTTP path
//! can be compared with its local path on the same records. It records every request, serves
//! trials [`PAGE_CAP`] at a time so paging is exercised, and can answer 503 for a while.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sextant_collector::Observation;

use super::client::{AdminToken, ServerClient};
use crate::controller::resume::{Prepared, prepare};
use crate::spec;
use crate::store::{
    ExperimentPhase, ExperimentRecord, MetricSummary, Store, TrialRecord, TrialState,
};
use crate::view::ExperimentView;

/// Most trials the mock puts in one page, whatever `limit` asks.
pub const PAGE_CAP: usize = 2;

/// The admin token the mock expects on submits and deletes.
pub const TOKEN: &str = "mock-admin-token";

/// The quickstart experiment, as users have it.
pub const DIGITS_YAML: &str = include_str!("../../examples/digits/random.yaml");

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub authorization: Option<String>,
    pub body: String,
}

struct Shared {
    store: Store,
    requests: Mutex<Vec<SeenRequest>>,
    outage: Mutex<Range<usize>>,
}

/// A running mock server and the store it serves.
pub struct MockServer {
    pub url: String,
    pub store: Store,
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
}

impl MockServer {
    /// Starts a mock with an empty store.
    pub async fn start() -> MockServer {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let shared = Arc::new(Shared {
            store: store.clone(),
            requests: Mutex::new(Vec::new()),
            outage: Mutex::new(0..0),
        });
        let router = Router::new()
            .route("/v1/experiments", get(list).post(submit))
            .route("/v1/experiments/{name}", get(detail).delete(delete))
            .route("/v1/experiments/{name}/trials", get(trials))
            .route("/v1/experiments/{name}/trials/{trial}", get(trial))
            .route(
                "/v1/experiments/{name}/trials/{trial}/metrics",
                get(metrics),
            )
            .layer(middleware::from_fn_with_state(shared.clone(), record))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        MockServer {
            url,
            store,
            shared,
            _dir: dir,
        }
    }

    /// A client for this server with the right admin token.
    pub fn client(&self) -> ServerClient {
        ServerClient::new(&self.url, AdminToken::FromEnv(TOKEN.into())).unwrap()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Requests with these 0-based ordinals are answered 503 `unavailable`.
    pub fn set_outage(&self, ordinals: Range<usize>) {
        *self.shared.outage.lock().unwrap() = ordinals;
    }
}

/// Stores the quickstart experiment (Running) with five trials in different states and a few
/// observations for the first two; returns the experiment.
pub fn seed_digits(store: &Store, dir: &Path) -> ExperimentRecord {
    let checked = spec::check(DIGITS_YAML).unwrap();
    let Prepared::Run(mut record) = prepare(
        store,
        &checked,
        Some(dir.join("random.yaml")),
        PathBuf::from(dir),
    )
    .unwrap() else {
        panic!("a fresh store has no completed experiment")
    };
    record.phase = ExperimentPhase::Running;
    record.started = Some(record.created);
    let states = [
        (TrialState::Succeeded, Some(0.9123)),
        (TrialState::Succeeded, Some(0.95)),
        (TrialState::Failed, None),
        (TrialState::Running, None),
        (TrialState::EarlyStopped, Some(0.4)),
    ];
    for (index, (state, objective)) in states.into_iter().enumerate() {
        let trial = make_trial(&record, index as u64, state, objective);
        if index < 2 {
            let points: Vec<Observation> = (1..=3)
                .flat_map(|step| {
                    [("accuracy", 0.3 * step as f64), ("loss", 1.0 / step as f64)].map(
                        |(metric, value)| Observation {
                            metric_name: metric.into(),
                            value,
                            step,
                            timestamp: jiff::Timestamp::from_second(1_800_000_000 + step).unwrap(),
                        },
                    )
                })
                .collect();
            store.put_observations(trial.uid, &points).unwrap();
        }
        store.put_trial(&trial).unwrap();
    }
    record.trials_created = states.len() as u64;
    store.put_experiment(&record).unwrap();
    record
}

/// A trial of `record` in `state`, as the driver would have stored it.
pub fn make_trial(
    record: &ExperimentRecord,
    index: u64,
    state: TrialState,
    objective: Option<f64>,
) -> TrialRecord {
    let created = jiff::Timestamp::from_second(1_800_000_000 + index as i64).unwrap();
    let mut trial = TrialRecord {
        name: format!("{}-{:04}", record.name, index + 1),
        experiment: record.name.clone(),
        index,
        uid: 1000 + index,
        assignments: vec![
            crate::spec::ParameterAssignment {
                name: "lr".into(),
                value: format!("0.0{}", index + 1),
            },
            crate::spec::ParameterAssignment {
                name: "optimizer".into(),
                value: "adam".into(),
            },
        ],
        state: TrialState::Pending,
        reason: String::new(),
        message: String::new(),
        events: Vec::new(),
        created,
        started: None,
        finished: None,
        log_path: PathBuf::from(format!("/logs/{}.log", record.name)),
        pid: None,
        exit_code: None,
        gpus: Vec::new(),
        metrics: Vec::new(),
        objective,
    };
    if state != TrialState::Pending {
        trial.started = Some(created);
        trial.transition(TrialState::Running, "TrialRunning", "running", created);
    }
    if !state.is_active() {
        trial.transition(state, &format!("Trial{state}"), "done", created);
        trial.exit_code = Some(i32::from(state != TrialState::Succeeded));
        trial.finished = Some(created);
        if let Some(value) = objective {
            trial.metrics.push(MetricSummary {
                name: "accuracy".into(),
                min: value / 2.0,
                max: value,
                latest: value,
                count: 3,
            });
        }
    }
    trial
}

fn api_error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message, "field": field}})),
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no {what}"),
        None,
    )
}

async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let ordinal = {
        let mut requests = shared.requests.lock().unwrap();
        requests.push(SeenRequest {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            authorization: parts
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string()),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
        requests.len() - 1
    };
    if shared.outage.lock().unwrap().contains(&ordinal) {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "restarting",
            None,
        );
    }
    next.run(Request::from_parts(parts, bytes.into())).await
}

fn view(store: &Store, record: &ExperimentRecord) -> ExperimentView {
    ExperimentView::new(record, &store.trials(&record.name).unwrap())
}

fn detail_json(store: &Store, record: &ExperimentRecord) -> Value {
    json!({"experiment": record, "status": view(store, record)})
}

async fn list(State(shared): State<Arc<Shared>>) -> Response {
    let store = &shared.store;
    let views: Vec<ExperimentView> = store
        .experiments()
        .unwrap()
        .iter()
        .map(|r| view(store, r))
        .collect();
    Json(json!({ "experiments": views })).into_response()
}

async fn detail(State(shared): State<Arc<Shared>>, UrlPath(name): UrlPath<String>) -> Response {
    match shared.store.experiment(&name).unwrap() {
        Some(record) => Json(detail_json(&shared.store, &record)).into_response(),
        None => not_found("experiment"),
    }
}

async fn submit(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Response {
    let presented = headers.get("authorization").and_then(|v| v.to_str().ok());
    if presented != Some(format!("Bearer {TOKEN}").as_str()) {
        return api_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "admin token required",
            None,
        );
    }
    let checked = match spec::check(&body) {
        Ok(checked) => checked,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                &e.to_string(),
                None,
            );
        }
    };
    if shared.store.experiment(&checked.name).unwrap().is_some() {
        return api_error(
            StatusCode::CONFLICT,
            "already_exists",
            &format!("experiment {:?} already exists", checked.name),
            Some("metadata.name"),
        );
    }
    let work_dir = PathBuf::from(query.get("workDir").cloned().unwrap_or_default());
    let Ok(Prepared::Run(record)) = prepare(&shared.store, &checked, None, work_dir) else {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "prepare",
            None,
        );
    };
    (
        StatusCode::CREATED,
        Json(detail_json(&shared.store, &record)),
    )
        .into_response()
}

async fn delete(State(shared): State<Arc<Shared>>, UrlPath(name): UrlPath<String>) -> Response {
    match shared.store.delete_experiment(&name).unwrap() {
        true => Json(json!({ "deleted": name })).into_response(),
        false => not_found("experiment"),
    }
}

async fn trials(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if shared.store.experiment(&name).unwrap().is_none() {
        return not_found("experiment");
    }
    let number = |key: &str, default: usize| {
        query
            .get(key)
            .map_or(default, |v| v.parse::<usize>().unwrap())
    };
    let (offset, limit) = (number("offset", 0), number("limit", 100).min(PAGE_CAP));
    let matching: Vec<TrialRecord> = shared
        .store
        .trials(&name)
        .unwrap()
        .into_iter()
        .filter(|t| query.get("state").is_none_or(|s| t.state.as_str() == s))
        .collect();
    let page: Vec<&TrialRecord> = matching.iter().skip(offset).take(limit).collect();
    let next = (offset + page.len() < matching.len()).then_some(offset + page.len());
    Json(json!({"trials": page, "total": matching.len(), "nextOffset": next})).into_response()
}

async fn trial(
    State(shared): State<Arc<Shared>>,
    UrlPath((name, trial)): UrlPath<(String, String)>,
) -> Response {
    match shared.store.trial(&trial).unwrap() {
        Some(record) if record.experiment == name => Json(record).into_response(),
        _ => not_found("trial"),
    }
}

async fn metrics(
    State(shared): State<Arc<Shared>>,
    UrlPath((name, trial)): UrlPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(record) = shared
        .store
        .trial(&trial)
        .unwrap()
        .filter(|t| t.experiment == name)
    else {
        return not_found("trial");
    };
    let points = shared
        .store
        .observations(record.uid, query.get("metric").map(String::as_str))
        .unwrap();
    // Consecutive points of one metric form one series, in the store's order.
    let mut series: Vec<(String, Vec<Value>)> = Vec::new();
    for p in points {
        let point = json!({"step": p.step, "value": p.value, "timestamp": p.timestamp});
        match series.last_mut() {
            Some((metric, list)) if *metric == p.metric_name => list.push(point),
            _ => series.push((p.metric_name, vec![point])),
        }
    }
    let metrics: Vec<Value> = series
        .into_iter()
        .map(|(metric, points)| {
            json!({"metricName": metric, "totalPoints": points.len(), "downsampled": false, "points": points})
        })
        .collect();
    Json(json!({"trial": trial, "metrics": metrics})).into_response()
}
