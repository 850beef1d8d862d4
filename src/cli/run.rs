//! `sextant run FILE`: run an experiment locally with live progress, then print a summary.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use tokio::signal::unix::{SignalKind, signal};

use super::error::{EXIT_FAILED, EXIT_INTERRUPTED};
use super::output::{Table, duration, number, write_stdout};
use super::{CliError, open_store};
use crate::controller::driver::{Driver, Progress, Reporter, RunOutcome};
use crate::controller::policy::{self, TrialCounts};
use crate::controller::resume::{Prepared, prepare};
use crate::runtime::gpu::{GpuPool, parse_gpu_list};
use crate::runtime::local::{LocalConfig, LocalRuntime, admit};
use crate::spec::{self, CheckedExperiment, Direction, MetricStrategyKind};
use crate::store::{ExperimentPhase, ExperimentRecord, Store, TrialRecord, TrialState};

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
    let trials = store.trials(&record.name)?;
    let best = policy::best_trial(checked.objective.direction, &trials);
    let metric = &checked.objective.metric;
    let params: Vec<String> = checked
        .space
        .params()
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let mut header = vec![
        "TRIAL".to_string(),
        "STATUS".to_string(),
        metric.to_uppercase(),
    ];
    header.extend(params.iter().map(|p| p.to_uppercase()));
    let mut table = Table::new(header);
    for trial in &trials {
        let marker = if best.is_some_and(|b| b.name == trial.name) {
            " *"
        } else {
            ""
        };
        let mut row = vec![
            format!("{}{marker}", trial.name),
            trial.state.to_string(),
            trial.objective.map(number).unwrap_or_else(|| "-".into()),
        ];
        row.extend(params.iter().map(|p| {
            trial
                .assignments
                .iter()
                .find(|a| &a.name == p)
                .map(|a| a.value.clone())
                .unwrap_or_default()
        }));
        table.row(row);
    }
    let mut text = table.render();
    match best {
        Some(best) => text.push_str(&format!(
            "\nbest: {} with {metric}={} ({}): {}\n",
            best.name,
            best.objective.map(number).unwrap_or_default(),
            match checked.objective.direction {
                Direction::Maximize => "maximize",
                Direction::Minimize => "minimize",
            },
            best.assignments
                .iter()
                .map(|a| format!("{}={}", a.name, a.value))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        None => text.push_str("\nno trial reported the objective metric yet\n"),
    }
    write_stdout(&text)
}

/// Progress on stderr: a line per finished trial, and a status line kept up to date on a terminal.
struct ConsoleReporter {
    /// Each metric's strategy, so a finished trial shows the value that counts (`max` accuracy),
    /// not merely the last one.
    strategies: BTreeMap<String, MetricStrategyKind>,
    quiet: bool,
    terminal: bool,
    status_shown: bool,
}

impl ConsoleReporter {
    fn new(quiet: bool, strategies: BTreeMap<String, MetricStrategyKind>) -> Self {
        ConsoleReporter {
            strategies,
            quiet,
            terminal: std::io::stderr().is_terminal(),
            status_shown: false,
        }
    }

    fn clear_status(&mut self) {
        if self.status_shown {
            eprint!("\r\x1b[2K");
            self.status_shown = false;
        }
    }

    fn line(&mut self, text: &str) {
        if self.quiet {
            return;
        }
        self.clear_status();
        eprintln!("{text}");
    }

    fn status(&mut self, progress: &Progress<'_>) {
        if self.quiet || !self.terminal {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", status_text(progress));
        let _ = err.flush();
        self.status_shown = true;
    }
}

fn status_text(progress: &Progress<'_>) -> String {
    let c: TrialCounts = progress.counts;
    let done = c.finished();
    let total = progress
        .max_trials
        .map_or(String::new(), |m| format!("/{m}"));
    let best = progress
        .best
        .and_then(|b| {
            b.objective
                .map(|v| format!("best {} ({})", number(v), b.name))
        })
        .unwrap_or_else(|| "no result yet".into());
    format!(
        "[{done}{total} done, {} running, {} failed] {best} · {}",
        c.running,
        c.failed_for_budget(),
        duration(progress.elapsed)
    )
}

impl Reporter for ConsoleReporter {
    fn note(&mut self, message: &str) {
        self.line(message);
    }

    fn trial_started(&mut self, trial: &TrialRecord, progress: &Progress<'_>) {
        let params = trial
            .assignments
            .iter()
            .map(|a| format!("{}={}", a.name, a.value))
            .collect::<Vec<_>>()
            .join(" ");
        if trial.state == TrialState::Failed {
            self.line(&format!(
                "✗ {} could not start: {}",
                trial.name, trial.message
            ));
        } else {
            self.line(&format!("▸ {} started: {params}", trial.name));
        }
        self.status(progress);
    }

    fn trial_finished(&mut self, trial: &TrialRecord, progress: &Progress<'_>) {
        let metrics = trial
            .metrics
            .iter()
            .map(|m| {
                let (value, how) = match self.strategies.get(&m.name) {
                    Some(MetricStrategyKind::Min) => (m.min, "min"),
                    Some(MetricStrategyKind::Max) => (m.max, "max"),
                    _ => (m.latest, "latest"),
                };
                format!("{}={} ({how})", m.name, number(value))
            })
            .collect::<Vec<_>>()
            .join(" ");
        let symbol = match trial.state {
            TrialState::Succeeded => "✓",
            TrialState::Killed | TrialState::EarlyStopped => "■",
            _ => "✗",
        };
        let detail = match trial.state {
            TrialState::Succeeded => metrics,
            _ => format!("{} {}", metrics, trial.message).trim().to_string(),
        };
        let text = format!("{symbol} {} {}: {detail}", trial.name, trial.state);
        self.line(&text);
        if !self.terminal && !self.quiet {
            eprintln!("  {}", status_text(progress));
        }
        self.status(progress);
    }

    fn tick(&mut self, progress: &Progress<'_>) {
        self.status(progress);
    }
}
