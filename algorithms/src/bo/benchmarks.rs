//! Tuning harness (ignored tests, run by hand in release mode) for what `examples/bench` does not
//! cover: simple regret under other acquisitions, κ, ξ and batch sizes, and the per-call latency
//! over a whole experiment (scheduled refits included).
//!
//! ```sh
//! BO_ACQ=logei BO_SEEDS=30 cargo test --release -p sextant-algorithms bo::benchmarks::quality \
//!     -- --ignored --nocapture
//! BO_D=12 cargo test --release -p sextant-algorithms bo::benchmarks::latency_loop -- --ignored --nocapture
//! ```
//!
//! Environment: `BO_SEEDS` (10), `BO_BUDGET` (100), `BO_BATCH` (1), `BO_FUNCTIONS` (all four,
//! comma-separated), `BO_ACQ` (`logei`, `ei`, `pi`, `lcb`, `hedge`), `BO_KAPPA`, `BO_XI`,
//! `BO_THREADS` (2); `BO_D` (6) and `BO_END` (1000) for the latency loop.

use std::time::Instant;

use super::*;
use crate::engine::CompletedTrial;
use crate::test_functions::{TestFunction, box_space, coordinates, rosenbrock};
use crate::test_support::{env_or, median};

type Function = TestFunction;

fn functions() -> Vec<Function> {
    let wanted = std::env::var("BO_FUNCTIONS").unwrap_or_default();
    TestFunction::ALL
        .into_iter()
        .filter(|f| wanted.is_empty() || wanted.split(',').any(|w| w == f.name()))
        .collect()
}

fn settings() -> BayesOptSettings {
    let acquisition = match std::env::var("BO_ACQ").unwrap_or_default().as_str() {
        "ei" => Acquisition::Ei,
        "pi" => Acquisition::Pi,
        "lcb" => Acquisition::Lcb,
        "hedge" => Acquisition::GpHedge,
        "logei" => Acquisition::LogEi,
        _ => BayesOptSettings::default().acquisition,
    };
    BayesOptSettings {
        acquisition,
        kappa: env_or("BO_KAPPA", DEFAULT_KAPPA),
        xi: env_or("BO_XI", DEFAULT_XI),
        ..BayesOptSettings::default()
    }
}

/// One sequential run; the regret trace and the total engine time.
fn run(function: &Function, seed: u64, budget: usize) -> (Vec<f64>, f64) {
    let engine = BayesOptEngine::new(settings());
    let space = function.search_space();
    let mut history: Vec<CompletedTrial> = Vec::new();
    let mut state: Option<serde_json::Value> = None;
    let mut best = f64::INFINITY;
    let mut trace = Vec::new();
    let mut seconds = 0.0;
    let batch: usize = env_or("BO_BATCH", 1);
    while history.len() < budget {
        let started = Instant::now();
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
        seconds += started.elapsed().as_secs_f64();
        for point in answer.points.clone() {
            assert!(space.contains(&point));
            let loss = function
                .evaluate(&coordinates(&point).expect("benchmark spaces hold only doubles"));
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
    (trace, seconds)
}

#[test]
#[ignore = "benchmark: run by hand in release mode"]
fn quality() {
    let seeds: u64 = env_or("BO_SEEDS", 10);
    let budget: usize = env_or("BO_BUDGET", 100);
    let threads: usize = env_or("BO_THREADS", 2);
    for function in functions() {
        let jobs: Vec<u64> = (0..seeds).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&seed) = jobs.get(i) else { break };
                        let outcome = run(&function, seed, budget);
                        results.lock().unwrap().push((seed, outcome));
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap();
        results.sort_by_key(|r| r.0);
        let at = |b: usize| -> Vec<f64> {
            results
                .iter()
                .map(|(_, (trace, _))| trace[b.min(trace.len()) - 1])
                .collect()
        };
        let time: f64 = results.iter().map(|(_, (_, s))| s).sum();
        let mut line = format!("{:12}", function.name());
        for b in [50, 100, 200] {
            if b <= budget {
                let v = at(b);
                let gm = (v.iter().map(|r| r.max(1e-12).ln()).sum::<f64>() / v.len() as f64).exp();
                let mut sorted = v.clone();
                sorted.sort_by(f64::total_cmp);
                let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
                line += &format!(
                    "  {b}: {:.3e} (gm {:.2e} q25 {:.1e} q75 {:.1e})",
                    median(v),
                    gm,
                    q(0.25),
                    q(0.75)
                );
            }
        }
        line += &format!("  [{:.1}s engine]", time);
        println!("{line}");
        println!(
            "    per seed @50: {}",
            at(50.min(budget))
                .iter()
                .map(|v| format!("{v:.2e}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        println!(
            "    per seed @{budget}: {}",
            at(budget)
                .iter()
                .map(|v| format!("{v:.2e}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

/// Per-call latency over a whole experiment (state carried from call to call, so scheduled refits
/// and cache appends are included), on the latency benchmark's random Rosenbrock history.
#[test]
#[ignore = "benchmark: run by hand in release mode"]
fn latency_loop() {
    let d: usize = env_or("BO_D", 6);
    let end: usize = env_or("BO_END", 1000);
    let engine = BayesOptEngine::new(settings());
    let space = box_space(&vec![(0.0, 1.0); d]);
    let mut rng = stream_rng(99, d as u64, 0);
    let history: Vec<CompletedTrial> = (0..end)
        .map(|_| {
            let unit: Vec<f64> = (0..d).map(|_| unit_f64(&mut rng)).collect();
            let point = space.from_unit(&unit);
            let x: Vec<f64> = coordinates(&point)
                .unwrap_or_default()
                .iter()
                .map(|v| 4.0 * v - 2.0)
                .collect();
            CompletedTrial {
                point,
                loss: Some(rosenbrock(&x)),
            }
        })
        .collect();
    let mut state: Option<serde_json::Value> = None;
    let mut times = Vec::new();
    for n in 10..=end {
        let started = Instant::now();
        let answer = engine
            .suggest(&SuggestRequest {
                space: &space,
                history: &history[..n],
                pending: &[],
                count: 1,
                seed: 99,
                state: state.as_ref(),
            })
            .unwrap();
        times.push((n, started.elapsed().as_secs_f64() * 1e3));
        state = Some(answer.state);
    }
    for (lo, hi) in [
        (10, 50),
        (50, 100),
        (100, 200),
        (200, 400),
        (400, 1000),
        (1000, 1000),
    ] {
        let mut window: Vec<f64> = times
            .iter()
            .filter(|(n, _)| *n >= lo && *n <= hi)
            .map(|(_, t)| *t)
            .collect();
        if window.is_empty() {
            continue;
        }
        window.sort_by(f64::total_cmp);
        let q = |p: f64| window[((window.len() - 1) as f64 * p).round() as usize];
        println!(
            "d={d} n in [{lo}, {hi}]: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} calls)",
            q(0.5),
            q(0.99),
            q(1.0),
            window.len()
        );
    }
}
