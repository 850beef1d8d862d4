//! Errors in a user's Experiment: each names the field path, the value, and what is accepted.

pub use sextant_suggestion::FieldError;

/// Why an Experiment document was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// Not YAML/JSON, or not shaped like an Experiment.
    #[error("{0}")]
    Syntax(String),
    /// One or more fields break a rule.
    #[error("invalid Experiment:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}
