//! `sextant run FILE`: run an experiment locally with live progress, then print a summary.

use std::path::{Path, PathBuf};

use tokio::signal::unix::{SignalKind, signal};

use super::console::{ConsoleReporter, summary_text};
use super::error::{EXIT_FAILED, EXIT_INTERRUPTED};
use super::output::write_stdout;
use super::{CliError, open_store};
use crate::api::{self, AccessConfig, AppState};
use crate::controller::driver::{Driver, DriverCommand, Reporter, RunOutcome};
use crate::controller::resume::{Prepared, prepare};
use crate::controller::supervisor::Supervisor;
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

    // A loopback API for the run: trials with a Push collector (or `sextant-collector`) send
    // their metrics to it, and other terminals can read the run with `--server` while this
    // process holds the store.
    let (commands, commands_rx) = tokio::sync::mpsc::unbounded_channel();
    let live = LiveApi::start(&store, data_dir, &record.name, commands).await?;
    reporter.note(&format!(
        "live API on {url} (from another terminal: sextant get trials {} --server {url})",
        record.name,
        url = live.url
    ));
    let driver = local_driver(
        &store,
        &checked,
        record,
        Placement {
            work_dir,
            log_dir,
            gpus,
            gpus_per_trial: template_container.gpus,
            endpoint: Some(live.url.clone()),
        },
    )?
    .with_commands(commands_rx);
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
    let result = driver.run(shutdown, &mut reporter).await;
    live.stop().await;
    let (outcome, record) = result?;
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

/// Where and how a local run's trials run.
pub(crate) struct Placement {
    /// The directory trials run in.
    pub work_dir: PathBuf,
    /// Where their logs go.
    pub log_dir: PathBuf,
    /// GPUs to share out.
    pub gpus: GpuPool,
    /// GPUs each trial takes.
    pub gpus_per_trial: u32,
    /// Where trials push metrics, if anywhere.
    pub endpoint: Option<String>,
}

/// The control loop for one experiment with trials as local processes (used by `run` and `bench`).
pub(crate) fn local_driver<'s>(
    store: &'s Store,
    checked: &CheckedExperiment,
    record: ExperimentRecord,
    placement: Placement,
) -> Result<Driver<'s, LocalRuntime>, CliError> {
    let Placement {
        work_dir,
        log_dir,
        gpus,
        gpus_per_trial,
        endpoint,
    } = placement;
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
            endpoint,
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

/// The API a local run serves on a loopback port while it runs.
struct LiveApi {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LiveApi {
    async fn start(
        store: &Store,
        data_dir: &Path,
        experiment: &str,
        commands: tokio::sync::mpsc::UnboundedSender<DriverCommand>,
    ) -> Result<LiveApi, CliError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| CliError::failed(format!("cannot listen on loopback: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| CliError::failed(format!("cannot read the listening address: {e}")))?;
        let url = format!("http://{address}");
        let supervisor = Supervisor::new(
            store.clone(),
            data_dir.to_path_buf(),
            url.clone(),
            GpuPool::default(),
        );
        supervisor.attach(experiment, commands);
        // Administrative calls are not offered here: the token is random and never shown.
        let state = AppState::new(
            store.clone(),
            supervisor,
            AccessConfig {
                admin_token: crate::auth::new_token(),
                auth_reads: false,
            },
        );
        state.set_ready();
        let router = api::router(state, api::DEFAULT_REQUEST_TIMEOUT);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(api::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        Ok(LiveApi { url, stop, server })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

/// The final table of trials and the best one.
fn print_summary(
    store: &Store,
    checked: &CheckedExperiment,
    record: &ExperimentRecord,
) -> Result<(), CliError> {
    write_stdout(&summary_text(checked, &store.trials(&record.name)?))
}
