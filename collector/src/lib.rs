//! Metrics from a running trial: parsers for Katib's collector formats.
//!
//! This crate ships into trial pods (as the sidecar binary, later), so it stays small: regex, JSON
//! and time parsing only. Every value keeps a step (the line's `step=`/`epoch=` when it has one,
//! otherwise the metric's own sequence number) and a timestamp, so curves exist for early stopping.
#![warn(missing_docs)]

pub mod json;
pub mod observation;
pub mod text;

pub use observation::Observation;
pub use text::{DEFAULT_METRICS_FORMAT, LineParser};

/// Why a collector setting or input is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CollectorError {
    /// A `metricsFormat` filter is not a valid regular expression, or lacks the two groups.
    #[error("metricsFormat filter {filter:?}: {message}")]
    BadFilter {
        /// The filter as written.
        filter: String,
        /// What is wrong and what is accepted.
        message: String,
    },
}
