//! Engine-level tests of `tpe` and `multivariate-tpe`: the split, the weights and bandwidths by
//! hand, the contract (valid, distinct, new points; exhaustion; state), the constant liar,
//! failed trials, determinism and restarts, and a property test over random spaces.

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::engine::CompletedTrial;
use crate::space::{Distribution, Domain, Parameter, SearchSpace, Value};
use crate::test_support::{
    SEED, choices, distinct_keys, drain, int_range, space, suggest_after as ask, uniform_double,
};
use serde_json::json;

fn both() -> [TpeEngine; 2] {
    [
        TpeEngine::new(TpeSettings::default()),
        TpeEngine::multivariate(TpeSettings::multivariate_default()),
    ]
}

/// A bowl in the unit coordinates, lowest at 0.3.
fn bowl(space: &SearchSpace, point: &Point) -> f64 {
    space
        .to_unit(point)
        .iter()
        .map(|u| (u - 0.3) * (u - 0.3))
        .sum()
}

/// Every parameter kind and distribution.
fn mixed() -> SearchSpace {
    let double = |min, max, step, distribution| Domain::Double {
        min,
        max,
        step,
        distribution,
    };
    space(vec![
        ("lr", double(1e-5, 1e-1, None, Distribution::LogUniform)),
        ("momentum", double(0.5, 0.99, None, Distribution::Normal)),
        ("wd", double(1e-6, 1e-2, None, Distribution::LogNormal)),
        (
            "dropout",
            double(0.0, 0.5, Some(0.05), Distribution::Uniform),
        ),
        (
            "layers",
            Domain::Int {
                min: 1,
                max: 64,
                step: None,
                distribution: Distribution::LogUniform,
            },
        ),
        (
            "batch",
            Domain::Discrete {
                values: vec![16.0, 32.0, 64.0, 128.0],
                labels: vec!["16".into(), "32".into(), "64".into(), "128".into()],
            },
        ),
        ("opt", choices(&["adam", "sgd", "rmsprop"])),
    ])
}

/// `calls` sequential calls of `batch`, every point finishing (with the bowl loss) before the next.
fn run(
    engine: &TpeEngine,
    space: &SearchSpace,
    calls: usize,
    batch: usize,
) -> (Vec<CompletedTrial>, Vec<Json>) {
    let mut history = Vec::new();
    let mut states = Vec::new();
    let mut state: Option<Json> = None;
    for _ in 0..calls {
        let answer = ask(engine, space, &history, &[], batch, state.as_ref());
        for point in answer.points {
            let loss = bowl(space, &point);
            history.push(CompletedTrial {
                point,
                loss: Some(loss),
            });
        }
        let saved: Json =
            serde_json::from_slice(&serde_json::to_vec(&answer.state).unwrap()).unwrap();
        states.push(saved.clone());
        state = Some(saved);
    }
    (history, states)
}

#[test]
fn the_split_follows_each_gamma_rule() {
    // Sextant's default: min(ceil(0.25·n), 25), at least 1.
    assert_eq!(DEFAULT_GAMMA.n_below(1), 1);
    assert_eq!(DEFAULT_GAMMA.n_below(10), 3);
    assert_eq!(DEFAULT_GAMMA.n_below(50), 13);
    assert_eq!(DEFAULT_GAMMA.n_below(1000), 25);
    // Optuna's default: min(ceil(0.1·n), 25).
    let optuna = GammaRule::Fraction {
        fraction: 0.1,
        cap: LINEAR_FORGETTING,
    };
    assert_eq!(optuna.n_below(0), 0);
    assert_eq!(optuna.n_below(1), 1);
    assert_eq!(optuna.n_below(10), 1);
    assert_eq!(optuna.n_below(11), 2);
    assert_eq!(optuna.n_below(100), 10);
    assert_eq!(optuna.n_below(251), 25);
    // hyperopt's: min(ceil(gamma·√n), 25).
    let hyperopt = GammaRule::HyperoptSqrt { gamma: 0.25 };
    assert_eq!(hyperopt.n_below(1), 1);
    assert_eq!(hyperopt.n_below(16), 1);
    assert_eq!(hyperopt.n_below(17), 2);
    assert_eq!(hyperopt.n_below(100), 3);
    assert_eq!(hyperopt.n_below(10_000), 25);
    // Never more than n.
    let greedy = GammaRule::Fraction {
        fraction: 0.99,
        cap: 100,
    };
    assert_eq!(greedy.n_below(3), 3);
}

#[test]
fn better_good_trials_weigh_more() {
    // 1 − 0.9·r/5 for r = 0..5.
    let w = rank_weights(5);
    let by_hand = [1.0, 0.82, 0.64, 0.46, 0.28];
    for (a, b) in w.iter().zip(by_hand) {
        assert!((a - b).abs() < 1e-12, "{w:?}");
    }
    assert_eq!(rank_weights(1), vec![1.0]);
    assert!(rank_weights(0).is_empty());
}

#[test]
fn old_trials_are_forgotten_linearly() {
    assert_eq!(forgetting_weights(3), vec![1.0; 3]);
    assert_eq!(forgetting_weights(25), vec![1.0; 25]);
    let w = forgetting_weights(27);
    // Two old trials ramp from 1/27 to 1, then 25 at full weight.
    assert_eq!(w.len(), 27);
    assert!((w[0] - 1.0 / 27.0).abs() < 1e-15);
    assert!((w[1] - 1.0).abs() < 1e-15);
    assert!(w[2..].iter().all(|&x| x == 1.0));
    let w = forgetting_weights(30);
    // Five old ones: 1/30 + t (1 − 1/30), t = 0, 1/4, ... 1.
    assert!((w[2] - (1.0 / 30.0 + 0.5 * (29.0 / 30.0))).abs() < 1e-15);
}

#[test]
fn bandwidths_follow_the_groups_spread_by_hand() {
    let line = space(vec![
        ("x", uniform_double(0.0, 1.0)),
        ("y", uniform_double(0.0, 1.0)),
    ]);
    let model = Model::new(&line, true);
    // Ten trials at x = 0.05, 0.15, ..., 0.95 (y = 0.5): mean 0.5, variance 0.0825.
    let observed: Vec<Observed> = (0..10)
        .map(|k| {
            let x = 0.05 + 0.1 * f64::from(k);
            model
                .observe(&vec![Value::Double(x), Value::Double(0.5)], 0.0)
                .unwrap()
        })
        .collect();
    let group: Vec<(&Observed, f64)> = observed.iter().map(|o| (o, 1.0)).collect();
    // Univariate (d = 1): 0.6 · √0.0825 · 10^(−1/5) = 0.10874.
    let by_hand = 0.6 * 0.0825f64.sqrt() * 10f64.powf(-0.2);
    assert!((by_hand - 0.108_737).abs() < 1e-6);
    let sigma = spread_bandwidth(&group, 0, 1, UNIVARIATE_BANDWIDTH_FACTOR);
    assert!((sigma - by_hand).abs() < 1e-12, "{sigma} vs {by_hand}");
    // Joint (d = 2): 0.5 · √0.0825 · 10^(−1/6).
    let sigma = spread_bandwidth(&group, 0, 2, MULTIVARIATE_BANDWIDTH_FACTOR);
    let by_hand = 0.5 * 0.0825f64.sqrt() * 10f64.powf(-1.0 / 6.0);
    assert!((sigma - by_hand).abs() < 1e-12, "{sigma} vs {by_hand}");
    // No spread (every y is 0.5): the clip 1/min(100, n + 2) = 1/12.
    let sigma = spread_bandwidth(&group, 1, 2, MULTIVARIATE_BANDWIDTH_FACTOR);
    assert!((sigma - 1.0 / 12.0).abs() < 1e-12, "{sigma}");
    // Weights count: the same points with the first five weighing 0 spread only over the last five
    // (mean 0.75, variance 0.02), with the clip still 1/12: 0.6 · √0.02 · 10^(−1/5) = 0.0535 → 1/12.
    let weighted: Vec<(&Observed, f64)> = observed
        .iter()
        .enumerate()
        .map(|(i, o)| (o, if i < 5 { 0.0 } else { 1.0 }))
        .collect();
    let sigma = spread_bandwidth(&weighted, 0, 1, UNIVARIATE_BANDWIDTH_FACTOR);
    assert!((sigma - 1.0 / 12.0).abs() < 1e-12, "{sigma}");
    // An empty group has only the prior: no width to compute, 1.
    assert_eq!(
        spread_bandwidth(&[], 0, 1, UNIVARIATE_BANDWIDTH_FACTOR),
        1.0
    );
}

#[test]
fn the_univariate_density_of_one_dimension_by_hand() {
    // One continuous parameter, good group {0.2, 0.6} (weights 1), prior weight 1. Width:
    // 0.6 · sd 0.2 · 2^(−1/5) = 0.104, raised to the clip 1/min(100, 2 + 2) = 0.25.
    // l(x) = [T(x; 0.2, 0.25) + T(x; 0.6, 0.25) + T(x; 0.5, 1)] / 3, T a normal truncated to [0, 1].
    let space = space(vec![("x", uniform_double(0.0, 1.0))]);
    let model = Model::new(&space, false);
    let a = model.observe(&vec![Value::Double(0.2)], 1.0).unwrap();
    let b = model.observe(&vec![Value::Double(0.6)], 2.0).unwrap();
    let parzen = model.marginal(0, &[(&a, 1.0), (&b, 1.0)], 1.0);
    let truncated = |x: f64, mu: f64, sigma: f64| {
        let z = |t: f64| 0.5 * libm::erfc(-t / std::f64::consts::SQRT_2);
        let pdf = (-0.5 * ((x - mu) / sigma).powi(2)).exp()
            / (sigma * (2.0 * std::f64::consts::PI).sqrt());
        pdf / (z((1.0 - mu) / sigma) - z(-mu / sigma))
    };
    let x = 0.4;
    let by_hand =
        (truncated(x, 0.2, 0.25) + truncated(x, 0.6, 0.25) + truncated(x, 0.5, 1.0)) / 3.0;
    // From tables: T(0.4; 0.2, 0.25) = 1.1588 / 0.7875 = 1.4715; T(0.4; 0.6, 0.25) = 1.1588 / 0.9370
    // = 1.2367 (the same pdf, more of it truncated); T(0.4; 0.5, 1) = 0.3970 / 0.3829 = 1.0366:
    // l(0.4) = 1.2483.
    assert!((by_hand - 1.2483).abs() < 1e-4, "{by_hand}");
    let got = parzen.log_density(&[Coord::Real(x)]).exp();
    assert!(
        (got - by_hand).abs() < 1e-12 * by_hand,
        "{got} vs {by_hand}"
    );

    // A categorical parameter: counts plus the prior spread evenly, (w_c + 1/3) / (2 + 1).
    let space = crate::test_support::space(vec![("c", choices(&["a", "b", "c"]))]);
    let model = Model::new(&space, false);
    let a = model.observe(&vec![Value::Choice(0)], 1.0).unwrap();
    let b = model.observe(&vec![Value::Choice(0)], 2.0).unwrap();
    let parzen = model.marginal(0, &[(&a, 1.0), (&b, 1.0)], 1.0);
    let p0 = parzen.log_density(&[Coord::Choice(0)]).exp();
    let p2 = parzen.log_density(&[Coord::Choice(2)]).exp();
    assert!((p0 - (2.0 + 1.0 / 3.0) / 3.0).abs() < 1e-12);
    assert!((p2 - (1.0 / 3.0) / 3.0).abs() < 1e-12);
}

#[test]
fn an_int_is_scored_by_the_mass_of_its_cell() {
    // An int 0..=3: four cells of width 1/4 on the unit line; a value's likelihood under a
    // kernel is the kernel's mass over its cell, so the four masses sum to 1.
    let space = space(vec![("k", int_range(0, 3))]);
    let model = Model::new(&space, false);
    let obs = model.observe(&vec![Value::Int(1)], 0.0).unwrap();
    assert_eq!(obs.coords, vec![Coord::Cell(0.25, 0.5)]);
    let parzen = model.marginal(0, &[(&obs, 1.0)], 1.0);
    let total: f64 = (0..4)
        .map(|k| {
            let o = model.observe(&vec![Value::Int(k)], 0.0).unwrap();
            parzen.log_density(&o.coords).exp()
        })
        .sum();
    assert!((total - 1.0).abs() < 1e-12, "{total}");
}

#[test]
fn suggestions_are_valid_distinct_and_new_for_both_variants() {
    let space = mixed();
    for engine in both() {
        let (history, _) = run(&engine, &space, 4, 5);
        assert_eq!(history.len(), 20);
        let points: Vec<Point> = history.iter().map(|t| t.point.clone()).collect();
        assert!(
            points.iter().all(|p| space.contains(p)),
            "{}",
            engine.name()
        );
        assert_eq!(distinct_keys(&space, &points), 20, "{}", engine.name());
        // A model batch with running trials: distinct from each other, history and pending.
        let pending = points[..3].to_vec();
        let answer = ask(&engine, &space, &history[3..], &pending, 8, None);
        assert_eq!(answer.points.len(), 8);
        let all = [points.clone(), answer.points.clone()].concat();
        assert_eq!(distinct_keys(&space, &all), 28);
        assert!(answer.points.iter().all(|p| space.contains(p)));
    }
}

#[test]
fn the_constant_liar_spreads_a_batch() {
    // With the liar a batch of 8 on a smooth bowl spreads; its points are also never one point.
    let square = crate::test_support::unit_square();
    for engine in both() {
        let (history, _) = run(&engine, &square, 6, 5);
        let answer = ask(&engine, &square, &history, &[], 8, None);
        let units: Vec<Vec<f64>> = answer.points.iter().map(|p| square.to_unit(p)).collect();
        let mut closest = f64::INFINITY;
        for (i, a) in units.iter().enumerate() {
            for b in &units[i + 1..] {
                let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
                closest = closest.min(d);
            }
        }
        assert!(closest > 1e-4, "{}: closest pair {closest}", engine.name());
    }
}

#[test]
fn failed_trials_are_not_modelled_and_never_repeated() {
    let space = space(vec![("a", int_range(0, 4)), ("b", choices(&["x", "y"]))]);
    for engine in both() {
        // Everything finished; the failures (no loss, NaN, infinite) sit where the good ones would.
        let mut history = Vec::new();
        for i in 0..7u128 {
            let point = space.point_at(i).unwrap();
            let loss = match i {
                0 => None,
                1 => Some(f64::NAN),
                2 => Some(f64::INFINITY),
                _ => Some(i as f64),
            };
            history.push(CompletedTrial { point, loss });
        }
        let answer = ask(&engine, &space, &history, &[], 10, None);
        assert_eq!(answer.points.len(), 3, "{}", engine.name());
        assert!(answer.exhausted);
        let all: Vec<Point> = history
            .iter()
            .map(|t| t.point.clone())
            .chain(answer.points)
            .collect();
        assert_eq!(distinct_keys(&space, &all), 10);
    }
}

#[test]
fn small_finite_spaces_are_covered_exactly_once() {
    let small = crate::test_support::space_2x3();
    for engine in both() {
        for batch in [1, 4, 10] {
            let (points, _) = drain(&engine, &small, batch);
            assert_eq!(points.len(), 6, "{} batch {batch}", engine.name());
            assert_eq!(distinct_keys(&small, &points), 6);
        }
        // And with losses, through the model.
        let (history, _) = run(&engine, &small, 6, 1);
        assert_eq!(
            distinct_keys(
                &small,
                &history.iter().map(|t| t.point.clone()).collect::<Vec<_>>()
            ),
            6
        );
        let after = ask(&engine, &small, &history, &[], 2, None);
        assert!(after.points.is_empty() && after.exhausted);
    }
}

#[test]
fn a_restart_with_the_saved_state_answers_exactly_as_continuing() {
    let space = mixed();
    for engine in both() {
        let (history, states) = run(&engine, &space, 8, 3);
        // Call 6 again from its saved state (through JSON bytes): the same points and state.
        let before = &history[..15];
        let again = ask(&engine, &space, before, &[], 3, Some(&states[4]));
        let continued: Vec<Point> = history[15..18].iter().map(|t| t.point.clone()).collect();
        assert_eq!(again.points, continued, "{}", engine.name());
        assert_eq!(again.state, states[5]);
        // Deterministic: the whole run again gives the same history.
        let (replay, _) = run(&engine, &space, 8, 3);
        assert_eq!(replay, history);
        // The state holds the start-up design's next index and round-trips through serde.
        let saved: SavedState = serde_json::from_value(states[7].clone()).unwrap();
        assert_eq!(saved.engine, engine.name());
        assert_eq!(saved.sobol_index, engine.settings().n_startup_trials as u64);
        assert_eq!(serde_json::to_value(&saved).unwrap(), states[7]);
    }
}

#[test]
fn foreign_states_are_refused_and_null_is_none() {
    let square = crate::test_support::unit_square();
    let tpe = TpeEngine::new(TpeSettings::default());
    let multi = TpeEngine::multivariate(TpeSettings::multivariate_default());
    let first = ask(&tpe, &square, &[], &[], 2, None);
    // The state of the other variant, or of another engine, is refused.
    for (engine, state) in [
        (&multi, first.state.clone()),
        (&tpe, json!({ "index": 3 })),
        (
            &tpe,
            json!({ "engine": "tpe", "version": 1, "sobol_index": "x" }),
        ),
    ] {
        let result = engine.suggest(&SuggestRequest {
            space: &square,
            history: &[],
            pending: &[],
            count: 1,
            seed: SEED,
            state: Some(&state),
        });
        assert!(matches!(result, Err(EngineError::BadState(_))), "{state}");
    }
    assert_eq!(ask(&tpe, &square, &[], &[], 2, Some(&Json::Null)), first);
    // Another version starts again from the trials so far, without failing.
    let old = json!({ "engine": "tpe", "version": 0 });
    assert_eq!(ask(&tpe, &square, &[], &[], 2, Some(&old)), first);
}

#[test]
fn degenerate_inputs_do_not_panic() {
    let empty = SearchSpace::new(vec![]).unwrap();
    let constant = space(vec![
        ("c", uniform_double(1.0, 1.0)),
        ("k", int_range(3, 3)),
        ("x", uniform_double(0.0, 1.0)),
    ]);
    for engine in both() {
        let answer = ask(&engine, &empty, &[], &[], 3, None);
        assert!(answer.points.len() <= 1 && answer.exhausted == (answer.points.len() <= 1));
        let (history, _) = run(&engine, &constant, 3, 5);
        assert!(history.iter().all(|t| constant.contains(&t.point)));
        // Malformed history points (wrong length, NaN) are skipped, not modelled.
        let mut odd = history.clone();
        odd.push(CompletedTrial {
            point: vec![Value::Double(f64::NAN)],
            loss: Some(-1.0),
        });
        odd.push(CompletedTrial {
            point: vec![
                Value::Double(f64::NAN),
                Value::Int(3),
                Value::Double(f64::NAN),
            ],
            loss: Some(-5.0),
        });
        let answer = ask(&engine, &constant, &odd, &[], 2, None);
        assert!(answer.points.iter().all(|p| constant.contains(p)));
        // Every loss the same.
        let flat: Vec<CompletedTrial> = history
            .iter()
            .map(|t| CompletedTrial {
                point: t.point.clone(),
                loss: Some(1.0),
            })
            .collect();
        assert_eq!(ask(&engine, &constant, &flat, &[], 2, None).points.len(), 2);
    }
}

#[test]
fn finds_the_bottom_of_a_bowl() {
    let square = crate::test_support::unit_square();
    for engine in both() {
        let (history, _) = run(&engine, &square, 60, 1);
        let best = history
            .iter()
            .filter_map(|t| t.loss)
            .fold(f64::INFINITY, f64::min);
        // Random search's median best of 60 on this bowl is about 4e-3.
        assert!(best < 1e-3, "{}: best {best}", engine.name());
    }
}

fn distribution() -> impl Strategy<Value = Distribution> {
    prop_oneof![
        Just(Distribution::Uniform),
        Just(Distribution::LogUniform),
        Just(Distribution::Normal),
        Just(Distribution::LogNormal),
    ]
}

fn any_domain() -> impl Strategy<Value = Domain> {
    prop_oneof![
        (
            0.01f64..100.0,
            0.0f64..100.0,
            prop::option::of(1u32..50),
            distribution()
        )
            .prop_map(|(min, width, steps, distribution)| {
                let step = steps.map(|n| {
                    if width > 0.0 {
                        width / f64::from(n)
                    } else {
                        1.0
                    }
                });
                Domain::Double {
                    min,
                    max: min + width,
                    step,
                    distribution,
                }
            }),
        (
            1i64..100,
            0i64..300,
            prop::option::of(1i64..10),
            distribution()
        )
            .prop_map(|(min, width, step, distribution)| Domain::Int {
                min,
                max: min + width,
                step: step.map(|s| s.min(width.max(1))),
                distribution,
            }),
        prop::collection::btree_set(-50i32..50, 1..5).prop_map(|set| Domain::Discrete {
            values: set.iter().map(|v| f64::from(*v)).collect(),
            labels: set.iter().map(|v| v.to_string()).collect(),
        }),
        (1usize..5).prop_map(|n| Domain::Categorical {
            choices: (0..n).map(|i| format!("c{i}")).collect(),
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn suggestions_are_always_feasible_distinct_and_new(
        domains in prop::collection::vec(any_domain(), 1..5),
        losses in prop::collection::vec(prop::option::of(-10.0f64..10.0), 12..20),
        batch in 1usize..6,
        multivariate in any::<bool>(),
    ) {
        let space = SearchSpace::new(
            domains
                .into_iter()
                .enumerate()
                .map(|(i, domain)| Parameter { name: format!("p{i}"), domain })
                .collect(),
        )
        .unwrap();
        let engine = if multivariate {
            TpeEngine::multivariate(TpeSettings::multivariate_default())
        } else {
            TpeEngine::new(TpeSettings::default())
        };
        // A history (some failed), then a batch with the last two trials still running.
        let first = ask(&engine, &space, &[], &[], losses.len(), None);
        let history: Vec<CompletedTrial> = first
            .points
            .iter()
            .zip(&losses)
            .map(|(p, l)| CompletedTrial { point: p.clone(), loss: *l })
            .collect();
        let (done, running) = history.split_at(history.len().saturating_sub(2));
        let pending: Vec<Point> = running.iter().map(|t| t.point.clone()).collect();
        let answer = ask(&engine, &space, done, &pending, batch, Some(&first.state));
        prop_assert!(answer.points.iter().all(|p| space.contains(p)), "{:?}", answer.points);
        let mut keys: HashSet<Vec<u64>> = done
            .iter()
            .map(|t| space.point_key(&t.point))
            .chain(pending.iter().map(|p| space.point_key(p)))
            .collect();
        let before = keys.len();
        for p in &answer.points {
            prop_assert!(keys.insert(space.point_key(p)), "repeated {:?}", p);
        }
        match space.cardinality() {
            Some(n) if (n as usize) < before + batch => {
                prop_assert_eq!(answer.points.len(), n as usize - before);
                prop_assert!(answer.exhausted);
            }
            _ => prop_assert_eq!(answer.points.len(), batch),
        }
    }
}
