//! The `sextant` command line: one module per subcommand.

pub mod bench;
pub mod bench_serve;
pub mod bench_stopping;
pub mod best;
pub mod delete;
pub mod describe;
pub mod error;
pub mod get;
pub mod metrics;
pub mod output;
pub mod run;
pub mod serve;
pub mod validate;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

pub use error::CliError;
use output::OutputFormat;

use crate::store::Store;

/// Sextant: hyperparameter tuning that reads Katib Experiments unchanged.
#[derive(Debug, Parser)]
#[command(name = "sextant", version, about, propagate_version = true)]
pub struct Cli {
    /// Where experiments, trials, metrics and trial logs are kept
    /// [default: $XDG_DATA_HOME/sextant or ~/.local/share/sextant].
    #[arg(long, global = true, env = "SEXTANT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an experiment locally, trials as child processes; resumes if interrupted.
    Run(run::RunArgs),
    /// Check an Experiment file without running it.
    Validate(validate::ValidateArgs),
    /// List experiments or trials.
    #[command(subcommand)]
    Get(get::GetCommand),
    /// Show one experiment or trial in full.
    #[command(subcommand)]
    Describe(describe::DescribeCommand),
    /// A trial's observation series.
    Metrics(metrics::MetricsArgs),
    /// The best trial of an experiment.
    Best(best::BestArgs),
    /// Remove an experiment with its trials, metrics and logs.
    #[command(subcommand)]
    Delete(delete::DeleteCommand),
    /// Run a server: submitted experiments, the experiments/trials/metrics API, suggestions.
    Serve(serve::ServeArgs),
    /// Measure Sextant itself.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs the parsed command line; the result is the process exit code.
pub async fn run(cli: Cli) -> Result<u8, CliError> {
    let data_dir = cli.data_dir.clone().unwrap_or_else(default_data_dir);
    match cli.command {
        Command::Run(args) => run::run(args, &data_dir).await,
        Command::Validate(args) => validate::run(args),
        Command::Get(command) => get::run(command, &data_dir),
        Command::Describe(command) => describe::run(command, &data_dir),
        Command::Metrics(args) => metrics::run(args, &data_dir),
        Command::Best(args) => best::run(args, &data_dir),
        Command::Delete(command) => delete::run(command, &data_dir),
        Command::Serve(args) => serve::run(args, &data_dir).await,
        Command::Bench(command) => bench::run(command, &data_dir).await,
    }
}

/// The per-user data directory: `$XDG_DATA_HOME/sextant`, else `~/.local/share/sextant`
/// (`~/Library/Application Support/sextant` on macOS), else `./.sextant`.
pub fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("sextant");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) if cfg!(target_os = "macos") => {
            PathBuf::from(home).join("Library/Application Support/sextant")
        }
        Some(home) => PathBuf::from(home).join(".local/share/sextant"),
        None => PathBuf::from(".sextant"),
    }
}

/// Opens the store for a read command; a missing data directory reads as empty, not as an error.
pub(crate) fn open_store(data_dir: &Path) -> Result<Store, CliError> {
    Store::open(&data_dir.join("store")).map_err(CliError::from)
}

/// `-o table|json|yaml`, shared by every read command.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}
