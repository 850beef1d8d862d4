//! Errors in a user's Experiment: each names the field path, the value, and what is accepted.

use std::fmt;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path from the document root, e.g. `spec.parameters[2].feasibleSpace.max`.
    pub path: String,
    /// The offending value as written (empty when the field is missing).
    pub value: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(
        path: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        FieldError {
            path: path.into(),
            value: value.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.path, self.message)
        } else {
            write!(f, "{}: {:?}: {}", self.path, self.value, self.message)
        }
    }
}

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
