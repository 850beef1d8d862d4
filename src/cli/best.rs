//! `sextant best EXPERIMENT`: the best trial and its parameters.

use std::path::Path;

use super::get::{ExperimentView, load_experiment};
use super::output::{OutputFormat, number, print_structured, write_stdout};
use super::{CliError, OutputArgs, open_store};

/// Arguments of `sextant best`.
#[derive(Debug, clap::Args)]
pub struct BestArgs {
    /// The experiment.
    pub experiment: String,
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs `sextant best`.
pub fn run(args: BestArgs, data_dir: &Path) -> Result<u8, CliError> {
    let store = open_store(data_dir)?;
    let record = load_experiment(&store, &args.experiment)?;
    let trials = store.trials(&record.name)?;
    let view = ExperimentView::new(&record, &trials);
    let Some(best) = view.current_optimal_trial else {
        return Err(CliError::failed(format!(
            "experiment {} has no trial with the objective metric yet",
            record.name
        )));
    };
    if args.output.format != OutputFormat::Table {
        print_structured(args.output.format, &best)?;
        return Ok(0);
    }
    let mut text = format!(
        "{} {}={}\n",
        best.best_trial_name,
        view.objective_metric_name,
        number(best.objective)
    );
    for a in &best.parameter_assignments {
        text.push_str(&format!("  {} = {}\n", a.name, a.value));
    }
    write_stdout(&text)?;
    Ok(0)
}
