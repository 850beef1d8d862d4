use std::collections::HashSet;

use serde_json::Value as Json;

use super::*;
use crate::engine::CompletedTrial;
use crate::sobol::SobolEngine;
use crate::space::{Distribution, Parameter};
use crate::test_functions::box_space;
use crate::test_support::{SEED, choices, int_range, space, suggest_after as call, uniform_double};

fn engine(restart_strategy: RestartStrategy) -> CmaEsEngine {
    CmaEsEngine::new(CmaEsSettings {
        restart_strategy,
        ..CmaEsSettings::default()
    })
}

/// The state as the controller keeps it: JSON bytes and back.
fn saved(state: &Json) -> Json {
    serde_json::from_slice(&serde_json::to_vec(state).unwrap()).unwrap()
}

fn run_of(state: &Json) -> SavedRun {
    SavedState::read(
        Some(state),
        state["dims"].as_u64().unwrap() as usize,
        MAX_POPULATION,
    )
    .unwrap()
    .unwrap()
    .run
    .unwrap()
}

/// A sequential experiment of `budget` trials of `f` (on the point's doubles and ints); the best
/// loss and the final state.
fn minimise(
    engine: &CmaEsEngine,
    space: &SearchSpace,
    f: impl Fn(&[f64]) -> f64,
    budget: usize,
    seed: u64,
) -> (f64, Json) {
    let mut history = Vec::new();
    let mut state: Option<Json> = None;
    let mut best = f64::INFINITY;
    while history.len() < budget {
        let answer = engine
            .suggest(&SuggestRequest {
                space,
                history: &history,
                pending: &[],
                count: 1,
                seed,
                state: state.as_ref(),
            })
            .unwrap();
        let point = answer.points.into_iter().next().expect("a point");
        assert!(space.contains(&point));
        let x: Vec<f64> = point
            .iter()
            .map(|v| match v {
                Value::Double(x) => *x,
                Value::Int(i) => *i as f64,
                Value::Choice(i) => *i as f64,
            })
            .collect();
        let loss = f(&x);
        best = best.min(loss);
        history.push(CompletedTrial {
            point,
            loss: Some(loss),
        });
        state = Some(saved(&answer.state));
    }
    (best, state.unwrap_or(Json::Null))
}

#[test]
fn converges_on_convex_quadratics() {
    // A sphere in d = 4 and an ellipsoid (condition 1e3) in d = 6, both shifted off-centre in
    // [-5, 5]^d, from the default start (centre, σ = 1/6, λ = 4 + ⌊2 ln d⌋, mean injected):
    // regret below 1e-6 within 60 generations (360 trials) and 190 generations (1,330 trials), for
    // five seeds each. Measured when this test was written: at most 7.1e-9 and 7.9e-11, so the
    // bounds have margin.
    let sphere = |x: &[f64]| x.iter().map(|v| (v - 1.3).powi(2)).sum::<f64>();
    let ellipsoid = |x: &[f64]| {
        let d = x.len() as f64;
        x.iter()
            .enumerate()
            .map(|(i, v)| 1e3f64.powf(i as f64 / (d - 1.0)) * (v + 2.1).powi(2))
            .sum::<f64>()
    };
    type Objective<'a> = &'a dyn Fn(&[f64]) -> f64;
    let cases: [(usize, Objective<'_>, usize); 2] = [(4, &sphere, 60), (6, &ellipsoid, 190)];
    for (d, f, generations) in cases {
        let space = box_space(&vec![(-5.0, 5.0); d]);
        let lambda = default_population(d);
        for seed in 0..5 {
            let (best, state) = minimise(
                &engine(RestartStrategy::None),
                &space,
                f,
                generations * lambda,
                seed,
            );
            assert!(best < 1e-6, "d = {d}, seed {seed}: best {best}");
            assert!(run_of(&state).generation as usize >= generations - 1);
        }
    }
}

/// A loss that never changes: every run stops by flat fitness after `10 + ⌈30n/λ⌉` generations.
fn flat_run(strategy: RestartStrategy, trials: usize) -> Vec<(Regime, usize, f64)> {
    let space = box_space(&[(0.0, 1.0), (0.0, 1.0)]);
    let engine = engine(strategy);
    let mut history = Vec::new();
    let mut state: Option<Json> = None;
    let mut runs: Vec<(Regime, usize, f64)> = Vec::new();
    while history.len() < trials {
        let answer = call(&engine, &space, &history, &[], 1, state.as_ref());
        let run = run_of(&answer.state);
        if runs.last().map(|r| (r.0, r.1, r.2)) != Some((run.regime, run.lambda, run.sigma0))
            || run.generation == 0 && run.asked.len() == 1
        {
            runs.push((run.regime, run.lambda, run.sigma0));
        }
        history.extend(answer.points.into_iter().map(|point| CompletedTrial {
            point,
            loss: Some(1.0),
        }));
        state = Some(saved(&answer.state));
    }
    runs
}

#[test]
fn ipop_doubles_the_population_at_each_restart() {
    let runs = flat_run(RestartStrategy::Ipop, 1_500);
    let lambdas: Vec<usize> = runs.iter().map(|r| r.1).collect();
    assert!(lambdas.len() >= 4, "{runs:?}");
    assert_eq!(&lambdas[..4], &[5, 10, 20, 40]);
    assert_eq!(runs[0].0, Regime::Default);
    assert!(
        runs[1..]
            .iter()
            .all(|r| r.0 == Regime::Large && r.2 == DEFAULT_SIGMA)
    );
    // Without restarts the first run goes on.
    let none = flat_run(RestartStrategy::None, 600);
    assert_eq!(none.len(), 1, "{none:?}");
}

#[test]
fn bipop_alternates_large_and_small_regimes() {
    let runs = flat_run(RestartStrategy::Bipop, 3_000);
    assert_eq!(runs[0].0, Regime::Default);
    assert_eq!(runs[1].0, Regime::Large, "{runs:?}");
    let large: Vec<usize> = runs
        .iter()
        .filter(|r| r.0 == Regime::Large)
        .map(|r| r.1)
        .collect();
    let small: Vec<&(Regime, usize, f64)> = runs.iter().filter(|r| r.0 == Regime::Small).collect();
    assert!(large.len() >= 2 && small.len() >= 2, "{runs:?}");
    // Large populations double; small ones stay between the default and half the last large
    // one, with a step size at most the initial one.
    assert_eq!(&large[..2], &[10, 20]);
    let largest = *large.last().unwrap();
    for r in &small {
        assert!((5..=largest / 2).contains(&r.1), "{runs:?}");
        assert!(r.2 <= DEFAULT_SIGMA && r.2 >= DEFAULT_SIGMA / 100.0);
    }
    // Both regimes recur: after the first large run, small ones come before the next large one.
    let first_small = runs.iter().position(|r| r.0 == Regime::Small).unwrap();
    let second_large = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.0 == Regime::Large)
        .nth(1)
        .unwrap()
        .0;
    assert!(first_small < second_large, "{runs:?}");
}

#[test]
fn a_saved_state_resumes_exactly() {
    // Batches of 3 with trials finishing a call later, a mixed space, restarts on: run 40 calls
    // straight, and again with the state through JSON bytes at every call: the same points.
    let space = space(vec![
        ("x", uniform_double(-1.0, 2.0)),
        ("n", int_range(1, 40)),
        (
            "lr",
            Domain::Double {
                min: 1e-4,
                max: 1e-1,
                step: None,
                distribution: Distribution::LogUniform,
            },
        ),
        ("opt", choices(&["adam", "sgd", "rmsprop"])),
    ]);
    let loss = |p: &Point| -> f64 {
        let x = space.to_unit(p);
        x.iter().map(|u| (u - 0.3).powi(2)).sum()
    };
    let drive = |through_bytes: bool| -> Vec<Point> {
        let engine = engine(RestartStrategy::Bipop);
        let mut history: Vec<CompletedTrial> = Vec::new();
        let mut pending: Vec<Point> = Vec::new();
        let mut state: Option<Json> = None;
        let mut all = Vec::new();
        for _ in 0..40 {
            let answer = call(&engine, &space, &history, &pending, 3, state.as_ref());
            history.extend(pending.drain(..).map(|point| CompletedTrial {
                loss: Some(loss(&point)),
                point,
            }));
            pending = answer.points.clone();
            all.extend(answer.points);
            state = Some(if through_bytes {
                saved(&answer.state)
            } else {
                answer.state
            });
        }
        all
    };
    let straight = drive(false);
    assert!(straight.len() > 60);
    assert_eq!(drive(true), straight);
}

#[test]
fn generations_wait_for_their_trials_and_never_repeat_a_point() {
    let space = box_space(&[(0.0, 1.0), (0.0, 1.0), (0.0, 1.0)]);
    let engine = engine(RestartStrategy::None);
    let lambda = default_population(3);
    // Asking for more than a generation gives the generation only.
    let first = call(&engine, &space, &[], &[], 20, None);
    assert_eq!(first.points.len(), lambda);
    // With the generation running nothing more can be asked.
    let waiting = call(&engine, &space, &[], &first.points, 5, Some(&first.state));
    assert!(waiting.points.is_empty() && !waiting.exhausted);
    // All but one finished (one failed): still waiting.
    let mut history: Vec<CompletedTrial> = first.points[..lambda - 1]
        .iter()
        .enumerate()
        .map(|(i, p)| CompletedTrial {
            point: p.clone(),
            loss: if i == 2 { None } else { Some(i as f64) },
        })
        .collect();
    let last = &first.points[lambda - 1..];
    let still = call(&engine, &space, &history, last, 5, Some(&first.state));
    assert!(still.points.is_empty());
    assert_eq!(run_of(&still.state).generation, 0);
    // The last one finishes: the update happens and a new generation is asked.
    history.push(CompletedTrial {
        point: last[0].clone(),
        loss: Some(0.5),
    });
    let next = call(&engine, &space, &history, &[], 4, Some(&first.state));
    assert_eq!(next.points.len(), 4);
    let run = run_of(&next.state);
    assert_eq!((run.generation, run.asked.len()), (1, 4));
    // The new generation's first point is the updated mean itself (INJECT_MEAN).
    let first_unit = space.to_unit(&next.points[0]);
    assert!(
        first_unit
            .iter()
            .zip(&run.mean)
            .all(|(u, m)| (u - m.clamp(0.0, 1.0)).abs() < 1e-12),
        "{first_unit:?} vs {:?}",
        run.mean
    );
    assert_ne!(run.mean, vec![0.5; 3]);
    let keys: HashSet<Vec<u64>> = history
        .iter()
        .map(|t| &t.point)
        .chain(&next.points)
        .map(|p| space.point_key(p))
        .collect();
    assert_eq!(keys.len(), lambda + 4);
}

#[test]
fn a_lost_point_is_offered_again() {
    let space = box_space(&[(0.0, 1.0), (0.0, 1.0)]);
    let engine = engine(RestartStrategy::None);
    let first = call(&engine, &space, &[], &[], 6, None);
    // The caller created only the first four; they finish.
    let history: Vec<CompletedTrial> = first.points[..4]
        .iter()
        .map(|p| CompletedTrial {
            point: p.clone(),
            loss: Some(1.0),
        })
        .collect();
    let again = call(&engine, &space, &history, &[], 6, Some(&first.state));
    assert_eq!(again.points, first.points[4..]);
    assert_eq!(run_of(&again.state).generation, 0);
}

#[test]
fn refuses_spaces_with_fewer_than_two_continuous_parameters() {
    let engine = CmaEsEngine::default();
    let one = space(vec![
        ("x", uniform_double(0.0, 1.0)),
        ("opt", choices(&["a", "b"])),
        (
            "d",
            Domain::Discrete {
                values: vec![1.0, 2.0],
                labels: vec!["1".into(), "2".into()],
            },
        ),
    ]);
    let message = engine.check_space(&one).unwrap_err().to_string();
    assert!(
        message.contains("at least two continuous") && message.contains("1 (x)"),
        "{message}"
    );
    let none = space(vec![("opt", choices(&["a", "b"]))]);
    let message = engine.check_space(&none).unwrap_err().to_string();
    assert!(message.contains("has none"), "{message}");
    assert!(matches!(
        engine.suggest(&SuggestRequest {
            space: &none,
            history: &[],
            pending: &[],
            count: 1,
            seed: SEED,
            state: None,
        }),
        Err(EngineError::UnsupportedSpace(_))
    ));
    let two = space(vec![
        ("x", uniform_double(0.0, 1.0)),
        ("n", int_range(1, 3)),
    ]);
    assert_eq!(engine.check_space(&two), Ok(()));
}

#[test]
fn strangers_states_are_refused() {
    let space = box_space(&[(0.0, 1.0), (0.0, 1.0)]);
    let bad = serde_json::json!({ "index": 3 });
    assert!(matches!(
        CmaEsEngine::default().suggest(&SuggestRequest {
            space: &space,
            history: &[],
            pending: &[],
            count: 1,
            seed: SEED,
            state: Some(&bad),
        }),
        Err(EngineError::BadState(_))
    ));
}

#[test]
fn small_finite_spaces_are_covered_then_exhausted() {
    // 3 × 4 ints: the search converges onto one point, and the engine moves on to untaken points
    // until all 12 are used.
    let space = space(vec![("a", int_range(0, 2)), ("b", int_range(0, 3))]);
    let engine = engine(RestartStrategy::None);
    let mut history = Vec::new();
    let mut state: Option<Json> = None;
    for _ in 0..30 {
        let answer = call(&engine, &space, &history, &[], 2, state.as_ref());
        history.extend(answer.points.into_iter().map(|point| CompletedTrial {
            point,
            loss: Some(0.0),
        }));
        state = Some(answer.state);
        if answer.exhausted {
            break;
        }
    }
    let keys: HashSet<Vec<u64>> = history.iter().map(|t| space.point_key(&t.point)).collect();
    assert_eq!((history.len(), keys.len()), (12, 12));
}

#[test]
fn startup_trials_seed_the_mean_at_the_best() {
    let space = box_space(&[(0.0, 10.0), (0.0, 10.0)]);
    let engine = CmaEsEngine::new(CmaEsSettings {
        startup_trials: 5,
        ..CmaEsSettings::default()
    });
    let first = call(&engine, &space, &[], &[], 8, None);
    // Only the design, then the engine waits for it.
    assert_eq!(first.points.len(), 5);
    let sobol = SobolEngine
        .suggest(&SuggestRequest {
            space: &space,
            history: &[],
            pending: &[],
            count: 5,
            seed: SEED,
            state: None,
        })
        .unwrap();
    assert_eq!(first.points, sobol.points);
    let history: Vec<CompletedTrial> = first
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| CompletedTrial {
            point: p.clone(),
            loss: Some(if i == 3 { -1.0 } else { i as f64 }),
        })
        .collect();
    let next = call(&engine, &space, &history, &[], 1, Some(&first.state));
    let run = run_of(&next.state);
    let best = space.to_unit(&first.points[3]);
    assert_eq!(run.mean, best);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn numeric_domain() -> impl Strategy<Value = Domain> {
        prop_oneof![
            (
                -100.0..100.0f64,
                0.0..50.0f64,
                prop::option::of(1u32..20),
                prop::bool::ANY
            )
                .prop_map(|(min, width, steps, log)| {
                    let min = if log { min.abs() + 1e-3 } else { min };
                    Domain::Double {
                        min,
                        max: min + width,
                        step: steps.filter(|_| width > 0.0).map(|n| width / f64::from(n)),
                        distribution: if log {
                            Distribution::LogUniform
                        } else {
                            Distribution::Uniform
                        },
                    }
                }),
            (-50i64..50, 0i64..30, 1i64..4).prop_map(|(min, width, step)| Domain::Int {
                min,
                max: min + width,
                step: Some(step.min(width.max(1))),
                distribution: Distribution::Uniform,
            }),
        ]
    }

    fn other_domain() -> impl Strategy<Value = Domain> {
        prop_oneof![
            prop::collection::btree_set(-20i32..20, 1..5).prop_map(|set| {
                // Listed in reverse, to exercise the numeric ordering of discrete coordinates.
                let values: Vec<f64> = set.iter().rev().map(|v| f64::from(*v) / 2.0).collect();
                Domain::Discrete {
                    labels: values.iter().map(|v| format!("{v}")).collect(),
                    values,
                }
            }),
            (1usize..4).prop_map(|n| Domain::Categorical {
                choices: (0..n).map(|i| format!("c{i}")).collect(),
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn suggestions_are_in_space_distinct_and_rounded_consistently(
            numeric in prop::collection::vec(numeric_domain(), 2..5),
            others in prop::collection::vec(other_domain(), 0..3),
            batch in 1usize..7,
            seed in 0u64..1000,
            strategy in prop_oneof![
                Just(RestartStrategy::None),
                Just(RestartStrategy::Ipop),
                Just(RestartStrategy::Bipop),
            ],
        ) {
            let params: Vec<Parameter> = numeric
                .into_iter()
                .chain(others)
                .enumerate()
                .map(|(i, domain)| Parameter { name: format!("p{i}"), domain })
                .collect();
            let space = SearchSpace::new(params).unwrap();
            let layout = Layout::new(&space);
            let engine = engine(strategy);
            let mut history: Vec<CompletedTrial> = Vec::new();
            let mut pending: Vec<Point> = Vec::new();
            let mut state: Option<Json> = None;
            let mut seen = HashSet::new();
            for call_number in 0..25 {
                let had_pending = !pending.is_empty();
                let answer = engine
                    .suggest(&SuggestRequest {
                        space: &space,
                        history: &history,
                        pending: &pending,
                        count: batch,
                        seed,
                        state: state.as_ref(),
                    })
                    .unwrap();
                for point in &answer.points {
                    prop_assert!(space.contains(point), "{:?}", point);
                    prop_assert!(seen.insert(space.point_key(point)), "repeated {:?}", point);
                    // What is reported parses back to itself, and the update is told the
                    // coordinates of this (rounded) point.
                    prop_assert_eq!(&space.parse(&space.render(point)).unwrap(), point);
                }
                if let Ok(run) = SavedState::read(Some(&answer.state), layout.dims(), MAX_POPULATION).map(|s| s.unwrap().run.unwrap()) {
                    for unit in &run.asked {
                        let point = space.from_unit(unit);
                        prop_assert!(space.contains(&point));
                        let told = layout.coordinates(&space, &point);
                        let again = space.from_unit(&layout.unit_vector(&space, &told, &[]));
                        // Re-rounding the told coordinates gives the same numeric values.
                        for c in &layout.numeric {
                            let p = match c { Coordinate::Direct { param } | Coordinate::Ordinal { param, .. } => *param };
                            if let (Domain::Double { step: None, min, max, .. }, Value::Double(a), Value::Double(b)) = (&space.params()[p].domain, again[p], point[p]) {
                                prop_assert!((a - b).abs() <= 1e-9 * (max - min).max(1.0));
                            } else {
                                prop_assert_eq!(again[p], point[p]);
                            }
                        }
                    }
                }
                // Trials finish in any order: the older half of the running ones, then the rest
                // a call later; every fifth one fails.
                let finishing = pending.len().div_ceil(2);
                for (k, point) in pending.drain(..finishing).enumerate() {
                    let loss = (call_number + k) % 5 != 0;
                    let value = space.to_unit(&point).iter().map(|u| (u - 0.4).powi(2)).sum::<f64>();
                    history.push(CompletedTrial { point, loss: loss.then_some(value) });
                }
                // Nothing running and nothing suggested only when the space is used up.
                prop_assert!(!answer.points.is_empty() || had_pending || answer.exhausted);
                pending.extend(answer.points);
                state = Some(saved(&answer.state));
                if answer.exhausted {
                    break;
                }
            }
        }
    }
}

/// States arrive over the suggestion API: counters at their maximum must not overflow (they
/// panicked in debug builds and wrapped in release).
#[test]
fn counters_at_their_maximum_in_a_saved_state_do_not_overflow() {
    let space = box_space(&[(0.0, 1.0), (0.0, 1.0), (0.0, 1.0)]);
    let engine = engine(RestartStrategy::Bipop);
    let first = call(&engine, &space, &[], &[], 64, None);
    let history: Vec<CompletedTrial> = first
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| CompletedTrial {
            point: p.clone(),
            loss: Some(i as f64),
        })
        .collect();
    let mut state = saved(&first.state);
    state["run"]["generation"] = serde_json::json!(u64::MAX);
    state["restarts"] = serde_json::json!(u64::MAX);
    if state.get("bipop").is_some() {
        state["bipop"]["evals_large"] = serde_json::json!(u64::MAX);
        state["bipop"]["evals_small"] = serde_json::json!(u64::MAX);
    }
    let answer = engine.suggest(&SuggestRequest {
        space: &space,
        history: &history,
        pending: &[],
        count: 4,
        seed: SEED,
        state: Some(&state),
    });
    // Either refused as unusable or answered; never a panic.
    if let Ok(answer) = answer {
        assert!(answer.points.iter().all(|p| space.contains(p)));
    }
}

/// Two doubles each one floating-point step wide: four points, all taken. With nothing running
/// the engine must say it is exhausted rather than answer nothing (the driver treats an empty,
/// non-exhausted answer with nothing running as an engine failure).
#[test]
fn a_space_of_a_few_float_steps_ends_exhausted_once_every_point_is_taken() {
    let next = f64::from_bits(1.0f64.to_bits() + 1);
    let space = box_space(&[(1.0, next), (1.0, next)]);
    let engine = engine(RestartStrategy::None);
    let mut history = Vec::new();
    let mut state: Option<Json> = None;
    for _ in 0..20 {
        let answer = call(&engine, &space, &history, &[], 3, state.as_ref());
        for point in &answer.points {
            assert!(
                !history.iter().any(|t: &CompletedTrial| &t.point == point),
                "a repeat: {point:?}"
            );
        }
        if answer.points.is_empty() {
            assert!(answer.exhausted, "no point, nothing running, not exhausted");
            return;
        }
        history.extend(answer.points.into_iter().map(|point| CompletedTrial {
            point,
            loss: Some(0.0),
        }));
        state = Some(answer.state);
    }
    panic!("never ran out of points: {} trials", history.len());
}
