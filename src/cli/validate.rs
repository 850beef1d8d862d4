//! `sextant validate FILE`: parse, default and validate without running.

use std::path::PathBuf;

use super::output::{OutputFormat, print_structured};
use super::{CliError, OutputArgs};
use crate::spec;

/// Arguments of `sextant validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The Experiment file.
    pub file: PathBuf,
    /// Print the experiment with Katib's defaults applied (`-o yaml|json`).
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs `sextant validate`.
pub fn run(args: ValidateArgs) -> Result<u8, CliError> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::input(format!("cannot read {}: {e}", args.file.display())))?;
    let checked =
        spec::check(&text).map_err(|e| CliError::input(format!("{}: {e}", args.file.display())))?;
    match args.output.format {
        OutputFormat::Table => {
            println!(
                "{}: valid Experiment {:?}: {} parameter(s), {} search, objective {} {}",
                args.file.display(),
                checked.name,
                checked.space.params().len(),
                checked.algorithm.name,
                match checked.objective.direction {
                    spec::Direction::Maximize => "maximize",
                    spec::Direction::Minimize => "minimize",
                },
                checked.objective.metric
            );
        }
        format => print_structured(format, &checked.experiment)?,
    }
    Ok(0)
}
