//! Katib's validation rules. TODO(helper): implementation pending.
use super::types::Experiment;
use super::{CheckedExperiment, SpecError};

/// Checks a defaulted experiment and produces its typed form.
pub fn validate(experiment: Experiment) -> Result<CheckedExperiment, SpecError> {
    todo!("{experiment:?}")
}
