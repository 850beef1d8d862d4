//! What the store keeps: experiments, trials and their observation points.
//!
//! Records are serialised as JSON inside sled so that a person (or a later version) can read them,
//! and so adding a field never breaks an old database (`#[serde(default)]`).

use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::spec::{Experiment, ParameterAssignment};

/// Katib's experiment condition types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExperimentPhase {
    /// Accepted, no trial started yet.
    Created,
    /// Trials are running or being asked for.
    Running,
    /// Ended normally (goal reached, max trials, search exhausted).
    Succeeded,
    /// Ended because too many trials failed.
    Failed,
    /// Stopped on request (`POST /v1/experiments/{name}/stop`) before it ended by itself.
    Stopped,
}

impl ExperimentPhase {
    /// True once the experiment has ended.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            ExperimentPhase::Succeeded | ExperimentPhase::Failed | ExperimentPhase::Stopped
        )
    }
}

/// An experiment and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentRecord {
    /// `metadata.name`.
    pub name: String,
    /// The experiment as submitted, with Katib's defaults applied.
    pub experiment: Experiment,
    /// The file it came from, if any.
    #[serde(default)]
    pub source_file: Option<PathBuf>,
    /// Directory trials run in (the experiment file's directory).
    pub work_dir: PathBuf,
    /// The seed engines use.
    pub seed: u64,
    /// Current phase.
    pub phase: ExperimentPhase,
    /// Katib reason of the last condition (`ExperimentMaxTrialsReached` ...).
    #[serde(default)]
    pub reason: String,
    /// Human message of the last condition.
    #[serde(default)]
    pub message: String,
    /// When it was created.
    pub created: Timestamp,
    /// When it last started running (first run or resume).
    #[serde(default)]
    pub started: Option<Timestamp>,
    /// When it ended.
    #[serde(default)]
    pub completed: Option<Timestamp>,
    /// Number of trials ever created; the next trial's index.
    pub trials_created: u64,
}

/// Katib's trial states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TrialState {
    /// Created, not started.
    Pending,
    /// Its process is running.
    Running,
    /// Exited 0 and reported the objective metric.
    Succeeded,
    /// Exited non-zero, or could not start.
    Failed,
    /// Exited 0 without reporting the objective metric.
    MetricsUnavailable,
    /// Stopped by an early-stopping rule.
    EarlyStopped,
    /// Stopped from outside (interrupted run, experiment ended, user).
    Killed,
}

impl TrialState {
    /// Every state, in display order.
    pub const ALL: [TrialState; 7] = [
        TrialState::Pending,
        TrialState::Running,
        TrialState::Succeeded,
        TrialState::Failed,
        TrialState::MetricsUnavailable,
        TrialState::EarlyStopped,
        TrialState::Killed,
    ];

    /// Pending or Running.
    pub fn is_active(self) -> bool {
        matches!(self, TrialState::Pending | TrialState::Running)
    }

    /// The name users see and type (`Succeeded`, `MetricsUnavailable` ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Pending => "Pending",
            TrialState::Running => "Running",
            TrialState::Succeeded => "Succeeded",
            TrialState::Failed => "Failed",
            TrialState::MetricsUnavailable => "MetricsUnavailable",
            TrialState::EarlyStopped => "EarlyStopped",
            TrialState::Killed => "Killed",
        }
    }
}

impl std::fmt::Display for TrialState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One metric of a trial reduced Katib's way: min, max and latest value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSummary {
    /// Metric name.
    pub name: String,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Last value (highest step; last reported on ties).
    pub latest: f64,
    /// Number of points.
    pub count: u64,
}

/// One state change of a trial, kept so `describe trial` can say why it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialEvent {
    /// When.
    pub time: Timestamp,
    /// The new state.
    pub state: TrialState,
    /// Machine-readable reason (`TrialSucceeded`, `TrialFailed`, ...).
    pub reason: String,
    /// What happened, for people.
    pub message: String,
}

/// A trial and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialRecord {
    /// Trial name, unique in the store.
    pub name: String,
    /// Its experiment.
    pub experiment: String,
    /// 0-based creation index within the experiment.
    pub index: u64,
    /// Store-wide numeric id; keys its observation points.
    pub uid: u64,
    /// The parameter values it runs with.
    pub assignments: Vec<ParameterAssignment>,
    /// Current state.
    pub state: TrialState,
    /// Reason of the last state change.
    #[serde(default)]
    pub reason: String,
    /// Message of the last state change.
    #[serde(default)]
    pub message: String,
    /// Every state change.
    #[serde(default)]
    pub events: Vec<TrialEvent>,
    /// Created.
    pub created: Timestamp,
    /// Process started.
    #[serde(default)]
    pub started: Option<Timestamp>,
    /// Process ended.
    #[serde(default)]
    pub finished: Option<Timestamp>,
    /// Where its combined output is kept.
    pub log_path: PathBuf,
    /// Process id while running (used to clean up after a crash).
    #[serde(default)]
    pub pid: Option<u32>,
    /// Exit code, when it exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// GPUs it was given.
    #[serde(default)]
    pub gpus: Vec<String>,
    /// Metric summaries (Katib's `status.observation.metrics`).
    #[serde(default)]
    pub metrics: Vec<MetricSummary>,
    /// The objective value by the metric strategy, when reported.
    #[serde(default)]
    pub objective: Option<f64>,
}

impl TrialRecord {
    /// Changes state and records why.
    pub fn transition(
        &mut self,
        state: TrialState,
        reason: &str,
        message: impl Into<String>,
        time: Timestamp,
    ) {
        let message = message.into();
        self.state = state;
        self.reason = reason.to_string();
        self.message = message.clone();
        self.events.push(TrialEvent {
            time,
            state,
            reason: reason.to_string(),
            message,
        });
    }

    /// The summary of one metric.
    pub fn metric(&self, name: &str) -> Option<&MetricSummary> {
        self.metrics.iter().find(|m| m.name == name)
    }
}
