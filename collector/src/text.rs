//! Line-oriented metrics: Katib's StdOut collector and TEXT files. TODO(helper): implementation.
use crate::{CollectorError, Observation};

/// Katib's default metrics filter.
pub const DEFAULT_METRICS_FORMAT: &str = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)";

/// Turns lines of output into observations of the wanted metrics.
#[derive(Debug, Clone)]
pub struct LineParser {}

impl LineParser {
    /// A parser keeping only `metric_names`, with `filters` (Katib `metricsFormat`; empty = default).
    pub fn new(metric_names: &[String], filters: &[String]) -> Result<Self, CollectorError> {
        todo!("{metric_names:?} {filters:?}")
    }

    /// Parses one line seen at `now`.
    pub fn parse_line(&mut self, line: &str, now: jiff::Timestamp) -> Vec<Observation> {
        todo!("{line} {now}")
    }
}
