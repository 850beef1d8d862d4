//! One line in, observations out, whichever format the trial writes.
use sextant_collector::{CollectorError, JsonLinesParser, LineParser, Observation};

use crate::args::FileFormat;

/// The parser for the trial's format, with what the user should hear about at the end.
#[derive(Debug)]
pub(crate) enum MetricReader {
    /// Katib's StdOut collector and TEXT files.
    Text(LineParser),
    /// JSON lines.
    Json {
        parser: JsonLinesParser,
        lines: usize,
        malformed: usize,
        first_malformed: Option<usize>,
    },
}

impl MetricReader {
    pub(crate) fn new(
        format: FileFormat,
        metrics: &[String],
        filters: &[String],
    ) -> Result<Self, CollectorError> {
        Ok(match format {
            FileFormat::Text => Self::Text(LineParser::new(metrics, filters)?),
            FileFormat::Json => Self::Json {
                parser: JsonLinesParser::new(metrics),
                lines: 0,
                malformed: 0,
                first_malformed: None,
            },
        })
    }

    /// Parses one line seen at `now`, appending to `out`.
    pub(crate) fn read_line(
        &mut self,
        line: &str,
        now: jiff::Timestamp,
        out: &mut Vec<Observation>,
    ) {
        match self {
            Self::Text(parser) => {
                parser.parse_line_into(line, now, out);
            }
            Self::Json {
                parser,
                lines,
                malformed,
                first_malformed,
            } => {
                *lines += 1;
                match parser.parse_line(line, now) {
                    Some(observations) => out.extend(observations),
                    None => {
                        *malformed += 1;
                        first_malformed.get_or_insert(*lines);
                    }
                }
            }
        }
    }

    /// A warning about skipped lines, if any were.
    pub(crate) fn summary(&self) -> Option<String> {
        match self {
            Self::Json {
                malformed,
                first_malformed: Some(first),
                ..
            } if *malformed > 0 => Some(format!(
                "skipped {malformed} line(s) that were not JSON objects (the first was line \
                 {first})"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn text_and_json_lines() {
        let metrics = vec!["loss".to_owned()];
        let mut out = Vec::new();
        let mut text = MetricReader::new(FileFormat::Text, &metrics, &[]).unwrap();
        text.read_line("epoch=2 loss=0.5", now(), &mut out);
        let mut json = MetricReader::new(FileFormat::Json, &metrics, &[]).unwrap();
        json.read_line(r#"{"loss": 0.4, "step": 7}"#, now(), &mut out);
        json.read_line("not json", now(), &mut out);
        json.read_line("", now(), &mut out);
        json.read_line("{torn", now(), &mut out);
        let got: Vec<(f64, i64)> = out.iter().map(|o| (o.value, o.step)).collect();
        assert_eq!(got, [(0.5, 2), (0.4, 7)]);
        assert_eq!(text.summary(), None);
        assert_eq!(
            json.summary().unwrap(),
            "skipped 2 line(s) that were not JSON objects (the first was line 2)"
        );
    }

    #[test]
    fn bad_filters_are_reported() {
        let err =
            MetricReader::new(FileFormat::Text, &["loss".into()], &["(x".into()]).unwrap_err();
        assert!(err.to_string().contains("does not compile"), "{err}");
    }
}
