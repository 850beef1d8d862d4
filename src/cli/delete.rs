//! `sextant delete experiment NAME`, in the data directory or on a server (`--server`).

use std::path::Path;

use super::client::ServerClient;
use super::get::load_experiment;
use super::source::remote_experiment;
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

/// Runs `sextant delete` against a server (`DELETE /v1/experiments/{name}`, admin).
pub fn run_remote(command: DeleteCommand, client: &ServerClient) -> Result<u8, CliError> {
    let DeleteCommand::Experiment { name } = command;
    // Ask first, so an unknown name lists the known ones, as locally.
    let detail = remote_experiment(client, &name)?;
    client.delete_experiment(&detail.experiment.name)?;
    eprintln!(
        "deleted experiment {} on server {}",
        detail.experiment.name,
        client.base()
    );
    Ok(0)
}
