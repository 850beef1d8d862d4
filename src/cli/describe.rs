//! `sextant describe experiment|trial NAME`.

use std::path::Path;

use serde::Serialize;

use super::get::{ExperimentView, load_experiment};
use super::output::{OutputFormat, number, print_structured, write_stdout};
use super::{CliError, OutputArgs, open_store};
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
pub fn run(command: DescribeCommand, data_dir: &Path) -> Result<u8, CliError> {
    let store = open_store(data_dir)?;
    match command {
        DescribeCommand::Experiment { name, output } => {
            let record = load_experiment(&store, &name)?;
            let trials = store.trials(&record.name)?;
            let view = ExperimentView::new(&record, &trials);
            if output.format != OutputFormat::Table {
                let description = ExperimentDescription {
                    view,
                    spec: &record.experiment.spec,
                    source_file: record.source_file.as_deref(),
                    seed: record.seed,
                };
                print_structured(output.format, &description)?;
            } else {
                write_stdout(&describe_experiment(&record, &view))?;
            }
        }
        DescribeCommand::Trial { name, output } => {
            let trial = store.trial(&name)?.ok_or_else(|| {
                CliError::input(format!("no trial {name:?} in this data directory; list them with `sextant get trials EXPERIMENT`"))
            })?;
            if output.format != OutputFormat::Table {
                print_structured(output.format, &trial)?;
            } else {
                write_stdout(&describe_trial(&trial))?;
            }
        }
    }
    Ok(0)
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
