//! Tuning harness (an ignored test, run by hand in release mode) for what `examples/bench` does not
//! vary: the initial step size, the startup design, the restart strategy, other seed ranges and
//! batches.
//!
//! ```sh
//! CMA_SIGMA=0.25 CMA_STARTUP=0 CMA_SEED0=10 cargo test --release -p sextant-algorithms \
//!     cmaes::benchmarks::quality -- --ignored --nocapture
//! ```
//!
//! Environment: `CMA_SEEDS` (10), `CMA_SEED0` (0: seeds `SEED0..SEED0+SEEDS`), `CMA_BUDGET`
//! (100), `CMA_BATCH` (1), `CMA_PARALLEL` (0: off; `k` trials running at once, finishing in a
//! scrambled order), `CMA_FUNCTIONS` (all four, comma-separated), `CMA_SIGMA`,
//! `CMA_STARTUP`, `CMA_POP`, `CMA_RESTART` (`none`, `ipop`, `bipop`), `CMA_THREADS` (2).

use super::*;
use crate::engine::CompletedTrial;
use crate::test_functions::{TestFunction, coordinates};
use crate::test_support::{env_or, median};

fn settings(dims: usize) -> CmaEsSettings {
    let restart_strategy = match std::env::var("CMA_RESTART").unwrap_or_default().as_str() {
        "ipop" => RestartStrategy::Ipop,
        "bipop" => RestartStrategy::Bipop,
        _ => RestartStrategy::None,
    };
    CmaEsSettings {
        restart_strategy,
        sigma: env_or("CMA_SIGMA", DEFAULT_SIGMA),
        startup_trials: env_or("CMA_STARTUP", DEFAULT_STARTUP_TRIALS),
        population: match std::env::var("CMA_POP").unwrap_or_default().as_str() {
            // `hansen`: 4 + ⌊3 ln n⌋, the tutorial's default.
            "hansen" => Some(4 + (3.0 * (dims as f64).ln()).floor() as usize),
            other => other.parse().ok(),
        },
    }
}

/// One run with `parallel` trials running at once, finishing in a scrambled order: each step one
/// running trial finishes and the engine is asked to refill the free slots (it may give fewer
/// while the generation waits). The regret trace by finished trial.
fn run_parallel(function: TestFunction, seed: u64, budget: usize, parallel: usize) -> Vec<f64> {
    let space = function.search_space();
    let engine = CmaEsEngine::new(settings(space.dims()));
    let mut history: Vec<CompletedTrial> = Vec::new();
    let mut running: Vec<Point> = Vec::new();
    let mut state: Option<serde_json::Value> = None;
    let mut best = f64::INFINITY;
    let mut trace = Vec::new();
    let mut step = 0u64;
    while history.len() < budget {
        let room = parallel
            .saturating_sub(running.len())
            .min(budget - history.len() - running.len());
        let answer = engine
            .suggest(&SuggestRequest {
                space: &space,
                history: &history,
                pending: &running,
                count: room,
                seed,
                state: state.as_ref(),
            })
            .unwrap();
        running.extend(answer.points);
        state = Some(answer.state);
        assert!(!running.is_empty(), "stalled at {}", history.len());
        let pick = (crate::seeding::mix64(seed ^ step) % running.len() as u64) as usize;
        step += 1;
        let point = running.remove(pick);
        let loss = function.evaluate(&coordinates(&point).unwrap());
        best = best.min(loss);
        trace.push(best - function.minimum());
        history.push(CompletedTrial {
            point,
            loss: Some(loss),
        });
    }
    trace
}

/// One run in batches of `batch` (every batch finishes before the next call); the regret trace.
fn run(function: TestFunction, seed: u64, budget: usize, batch: usize) -> Vec<f64> {
    let space = function.search_space();
    let engine = CmaEsEngine::new(settings(space.dims()));
    let mut history: Vec<CompletedTrial> = Vec::new();
    let mut state: Option<serde_json::Value> = None;
    let mut best = f64::INFINITY;
    let mut trace = Vec::new();
    while history.len() < budget {
        let answer = engine
            .suggest(&SuggestRequest {
                space: &space,
                history: &history,
                pending: &[],
                count: batch.min(budget - history.len()),
                seed,
                state: state.as_ref(),
            })
            .unwrap();
        assert!(!answer.points.is_empty(), "stalled at {}", history.len());
        for point in answer.points {
            assert!(space.contains(&point));
            let loss = function.evaluate(&coordinates(&point).unwrap());
            best = best.min(loss);
            trace.push(best - function.minimum());
            history.push(CompletedTrial {
                point,
                loss: Some(loss),
            });
        }
        let bytes = serde_json::to_vec(&answer.state).unwrap();
        state = Some(serde_json::from_slice(&bytes).unwrap());
    }
    trace
}

#[test]
#[ignore = "benchmark: run by hand in release mode"]
fn quality() {
    let seeds: u64 = env_or("CMA_SEEDS", 10);
    let seed0: u64 = env_or("CMA_SEED0", 0);
    let budget: usize = env_or("CMA_BUDGET", 100);
    let batch: usize = env_or("CMA_BATCH", 1);
    let parallel: usize = env_or("CMA_PARALLEL", 0);
    let threads: usize = env_or("CMA_THREADS", 2);
    let wanted = std::env::var("CMA_FUNCTIONS").unwrap_or_default();
    let functions = TestFunction::ALL
        .into_iter()
        .filter(|f| wanted.is_empty() || wanted.split(',').any(|w| w == f.name()));
    println!(
        "settings {:?} seeds {seed0}..{} batch {batch} parallel {parallel}",
        settings(4),
        seed0 + seeds
    );
    for function in functions {
        let jobs: Vec<u64> = (seed0..seed0 + seeds).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&seed) = jobs.get(i) else { break };
                        let trace = if parallel > 0 {
                            run_parallel(function, seed, budget, parallel)
                        } else {
                            run(function, seed, budget, batch)
                        };
                        results.lock().unwrap().push((seed, trace));
                    }
                });
            }
        });
        let results = results.into_inner().unwrap();
        let at = |b: usize| -> Vec<f64> {
            results
                .iter()
                .map(|(_, trace)| trace[b.min(trace.len()) - 1])
                .collect()
        };
        let mut line = format!("{:12}", function.name());
        for b in [50, 100, 200] {
            if b <= budget {
                line += &format!("  @{b}: {:.3e}", median(at(b)));
            }
        }
        println!("{line}");
    }
}
