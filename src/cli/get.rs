//! `sextant get experiments` and `sextant get trials EXPERIMENT`, from the local store or a server.

use super::output::{OutputFormat, Table, number, structured_text, write_stdout};
use super::source::RecordSource;
use super::{CliError, OutputArgs};
use crate::store::{ExperimentRecord, Store, TrialRecord, TrialState};
pub use crate::view::{BestView, CountsView, ExperimentView};

/// `sextant get ...`.
#[derive(Debug, clap::Subcommand)]
pub enum GetCommand {
    /// All experiments in the data directory (or on the server).
    Experiments(OutputArgs),
    /// An experiment's trials.
    Trials {
        /// The experiment.
        experiment: String,
        /// Only trials in this state (Succeeded, Failed, Running, ...).
        #[arg(long)]
        state: Option<String>,
        /// Output format.
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// Runs `sextant get`.
pub fn run(command: GetCommand, source: &RecordSource) -> Result<u8, CliError> {
    match command {
        GetCommand::Experiments(output) => {
            let views = source.experiment_views()?;
            if views.is_empty() && output.format == OutputFormat::Table {
                eprintln!("no experiments {}", empty_hint(source));
            }
            write_stdout(&render_experiments(&views, output.format)?)?;
        }
        GetCommand::Trials {
            experiment,
            state,
            output,
        } => {
            let wanted = state.as_deref().map(parse_state).transpose()?;
            let (record, _) = source.experiment(&experiment)?;
            let trials = source.trials(&record.name, wanted)?;
            write_stdout(&render_trials(&record, &trials, output.format)?)?;
        }
    }
    Ok(0)
}

fn empty_hint(source: &RecordSource) -> String {
    match source {
        RecordSource::Local(_) => {
            "in this data directory (run one with `sextant run FILE`)".to_string()
        }
        RecordSource::Server(_) => {
            format!("{} (submit one with `sextant submit FILE`)", source.place())
        }
    }
}

/// `get experiments` output.
pub fn render_experiments(
    views: &[ExperimentView],
    format: OutputFormat,
) -> Result<String, CliError> {
    if format != OutputFormat::Table {
        return structured_text(format, &views);
    }
    let mut table = Table::new([
        "NAME",
        "STATUS",
        "ALGORITHM",
        "TRIALS",
        "SUCCEEDED",
        "FAILED",
        "BEST",
        "CREATED",
    ]);
    for v in views {
        table.row([
            v.name.clone(),
            v.status.clone(),
            v.algorithm.clone(),
            v.trials.total.to_string(),
            v.trials.by_state.succeeded.to_string(),
            v.trials.by_state.failed_for_budget().to_string(),
            v.current_optimal_trial
                .as_ref()
                .map(|b| format!("{}={}", v.objective_metric_name, number(b.objective)))
                .unwrap_or_else(|| "-".into()),
            v.created.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        ]);
    }
    Ok(table.render())
}

/// Parses a trial state as users type it (case-insensitive).
pub fn parse_state(text: &str) -> Result<TrialState, CliError> {
    TrialState::ALL
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            CliError::input(format!(
                "--state {text:?}: expected one of {}",
                TrialState::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Loads an experiment or says which ones exist.
pub fn load_experiment(store: &Store, name: &str) -> Result<ExperimentRecord, CliError> {
    store.experiment(name)?.ok_or_else(|| {
        let known: Vec<String> = store
            .experiments()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.name)
            .collect();
        unknown_experiment(name, "in this data directory", known)
    })
}

/// `no experiment "x" PLACE; known: a, b` (exit 2).
pub fn unknown_experiment(name: &str, place: &str, known: Vec<String>) -> CliError {
    CliError::input(format!(
        "no experiment {name:?} {place}; known: {}",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    ))
}

/// `get trials` output: `trials` belong to `record`.
pub fn render_trials(
    record: &ExperimentRecord,
    trials: &[TrialRecord],
    format: OutputFormat,
) -> Result<String, CliError> {
    if format != OutputFormat::Table {
        return structured_text(format, &trials);
    }
    let metric = record
        .experiment
        .spec
        .objective
        .as_ref()
        .map(|o| o.objective_metric_name.clone())
        .unwrap_or_default();
    let params: Vec<String> = record
        .experiment
        .spec
        .parameters
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let mut header = vec![
        "NAME".to_string(),
        "STATUS".to_string(),
        metric.to_uppercase(),
    ];
    header.extend(params.iter().map(|p| p.to_uppercase()));
    let mut table = Table::new(header);
    for t in trials {
        let mut row = vec![
            t.name.clone(),
            t.state.to_string(),
            t.objective.map(number).unwrap_or_else(|| "-".into()),
        ];
        row.extend(params.iter().map(|p| {
            t.assignments
                .iter()
                .find(|a| &a.name == p)
                .map(|a| a.value.clone())
                .unwrap_or_default()
        }));
        table.row(row);
    }
    Ok(table.render())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cli::mock_server::{MockServer, PAGE_CAP, seed_digits};

    const FORMATS: [OutputFormat; 3] =
        [OutputFormat::Table, OutputFormat::Json, OutputFormat::Yaml];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_lists_render_like_the_local_store() {
        let mock = MockServer::start().await;
        seed_digits(&mock.store, Path::new("/experiments"));
        let local = RecordSource::Local(mock.store.clone());
        let remote = RecordSource::Server(mock.client());
        for format in FORMATS {
            let expected = render_experiments(&local.experiment_views().unwrap(), format).unwrap();
            assert!(expected.contains("digits-random"), "{expected}");
            let got = render_experiments(&remote.experiment_views().unwrap(), format).unwrap();
            assert_eq!(got, expected, "get experiments -o {format:?}");
            for state in [None, Some(TrialState::Succeeded)] {
                let (record, _) = local.experiment("digits-random").unwrap();
                let expected =
                    render_trials(&record, &local.trials(&record.name, state).unwrap(), format)
                        .unwrap();
                let (record, _) = remote.experiment("digits-random").unwrap();
                let got = render_trials(
                    &record,
                    &remote.trials(&record.name, state).unwrap(),
                    format,
                )
                .unwrap();
                assert_eq!(got, expected, "get trials --state {state:?} -o {format:?}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_trials_are_read_page_by_page() {
        let mock = MockServer::start().await;
        seed_digits(&mock.store, Path::new("/experiments"));
        let trials = RecordSource::Server(mock.client())
            .trials("digits-random", None)
            .unwrap();
        let names: Vec<&str> = trials.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            (1..=5)
                .map(|i| format!("digits-random-{i:04}"))
                .collect::<Vec<_>>()
        );
        let offsets: Vec<String> = mock
            .requests()
            .iter()
            .filter_map(|r| r.uri.split_once("offset=").map(|(_, o)| o.to_string()))
            .collect();
        assert_eq!(PAGE_CAP, 2);
        assert_eq!(offsets, ["0", "2", "4"]);
    }
}
