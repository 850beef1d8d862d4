//! Starting or resuming an experiment from a spec: what to do with what the store already holds.
//!
//! Running the same file against the same data directory continues the same experiment. The spec
//! must be the same apart from the budget fields (`maxTrialCount`, `parallelTrialCount`,
//! `maxFailedTrialCount`), which users raise to run longer. A completed experiment restarts only
//! when Katib would restart it: it ended by reaching `maxTrialCount`, the count was raised, and its
//! `resumePolicy` is `LongRunning` or `FromVolume`.

use std::path::PathBuf;

use jiff::Timestamp;

use sextant_suggestion::seed_from_name;

use super::policy::reason;
use crate::spec::CheckedExperiment;
use crate::store::{ExperimentPhase, ExperimentRecord, Store, StoreError};

/// Spec fields that may change between runs of the same experiment.
const BUDGET_FIELDS: &[&str] = &["maxTrialCount", "parallelTrialCount", "maxFailedTrialCount"];

/// What to do with the experiment.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    /// Run it (new, resumed after an interruption, or restarted with a larger budget).
    Run(ExperimentRecord),
    /// It already completed; nothing to run.
    AlreadyCompleted(ExperimentRecord),
}

/// Why the experiment cannot run from this spec.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored experiment of that name was created from a different spec.
    #[error(
        "experiment {name:?} already exists in this data directory with a different spec (spec.{field} differs); \
         rename metadata.name, use another --data-dir, or remove the old one with `sextant delete experiment {name}`"
    )]
    SpecChanged {
        /// The experiment.
        name: String,
        /// The first differing spec field.
        field: String,
    },
    /// A completed experiment whose resumePolicy forbids restarting.
    #[error(
        "experiment {name:?} has completed and its spec.resumePolicy is {policy:?}; only LongRunning or FromVolume experiments \
         that ended by reaching maxTrialCount can be restarted by raising spec.maxTrialCount"
    )]
    NotRestartable {
        /// The experiment.
        name: String,
        /// Its resume policy.
        policy: String,
    },
}

/// Creates the experiment in the store, or decides how to continue the stored one.
pub fn prepare(
    store: &Store,
    checked: &CheckedExperiment,
    source_file: Option<PathBuf>,
    work_dir: PathBuf,
) -> Result<Prepared, PrepareError> {
    let Some(mut record) = store.experiment(&checked.name)? else {
        let record = ExperimentRecord {
            name: checked.name.clone(),
            experiment: checked.experiment.clone(),
            source_file,
            work_dir,
            seed: checked
                .algorithm
                .seed
                .unwrap_or_else(|| seed_from_name(&checked.name)),
            phase: ExperimentPhase::Created,
            reason: reason::CREATED.to_string(),
            message: "Experiment is created".to_string(),
            created: Timestamp::now(),
            started: None,
            completed: None,
            trials_created: 0,
        };
        store.put_experiment(&record)?;
        store.flush()?;
        return Ok(Prepared::Run(record));
    };
    let old_spec = serde_json::to_value(&record.experiment.spec).unwrap_or_default();
    let new_spec = serde_json::to_value(&checked.experiment.spec).unwrap_or_default();
    if let Some(field) = first_difference(&old_spec, &new_spec) {
        return Err(PrepareError::SpecChanged {
            name: checked.name.clone(),
            field,
        });
    }
    let old_max = record.experiment.spec.max_trial_count;
    let new_max = checked.experiment.spec.max_trial_count;
    if record.phase.is_finished() {
        let raised = match (old_max, new_max) {
            (Some(old), Some(new)) => new > old,
            (Some(_), None) => true,
            _ => false,
        };
        if !raised {
            return Ok(Prepared::AlreadyCompleted(record));
        }
        let policy = checked
            .experiment
            .spec
            .resume_policy
            .clone()
            .unwrap_or_else(|| "Never".into());
        let restartable = record.phase == ExperimentPhase::Succeeded
            && record.reason == reason::MAX_TRIALS_REACHED
            && (policy == "LongRunning" || policy == "FromVolume");
        if !restartable {
            return Err(PrepareError::NotRestartable {
                name: checked.name.clone(),
                policy,
            });
        }
    }
    record.experiment = checked.experiment.clone();
    record.work_dir = work_dir;
    if source_file.is_some() {
        record.source_file = source_file;
    }
    store.put_experiment(&record)?;
    Ok(Prepared::Run(record))
}

fn first_difference(old: &serde_json::Value, new: &serde_json::Value) -> Option<String> {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return (old != new).then(|| "spec".to_string());
    };
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !BUDGET_FIELDS.contains(&k.as_str()))
        .find(|k| old.get(*k) != new.get(*k))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_fields_may_change_other_fields_may_not() {
        let old = serde_json::json!({"maxTrialCount": 4, "algorithm": {"algorithmName": "random"}});
        let raised =
            serde_json::json!({"maxTrialCount": 8, "algorithm": {"algorithmName": "random"}});
        let other = serde_json::json!({"maxTrialCount": 4, "algorithm": {"algorithmName": "grid"}});
        assert_eq!(first_difference(&old, &raised), None);
        assert_eq!(
            first_difference(&old, &other),
            Some("algorithm".to_string())
        );
    }
}
