//! `sextant bench local`: trials per second through the whole local path.
//!
//! Runs N trivial trials (a command that prints one metric line and exits) through the same code as
//! `sextant run` (suggest, store, launch, collect, decide) and compares with launching the same
//! processes bare, so the table shows what Sextant itself costs per trial.

use std::time::{Duration, Instant};

use super::error::CliError;
use super::output::{Table, write_stdout};
use super::run::{Placement, local_driver};
use crate::controller::driver::{Progress, Reporter, RunOutcome};
use crate::controller::resume::{Prepared, prepare};
use crate::runtime::gpu::GpuPool;
use crate::spec;
use crate::store::{Store, TrialRecord};

/// `sextant bench ...`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Trivial trials through the local runtime.
    Local {
        /// Trials per run.
        #[arg(long, default_value_t = 1000)]
        trials: u32,
        /// Trials at once.
        #[arg(long, default_value_t = 8)]
        parallel: u32,
        /// Runs; the table shows each and the median.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
    /// Early stopping on the digits example, trained for real: random with full epochs vs random
    /// + asha vs random + medianstop vs hyperband; then the rules replayed over recorded curves.
    EarlyStopping {
        /// Seeds per strategy.
        #[arg(long, default_value_t = 5)]
        seeds: u32,
        /// Trials per random search.
        #[arg(long, default_value_t = 50)]
        trials: u32,
        /// The digits example directory.
        #[arg(long, default_value = "examples/digits")]
        examples: std::path::PathBuf,
    },
    /// Replays the stopping rules over an experiment's recorded curves (no training).
    Replay {
        /// The experiment (in --data-dir).
        experiment: String,
    },
    /// Load on the server's HTTP API over loopback: ingest, trials list, suggestions.
    Serve(super::bench_serve::BenchServeArgs),
}

/// Runs `sextant bench`.
pub async fn run(command: BenchCommand, data_dir: &std::path::Path) -> Result<u8, CliError> {
    let (trials, parallel, runs) = match command {
        BenchCommand::Local {
            trials,
            parallel,
            runs,
        } => (trials, parallel, runs),
        BenchCommand::EarlyStopping {
            seeds,
            trials,
            examples,
        } => {
            return super::bench_stopping::early_stopping(&examples, seeds, trials).await;
        }
        BenchCommand::Replay { experiment } => {
            return super::bench_stopping::replay_stored(data_dir, &experiment);
        }
        BenchCommand::Serve(args) => return super::bench_serve::run(args).await,
    };
    if trials == 0 || parallel == 0 || runs == 0 {
        return Err(CliError::input(
            "--trials, --parallel and --runs must be at least 1",
        ));
    }
    let mut table = Table::new([
        "RUN",
        "TRIALS",
        "PARALLEL",
        "WALL",
        "TRIALS/S",
        "BARE SPAWN/S",
        "OVERHEAD/TRIAL",
        "MEDIAN LATENCY",
    ]);
    let mut rates = Vec::new();
    let mut overheads = Vec::new();
    for run in 1..=runs {
        let bare = bare_spawn(trials, parallel).await?;
        let (wall, latency) = through_sextant(trials, parallel).await?;
        let rate = f64::from(trials) / wall.as_secs_f64();
        // Each of the `parallel` slots spends wall*parallel/N per trial; subtracting the bare
        // process cost leaves what Sextant adds.
        let overhead_ms = (wall.as_secs_f64() - bare.as_secs_f64()) * f64::from(parallel)
            / f64::from(trials)
            * 1e3;
        rates.push(rate);
        overheads.push(overhead_ms);
        table.row([
            run.to_string(),
            trials.to_string(),
            parallel.to_string(),
            format!("{:.2}s", wall.as_secs_f64()),
            format!("{rate:.0}"),
            format!("{:.0}", f64::from(trials) / bare.as_secs_f64()),
            format!("{overhead_ms:.2} ms"),
            format!("{:.1} ms", latency.as_secs_f64() * 1e3),
        ]);
    }
    table.row([
        "median".to_string(),
        String::new(),
        String::new(),
        String::new(),
        format!("{:.0}", median(&mut rates)),
        String::new(),
        format!("{:.2} ms", median(&mut overheads)),
        String::new(),
    ]);
    write_stdout(&table.render())?;
    Ok(0)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

const BENCH_EXPERIMENT: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: bench-local
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: random
    algorithmSettings:
      - name: random_state
        value: "1"
  parallelTrialCount: PARALLEL
  maxTrialCount: TRIALS
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {min: "0", max: "1"}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - name: x
        reference: x
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: training-container
                image: none
                command: [echo, "loss=${trialParameters.x}"]
"#;

/// A reporter that prints nothing (benchmarks time the loop, not the terminal).
pub(crate) struct Silent;

impl Reporter for Silent {
    fn note(&mut self, _: &str) {}
    fn trial_started(&mut self, _: &TrialRecord, _: &Progress<'_>) {}
    fn trial_finished(&mut self, _: &TrialRecord, _: &Progress<'_>) {}
    fn tick(&mut self, _: &Progress<'_>) {}
}

async fn through_sextant(trials: u32, parallel: u32) -> Result<(Duration, Duration), CliError> {
    let dir = tempfile::tempdir().map_err(|e| CliError::failed(e.to_string()))?;
    let text = BENCH_EXPERIMENT
        .replace("PARALLEL", &parallel.to_string())
        .replace("TRIALS", &trials.to_string());
    let checked =
        spec::check(&text).map_err(|e| CliError::failed(format!("benchmark experiment: {e}")))?;
    let store = Store::open(&dir.path().join("store"))?;
    let log_dir = dir.path().join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|e| CliError::failed(e.to_string()))?;
    let Prepared::Run(record) = prepare(&store, &checked, None, dir.path().to_path_buf())? else {
        return Err(CliError::failed(
            "benchmark experiment unexpectedly complete",
        ));
    };
    let started = Instant::now();
    let driver = local_driver(
        &store,
        &checked,
        record,
        Placement {
            work_dir: dir.path().to_path_buf(),
            log_dir,
            gpus: GpuPool::default(),
            gpus_per_trial: 0,
            endpoint: None,
        },
    )?;
    let (outcome, _) = driver
        .run(std::future::pending::<String>(), &mut Silent)
        .await?;
    let wall = started.elapsed();
    if outcome != RunOutcome::Completed(crate::controller::policy::Completion::MaxTrialsReached) {
        return Err(CliError::failed(format!(
            "benchmark run ended with {outcome:?}"
        )));
    }
    let records = store.trials("bench-local")?;
    let succeeded = records.iter().filter(|t| t.objective.is_some()).count();
    if succeeded != trials as usize {
        return Err(CliError::failed(format!(
            "only {succeeded} of {trials} benchmark trials reported their metric"
        )));
    }
    let mut latencies: Vec<f64> = records
        .iter()
        .filter_map(|t| {
            t.finished
                .map(|f| f.duration_since(t.created).as_secs_f64())
        })
        .collect();
    let latency = Duration::from_secs_f64(median(&mut latencies).max(0.0));
    Ok((wall, latency))
}

/// The same processes, launched and waited for with nothing else: the floor Sextant is compared to.
async fn bare_spawn(trials: u32, parallel: u32) -> Result<Duration, CliError> {
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for i in 0..trials {
        if running.len() >= parallel as usize {
            running.join_next().await;
        }
        running.spawn(async move {
            tokio::process::Command::new("echo")
                .arg(format!("loss=0.{i}"))
                .stdout(std::process::Stdio::piped())
                .output()
                .await
        });
    }
    while running.join_next().await.is_some() {}
    Ok(started.elapsed())
}
