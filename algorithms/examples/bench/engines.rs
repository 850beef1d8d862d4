//! The engines the benchmark can run, by the names users write in an experiment spec, and the one
//! way the benchmark calls them.
//!
//! Calls go through [`suggest`], which turns an engine error *and an engine panic* into a message:
//! one failing engine (such as a GP engine under construction) must print `error: ...` cells, not
//! stop the benchmark of the others.

use std::panic::{self, AssertUnwindSafe};

use serde_json::Value as Json;
use sextant_algorithms::bo::{BayesOptEngine, BayesOptSettings};
use sextant_algorithms::cmaes::CmaEsEngine;
use sextant_algorithms::random::RandomEngine;
use sextant_algorithms::sobol::SobolEngine;
use sextant_algorithms::tpe::{TpeEngine, TpeSettings};
use sextant_algorithms::{Engine, SuggestRequest, Suggestions};

/// An engine the benchmark knows how to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// `random`.
    Random,
    /// `sobol`.
    Sobol,
    /// `bayesianoptimization`, with its default settings (what a spec without settings gets).
    BayesianOptimization,
    /// `tpe`, with its default settings.
    Tpe,
    /// `multivariate-tpe`, with its default settings.
    MultivariateTpe,
    /// `cmaes`, with its default settings.
    CmaEs,
}

impl EngineChoice {
    /// Every engine, in the order the tables list them.
    pub const ALL: [EngineChoice; 6] = [
        EngineChoice::Random,
        EngineChoice::Sobol,
        EngineChoice::BayesianOptimization,
        EngineChoice::Tpe,
        EngineChoice::MultivariateTpe,
        EngineChoice::CmaEs,
    ];

    /// The algorithm name (the same as [`Engine::name`] of the built engine).
    pub fn name(self) -> &'static str {
        match self {
            EngineChoice::Random => "random",
            EngineChoice::Sobol => "sobol",
            EngineChoice::BayesianOptimization => "bayesianoptimization",
            EngineChoice::Tpe => "tpe",
            EngineChoice::MultivariateTpe => "multivariate-tpe",
            EngineChoice::CmaEs => "cmaes",
        }
    }

    /// The engine named `name`, if any.
    pub fn from_name(name: &str) -> Option<EngineChoice> {
        EngineChoice::ALL.into_iter().find(|e| e.name() == name)
    }

    /// A fresh engine.
    pub fn build(self) -> Box<dyn Engine> {
        match self {
            EngineChoice::Random => Box::new(RandomEngine),
            EngineChoice::Sobol => Box::new(SobolEngine),
            EngineChoice::BayesianOptimization => {
                Box::new(BayesOptEngine::new(BayesOptSettings::default()))
            }
            EngineChoice::Tpe => Box::new(TpeEngine::new(TpeSettings::default())),
            EngineChoice::MultivariateTpe => {
                Box::new(TpeEngine::multivariate(TpeSettings::multivariate_default()))
            }
            EngineChoice::CmaEs => Box::new(CmaEsEngine::default()),
        }
    }
}

/// What an engine's figures are judged by in a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The engine an issue set this target for.
    Target,
    /// Judged by another engine's target, shown beside it (e.g. `multivariate-tpe` by `tpe`'s).
    Shown,
    /// No target of its own: judged by the GP's, for comparison.
    ForComparison,
}

impl Role {
    /// The label in verdict lines.
    pub fn label(self) -> &'static str {
        match self {
            Role::Target => "target",
            Role::Shown => "shown",
            Role::ForComparison => "for comparison",
        }
    }
}

/// `engines` with the role each plays under `targets` (engine names and their role, from the
/// quality or latency module; an engine not listed is for comparison): targets first, then the
/// others in their given order. Keyed by the algorithm name, so an engine added later (`cmaes`)
/// gets its verdict as soon as its name is listed.
pub fn by_role(engines: &[EngineChoice], targets: &[(&str, Role)]) -> Vec<(EngineChoice, Role)> {
    let role_of = |e: &EngineChoice| {
        targets
            .iter()
            .find(|(name, _)| *name == e.name())
            .map_or(Role::ForComparison, |(_, role)| *role)
    };
    let mut ordered: Vec<(EngineChoice, Role)> = engines.iter().map(|e| (*e, role_of(e))).collect();
    // A stable sort keeps the given order within each role.
    ordered.sort_by_key(|(_, role)| match role {
        Role::Target => 0,
        Role::Shown => 1,
        Role::ForComparison => 2,
    });
    ordered
}

/// Calls `engine`, with an error or a panic turned into its message.
pub fn suggest(engine: &dyn Engine, request: &SuggestRequest<'_>) -> Result<Suggestions, String> {
    match panic::catch_unwind(AssertUnwindSafe(|| engine.suggest(request))) {
        Ok(Ok(suggestions)) => Ok(suggestions),
        Ok(Err(error)) => Err(error.to_string()),
        Err(payload) => Err(format!("panicked: {}", panic_message(payload.as_ref()))),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "(no message)"
    }
}

/// The state as the controller hands it back: it stores an engine's state as JSON bytes between
/// calls (`serde_json::to_vec`, then `from_slice`), so the benchmark does the same round trip.
pub fn as_saved(state: &Json) -> Result<Json, String> {
    let bytes = serde_json::to_vec(state).map_err(|e| format!("state does not serialise: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("saved state does not read back: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_algorithms::EngineError;

    #[test]
    fn names_match_the_engines_own_names() {
        for choice in EngineChoice::ALL {
            assert_eq!(choice.build().name(), choice.name());
            assert_eq!(EngineChoice::from_name(choice.name()), Some(choice));
        }
        assert_eq!(EngineChoice::from_name("grid"), None);
    }

    #[test]
    fn target_engines_come_first_by_name() {
        let targets = [
            ("tpe", Role::Target),
            ("bayesianoptimization", Role::Target),
            ("multivariate-tpe", Role::Shown),
            ("cmaes", Role::Target),
        ];
        let roles = by_role(&EngineChoice::ALL, &targets);
        assert_eq!(roles[0], (EngineChoice::BayesianOptimization, Role::Target));
        assert_eq!(roles[1], (EngineChoice::Tpe, Role::Target));
        assert_eq!(roles[2], (EngineChoice::CmaEs, Role::Target));
        assert_eq!(roles[3], (EngineChoice::MultivariateTpe, Role::Shown));
        assert_eq!(roles[4], (EngineChoice::Random, Role::ForComparison));
        assert_eq!(by_role(&[EngineChoice::Sobol], &targets).len(), 1);
    }

    struct PanickingEngine;

    impl Engine for PanickingEngine {
        fn name(&self) -> &'static str {
            "panicking"
        }

        fn suggest(&self, _: &SuggestRequest<'_>) -> Result<Suggestions, EngineError> {
            panic!("model blew up")
        }
    }

    #[test]
    fn engine_errors_and_panics_become_messages() {
        let space = sextant_algorithms::test_functions::TestFunction::Branin.search_space();
        let request = SuggestRequest {
            space: &space,
            history: &[],
            pending: &[],
            count: 1,
            seed: 0,
            state: None,
        };
        let error = suggest(&*EngineChoice::BayesianOptimization.build(), &request);
        // Whatever the GP engine answers today, it answers without stopping the benchmark.
        assert!(error.is_ok() || !error.unwrap_err().is_empty());
        let panicked = suggest(&PanickingEngine, &request).unwrap_err();
        assert_eq!(panicked, "panicked: model blew up");
        assert_eq!(suggest(&RandomEngine, &request).unwrap().points.len(), 1);
    }
}
