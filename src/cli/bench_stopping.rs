//! `sextant bench early-stopping` and `sextant bench replay`: what early stopping saves, measured.
//!
//! `early-stopping` trains the digits example for real: for each seed, random search with every
//! trial running the full epochs, random search with `asha`, random search with `medianstop`, and
//! `hyperband` (epochs as its resource, the same maximum). It reports the epochs consumed, the
//! wall time and the best validation accuracy. `replay` runs stopping rules over the curves an
//! experiment recorded, on a virtual clock made of the recorded timestamps (no training), so a
//! policy is compared in seconds; `early-stopping` replays over its own full-epoch runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sextant_algorithms::early_stopping::{Rule, TimedPoint, replay};

use super::bench::Silent;
use super::error::CliError;
use super::output::{Table, write_stdout};
use super::run::{Placement, local_driver};
use crate::controller::driver::RunOutcome;
use crate::controller::policy::{self, best_trial};
use crate::controller::resume::{Prepared, prepare};
use crate::runtime::gpu::GpuPool;
use crate::spec::{self, CheckedExperiment};
use crate::store::{Store, TrialRecord};

/// Strategies compared, in table order.
const STRATEGIES: &[&str] = &[
    "random (full epochs)",
    "random + asha",
    "random + medianstop",
    "hyperband",
];

/// One strategy's run on one seed.
struct RunFigures {
    epochs: u64,
    seconds: f64,
    best: f64,
    trials: usize,
}

/// Runs `sextant bench early-stopping`.
pub async fn early_stopping(examples: &Path, seeds: u32, trials: u32) -> Result<u8, CliError> {
    let random = read(examples, "asha.yaml")?;
    let hyperband = read(examples, "hyperband.yaml")?;
    let mut figures: Vec<Vec<RunFigures>> = STRATEGIES.iter().map(|_| Vec::new()).collect();
    let mut replays: Vec<(String, Vec<(u64, f64)>)> = Vec::new();
    for seed in 0..seeds {
        let specs = [
            strategy_yaml(&random, "full", seed, trials, None),
            strategy_yaml(&random, "asha", seed, trials, Some(ASHA)),
            strategy_yaml(&random, "median", seed, trials, Some(MEDIAN)),
            hyperband.replace(
                "name: digits-hyperband",
                &format!("name: bench-hyperband-{seed}"),
            ),
        ];
        for (k, yaml) in specs.iter().enumerate() {
            eprintln!("seed {seed}: {} ...", STRATEGIES[k]);
            let dir = tempfile::tempdir().map_err(|e| CliError::failed(e.to_string()))?;
            let (run, store, checked) = run_experiment(yaml, examples, dir.path()).await?;
            if k == 0 {
                let curves = recorded_curves(&store, &checked)?;
                for (name, rule) in replay_rules() {
                    let outcome = replay(&curves.timed, &rule);
                    let best = best_within(&curves.values, &outcome.last_steps);
                    match replays.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, results)) => results.push((outcome.steps_consumed, best)),
                        None => replays.push((name, vec![(outcome.steps_consumed, best)])),
                    }
                }
            }
            figures[k].push(run);
        }
    }
    let mut table = Table::new([
        "STRATEGY",
        "TRIALS",
        "EPOCHS (median)",
        "EPOCHS vs FULL",
        "WALL (median)",
        "BEST ACCURACY (median)",
        "BEST vs FULL (pp)",
    ]);
    let full_epochs = median(figures[0].iter().map(|f| f.epochs as f64).collect());
    let full_best = median(figures[0].iter().map(|f| f.best).collect());
    for (k, runs) in figures.iter().enumerate() {
        let epochs = median(runs.iter().map(|f| f.epochs as f64).collect());
        let best = median(runs.iter().map(|f| f.best).collect());
        table.row([
            STRATEGIES[k].to_string(),
            format!(
                "{:.0}",
                median(runs.iter().map(|f| f.trials as f64).collect())
            ),
            format!("{epochs:.0}"),
            format!("{:.2}", epochs / full_epochs),
            format!("{:.1}s", median(runs.iter().map(|f| f.seconds).collect())),
            format!("{best:.4}"),
            format!("{:+.2}", (best - full_best) * 100.0),
        ]);
    }
    let mut text = format!(
        "{seeds} seeds, {trials} trials per random search, at most 27 epochs per trial\n\n"
    );
    text.push_str(&table.render());
    text.push_str("\nPer seed (epochs / best accuracy):\n");
    let mut per_seed = Table::new(
        std::iter::once("SEED".to_string()).chain(STRATEGIES.iter().map(|s| s.to_string())),
    );
    for seed in 0..seeds as usize {
        per_seed.row(
            std::iter::once(seed.to_string()).chain(
                figures
                    .iter()
                    .map(|runs| format!("{} / {:.4}", runs[seed].epochs, runs[seed].best)),
            ),
        );
    }
    text.push_str(&per_seed.render());
    text.push_str(
        "\nReplay of the rules over the full-epoch runs' recorded curves (virtual clock):\n",
    );
    text.push_str(&replay_table(&replays, full_epochs, full_best));
    for (k, name) in STRATEGIES.iter().enumerate().skip(1) {
        if *name == "random + medianstop" {
            continue;
        }
        let epochs = median(figures[k].iter().map(|f| f.epochs as f64).collect());
        let best = median(figures[k].iter().map(|f| f.best).collect());
        let met = (full_best - best) * 100.0 <= 0.5 && epochs <= full_epochs / 3.0;
        text.push_str(&format!(
            "target for {name}: best within 0.5 pp of full random ({:+.2} pp) and at most 1/3 of its epochs ({:.2}) → {}\n",
            (best - full_best) * 100.0,
            epochs / full_epochs,
            if met { "met" } else { "NOT met" }
        ));
    }
    write_stdout(&text)?;
    Ok(0)
}

/// Runs `sextant bench replay`: stopping rules over an experiment's recorded curves.
pub fn replay_stored(data_dir: &Path, experiment: &str) -> Result<u8, CliError> {
    let store = super::open_store(data_dir)?;
    let record = super::get::load_experiment(&store, experiment)?;
    let yaml =
        serde_json::to_string(&record.experiment).map_err(|e| CliError::failed(e.to_string()))?;
    let checked =
        spec::check(&yaml).map_err(|e| CliError::failed(format!("stored experiment: {e}")))?;
    let curves = recorded_curves(&store, &checked)?;
    let full_epochs: u64 = curves
        .timed
        .iter()
        .map(|c| c.iter().map(|p| p.0).max().unwrap_or(0) as u64)
        .sum();
    let full_best = best_within(
        &curves.values,
        &curves
            .timed
            .iter()
            .map(|c| c.iter().map(|p| p.0).max().unwrap_or(0))
            .collect::<Vec<_>>(),
    );
    let started = Instant::now();
    let replays: Vec<(String, Vec<(u64, f64)>)> = replay_rules()
        .into_iter()
        .map(|(name, rule)| {
            let outcome = replay(&curves.timed, &rule);
            (
                name,
                vec![(
                    outcome.steps_consumed,
                    best_within(&curves.values, &outcome.last_steps),
                )],
            )
        })
        .collect();
    let mut text = format!(
        "{} trials of {experiment}: {full_epochs} steps, best {} {full_best:.4} when every trial runs to its end\n",
        curves.timed.len(),
        checked.objective.metric
    );
    text.push_str(&replay_table(&replays, full_epochs as f64, full_best));
    text.push_str(&format!(
        "replayed in {:.1} ms\n",
        started.elapsed().as_secs_f64() * 1e3
    ));
    write_stdout(&text)?;
    Ok(0)
}

const ASHA: &str = "  earlyStopping:\n    algorithmName: asha\n    algorithmSettings:\n      - {name: min_resource, value: \"1\"}\n      - {name: reduction_factor, value: \"3\"}\n      - {name: max_resource, value: \"27\"}\n";
const MEDIAN: &str = "  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings:\n      - {name: min_trials_required, value: \"3\"}\n      - {name: start_step, value: \"4\"}\n";

/// The random-search example with this seed, trial count and early-stopping block (or none).
fn strategy_yaml(
    asha_example: &str,
    tag: &str,
    seed: u32,
    trials: u32,
    early: Option<&str>,
) -> String {
    let start = asha_example.find("  earlyStopping:").unwrap_or(0);
    let end = asha_example.find("  parallelTrialCount:").unwrap_or(start);
    let mut yaml = format!(
        "{}{}{}",
        &asha_example[..start],
        early.unwrap_or(""),
        &asha_example[end..]
    );
    yaml = yaml.replace("name: digits-asha", &format!("name: bench-{tag}-{seed}"));
    yaml = yaml.replace("value: \"42\"", &format!("value: \"{seed}\""));
    yaml.lines()
        .map(|line| {
            if line.trim_start().starts_with("maxTrialCount:") {
                format!("  maxTrialCount: {trials}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn read(examples: &Path, file: &str) -> Result<String, CliError> {
    let path = examples.join(file);
    std::fs::read_to_string(&path).map_err(|e| {
        CliError::input(format!(
            "cannot read {}: {e} (pass --examples with the digits example directory)",
            path.display()
        ))
    })
}

async fn run_experiment(
    yaml: &str,
    work_dir: &Path,
    data: &Path,
) -> Result<(RunFigures, Store, CheckedExperiment), CliError> {
    let checked =
        spec::check(yaml).map_err(|e| CliError::failed(format!("benchmark experiment: {e}")))?;
    let store = Store::open(&data.join("store"))?;
    let log_dir = data.join("logs");
    std::fs::create_dir_all(&log_dir).map_err(|e| CliError::failed(e.to_string()))?;
    let work_dir: PathBuf =
        std::fs::canonicalize(work_dir).unwrap_or_else(|_| work_dir.to_path_buf());
    let Prepared::Run(record) = prepare(&store, &checked, None, work_dir.clone())? else {
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
            work_dir,
            log_dir,
            gpus: GpuPool::default(),
            gpus_per_trial: 0,
            endpoint: None,
        },
    )?;
    let (outcome, _) = driver.run(std::future::pending(), &mut Silent).await?;
    let seconds = started.elapsed().as_secs_f64();
    if matches!(outcome, RunOutcome::Completed(c) if !c.succeeded()) {
        return Err(CliError::failed(format!(
            "benchmark experiment {} failed",
            checked.name
        )));
    }
    let trials = store.trials(&checked.name)?;
    let epochs = trials.iter().map(epochs_run).sum();
    let best = best_trial(checked.objective.direction, &trials)
        .and_then(|t| t.objective)
        .unwrap_or(f64::NAN);
    Ok((
        RunFigures {
            epochs,
            seconds,
            best,
            trials: trials.len(),
        },
        store,
        checked,
    ))
}

/// Epochs a trial trained: the number of objective values it reported.
fn epochs_run(trial: &TrialRecord) -> u64 {
    trial.metrics.iter().map(|m| m.count).max().unwrap_or(0)
}

/// An experiment's objective curves: as losses with their times (for replay), and as values.
struct RecordedCurves {
    timed: Vec<Vec<TimedPoint>>,
    values: Vec<Vec<(i64, f64)>>,
}

fn recorded_curves(store: &Store, checked: &CheckedExperiment) -> Result<RecordedCurves, CliError> {
    let direction = checked.objective.direction;
    let mut timed = Vec::new();
    let mut values = Vec::new();
    for trial in store.trials(&checked.name)? {
        let points = store.observations(trial.uid, Some(&checked.objective.metric))?;
        timed.push(
            points
                .iter()
                .map(|p| {
                    (
                        p.step,
                        policy::as_loss(direction, p.value),
                        p.timestamp.as_millisecond() as f64 / 1e3,
                    )
                })
                .collect(),
        );
        values.push(
            points
                .iter()
                .map(|p| (p.step, policy::as_loss(direction, p.value)))
                .collect(),
        );
    }
    Ok(RecordedCurves { timed, values })
}

/// The best objective value any trial reached within the steps it ran (back in the metric's own
/// sign: larger is better for accuracy).
fn best_within(curves: &[Vec<(i64, f64)>], last_steps: &[i64]) -> f64 {
    let best_loss = curves
        .iter()
        .zip(last_steps)
        .flat_map(|(curve, last)| {
            curve
                .iter()
                .filter(move |(step, _)| step <= last)
                .map(|(_, loss)| *loss)
        })
        .fold(f64::INFINITY, f64::min);
    -best_loss
}

fn replay_rules() -> Vec<(String, Rule)> {
    use sextant_algorithms::early_stopping::{AshaStop, MedianStop, PercentileStop};
    vec![
        (
            "asha (1, 3, 27)".to_string(),
            Rule::Asha(AshaStop {
                min_resource: 1,
                reduction_factor: 3,
                max_resource: 27,
            }),
        ),
        (
            "medianstop (3, 4)".to_string(),
            Rule::Median(MedianStop::default()),
        ),
        (
            "percentile 25 (3, 4)".to_string(),
            Rule::Percentile(PercentileStop {
                percentile: 25.0,
                ..PercentileStop::default()
            }),
        ),
        (
            "percentile 75 (3, 4)".to_string(),
            Rule::Percentile(PercentileStop {
                percentile: 75.0,
                ..PercentileStop::default()
            }),
        ),
    ]
}

fn replay_table(replays: &[(String, Vec<(u64, f64)>)], full_epochs: f64, full_best: f64) -> String {
    let mut table = Table::new([
        "RULE",
        "STEPS (median)",
        "STEPS vs FULL",
        "BEST KEPT (median)",
        "BEST vs FULL (pp)",
    ]);
    for (name, results) in replays {
        let steps = median(results.iter().map(|r| r.0 as f64).collect());
        let best = median(results.iter().map(|r| r.1).collect());
        table.row([
            name.clone(),
            format!("{steps:.0}"),
            format!("{:.2}", steps / full_epochs),
            format!("{best:.4}"),
            format!("{:+.2}", (best - full_best) * 100.0),
        ]);
    }
    table.render()
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
