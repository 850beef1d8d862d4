//! `/v1/experiments/{name}/trials/{trial}/metrics`: read a trial's series (per metric, a step
//! range, downsampled when long) and push points (the trial's own token; acknowledged once durable).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sextant_collector::Observation;

use super::access::{require_read, require_trial};
use super::downsample::lttb;
use super::trials::find_trial;
use super::{ApiError, AppState};

/// Most points one push may carry.
pub const MAX_POINTS_PER_PUSH: usize = 10_000;
/// Longest metric name accepted.
pub const MAX_METRIC_NAME_CHARS: usize = 256;
/// Largest `maxPoints` of a read.
pub const MAX_READ_POINTS: usize = 100_000;

/// One point of a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Step.
    pub step: i64,
    /// Value.
    pub value: f64,
    /// When it was observed.
    pub timestamp: Timestamp,
}

/// One metric's series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    /// The metric.
    pub metric_name: String,
    /// Points in the step range before downsampling.
    pub total_points: usize,
    /// True when `points` is a downsampled subset.
    pub downsampled: bool,
    /// The points, by step.
    pub points: Vec<SeriesPoint>,
}

/// `GET .../metrics` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesReply {
    /// The trial.
    pub trial: String,
    /// Its series, by metric name.
    pub metrics: Vec<Series>,
}

/// `GET .../metrics?metric=&fromStep=&toStep=&maxPoints=`.
pub async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, trial)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<SeriesReply>, ApiError> {
    require_read(&state, &headers)?;
    let step = |key: &str| -> Result<Option<i64>, ApiError> {
        query
            .get(key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::invalid(key, format!("{v:?}: a whole number (a step)")))
            })
            .transpose()
    };
    if let Some(unknown) = query
        .keys()
        .find(|k| !["metric", "fromStep", "toStep", "maxPoints"].contains(&k.as_str()))
    {
        return Err(ApiError::invalid(
            unknown.clone(),
            "unknown query parameter; accepted: metric, fromStep, toStep, maxPoints",
        ));
    }
    let from = step("fromStep")?.unwrap_or(i64::MIN);
    let to = step("toStep")?.unwrap_or(i64::MAX);
    if from > to {
        return Err(ApiError::invalid(
            "fromStep",
            format!("fromStep {from} is after toStep {to}"),
        ));
    }
    let max_points = query
        .get("maxPoints")
        .map(|v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| (2..=MAX_READ_POINTS).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "maxPoints",
                        format!("{v:?}: a whole number from 2 to {MAX_READ_POINTS}"),
                    )
                })
        })
        .transpose()?;
    let record = find_trial(&state, &name, &trial)?;
    let points = state
        .store()
        .observations(record.uid, query.get("metric").map(String::as_str))?;
    let mut metrics: Vec<Series> = Vec::new();
    for point in points.into_iter().filter(|p| (from..=to).contains(&p.step)) {
        if metrics
            .last()
            .is_none_or(|s| s.metric_name != point.metric_name)
        {
            metrics.push(Series {
                metric_name: point.metric_name.clone(),
                total_points: 0,
                downsampled: false,
                points: Vec::new(),
            });
        }
        let series = metrics.last_mut().expect("pushed above");
        series.total_points += 1;
        series.points.push(SeriesPoint {
            step: point.step,
            value: point.value,
            timestamp: point.timestamp,
        });
    }
    if let Some(max) = max_points {
        for series in metrics.iter_mut().filter(|s| s.points.len() > max) {
            let xy: Vec<(f64, f64)> = series
                .points
                .iter()
                .map(|p| (p.step as f64, p.value))
                .collect();
            let keep = lttb(&xy, max);
            series.points = keep.into_iter().map(|i| series.points[i].clone()).collect();
            series.downsampled = true;
        }
    }
    Ok(Json(SeriesReply {
        trial: record.name,
        metrics,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushBody {
    observations: Vec<PushPoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PushPoint {
    metric_name: String,
    value: NumberOrText,
    step: i64,
    #[serde(default)]
    timestamp: Option<String>,
}

/// Katib sends metric values as strings; JSON numbers are accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(f64),
    Text(String),
}

/// `POST .../metrics` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushReply {
    /// Points stored and on disk.
    pub accepted: usize,
}

/// Parses and checks a push body; every problem names its field.
fn parse_push(body: &[u8], now: Timestamp) -> Result<Vec<Observation>, ApiError> {
    // Path tracking costs more than the parse: only a body that fails is parsed again with it.
    let parsed: PushBody = match serde_json::from_slice(body) {
        Ok(parsed) => parsed,
        Err(_) => parse_push_tracked(body)?,
    };
    check_points(parsed, now)
}

fn parse_push_tracked(body: &[u8]) -> Result<PushBody, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." || inner.is_syntax() || inner.is_eof() {
            "body".to_string()
        } else {
            path
        };
        ApiError::invalid(
            field,
            format!(
                "not a valid push body ({inner}); expected {{\"observations\": [{{\"metricName\": \"loss\", \"value\": 0.31, \"step\": 3}}]}}"
            ),
        )
    })
}

fn check_points(parsed: PushBody, now: Timestamp) -> Result<Vec<Observation>, ApiError> {
    if parsed.observations.len() > MAX_POINTS_PER_PUSH {
        return Err(ApiError::invalid(
            "observations",
            format!(
                "{} points in one push; at most {MAX_POINTS_PER_PUSH}: send several batches",
                parsed.observations.len()
            ),
        ));
    }
    parsed
        .observations
        .into_iter()
        .enumerate()
        .map(|(i, point)| {
            let field = |name: &str| format!("observations[{i}].{name}");
            let name = point.metric_name.trim();
            if name.is_empty() || name.chars().count() > MAX_METRIC_NAME_CHARS {
                return Err(ApiError::invalid(
                    field("metricName"),
                    format!("a metric name of 1 to {MAX_METRIC_NAME_CHARS} characters"),
                ));
            }
            let value = match point.value {
                NumberOrText::Number(v) => v,
                NumberOrText::Text(text) => text.trim().parse::<f64>().map_err(|_| {
                    ApiError::invalid(field("value"), format!("{text:?} is not a number"))
                })?,
            };
            if !value.is_finite() {
                return Err(ApiError::invalid(
                    field("value"),
                    format!("{value} is not a finite number; NaN and infinity are refused (a diverged run should report a large finite value, or fail)"),
                ));
            }
            let timestamp = match point.timestamp.as_deref() {
                None | Some("") => now,
                Some(text) => text.parse::<Timestamp>().map_err(|e| {
                    ApiError::invalid(field("timestamp"), format!("{text:?} is not an RFC 3339 time: {e}"))
                })?,
            };
            Ok(Observation {
                metric_name: name.to_string(),
                value,
                step: point.step,
                timestamp,
            })
        })
        .collect()
}

/// `POST .../metrics` with `{"observations": [...]}`: stored, made durable, then acknowledged.
pub async fn push(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, trial)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<PushReply>, ApiError> {
    require_trial(&state, &headers, &trial)?;
    let record = find_trial(&state, &name, &trial)?;
    let points = parse_push(&body, Timestamp::now())?;
    let accepted = points.len();
    if accepted > 0 {
        state.store().put_observations(record.uid, &points)?;
        state.commit().durable().await.map_err(|e| {
            ApiError::internal(format!("the points could not be made durable: {e}"))
        })?;
        state.telemetry().ingested(accepted);
        state.supervisor().pushed(&record, points)?;
    }
    Ok(Json(PushReply { accepted }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn a_push_body_is_parsed_with_strings_numbers_and_timestamps() {
        let body = br#"{"observations": [
            {"metricName": "loss", "value": 0.31, "step": 3},
            {"metricName": "accuracy", "value": "0.9", "step": 3, "timestamp": "2026-11-22T10:00:00Z"}]}"#;
        let points = parse_push(body, now()).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].timestamp, now());
        assert_eq!(points[1].value, 0.9);
        assert_eq!(points[1].timestamp.to_string(), "2026-11-22T10:00:00Z");
    }

    #[test]
    fn bad_points_name_their_field() {
        let cases: [(&[u8], &str); 7] = [
            (br#"{"observations": [{"metricName": "loss", "value": "NaN", "step": 1}]}"#, "observations[0].value"),
            (br#"{"observations": [{"metricName": "loss", "value": "inf", "step": 1}]}"#, "observations[0].value"),
            (br#"{"observations": [{"metricName": "", "value": 1, "step": 1}]}"#, "observations[0].metricName"),
            (br#"{"observations": [{"metricName": "a", "value": 1, "step": 1}, {"metricName": "a", "value": 1}]}"#, "observations[1]"),
            (br#"{"observations": [{"metricName": "a", "value": 1, "step": 1, "timestamp": "yesterday"}]}"#, "observations[0].timestamp"),
            (br#"{"observations": [{"metricName": "a", "value": 1, "step": 1.5}]}"#, "observations[0].step"),
            (br#"{"points": []}"#, "points"),
        ];
        for (body, field) in cases {
            let error = parse_push(body, now()).unwrap_err();
            assert_eq!(error.status, 400);
            assert!(
                error.field.as_deref().is_some_and(|f| f.starts_with(field)),
                "{} -> {:?} ({})",
                String::from_utf8_lossy(body),
                error.field,
                error.message
            );
        }
        let error = parse_push(b"{not json", now()).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("body"));
    }

    #[test]
    fn too_many_points_are_refused() {
        let points: Vec<String> = (0..=MAX_POINTS_PER_PUSH)
            .map(|i| format!(r#"{{"metricName": "l", "value": 1, "step": {i}}}"#))
            .collect();
        let body = format!(r#"{{"observations": [{}]}}"#, points.join(","));
        let error = parse_push(body.as_bytes(), now()).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("observations"));
    }
}
