//! Line-oriented metrics: Katib's StdOut collector and TEXT files.
//!
//! Katib's StdOut collector redirects the training container's output into a file and parses it
//! with the same code as a File collector in `TEXT` format
//! (`pkg/metricscollector/v1beta1/file-metricscollector/file-metricscollector.go`,
//! `parseLogsInTextFormat`). We follow its semantics and note where we deliberately differ:
//!
//! - **Filters.** Each `metricsFormat` entry is a regular expression; every match on a line is a
//!   metric, capture group 1 (trimmed) its name and group 2 (trimmed) its value. Extra groups are
//!   ignored (Katib's own default has four). With no filters, [`DEFAULT_METRICS_FORMAT`] is used.
//!   Filters run in the order given, each over the whole line, so two overlapping filters report a
//!   value twice, as Katib does.
//! - **Which filters are accepted.** Katib's admission webhook
//!   (`pkg/webhook/v1beta1/experiment/validator/validator.go`, `validateMetricsCollector`) requires
//!   that a filter compiles and that its *text* matches `.*\(.*\).*\(.*\).*`, i.e. shows two pairs
//!   of parentheses. That textual test lets through filters such as `(?:a)=(?:b)` or `\(a\)\(b\)`
//!   that have no capture groups and then silently collect nothing. We count real capture groups
//!   instead: at least two, or [`CollectorError::BadFilter`].
//! - **Regex dialect.** Katib compiles filters with Go's RE2; the `regex` crate implements the
//!   same dialect (leftmost-first, no look-around, no backreferences), except for a few literals
//!   that Go accepts and `regex` refuses, most importantly the `{` of Katib's documented
//!   `{metricName: …}` filter. Filters go through a small rewrite first (`re2.rs`) so that they
//!   mean what they mean in Go. One difference stays: `\w` and `\d` are Unicode-aware here and
//!   ASCII-only in Go, which only matters for non-ASCII names, which Katib could not collect.
//! - **Only wanted metrics.** Katib keeps the objective and the additional metrics and skips any
//!   line that does not contain one of their names as a substring before running the filters. The
//!   pre-check is exact (a kept name is a trimmed substring of the line), so we do the same; it
//!   makes the common line (progress bars, framework chatter) cost one substring search per metric.
//! - **Values.** Katib stores the matched text; we keep it only when it is a finite number (see the
//!   crate docs). The default filter can match an empty value (`lr=` or `name = abc`): skipped.
//! - **Timestamps.** Katib reads the line's first space-separated token as RFC 3339 (Go's
//!   `RFC3339Nano` layout) and otherwise stores the zero time. We do the same with a tab as
//!   another separator, and use `now` instead of the zero time, which would put the value at
//!   0001-01-01.
//! - **Steps.** Katib keeps no step; we read one from the line (`global_step=`, `step=`,
//!   `iteration=`, `iter=`, `epoch=`, case-insensitive, precedence as in [`crate::STEP_KEYS`]),
//!   else use the metric's sequence number. A key counts only as a whole name (`train_step=` is
//!   not `step=`) and only with a non-negative integer value.
//!
//! Parsing allocates nothing per line beyond the returned observations: capture positions live in
//! the parser and are reused, and a line's step and timestamp are only worked out once a wanted
//! value has been found on it.
use std::sync::LazyLock;

use regex::{CaptureLocations, Regex};

use crate::{CollectorError, MetricSequences, Observation, parse_metric_value, parse_step};

/// Katib's default metrics filter.
pub const DEFAULT_METRICS_FORMAT: &str = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)";

/// Capture group of a filter that holds the metric name (Katib: `kevList[1]`).
const NAME_GROUP: usize = 1;
/// Capture group of a filter that holds the value (Katib: `kevList[2]`).
const VALUE_GROUP: usize = 2;
/// Capture groups a filter must have, not counting the implicit group 0 of the whole match.
pub const REQUIRED_FILTER_GROUPS: usize = 2;

/// What a `metricsFormat` filter must look like; the tail of every [`CollectorError::BadFilter`].
const ACCEPTED_FILTERS: &str = "accepted: a regular expression (RE2 syntax as in Katib: no \
     look-around, no backreferences) with at least two capture groups, group 1 matching the metric \
     name and group 2 its value, e.g. Katib's default \
     `([\\w|-]+)\\s*=\\s*([+-]?\\d*(\\.\\d+)?([Ee][+-]?\\d+)?)` or \
     `{metricName: ([\\w|-]+), metricValue: ((-?\\d+)(\\.\\d+)?)}`";

/// Finds `key=N` step markers; group 1 is the key, group 2 the number as written (decimals and
/// exponents included, so that `epoch=1.5` is seen whole and refused rather than read as 1).
/// The key must start the line or follow a character that cannot be part of a metric name in
/// Katib's default filter (`[\w|-]`), so `train_step=3` and `val-epoch=3` are not steps.
const STEP_PATTERN: &str = r"(?i)(?:^|[^\w|-])(global_step|iteration|iter|step|epoch)\s*=\s*([+-]?\d+(?:\.\d*)?(?:e[+-]?\d+)?)";
/// Capture group of [`STEP_PATTERN`] holding the key.
const STEP_KEY_GROUP: usize = 1;
/// Capture group of [`STEP_PATTERN`] holding the number.
const STEP_VALUE_GROUP: usize = 2;

static STEP_REGEX: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern, compiled by every test run; it cannot fail at runtime.
    Regex::new(STEP_PATTERN).expect("STEP_PATTERN is a valid regular expression")
});

/// Length of the shortest RFC 3339 timestamp, `2024-03-04T17:55:08Z`.
const MIN_RFC3339_LEN: usize = 20;

/// One compiled `metricsFormat` filter with reusable capture positions.
#[derive(Debug, Clone)]
struct Filter {
    regex: Regex,
    locations: CaptureLocations,
}

/// Turns lines of output into observations of the wanted metrics.
///
/// Stateful: it numbers each metric's values (see the crate docs on steps), so use one parser per
/// trial and feed it the trial's lines in order.
#[derive(Debug, Clone)]
pub struct LineParser {
    filters: Vec<Filter>,
    sequences: MetricSequences,
    step_locations: CaptureLocations,
}

impl LineParser {
    /// A parser keeping only `metric_names`, with `filters` (Katib `metricsFormat`; empty = default).
    pub fn new(metric_names: &[String], filters: &[String]) -> Result<Self, CollectorError> {
        let filters = if filters.is_empty() {
            vec![compile_filter(DEFAULT_METRICS_FORMAT)?]
        } else {
            filters
                .iter()
                .map(|filter| compile_filter(filter))
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Self {
            filters,
            sequences: MetricSequences::new(metric_names),
            step_locations: STEP_REGEX.capture_locations(),
        })
    }

    /// The metrics this parser keeps, deduplicated, in the order given.
    pub fn metric_names(&self) -> &[String] {
        self.sequences.names()
    }

    /// Parses one line seen at `now`.
    pub fn parse_line(&mut self, line: &str, now: jiff::Timestamp) -> Vec<Observation> {
        let mut observations = Vec::new();
        self.parse_line_into(line, now, &mut observations);
        observations
    }

    /// Parses one line seen at `now`, appending its observations to `out`; returns how many.
    ///
    /// For callers that batch observations (the sidecar) and want no allocation per line.
    pub fn parse_line_into(
        &mut self,
        line: &str,
        now: jiff::Timestamp,
        out: &mut Vec<Observation>,
    ) -> usize {
        let before = out.len();
        // Katib's pre-check: a line without any wanted name cannot yield a wanted metric.
        if !self
            .sequences
            .names()
            .iter()
            .any(|name| line.contains(name.as_str()))
        {
            return 0;
        }
        // Worked out on the first wanted value only: (step from the line, timestamp).
        let mut line_context: Option<(Option<i64>, jiff::Timestamp)> = None;
        for filter in &mut self.filters {
            let mut at = 0;
            while at <= line.len() {
                let Some(found) = filter
                    .regex
                    .captures_read_at(&mut filter.locations, line, at)
                else {
                    break;
                };
                at = next_search_start(line, found.start(), found.end());
                let Some(index) = group(line, &filter.locations, NAME_GROUP)
                    .and_then(|name| self.sequences.index_of(name.trim()))
                else {
                    continue;
                };
                let Some(value) =
                    group(line, &filter.locations, VALUE_GROUP).and_then(parse_metric_value)
                else {
                    continue;
                };
                let step_locations = &mut self.step_locations;
                let (step, timestamp) = *line_context.get_or_insert_with(|| {
                    (
                        line_step(line, step_locations),
                        leading_timestamp(line).unwrap_or(now),
                    )
                });
                out.push(self.sequences.observe(index, value, step, timestamp));
            }
        }
        out.len() - before
    }
}

/// Parses a TEXT metrics file (or captured stdout) line by line.
///
/// Lines end at `\n` or `\r\n`; a leading byte-order mark is ignored.
pub fn parse_text(
    contents: &str,
    parser: &mut LineParser,
    now: jiff::Timestamp,
) -> Vec<Observation> {
    let mut observations = Vec::new();
    for line in crate::strip_bom(contents).lines() {
        parser.parse_line_into(line, now, &mut observations);
    }
    observations
}

/// Compiles one `metricsFormat` filter, checking that it has the groups Katib reads.
fn compile_filter(filter: &str) -> Result<Filter, CollectorError> {
    let bad = |message: String| CollectorError::BadFilter {
        filter: filter.to_owned(),
        message,
    };
    let regex = Regex::new(&crate::re2::to_rust_syntax(filter))
        .map_err(|error| bad(format!("does not compile ({error}); {ACCEPTED_FILTERS}")))?;
    // `captures_len` counts the implicit group 0 (the whole match).
    let groups = regex.captures_len().saturating_sub(1);
    if groups < REQUIRED_FILTER_GROUPS {
        return Err(bad(format!(
            "has {groups} capture group(s), needs at least {REQUIRED_FILTER_GROUPS}; \
             {ACCEPTED_FILTERS}"
        )));
    }
    let locations = regex.capture_locations();
    Ok(Filter { regex, locations })
}

/// The text of capture `index` of the last match, if it took part in the match.
fn group<'l>(line: &'l str, locations: &CaptureLocations, index: usize) -> Option<&'l str> {
    locations
        .get(index)
        .and_then(|(start, end)| line.get(start..end))
}

/// Where to look for the next match after one at `start..end`: its end, or one character further
/// when it was empty, so that the search always moves forward.
fn next_search_start(line: &str, start: usize, end: usize) -> usize {
    if end > start {
        return end;
    }
    let next_char_len = line
        .get(end..)
        .and_then(|rest| rest.chars().next())
        .map_or(1, char::len_utf8);
    end + next_char_len
}

/// The step a line names, by the precedence of [`crate::STEP_KEYS`]; the first occurrence wins
/// among equal keys.
fn line_step(line: &str, locations: &mut CaptureLocations) -> Option<i64> {
    let mut best: Option<(usize, i64)> = None;
    let mut at = 0;
    while at <= line.len() {
        let Some(found) = STEP_REGEX.captures_read_at(locations, line, at) else {
            break;
        };
        at = next_search_start(line, found.start(), found.end());
        let Some(rank) = group(line, locations, STEP_KEY_GROUP).and_then(|key| {
            crate::STEP_KEYS
                .iter()
                .position(|step_key| step_key.eq_ignore_ascii_case(key))
        }) else {
            continue;
        };
        let Some(step) = group(line, locations, STEP_VALUE_GROUP).and_then(parse_step) else {
            continue;
        };
        if best.is_none_or(|(best_rank, _)| rank < best_rank) {
            best = Some((rank, step));
        }
    }
    best.map(|(_, step)| step)
}

/// The RFC 3339 timestamp that starts `line`, if any (Katib: the first space-separated token).
fn leading_timestamp(line: &str) -> Option<jiff::Timestamp> {
    let token = line.split([' ', '\t']).next()?;
    if !looks_like_rfc3339(token) {
        return None;
    }
    token.parse().ok()
}

/// A cheap shape test (`dddd-dd-ddT…`) so that ordinary lines never reach the full parser.
fn looks_like_rfc3339(token: &str) -> bool {
    if token.len() < MIN_RFC3339_LEN {
        return false;
    }
    matches!(
        token.as_bytes(),
        [y0, y1, y2, y3, b'-', _, _, b'-', _, _, b'T' | b't', ..]
            if [y0, y1, y2, y3].iter().all(|digit| digit.is_ascii_digit())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KATIB_JSONISH_FILTER: &str = r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}";

    fn now() -> jiff::Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn default_parser(metrics: &[&str]) -> LineParser {
        LineParser::new(&names(metrics), &[]).unwrap()
    }

    /// (name, value, step) of each observation.
    fn triples(observations: &[Observation]) -> Vec<(&str, f64, i64)> {
        observations
            .iter()
            .map(|o| (o.metric_name.as_str(), o.value, o.step))
            .collect()
    }

    #[test]
    fn default_filter_reads_katib_style_lines() {
        let mut parser = default_parser(&["loss", "accuracy"]);
        let got = parser.parse_line("epoch 3: loss=0.31 accuracy=0.92", now());
        assert_eq!(triples(&got), [("loss", 0.31, 1), ("accuracy", 0.92, 1)]);
        assert!(got.iter().all(|o| o.timestamp == now()));
        // Spaces around `=` are allowed by the default filter; a `:` is not.
        let got = parser.parse_line("loss = 0.25, accuracy: 0.95", now());
        assert_eq!(triples(&got), [("loss", 0.25, 2)]);
    }

    #[test]
    fn default_filter_reads_katib_documented_number_forms() {
        // The examples in Katib's const.go comment on DefaultFilter.
        let mut parser = default_parser(&["Score", "accuracy"]);
        let got = parser.parse_line(
            "accuracy=.98 Score=-7.53e-05 Score=-7.53e+05 Score=1E0 Score=1.23E10 Score=+2",
            now(),
        );
        let values: Vec<f64> = got.iter().map(|o| o.value).collect();
        assert_eq!(values, [0.98, -7.53e-05, -7.53e+05, 1.0, 1.23e10, 2.0]);
    }

    #[test]
    fn names_may_contain_dashes_and_pipes() {
        let mut parser = default_parser(&["val-loss", "top|1"]);
        let got = parser.parse_line("val-loss=1.5 top|1=0.7 val_loss=9", now());
        assert_eq!(triples(&got), [("val-loss", 1.5, 1), ("top|1", 0.7, 1)]);
    }

    #[test]
    fn unwanted_metrics_and_empty_values_are_dropped() {
        let mut parser = default_parser(&["loss"]);
        assert!(parser.parse_line("accuracy=0.9 lr=0.01", now()).is_empty());
        // `loss` appears, but only as part of other names or with no number after `=`.
        assert!(
            parser
                .parse_line("val_loss=0.2 loss= name=loss", now())
                .is_empty()
        );
        assert!(parser.parse_line("", now()).is_empty());
        assert_eq!(parser.parse_line("loss=0.5", now())[0].step, 1);
    }

    #[test]
    fn katib_custom_filter_reads_several_metrics_per_line() {
        // Katib's TEXT test data (file-metricscollector_test.go), timestamps included.
        let contents = "2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 0.8078};{metricName: loss, metricValue: 0.5183}\n\
            2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: -0.4759}\n\
            {metricName: loss, metricValue: 0.8671}\n\
            2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: .333}\n\
            2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 888.}\n";
        let mut parser = LineParser::new(
            &names(&["accuracy", "loss"]),
            &[KATIB_JSONISH_FILTER.into()],
        )
        .unwrap();
        let got = parse_text(contents, &mut parser, now());
        assert_eq!(
            triples(&got),
            [
                ("accuracy", 0.8078, 1),
                ("loss", 0.5183, 1),
                ("accuracy", -0.4759, 2),
                ("loss", 0.8671, 2),
            ]
        );
        let stamped: jiff::Timestamp = "2024-03-04T17:55:08Z".parse().unwrap();
        let stamps: Vec<_> = got.iter().map(|o| o.timestamp).collect();
        assert_eq!(stamps, [stamped, stamped, stamped, now()]);
    }

    #[test]
    fn several_filters_all_apply() {
        let filters = [r"(\w+)=(\S+)".to_owned(), r"(\w+): (\d+)".to_owned()];
        let mut parser = LineParser::new(&names(&["loss", "acc"]), &filters).unwrap();
        let got = parser.parse_line("loss=0.4 acc: 1", now());
        assert_eq!(triples(&got), [("loss", 0.4, 1), ("acc", 1.0, 1)]);
    }

    #[test]
    fn filters_must_compile() {
        let err = LineParser::new(&names(&["loss"]), &["(\\w+=(\\d+)".into()]).unwrap_err();
        let CollectorError::BadFilter { filter, message } = &err;
        assert_eq!(filter, "(\\w+=(\\d+)");
        assert!(message.contains("does not compile"), "{message}");
        assert!(message.contains("at least two capture groups"), "{message}");
        // Look-around is not RE2.
        assert!(LineParser::new(&names(&["loss"]), &[r"(?<=x)(\w+)=(\d+)".into()]).is_err());
    }

    #[test]
    fn filters_need_two_capture_groups() {
        for filter in [
            r"(\w+)=\d+",       // one group
            r"(?:\w+)=(?:\d+)", // Katib's textual check passes, but no group is captured
            r"\(a\)\(b\)",      // likewise: escaped parentheses
            "",                 // Katib's webhook refuses this too
        ] {
            let err = LineParser::new(&names(&["loss"]), &[filter.into()]).unwrap_err();
            let CollectorError::BadFilter { message, .. } = &err;
            assert!(
                message.contains("capture group(s)"),
                "{filter:?}: {message}"
            );
        }
        // Two groups suffice; more are fine (Katib's own filters have four).
        for filter in [r"(\w+)=(\d+)", KATIB_JSONISH_FILTER, DEFAULT_METRICS_FORMAT] {
            assert!(
                LineParser::new(&names(&["loss"]), &[filter.into()]).is_ok(),
                "{filter}"
            );
        }
        // One bad filter spoils the list.
        let filters = [r"(\w+)=(\d+)".to_owned(), r"\w+".to_owned()];
        assert!(LineParser::new(&names(&["loss"]), &filters).is_err());
    }

    #[test]
    fn a_missing_value_group_is_skipped() {
        let mut parser = LineParser::new(&names(&["loss"]), &[r"(\w+)=(\d+)?".into()]).unwrap();
        assert!(parser.parse_line("loss=x", now()).is_empty());
        assert_eq!(
            triples(&parser.parse_line("loss=3", now())),
            [("loss", 3.0, 1)]
        );
    }

    #[test]
    fn explicit_steps_and_sequence_numbers() {
        let mut parser = default_parser(&["loss", "acc"]);
        let lines = [
            "loss=0.9",                                // loss #1, no step on the line
            "epoch=5 loss=0.8 acc=0.5",                // both at 5
            "loss=0.7",                                // loss #3
            "Epoch = 7, step=120 loss=0.6", // step beats epoch; keys are case-insensitive
            "iter=3 epoch=8 global_step=999 loss=0.5", // global_step beats everything
            "iteration=42 acc=0.6",         // acc #2 at 42
            "acc=0.7",                      // acc #3
        ];
        let got: Vec<Observation> = lines
            .iter()
            .flat_map(|line| parser.parse_line(line, now()))
            .collect();
        assert_eq!(
            triples(&got),
            [
                ("loss", 0.9, 1),
                ("loss", 0.8, 5),
                ("acc", 0.5, 5),
                ("loss", 0.7, 3),
                ("loss", 0.6, 120),
                ("loss", 0.5, 999),
                ("acc", 0.6, 42),
                ("acc", 0.7, 3),
            ]
        );
    }

    #[test]
    fn only_whole_integer_step_keys_count() {
        let mut parser = default_parser(&["loss"]);
        for (i, line) in [
            "train_step=50 loss=1", // a different name
            "val-epoch=4 loss=1",   // a different name in Katib's name syntax
            "epoch=0.5 loss=1",     // fractional epochs are not steps
            "step=-3 loss=1",       // negative
            "step=1e3 loss=1",      // not an integer as written
            "epochs=2 loss=1",      // not the key
        ]
        .into_iter()
        .enumerate()
        {
            let got = parser.parse_line(line, now());
            let sequence = i64::try_from(i).unwrap() + 1;
            assert_eq!(triples(&got), [("loss", 1.0, sequence)], "{line}");
        }
        // A refused key does not hide a valid one behind it.
        assert_eq!(
            parser.parse_line("epoch=1.5 step=7 loss=1", now())[0].step,
            7
        );
        assert_eq!(parser.parse_line("epoch=2,loss=1", now())[0].step, 2);
        assert_eq!(parser.parse_line("step=0 loss=1", now())[0].step, 0);
    }

    #[test]
    fn leading_timestamps() {
        let mut parser = default_parser(&["loss"]);
        let cases = [
            ("2024-03-04T17:55:08Z loss=1", "2024-03-04T17:55:08Z"),
            (
                "2024-03-04T17:55:08.123456789Z\tloss=1",
                "2024-03-04T17:55:08.123456789Z",
            ),
            ("2021-12-02T14:27:50+09:00 loss=1", "2021-12-02T05:27:50Z"),
        ];
        for (line, expected) in cases {
            let got = parser.parse_line(line, now());
            let expected: jiff::Timestamp = expected.parse().unwrap();
            assert_eq!(got[0].timestamp, expected, "{line}");
        }
        for line in [
            "invalid INFO loss=1",
            " 2024-03-04T17:55:08Z loss=1",     // not at the start
            "2024-03-04T17:55:08 loss=1",       // no offset: ambiguous
            "2024-13-04T17:55:08Z loss=1",      // no month 13
            "INFO 2024-03-04T17:55:08Z loss=1", // not the first token
        ] {
            assert_eq!(parser.parse_line(line, now())[0].timestamp, now(), "{line}");
        }
    }

    #[test]
    fn non_finite_values_are_refused() {
        let mut parser = LineParser::new(&names(&["loss"]), &[r"(\w+)=(\S+)".into()]).unwrap();
        for line in [
            "loss=nan",
            "loss=NaN",
            "loss=inf",
            "loss=-inf",
            "loss=1e999",
        ] {
            assert!(parser.parse_line(line, now()).is_empty(), "{line}");
        }
        assert!(
            default_parser(&["loss"])
                .parse_line("loss=1e999", now())
                .is_empty()
        );
    }

    #[test]
    fn odd_input_never_panics() {
        let mut parser =
            LineParser::new(&names(&["é", "loss"]), &[r"(\w*)=?(\d*)".into()]).unwrap();
        for line in [
            "é",
            "ééé=1",
            "=",
            "==",
            "loss",
            "\u{0}loss=\u{0}",
            "loss=1é",
        ] {
            let _ = parser.parse_line(line, now());
        }
        let mut parser = default_parser(&[]);
        assert!(parser.parse_line("loss=1", now()).is_empty());
        let parser = default_parser(&["", "loss"]);
        assert_eq!(parser.metric_names(), ["loss"]);
    }

    /// Random filters and lines from a small alphabet of troublesome characters: whatever
    /// compiles must parse any line without panicking, and nothing kept may be non-finite.
    #[test]
    fn random_filters_and_lines_never_panic() {
        const ALPHABET: &[&str] = &[
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "\\",
            "Q",
            "E",
            "p",
            "x",
            "w",
            "d",
            "s",
            "+",
            "*",
            "?",
            "|",
            "-",
            "=",
            ":",
            "&",
            "~",
            "^",
            "$",
            ".",
            ",",
            "1",
            "9",
            "e",
            "é",
            " ",
            "loss",
            "step",
            "epoch",
            "2024-03-04T17:55:08Z",
        ];
        // A fixed-seed linear congruential generator: deterministic, no extra dependency.
        let mut state: u64 = 0x5eed;
        let mut next = move |bound: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(state >> 33).unwrap() % bound
        };
        let mut random_text = |max_len: usize| -> String {
            let len = next(max_len);
            (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect()
        };
        let mut compiled = 0;
        for _ in 0..2000 {
            // Two groups around random text, so that a fair share of filters compiles.
            let filter = format!(
                "{}({}){}({}){}",
                random_text(4),
                random_text(4),
                random_text(3),
                random_text(4),
                random_text(3)
            );
            let Ok(mut parser) = LineParser::new(&names(&["loss", "1"]), &[filter]) else {
                continue;
            };
            compiled += 1;
            for _ in 0..5 {
                let line = random_text(16);
                for observation in parser.parse_line(&line, now()) {
                    assert!(observation.value.is_finite());
                }
            }
        }
        assert!(compiled > 50, "only {compiled} random filters compiled");
    }

    #[test]
    fn parse_text_handles_crlf_and_bom() {
        let mut parser = default_parser(&["loss"]);
        let got = parse_text("\u{feff}loss=1\r\nnoise\r\nloss=2\r\n", &mut parser, now());
        assert_eq!(triples(&got), [("loss", 1.0, 1), ("loss", 2.0, 2)]);
    }

    #[test]
    fn parse_line_into_appends() {
        let mut parser = default_parser(&["loss"]);
        let mut out = Vec::new();
        assert_eq!(parser.parse_line_into("loss=1 loss=2", now(), &mut out), 2);
        assert_eq!(parser.parse_line_into("nothing", now(), &mut out), 0);
        assert_eq!(parser.parse_line_into("loss=3", now(), &mut out), 1);
        assert_eq!(
            triples(&out),
            [("loss", 1.0, 1), ("loss", 2.0, 2), ("loss", 3.0, 3)]
        );
    }
}
