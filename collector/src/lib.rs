//! Metrics from a running trial: parsers for Katib's collector formats, and their delivery to a
//! Sextant server.
//!
//! This crate ships into trial pods (as the `sextant-collector` binary), so it stays small: regex,
//! JSON and time parsing, and a blocking http client (`ureq` with rustls, no async runtime).
//! Every value keeps a step (the line's `step=`/`epoch=` when it has one, otherwise the metric's
//! own sequence number) and a timestamp, so curves exist for early stopping.
//!
//! - Parsing: [`LineParser`] (Katib's StdOut collector and TEXT files), [`JsonLinesParser`]; input
//!   arrives through [`lines::LineSplitter`] (a child's output) or [`tail::FileTail`] (a growing
//!   file).
//! - Delivery: [`PushClient`] posts batches to `POST /v1/experiments/{e}/trials/{t}/metrics`;
//!   [`Shipper`] batches, retries, spills to disk past a memory bound, and flushes at the end.
//!
//! Three rules hold for every format, and live here so that TEXT and JSON agree on them:
//!
//! - **Values.** A value is kept only when its text parses to a finite `f64`. Katib stores the
//!   value string as written and fails later (or stores `NaN`); we refuse `nan`, `inf` and numbers
//!   that overflow to infinity at the edge, so no consumer ever sees a non-finite value.
//! - **Steps.** When a line (or JSON object) names its step, that is the step of every value on it.
//!   The keys are [`STEP_KEYS`], in precedence order: the finest, globally increasing counter wins
//!   (`global_step` before `step` before `iteration`/`iter` before `epoch`), because a curve is most
//!   useful at the finest resolution the trial reports. Only non-negative integers count:
//!   `epoch=0.5` (Hugging Face's fractional epochs) is not a step. Otherwise the step is the
//!   metric's own sequence number, 1-based: the n-th value of `loss` has step n.
//! - **Sequence numbers** count every kept value of a metric, including values whose step came from
//!   the line, so they stay the ordinal of the value whatever mix of lines a trial prints.
#![warn(missing_docs)]

mod backoff;
pub mod json;
pub mod lines;
pub mod observation;
pub mod push;
mod re2;
pub mod shipper;
mod spool;
pub mod tail;
pub mod text;

pub use json::{JsonLinesParser, JsonLinesReport, parse_json_lines, parse_json_lines_report};
pub use observation::Observation;
pub use push::{PushClient, PushError, PushTarget};
pub use shipper::{FlushReport, Shipper, ShipperConfig};
pub use text::{DEFAULT_METRICS_FORMAT, LineParser, parse_text};

/// Keys that carry the step of a line or JSON object, highest precedence first.
///
/// `global_step` is monotonic by definition; a bare `step` usually is too (TensorBoard, Lightning);
/// `iteration`/`iter` follow; `epoch` is the coarsest and comes last.
pub const STEP_KEYS: [&str; 5] = ["global_step", "step", "iteration", "iter", "epoch"];

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

/// The value of a metric's text, when it is a finite number (surrounding whitespace allowed).
pub(crate) fn parse_metric_value(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
}

/// The step named by `text`: a non-negative integer that fits an `i64`, nothing else.
pub(crate) fn parse_step(text: &str) -> Option<i64> {
    let text = text.trim();
    // `i64::from_str` accepts a leading `+`; a step is plain digits.
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok()
}

/// Per-metric sequence numbers: the n-th kept value of a metric gets n.
#[derive(Debug, Clone)]
pub(crate) struct MetricSequences {
    /// Wanted metric names, deduplicated, in the order given (the objective first, as in Katib).
    names: Vec<String>,
    /// How many values of `names[i]` were kept so far.
    counts: Vec<i64>,
}

impl MetricSequences {
    /// Counters for `metric_names`; duplicates and empty names are dropped (an empty name could
    /// only ever match an empty capture, which is never a metric).
    pub(crate) fn new(metric_names: &[String]) -> Self {
        let mut names: Vec<String> = Vec::with_capacity(metric_names.len());
        for name in metric_names {
            if !name.is_empty() && !names.contains(name) {
                names.push(name.clone());
            }
        }
        let counts = vec![0; names.len()];
        Self { names, counts }
    }

    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// The index of `name` among the wanted metrics.
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|wanted| wanted == name)
    }

    /// Counts one more value of metric `index` and returns its sequence number.
    pub(crate) fn next(&mut self, index: usize) -> i64 {
        match self.counts.get_mut(index) {
            Some(count) => {
                *count = count.saturating_add(1);
                *count
            }
            None => 0,
        }
    }

    /// Builds the observation of metric `index`, counting it.
    pub(crate) fn observe(
        &mut self,
        index: usize,
        value: f64,
        explicit_step: Option<i64>,
        timestamp: jiff::Timestamp,
    ) -> Observation {
        let sequence = self.next(index);
        Observation {
            metric_name: self.names.get(index).cloned().unwrap_or_default(),
            value,
            step: explicit_step.unwrap_or(sequence),
            timestamp,
        }
    }
}

/// `contents` without a leading UTF-8 byte-order mark, which some Windows editors and loggers add.
pub(crate) fn strip_bom(contents: &str) -> &str {
    contents.strip_prefix('\u{feff}').unwrap_or(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_must_be_finite_numbers() {
        assert_eq!(parse_metric_value(" 0.5 "), Some(0.5));
        assert_eq!(parse_metric_value("-7.53e-05"), Some(-7.53e-05));
        assert_eq!(parse_metric_value(".98"), Some(0.98));
        for refused in [
            "",
            "-",
            "nan",
            "NaN",
            "inf",
            "-infinity",
            "1e999",
            "abc",
            "1,5",
        ] {
            assert_eq!(parse_metric_value(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn steps_are_non_negative_integers() {
        assert_eq!(parse_step("0"), Some(0));
        assert_eq!(parse_step("42"), Some(42));
        for refused in [
            "",
            "-1",
            "+3",
            "1.5",
            "2.0",
            "1e3",
            "99999999999999999999",
            "x",
        ] {
            assert_eq!(parse_step(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn sequences_are_per_metric_and_one_based() {
        let mut sequences = MetricSequences::new(&["loss".into(), "acc".into(), "loss".into()]);
        assert_eq!(sequences.names(), ["loss", "acc"]);
        assert_eq!(sequences.next(0), 1);
        assert_eq!(sequences.next(0), 2);
        assert_eq!(sequences.next(1), 1);
        assert_eq!(sequences.next(7), 0, "an unknown index never panics");
    }
}
