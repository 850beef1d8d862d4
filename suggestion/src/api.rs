//! The suggestion HTTP API: stateless, in Katib's GetSuggestions shape with the CRD field names.
//!
//! A request carries everything an engine needs: the experiment's search space, objective and
//! algorithm, its trials with their conditions and observations, how many assignments are wanted,
//! and the engine state the previous reply returned. The reply carries the assignments and the new
//! state. Nothing is kept between requests, so any number of replicas can serve it and a restart
//! loses nothing. The controller calls the same engines in-process.
//!
//! - `POST /v1/suggestions` → `{"assignments": [{"parameterAssignments": [...]}], "state", "exhausted"}`
//! - `POST /v1/suggestions/validate` → `{"valid": true}`
//!
//! Errors are `{"error": {"code", "message", "field"}}` (plus `details` when there are several).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use sextant_algorithms::{CompletedTrial, Point, SearchSpace, SuggestRequest};

use crate::checks::{CheckedAlgorithm, Problems, check_algorithm, search_space};
use crate::field_error::FieldError;
use crate::katib::{AlgorithmSpec, ObjectiveSpec, ParameterAssignment, ParameterSpec};
use crate::registry::seed_from_name;

/// Largest request body. A request carries every trial of an experiment: 10,000 trials with a
/// dozen parameters is a few MiB of JSON.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Engines whose answer takes well under a millisecond even with thousands of trials: answered on
/// the async worker itself. The others (model fitting) run on the blocking pool.
const INLINE_ALGORITHMS: &[&str] = &["random", "grid", "sobol", "hyperband"];

/// Most assignments one request may ask for.
pub const MAX_REQUEST_NUMBER: usize = 1_000;

/// The router: `/v1/suggestions` and `/v1/suggestions/validate`.
pub fn router() -> Router {
    Router::new()
        .route("/v1/suggestions", post(suggest))
        .route("/v1/suggestions/validate", post(validate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// `POST /v1/suggestions` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuggestionRequest {
    /// The experiment: name and the parts of its spec an engine reads.
    pub experiment: ExperimentInput,
    /// Its trials so far.
    #[serde(default)]
    pub trials: Vec<TrialInput>,
    /// How many new assignments are wanted.
    #[serde(default)]
    pub current_request_number: usize,
    /// What the previous reply returned as `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}

/// `experiment` of a request.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentInput {
    /// The experiment's name (seeds the engine when `random_state` is not set).
    #[serde(default)]
    pub name: String,
    /// The spec; fields other than these three are ignored, so a whole Experiment spec can be sent.
    pub spec: SpecInput,
}

/// The parts of an Experiment spec an engine reads.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecInput {
    /// The search space.
    #[serde(default)]
    pub parameters: Vec<ParameterSpec>,
    /// The objective (type and metric name are needed to read trial results).
    #[serde(default)]
    pub objective: Option<ObjectiveSpec>,
    /// The algorithm and its settings.
    #[serde(default)]
    pub algorithm: Option<AlgorithmSpec>,
}

/// One trial of a request.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialInput {
    /// Trial name.
    #[serde(default)]
    pub name: String,
    /// Its assignment.
    #[serde(default)]
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// Katib condition: Created, Pending, Running, Succeeded, Failed, Killed, EarlyStopped,
    /// MetricsUnavailable.
    #[serde(default)]
    pub condition: String,
    /// Its observed metrics.
    #[serde(default)]
    pub observation: Option<ObservationInput>,
}

/// `observation` of a trial.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ObservationInput {
    /// Metric values.
    #[serde(default)]
    pub metrics: Vec<MetricInput>,
}

/// One metric value (a string as in Katib, or a number).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MetricInput {
    /// Metric name.
    pub name: String,
    /// Its value.
    #[serde(deserialize_with = "crate::katib::string_or_number")]
    pub value: String,
}

/// `POST /v1/suggestions` reply.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionReply {
    /// New assignments.
    pub assignments: Vec<AssignmentSet>,
    /// State to send with the next request.
    pub state: serde_json::Value,
    /// True when the engine has nothing left to suggest.
    pub exhausted: bool,
}

/// One suggested trial.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentSet {
    /// Its parameter values, strings as in Katib.
    pub parameter_assignments: Vec<ParameterAssignment>,
}

/// Katib trial conditions and what an engine makes of them.
const ACTIVE_CONDITIONS: &[&str] = &["Created", "Pending", "Running"];
const SCORED_CONDITIONS: &[&str] = &["Succeeded", "EarlyStopped"];
const UNSCORED_CONDITIONS: &[&str] = &["Failed", "MetricsUnavailable"];
/// Killed trials are left out: their point may be suggested again (see docs/katib-compatibility.md).
const IGNORED_CONDITIONS: &[&str] = &["Killed"];

/// An API error: status, code, message and the field at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    problems: Vec<FieldError>,
    message: String,
}

impl ApiError {
    fn invalid(problems: Vec<FieldError>) -> Self {
        let message = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_argument",
            problems,
            message,
        }
    }

    fn internal(message: String) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            problems: vec![],
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let field = self.problems.first().map(|p| p.path.clone());
        let mut error = serde_json::json!({
            "code": self.code,
            "message": self.message,
            "field": field,
        });
        if self.problems.len() > 1 {
            error["details"] = self
                .problems
                .iter()
                .map(|p| serde_json::json!({"field": p.path, "value": p.value, "message": p.message}))
                .collect();
        }
        (self.status, Json(serde_json::json!({ "error": error }))).into_response()
    }
}

/// Parses a JSON body, naming the field at fault.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Tracking the path costs several times the parse itself: parse plainly, and only a body that
    // fails is parsed again to name the field at fault.
    if let Ok(parsed) = serde_json::from_slice(body) {
        return Ok(parsed);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let path = if path == "." || inner.is_syntax() || inner.is_eof() {
            "body".to_string()
        } else {
            path
        };
        ApiError::invalid(vec![FieldError::new(
            path,
            "",
            format!("not a valid request body: {inner}"),
        )])
    })
}

async fn suggest(body: Bytes) -> Result<Json<SuggestionReply>, ApiError> {
    let request: SuggestionRequest = parse_body(&body)?;
    let algorithm = request
        .experiment
        .spec
        .algorithm
        .as_ref()
        .map(|a| a.algorithm_name.as_str())
        .unwrap_or_default();
    if INLINE_ALGORITHMS.contains(&algorithm) {
        // Sub-millisecond work: a hand-off to the blocking pool would cost more than it saves.
        return answer(&request).map(Json);
    }
    // Fitting a model is CPU work: keep it off the async workers.
    tokio::task::spawn_blocking(move || answer(&request))
        .await
        .map_err(|e| ApiError::internal(format!("the suggestion task failed: {e}")))?
        .map(Json)
}

async fn validate(body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    let request: SuggestionRequest = parse_body(&body)?;
    let checked = check(&request)?;
    convert_trials(&request, &checked)?;
    Ok(Json(serde_json::json!({ "valid": true })))
}

/// A request that passed the checks.
struct Checked {
    space: SearchSpace,
    algorithm: CheckedAlgorithm,
    minimize: bool,
    metric: String,
}

fn check(request: &SuggestionRequest) -> Result<Checked, ApiError> {
    let mut problems = Problems::default();
    let spec = &request.experiment.spec;
    let algorithm = check_algorithm(
        spec.algorithm.as_ref(),
        "experiment.spec.algorithm",
        &mut problems,
    );
    let space = search_space(
        &spec.parameters,
        "experiment.spec.parameters",
        algorithm
            .as_ref()
            .map(|a| (a.name.as_str(), a.settings.as_slice())),
        &mut problems,
    );
    if spec.parameters.is_empty() {
        problems.add(
            "experiment.spec.parameters",
            "",
            "required: at least one parameter to search",
        );
    }
    let (minimize, metric) = match &spec.objective {
        None => {
            problems.add(
                "experiment.spec.objective",
                "",
                "required: type (minimize or maximize) and objectiveMetricName",
            );
            (true, String::new())
        }
        Some(objective) => {
            let minimize = match objective.objective_type.as_str() {
                "minimize" => true,
                "maximize" => false,
                other => {
                    problems.add(
                        "experiment.spec.objective.type",
                        other,
                        "accepted: minimize, maximize",
                    );
                    true
                }
            };
            if objective.objective_metric_name.is_empty() {
                problems.add(
                    "experiment.spec.objective.objectiveMetricName",
                    "",
                    "required: the metric optimised",
                );
            }
            (minimize, objective.objective_metric_name.clone())
        }
    };
    if request.current_request_number > MAX_REQUEST_NUMBER {
        problems.add(
            "currentRequestNumber",
            request.current_request_number.to_string(),
            format!("at most {MAX_REQUEST_NUMBER} assignments per request"),
        );
    }
    if let (Some(space), Some(algorithm)) = (&space, &algorithm)
        && let Err(error) = algorithm.engine.engine.check_space(space)
    {
        problems.add(
            "experiment.spec.algorithm.algorithmName",
            &algorithm.name,
            format!(
                "algorithm {:?} cannot search these parameters: {error}",
                algorithm.name
            ),
        );
    }
    match (space, algorithm) {
        (Some(space), Some(algorithm)) if problems.0.is_empty() => Ok(Checked {
            space,
            algorithm,
            minimize,
            metric,
        }),
        _ => Err(ApiError::invalid(problems.0)),
    }
}

/// Trials as an engine sees them: finished ones with their loss, and running ones.
fn convert_trials(
    request: &SuggestionRequest,
    checked: &Checked,
) -> Result<(Vec<CompletedTrial>, Vec<Point>), ApiError> {
    let mut problems = Vec::new();
    let mut history = Vec::new();
    let mut pending = Vec::new();
    for (i, trial) in request.trials.iter().enumerate() {
        let base = format!("trials[{i}]");
        let condition = trial.condition.as_str();
        if IGNORED_CONDITIONS.contains(&condition) {
            continue;
        }
        let known = ACTIVE_CONDITIONS.contains(&condition)
            || SCORED_CONDITIONS.contains(&condition)
            || UNSCORED_CONDITIONS.contains(&condition);
        if !known {
            problems.push(FieldError::new(
                format!("{base}.condition"),
                condition,
                "accepted: Created, Pending, Running, Succeeded, Failed, Killed, EarlyStopped, MetricsUnavailable",
            ));
            continue;
        }
        let pairs: Vec<(String, String)> = trial
            .parameter_assignments
            .iter()
            .map(|a| (a.name.clone(), a.value.clone()))
            .collect();
        let point = match checked.space.parse(&pairs) {
            Ok(point) => point,
            Err(error) => {
                problems.push(FieldError::new(
                    format!("{base}.parameterAssignments"),
                    "",
                    error.to_string(),
                ));
                continue;
            }
        };
        if ACTIVE_CONDITIONS.contains(&condition) {
            pending.push(point);
            continue;
        }
        let mut loss = None;
        if SCORED_CONDITIONS.contains(&condition) {
            let metrics = trial
                .observation
                .as_ref()
                .map(|o| o.metrics.as_slice())
                .unwrap_or_default();
            if let Some((k, metric)) = metrics
                .iter()
                .enumerate()
                .find(|(_, m)| m.name == checked.metric)
            {
                match metric.value.trim().parse::<f64>() {
                    Ok(value) if value.is_finite() => {
                        loss = Some(if checked.minimize { value } else { -value })
                    }
                    _ => problems.push(FieldError::new(
                        format!("{base}.observation.metrics[{k}].value"),
                        &metric.value,
                        "expected a finite number",
                    )),
                }
            }
        }
        history.push(CompletedTrial { point, loss });
    }
    if problems.is_empty() {
        Ok((history, pending))
    } else {
        Err(ApiError::invalid(problems))
    }
}

/// Answers a suggestion request (what the HTTP handler runs, callable in-process).
pub fn answer(request: &SuggestionRequest) -> Result<SuggestionReply, ApiError> {
    let checked = check(request)?;
    let (history, pending) = convert_trials(request, &checked)?;
    let seed = checked
        .algorithm
        .engine
        .seed
        .unwrap_or_else(|| seed_from_name(&request.experiment.name));
    let suggest = SuggestRequest {
        space: &checked.space,
        history: &history,
        pending: &pending,
        count: request.current_request_number,
        seed,
        state: request.state.as_ref().filter(|s| !s.is_null()),
    };
    let suggestions = checked
        .algorithm
        .engine
        .engine
        .suggest(&suggest)
        .map_err(|error| {
            let field = match error {
                sextant_algorithms::EngineError::BadState(_) => "state",
                sextant_algorithms::EngineError::UnsupportedSpace(_) => {
                    "experiment.spec.algorithm.algorithmName"
                }
            };
            ApiError::invalid(vec![FieldError::new(field, "", error.to_string())])
        })?;
    let assignments = suggestions
        .points
        .iter()
        .map(|point| AssignmentSet {
            parameter_assignments: checked
                .space
                .render(point)
                .into_iter()
                .map(|(name, value)| ParameterAssignment { name, value })
                .collect(),
        })
        .collect();
    Ok(SuggestionReply {
        assignments,
        state: suggestions.state,
        exhausted: suggestions.exhausted,
    })
}

#[cfg(test)]
mod tests;
