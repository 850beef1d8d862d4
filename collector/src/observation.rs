//! One observed metric value.

/// A metric value at a step, as collected from a trial.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// The metric's name.
    pub metric_name: String,
    /// The value; never NaN or infinite.
    pub value: f64,
    /// The step (epoch, iteration) it belongs to.
    pub step: i64,
    /// When it was observed.
    pub timestamp: jiff::Timestamp,
}
