//! The Experiment spec: Katib's types, parsing, defaulting, validation and trial-template rendering.
//!
//! User input becomes typed once, here: [`parse::parse_experiment`] reads YAML or JSON,
//! [`defaults::apply_defaults`] fills in Katib's defaults, and [`validate::validate`] checks every
//! rule and produces a [`CheckedExperiment`] that the controller works from without re-checking.

pub mod crd;
pub mod defaults;
pub mod error;
pub mod parse;
pub mod template;
pub mod types;
pub mod validate;

use std::collections::BTreeMap;

use sextant_algorithms::SearchSpace;

pub use error::{FieldError, SpecError};
pub use types::*;

/// Whether the objective is minimised or maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Lower is better.
    Minimize,
    /// Higher is better.
    Maximize,
}

/// How a metric's series becomes one value (Katib `metricStrategies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricStrategyKind {
    /// The smallest value reported.
    Min,
    /// The largest value reported.
    Max,
    /// The last value reported.
    Latest,
}

/// The typed objective.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// Minimise or maximise.
    pub direction: Direction,
    /// Stop when the objective reaches this.
    pub goal: Option<f64>,
    /// The objective metric.
    pub metric: String,
    /// Other metrics to collect.
    pub additional_metrics: Vec<String>,
    /// Strategy for every metric (objective and additional), after defaulting.
    pub strategies: BTreeMap<String, MetricStrategyKind>,
}

impl Objective {
    /// Every metric name to collect, the objective first.
    pub fn metric_names(&self) -> Vec<String> {
        std::iter::once(self.metric.clone())
            .chain(self.additional_metrics.iter().cloned())
            .collect()
    }
}

/// The namespace of an Experiment (and so of its trials) that names none: Kubernetes' default.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The typed metrics collector.
#[derive(Debug, Clone, PartialEq)]
pub enum Collector {
    /// Parse the primary container's stdout and stderr.
    StdOut {
        /// `metricsFormat` filters; empty means Katib's default regex.
        filters: Vec<String>,
    },
    /// Read a metrics file the trial writes.
    File {
        /// The file's path as written in the spec.
        path: String,
        /// TEXT or JSON.
        format: FileFormat,
        /// `metricsFormat` filters for TEXT; empty means Katib's default regex.
        filters: Vec<String>,
    },
    /// The trial sends its metrics itself to the server's push endpoint (Katib's `Push`): with the
    /// Python helper in examples/push, or through `sextant-collector`.
    Push,
    /// Collect nothing.
    None,
}

/// Format of a metrics file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Lines of `name=value`, matched by the filters.
    Text,
    /// One JSON object per line.
    Json,
}

/// The search algorithm, by Katib name and settings, already checked by the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Algorithm {
    /// Katib algorithm name.
    pub name: String,
    /// Settings as (name, value).
    pub settings: Vec<(String, String)>,
    /// `random_state`, if set.
    pub seed: Option<u64>,
}

/// An experiment that passed defaulting and validation: what the controller runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedExperiment {
    /// The experiment as written plus Katib's defaults (what is stored and shown).
    pub experiment: Experiment,
    /// `metadata.name`.
    pub name: String,
    /// The typed search space, in `spec.parameters` order.
    pub space: SearchSpace,
    /// The objective.
    pub objective: Objective,
    /// The search algorithm.
    pub algorithm: Algorithm,
    /// Trials at once (defaulted to 3).
    pub parallel_trial_count: u32,
    /// Total trials, `None` for no limit.
    pub max_trial_count: Option<u32>,
    /// Failed trials tolerated, `None` for no limit.
    pub max_failed_trial_count: Option<u32>,
    /// How metrics are collected.
    pub collector: Collector,
    /// The trial template (defaulted: success/failure conditions and primary pod labels by kind;
    /// `primaryContainerName` is required, as in Katib, and names a container of `trialSpec`).
    pub template: TrialTemplate,
    /// The early-stopping rule, if any.
    pub early_stopping: Option<sextant_algorithms::early_stopping::Rule>,
}

/// Parses, defaults and validates an Experiment document.
pub fn check(text: &str) -> Result<CheckedExperiment, SpecError> {
    let mut experiment = parse::parse_experiment(text)?;
    defaults::apply_defaults(&mut experiment);
    validate::validate(experiment)
}
