//! JSON-lines metrics files (Katib's File collector with `format: JSON`).
//!
//! Katib (`pkg/metricscollector/v1beta1/file-metricscollector/file-metricscollector.go`,
//! `parseLogsInJsonFormat`) reads one JSON object per line, skips empty lines, and for each wanted
//! metric takes the key of that name when its value is a *string*; the key `timestamp`
//! (`common.TimeStampJsonKey`) holds an RFC 3339 string or unix seconds as a JSON number. Its own
//! test data looks like
//! `{"global_step": "0", "loss": "0.2208", "timestamp": 1638422847.28721, "trial": "0"}`.
//! Where we differ, and why:
//!
//! - **Numbers or strings.** Katib ignores `"loss": 0.22` (a JSON number), which is what
//!   `json.dumps` writes for a float, so users trip over it. We accept both, and keep a value only
//!   when it is a finite number.
//! - **A malformed line is skipped**, not fatal. Katib fails the whole file on the first bad line,
//!   and with it every metric the trial reported; a torn last line (the trial was killed mid-write)
//!   should not cost the rest. [`parse_json_lines_report`] counts what was skipped.
//! - **Fractional unix seconds are read as seconds.** Katib turns the digits after the decimal
//!   point into *nanoseconds* as written (`1638422847.28721` becomes `…:27.000028721Z`). We read the
//!   fraction as a fraction of a second. A JSON number is an `f64`, precise to about 0.2 µs at
//!   today's epoch, so it is rounded to the microsecond; a numeric string is read exactly (to the
//!   nanosecond). Values outside jiff's range (such as milliseconds passed as seconds) count as
//!   no timestamp.
//! - **No timestamp means `now`**, not Go's zero time.
//! - **Steps** come from the keys in [`crate::STEP_KEYS`] (exact spelling, first present and valid
//!   key wins) as a JSON integer or an integer string (Katib's examples write `"global_step": "0"`),
//!   else the metric's 1-based sequence number.
//!
//! Values are taken in the order of the wanted metrics (objective first), as Katib does, not in
//! the order of the keys on the line.
use serde_json::{Map, Value};

use crate::{MetricSequences, Observation, STEP_KEYS, parse_metric_value, parse_step, strip_bom};

/// The key that holds a line's timestamp (Katib's `common.TimeStampJsonKey`).
pub const TIMESTAMP_KEY: &str = "timestamp";

/// Nanoseconds in a second.
const NANOS_PER_SECOND: i128 = 1_000_000_000;
/// Digits of a decimal fraction of a second that fit in nanoseconds.
const NANOSECOND_DIGITS: usize = 9;
/// Microseconds in a second: the resolution we keep from `f64` unix seconds.
const MICROS_PER_SECOND: f64 = 1_000_000.0;

/// What a JSON-lines file held: the observations and how many lines were skipped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonLinesReport {
    /// The wanted metrics' values, in file order.
    pub observations: Vec<Observation>,
    /// Non-blank lines that were not a JSON object and were skipped.
    pub malformed_lines: usize,
    /// The 1-based number of the first such line, for a message that points at it.
    pub first_malformed_line: Option<usize>,
}

/// Turns JSON lines into observations of the wanted metrics, one line at a time.
///
/// Stateful like [`crate::LineParser`]: it numbers each metric's values, so use one per trial and
/// feed it the lines in order (the sidecar tails a file this way).
#[derive(Debug, Clone)]
pub struct JsonLinesParser {
    sequences: MetricSequences,
}

impl JsonLinesParser {
    /// A parser keeping only `metric_names`.
    pub fn new(metric_names: &[String]) -> Self {
        Self {
            sequences: MetricSequences::new(metric_names),
        }
    }

    /// The metrics this parser keeps, deduplicated, in the order given.
    pub fn metric_names(&self) -> &[String] {
        self.sequences.names()
    }

    /// Parses one line seen at `now`: `None` when it is neither blank nor a JSON object.
    pub fn parse_line(&mut self, line: &str, now: jiff::Timestamp) -> Option<Vec<Observation>> {
        let line = line.trim();
        if line.is_empty() {
            return Some(Vec::new());
        }
        let object: Map<String, Value> = serde_json::from_str(line).ok()?;
        let timestamp = object
            .get(TIMESTAMP_KEY)
            .and_then(json_timestamp)
            .unwrap_or(now);
        let step = STEP_KEYS
            .iter()
            .find_map(|key| object.get(*key).and_then(json_step));
        let mut observations = Vec::new();
        for index in 0..self.sequences.names().len() {
            let value = self
                .sequences
                .names()
                .get(index)
                .and_then(|name| object.get(name))
                .and_then(json_metric_value);
            if let Some(value) = value {
                observations.push(self.sequences.observe(index, value, step, timestamp));
            }
        }
        Some(observations)
    }
}

/// Parses a JSON-lines metrics file, keeping `metric_names`.
///
/// Malformed lines are skipped; [`parse_json_lines_report`] says how many there were.
pub fn parse_json_lines(
    contents: &str,
    metric_names: &[String],
    now: jiff::Timestamp,
) -> Vec<Observation> {
    parse_json_lines_report(contents, metric_names, now).observations
}

/// Parses a JSON-lines metrics file, keeping `metric_names`, and counts the skipped lines.
pub fn parse_json_lines_report(
    contents: &str,
    metric_names: &[String],
    now: jiff::Timestamp,
) -> JsonLinesReport {
    let mut parser = JsonLinesParser::new(metric_names);
    let mut report = JsonLinesReport::default();
    for (number, line) in (1..).zip(strip_bom(contents).lines()) {
        match parser.parse_line(line, now) {
            Some(observations) => report.observations.extend(observations),
            None => {
                report.malformed_lines += 1;
                report.first_malformed_line.get_or_insert(number);
            }
        }
    }
    report
}

/// A metric value: a finite JSON number or a string holding one.
fn json_metric_value(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64().filter(|value| value.is_finite()),
        Value::String(text) => parse_metric_value(text),
        _ => None,
    }
}

/// A step: a non-negative JSON integer or a string holding one.
fn json_step(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().filter(|step| *step >= 0),
        Value::String(text) => parse_step(text),
        _ => None,
    }
}

/// A timestamp: an RFC 3339 string, or unix seconds as a JSON number or numeric string.
fn json_timestamp(value: &Value) -> Option<jiff::Timestamp> {
    match value {
        Value::String(text) => {
            let text = text.trim();
            text.parse().ok().or_else(|| unix_seconds_from_text(text))
        }
        Value::Number(number) => match number.as_i64() {
            Some(seconds) => jiff::Timestamp::from_second(seconds).ok(),
            None => number.as_f64().and_then(unix_seconds_from_float),
        },
        _ => None,
    }
}

/// Unix seconds as an `f64`, rounded to the microsecond (all the precision an `f64` carries now).
fn unix_seconds_from_float(seconds: f64) -> Option<jiff::Timestamp> {
    if !seconds.is_finite() {
        return None;
    }
    // `as` saturates; jiff then refuses anything out of its range.
    let micros = (seconds * MICROS_PER_SECOND).round() as i64;
    jiff::Timestamp::from_microsecond(micros).ok()
}

/// Unix seconds written in decimal (`"1638422847.28721"`), read exactly to the nanosecond; other
/// numeric forms (exponents) go through `f64`.
fn unix_seconds_from_text(text: &str) -> Option<jiff::Timestamp> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let is_decimal = |digits: &str| digits.bytes().all(|byte| byte.is_ascii_digit());
    if !is_decimal(whole) || !is_decimal(fraction) {
        return parse_metric_value(text).and_then(unix_seconds_from_float);
    }
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let seconds: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    // Up to nine digits of fraction are nanoseconds; pad short fractions, drop the rest.
    let kept = fraction.get(..NANOSECOND_DIGITS).unwrap_or(fraction);
    let mut nanos: i128 = if kept.is_empty() {
        0
    } else {
        kept.parse().ok()?
    };
    for _ in kept.len()..NANOSECOND_DIGITS {
        nanos *= 10;
    }
    let total = seconds.checked_mul(NANOS_PER_SECOND)?.checked_add(nanos)?;
    jiff::Timestamp::from_nanosecond(if negative { -total } else { total }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn ts(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn triples(observations: &[Observation]) -> Vec<(&str, f64, i64)> {
        observations
            .iter()
            .map(|o| (o.metric_name.as_str(), o.value, o.step))
            .collect()
    }

    #[test]
    fn katib_test_data() {
        // From Katib's file-metricscollector_test.go, "Positive case for logs in JSON format".
        let contents = r#"{"checkpoint_path": "", "global_step": "0", "loss": "0.22082142531871796", "timestamp": 1638422847.28721, "trial": "0"}
{"acc": "0.9349666833877563", "checkpoint_path": "", "global_step": "0", "timestamp": 1638422847.287801, "trial": "0"}
{"checkpoint_path": "", "global_step": "1", "loss": "0.1414974331855774", "timestamp": "2021-12-02T14:27:50.000035161Z", "trial": "0"}
{"acc": "0.9586416482925415", "checkpoint_path": "", "global_step": "1", "timestamp": "2021-12-02T14:27:50.000037459Z", "trial": "0"}
{"checkpoint_path": "", "global_step": "2", "loss": "0.10683439671993256", "trial": "0"}"#;
        let report = parse_json_lines_report(contents, &names(&["acc", "loss"]), now());
        assert_eq!(report.malformed_lines, 0);
        assert_eq!(
            triples(&report.observations),
            [
                ("loss", 0.22082142531871796, 0),
                ("acc", 0.9349666833877563, 0),
                ("loss", 0.1414974331855774, 1),
                ("acc", 0.9586416482925415, 1),
                ("loss", 0.10683439671993256, 2),
            ]
        );
        let stamps: Vec<_> = report.observations.iter().map(|o| o.timestamp).collect();
        assert_eq!(
            stamps,
            [
                // Katib reads these two as …:27.000028721Z and …:27.000287801Z (see module docs).
                ts("2021-12-02T05:27:27.28721Z"),
                ts("2021-12-02T05:27:27.287801Z"),
                ts("2021-12-02T14:27:50.000035161Z"),
                ts("2021-12-02T14:27:50.000037459Z"),
                now(),
            ]
        );
    }

    #[test]
    fn values_may_be_numbers_or_numeric_strings() {
        let contents = r#"{"loss": 0.5, "acc": "0.75"}
{"loss": "-1.5e-3", "acc": 1}
{"loss": " 2 ", "acc": true}
{"loss": null, "acc": [1]}
{"loss": {"value": 1}, "acc": "high"}"#;
        let got = parse_json_lines(contents, &names(&["loss", "acc"]), now());
        assert_eq!(
            triples(&got),
            [
                ("loss", 0.5, 1),
                ("acc", 0.75, 1),
                ("loss", -1.5e-3, 2),
                ("acc", 1.0, 2),
                ("loss", 2.0, 3),
            ]
        );
    }

    #[test]
    fn non_finite_values_are_refused() {
        let contents = r#"{"loss": "nan"}
{"loss": "NaN"}
{"loss": "inf"}
{"loss": "-Infinity"}
{"loss": "1e999"}
{"loss": 1e999}"#;
        let report = parse_json_lines_report(contents, &names(&["loss"]), now());
        assert!(report.observations.is_empty());
        // serde_json refuses an out-of-range number literal: that line is malformed.
        assert_eq!(report.malformed_lines, 1);
        assert_eq!(report.first_malformed_line, Some(6));
    }

    #[test]
    fn unwanted_metrics_are_dropped_and_order_follows_metric_names() {
        let got = parse_json_lines(
            r#"{"acc": 0.9, "lr": 0.1, "loss": 0.3}"#,
            &names(&["loss", "acc"]),
            now(),
        );
        assert_eq!(triples(&got), [("loss", 0.3, 1), ("acc", 0.9, 1)]);
    }

    #[test]
    fn malformed_and_blank_lines_are_skipped() {
        let contents = "\u{feff}{\"loss\": 1}\n\
            \n   \n\
            \"checkpoint_path\": \"\", \"loss\": \"0.2\"\n\
            [1, 2]\n\
            42\n\
            {\"loss\": 2}\r\n\
            {\"loss\": \"3\", \"trial\": \"0";
        let report = parse_json_lines_report(contents, &names(&["loss"]), now());
        assert_eq!(
            triples(&report.observations),
            [("loss", 1.0, 1), ("loss", 2.0, 2)]
        );
        assert_eq!(report.malformed_lines, 4);
        assert_eq!(report.first_malformed_line, Some(4));
        assert!(parse_json_lines("", &names(&["loss"]), now()).is_empty());
    }

    #[test]
    fn timestamp_forms() {
        let cases = [
            (
                r#""2021-12-02T14:27:50.000035161Z""#,
                ts("2021-12-02T14:27:50.000035161Z"),
            ),
            (r#""2021-12-02T14:27:50+09:00""#, ts("2021-12-02T05:27:50Z")),
            ("1638422847", ts("2021-12-02T05:27:27Z")),
            ("1638422847.5", ts("2021-12-02T05:27:27.5Z")),
            (r#""1638422847""#, ts("2021-12-02T05:27:27Z")),
            (
                r#""1638422847.123456789""#,
                ts("2021-12-02T05:27:27.123456789Z"),
            ),
            (
                r#""1638422847.1234567891""#,
                ts("2021-12-02T05:27:27.123456789Z"),
            ),
            (r#""1.638422847e9""#, ts("2021-12-02T05:27:27Z")),
            (r#"".5""#, ts("1970-01-01T00:00:00.5Z")),
            ("-1", ts("1969-12-31T23:59:59Z")),
            (r#""-1.5""#, ts("1969-12-31T23:59:58.5Z")),
        ];
        for (timestamp, expected) in cases {
            let line = format!(r#"{{"loss": 1, "timestamp": {timestamp}}}"#);
            let got = parse_json_lines(&line, &names(&["loss"]), now());
            assert_eq!(got[0].timestamp, expected, "{timestamp}");
        }
        for timestamp in [
            r#""invalid""#,
            r#""""#,
            r#"".""#,
            r#""-""#,
            "null",
            "true",
            "[1]",
            "1638422847123", // milliseconds: year 53000, out of range
            r#""99999999999999999999999999999999999""#,
            "1e300",
        ] {
            let line = format!(r#"{{"loss": 1, "timestamp": {timestamp}}}"#);
            let got = parse_json_lines(&line, &names(&["loss"]), now());
            assert_eq!(got[0].timestamp, now(), "{timestamp}");
        }
    }

    #[test]
    fn steps_from_keys_or_sequence_numbers() {
        let contents = r#"{"loss": 1}
{"loss": 2, "epoch": 4}
{"loss": 3, "epoch": 5, "step": "70"}
{"loss": 4, "epoch": 6, "step": 80, "global_step": 1000}
{"loss": 5, "iter": 9}
{"loss": 6, "epoch": 0.5}
{"loss": 7, "step": -1, "epoch": 7}
{"loss": 8, "step": "x"}
{"loss": 9}"#;
        let got = parse_json_lines(contents, &names(&["loss"]), now());
        let steps: Vec<i64> = got.iter().map(|o| o.step).collect();
        assert_eq!(steps, [1, 4, 70, 1000, 9, 6, 7, 8, 9]);
    }

    #[test]
    fn streaming_parser_keeps_sequences_across_lines() {
        let mut parser = JsonLinesParser::new(&names(&["loss", "loss", ""]));
        assert_eq!(parser.metric_names(), ["loss"]);
        assert_eq!(
            parser.parse_line(r#"{"loss": 1}"#, now()).unwrap()[0].step,
            1
        );
        assert_eq!(parser.parse_line("", now()), Some(Vec::new()));
        assert_eq!(parser.parse_line("{", now()), None);
        assert_eq!(
            parser.parse_line(r#"{"loss": 2}"#, now()).unwrap()[0].step,
            2
        );
    }
}
