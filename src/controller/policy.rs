//! The experiment policy: pure decisions from the experiment and its trials.
//!
//! Every backend (local processes now, Kubernetes later) asks these functions what to do and only
//! carries the answer out, so the rules live in one place. The order of the completion checks is
//! Katib's (`UpdateExperimentStatusCondition`): goal reached, then too many failures, then max
//! trials, then the search running out.

use crate::spec::{CheckedExperiment, Direction};
use crate::store::{TrialRecord, TrialState};

/// Katib's condition reasons, kept verbatim for users' scripts and dashboards.
pub mod reason {
    /// Objective goal reached.
    pub const GOAL_REACHED: &str = "ExperimentGoalReached";
    /// `maxTrialCount` trials finished.
    pub const MAX_TRIALS_REACHED: &str = "ExperimentMaxTrialsReached";
    /// The engine has nothing left to suggest.
    pub const SUGGESTION_END_REACHED: &str = "ExperimentSuggestionEndReached";
    /// Too many trials failed.
    pub const FAILED: &str = "ExperimentFailed";
    /// The experiment is running.
    pub const RUNNING: &str = "ExperimentRunning";
    /// The experiment was created.
    pub const CREATED: &str = "ExperimentCreated";
}

/// How many trials are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrialCounts {
    /// Pending.
    pub pending: u32,
    /// Running.
    pub running: u32,
    /// Succeeded.
    pub succeeded: u32,
    /// Failed.
    pub failed: u32,
    /// MetricsUnavailable.
    pub metrics_unavailable: u32,
    /// EarlyStopped.
    pub early_stopped: u32,
    /// Killed.
    pub killed: u32,
}

impl TrialCounts {
    /// Counts trials by state.
    pub fn of(trials: &[TrialRecord]) -> TrialCounts {
        let mut counts = TrialCounts::default();
        for trial in trials {
            let slot = match trial.state {
                TrialState::Pending => &mut counts.pending,
                TrialState::Running => &mut counts.running,
                TrialState::Succeeded => &mut counts.succeeded,
                TrialState::Failed => &mut counts.failed,
                TrialState::MetricsUnavailable => &mut counts.metrics_unavailable,
                TrialState::EarlyStopped => &mut counts.early_stopped,
                TrialState::Killed => &mut counts.killed,
            };
            *slot += 1;
        }
        counts
    }

    /// Pending + running.
    pub fn active(&self) -> u32 {
        self.pending + self.running
    }

    /// Trials that used up budget: everything that ran to an end of its own or was stopped by a
    /// rule. Killed trials are not counted: a trial cut off by an interrupted run is run again
    /// (Katib counts them; see docs/katib-compatibility.md).
    pub fn finished(&self) -> u32 {
        self.succeeded + self.failed + self.metrics_unavailable + self.early_stopped
    }

    /// Trials counted against `maxFailedTrialCount`: Katib counts MetricsUnavailable as failed.
    pub fn failed_for_budget(&self) -> u32 {
        self.failed + self.metrics_unavailable
    }
}

/// Why an experiment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The objective reached `goal`.
    GoalReached,
    /// `maxFailedTrialCount` trials failed.
    TooManyFailures,
    /// `maxTrialCount` trials finished.
    MaxTrialsReached,
    /// The engine has nothing left and no trial is running.
    SearchExhausted,
}

impl Completion {
    /// True when the experiment ends Succeeded (everything but too many failures).
    pub fn succeeded(self) -> bool {
        self != Completion::TooManyFailures
    }

    /// Katib's reason.
    pub fn reason(self) -> &'static str {
        match self {
            Completion::GoalReached => reason::GOAL_REACHED,
            Completion::TooManyFailures => reason::FAILED,
            Completion::MaxTrialsReached => reason::MAX_TRIALS_REACHED,
            Completion::SearchExhausted => reason::SUGGESTION_END_REACHED,
        }
    }

    /// Katib's message (with "search space exhausted" for the engine running out, which says what
    /// happened more plainly than Katib's "suggestion service has reached the end").
    pub fn message(self) -> &'static str {
        match self {
            Completion::GoalReached => {
                "Experiment has succeeded because Objective goal has reached"
            }
            Completion::TooManyFailures => {
                "Experiment has failed because max failed count has reached"
            }
            Completion::MaxTrialsReached => {
                "Experiment has succeeded because max trial count has reached"
            }
            Completion::SearchExhausted => {
                "Experiment has succeeded because the search space is exhausted: search space exhausted, every point has been tried"
            }
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The experiment is over; stop what still runs.
    Complete(Completion),
    /// Keep going; ask the engine for this many new trials (possibly 0).
    Continue {
        /// New trials to create now.
        new_trials: u32,
    },
}

/// Decides the next step. `exhausted`: the engine said it has nothing more. `slots`: how many more
/// trials the runtime can start right now (GPU pool), `None` for no limit of its own.
pub fn decide(
    experiment: &CheckedExperiment,
    trials: &[TrialRecord],
    exhausted: bool,
    slots: Option<u32>,
) -> Decision {
    let counts = TrialCounts::of(trials);
    if goal_reached(experiment, trials) {
        return Decision::Complete(Completion::GoalReached);
    }
    if let Some(max_failed) = experiment.max_failed_trial_count {
        let failed = counts.failed_for_budget();
        // Katib: `failed != 0 && failed >= max`, so maxFailedTrialCount 0 means "no failure allowed"
        // only once a failure happened.
        if failed != 0 && failed >= max_failed {
            return Decision::Complete(Completion::TooManyFailures);
        }
    }
    if let Some(max) = experiment.max_trial_count
        && counts.finished() >= max
    {
        return Decision::Complete(Completion::MaxTrialsReached);
    }
    if exhausted {
        return if counts.active() == 0 {
            Decision::Complete(Completion::SearchExhausted)
        } else {
            Decision::Continue { new_trials: 0 }
        };
    }
    let mut room = experiment
        .parallel_trial_count
        .saturating_sub(counts.active());
    if let Some(max) = experiment.max_trial_count {
        room = room.min(max.saturating_sub(counts.finished() + counts.active()));
    }
    if let Some(slots) = slots {
        room = room.min(slots);
    }
    Decision::Continue { new_trials: room }
}

/// True when the best objective so far meets the goal.
pub fn goal_reached(experiment: &CheckedExperiment, trials: &[TrialRecord]) -> bool {
    let Some(goal) = experiment.objective.goal else {
        return false;
    };
    let direction = experiment.objective.direction;
    best_trial(direction, trials)
        .and_then(|t| t.objective)
        .is_some_and(|best| match direction {
            Direction::Minimize => best <= goal,
            Direction::Maximize => best >= goal,
        })
}

/// The trial with the best objective; the earliest wins ties.
pub fn best_trial(direction: Direction, trials: &[TrialRecord]) -> Option<&TrialRecord> {
    let mut best: Option<&TrialRecord> = None;
    for trial in trials {
        let Some(value) = trial.objective else {
            continue;
        };
        let better = match best.and_then(|b| b.objective) {
            None => true,
            Some(current) => match direction {
                Direction::Minimize => value < current,
                Direction::Maximize => value > current,
            },
        };
        if better {
            best = Some(trial);
        }
    }
    best
}

/// The objective as a loss (lower is better), the form engines take.
pub fn as_loss(direction: Direction, objective: f64) -> f64 {
    match direction {
        Direction::Minimize => objective,
        Direction::Maximize => -objective,
    }
}
