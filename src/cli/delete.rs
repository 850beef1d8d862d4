//! `sextant delete experiment NAME`.

use std::path::Path;

use super::get::load_experiment;
use super::{CliError, open_store};

/// `sextant delete ...`.
#[derive(Debug, clap::Subcommand)]
pub enum DeleteCommand {
    /// An experiment with its trials, metrics, engine state and logs.
    Experiment {
        /// The experiment.
        name: String,
    },
}

/// Runs `sextant delete`.
pub fn run(command: DeleteCommand, data_dir: &Path) -> Result<u8, CliError> {
    let DeleteCommand::Experiment { name } = command;
    let store = open_store(data_dir)?;
    let record = load_experiment(&store, &name)?;
    store.delete_experiment(&record.name)?;
    store.flush()?;
    let logs = data_dir.join("logs").join(&record.name);
    if logs.exists() {
        std::fs::remove_dir_all(&logs)
            .map_err(|e| CliError::failed(format!("cannot remove {}: {e}", logs.display())))?;
    }
    eprintln!("deleted experiment {}", record.name);
    Ok(0)
}
