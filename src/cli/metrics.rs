//! `sextant metrics TRIAL`: a trial's observation series, from the local store or a server.

use sextant_collector::Observation;

use super::output::{OutputFormat, Table, number, structured_text, write_stdout};
use super::source::RecordSource;
use super::{CliError, OutputArgs};

/// Arguments of `sextant metrics`.
#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// The trial.
    pub trial: String,
    /// Only this metric.
    #[arg(long)]
    pub metric: Option<String>,
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs `sextant metrics`.
pub fn run(args: MetricsArgs, source: &RecordSource) -> Result<u8, CliError> {
    let points = source.observations(&args.trial, args.metric.as_deref())?;
    if points.is_empty() && args.output.format == OutputFormat::Table {
        eprintln!(
            "trial {} has no observations{}",
            args.trial,
            args.metric
                .map(|m| format!(" of {m:?}"))
                .unwrap_or_default()
        );
        return Ok(0);
    }
    write_stdout(&render(&points, args.output.format)?)?;
    Ok(0)
}

/// `metrics` output.
pub fn render(points: &[Observation], format: OutputFormat) -> Result<String, CliError> {
    if format != OutputFormat::Table {
        return structured_text(format, &points);
    }
    let mut table = Table::new(["METRIC", "STEP", "VALUE", "TIME"]);
    for p in points {
        table.row([
            p.metric_name.clone(),
            p.step.to_string(),
            number(p.value),
            p.timestamp.to_string(),
        ]);
    }
    Ok(table.render())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cli::mock_server::{MockServer, seed_digits};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_series_flatten_to_the_local_points() {
        let mock = MockServer::start().await;
        seed_digits(&mock.store, Path::new("/experiments"));
        let local = RecordSource::Local(mock.store.clone());
        let remote = RecordSource::Server(mock.client());
        for metric in [None, Some("loss"), Some("unknown")] {
            let expected = local.observations("digits-random-0002", metric).unwrap();
            let count = match metric {
                None => 6,
                Some("loss") => 3,
                Some(_) => 0,
            };
            assert_eq!(expected.len(), count, "--metric {metric:?}");
            let got = remote.observations("digits-random-0002", metric).unwrap();
            assert_eq!(got, expected, "--metric {metric:?}");
            for format in [OutputFormat::Table, OutputFormat::Json, OutputFormat::Yaml] {
                assert_eq!(
                    render(&got, format).unwrap(),
                    render(&expected, format).unwrap()
                );
            }
        }
        let requests = mock.requests();
        assert!(requests.iter().all(|r| !r.uri.contains("maxPoints")));
        assert!(remote.observations("digits-random-0042", None).is_err());
    }
}
