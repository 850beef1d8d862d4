//! The `grid` engine: every combination of every parameter's values, in a fixed order.
//!
//! Katib's rules for the grid: an int steps by `step` (1 when unset), a double **needs** a `step`
//! (it is refused up front otherwise), discrete and categorical parameters use their lists. The
//! distribution does not matter to a grid: its points are the grid values themselves.
//!
//! Points come in the order of [`SearchSpace::point_at`]: mixed radix with the **last parameter
//! varying fastest**, like nested loops written in the parameters' order. A point is computed from
//! its index, so the grid is never built in memory; the state saves the next index
//! (`{"next": i}`). Points already in history or pending are skipped wherever they are met, so a
//! controller that lost the state starts again from index 0 and loses nothing and repeats
//! nothing. The cost of a call is one step per point returned plus one per taken point skipped.
//!
//! When the last index is passed the answer says `exhausted`, with fewer points than asked for if
//! that is all there is.
//!
//! [`SearchSpace::point_at`]: crate::space::SearchSpace::point_at

use crate::counter_state::{counter_state, read_counter};
use crate::engine::{Engine, EngineError, SuggestRequest, Suggestions};
use crate::space::{Domain, SearchSpace};
use crate::taken::TakenPoints;

/// The key of the next index in the saved state.
const STATE_KEY: &str = "next";

/// The most points reserved up front, whatever `count` asks for.
const MAX_PREALLOCATED: usize = 1024;

/// Katib's grid search.
#[derive(Debug, Clone, Copy, Default)]
pub struct GridEngine;

impl Engine for GridEngine {
    fn name(&self) -> &'static str {
        "grid"
    }

    fn check_space(&self, space: &SearchSpace) -> Result<(), EngineError> {
        for param in space.params() {
            if let Domain::Double {
                min,
                max,
                step: None,
                ..
            } = param.domain
                && min < max
            {
                return Err(EngineError::UnsupportedSpace(format!(
                    "grid needs feasibleSpace.step for double parameter {:?} (min {min}, max \
                     {max}): without a step it has infinitely many values; set a step, or use \
                     random or sobol",
                    param.name
                )));
            }
        }
        Ok(())
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, EngineError> {
        self.check_space(request.space)?;
        let space = request.space;
        let Some(cardinality) = space.cardinality() else {
            return Err(EngineError::UnsupportedSpace(
                "grid needs a finite search space".to_owned(),
            ));
        };
        let mut next = u128::from(read_counter(request, STATE_KEY, 0)?);
        let mut taken = TakenPoints::of_request(request);
        let mut points = Vec::with_capacity(request.count.min(MAX_PREALLOCATED));
        while points.len() < request.count && next < cardinality {
            let index = next;
            next += 1;
            let Some(key) = space.digits_at(index) else {
                break;
            };
            if taken.take_key(key) {
                points.extend(space.point_at(index));
            }
        }
        // Step over taken points now, so that `exhausted` is said as soon as it is true.
        while next < cardinality && space.digits_at(next).is_some_and(|key| taken.has_key(&key)) {
            next += 1;
        }
        Ok(Suggestions {
            points,
            exhausted: next >= cardinality,
            state: counter_state(STATE_KEY, u64::try_from(next).unwrap_or(u64::MAX)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{Distribution, Point, Value};
    use crate::test_support::*;

    fn names(space: &SearchSpace, points: &[Point]) -> Vec<String> {
        points
            .iter()
            .map(|p| {
                space
                    .render(p)
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    #[test]
    fn walks_the_grid_with_the_last_parameter_fastest() {
        let space = space_2x3();
        let answer = ask(&GridEngine, &space, &[], &[], 10, SEED, None).unwrap();
        assert_eq!(
            names(&space, &answer.points),
            ["adam,1", "adam,2", "adam,3", "sgd,1", "sgd,2", "sgd,3"]
        );
        assert!(answer.exhausted);
        // The seed does not matter to a grid.
        assert_eq!(
            ask(&GridEngine, &space, &[], &[], 10, SEED + 1, None).unwrap(),
            answer
        );
    }

    #[test]
    fn continues_from_state_and_says_exhausted() {
        let space = space_2x3();
        let first = ask(&GridEngine, &space, &[], &[], 4, SEED, None).unwrap();
        assert_eq!(first.points.len(), 4);
        assert!(!first.exhausted);
        assert_eq!(first.state, serde_json::json!({ "next": 4 }));
        let second = ask(
            &GridEngine,
            &space,
            &[],
            &first.points,
            4,
            SEED,
            Some(&first.state),
        )
        .unwrap();
        assert_eq!(names(&space, &second.points), ["sgd,2", "sgd,3"]);
        assert!(second.exhausted);
        let exactly = ask(&GridEngine, &space, &[], &[], 6, SEED, None).unwrap();
        assert!(exactly.exhausted);
        let (all, calls) = drain(&GridEngine, &space, 4);
        assert_eq!((all.len(), calls), (6, 2));
    }

    #[test]
    fn restarts_without_state_skipping_used_points() {
        let space = space_2x3();
        let at = |i| space.point_at(i).unwrap();
        let history = [at(0), at(2)];
        let pending = [at(1), at(4)];
        let answer = ask(&GridEngine, &space, &history, &pending, 2, SEED, None).unwrap();
        assert_eq!(answer.points, [at(3), at(5)]);
        assert!(answer.exhausted);
        // Taken points ahead of the saved index are skipped too, and exhaustion seen early.
        let state = serde_json::json!({ "next": 3 });
        let answer = ask(&GridEngine, &space, &[], &[at(5)], 1, SEED, Some(&state)).unwrap();
        assert_eq!(answer.points, [at(3)]);
        assert!(!answer.exhausted);
        let answer = ask(
            &GridEngine,
            &space,
            &[],
            &[at(4), at(5)],
            1,
            SEED,
            Some(&state),
        )
        .unwrap();
        assert_eq!(answer.points, [at(3)]);
        assert!(answer.exhausted);
    }

    #[test]
    fn refuses_doubles_without_step() {
        let space = space(vec![
            ("layers", int_range(1, 3)),
            ("lr", uniform_double(0.001, 0.1)),
        ]);
        let error = GridEngine.check_space(&space).unwrap_err();
        let EngineError::UnsupportedSpace(message) = &error else {
            panic!("{error:?}");
        };
        assert!(
            message.contains("grid needs feasibleSpace.step for double parameter \"lr\""),
            "{message}"
        );
        assert_eq!(
            ask(&GridEngine, &space, &[], &[], 1, SEED, None),
            Err(error)
        );
    }

    #[test]
    fn accepts_stepped_and_constant_doubles() {
        let space = space(vec![
            (
                "lr",
                Domain::Double {
                    min: 0.1,
                    max: 0.5,
                    step: Some(0.1),
                    distribution: Distribution::LogUniform,
                },
            ),
            ("momentum", uniform_double(0.9, 0.9)),
        ]);
        assert_eq!(GridEngine.check_space(&space), Ok(()));
        let answer = ask(&GridEngine, &space, &[], &[], 10, SEED, None).unwrap();
        assert_eq!(
            names(&space, &answer.points),
            ["0.1,0.9", "0.2,0.9", "0.3,0.9", "0.4,0.9", "0.5,0.9"]
        );
        assert!(answer.exhausted);
    }

    #[test]
    fn huge_grids_are_enumerated_lazily() {
        let space = space(vec![
            ("a", int_range(0, i64::MAX)),
            ("b", int_range(0, i64::MAX)),
            ("c", int_range(0, 9)),
        ]);
        let state = serde_json::json!({ "next": 25 });
        let answer = ask(&GridEngine, &space, &[], &[], 3, SEED, Some(&state)).unwrap();
        assert_eq!(
            answer.points,
            [5, 6, 7].map(|c| vec![Value::Int(0), Value::Int(2), Value::Int(c)])
        );
        assert_eq!(answer.state, serde_json::json!({ "next": 28 }));
        assert!(!answer.exhausted);
    }

    #[test]
    fn refuses_bad_state() {
        let space = space_2x3();
        for state in [serde_json::json!({ "next": -1 }), serde_json::json!([1])] {
            assert!(matches!(
                ask(&GridEngine, &space, &[], &[], 1, SEED, Some(&state)),
                Err(EngineError::BadState(_))
            ));
        }
    }
}
