//! Runtimes carry out the controller's decisions: start a trial's workload, stop it, and report
//! what it printed and how it ended. They never decide policy.

pub mod gpu;
pub mod kubernetes;
pub mod local;

use sextant_collector::Observation;

use crate::store::TrialRecord;

/// What a runtime reports about its trials, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeEvent {
    /// Metric points a trial produced.
    Observations {
        /// The trial.
        trial: String,
        /// The points.
        points: Vec<Observation>,
    },
    /// A trial's workload ended. Its last observations were sent before this.
    Exited {
        /// The trial.
        trial: String,
        /// How it ended.
        outcome: ExitOutcome,
    },
}

/// How a trial's workload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitOutcome {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// The runtime lost it (output unreadable, wait failed ...).
    Error(String),
}

/// A trial the runtime started.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartedTrial {
    /// Process id, for cleanup after a crash.
    pub pid: Option<u32>,
    /// GPUs given to it.
    pub gpus: Vec<String>,
}

/// Why a trial could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// A place where trials run.
pub trait TrialRuntime {
    /// How many more trials can start right now, `None` when the runtime has no limit of its own
    /// (the experiment's `parallelTrialCount` still applies).
    fn free_slots(&self) -> Option<u32>;

    /// Starts `trial` with its rendered workload; `token` is what it pushes metrics with.
    fn start(
        &mut self,
        trial: &TrialRecord,
        workload: &serde_json::Value,
        token: &str,
    ) -> Result<StartedTrial, StartError>;

    /// Asks a running trial to stop: politely first, then forcibly after a grace period. Its
    /// `Exited` event follows.
    fn stop(&mut self, trial: &str);

    /// Told once a trial's `Exited` event was handled, so nothing is sent to it any more.
    fn forget(&mut self, trial: &str);

    /// Cleans up after a trial that an earlier run left Pending or Running when it stopped
    /// without finishing (crash, SIGKILL): whatever of it still runs is stopped.
    fn recover(&mut self, trial: &TrialRecord);

    /// Whether a trial keeps running when its driver stops: a Kubernetes workload does (the
    /// cluster runs it), a local process does not. Such trials are left running when the server
    /// shuts down, and [`adopt`](TrialRuntime::adopt)ed when it starts again.
    fn trials_outlive_driver(&self) -> bool {
        false
    }

    /// Follows a trial an earlier driver left running, until it ends (its `Exited` comes as for a
    /// trial this runtime started). Only called when [`trials_outlive_driver`] is true.
    ///
    /// [`trials_outlive_driver`]: TrialRuntime::trials_outlive_driver
    fn adopt(&mut self, trial: &TrialRecord, token: &str) -> Result<(), StartError> {
        let _ = (trial, token);
        Err(StartError(
            "this runtime cannot pick up running trials".into(),
        ))
    }
}
