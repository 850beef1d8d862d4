//! Helpers for the engines' tests: small spaces and a way to call an engine like the controller
//! does (finished and running trials, saved state).

use std::collections::HashSet;

use crate::engine::{CompletedTrial, Engine, EngineError, SuggestRequest, Suggestions};
use crate::space::{Distribution, Domain, Parameter, Point, SearchSpace};

pub(crate) const SEED: u64 = 7;

pub(crate) fn space(domains: Vec<(&str, Domain)>) -> SearchSpace {
    SearchSpace::new(
        domains
            .into_iter()
            .map(|(name, domain)| Parameter {
                name: name.to_owned(),
                domain,
            })
            .collect(),
    )
    .unwrap()
}

pub(crate) fn uniform_double(min: f64, max: f64) -> Domain {
    Domain::Double {
        min,
        max,
        step: None,
        distribution: Distribution::Uniform,
    }
}

pub(crate) fn int_range(min: i64, max: i64) -> Domain {
    Domain::Int {
        min,
        max,
        step: None,
        distribution: Distribution::Uniform,
    }
}

pub(crate) fn choices(names: &[&str]) -> Domain {
    Domain::Categorical {
        choices: names.iter().map(|c| (*c).to_owned()).collect(),
    }
}

/// Two parameters with 2 and 3 values: 6 points.
pub(crate) fn space_2x3() -> SearchSpace {
    space(vec![
        ("opt", choices(&["adam", "sgd"])),
        ("layers", int_range(1, 3)),
    ])
}

/// Two continuous doubles on [0, 1].
pub(crate) fn unit_square() -> SearchSpace {
    space(vec![
        ("x", uniform_double(0.0, 1.0)),
        ("y", uniform_double(0.0, 1.0)),
    ])
}

/// Asks `engine` for `count` points with `history` finished and `pending` running.
pub(crate) fn ask(
    engine: &dyn Engine,
    space: &SearchSpace,
    history: &[Point],
    pending: &[Point],
    count: usize,
    seed: u64,
    state: Option<&serde_json::Value>,
) -> Result<Suggestions, EngineError> {
    let history: Vec<CompletedTrial> = history
        .iter()
        .map(|point| CompletedTrial {
            point: point.clone(),
            loss: Some(0.0),
        })
        .collect();
    engine.suggest(&SuggestRequest {
        space,
        history: &history,
        pending,
        count,
        seed,
        state,
    })
}

/// Asks `engine` for `count` points after `history` (with its losses), with `pending` running and
/// the test seed; panics on an engine error.
pub(crate) fn suggest_after(
    engine: &dyn Engine,
    space: &SearchSpace,
    history: &[CompletedTrial],
    pending: &[Point],
    count: usize,
    state: Option<&serde_json::Value>,
) -> Suggestions {
    engine
        .suggest(&SuggestRequest {
            space,
            history,
            pending,
            count,
            seed: SEED,
            state,
        })
        .unwrap_or_else(|e| panic!("{}: {e}", engine.name()))
}

/// Calls `engine` in batches of `batch` like a controller would (every point stays pending) until
/// it says exhausted; returns every point and the number of calls.
pub(crate) fn drain(engine: &dyn Engine, space: &SearchSpace, batch: usize) -> (Vec<Point>, usize) {
    let mut pending = Vec::new();
    let mut state = None;
    for call in 1..=1000 {
        let answer = ask(engine, space, &[], &pending, batch, SEED, state.as_ref()).unwrap();
        pending.extend(answer.points);
        state = Some(answer.state);
        if answer.exhausted {
            return (pending, call);
        }
    }
    panic!("never exhausted");
}

pub(crate) fn distinct_keys(space: &SearchSpace, points: &[Point]) -> usize {
    points
        .iter()
        .map(|p| space.point_key(p))
        .collect::<HashSet<_>>()
        .len()
}

/// The checks every sampling engine (random, Sobol) passes.
pub(crate) fn sampling_contract(engine: &dyn Engine) {
    let square = unit_square();
    let first = ask(engine, &square, &[], &[], 6, SEED, None).unwrap();
    assert_eq!(first.points.len(), 6);
    assert!(!first.exhausted);
    assert!(first.points.iter().all(|p| square.contains(p)));

    // Deterministic given the seed; another seed gives other points.
    assert_eq!(
        ask(engine, &square, &[], &[], 6, SEED, None).unwrap(),
        first
    );
    let other = ask(engine, &square, &[], &[], 6, SEED + 1, None).unwrap();
    assert!(other.points.iter().all(|p| !first.points.contains(p)));

    // Two calls of 3 (the first batch pending) equal one call of 6.
    let a = ask(engine, &square, &[], &[], 3, SEED, None).unwrap();
    let b = ask(engine, &square, &[], &a.points, 3, SEED, Some(&a.state)).unwrap();
    assert_eq!([a.points, b.points].concat(), first.points);
    assert_eq!(b.state, first.state);

    // Without state, the sequence resumes after the trials created so far.
    let resumed = ask(
        engine,
        &square,
        &first.points[..1],
        &first.points[1..2],
        4,
        SEED,
        None,
    )
    .unwrap();
    assert_eq!(resumed.points, first.points[2..]);

    // A state of another shape is refused.
    let bad = serde_json::json!({ "something": "else" });
    assert!(matches!(
        ask(engine, &square, &[], &[], 1, SEED, Some(&bad)),
        Err(EngineError::BadState(_))
    ));
    // JSON null is no state.
    let null = serde_json::Value::Null;
    assert_eq!(
        ask(engine, &square, &[], &[], 6, SEED, Some(&null)).unwrap(),
        first
    );

    // A batch never repeats itself, history or pending.
    let grid = space(vec![("a", int_range(0, 3)), ("b", int_range(0, 4))]);
    let taken: Vec<Point> = (0..8).map(|i| grid.point_at(i).unwrap()).collect();
    let answer = ask(engine, &grid, &taken[..4], &taken[4..], 12, SEED, None).unwrap();
    assert_eq!(answer.points.len(), 12);
    assert!(answer.exhausted);
    let all = [taken.clone(), answer.points.clone()].concat();
    assert_eq!(distinct_keys(&grid, &all), 20);
    let answer = ask(engine, &grid, &taken[..4], &taken[4..], 5, SEED, None).unwrap();
    assert!(!answer.exhausted);
    assert_eq!(distinct_keys(&grid, &[taken, answer.points].concat()), 13);

    // A 2x3 space gives exactly 6 distinct points, then says exhausted.
    let small = space_2x3();
    let (points, calls) = drain(engine, &small, 4);
    assert_eq!(points.len(), 6);
    assert_eq!(distinct_keys(&small, &points), 6);
    assert_eq!(calls, 2);
    let one_call = ask(engine, &small, &[], &[], 10, SEED, None).unwrap();
    assert_eq!(one_call.points.len(), 6);
    assert!(one_call.exhausted);
    let exactly = ask(engine, &small, &[], &[], 6, SEED, None).unwrap();
    assert!(exactly.exhausted);
    let after = ask(engine, &small, &points, &[], 3, SEED, None).unwrap();
    assert!(after.points.is_empty() && after.exhausted);
    let none = ask(engine, &small, &[], &[], 0, SEED, None).unwrap();
    assert!(none.points.is_empty() && !none.exhausted);

    // A nearly used-up space where sampling keeps missing: the rest is still found.
    let wide = space(vec![("a", int_range(0, 299)), ("b", int_range(0, 299))]);
    let size = 300 * 300;
    let used: Vec<Point> = (0..size - 3).map(|i| wide.point_at(i).unwrap()).collect();
    let answer = ask(engine, &wide, &used, &[], 5, SEED, None).unwrap();
    assert_eq!(answer.points.len(), 3);
    assert!(answer.exhausted);
    assert_eq!(
        distinct_keys(&wide, &[used, answer.points].concat()),
        size as usize
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::grid::GridEngine;
    use crate::random::RandomEngine;
    use crate::sobol::SobolEngine;

    fn distribution() -> impl Strategy<Value = Distribution> {
        prop_oneof![
            Just(Distribution::Uniform),
            Just(Distribution::LogUniform),
            Just(Distribution::Normal),
            Just(Distribution::LogNormal),
        ]
    }

    /// Domains of at most 5 values.
    fn small_domain() -> impl Strategy<Value = Domain> {
        prop_oneof![
            (1i64..20, 0i64..5, distribution()).prop_map(|(min, width, distribution)| {
                Domain::Int {
                    min,
                    max: min + width,
                    step: None,
                    distribution,
                }
            }),
            (1u32..4, 0.01f64..2.0, distribution()).prop_map(|(steps, step, distribution)| {
                Domain::Double {
                    min: step,
                    max: step * f64::from(steps + 1),
                    step: Some(step),
                    distribution,
                }
            }),
            (1usize..4).prop_map(|n| Domain::Categorical {
                choices: (0..n).map(|i| format!("c{i}")).collect(),
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn engines_cover_small_spaces_exactly_once(
            domains in prop::collection::vec(small_domain(), 1..4),
            batch in 1usize..8,
        ) {
            let names: Vec<String> = (0..domains.len()).map(|i| format!("p{i}")).collect();
            let space = space(names.iter().map(String::as_str).zip(domains).collect());
            let cardinality = space.cardinality().unwrap() as usize;
            let engines: [&dyn Engine; 3] = [&RandomEngine, &SobolEngine, &GridEngine];
            for engine in engines {
                let (points, calls) = drain(engine, &space, batch);
                prop_assert_eq!(points.len(), cardinality, "{}", engine.name());
                prop_assert_eq!(distinct_keys(&space, &points), cardinality);
                prop_assert!(points.iter().all(|p| space.contains(p)));
                prop_assert_eq!(calls, cardinality.div_ceil(batch));
            }
        }
    }
}

/// An environment variable parsed, or `default` (the tuning harnesses' knobs).
pub(crate) fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of `v` (NaN when empty).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}
