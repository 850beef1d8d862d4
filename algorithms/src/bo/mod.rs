//! `bayesianoptimization`: Gaussian-process Bayesian optimisation. TODO(helper): implementation.

use crate::engine::{Engine, EngineError, SuggestRequest, Suggestions};

/// The acquisition function (Katib/scikit-optimize `acq_func`, plus `LogEI`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquisition {
    /// Choose among EI, PI and LCB by their past gains (`gp_hedge`).
    GpHedge,
    /// Expected improvement (`EI`).
    Ei,
    /// Probability of improvement (`PI`).
    Pi,
    /// Lower confidence bound (`LCB`).
    Lcb,
    /// Log expected improvement (`LogEI`), finite where EI underflows.
    LogEi,
}

/// How the acquisition is maximised (Katib/scikit-optimize `acq_optimizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquisitionOptimizer {
    /// Sobol candidates, then L-BFGS polish of the best ones.
    Auto,
    /// Candidates only.
    Sampling,
    /// Candidates, then L-BFGS polish (same as auto).
    Lbfgs,
}

/// Settings of the GP engine.
#[derive(Debug, Clone, PartialEq)]
pub struct BayesOptSettings {
    /// Points drawn from the scrambled Sobol sequence before the model is used (Katib default 10).
    pub n_initial_points: usize,
    /// The acquisition function.
    pub acquisition: Acquisition,
    /// How it is optimised.
    pub optimizer: AcquisitionOptimizer,
}

impl Default for BayesOptSettings {
    fn default() -> Self {
        BayesOptSettings {
            n_initial_points: 10,
            acquisition: Acquisition::LogEi,
            optimizer: AcquisitionOptimizer::Auto,
        }
    }
}

/// The GP engine.
#[derive(Debug, Default)]
pub struct BayesOptEngine {
    settings: BayesOptSettings,
}

impl BayesOptEngine {
    /// An engine with these settings.
    pub fn new(settings: BayesOptSettings) -> Self {
        BayesOptEngine { settings }
    }

    /// Its settings.
    pub fn settings(&self) -> &BayesOptSettings {
        &self.settings
    }
}

impl Engine for BayesOptEngine {
    fn name(&self) -> &'static str {
        "bayesianoptimization"
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, EngineError> {
        let _ = request;
        Err(EngineError::UnsupportedSpace(
            "bayesianoptimization is not implemented yet".into(),
        ))
    }
}
