//! The `sextant` command line: one module per subcommand.

pub mod bench;
pub mod bench_serve;
pub mod bench_stopping;
pub mod best;
pub mod client;
mod console;
pub mod controller;
pub mod crd;
pub mod delete;
pub mod describe;
pub mod error;
pub mod get;
pub mod metrics;
#[cfg(test)]
mod mock_server;
pub mod output;
pub mod render;
pub mod run;
pub mod serve;
pub mod source;
pub mod submit;
pub mod validate;
pub mod watch;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use client::{AdminToken, DEFAULT_SERVER, ServerClient};
pub use error::CliError;
use output::OutputFormat;
use source::RecordSource;

use crate::store::Store;

/// Sextant: hyperparameter tuning that reads Katib Experiments unchanged.
#[derive(Debug, Parser)]
#[command(name = "sextant", version, about, propagate_version = true)]
pub struct Cli {
    /// Where experiments, trials, metrics and trial logs are kept
    /// [default: $XDG_DATA_HOME/sextant or ~/.local/share/sextant].
    #[arg(long, global = true, env = "SEXTANT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// A `sextant serve` server to use instead of the data directory: the read commands (get,
    /// describe, metrics, best) and delete go to it; submit and watch always use a server
    /// [default for those: http://127.0.0.1:6789].
    #[arg(long, global = true, env = "SEXTANT_SERVER", value_name = "URL")]
    pub server: Option<String>,

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
    /// Print the Kubernetes workload of an Experiment's first trial, metrics collector included.
    Render(render::RenderArgs),
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
    /// Submit an experiment to a server (`sextant serve`).
    Submit(submit::SubmitArgs),
    /// Follow an experiment on a server until it ends.
    Watch(watch::WatchArgs),
    /// Run a server: submitted experiments, the experiments/trials/metrics API, suggestions.
    Serve(serve::ServeArgs),
    /// Run Katib Experiments applied to a Kubernetes cluster, trials as Kubernetes workloads.
    Controller(controller::ControllerArgs),
    /// Measure Sextant itself.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Print the Kubernetes CRDs (Experiment, Trial, Suggestion) as YAML.
    Crd,
}

/// Runs the parsed command line; the result is the process exit code.
pub async fn run(cli: Cli) -> Result<u8, CliError> {
    let data_dir = cli.data_dir.clone().unwrap_or_else(default_data_dir);
    // An empty SEXTANT_SERVER reads as unset.
    let server = cli.server.as_deref().filter(|s| !s.trim().is_empty());
    let reads = || RecordSource::open(server, &data_dir);
    let remote = || {
        ServerClient::new(
            server.unwrap_or(DEFAULT_SERVER),
            AdminToken::find(&data_dir)?,
        )
    };
    match cli.command {
        Command::Run(args) => run::run(args, &data_dir).await,
        Command::Validate(args) => validate::run(args),
        Command::Render(args) => render::run(args),
        Command::Get(command) => get::run(command, &reads()?),
        Command::Describe(command) => describe::run(command, &reads()?),
        Command::Metrics(args) => metrics::run(args, &reads()?),
        Command::Best(args) => best::run(args, &reads()?),
        Command::Delete(command) => match server {
            Some(_) => delete::run_remote(command, &remote()?),
            None => delete::run(command, &data_dir),
        },
        Command::Submit(args) => submit::run(args, remote()?).await,
        Command::Watch(args) => watch::run(args, remote()?).await,
        Command::Serve(args) => serve::run(args, &data_dir).await,
        Command::Controller(args) => controller::run(args, &data_dir).await,
        Command::Bench(command) => bench::run(command, &data_dir).await,
        Command::Crd => crd::run(),
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
