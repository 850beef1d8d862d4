//! `sextant run FILE`: run an experiment locally with live progress, then print a summary.

use std::path::{Path, PathBuf};

use tokio::signal::unix::{SignalKind, signal};

use super::console::{ConsoleReporter, summary_text};
use super::error::{EXIT_FAILED, EXIT_INTERRUPTED};
use super::output::write_stdout;
use super::{CliError, open_store};
use crate::controller::driver::{Driver, Reporter, RunOutcome};
use crate::controller::resume::{Prepared, prepare};
use crate::runtime::gpu::{GpuPool, parse_gpu_list};
use crate::runtime::local::{LocalConfig, LocalRuntime, admit};
use crate::spec::{self, CheckedExperiment};
use crate::store::{ExperimentPhase, ExperimentRecord, Store};

/// Arguments of `sextant run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The Experiment file (Katib YAML or JSON).
    pub file: PathBuf,
    /// GPUs trials may use, e.g. `0,1` [default: the GPUs `nvidia-smi -L` lists; none if it is absent].
    #[arg(long, value_name = "IDS")]
    pub gpus: Option<String>,
    /// Print only the final summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `sextant run`.
pub async fn run(args: RunArgs, data_dir: &Path) -> Result<u8, CliError> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::input(format!("cannot read {}: {e}", args.file.display())))?;
    let checked =
        spec::check(&text).map_err(|e| CliError::input(format!("{}: {e}", args.file.display())))?;
    let file = std::fs::canonicalize(&args.file).unwrap_or_else(|_| args.file.clone());
    let work_dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));

    let gpus = match &args.gpus {
        Some(list) => {
            GpuPool::new(parse_gpu_list(list).map_err(|e| CliError::input(format!("--gpus: {e}")))?)
        }
        None => GpuPool::detect(),
    };
    let template_container = admit(&checked, &gpus, args.gpus.is_some())
        .map_err(|e| CliError::input(format!("{}: {e}", args.file.display())))?;
    let store = open_store(data_dir)?;
    let record = match prepare(&store, &checked, Some(file.clone()), work_dir.clone())? {
        Prepared::Run(record) => record,
        Prepared::AlreadyCompleted(record) => {
            eprintln!(
                "experiment {} already completed ({}): {}; raise spec.maxTrialCount to run more, or `sextant delete experiment {}` to start over",
                record.name, record.reason, record.message, record.name
            );
            print_summary(&store, &checked, &record)?;
            return Ok(if record.phase == ExperimentPhase::Failed {
                EXIT_FAILED
            } else {
                0
            });
        }
    };
    let log_dir = data_dir.join("logs").join(&record.name);
    std::fs::create_dir_all(&log_dir).map_err(|e| {
        CliError::failed(format!(
            "cannot create the log directory {}: {e}",
            log_dir.display()
        ))
    })?;

    let mut reporter = ConsoleReporter::new(args.quiet, checked.objective.strategies.clone());
    if record.trials_created > 0 {
        reporter.note(&format!(
            "resuming experiment {} ({} trial(s) from earlier runs) in {}",
            record.name,
            record.trials_created,
            data_dir.display()
        ));
    } else {
        reporter.note(&format!(
            "experiment {}: {} search, up to {} trial(s), {} at a time; data in {}",
            record.name,
            checked.algorithm.name,
            checked
                .max_trial_count
                .map_or("unlimited".to_string(), |n| n.to_string()),
            checked.parallel_trial_count,
            data_dir.display()
        ));
    }
    if let Some(image) = &template_container.image {
        reporter.note(&format!(
            "trials run as local processes; the container image {image:?} is not used"
        ));
    }

    let driver = local_driver(
        &store,
        &checked,
        record,
        work_dir,
        log_dir,
        gpus,
        template_container.gpus,
    )?;
    // Registered before the first trial starts, so an early Ctrl-C is caught too (the default
    // action would end sextant and leave the trials' process groups running). SIGTERM (`kill`,
    // `timeout`, a service manager) is handled the same way.
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| CliError::failed(format!("cannot handle Ctrl-C: {e}")))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| CliError::failed(format!("cannot handle SIGTERM: {e}")))?;
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        "interrupted: the run was stopped (Ctrl-C); run the same command again to resume"
            .to_string()
    };
    let (outcome, record) = driver.run(shutdown, &mut reporter).await?;
    reporter.clear_status();
    match outcome {
        RunOutcome::Interrupted => {
            eprintln!(
                "interrupted: running trials were stopped and marked Killed; run `sextant run {}` again to resume",
                args.file.display()
            );
            print_summary(&store, &checked, &record)?;
            Ok(EXIT_INTERRUPTED)
        }
        RunOutcome::Completed(completion) => {
            eprintln!(
                "experiment {} {}: {}",
                record.name,
                if completion.succeeded() {
                    "succeeded"
                } else {
                    "failed"
                },
                record.message
            );
            print_summary(&store, &checked, &record)?;
            Ok(if completion.succeeded() {
                0
            } else {
                EXIT_FAILED
            })
        }
    }
}

/// The control loop for one experiment with trials as local processes (used by `run` and `bench`).
pub(crate) fn local_driver<'s>(
    store: &'s Store,
    checked: &CheckedExperiment,
    record: ExperimentRecord,
    work_dir: PathBuf,
    log_dir: PathBuf,
    gpus: GpuPool,
    gpus_per_trial: u32,
) -> Result<Driver<'s, LocalRuntime>, CliError> {
    let engine =
        sextant_suggestion::configure(&checked.algorithm.name, &checked.algorithm.settings)
            .map_err(|e| CliError::input(format!("spec.algorithm: {e}")))?;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let runtime = LocalRuntime::new(
        LocalConfig {
            work_dir,
            log_dir: log_dir.clone(),
            primary_container: checked
                .template
                .primary_container_name
                .clone()
                .unwrap_or_default(),
            metric_names: checked.objective.metric_names(),
            collector: checked.collector.clone(),
            experiment: record.name.clone(),
            endpoint: None,
        },
        gpus,
        gpus_per_trial,
        sender,
    );
    Ok(Driver::new(
        store,
        checked.clone(),
        record,
        engine,
        runtime,
        receiver,
        log_dir,
    )?)
}

/// The final table of trials and the best one.
fn print_summary(
    store: &Store,
    checked: &CheckedExperiment,
    record: &ExperimentRecord,
) -> Result<(), CliError> {
    write_stdout(&summary_text(checked, &store.trials(&record.name)?))
}
