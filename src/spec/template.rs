//! Trial-template rendering and the primary container. TODO(helper): implementation pending.
use super::error::FieldError;
use super::types::{ParameterAssignment, TrialTemplate};

/// What the local runtime needs of the primary container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PrimaryContainer {
    /// Container name.
    pub name: String,
    /// The image (not used locally).
    pub image: Option<String>,
    /// `command`.
    pub command: Vec<String>,
    /// `args`.
    pub args: Vec<String>,
    /// `env` entries with plain `value`s.
    pub env: Vec<(String, String)>,
    /// `workingDir`.
    pub working_dir: Option<String>,
    /// `resources.limits["nvidia.com/gpu"]` (0 when absent).
    pub gpus: u32,
}

/// The trial's identity, for `${trialSpec.*}` placeholders.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrialIdentity {
    /// Trial name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// Renders the trial template for one trial: every `${trialParameters.X}` replaced.
pub fn render_trial_spec(
    template: &TrialTemplate,
    assignments: &[ParameterAssignment],
    trial: &TrialIdentity,
) -> Result<serde_json::Value, FieldError> {
    todo!("{template:?} {assignments:?} {trial:?}")
}

/// Finds the primary container in a rendered workload.
pub fn primary_container(
    rendered: &serde_json::Value,
    name: &str,
) -> Result<PrimaryContainer, FieldError> {
    todo!("{rendered} {name}")
}
