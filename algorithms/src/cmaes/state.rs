//! The engine's saved state: everything a restarted service needs to continue the same run.
//!
//! ```json
//! { "engine": "cmaes", "version": 1, "dims": 4, "sobol_index": 5, "draws": 37, "restarts": 0,
//!   "bipop": { "large_restarts": 0, "evals_large": 0, "evals_small": 0 },
//!   "run": { "regime": "default", "lambda": 8, "sigma0": "2.5e-1",
//!            "mean": ["5e-1", ..], "sigma": "2.1e-1", "cov": [..n*n..],
//!            "p_sigma": [..], "p_c": [..], "generation": 3, "fun_history": [..],
//!            "asked": [[..unit vector of each asked point..], ..] } }
//! ```
//!
//! * `run` is absent while the startup design is running. `asked` holds, in ask order, the unit
//!   vector each point of the current generation was made from (`SearchSpace::from_unit` of it is
//!   the point, bit for bit), which is how a finished trial is matched to its generation slot: by
//!   the point's key.
//! * Floats are saved as strings in Rust's shortest round-trip form (`"2.5e-1"`), because the
//!   JSON number parser may return a float one unit in the last place off, and every later
//!   suggestion depends on these values: a restart must resume bit for bit.
//! * A state of another `version` or dimension count is replaced by a fresh start (an upgrade or a
//!   changed space never fails an experiment); a value that is not this engine's state at all is
//!   refused as `BadState`.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::engine::EngineError;

/// The state's format version.
pub(crate) const STATE_VERSION: u64 = 1;

/// The tag that marks this engine's state.
const ENGINE_TAG: &str = "cmaes";

/// Which BIPOP regime a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Regime {
    /// The first run (default population), counted in the large regime's budget.
    Default,
    /// A restart with a larger population and the initial step size (IPOP restarts too).
    Large,
    /// A BIPOP restart with a small population and a smaller step size.
    Small,
}

/// BIPOP's bookkeeping: how many large-regime restarts so far and each regime's evaluations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct BipopBudget {
    /// Large-population restarts so far (the population is `λ_default · 2^large_restarts`).
    pub(crate) large_restarts: u32,
    /// Evaluations spent in the default and large regimes.
    pub(crate) evals_large: u64,
    /// Evaluations spent in the small regime.
    pub(crate) evals_small: u64,
}

/// One CMA-ES run (between restarts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedRun {
    /// The regime of this run.
    pub(crate) regime: Regime,
    /// Population size λ.
    pub(crate) lambda: usize,
    /// The step size this run started with.
    #[serde(with = "exact")]
    pub(crate) sigma0: f64,
    /// The mean.
    #[serde(with = "exact_vec")]
    pub(crate) mean: Vec<f64>,
    /// The step size.
    #[serde(with = "exact")]
    pub(crate) sigma: f64,
    /// The covariance, row-major.
    #[serde(with = "exact_vec")]
    pub(crate) cov: Vec<f64>,
    /// The conjugate evolution path.
    #[serde(with = "exact_vec")]
    pub(crate) p_sigma: Vec<f64>,
    /// The evolution path.
    #[serde(with = "exact_vec")]
    pub(crate) p_c: Vec<f64>,
    /// Generations completed in this run.
    pub(crate) generation: u64,
    /// Best and worst loss of the recent generations (pairs, oldest first), for the flat-fitness
    /// stop.
    #[serde(with = "exact_vec")]
    pub(crate) fun_history: Vec<f64>,
    /// The unit vectors of the current generation's asked points, in ask order.
    #[serde(with = "exact_vecs")]
    pub(crate) asked: Vec<Vec<f64>>,
}

/// The saved state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedState {
    /// Always [`ENGINE_TAG`].
    pub(crate) engine: String,
    /// [`STATE_VERSION`].
    pub(crate) version: u64,
    /// Dimensions of the CMA-ES vector (numeric parameters).
    pub(crate) dims: usize,
    /// The next index of the startup Sobol design.
    pub(crate) sobol_index: u64,
    /// Asked points so far (each draws from its own random stream).
    pub(crate) draws: u64,
    /// Restarts so far.
    pub(crate) restarts: u64,
    /// BIPOP's budgets.
    #[serde(default)]
    pub(crate) bipop: BipopBudget,
    /// The current run; `None` during the startup design.
    #[serde(default)]
    pub(crate) run: Option<SavedRun>,
}

impl SavedState {
    /// A fresh state for `dims` numeric dimensions, the Sobol design starting at `sobol_index`.
    pub(crate) fn fresh(dims: usize, sobol_index: u64) -> Self {
        SavedState {
            engine: ENGINE_TAG.to_owned(),
            version: STATE_VERSION,
            dims,
            sobol_index,
            draws: 0,
            restarts: 0,
            bipop: BipopBudget::default(),
            run: None,
        }
    }

    /// Reads the request's state: `None` when there is none usable (no state, JSON `null`, another
    /// version or dimension count), an error when it is not a CMA-ES state. A run must have a
    /// population in `2..=max_population` and a finite positive σ; its other numbers may be
    /// anything (a non-finite distribution is restarted by the engine).
    pub(crate) fn read(
        state: Option<&Json>,
        dims: usize,
        max_population: usize,
    ) -> Result<Option<SavedState>, EngineError> {
        let Some(state) = state.filter(|s| !s.is_null()) else {
            return Ok(None);
        };
        if state.get("engine").and_then(Json::as_str) != Some(ENGINE_TAG) {
            return Err(EngineError::BadState(format!(
                "expected the state of cmaes (an object with \"engine\": \"{ENGINE_TAG}\"), got {}",
                abbreviate(state)
            )));
        }
        if state.get("version").and_then(Json::as_u64) != Some(STATE_VERSION)
            || state.get("dims").and_then(Json::as_u64) != Some(dims as u64)
        {
            return Ok(None);
        }
        let saved: SavedState = serde_json::from_value(state.clone())
            .map_err(|e| EngineError::BadState(format!("cmaes state version 1: {e}")))?;
        if let Some(run) = &saved.run {
            let n = dims;
            let shaped = run.mean.len() == n
                && run.cov.len() == n * n
                && run.p_sigma.len() == n
                && run.p_c.len() == n;
            if !shaped {
                return Err(EngineError::BadState(format!(
                    "cmaes state: the run's vectors do not fit {n} dimensions"
                )));
            }
            if !(2..=max_population).contains(&run.lambda) {
                return Err(EngineError::BadState(format!(
                    "cmaes state: lambda {} is outside 2..={max_population}",
                    run.lambda
                )));
            }
            if !(run.sigma.is_finite() && run.sigma > 0.0) {
                return Err(EngineError::BadState(format!(
                    "cmaes state: sigma {} is not a positive finite number",
                    run.sigma
                )));
            }
        }
        Ok(Some(saved))
    }

    /// As JSON.
    pub(crate) fn to_json(&self) -> Json {
        serde_json::to_value(self).unwrap_or(Json::Null)
    }
}

/// The first 200 characters of a JSON value, for error messages.
fn abbreviate(value: &Json) -> String {
    const MAX: usize = 200;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// A float as its shortest round-trip decimal string (`{:e}`), read back exactly.
fn float_text(value: f64) -> String {
    format!("{value:e}")
}

fn parse_float<E: serde::de::Error>(text: &str) -> Result<f64, E> {
    text.parse::<f64>()
        .map_err(|_| E::custom(format!("expected a float as a string, got {text:?}")))
}

mod exact {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::float_text(*value))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        super::parse_float(&String::deserialize(d)?)
    }
}

mod exact_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(values.iter().map(|v| super::float_text(*v)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| super::parse_float(t))
            .collect()
    }
}

mod exact_vecs {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(values: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(values.iter().map(|row| {
            row.iter()
                .map(|v| super::float_text(*v))
                .collect::<Vec<_>>()
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
        Vec::<Vec<String>>::deserialize(d)?
            .iter()
            .map(|row| row.iter().map(|t| super::parse_float(t)).collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_survive_json_bytes_exactly() {
        let awkward = [
            0.1 + 0.2,
            1.0 / 3.0,
            5e-324,
            f64::MAX,
            -2.2250738585072014e-308,
            0.0,
            std::f64::consts::PI * 1e-17,
        ];
        let run = SavedRun {
            regime: Regime::Small,
            lambda: 6,
            sigma0: awkward[1],
            mean: awkward[..2].to_vec(),
            sigma: awkward[6],
            cov: awkward[..4].to_vec(),
            p_sigma: awkward[3..5].to_vec(),
            p_c: awkward[5..7].to_vec(),
            generation: 3,
            fun_history: awkward.to_vec(),
            asked: vec![awkward.to_vec(), vec![]],
        };
        let state = SavedState {
            run: Some(run),
            ..SavedState::fresh(2, 9)
        };
        let bytes = serde_json::to_vec(&state.to_json()).unwrap();
        let back: Json = serde_json::from_slice(&bytes).unwrap();
        let read = SavedState::read(Some(&back), 2, 100).unwrap().unwrap();
        assert_eq!(read, state);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let run = read.run.unwrap();
        assert_eq!(bits(&run.fun_history), bits(&awkward));
    }

    #[test]
    fn strangers_are_refused_and_other_versions_start_afresh() {
        assert_eq!(SavedState::read(None, 2, 100), Ok(None));
        assert_eq!(SavedState::read(Some(&Json::Null), 2, 100), Ok(None));
        let fresh = SavedState::fresh(2, 0).to_json();
        assert!(SavedState::read(Some(&fresh), 2, 100).unwrap().is_some());
        assert_eq!(SavedState::read(Some(&fresh), 3, 100), Ok(None));
        let other = serde_json::json!({ "engine": "cmaes", "version": 99, "dims": 2 });
        assert_eq!(SavedState::read(Some(&other), 2, 100), Ok(None));
        for bad in [
            serde_json::json!({ "index": 3 }),
            serde_json::json!([1, 2]),
            serde_json::json!({ "engine": "cmaes", "version": 1, "dims": 2, "draws": "x" }),
        ] {
            assert!(matches!(
                SavedState::read(Some(&bad), 2, 100),
                Err(EngineError::BadState(_))
            ));
        }
        let mut wrong_shape = SavedState::fresh(2, 0);
        wrong_shape.run = Some(SavedRun {
            regime: Regime::Default,
            lambda: 6,
            sigma0: 0.2,
            mean: vec![0.5],
            sigma: 0.2,
            cov: vec![1.0],
            p_sigma: vec![0.0],
            p_c: vec![0.0],
            generation: 0,
            fun_history: vec![],
            asked: vec![],
        });
        assert!(matches!(
            SavedState::read(Some(&wrong_shape.to_json()), 2, 100),
            Err(EngineError::BadState(_))
        ));
        // A population too large to allocate, or a σ that is not a step size, is refused.
        let mut run = SavedRun {
            regime: Regime::Default,
            lambda: 6,
            sigma0: 0.2,
            mean: vec![0.5; 2],
            sigma: 0.2,
            cov: vec![1.0, 0.0, 0.0, 1.0],
            p_sigma: vec![0.0; 2],
            p_c: vec![0.0; 2],
            generation: 0,
            fun_history: vec![],
            asked: vec![],
        };
        let with = |run: &SavedRun| SavedState {
            run: Some(run.clone()),
            ..SavedState::fresh(2, 0)
        };
        assert!(SavedState::read(Some(&with(&run).to_json()), 2, 100).is_ok());
        run.lambda = 1_000_000_000_000;
        let message = SavedState::read(Some(&with(&run).to_json()), 2, 100).unwrap_err();
        assert!(message.to_string().contains("lambda"), "{message}");
        run.lambda = 6;
        for sigma in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            run.sigma = sigma;
            assert!(matches!(
                SavedState::read(Some(&with(&run).to_json()), 2, 100),
                Err(EngineError::BadState(_))
            ));
        }
    }
}
