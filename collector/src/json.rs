//! JSON-lines metrics files (Katib's File collector with `format: JSON`). TODO(helper).
use crate::Observation;

/// Parses a JSON-lines metrics file, keeping `metric_names`.
pub fn parse_json_lines(
    contents: &str,
    metric_names: &[String],
    now: jiff::Timestamp,
) -> Vec<Observation> {
    todo!("{contents} {metric_names:?} {now}")
}
