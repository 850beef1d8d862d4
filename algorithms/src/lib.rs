//! Sextant's search algorithms: the typed search space and the suggestion engines.
//!
//! Everything here is pure: no IO, no clocks, no global randomness. An engine is a function of
//! (search space, trial history, pending trials, seed, saved state) to (assignments, new state), so a
//! controller that restarts can ask again and lose nothing. See `ARCHITECTURE.md`.
#![warn(missing_docs)]

mod batch;
pub mod bo;
pub mod cmaes;
mod counter_state;
pub mod early_stopping;
pub mod engine;
pub mod grid;
pub mod hyperband;
pub mod random;
mod seeding;
pub mod sobol;
mod sobol_directions;
pub mod space;
mod taken;
pub mod test_functions;
#[cfg(test)]
mod test_support;
pub mod tpe;

pub use engine::{CompletedTrial, Engine, EngineError, SuggestRequest, Suggestions};
pub use space::{Distribution, Domain, Parameter, Point, SearchSpace, SpaceError, Value};
