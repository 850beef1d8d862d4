//! `sextant describe experiment|trial NAME`, from the local store or a server.

use std::path::Path;

use serde::Serialize;

use super::get::ExperimentView;
use super::output::{OutputFormat, number, structured_text, write_stdout};
use super::source::RecordSource;
use super::{CliError, OutputArgs};
use crate::store::{ExperimentRecord, TrialRecord};

/// `sextant describe ...`.
#[derive(Debug, clap::Subcommand)]
pub enum DescribeCommand {
    /// An experiment: spec summary, status, counts, best trial.
    Experiment {
        /// The experiment.
        name: String,
        /// Output format.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A trial: parameters, status and why, metrics, log path.
    Trial {
        /// The trial.
        name: String,
        /// Output format.
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Serialize)]
struct ExperimentDescription<'a> {
    #[serde(flatten)]
    view: ExperimentView,
    spec: &'a crate::spec::ExperimentSpec,
    #[serde(rename = "sourceFile")]
    source_file: Option<&'a Path>,
    seed: u64,
}

/// Runs `sextant describe`.
pub fn run(command: DescribeCommand, source: &RecordSource) -> Result<u8, CliError> {
    let text = match command {
        DescribeCommand::Experiment { name, output } => {
            let (record, view) = source.experiment(&name)?;
            render_experiment(&record, view, output.format)?
        }
        DescribeCommand::Trial { name, output } => {
            render_trial(&source.trial(&name)?, output.format)?
        }
    };
    write_stdout(&text)?;
    Ok(0)
}

/// `describe experiment` output.
pub fn render_experiment(
    record: &ExperimentRecord,
    view: ExperimentView,
    format: OutputFormat,
) -> Result<String, CliError> {
    if format == OutputFormat::Table {
        return Ok(describe_experiment(record, &view));
    }
    let description = ExperimentDescription {
        view,
        spec: &record.experiment.spec,
        source_file: record.source_file.as_deref(),
        seed: record.seed,
    };
    structured_text(format, &description)
}

/// `describe trial` output.
pub fn render_trial(trial: &TrialRecord, format: OutputFormat) -> Result<String, CliError> {
    if format == OutputFormat::Table {
        Ok(describe_trial(trial))
    } else {
        structured_text(format, trial)
    }
}

fn describe_experiment(record: &ExperimentRecord, view: &ExperimentView) -> String {
    let spec = &record.experiment.spec;
    let mut out = String::new();
    out.push_str(&format!("Name:        {}\n", record.name));
    out.push_str(&format!("Status:      {} ({})\n", view.status, view.reason));
    out.push_str(&format!("Message:     {}\n", view.message));
    if let Some(file) = &record.source_file {
        out.push_str(&format!("File:        {}\n", file.display()));
    }
    out.push_str(&format!(
        "Algorithm:   {} (seed {})\n",
        view.algorithm, record.seed
    ));
    out.push_str(&format!(
        "Objective:   {} {}",
        view.objective_type, view.objective_metric_name
    ));
    if let Some(goal) = spec.objective.as_ref().and_then(|o| o.goal) {
        out.push_str(&format!(" (goal {})", number(goal)));
    }
    out.push('\n');
    out.push_str(&format!(
        "Budget:      maxTrialCount {}, parallelTrialCount {}, maxFailedTrialCount {}\n",
        spec.max_trial_count.map_or("-".into(), |n| n.to_string()),
        spec.parallel_trial_count
            .map_or("-".into(), |n| n.to_string()),
        spec.max_failed_trial_count
            .map_or("-".into(), |n| n.to_string()),
    ));
    out.push_str("Parameters:\n");
    for p in &spec.parameters {
        let fs = &p.feasible_space;
        let range = if fs.list.is_empty() {
            format!(
                "[{}, {}]{}",
                fs.min.as_deref().unwrap_or("?"),
                fs.max.as_deref().unwrap_or("?"),
                fs.step
                    .as_ref()
                    .map(|s| format!(" step {s}"))
                    .unwrap_or_default()
            )
        } else {
            format!("{{{}}}", fs.list.join(", "))
        };
        out.push_str(&format!(
            "  {:<16} {:<12} {} {}\n",
            p.name,
            p.parameter_type,
            range,
            fs.distribution.as_deref().unwrap_or("uniform")
        ));
    }
    let (total, t) = (view.trials.total, &view.trials.by_state);
    out.push_str(&format!(
        "Trials:      {} total: {} succeeded, {} failed, {} metrics unavailable, {} early stopped, {} killed, {} running, {} pending\n",
        total, t.succeeded, t.failed, t.metrics_unavailable, t.early_stopped, t.killed, t.running, t.pending
    ));
    match &view.current_optimal_trial {
        Some(best) => out.push_str(&format!(
            "Best trial:  {} {}={} with {}\n",
            best.best_trial_name,
            view.objective_metric_name,
            number(best.objective),
            best.parameter_assignments
                .iter()
                .map(|a| format!("{}={}", a.name, a.value))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        None => out.push_str("Best trial:  none yet\n"),
    }
    out.push_str(&format!("Created:     {}\n", record.created));
    if let Some(done) = record.completed {
        out.push_str(&format!("Completed:   {done}\n"));
    }
    out
}

fn describe_trial(trial: &TrialRecord) -> String {
    let mut out = String::new();
    out.push_str(&format!("Name:        {}\n", trial.name));
    out.push_str(&format!("Experiment:  {}\n", trial.experiment));
    out.push_str(&format!(
        "Status:      {} ({})\n",
        trial.state, trial.reason
    ));
    out.push_str(&format!("Message:     {}\n", trial.message));
    out.push_str("Parameters:\n");
    for a in &trial.assignments {
        out.push_str(&format!("  {} = {}\n", a.name, a.value));
    }
    if let Some(objective) = trial.objective {
        out.push_str(&format!("Objective:   {}\n", number(objective)));
    }
    out.push_str("Metrics:\n");
    if trial.metrics.is_empty() {
        out.push_str("  none reported\n");
    }
    for m in &trial.metrics {
        out.push_str(&format!(
            "  {:<16} min {}  max {}  latest {}  ({} points)\n",
            m.name,
            number(m.min),
            number(m.max),
            number(m.latest),
            m.count
        ));
    }
    if let Some(code) = trial.exit_code {
        out.push_str(&format!("Exit code:   {code}\n"));
    }
    if !trial.gpus.is_empty() {
        out.push_str(&format!("GPUs:        {}\n", trial.gpus.join(",")));
    }
    out.push_str(&format!("Log:         {}\n", trial.log_path.display()));
    out.push_str("Events:\n");
    for e in &trial.events {
        out.push_str(&format!(
            "  {}  {:<18} {}: {}\n",
            e.time, e.state, e.reason, e.message
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cli::error::EXIT_BAD_INPUT;
    use crate::cli::mock_server::{MockServer, seed_digits};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_descriptions_render_like_the_local_store() {
        let mock = MockServer::start().await;
        seed_digits(&mock.store, Path::new("/experiments"));
        let local = RecordSource::Local(mock.store.clone());
        let remote = RecordSource::Server(mock.client());
        for format in [OutputFormat::Table, OutputFormat::Json, OutputFormat::Yaml] {
            let (record, view) = local.experiment("digits-random").unwrap();
            let expected = render_experiment(&record, view, format).unwrap();
            let (record, view) = remote.experiment("digits-random").unwrap();
            assert_eq!(render_experiment(&record, view, format).unwrap(), expected);
            for trial in ["digits-random-0001", "digits-random-0003"] {
                let expected = render_trial(&local.trial(trial).unwrap(), format).unwrap();
                assert!(expected.contains(trial));
                let got = render_trial(&remote.trial(trial).unwrap(), format).unwrap();
                assert_eq!(got, expected, "describe trial {trial} -o {format:?}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_names_on_a_server_read_like_local_ones() {
        let mock = MockServer::start().await;
        seed_digits(&mock.store, Path::new("/experiments"));
        let remote = RecordSource::Server(mock.client());
        let e = remote.experiment("nope").unwrap_err();
        assert_eq!(e.code, EXIT_BAD_INPUT);
        assert_eq!(
            e.message,
            format!(
                "no experiment \"nope\" on server {}; known: digits-random",
                mock.url
            )
        );
        for trial in ["digits-random-0099", "nope-0001", "nodash"] {
            let e = remote.trial(trial).unwrap_err();
            assert_eq!(e.code, EXIT_BAD_INPUT);
            assert_eq!(
                e.message,
                format!(
                    "no trial {trial:?} on server {}; list them with `sextant get trials EXPERIMENT`",
                    mock.url
                )
            );
        }
        let local = RecordSource::Local(mock.store.clone());
        let e = local.experiment("nope").unwrap_err();
        assert_eq!(
            e.message,
            "no experiment \"nope\" in this data directory; known: digits-random"
        );
    }
}
