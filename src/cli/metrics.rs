//! `sextant metrics TRIAL`: a trial's observation series.

use std::path::Path;

use super::output::{OutputFormat, Table, number, print_structured, write_stdout};
use super::{CliError, OutputArgs, open_store};

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
pub fn run(args: MetricsArgs, data_dir: &Path) -> Result<u8, CliError> {
    let store = open_store(data_dir)?;
    let trial = store.trial(&args.trial)?.ok_or_else(|| {
        CliError::input(format!(
            "no trial {:?} in this data directory; list them with `sextant get trials EXPERIMENT`",
            args.trial
        ))
    })?;
    let points = store.observations(trial.uid, args.metric.as_deref())?;
    if args.output.format != OutputFormat::Table {
        print_structured(args.output.format, &points)?;
        return Ok(0);
    }
    if points.is_empty() {
        eprintln!(
            "trial {} has no observations{}",
            trial.name,
            args.metric
                .map(|m| format!(" of {m:?}"))
                .unwrap_or_default()
        );
        return Ok(0);
    }
    let mut table = Table::new(["METRIC", "STEP", "VALUE", "TIME"]);
    for p in &points {
        table.row([
            p.metric_name.clone(),
            p.step.to_string(),
            number(p.value),
            p.timestamp.to_string(),
        ]);
    }
    write_stdout(&table.render())?;
    Ok(0)
}
