//! `latency`: the time from a trial finishing to the engine's next suggestion.
//!
//! For each dimension `d` the history is `n` points drawn uniformly (seeded) from a space of `d`
//! continuous doubles on `[0, 1]`, each with the loss of a `d`-dimensional Rosenbrock over
//! `[-2, 2]^d` (smooth, curved, with a wide range of values, as real losses often have). Every
//! `n` uses the first `n` points of the same draw.
//!
//! **Warm** (default), the case of a live experiment: the engine is called once with the first
//! `n − 1` points and no state, and its state is saved (through JSON bytes, as the controller
//! stores it). Then `repeats` calls with all `n` points and that state are timed, each asking for
//! one suggestion. **Cold** (`--cold`) times the `n`-point calls with no state, as after a lost
//! state. Calls run in this process on this thread, one at a time; nothing else is timed.
//!
//! A cell shows the 0.5 and 0.99 quantiles of its calls (interpolated; with 5 calls the p99 is
//! close to the slowest call). A cell whose calls (set-up call included) pass `--max-seconds` is
//! cut short and shows `skipped`, and so do the larger `n` of that engine and `d`: a call already
//! running cannot be interrupted, so the limit is checked between calls.

use std::time::Instant;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};
use serde_json::Value as Json;
use sextant_algorithms::{CompletedTrial, Engine, SearchSpace, SuggestRequest};

use crate::cli::LatencyOptions;
use crate::engines::{self, EngineChoice, Role};
use crate::stats::{format_ms, format_ratio, quantile};
use crate::table::{MarkdownTable, error_cell};
use sextant_algorithms::test_functions::{box_space, coordinates, rosenbrock};

/// The seed of the history's points and of every engine call (any fixed value would do).
const LATENCY_SEED: u64 = 20_260_101;

/// Optuna GPSampler's time per suggestion as measured for the issue: `(d, n, milliseconds)`.
const OPTUNA_GP_MS: [(usize, usize, f64); 5] = [
    (6, 50, 67.0),
    (6, 100, 51.0),
    (6, 200, 116.0),
    (6, 400, 299.0),
    (12, 400, 561.0),
];

/// Target: p50 at most 20 ms with 200 points in 6 dimensions ...
const TARGET_SMALL: (usize, usize, f64) = (6, 200, 20.0);

/// ... at most 1 s with 1000 points in 12 dimensions ...
const TARGET_LARGE: (usize, usize, f64) = (12, 1000, 1000.0);

/// ... and at least this many times faster than Optuna GPSampler at every reference point.
const TARGET_SPEED_UP: f64 = 10.0;

/// Optuna TPESampler's time per suggestion quoted in issue 7: `(d, n, milliseconds)`.
const OPTUNA_TPE_MS: [(usize, usize, f64); 2] = [(6, 50, 1.9), (6, 400, 8.8)];

/// Issue 7's latency target for `tpe`: at least 10× faster than Optuna TPE at n = 400, d = 6,
/// i.e. p50 ≤ 8.8 / 10 = 0.88 ms.
const TPE_TARGET: (usize, usize, f64) = (6, 400, 0.88);

/// Which latency target each engine is judged by, by algorithm name: the GP's (issue 4) or
/// TPE's (issue 7). Engines not listed are shown by the GP's, for comparison.
const LATENCY_TARGETS: [(&str, LatencyRule, Role); 3] = [
    ("bayesianoptimization", LatencyRule::Gp, Role::Target),
    ("tpe", LatencyRule::Tpe, Role::Target),
    ("multivariate-tpe", LatencyRule::Tpe, Role::Shown),
];

/// A latency target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LatencyRule {
    /// Issue 4: [`TARGET_SMALL`], [`TARGET_LARGE`] and 10× Optuna GPSampler.
    Gp,
    /// Issue 7: [`TPE_TARGET`].
    Tpe,
}

fn latency_rule(engine: EngineChoice) -> LatencyRule {
    LATENCY_TARGETS
        .iter()
        .find(|(name, _, _)| *name == engine.name())
        .map_or(LatencyRule::Gp, |(_, rule, _)| *rule)
}

fn latency_roles() -> Vec<(&'static str, Role)> {
    LATENCY_TARGETS
        .iter()
        .map(|(name, _, role)| (*name, *role))
        .collect()
}

/// One cell of the table.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Timed { p50_ms: f64, p99_ms: f64 },
    Failed(String),
    Skipped,
    NotRun,
}

impl Cell {
    fn p50_ms(&self) -> Option<f64> {
        match self {
            Cell::Timed { p50_ms, .. } => Some(*p50_ms),
            _ => None,
        }
    }

    fn render(&self) -> String {
        match self {
            Cell::Timed { p50_ms, p99_ms } => {
                format!("{} / {}", format_ms(*p50_ms), format_ms(*p99_ms))
            }
            Cell::Failed(message) => error_cell(message),
            Cell::Skipped => "skipped".to_owned(),
            Cell::NotRun => "—".to_owned(),
        }
    }
}

/// Every cell, by engine, dimension and history size, in the options' order.
struct Measurements {
    cells: Vec<(EngineChoice, usize, usize, Cell)>,
}

impl Measurements {
    fn cell(&self, engine: EngineChoice, d: usize, n: usize) -> &Cell {
        self.cells
            .iter()
            .find(|(e, cd, cn, _)| *e == engine && *cd == d && *cn == n)
            .map_or(&Cell::NotRun, |(_, _, _, cell)| cell)
    }
}

/// Runs the benchmark and returns its report (markdown).
pub fn run(options: &LatencyOptions) -> String {
    let measurements = measure_all(options);
    let mut report = latency_tables(options, &measurements);
    report.push('\n');
    report.push_str(&optuna_comparison(options, &measurements));
    report.push('\n');
    report.push_str(&optuna_tpe_comparison(options, &measurements));
    report
}

fn measure_all(options: &LatencyOptions) -> Measurements {
    let largest = options.history_sizes.last().copied().unwrap_or(0);
    let mut cells = Vec::new();
    for &engine_choice in &options.engines {
        let engine = engine_choice.build();
        for &d in &options.dimensions {
            let (space, history) = history(d, largest);
            let mut over_time = false;
            for &n in &options.history_sizes {
                let cell = if over_time {
                    Cell::Skipped
                } else {
                    measure_cell(&*engine, &space, &history[..n], options)
                };
                over_time = cell == Cell::Skipped;
                report_progress(engine_choice, d, n, &cell);
                cells.push((engine_choice, d, n, cell));
            }
        }
    }
    Measurements { cells }
}

/// `n` uniform points of `[0, 1]^d` with their Rosenbrock losses.
fn history(d: usize, n: usize) -> (SearchSpace, Vec<CompletedTrial>) {
    let space = box_space(&vec![(0.0, 1.0); d]);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(LATENCY_SEED ^ d as u64);
    let history = (0..n)
        .map(|_| {
            let unit: Vec<f64> = (0..d).map(|_| unit_f64(&mut rng)).collect();
            let point = space.from_unit(&unit);
            let x = coordinates(&point).unwrap_or(unit);
            let scaled: Vec<f64> = x.iter().map(|v| 4.0 * v - 2.0).collect();
            CompletedTrial {
                point,
                loss: Some(rosenbrock(&scaled)),
            }
        })
        .collect();
    (space, history)
}

/// A float in `[0, 1)` from the top 53 bits of a draw.
fn unit_f64(rng: &mut impl Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn request<'a>(
    space: &'a SearchSpace,
    history: &'a [CompletedTrial],
    state: Option<&'a Json>,
) -> SuggestRequest<'a> {
    SuggestRequest {
        space,
        history,
        pending: &[],
        count: 1,
        seed: LATENCY_SEED,
        state,
    }
}

/// Times `options.repeats` calls with `history` (all `n` points).
fn measure_cell(
    engine: &dyn Engine,
    space: &SearchSpace,
    history: &[CompletedTrial],
    options: &LatencyOptions,
) -> Cell {
    let started = Instant::now();
    let state = if options.cold {
        None
    } else {
        match state_before_last(engine, space, history) {
            Ok(state) => Some(state),
            Err(message) => return Cell::Failed(message),
        }
    };
    let mut times_ms = Vec::with_capacity(options.repeats);
    for _ in 0..options.repeats {
        if started.elapsed().as_secs_f64() > options.max_seconds {
            return Cell::Skipped;
        }
        let request = request(space, history, state.as_ref());
        let call_started = Instant::now();
        let outcome = engines::suggest(engine, &request);
        let elapsed_ms = call_started.elapsed().as_secs_f64() * 1e3;
        match outcome {
            Ok(suggestions) if suggestions.points.is_empty() => {
                return Cell::Failed("the engine returned no point".into());
            }
            Ok(_) => times_ms.push(elapsed_ms),
            Err(message) => return Cell::Failed(message),
        }
    }
    match (quantile(&times_ms, 0.5), quantile(&times_ms, 0.99)) {
        (Some(p50_ms), Some(p99_ms)) => Cell::Timed { p50_ms, p99_ms },
        _ => Cell::NotRun,
    }
}

/// The state the engine saved after seeing all but the last point of `history`.
fn state_before_last(
    engine: &dyn Engine,
    space: &SearchSpace,
    history: &[CompletedTrial],
) -> Result<Json, String> {
    let earlier = &history[..history.len().saturating_sub(1)];
    let suggestions = engines::suggest(engine, &request(space, earlier, None))
        .map_err(|message| format!("with {} points: {message}", earlier.len()))?;
    engines::as_saved(&suggestions.state)
}

fn report_progress(engine: EngineChoice, d: usize, n: usize, cell: &Cell) {
    let result = match cell {
        Cell::Timed { p50_ms, p99_ms } => {
            format!(
                "p50 {} ms, p99 {} ms",
                format_ms(*p50_ms),
                format_ms(*p99_ms)
            )
        }
        other => other.render(),
    };
    eprintln!("latency {} d={d} n={n}: {result}", engine.name());
}

fn latency_tables(options: &LatencyOptions, measurements: &Measurements) -> String {
    let mode = if options.cold {
        "cold: no saved state"
    } else {
        "warm: with the state saved after n − 1 points"
    };
    let mut out = format!(
        "## Time to the next suggestion, p50 / p99 ms over {} calls ({mode})\n\n\
         Rows: dimensions d; columns: history size n. One suggestion per call, in-process, \
         single-threaded.\n",
        options.repeats
    );
    for &engine in &options.engines {
        let mut header = vec!["d".to_owned()];
        header.extend(options.history_sizes.iter().map(|n| format!("n = {n}")));
        let mut table = MarkdownTable::new(header);
        for &d in &options.dimensions {
            let mut row = vec![d.to_string()];
            for &n in &options.history_sizes {
                row.push(measurements.cell(engine, d, n).render());
            }
            table.push(row);
        }
        out.push_str(&format!("\n### {}\n\n{}", engine.name(), table.render()));
    }
    out
}

/// A table of `reference`'s quoted times (d, n, ms) beside each engine's p50 and its speed-up.
fn speed_up_table(
    options: &LatencyOptions,
    measurements: &Measurements,
    reference: &str,
    quoted: &[(usize, usize, f64)],
) -> MarkdownTable {
    let mut header = vec!["d".to_owned(), "n".to_owned(), format!("{reference} ms")];
    header.extend(
        options
            .engines
            .iter()
            .map(|e| format!("{} p50 ms (speed-up)", e.name())),
    );
    let mut table = MarkdownTable::new(header);
    for &(d, n, optuna_ms) in quoted {
        let mut row = vec![d.to_string(), n.to_string(), format_ms(optuna_ms)];
        for &engine in &options.engines {
            let cell = measurements.cell(engine, d, n);
            row.push(match cell.p50_ms() {
                Some(ms) => format!("{} ({})", format_ms(ms), format_ratio(optuna_ms / ms)),
                None => cell.render(),
            });
        }
        table.push(row);
    }
    table
}

fn optuna_comparison(options: &LatencyOptions, measurements: &Measurements) -> String {
    let table = speed_up_table(options, measurements, "Optuna GPSampler", &OPTUNA_GP_MS);
    let mut out = format!(
        "## Against Optuna GPSampler (issue figures, not measured here)\n\n{}\n\
         Targets for `{}`: p50 ≤ {} ms at n = {}, d = {}; p50 ≤ {} ms at n = {}, d = {}; at least \
         {}× faster than Optuna GPSampler at every row above.\n\n",
        table.render(),
        "bayesianoptimization",
        TARGET_SMALL.2,
        TARGET_SMALL.1,
        TARGET_SMALL.0,
        TARGET_LARGE.2,
        TARGET_LARGE.1,
        TARGET_LARGE.0,
        TARGET_SPEED_UP
    );
    for (engine, role) in engines::by_role(&options.engines, &latency_roles()) {
        if latency_rule(engine) != LatencyRule::Gp {
            continue;
        }
        out.push_str(&format!("- {} ({}):\n", engine.name(), role.label()));
        for target in [TARGET_SMALL, TARGET_LARGE] {
            out.push_str(&format!(
                "  - {}\n",
                time_verdict(measurements, engine, target)
            ));
        }
        out.push_str(&format!("  - {}\n", speed_up_verdict(measurements, engine)));
    }
    out
}

/// Issue 7's Optuna TPE times beside each engine's p50, and the TPE target's verdicts.
fn optuna_tpe_comparison(options: &LatencyOptions, measurements: &Measurements) -> String {
    let table = speed_up_table(options, measurements, "Optuna TPE", &OPTUNA_TPE_MS);
    let mut out = format!(
        "## Against Optuna TPE (issue 7 figures, not measured here)\n\n{}\n\
         Target for `tpe`: at least {TARGET_SPEED_UP}× faster than Optuna TPE at n = {}, d = {}.\n\n",
        table.render(),
        TPE_TARGET.1,
        TPE_TARGET.0,
    );
    for (engine, role) in engines::by_role(&options.engines, &latency_roles()) {
        if latency_rule(engine) != LatencyRule::Tpe {
            continue;
        }
        out.push_str(&format!(
            "- {} ({}): {}\n",
            engine.name(),
            role.label(),
            time_verdict(measurements, engine, TPE_TARGET)
        ));
    }
    out
}

fn time_verdict(
    measurements: &Measurements,
    engine: EngineChoice,
    (d, n, limit_ms): (usize, usize, f64),
) -> String {
    let goal = format!("p50 ≤ {limit_ms} ms at n = {n}, d = {d}");
    match measurements.cell(engine, d, n).p50_ms() {
        Some(ms) => format!(
            "{goal}: {} ms → {}",
            format_ms(ms),
            met_or_not(ms <= limit_ms)
        ),
        None => format!("{goal}: not measured (the cell says why)"),
    }
}

fn speed_up_verdict(measurements: &Measurements, engine: EngineChoice) -> String {
    let goal = format!("≥ {TARGET_SPEED_UP}× faster than Optuna GPSampler");
    let mut slowest: f64 = f64::INFINITY;
    for (d, n, optuna_ms) in OPTUNA_GP_MS {
        let Some(ms) = measurements.cell(engine, d, n).p50_ms() else {
            return format!("{goal}: not measured at n = {n}, d = {d} (the cell says why)");
        };
        slowest = slowest.min(optuna_ms / ms);
    }
    format!(
        "{goal}: smallest speed-up {} → {}",
        format_ratio(slowest),
        met_or_not(slowest >= TARGET_SPEED_UP)
    )
}

fn met_or_not(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(cold: bool) -> LatencyOptions {
        LatencyOptions {
            history_sizes: vec![1, 10],
            dimensions: vec![2, 6],
            repeats: 3,
            engines: vec![EngineChoice::Random, EngineChoice::BayesianOptimization],
            cold,
            max_seconds: 60.0,
        }
    }

    #[test]
    fn histories_are_seeded_prefixes_inside_the_cube() {
        let (space, long) = history(6, 20);
        let (_, short) = history(6, 5);
        assert_eq!(long[..5], short[..]);
        assert!(long.iter().all(|t| space.contains(&t.point)));
        assert!(long.iter().all(|t| t.loss.is_some_and(f64::is_finite)));
    }

    #[test]
    fn every_cell_is_timed_or_explains_itself() {
        for cold in [false, true] {
            let options = options(cold);
            let measurements = measure_all(&options);
            assert_eq!(measurements.cells.len(), 8);
            for (engine, _, _, cell) in &measurements.cells {
                match engine {
                    EngineChoice::Random => {
                        assert!(matches!(cell, Cell::Timed { .. }), "{cell:?}")
                    }
                    _ => assert!(matches!(cell, Cell::Timed { .. } | Cell::Failed(_))),
                }
            }
            let report = run(&options);
            assert!(report.contains("### random"), "{report}");
            assert!(report.contains("not measured at n = 50, d = 6"), "{report}");
        }
    }

    #[test]
    fn over_time_cells_and_larger_histories_are_skipped() {
        let mut options = options(false);
        options.engines = vec![EngineChoice::Random];
        options.max_seconds = 1e-9;
        options.repeats = 1000;
        let measurements = measure_all(&options);
        assert!(
            measurements
                .cells
                .iter()
                .all(|(_, _, _, cell)| *cell == Cell::Skipped)
        );
    }
}
