//! `/v1/experiments/{name}/trials`: list (paginated, filtered by state, sorted by objective), get,
//! stop. Listing works on the store's trial summaries, so only the page asked for is decoded.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::access::{require_admin, require_read};
use super::experiments::not_found;
use super::{ApiError, AppState};
use crate::spec::Direction;
use crate::store::{TrialRecord, TrialState, TrialSummary};
use crate::view::direction_of;

/// Trials per page unless `limit` says otherwise.
pub const DEFAULT_PAGE: usize = 100;
/// Largest page.
pub const MAX_PAGE: usize = 10_000;

/// A page of trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialPage {
    /// The trials on this page.
    pub trials: Vec<TrialRecord>,
    /// How many trials match the filter, on all pages.
    pub total: usize,
    /// The `offset` of the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<usize>,
}

/// Order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    /// Creation order.
    Index,
    /// Best objective first; trials without one last, in creation order.
    Objective,
}

#[derive(Debug)]
struct ListQuery {
    state: Option<TrialState>,
    sort: Sort,
    limit: usize,
    offset: usize,
}

fn parse_query(query: &HashMap<String, String>) -> Result<ListQuery, ApiError> {
    let mut parsed = ListQuery {
        state: None,
        sort: Sort::Index,
        limit: DEFAULT_PAGE,
        offset: 0,
    };
    for (key, value) in query {
        match key.as_str() {
            "state" => {
                parsed.state = Some(
                    TrialState::ALL
                        .into_iter()
                        .find(|s| s.as_str().eq_ignore_ascii_case(value))
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "state",
                                format!(
                                    "{value:?} is not a trial state; accepted: {}",
                                    TrialState::ALL.map(|s| s.as_str()).join(", ")
                                ),
                            )
                        })?,
                );
            }
            "sort" => {
                parsed.sort = match value.as_str() {
                    "index" => Sort::Index,
                    "objective" => Sort::Objective,
                    other => {
                        return Err(ApiError::invalid(
                            "sort",
                            format!(
                                "{other:?}: accepted: index (creation order), objective (best first)"
                            ),
                        ));
                    }
                }
            }
            "limit" => {
                parsed.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "limit",
                            format!("{value:?}: a whole number from 1 to {MAX_PAGE}"),
                        )
                    })?;
            }
            "offset" => {
                parsed.offset = value.parse::<usize>().map_err(|_| {
                    ApiError::invalid("offset", format!("{value:?}: a whole number from 0"))
                })?;
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    "unknown query parameter; accepted: state, sort, limit, offset",
                ));
            }
        }
    }
    Ok(parsed)
}

/// The summaries matching a listing, in its order.
fn select(
    mut summaries: Vec<TrialSummary>,
    query: &ListQuery,
    direction: Direction,
) -> Vec<TrialSummary> {
    if let Some(state) = query.state {
        summaries.retain(|s| s.state == state);
    }
    if query.sort == Sort::Objective {
        // Stable: ties and trials without an objective keep creation order.
        summaries.sort_by(|a, b| match (a.objective, b.objective) {
            (Some(x), Some(y)) => match direction {
                Direction::Minimize => x.total_cmp(&y),
                Direction::Maximize => y.total_cmp(&x),
            },
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    summaries
}

/// `GET /v1/experiments/{name}/trials`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<TrialPage>, ApiError> {
    require_read(&state, &headers)?;
    let query = parse_query(&query)?;
    let store = state.store();
    let Some(record) = store.experiment(&name)? else {
        return Err(not_found(&state, &name));
    };
    let selected = select(store.trial_summaries(&name)?, &query, direction_of(&record));
    let total = selected.len();
    let page: Vec<&str> = selected
        .iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|s| s.name.as_str())
        .collect();
    let end = query.offset.saturating_add(page.len());
    let trials = store.trials_named(&name, &page)?;
    Ok(Json(TrialPage {
        trials,
        total,
        next_offset: (end < total).then_some(end),
    }))
}

/// A trial of an experiment, or 404 saying which is missing.
pub(crate) fn find_trial(
    state: &AppState,
    experiment: &str,
    trial: &str,
) -> Result<TrialRecord, ApiError> {
    let store = state.store();
    if !store.has_experiment(experiment)? {
        return Err(not_found(state, experiment));
    }
    store
        .trials_named(experiment, &[trial])?
        .pop()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "experiment {experiment} has no trial {trial:?}; list them with GET /v1/experiments/{experiment}/trials"
            ))
        })
}

/// `GET /v1/experiments/{name}/trials/{trial}`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, trial)): Path<(String, String)>,
) -> Result<Json<TrialRecord>, ApiError> {
    require_read(&state, &headers)?;
    Ok(Json(find_trial(&state, &name, &trial)?))
}

/// `POST /v1/experiments/{name}/trials/{trial}/stop`: the trial is stopped and ends Killed.
pub async fn stop(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, trial)): Path<(String, String)>,
) -> Result<Json<TrialRecord>, ApiError> {
    require_admin(&state, &headers)?;
    let record = find_trial(&state, &name, &trial)?;
    if !record.state.is_active() {
        return Err(ApiError::failed_precondition(format!(
            "trial {trial} has already ended ({}); only a Pending or Running trial can be stopped",
            record.state
        )));
    }
    Ok(Json(state.supervisor().stop_trial(&name, &trial).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(index: u64, state: TrialState, objective: Option<f64>) -> TrialSummary {
        TrialSummary {
            name: format!("t-{index}"),
            index,
            state,
            objective,
        }
    }

    #[test]
    fn objective_sort_puts_the_best_first_and_missing_last_for_both_directions() {
        let all = vec![
            summary(0, TrialState::Succeeded, Some(0.5)),
            summary(1, TrialState::Failed, None),
            summary(2, TrialState::Succeeded, Some(0.9)),
            summary(3, TrialState::Succeeded, Some(0.1)),
        ];
        let query = ListQuery {
            state: None,
            sort: Sort::Objective,
            limit: 10,
            offset: 0,
        };
        let names = |v: Vec<TrialSummary>| v.into_iter().map(|s| s.index).collect::<Vec<_>>();
        assert_eq!(
            names(select(all.clone(), &query, Direction::Maximize)),
            [2, 0, 3, 1]
        );
        assert_eq!(
            names(select(all.clone(), &query, Direction::Minimize)),
            [3, 0, 2, 1]
        );
        let failed = ListQuery {
            state: Some(TrialState::Failed),
            sort: Sort::Index,
            ..query
        };
        assert_eq!(names(select(all, &failed, Direction::Maximize)), [1]);
    }
}
