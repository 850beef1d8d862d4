//! `sextant get experiments` and `sextant get trials EXPERIMENT`.

use std::path::Path;

use super::output::{OutputFormat, Table, number, print_structured, write_stdout};
use super::{CliError, OutputArgs, open_store};
use crate::store::{ExperimentRecord, Store, TrialRecord, TrialState};
pub use crate::view::{BestView, CountsView, ExperimentView};

/// `sextant get ...`.
#[derive(Debug, clap::Subcommand)]
pub enum GetCommand {
    /// All experiments in the data directory.
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
pub fn run(command: GetCommand, data_dir: &Path) -> Result<u8, CliError> {
    let store = open_store(data_dir)?;
    match command {
        GetCommand::Experiments(output) => get_experiments(&store, output.format),
        GetCommand::Trials {
            experiment,
            state,
            output,
        } => get_trials(&store, &experiment, state.as_deref(), output.format),
    }
}

fn get_experiments(store: &Store, format: OutputFormat) -> Result<u8, CliError> {
    let mut views = Vec::new();
    for record in store.experiments()? {
        let trials = store.trials(&record.name)?;
        views.push(ExperimentView::new(&record, &trials));
    }
    if format != OutputFormat::Table {
        print_structured(format, &views)?;
        return Ok(0);
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
    for v in &views {
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
    if views.is_empty() {
        eprintln!("no experiments in {}", store_hint(store));
    }
    write_stdout(&table.render())?;
    Ok(0)
}

fn store_hint(_store: &Store) -> &'static str {
    "this data directory (run one with `sextant run FILE`)"
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
        CliError::input(format!(
            "no experiment {name:?} in this data directory; known: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })
}

fn get_trials(
    store: &Store,
    experiment: &str,
    state: Option<&str>,
    format: OutputFormat,
) -> Result<u8, CliError> {
    let record = load_experiment(store, experiment)?;
    let wanted = state.map(parse_state).transpose()?;
    let trials: Vec<TrialRecord> = store
        .trials(&record.name)?
        .into_iter()
        .filter(|t| wanted.is_none_or(|s| t.state == s))
        .collect();
    if format != OutputFormat::Table {
        print_structured(format, &trials)?;
        return Ok(0);
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
    for t in &trials {
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
    write_stdout(&table.render())?;
    Ok(0)
}
