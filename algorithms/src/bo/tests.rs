//! Engine-level tests: the contract (valid, distinct, new points; exhaustion; state), batches,
//! determinism and restarts, degenerate inputs, and a property test over random small spaces.

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::engine::CompletedTrial;
use crate::sobol::SobolEngine;
use crate::space::{Distribution, Domain, Parameter, SearchSpace, Value};
use crate::test_support::{
    SEED, choices, int_range, space, space_2x3, uniform_double, unit_square,
};

fn engine() -> BayesOptEngine {
    BayesOptEngine::default()
}

fn ask(
    engine: &BayesOptEngine,
    space: &SearchSpace,
    history: &[CompletedTrial],
    pending: &[Point],
    count: usize,
    seed: u64,
    state: Option<&serde_json::Value>,
) -> Result<Suggestions, EngineError> {
    engine.suggest(&SuggestRequest {
        space,
        history,
        pending,
        count,
        seed,
        state,
    })
}

/// The state as the controller keeps it: JSON bytes and back.
fn saved(state: &serde_json::Value) -> serde_json::Value {
    serde_json::from_slice(&serde_json::to_vec(state).unwrap()).unwrap()
}

/// A smooth test loss on any point: a bowl in the unit coordinates (minimum at 0.3).
fn bowl(space: &SearchSpace, point: &Point) -> f64 {
    space
        .to_unit(point)
        .iter()
        .map(|u| (u - 0.3) * (u - 0.3))
        .sum()
}

/// Runs `calls` calls of `batch` points each, every point finishing before the next call.
fn run(
    engine: &BayesOptEngine,
    space: &SearchSpace,
    calls: usize,
    batch: usize,
    seed: u64,
) -> (Vec<CompletedTrial>, Vec<serde_json::Value>) {
    let mut history = Vec::new();
    let mut states = Vec::new();
    let mut state: Option<serde_json::Value> = None;
    for _ in 0..calls {
        let answer = ask(engine, space, &history, &[], batch, seed, state.as_ref()).unwrap();
        for point in answer.points {
            let loss = bowl(space, &point);
            history.push(CompletedTrial {
                point,
                loss: Some(loss),
            });
        }
        let next = saved(&answer.state);
        states.push(next.clone());
        state = Some(next);
    }
    (history, states)
}

fn keys(space: &SearchSpace, points: impl IntoIterator<Item = Point>) -> Vec<Vec<u64>> {
    points.into_iter().map(|p| space.point_key(&p)).collect()
}

fn all_distinct(keys: &[Vec<u64>]) -> bool {
    keys.iter().collect::<HashSet<_>>().len() == keys.len()
}

/// A space with every kind of parameter.
fn mixed() -> SearchSpace {
    space(vec![
        ("lr", {
            Domain::Double {
                min: 1e-4,
                max: 1e-1,
                step: None,
                distribution: Distribution::LogUniform,
            }
        }),
        ("momentum", uniform_double(0.5, 0.99)),
        ("layers", int_range(1, 6)),
        (
            "width",
            Domain::Int {
                min: 16,
                max: 1024,
                step: Some(16),
                distribution: Distribution::LogUniform,
            },
        ),
        (
            "dropout",
            Domain::Double {
                min: 0.0,
                max: 0.5,
                step: Some(0.05),
                distribution: Distribution::Uniform,
            },
        ),
        (
            "batch",
            Domain::Discrete {
                values: vec![32.0, 64.0, 128.0],
                labels: vec!["32".into(), "64".into(), "128".into()],
            },
        ),
        ("optimizer", choices(&["adam", "sgd", "rmsprop", "adagrad"])),
    ])
}

#[test]
fn the_initial_points_are_the_sobol_engines() {
    let square = unit_square();
    let sobol = SobolEngine
        .suggest(&SuggestRequest {
            space: &square,
            history: &[],
            pending: &[],
            count: 10,
            seed: SEED,
            state: None,
        })
        .unwrap();
    let bo = engine();
    let at_once = ask(&bo, &square, &[], &[], 10, SEED, None).unwrap();
    assert_eq!(at_once.points, sobol.points);
    // In calls of 4 with the earlier points finished, the same sequence.
    let (history, _) = run(&bo, &square, 2, 4, SEED);
    let points: Vec<Point> = history.into_iter().map(|t| t.point).collect();
    assert_eq!(points[..], sobol.points[..8]);
}

#[test]
fn model_suggestions_are_valid_distinct_and_new() {
    let space = mixed();
    let bo = engine();
    let mut history: Vec<CompletedTrial> = Vec::new();
    let mut pending: Vec<Point> = Vec::new();
    let mut state = None;
    for call in 0..10 {
        let answer = ask(&bo, &space, &history, &pending, 3, SEED, state.as_ref()).unwrap();
        assert_eq!(answer.points.len(), 3);
        assert!(!answer.exhausted);
        for point in &answer.points {
            assert!(space.contains(point), "call {call}: {point:?}");
        }
        let all = keys(
            &space,
            history
                .iter()
                .map(|t| t.point.clone())
                .chain(pending.clone())
                .chain(answer.points.clone()),
        );
        assert!(all_distinct(&all), "call {call}: a point was repeated");
        // The oldest pending point finishes (one in four fails); the new ones start.
        if !pending.is_empty() {
            let point = pending.remove(0);
            let loss = (call % 4 != 0).then(|| bowl(&space, &point));
            history.push(CompletedTrial { point, loss });
        }
        pending.extend(answer.points);
        state = Some(saved(&answer.state));
    }
}

#[test]
fn a_batch_spreads_out() {
    let square = unit_square();
    let bo = engine();
    let (history, states) = run(&bo, &square, 15, 1, SEED);
    let answer = ask(&bo, &square, &history, &[], 6, SEED, states.last()).unwrap();
    assert_eq!(answer.points.len(), 6);
    let coords: Vec<Vec<f64>> = answer.points.iter().map(|p| square.to_unit(p)).collect();
    for (i, a) in coords.iter().enumerate() {
        for b in &coords[..i] {
            let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
            assert!(d > 0.01, "batch points {a:?} and {b:?} nearly coincide");
        }
    }
    // A running trial is a fantasy: the next suggestion moves away from it.
    let single = ask(&bo, &square, &history, &[], 1, SEED, states.last()).unwrap();
    let with_pending = ask(
        &bo,
        &square,
        &history,
        &single.points,
        1,
        SEED,
        states.last(),
    )
    .unwrap();
    assert_ne!(single.points, with_pending.points);
}

#[test]
fn deterministic_given_the_seed() {
    let space = mixed();
    let (history, states) = run(&engine(), &space, 14, 1, SEED);
    let (again, states_again) = run(&engine(), &space, 14, 1, SEED);
    assert_eq!(history, again);
    assert_eq!(states, states_again);
    let (other, _) = run(&engine(), &space, 14, 1, SEED + 1);
    assert_ne!(history, other);
}

#[test]
fn a_restart_with_the_saved_state_answers_exactly_as_continuing() {
    // Engine `warm` runs an experiment (its cache of factors filling up); at every call a fresh
    // engine (empty cache, as after a restart) gets the same history and state: same answer, same
    // state, to the bit.
    for space in [unit_square(), mixed()] {
        let warm = engine();
        let mut history: Vec<CompletedTrial> = Vec::new();
        let mut state: Option<serde_json::Value> = None;
        for call in 0..22 {
            let batch = 1 + call % 2;
            let answer = ask(&warm, &space, &history, &[], batch, SEED, state.as_ref()).unwrap();
            let fresh = ask(
                &engine(),
                &space,
                &history,
                &[],
                batch,
                SEED,
                state.as_ref(),
            )
            .unwrap();
            assert_eq!(answer, fresh, "call {call}");
            // The warm engine asked twice (cache now holds this exact call) agrees too.
            let again = ask(&warm, &space, &history, &[], batch, SEED, state.as_ref()).unwrap();
            assert_eq!(answer, again, "call {call}, repeated");
            for point in answer.points {
                let loss = bowl(&space, &point);
                history.push(CompletedTrial {
                    point,
                    loss: Some(loss),
                });
            }
            state = Some(saved(&answer.state));
        }
    }
}

#[test]
fn out_of_order_completion_keeps_results_exact() {
    // Trials finishing out of creation order break the cached prefix mid-way.
    let square = unit_square();
    let (mut history, states) = run(&engine(), &square, 16, 1, SEED);
    let warm = engine();
    let state = states.last();
    let first = ask(&warm, &square, &history, &[], 1, SEED, state).unwrap();
    history.swap(12, 14);
    let after_swap = ask(&warm, &square, &history, &[], 1, SEED, state).unwrap();
    let fresh = ask(&engine(), &square, &history, &[], 1, SEED, state).unwrap();
    assert_eq!(after_swap, fresh);
    assert!(square.contains(&first.points[0]));
}

#[test]
fn the_state_holds_what_a_restart_needs() {
    let square = unit_square();
    let (_, states) = run(&engine(), &square, 14, 1, SEED);
    let state = states.last().unwrap();
    assert_eq!(state["engine"], "bayesianoptimization");
    assert_eq!(state["version"], 1);
    assert_eq!(
        state["hyper"]["log_lengthscales"].as_array().unwrap().len(),
        2
    );
    assert_eq!(state["fitted_at"], 13);
    assert!(state["sobol_index"].as_u64().is_some());
    // gp_hedge keeps its gains.
    let hedge = BayesOptEngine::new(BayesOptSettings {
        acquisition: Acquisition::GpHedge,
        ..BayesOptSettings::default()
    });
    let (_, states) = run(&hedge, &square, 14, 1, SEED);
    let gains: Vec<f64> = states.last().unwrap()["gains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_f64().unwrap())
        .collect();
    assert_eq!(gains.len(), 3);
    assert!(gains.iter().any(|g| *g != 0.0), "{gains:?}");
    assert_eq!(
        states.last().unwrap()["proposals"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn foreign_states_are_refused_and_null_is_none() {
    let square = unit_square();
    let bo = engine();
    let bad = serde_json::json!({ "index": 3 });
    assert!(matches!(
        ask(&bo, &square, &[], &[], 1, SEED, Some(&bad)),
        Err(EngineError::BadState(_))
    ));
    let none = ask(&bo, &square, &[], &[], 3, SEED, None).unwrap();
    let null = ask(
        &bo,
        &square,
        &[],
        &[],
        3,
        SEED,
        Some(&serde_json::Value::Null),
    )
    .unwrap();
    assert_eq!(none, null);
}

#[test]
fn failed_and_non_finite_trials_are_not_modelled_and_never_repeated() {
    let square = unit_square();
    let bo = engine();
    let (mut history, states) = run(&bo, &square, 12, 1, SEED);
    for (i, loss) in [
        None,
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(f64::NEG_INFINITY),
    ]
    .into_iter()
    .enumerate()
    {
        history[i * 2].loss = loss;
    }
    let answer = ask(&bo, &square, &history, &[], 4, SEED, states.last()).unwrap();
    let all = keys(
        &square,
        history.iter().map(|t| t.point.clone()).chain(answer.points),
    );
    assert!(all_distinct(&all));

    // Every trial failed: still an answer (space-filling), never a repeat.
    let failed: Vec<CompletedTrial> = history
        .iter()
        .map(|t| CompletedTrial {
            point: t.point.clone(),
            loss: None,
        })
        .collect();
    let answer = ask(&bo, &square, &failed, &[], 3, SEED, None).unwrap();
    assert_eq!(answer.points.len(), 3);
    let all = keys(
        &square,
        failed.iter().map(|t| t.point.clone()).chain(answer.points),
    );
    assert!(all_distinct(&all));
}

#[test]
fn degenerate_inputs_do_not_panic() {
    let square = unit_square();
    let one_initial = BayesOptEngine::new(BayesOptSettings {
        n_initial_points: 1,
        ..BayesOptSettings::default()
    });
    // One history point.
    let one = vec![CompletedTrial {
        point: vec![Value::Double(0.5), Value::Double(0.5)],
        loss: Some(1.0),
    }];
    let answer = ask(&one_initial, &square, &one, &[], 2, SEED, None).unwrap();
    assert_eq!(answer.points.len(), 2);
    // All-equal losses, and enormous ones.
    for loss in [3.0, 1e300, -1e300, f64::MAX] {
        let (history, _) = run(&engine(), &square, 12, 1, SEED);
        let flat: Vec<CompletedTrial> = history
            .into_iter()
            .map(|t| CompletedTrial {
                loss: Some(loss),
                ..t
            })
            .collect();
        let answer = ask(&engine(), &square, &flat, &[], 2, SEED, None).unwrap();
        assert_eq!(answer.points.len(), 2, "loss {loss}");
        assert!(answer.points.iter().all(|p| square.contains(p)));
    }
    // A malformed history point (NaN, out of range) is tolerated.
    let (mut history, _) = run(&engine(), &square, 12, 1, SEED);
    history[2].point = vec![Value::Double(f64::NAN), Value::Double(7.0)];
    history[3].point = vec![Value::Int(3)];
    let answer = ask(&engine(), &square, &history, &[], 2, SEED, None).unwrap();
    assert!(answer.points.iter().all(|p| square.contains(p)));
    // Mixed extreme losses.
    let (mut history, _) = run(&engine(), &square, 12, 1, SEED);
    history[3].loss = Some(f64::MAX);
    history[4].loss = Some(-f64::MAX);
    history[5].loss = Some(1e-300);
    let answer = ask(&engine(), &square, &history, &[], 2, SEED, None).unwrap();
    assert_eq!(answer.points.len(), 2);
    // A constant parameter and a single-choice categorical next to a real one.
    let odd = space(vec![
        ("c", uniform_double(2.0, 2.0)),
        ("k", choices(&["only"])),
        ("x", uniform_double(-1.0, 1.0)),
    ]);
    let (history, _) = run(&engine(), &odd, 14, 1, SEED);
    assert_eq!(history.len(), 14);
    assert!(history.iter().all(|t| odd.contains(&t.point)));
    // No parameters at all: one (empty) point, then exhausted.
    let empty = SearchSpace::new(Vec::new()).unwrap();
    let answer = ask(&engine(), &empty, &[], &[], 3, SEED, None).unwrap();
    assert_eq!(answer.points.len(), 1);
    assert!(answer.exhausted);
    // Nothing asked.
    let answer = ask(&engine(), &square, &[], &[], 0, SEED, None).unwrap();
    assert!(answer.points.is_empty() && !answer.exhausted);
}

#[test]
fn categorical_only_and_small_finite_spaces_are_covered_exactly_once() {
    let categorical = space(vec![
        ("a", choices(&["x", "y", "z"])),
        ("b", choices(&["p", "q"])),
        ("c", choices(&["u", "v", "w", "t"])),
    ]);
    for space in [space_2x3(), categorical] {
        let total = space.cardinality().unwrap() as usize;
        let bo = BayesOptEngine::new(BayesOptSettings {
            n_initial_points: 3,
            ..BayesOptSettings::default()
        });
        let mut history: Vec<CompletedTrial> = Vec::new();
        let mut state = None;
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls <= total, "never exhausted");
            let answer = ask(&bo, &space, &history, &[], 2, SEED, state.as_ref()).unwrap();
            for point in answer.points {
                assert!(space.contains(&point));
                let loss = bowl(&space, &point);
                history.push(CompletedTrial {
                    point,
                    loss: Some(loss),
                });
            }
            state = Some(saved(&answer.state));
            if answer.exhausted {
                break;
            }
        }
        assert_eq!(history.len(), total);
        assert!(all_distinct(&keys(
            &space,
            history.iter().map(|t| t.point.clone())
        )));
    }
}

#[test]
fn every_acquisition_and_optimizer_gives_valid_points() {
    let space = mixed();
    for acquisition in [
        Acquisition::GpHedge,
        Acquisition::Ei,
        Acquisition::Pi,
        Acquisition::Lcb,
        Acquisition::LogEi,
    ] {
        for optimizer in [
            AcquisitionOptimizer::Auto,
            AcquisitionOptimizer::Sampling,
            AcquisitionOptimizer::Lbfgs,
        ] {
            let bo = BayesOptEngine::new(BayesOptSettings {
                n_initial_points: 5,
                acquisition,
                optimizer,
                ..BayesOptSettings::default()
            });
            let (history, _) = run(&bo, &space, 4, 2, SEED);
            assert!(
                history.iter().all(|t| space.contains(&t.point)),
                "{acquisition:?} {optimizer:?}"
            );
            assert!(all_distinct(&keys(
                &space,
                history.iter().map(|t| t.point.clone())
            )));
        }
    }
}

#[test]
fn finds_the_bottom_of_a_bowl() {
    let square = space(vec![
        ("x", uniform_double(-2.0, 2.0)),
        ("y", uniform_double(-2.0, 2.0)),
    ]);
    let (history, _) = run(&engine(), &square, 30, 1, SEED);
    let best = history
        .iter()
        .filter_map(|t| t.loss)
        .fold(f64::INFINITY, f64::min);
    let initial_best = history[..10]
        .iter()
        .filter_map(|t| t.loss)
        .fold(f64::INFINITY, f64::min);
    assert!(best < 1e-4, "best {best}");
    assert!(best < initial_best / 100.0);
}

/// Domains of small spaces of every kind.
fn any_domain() -> impl Strategy<Value = Domain> {
    let distribution = prop_oneof![
        Just(Distribution::Uniform),
        Just(Distribution::LogUniform),
        Just(Distribution::Normal),
        Just(Distribution::LogNormal),
    ];
    prop_oneof![
        (0.1f64..5.0, 0.0f64..10.0, distribution.clone()).prop_map(|(min, width, distribution)| {
            Domain::Double {
                min,
                max: min + width,
                step: None,
                distribution,
            }
        }),
        (1i64..20, 0i64..40, distribution.clone()).prop_map(|(min, width, distribution)| {
            Domain::Int {
                min,
                max: min + width,
                step: None,
                distribution,
            }
        }),
        (1u32..6, 0.01f64..2.0, distribution).prop_map(|(steps, step, distribution)| {
            Domain::Double {
                min: step,
                max: step * f64::from(steps + 1),
                step: Some(step),
                distribution,
            }
        }),
        (1usize..5).prop_map(|n| Domain::Discrete {
            values: (0..n).map(|i| i as f64 * 1.5).collect(),
            labels: (0..n).map(|i| format!("{}", i as f64 * 1.5)).collect(),
        }),
        (1usize..5).prop_map(|n| Domain::Categorical {
            choices: (0..n).map(|i| format!("c{i}")).collect(),
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn suggestions_are_always_feasible_distinct_and_new(
        domains in prop::collection::vec(any_domain(), 1..4),
        units in prop::collection::vec(prop::collection::vec(0.0f64..1.0, 3), 0..14),
        losses in prop::collection::vec(prop_oneof![
            4 => (-5.0f64..5.0).prop_map(Some),
            1 => Just(None),
            1 => Just(Some(f64::NAN)),
        ], 14),
        pending_count in 0usize..3,
        count in 1usize..4,
        seed in 0u64..1_000,
        n_initial in 0usize..6,
    ) {
        let params: Vec<Parameter> = domains
            .into_iter()
            .enumerate()
            .map(|(i, domain)| Parameter { name: format!("p{i}"), domain })
            .collect();
        let space = SearchSpace::new(params).unwrap();
        let points: Vec<Point> = units.iter().map(|u| space.from_unit(u)).collect();
        let (finished, running) = points.split_at(points.len().saturating_sub(pending_count));
        let history: Vec<CompletedTrial> = finished
            .iter()
            .zip(&losses)
            .map(|(point, loss)| CompletedTrial { point: point.clone(), loss: *loss })
            .collect();
        let bo = BayesOptEngine::new(BayesOptSettings {
            n_initial_points: n_initial,
            ..BayesOptSettings::default()
        });
        let answer = ask(&bo, &space, &history, running, count, seed, None).unwrap();
        for point in &answer.points {
            prop_assert!(space.contains(point), "{:?} outside {:?}", point, space);
        }
        let taken: HashSet<Vec<u64>> = keys(&space, points.iter().cloned()).into_iter().collect();
        let new = keys(&space, answer.points.iter().cloned());
        prop_assert!(all_distinct(&new));
        prop_assert!(new.iter().all(|k| !taken.contains(k)));
        match space.cardinality() {
            Some(total) => {
                let left = (total as usize).saturating_sub(taken.len());
                prop_assert_eq!(answer.points.len(), count.min(left));
                prop_assert_eq!(answer.exhausted, count >= left);
            }
            None => {
                prop_assert_eq!(answer.points.len(), count);
                prop_assert!(!answer.exhausted);
            }
        }
        // And a second engine answers the same.
        let again = ask(&engine_with(n_initial), &space, &history, running, count, seed, None).unwrap();
        prop_assert_eq!(again, answer);
    }
}

fn engine_with(n_initial_points: usize) -> BayesOptEngine {
    BayesOptEngine::new(BayesOptSettings {
        n_initial_points,
        ..BayesOptSettings::default()
    })
}
