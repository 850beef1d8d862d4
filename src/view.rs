//! What people and scripts see of an experiment: status, trial counts, the best trial. The CLI
//! prints it, the HTTP API serves it, and the CLI reads it back from a server, so one shape serves
//! all three.

use serde::{Deserialize, Serialize};

use crate::controller::policy::{self, TrialCounts};
use crate::spec::{Direction, ParameterAssignment};
use crate::store::{ExperimentRecord, Store, StoreError, TrialRecord};

/// An experiment as scripts see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentView {
    /// Name.
    pub name: String,
    /// Created / Running / Succeeded / Failed.
    pub status: String,
    /// Katib reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// Algorithm.
    pub algorithm: String,
    /// Objective metric.
    pub objective_metric_name: String,
    /// minimize / maximize.
    pub objective_type: String,
    /// Trials by state.
    pub trials: CountsView,
    /// Best trial so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_optimal_trial: Option<BestView>,
    /// Created.
    pub created: jiff::Timestamp,
    /// Completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<jiff::Timestamp>,
}

/// Trial counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountsView {
    /// All trials.
    pub total: usize,
    /// By state.
    #[serde(flatten)]
    pub by_state: TrialCounts,
}

/// The best trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BestView {
    /// Trial name.
    pub best_trial_name: String,
    /// Objective value.
    pub objective: f64,
    /// Its parameters.
    pub parameter_assignments: Vec<ParameterAssignment>,
}

impl ExperimentView {
    /// The view of a stored experiment and its trials.
    pub fn new(record: &ExperimentRecord, trials: &[TrialRecord]) -> ExperimentView {
        let objective = record.experiment.spec.objective.clone().unwrap_or_default();
        let direction = if objective.objective_type == "minimize" {
            Direction::Minimize
        } else {
            Direction::Maximize
        };
        ExperimentView {
            name: record.name.clone(),
            status: format!("{:?}", record.phase),
            reason: record.reason.clone(),
            message: record.message.clone(),
            algorithm: record
                .experiment
                .spec
                .algorithm
                .as_ref()
                .map(|a| a.algorithm_name.clone())
                .unwrap_or_default(),
            objective_metric_name: objective.objective_metric_name,
            objective_type: objective.objective_type,
            trials: CountsView {
                total: trials.len(),
                by_state: TrialCounts::of(trials),
            },
            current_optimal_trial: policy::best_trial(direction, trials).map(|b| BestView {
                best_trial_name: b.name.clone(),
                objective: b.objective.unwrap_or_default(),
                parameter_assignments: b.assignments.clone(),
            }),
            created: record.created,
            completed: record.completed,
        }
    }

    /// The view read from the store's trial summaries: only the best trial's full record is
    /// decoded, so it stays cheap for experiments with thousands of trials.
    pub fn from_store(
        store: &Store,
        record: &ExperimentRecord,
    ) -> Result<ExperimentView, StoreError> {
        let summaries = store.trial_summaries(&record.name)?;
        let direction = direction_of(record);
        let mut counts = TrialCounts::default();
        let mut best: Option<(&str, f64)> = None;
        for summary in &summaries {
            counts.add(summary.state);
            let Some(value) = summary.objective else {
                continue;
            };
            let better = best.is_none_or(|(_, current)| match direction {
                Direction::Minimize => value < current,
                Direction::Maximize => value > current,
            });
            if better {
                best = Some((&summary.name, value));
            }
        }
        let best_record = match best {
            Some((name, _)) => store.trials_named(&record.name, &[name])?.pop(),
            None => None,
        };
        let mut view = ExperimentView::new(record, &[]);
        view.trials = CountsView {
            total: summaries.len(),
            by_state: counts,
        };
        view.current_optimal_trial = best_record.map(|b| BestView {
            best_trial_name: b.name.clone(),
            objective: b.objective.unwrap_or_default(),
            parameter_assignments: b.assignments.clone(),
        });
        Ok(view)
    }
}

/// The direction of a stored experiment's objective.
pub fn direction_of(record: &ExperimentRecord) -> Direction {
    match record.experiment.spec.objective.as_ref() {
        Some(o) if o.objective_type == "minimize" => Direction::Minimize,
        _ => Direction::Maximize,
    }
}
