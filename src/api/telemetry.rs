//! Prometheus metrics of the server: experiments and trials by state (read from the store when
//! scraped), suggestion latency, ingested points, rejected requests.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::{ExperimentPhase, Store, StoreError, TrialState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectedLabel {
    code: String,
}

/// The server's metrics.
#[derive(Clone)]
pub struct Telemetry {
    registry: Arc<Registry>,
    experiments: Family<PhaseLabel, Gauge>,
    trials: Family<StateLabel, Gauge>,
    suggestion_seconds: Histogram,
    ingested_points: Counter,
    rejected: Family<RejectedLabel, Counter>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Registers every metric.
    pub fn new() -> Telemetry {
        let mut registry = Registry::default();
        let experiments = Family::<PhaseLabel, Gauge>::default();
        let trials = Family::<StateLabel, Gauge>::default();
        // 0.25 ms to about 8 s.
        let suggestion_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 16));
        let ingested_points = Counter::default();
        let rejected = Family::<RejectedLabel, Counter>::default();
        registry.register(
            "sextant_experiments",
            "Experiments by phase",
            experiments.clone(),
        );
        registry.register("sextant_trials", "Trials by state", trials.clone());
        registry.register(
            "sextant_suggestion_duration_seconds",
            "Time to answer POST /v1/suggestions",
            suggestion_seconds.clone(),
        );
        registry.register(
            "sextant_ingested_points",
            "Metric points acknowledged (durable) by the push endpoint",
            ingested_points.clone(),
        );
        registry.register(
            "sextant_rejected_requests",
            "Requests answered with an error, by error code",
            rejected.clone(),
        );
        Telemetry {
            registry: Arc::new(registry),
            experiments,
            trials,
            suggestion_seconds,
            ingested_points,
            rejected,
        }
    }

    /// A suggestion call took this long.
    pub fn observe_suggestion(&self, took: Duration) {
        self.suggestion_seconds.observe(took.as_secs_f64());
    }

    /// Points were acknowledged.
    pub fn ingested(&self, points: usize) {
        self.ingested_points.inc_by(points as u64);
    }

    /// A request was answered with an error.
    pub fn rejected(&self, code: &str) {
        self.rejected
            .get_or_create(&RejectedLabel {
                code: code.to_string(),
            })
            .inc();
    }

    /// The text exposition, with the experiment and trial gauges read from the store now.
    pub fn render(&self, store: &Store) -> Result<String, StoreError> {
        let mut phases = [0i64; 5];
        let mut states = [0i64; TrialState::ALL.len()];
        for experiment in store.experiments()? {
            phases[phase_index(experiment.phase)] += 1;
            for trial in store.trial_summaries(&experiment.name)? {
                if let Some(i) = TrialState::ALL.iter().position(|s| *s == trial.state) {
                    states[i] += 1;
                }
            }
        }
        for (phase, count) in PHASES.iter().zip(phases) {
            self.experiments
                .get_or_create(&PhaseLabel {
                    phase: format!("{phase:?}"),
                })
                .set(count);
        }
        for (state, count) in TrialState::ALL.iter().zip(states) {
            self.trials
                .get_or_create(&StateLabel {
                    state: state.as_str().to_string(),
                })
                .set(count);
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(text)
    }
}

const PHASES: [ExperimentPhase; 5] = [
    ExperimentPhase::Created,
    ExperimentPhase::Running,
    ExperimentPhase::Succeeded,
    ExperimentPhase::Failed,
    ExperimentPhase::Stopped,
];

fn phase_index(phase: ExperimentPhase) -> usize {
    PHASES.iter().position(|p| *p == phase).unwrap_or_default()
}
