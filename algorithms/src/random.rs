//! The `random` engine: independent draws from the unit cube, mapped through the space.
//!
//! Drawing in the unit cube and mapping with [`SearchSpace::from_unit`] means every distribution
//! (log, normal, quantised) is honoured exactly as the space defines it.
//!
//! Draw number `k` uses its own generator keyed by (seed, `k`), and the state saves the next `k`
//! (`{"draws": k}`): two calls of 3 give the same points as one call of 6, and a restart that
//! lost the state starts at `k = history + pending` rather than replaying old draws.
//!
//! A draw that lands on a taken point (history, pending, or earlier in the batch) is rejected. In
//! a finite space that is nearly used up rejection stops finding points, so after 64 misses in a
//! row the rest of the batch is picked among the untaken points directly; when none are left the
//! answer says `exhausted`.
//!
//! [`SearchSpace::from_unit`]: crate::space::SearchSpace::from_unit

use crate::counter_state::{counter_state, read_counter, trials_so_far};
use crate::engine::{Engine, EngineError, SuggestRequest, Suggestions};
use crate::seeding::{stream_rng, unit_f64};
use crate::taken::TakenPoints;

/// Misses in a row after which random search stops drawing and picks among the untaken points.
/// With half the space untaken the chance of this many misses by bad luck is 2^-64.
const MAX_CONSECUTIVE_REJECTIONS: usize = 64;

/// The key of the draw counter in the saved state.
const STATE_KEY: &str = "draws";

/// Tags this engine's random stream ("random" in ASCII), so that no other engine using the same
/// seed draws the same numbers.
const RANDOM_STREAM: u64 = 0x72_61_6E_64_6F_6D;

/// The most points reserved up front, whatever `count` asks for.
const MAX_PREALLOCATED: usize = 1024;

/// Seeded random search.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomEngine;

impl Engine for RandomEngine {
    fn name(&self) -> &'static str {
        "random"
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, EngineError> {
        let space = request.space;
        let mut draw = read_counter(request, STATE_KEY, trials_so_far(request))?;
        let mut taken = TakenPoints::of_request(request);
        let mut points = Vec::with_capacity(request.count.min(MAX_PREALLOCATED));
        let mut misses = 0;
        while points.len() < request.count && !taken.is_full() {
            let mut rng = stream_rng(request.seed, RANDOM_STREAM, draw);
            draw = draw.wrapping_add(1);
            let unit: Vec<f64> = (0..space.dims()).map(|_| unit_f64(&mut rng)).collect();
            let point = space.from_unit(&unit);
            if taken.take(&point) {
                points.push(point);
                misses = 0;
                continue;
            }
            misses += 1;
            if misses < MAX_CONSECUTIVE_REJECTIONS {
                continue;
            }
            if taken.remaining().is_some() {
                let wanted = request.count - points.len();
                points.extend(taken.take_untaken(wanted, &mut rng));
                break;
            }
            // Infinite in name but repeating in practice (a continuous range only a few doubles
            // wide): a repeated point is better than a stalled experiment.
            points.push(point);
            misses = 0;
        }
        Ok(Suggestions {
            points,
            exhausted: taken.is_full(),
            state: counter_state(STATE_KEY, draw),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{Distribution, Domain, Value};
    use crate::test_support::*;

    #[test]
    fn follows_the_sampling_contract() {
        sampling_contract(&RandomEngine);
    }

    #[test]
    fn honours_distributions() {
        let space = space(vec![(
            "lr",
            Domain::Double {
                min: 1e-5,
                max: 1e-1,
                step: None,
                distribution: Distribution::LogUniform,
            },
        )]);
        let answer = ask(&RandomEngine, &space, &[], &[], 2_000, SEED, None).unwrap();
        let below = answer
            .points
            .iter()
            .filter(|p| matches!(p[0], Value::Double(x) if x < 1e-3))
            .count();
        // Half the log range lies below 1e-3.
        assert!((900..1_100).contains(&below), "{below}");
    }

    #[test]
    fn huge_finite_spaces_need_no_listing() {
        let space = space(vec![
            ("a", int_range(0, 1_000_000)),
            ("b", int_range(0, 1_000_000)),
            ("c", choices(&["x", "y"])),
        ]);
        let pending: Vec<_> = (0..1_000).map(|i| space.point_at(i).unwrap()).collect();
        let answer = ask(&RandomEngine, &space, &[], &pending, 100, SEED, None).unwrap();
        assert_eq!(answer.points.len(), 100);
        assert!(!answer.exhausted);
        assert_eq!(
            distinct_keys(&space, &[pending, answer.points].concat()),
            1_100
        );
    }
}
