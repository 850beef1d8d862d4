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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
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
            counts.add(trial.state);
        }
        counts
    }

    /// Counts one more trial in `state`.
    pub fn add(&mut self, state: TrialState) {
        let slot = match state {
            TrialState::Pending => &mut self.pending,
            TrialState::Running => &mut self.running,
            TrialState::Succeeded => &mut self.succeeded,
            TrialState::Failed => &mut self.failed,
            TrialState::MetricsUnavailable => &mut self.metrics_unavailable,
            TrialState::EarlyStopped => &mut self.early_stopped,
            TrialState::Killed => &mut self.killed,
        };
        *slot += 1;
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
                "Experiment has succeeded: search space exhausted (the engine has nothing left to suggest)"
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use jiff::Timestamp;
    use sextant_algorithms::{Domain, Parameter, SearchSpace};

    use super::*;
    use crate::spec::{Algorithm, Collector, Experiment, Objective};

    fn experiment(
        max: Option<u32>,
        max_failed: Option<u32>,
        parallel: u32,
        goal: Option<f64>,
    ) -> CheckedExperiment {
        CheckedExperiment {
            experiment: Experiment {
                api_version: "kubeflow.org/v1beta1".into(),
                kind: "Experiment".into(),
                metadata: Default::default(),
                spec: Default::default(),
                status: None,
            },
            name: "e".into(),
            space: SearchSpace::new(vec![Parameter {
                name: "x".into(),
                domain: Domain::Int {
                    min: 0,
                    max: 9,
                    step: None,
                    distribution: Default::default(),
                },
            }])
            .unwrap(),
            objective: Objective {
                direction: Direction::Maximize,
                goal,
                metric: "accuracy".into(),
                additional_metrics: vec![],
                strategies: BTreeMap::new(),
            },
            algorithm: Algorithm {
                name: "random".into(),
                settings: vec![],
                seed: None,
            },
            parallel_trial_count: parallel,
            max_trial_count: max,
            max_failed_trial_count: max_failed,
            collector: Collector::StdOut { filters: vec![] },
            template: Default::default(),
            early_stopping: None,
        }
    }

    fn trial(state: TrialState, objective: Option<f64>) -> TrialRecord {
        TrialRecord {
            name: format!("t{}", objective.unwrap_or(-1.0)),
            experiment: "e".into(),
            index: 0,
            uid: 0,
            assignments: vec![],
            state,
            reason: String::new(),
            message: String::new(),
            events: vec![],
            created: Timestamp::UNIX_EPOCH,
            started: None,
            finished: None,
            log_path: Default::default(),
            pid: None,
            exit_code: None,
            gpus: vec![],
            metrics: vec![],
            objective,
        }
    }

    use TrialState::*;

    #[test]
    fn fills_free_parallel_slots_within_the_trial_budget() {
        let exp = experiment(Some(5), None, 3, None);
        assert_eq!(
            decide(&exp, &[], false, None),
            Decision::Continue { new_trials: 3 }
        );
        let trials = [
            trial(Running, None),
            trial(Succeeded, Some(0.5)),
            trial(Succeeded, Some(0.6)),
        ];
        // 2 finished + 1 running of 5: room for 2 more, and 2 parallel slots free
        assert_eq!(
            decide(&exp, &trials, false, None),
            Decision::Continue { new_trials: 2 }
        );
        // the runtime's own limit (GPUs) caps it
        assert_eq!(
            decide(&exp, &trials, false, Some(1)),
            Decision::Continue { new_trials: 1 }
        );
    }

    #[test]
    fn max_trials_reached_counts_finished_trials_but_not_killed_ones() {
        let exp = experiment(Some(2), None, 3, None);
        let done = [trial(Succeeded, Some(0.1)), trial(Failed, None)];
        assert_eq!(
            decide(&exp, &done, false, None),
            Decision::Complete(Completion::MaxTrialsReached)
        );
        let cut_off = [trial(Succeeded, Some(0.1)), trial(Killed, None)];
        assert_eq!(
            decide(&exp, &cut_off, false, None),
            Decision::Continue { new_trials: 1 }
        );
    }

    #[test]
    fn goal_reached_wins_over_everything_and_respects_direction() {
        let exp = experiment(Some(10), Some(1), 3, Some(0.9));
        assert_eq!(
            decide(
                &exp,
                &[trial(Failed, None), trial(Succeeded, Some(0.95))],
                false,
                None
            ),
            Decision::Complete(Completion::GoalReached)
        );
        assert_eq!(
            decide(&exp, &[trial(Succeeded, Some(0.85))], false, None),
            Decision::Continue { new_trials: 3 }
        );
        let mut minimize = experiment(Some(10), None, 3, Some(0.9));
        minimize.objective.direction = Direction::Minimize;
        assert!(
            goal_reached(&minimize, &[trial(Succeeded, Some(0.9))]),
            "a tie meets the goal"
        );
        assert!(!goal_reached(&minimize, &[trial(Succeeded, Some(0.95))]));
    }

    #[test]
    fn too_many_failures_counts_metrics_unavailable_like_katib() {
        let exp = experiment(Some(10), Some(2), 3, None);
        let one = [trial(Failed, None)];
        assert_eq!(
            decide(&exp, &one, false, None),
            Decision::Continue { new_trials: 3 }
        );
        let two = [trial(Failed, None), trial(MetricsUnavailable, None)];
        assert_eq!(
            decide(&exp, &two, false, None),
            Decision::Complete(Completion::TooManyFailures)
        );
        assert!(!Completion::TooManyFailures.succeeded());
    }

    #[test]
    fn zero_failures_allowed_ends_at_the_first_failure() {
        let exp = experiment(Some(10), Some(0), 3, None);
        assert_eq!(
            decide(&exp, &[], false, None),
            Decision::Continue { new_trials: 3 }
        );
        assert_eq!(
            decide(&exp, &[trial(Failed, None)], false, None),
            Decision::Complete(Completion::TooManyFailures)
        );
    }

    #[test]
    fn exhausted_search_waits_for_running_trials_then_completes() {
        let exp = experiment(Some(10), None, 3, None);
        assert_eq!(
            decide(&exp, &[trial(Running, None)], true, None),
            Decision::Continue { new_trials: 0 }
        );
        assert_eq!(
            decide(&exp, &[trial(Succeeded, Some(0.3))], true, None),
            Decision::Complete(Completion::SearchExhausted)
        );
        assert!(
            Completion::SearchExhausted
                .message()
                .contains("search space exhausted")
        );
    }

    #[test]
    fn no_max_trial_count_runs_until_something_else_ends_it() {
        let exp = experiment(None, None, 2, None);
        let many: Vec<_> = (0..50)
            .map(|i| trial(Succeeded, Some(f64::from(i))))
            .collect();
        assert_eq!(
            decide(&exp, &many, false, None),
            Decision::Continue { new_trials: 2 }
        );
    }

    #[test]
    fn best_trial_follows_the_direction_and_keeps_the_earliest_on_ties() {
        let mut a = trial(Succeeded, Some(0.7));
        a.name = "a".into();
        let mut b = trial(Succeeded, Some(0.9));
        b.name = "b".into();
        let mut c = trial(Succeeded, Some(0.9));
        c.name = "c".into();
        let trials = [a, b, c, trial(Failed, None)];
        assert_eq!(best_trial(Direction::Maximize, &trials).unwrap().name, "b");
        assert_eq!(best_trial(Direction::Minimize, &trials).unwrap().name, "a");
        assert_eq!(as_loss(Direction::Maximize, 0.9), -0.9);
    }
}
