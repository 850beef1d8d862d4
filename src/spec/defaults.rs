//! Katib's defaulting. TODO(helper): implementation pending.
use super::types::Experiment;

/// Fills in Katib's defaults (parallelTrialCount 3, resumePolicy Never, ...).
pub fn apply_defaults(experiment: &mut Experiment) {
    let _ = experiment;
}
