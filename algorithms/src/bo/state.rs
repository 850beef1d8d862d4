//! The engine's saved state: what a restarted service needs to answer as if it had kept running.
//!
//! ```json
//! { "engine": "bayesianoptimization", "version": 1, "sobol_index": 10,
//!   "hyper": { "log_lengthscales": [..], "log_signal": 0.1, "log_noise": -9.2 },
//!   "fitted_at": 42, "gains": [0.0, 0.0, 0.0], "proposals": [[..], [..], [..]] }
//! ```
//!
//! * `sobol_index`: the next index of the initial Sobol design.
//! * `hyper`, `fitted_at`: the last fitted hyperparameters and how many points they were fitted
//!   on; between scheduled refits they are reused as they are, and a refit starts from them.
//! * `gains`, `proposals`: `gp_hedge`'s accumulated gains for EI, PI and LCB, and each one's
//!   proposal of the last call (encodings), which the next call rewards by the new model's mean.
//!
//! Everything else (the Cholesky factor) is rebuilt from the history: a restart costs one
//! factorisation, never a refit. A state with another `version` is ignored (the engine refits),
//! so an upgrade never fails an experiment; a value that is not this engine's state at all is
//! refused as `BadState`.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::kernel::Hyper;
use crate::engine::EngineError;

/// The state's format version.
pub(crate) const STATE_VERSION: u64 = 1;

/// The tag that marks this engine's state.
const ENGINE_TAG: &str = "bayesianoptimization";

/// Number of `gp_hedge` portfolio members (EI, PI, LCB).
pub(crate) const HEDGE_MEMBERS: usize = 3;

/// Hyperparameters as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedHyper {
    /// `log ℓ_d`.
    pub(crate) log_lengthscales: Vec<f64>,
    /// `log s`.
    pub(crate) log_signal: f64,
    /// `log(σ²_n − floor)`.
    pub(crate) log_noise: f64,
}

impl From<&Hyper> for SavedHyper {
    fn from(h: &Hyper) -> Self {
        SavedHyper {
            log_lengthscales: h.log_lengthscales.clone(),
            log_signal: h.log_signal,
            log_noise: h.log_noise,
        }
    }
}

impl From<&SavedHyper> for Hyper {
    fn from(h: &SavedHyper) -> Self {
        Hyper {
            log_lengthscales: h.log_lengthscales.clone(),
            log_signal: h.log_signal,
            log_noise: h.log_noise,
        }
    }
}

/// The saved state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SavedState {
    /// Always [`ENGINE_TAG`].
    pub(crate) engine: String,
    /// [`STATE_VERSION`].
    pub(crate) version: u64,
    /// Next index of the initial Sobol design; `None` before the first call.
    #[serde(default)]
    pub(crate) sobol_index: Option<u64>,
    /// The last fitted hyperparameters.
    #[serde(default)]
    pub(crate) hyper: Option<SavedHyper>,
    /// Number of model points at the last fit.
    #[serde(default)]
    pub(crate) fitted_at: usize,
    /// `gp_hedge` gains.
    #[serde(default)]
    pub(crate) gains: [f64; HEDGE_MEMBERS],
    /// `gp_hedge` proposals of the last call, as encodings.
    #[serde(default)]
    pub(crate) proposals: Vec<Vec<f64>>,
}

impl Default for SavedState {
    fn default() -> Self {
        SavedState {
            engine: ENGINE_TAG.to_owned(),
            version: STATE_VERSION,
            sobol_index: None,
            hyper: None,
            fitted_at: 0,
            gains: [0.0; HEDGE_MEMBERS],
            proposals: Vec::new(),
        }
    }
}

impl SavedState {
    /// Reads the request's state: default for none, JSON `null` or another version.
    pub(crate) fn read(state: Option<&Json>) -> Result<SavedState, EngineError> {
        let Some(state) = state.filter(|s| !s.is_null()) else {
            return Ok(SavedState::default());
        };
        let ours = state.get("engine").and_then(Json::as_str) == Some(ENGINE_TAG);
        if !ours {
            return Err(EngineError::BadState(format!(
                "expected the state of bayesianoptimization (an object with \"engine\": \
                 \"{ENGINE_TAG}\"), got {}",
                abbreviate(state)
            )));
        }
        if state.get("version").and_then(Json::as_u64) != Some(STATE_VERSION) {
            return Ok(SavedState::default());
        }
        let mut saved: SavedState = serde_json::from_value(state.clone()).map_err(|e| {
            EngineError::BadState(format!("bayesianoptimization state version 1: {e}"))
        })?;
        if !saved.gains.iter().all(|g| g.is_finite()) {
            saved.gains = [0.0; HEDGE_MEMBERS];
        }
        Ok(saved)
    }

    /// As JSON.
    pub(crate) fn to_json(&self) -> Json {
        serde_json::to_value(self).unwrap_or(Json::Null)
    }

    /// The saved hyperparameters, if they fit `dims` inputs and are finite.
    pub(crate) fn hyper_for(&self, dims: usize) -> Option<Hyper> {
        let hyper: Hyper = self.hyper.as_ref()?.into();
        (hyper.dims() == dims && hyper.is_finite()).then_some(hyper)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_and_refuses_strangers() {
        let state = SavedState {
            sobol_index: Some(12),
            hyper: Some(SavedHyper {
                log_lengthscales: vec![0.1, -0.2],
                log_signal: 0.3,
                log_noise: -9.0,
            }),
            fitted_at: 30,
            gains: [1.0, -2.0, 0.5],
            proposals: vec![vec![0.1, 0.2]],
            ..SavedState::default()
        };
        let json = state.to_json();
        let bytes = serde_json::to_vec(&json).unwrap();
        let back: Json = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(SavedState::read(Some(&back)).unwrap(), state);
        assert!(state.hyper_for(2).is_some());
        assert!(state.hyper_for(3).is_none());

        assert_eq!(SavedState::read(None).unwrap(), SavedState::default());
        assert_eq!(
            SavedState::read(Some(&Json::Null)).unwrap(),
            SavedState::default()
        );
        let other_version = serde_json::json!({ "engine": "bayesianoptimization", "version": 99 });
        assert_eq!(
            SavedState::read(Some(&other_version)).unwrap(),
            SavedState::default()
        );
        for bad in [
            serde_json::json!({ "index": 3 }),
            serde_json::json!([1, 2]),
            serde_json::json!({ "engine": "bayesianoptimization", "version": 1, "gains": "x" }),
        ] {
            assert!(matches!(
                SavedState::read(Some(&bad)),
                Err(EngineError::BadState(_))
            ));
        }
    }
}
