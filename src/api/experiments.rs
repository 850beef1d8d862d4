//! `/v1/experiments`: create (Katib YAML or JSON, checked exactly like `sextant validate`), list,
//! get, stop, delete.

use std::collections::HashMap;
use std::path::PathBuf;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::access::{require_admin, require_read};
use super::{ApiError, AppState, body_text};
use crate::controller::resume::{PrepareError, Prepared, prepare};
use crate::spec;
use crate::store::ExperimentRecord;
use crate::view::ExperimentView;

/// `GET /v1/experiments/{name}`: the stored experiment (spec and state) and its status view
/// (trial counts, best trial).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentDetail {
    /// The experiment as stored: the Katib object with defaults applied, phase, reason, times.
    pub experiment: ExperimentRecord,
    /// Status: counts by state and the best trial so far.
    pub status: ExperimentView,
}

/// `GET /v1/experiments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentList {
    /// Every experiment, by name.
    pub experiments: Vec<ExperimentView>,
}

/// The detail of a stored experiment, or 404 naming the known ones.
pub(crate) fn detail(state: &AppState, name: &str) -> Result<ExperimentDetail, ApiError> {
    let store = state.store();
    let Some(record) = store.experiment(name)? else {
        return Err(not_found(state, name));
    };
    let status = ExperimentView::from_store(store, &record)?;
    Ok(ExperimentDetail {
        experiment: record,
        status,
    })
}

/// 404 for an experiment, listing the ones there are.
pub(crate) fn not_found(state: &AppState, name: &str) -> ApiError {
    let known: Vec<String> = state
        .store()
        .experiments()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.name)
        .collect();
    ApiError::not_found(format!(
        "no experiment {name:?} on this server; known: {}",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    ))
}

/// `GET /v1/experiments`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ExperimentList>, ApiError> {
    require_read(&state, &headers)?;
    let store = state.store();
    let mut experiments = Vec::new();
    for record in store.experiments()? {
        experiments.push(ExperimentView::from_store(store, &record)?);
    }
    Ok(Json(ExperimentList { experiments }))
}

/// `GET /v1/experiments/{name}`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<ExperimentDetail>, ApiError> {
    require_read(&state, &headers)?;
    Ok(Json(detail(&state, &name)?))
}

/// `POST /v1/experiments[?workDir=DIR]`: body is the Experiment (YAML or JSON).
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<(StatusCode, Json<ExperimentDetail>), ApiError> {
    require_admin(&state, &headers)?;
    if let Some(unknown) = query.keys().find(|k| k.as_str() != "workDir") {
        return Err(ApiError::invalid(
            unknown.clone(),
            "unknown query parameter; this endpoint takes workDir only",
        ));
    }
    let work_dir = match query.get("workDir") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if !dir.is_absolute() || !dir.is_dir() {
                return Err(ApiError::invalid(
                    "workDir",
                    format!(
                        "{} is not an absolute path of a directory on the server; trials run there (pass the experiment file's directory)",
                        dir.display()
                    ),
                ));
            }
            dir
        }
        None => std::env::current_dir()
            .map_err(|e| ApiError::internal(format!("the server's directory: {e}")))?,
    };
    let text = body_text(&body)?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid(
            "body",
            "empty body; send the Experiment as YAML or JSON",
        ));
    }
    let checked = spec::check(text).map_err(ApiError::spec)?;
    state.supervisor().admit(&checked)?;
    if state.store().experiment(&checked.name)?.is_some() {
        return Err(ApiError::already_exists(format!(
            "experiment {:?} already exists; pick another metadata.name, or DELETE /v1/experiments/{} first",
            checked.name, checked.name
        )));
    }
    let record = match prepare(state.store(), &checked, None, work_dir) {
        Ok(Prepared::Run(record)) => record,
        Ok(Prepared::AlreadyCompleted(_)) | Err(PrepareError::SpecChanged { .. }) => {
            return Err(ApiError::already_exists(format!(
                "experiment {:?} already exists",
                checked.name
            )));
        }
        Err(PrepareError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::failed_precondition(e.to_string())),
    };
    let name = record.name.clone();
    state.supervisor().start(checked, record)?;
    Ok((StatusCode::CREATED, Json(detail(&state, &name)?)))
}

/// `POST /v1/experiments/{name}/stop`: running trials are stopped; the experiment ends Stopped.
pub async fn stop(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<ExperimentDetail>, ApiError> {
    require_admin(&state, &headers)?;
    let current = detail(&state, &name)?;
    if !state.supervisor().stop(&name).await {
        return Err(ApiError::failed_precondition(format!(
            "experiment {name} is not running (it is {:?}: {})",
            current.experiment.phase, current.experiment.message
        )));
    }
    Ok(Json(detail(&state, &name)?))
}

/// `DELETE /v1/experiments/{name}`: stops it if it runs, then removes it with its trials, metrics,
/// engine state and logs.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&state, &headers)?;
    detail(&state, &name)?;
    state.supervisor().stop(&name).await;
    let store = state.store();
    store.delete_experiment(&name)?;
    state.commit().durable().await.map_err(ApiError::internal)?;
    state.supervisor().remove_logs(&name);
    Ok(Json(serde_json::json!({ "deleted": name })))
}
