//! What the Kubernetes controller writes onto the custom resources: the Katib-shaped `status` of an
//! Experiment and of its Trials, computed from Sextant's store, and the Trial resource it creates
//! for each trial.
//!
//! Sextant's store stays the source of truth on Kubernetes as it is locally (the same
//! [`ExperimentRecord`] and [`TrialRecord`], the same driver and policy); these pure functions only
//! translate it into what Katib's tools read (`kubectl get experiment`, the Katib SDK and UI).
//!
//! Conditions follow Katib's `setCondition` (`pkg/apis/controller/{experiments,trials}/v1beta1/util.go`):
//! a condition type appears at most once; setting a new type appends it; setting an existing one
//! with another status, reason or message moves it to the end with a new `lastUpdateTime`, and its
//! `lastTransitionTime` changes only when its status does. The last condition is what
//! `kubectl get` shows as Type/Status. Setting a condition to what it already is changes nothing,
//! so the status is computed from the *target* state (not replayed from history), and computing it
//! again from the same store gives the same status: `lastReconcileTime` too moves only when
//! something else changed, so a reconcile that has nothing new writes nothing (and a status write
//! never triggers another reconcile that writes again).
//!
//! Times are whole seconds: that is all a Kubernetes `Time` keeps, so a status read back from the
//! apiserver compares equal to the one computed from the store.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::Resource;
use serde_json::Value;

use super::driver::trial_reason;
use super::policy::{self, Completion};
use super::supervisor::STOPPED_REASON;
use crate::runtime::kubernetes::render::KATIB_LABEL_EXPERIMENT;
use crate::spec::crd::{
    Condition, ExperimentStatus, Metric, Observation, OptimalTrial, TrialResource,
    TrialResourceSpec, TrialStatus,
};
use crate::spec::{CheckedExperiment, ExperimentResource};
use crate::store::{ExperimentPhase, ExperimentRecord, MetricSummary, TrialRecord, TrialState};
use crate::view::direction_of;

/// Katib's condition types (`ExperimentConditionType`, `TrialConditionType`).
pub mod condition {
    /// The experiment or trial was accepted.
    pub const CREATED: &str = "Created";
    /// Trials are running / the trial's workload runs.
    pub const RUNNING: &str = "Running";
    /// A completed experiment was given more budget and runs again.
    pub const RESTARTING: &str = "Restarting";
    /// Ended normally.
    pub const SUCCEEDED: &str = "Succeeded";
    /// Ended in failure (and, for Sextant, an experiment stopped on request).
    pub const FAILED: &str = "Failed";
    /// A trial stopped from outside.
    pub const KILLED: &str = "Killed";
    /// A trial whose workload succeeded without reporting the objective metric.
    pub const METRICS_UNAVAILABLE: &str = "MetricsUnavailable";
    /// A trial stopped by an early-stopping rule.
    pub const EARLY_STOPPED: &str = "EarlyStopped";

    /// Condition status `True`.
    pub const TRUE: &str = "True";
    /// Condition status `False`.
    pub const FALSE: &str = "False";
}

/// Katib's reason for a restarted experiment (`ExperimentRestartingReason`).
pub const RESTARTING_REASON: &str = "ExperimentRestarting";

/// Katib's messages for the conditions whose text the store does not keep.
mod message {
    pub const EXPERIMENT_CREATED: &str = "Experiment is created";
    pub const EXPERIMENT_RUNNING: &str = "Experiment is running";
    pub const EXPERIMENT_RESTARTED: &str = "Experiment is restarted";
    pub const EXPERIMENT_SUCCEEDED: &str = "Experiment has succeeded";
    pub const EXPERIMENT_STOPPED: &str = "Experiment was stopped on request";
    pub const TRIAL_CREATED: &str = "Trial is created";
    pub const TRIAL_RUNNING: &str = "Trial is running";
}

/// Terminal experiment condition types: at most one of them is in the list.
const EXPERIMENT_ENDS: [&str; 2] = [condition::SUCCEEDED, condition::FAILED];

/// Terminal trial condition types: at most one of them is in the list.
const TRIAL_ENDS: [&str; 5] = [
    condition::SUCCEEDED,
    condition::FAILED,
    condition::KILLED,
    condition::METRICS_UNAVAILABLE,
    condition::EARLY_STOPPED,
];

/// An object that cannot own another: it has no `metadata.uid` (or name), so it was not read back
/// from the apiserver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{kind} {name:?} has no metadata.uid: an owner reference needs the object as the apiserver returned it"
)]
pub struct NoUid {
    /// `Experiment` or `Trial`.
    pub kind: &'static str,
    /// Its name, if it has one.
    pub name: String,
}

/// The Experiment's `status` from the store: conditions, times, trial counters and lists, and the
/// best trial. `previous` is the status on the resource now (`None` before the first write);
/// `now` stamps what changes without a time of its own in the store.
pub fn experiment_status(
    record: &ExperimentRecord,
    trials: &[TrialRecord],
    previous: Option<&ExperimentStatus>,
    now: Timestamp,
) -> ExperimentStatus {
    let mut status = ExperimentStatus {
        start_time: previous
            .and_then(|p| p.start_time.clone())
            .or_else(|| Some(time(record.created))),
        completion_time: record.phase.is_finished().then(|| {
            record
                .completed
                .map(time)
                .or_else(|| previous.and_then(|p| p.completion_time.clone()))
                .unwrap_or_else(|| time(now))
        }),
        last_reconcile_time: None,
        conditions: experiment_conditions(
            record,
            previous.map_or(&[], |p| p.conditions.as_slice()),
            now,
        ),
        current_optimal_trial: policy::best_trial(direction_of(record), trials).map(|best| {
            OptimalTrial {
                best_trial_name: best.name.clone(),
                parameter_assignments: best.assignments.clone(),
                observation: observation(&best.metrics),
            }
        }),
        ..ExperimentStatus::default()
    };
    for trial in trials {
        let list = match trial.state {
            TrialState::Pending => &mut status.pending_trial_list,
            TrialState::Running => &mut status.running_trial_list,
            TrialState::Succeeded => &mut status.succeeded_trial_list,
            TrialState::Failed => &mut status.failed_trial_list,
            TrialState::MetricsUnavailable => &mut status.metrics_unavailable_trial_list,
            TrialState::EarlyStopped => &mut status.early_stopped_trial_list,
            TrialState::Killed => &mut status.killed_trial_list,
        };
        list.push(trial.name.clone());
    }
    status.trials = count(trials);
    status.trials_pending = count(&status.pending_trial_list);
    status.trials_running = count(&status.running_trial_list);
    status.trials_succeeded = count(&status.succeeded_trial_list);
    status.trials_failed = count(&status.failed_trial_list);
    status.trials_killed = count(&status.killed_trial_list);
    status.trials_early_stopped = count(&status.early_stopped_trial_list);
    status.trial_metrics_unavailable = count(&status.metrics_unavailable_trial_list);
    status.last_reconcile_time = previous.and_then(|p| p.last_reconcile_time.clone());
    if previous != Some(&status) {
        status.last_reconcile_time = Some(time(now));
    }
    status
}

/// The experiment's conditions: `previous` brought to the record's phase.
///
/// - Created: `Created`.
/// - Running: `Created`, `Running`; when the previous status had ended (Succeeded or Failed), that
///   end is removed and `Restarting` is added first, as Katib does when a completed experiment gets
///   more trials.
/// - Succeeded, Failed: `Running` turns False (keeping its reason and message) and the end is added
///   with the record's Katib reason and message.
/// - Stopped (Sextant's own phase): ends as `Failed` with reason `ExperimentStopped`, so that every
///   Katib client sees a completed experiment that did not reach its goal
///   (docs/katib-compatibility.md).
fn experiment_conditions(
    record: &ExperimentRecord,
    previous: &[Condition],
    now: Timestamp,
) -> Vec<Condition> {
    let mut conditions = previous.to_vec();
    set_condition(
        &mut conditions,
        condition::CREATED,
        condition::TRUE,
        policy::reason::CREATED,
        message::EXPERIMENT_CREATED,
        record.created,
    );
    let (end, reason, text) = match record.phase {
        ExperimentPhase::Created => return conditions,
        ExperimentPhase::Running => {
            let started = record.started.unwrap_or(now);
            if EXPERIMENT_ENDS.iter().any(|end| is_true(&conditions, end)) {
                conditions.retain(|c| !EXPERIMENT_ENDS.contains(&c.condition_type.as_str()));
                set_condition(
                    &mut conditions,
                    condition::RESTARTING,
                    condition::TRUE,
                    RESTARTING_REASON,
                    message::EXPERIMENT_RESTARTED,
                    started,
                );
            }
            set_condition(
                &mut conditions,
                condition::RUNNING,
                condition::TRUE,
                or(&record.reason, policy::reason::RUNNING),
                or(&record.message, message::EXPERIMENT_RUNNING),
                started,
            );
            return conditions;
        }
        ExperimentPhase::Succeeded => (
            condition::SUCCEEDED,
            or(&record.reason, "ExperimentSucceeded"),
            or(&record.message, message::EXPERIMENT_SUCCEEDED),
        ),
        ExperimentPhase::Failed => (
            condition::FAILED,
            or(&record.reason, policy::reason::FAILED),
            or(&record.message, Completion::TooManyFailures.message()),
        ),
        ExperimentPhase::Stopped => (
            condition::FAILED,
            or(&record.reason, STOPPED_REASON),
            or(&record.message, message::EXPERIMENT_STOPPED),
        ),
    };
    let completed = record.completed.unwrap_or(now);
    let ran = record
        .started
        .is_some()
        .then_some((policy::reason::RUNNING, message::EXPERIMENT_RUNNING));
    end_condition(&mut conditions, condition::RUNNING, ran, completed);
    // A restart is over once the experiment has ended again.
    end_condition(&mut conditions, condition::RESTARTING, None, completed);
    conditions.retain(|c| {
        c.condition_type == end || !EXPERIMENT_ENDS.contains(&c.condition_type.as_str())
    });
    set_condition(
        &mut conditions,
        end,
        condition::TRUE,
        reason,
        text,
        completed,
    );
    conditions
}

/// The Trial's `status` from its record: conditions from its state (with the times of its
/// recorded state changes), start and completion times, and its metrics.
pub fn trial_status(
    trial: &TrialRecord,
    previous: Option<&TrialStatus>,
    now: Timestamp,
) -> TrialStatus {
    let mut status = TrialStatus {
        start_time: previous
            .and_then(|p| p.start_time.clone())
            .or_else(|| Some(time(trial.created))),
        completion_time: (!trial.state.is_active()).then(|| {
            trial
                .finished
                .map(time)
                .or_else(|| previous.and_then(|p| p.completion_time.clone()))
                .unwrap_or_else(|| time(now))
        }),
        last_reconcile_time: previous.and_then(|p| p.last_reconcile_time.clone()),
        conditions: trial_conditions(
            trial,
            previous.map_or(&[], |p| p.conditions.as_slice()),
            now,
        ),
        observation: (!trial.metrics.is_empty()).then(|| observation(&trial.metrics)),
    };
    if previous != Some(&status) {
        status.last_reconcile_time = Some(time(now));
    }
    status
}

/// The trial's conditions: `previous` brought to its state. `Created`; `Running` while it runs; at
/// the end `Running` turns False (when it ran at all) and the end's type is added with the
/// record's reason and message (Katib's `MarkTrialStatus*`). A trial that was Pending and ended
/// without running (it could not start, or was killed first) has no `Running` condition.
fn trial_conditions(trial: &TrialRecord, previous: &[Condition], now: Timestamp) -> Vec<Condition> {
    let last_event = |state: TrialState| trial.events.iter().rev().find(|e| e.state == state);
    let mut conditions = previous.to_vec();
    let created = last_event(TrialState::Pending);
    set_condition(
        &mut conditions,
        condition::CREATED,
        condition::TRUE,
        or(created.map_or("", |e| &e.reason), trial_reason::CREATED),
        or(created.map_or("", |e| &e.message), message::TRIAL_CREATED),
        created.map_or(trial.created, |e| e.time),
    );
    let running = last_event(TrialState::Running);
    match trial.state {
        TrialState::Pending => {}
        TrialState::Running => set_condition(
            &mut conditions,
            condition::RUNNING,
            condition::TRUE,
            or(&trial.reason, trial_reason::RUNNING),
            or(&trial.message, message::TRIAL_RUNNING),
            running.map(|e| e.time).or(trial.started).unwrap_or(now),
        ),
        end => {
            let ended = last_event(end)
                .map(|e| e.time)
                .or(trial.finished)
                .unwrap_or(now);
            let ran = match running {
                Some(e) => Some((
                    or(&e.reason, trial_reason::RUNNING),
                    or(&e.message, message::TRIAL_RUNNING),
                )),
                None => trial
                    .started
                    .map(|_| (trial_reason::RUNNING, message::TRIAL_RUNNING)),
            };
            end_condition(&mut conditions, condition::RUNNING, ran, ended);
            let end_type = end.as_str();
            conditions.retain(|c| {
                c.condition_type == end_type || !TRIAL_ENDS.contains(&c.condition_type.as_str())
            });
            set_condition(
                &mut conditions,
                end_type,
                condition::TRUE,
                &trial.reason,
                &trial.message,
                ended,
            );
        }
    }
    conditions
}

/// Turns a True condition False at `at`, keeping its reason and message (Katib's `Mark*` at the
/// end of a run). A missing one is added False with the `missing` reason and message, when given:
/// a run that ended between two reconciles still shows that it ran.
fn end_condition(
    conditions: &mut Vec<Condition>,
    kind: &str,
    missing: Option<(&str, &str)>,
    at: Timestamp,
) {
    let (reason, text) = match conditions.iter().find(|c| c.condition_type == kind) {
        Some(c) if c.status == condition::TRUE => (c.reason.clone(), c.message.clone()),
        Some(_) => return,
        None => match missing {
            Some((reason, text)) => (reason.to_string(), text.to_string()),
            None => return,
        },
    };
    set_condition(conditions, kind, condition::FALSE, &reason, &text, at);
}

/// Katib's `setCondition`, with the time of the change: a new type is appended; an existing one
/// that differs (status, reason or message) is moved to the end with `lastUpdateTime` = `at`, and
/// keeps its `lastTransitionTime` unless its status changed; one that does not differ is left
/// alone. (Katib ignores a change of message alone; Sextant's messages say more, so they count.)
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    at: Timestamp,
) {
    let at = time(at);
    let mut transition = at.clone();
    if let Some(i) = conditions.iter().position(|c| c.condition_type == kind) {
        let current = &conditions[i];
        if current.status == status && current.reason == reason && current.message == message {
            return;
        }
        if current.status == status
            && let Some(since) = &current.last_transition_time
        {
            transition = since.clone();
        }
        conditions.remove(i);
    }
    conditions.push(Condition {
        condition_type: kind.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_update_time: Some(at),
        last_transition_time: Some(transition),
    });
}

fn is_true(conditions: &[Condition], kind: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.condition_type == kind && c.status == condition::TRUE)
}

/// A trial's metric summaries as Katib's `observation`: min, max and latest of each metric, as
/// strings.
pub fn observation(metrics: &[MetricSummary]) -> Observation {
    Observation {
        metrics: metrics
            .iter()
            .map(|m| Metric {
                name: m.name.clone(),
                min: metric_value(m.min),
                max: metric_value(m.max),
                latest: metric_value(m.latest),
            })
            .collect(),
    }
}

/// A metric value as Katib keeps it, a string Go's `strconv.ParseFloat` reads back exactly:
/// the shortest decimal that round-trips, in exponent form where plain digits would be long.
fn metric_value(value: f64) -> String {
    // Plain digits between 1e-5 and 1e16 stay short (at most ~22 characters).
    const PLAIN_RANGE: std::ops::Range<f64> = 1e-5..1e16;
    if value != 0.0 && !PLAIN_RANGE.contains(&value.abs()) {
        format!("{value:e}")
    } else {
        value.to_string()
    }
}

/// The Trial resource the controller creates for `trial` of the experiment `owner` (the resource
/// as read from the apiserver, for its name, namespace, labels and uid); `checked` is the same
/// experiment defaulted and validated, `workload` the trial's rendered workload (the `runSpec`,
/// kept verbatim).
///
/// As Katib's `createTrialInstance`: the experiment's labels plus `katib.kubeflow.org/experiment`,
/// the Experiment as controlling owner (so deleting it deletes its trials), the defaulted
/// objective, the assignments, the metrics collector, the primary pod labels and container, the
/// success and failure conditions (Katib's defaults for the kind where the template sets none) and
/// `retain`. `earlyStoppingRules` stay empty: Sextant's rules run in the controller, not in the
/// sidecar.
pub fn trial_resource(
    owner: &ExperimentResource,
    checked: &CheckedExperiment,
    trial: &TrialRecord,
    workload: &Value,
) -> Result<TrialResource, NoUid> {
    let experiment = owner.metadata.name.clone().unwrap_or_default();
    let mut labels = owner.metadata.labels.clone().unwrap_or_default();
    labels.insert(KATIB_LABEL_EXPERIMENT.to_string(), experiment.clone());
    let owner_reference = controller_reference(owner, "Experiment", &experiment)?;
    let template = &checked.template;
    Ok(TrialResource {
        metadata: ObjectMeta {
            name: Some(trial.name.clone()),
            namespace: owner.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference]),
            // Set at creation, so no Trial exists without it (see `kube_trials`).
            finalizers: Some(vec![super::kube_trials::TRIAL_FINALIZER.to_string()]),
            ..ObjectMeta::default()
        },
        spec: TrialResourceSpec {
            objective: checked.experiment.spec.objective.clone(),
            parameter_assignments: trial.assignments.clone(),
            early_stopping_rules: Vec::new(),
            run_spec: Some(workload.clone()),
            metrics_collector: checked.experiment.spec.metrics_collector_spec.clone(),
            primary_pod_labels: template.primary_pod_labels.clone(),
            primary_container_name: template.primary_container_name.clone(),
            success_condition: template.success_condition.clone(),
            failure_condition: template.failure_condition.clone(),
            retain_run: template.retain,
            labels: None,
        },
        status: None,
    })
}

/// The owner reference a trial's workload (and its token Secret) carries: the Trial, as the
/// apiserver returned it after creation (it needs the uid), controlling and blocking deletion.
pub fn workload_owner_reference(trial: &TrialResource) -> Result<OwnerReference, NoUid> {
    let name = trial.metadata.name.clone().unwrap_or_default();
    controller_reference(trial, "Trial", &name)
}

/// `ownerReferences` entry with `controller` and `blockOwnerDeletion` (controller-runtime's
/// `SetControllerReference`, which Katib uses).
fn controller_reference<K: Resource<DynamicType = ()>>(
    owner: &K,
    kind: &'static str,
    name: &str,
) -> Result<OwnerReference, NoUid> {
    let mut reference = owner.controller_owner_ref(&()).ok_or_else(|| NoUid {
        kind,
        name: name.to_string(),
    })?;
    reference.block_owner_deletion = Some(true);
    Ok(reference)
}

/// `text`, or `default` when it is empty.
fn or<'a>(text: &'a str, default: &'a str) -> &'a str {
    if text.is_empty() { default } else { text }
}

/// A timestamp as a Kubernetes `Time`, in whole seconds (all the apiserver keeps).
fn time(at: Timestamp) -> Time {
    Time(Timestamp::from_second(at.as_second()).expect("a timestamp's own seconds are in range"))
}

fn count<T>(items: &[T]) -> i32 {
    i32::try_from(items.len()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests;
