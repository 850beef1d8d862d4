//! The contract every suggestion engine follows.
//!
//! Engines are pure: `suggest` reads the space, what has finished (`history`), what is running now
//! (`pending`), a seed and the engine's own saved state, and returns new points plus the state to
//! save. The caller persists that state; an engine never keeps anything between calls, so a process
//! restart resumes exactly where it stopped.

use crate::space::{Point, SearchSpace};

/// A trial that has finished, as an engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletedTrial {
    /// The assignment the trial ran with.
    pub point: Point,
    /// The trial's objective, normalised so that **lower is better** (the caller negates the value of
    /// a `maximize` objective). `None` when the trial failed or reported no objective.
    pub loss: Option<f64>,
}

/// Everything an engine may look at to make its next suggestions.
#[derive(Debug, Clone, Copy)]
pub struct SuggestRequest<'a> {
    /// The search space.
    pub space: &'a SearchSpace,
    /// Finished trials (succeeded, failed, early-stopped ...), in creation order.
    pub history: &'a [CompletedTrial],
    /// Trials created but not finished: their points are taken, a batch must not repeat them.
    pub pending: &'a [Point],
    /// How many new points the caller wants. An engine may return fewer when it is exhausted, or
    /// when it must wait for pending trials to finish (Hyperband promoting a rung); it returns none
    /// with nothing pending only when it is exhausted.
    pub count: usize,
    /// The experiment's seed (from `random_state`, or derived from the experiment's name).
    pub seed: u64,
    /// The state this engine returned last time, `None` on the first call.
    pub state: Option<&'a serde_json::Value>,
}

/// What an engine answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestions {
    /// New points, distinct from each other and (for finite spaces) from history and pending.
    pub points: Vec<Point>,
    /// True when the engine has nothing left to suggest after `points`: the caller ends the
    /// experiment ("search space exhausted") once the running trials finish, instead of stalling.
    pub exhausted: bool,
    /// State to save and hand back on the next call (`Value::Null` when the engine keeps none).
    pub state: serde_json::Value,
}

/// Why an engine could not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The engine cannot work on this space (e.g. grid over a double without `step`).
    #[error("{0}")]
    UnsupportedSpace(String),
    /// The saved state does not fit this engine or space.
    #[error("saved engine state is unusable: {0}")]
    BadState(String),
}

/// A suggestion engine.
pub trait Engine: Send + Sync {
    /// The algorithm name users write (`random`, `grid`, `sobol`, ...).
    fn name(&self) -> &'static str;

    /// Checks, before any trial runs, that this engine can work on `space`, so a bad spec is
    /// refused up front instead of after the first trials.
    fn check_space(&self, space: &SearchSpace) -> Result<(), EngineError> {
        let _ = space;
        Ok(())
    }

    /// Proposes up to `request.count` new points.
    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, EngineError>;
}
