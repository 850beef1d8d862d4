//! Reducing a trial's observation series to Katib's per-metric summary and its objective value.

use std::collections::BTreeMap;

use sextant_collector::Observation;

use crate::spec::{MetricStrategyKind, Objective};
use crate::store::{MetricSummary, Store, StoreError, TrialRecord, TrialState};

/// Recomputes a finished trial's summaries (and its objective, when its state is scored) from the
/// points in the store, after points arrived late, and writes the record. Its state stays; the
/// caller flushes.
pub fn refresh_finished_trial(
    store: &Store,
    objective: &Objective,
    trial: &mut TrialRecord,
) -> Result<(), StoreError> {
    let points = store.observations(trial.uid, None)?;
    trial.metrics = summarize(&points);
    if matches!(
        trial.state,
        TrialState::Succeeded | TrialState::EarlyStopped
    ) {
        trial.objective = objective_value(objective, &trial.metrics).or(trial.objective);
    }
    store.put_trial(trial)
}

/// Summarises points (in any order) per metric: min, max, and latest by step (ties: last given).
pub fn summarize(points: &[Observation]) -> Vec<MetricSummary> {
    let mut by_metric: BTreeMap<&str, (MetricSummary, i64)> = BTreeMap::new();
    for point in points {
        let entry = by_metric.entry(&point.metric_name).or_insert_with(|| {
            (
                MetricSummary {
                    name: point.metric_name.clone(),
                    min: point.value,
                    max: point.value,
                    latest: point.value,
                    count: 0,
                },
                point.step,
            )
        });
        let (summary, latest_step) = entry;
        summary.min = summary.min.min(point.value);
        summary.max = summary.max.max(point.value);
        if point.step >= *latest_step {
            summary.latest = point.value;
            *latest_step = point.step;
        }
        summary.count += 1;
    }
    by_metric
        .into_values()
        .map(|(summary, _)| summary)
        .collect()
}

/// Merges new points into existing summaries (used while a trial runs, so nothing is rescanned).
pub fn merge(summaries: &mut Vec<MetricSummary>, points: &[Observation]) {
    for point in points {
        match summaries.iter_mut().find(|s| s.name == point.metric_name) {
            Some(summary) => {
                summary.min = summary.min.min(point.value);
                summary.max = summary.max.max(point.value);
                summary.latest = point.value;
                summary.count += 1;
            }
            None => summaries.push(MetricSummary {
                name: point.metric_name.clone(),
                min: point.value,
                max: point.value,
                latest: point.value,
                count: 1,
            }),
        }
    }
}

/// The objective value of a trial by the objective metric's strategy, if it was reported.
pub fn objective_value(objective: &Objective, summaries: &[MetricSummary]) -> Option<f64> {
    let summary = summaries.iter().find(|s| s.name == objective.metric)?;
    let strategy = objective
        .strategies
        .get(&objective.metric)
        .copied()
        .unwrap_or(match objective.direction {
            crate::spec::Direction::Minimize => MetricStrategyKind::Min,
            crate::spec::Direction::Maximize => MetricStrategyKind::Max,
        });
    Some(match strategy {
        MetricStrategyKind::Min => summary.min,
        MetricStrategyKind::Max => summary.max,
        MetricStrategyKind::Latest => summary.latest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Direction;

    fn obs(metric: &str, step: i64, value: f64) -> Observation {
        Observation {
            metric_name: metric.into(),
            value,
            step,
            timestamp: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn objective(strategy: MetricStrategyKind) -> Objective {
        Objective {
            direction: Direction::Maximize,
            goal: None,
            metric: "accuracy".into(),
            additional_metrics: vec![],
            strategies: [("accuracy".to_string(), strategy)].into(),
        }
    }

    #[test]
    fn latest_follows_the_step_not_the_arrival_order() {
        let points = [
            obs("accuracy", 2, 0.8),
            obs("accuracy", 1, 0.9),
            obs("accuracy", 3, 0.7),
        ];
        let summary = &summarize(&points)[0];
        assert_eq!(
            (summary.min, summary.max, summary.latest, summary.count),
            (0.7, 0.9, 0.7, 3)
        );
    }

    #[test]
    fn objective_uses_the_metric_strategy() {
        let summaries = summarize(&[obs("accuracy", 1, 0.9), obs("accuracy", 2, 0.8)]);
        assert_eq!(
            objective_value(&objective(MetricStrategyKind::Max), &summaries),
            Some(0.9)
        );
        assert_eq!(
            objective_value(&objective(MetricStrategyKind::Min), &summaries),
            Some(0.8)
        );
        assert_eq!(
            objective_value(&objective(MetricStrategyKind::Latest), &summaries),
            Some(0.8)
        );
        assert_eq!(
            objective_value(&objective(MetricStrategyKind::Max), &[]),
            None
        );
    }

    #[test]
    fn merge_matches_summarize_for_in_order_points() {
        let points = [
            obs("loss", 1, 0.5),
            obs("accuracy", 1, 0.8),
            obs("loss", 2, 0.3),
        ];
        let mut merged = Vec::new();
        merge(&mut merged, &points[..1]);
        merge(&mut merged, &points[1..]);
        merged.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(merged, summarize(&points));
    }
}
