//! Which points are taken, and how an engine finds the untaken ones of a finite space.
//!
//! A point is taken when a finished trial (history) or a running one (pending) has it, or when an
//! earlier point of the batch being built is it. Points are compared by
//! [`SearchSpace::point_key`], so `0.1 + 0.2` and `0.3` on a grid of step `0.1` are one point.
//!
//! Sampling engines first draw and reject taken points; in a finite space that is nearly used up
//! rejection stops working, so after a bounded number of misses they ask [`TakenPoints`] for
//! untaken points directly. For a finite space a key is the point's mixed-radix digits, so the
//! untaken points are found by index without building the points they skip.

use std::collections::HashSet;

use rand::Rng;

use crate::engine::SuggestRequest;
use crate::seeding::below;
use crate::space::{Point, SearchSpace};

/// Finite spaces up to this many points are listed in full to pick untaken points evenly; 2^20
/// (about a million) index look-ups take tens of milliseconds. Larger spaces scan forward from a
/// random index instead, which costs at most one step per taken point.
const ENUMERATION_LIMIT: u128 = 1 << 20;

/// The points an engine must not suggest again.
#[derive(Debug)]
pub(crate) struct TakenPoints<'a> {
    space: &'a SearchSpace,
    keys: HashSet<Vec<u64>>,
    cardinality: Option<u128>,
}

impl<'a> TakenPoints<'a> {
    /// The points of the request's history and pending trials.
    pub(crate) fn of_request(request: &SuggestRequest<'a>) -> Self {
        let space = request.space;
        let keys = request
            .history
            .iter()
            .map(|trial| &trial.point)
            .chain(request.pending)
            .map(|point| space.point_key(point))
            .collect();
        TakenPoints {
            space,
            keys,
            cardinality: space.cardinality(),
        }
    }

    /// Marks `point` taken; `false` when it already was.
    pub(crate) fn take(&mut self, point: &Point) -> bool {
        self.keys.insert(self.space.point_key(point))
    }

    /// Marks the point with this key taken; `false` when it already was.
    pub(crate) fn take_key(&mut self, key: Vec<u64>) -> bool {
        self.keys.insert(key)
    }

    /// Whether the point with this key is taken.
    pub(crate) fn has_key(&self, key: &[u64]) -> bool {
        self.keys.contains(key)
    }

    /// How many points are left: `None` for an infinite space.
    pub(crate) fn remaining(&self) -> Option<u128> {
        self.cardinality
            .map(|n| n.saturating_sub(self.keys.len() as u128))
    }

    /// Whether every point of a finite space is taken.
    pub(crate) fn is_full(&self) -> bool {
        self.remaining() == Some(0)
    }

    /// Takes up to `count` untaken points of a finite space, picked at random (evenly over the
    /// untaken points where the space is small enough to list). Fewer only when the space runs
    /// out; none for an infinite space.
    pub(crate) fn take_untaken(&mut self, count: usize, rng: &mut impl Rng) -> Vec<Point> {
        let (Some(cardinality), Some(remaining)) = (self.cardinality, self.remaining()) else {
            return Vec::new();
        };
        let want = usize::try_from(remaining).map_or(count, |r| r.min(count));
        let indices = if cardinality <= ENUMERATION_LIMIT {
            self.pick_listed(cardinality, want, rng)
        } else {
            self.pick_scanned(cardinality, want, rng)
        };
        indices
            .into_iter()
            .filter_map(|index| {
                let point = self.space.point_at(index)?;
                self.take(&point).then_some(point)
            })
            .collect()
    }

    /// Lists every untaken index, then draws `want` of them without replacement.
    fn pick_listed(&self, cardinality: u128, want: usize, rng: &mut impl Rng) -> Vec<u128> {
        let mut untaken: Vec<u128> = (0..cardinality)
            .filter(|&index| {
                self.space
                    .digits_at(index)
                    .is_some_and(|key| !self.keys.contains(&key))
            })
            .collect();
        let want = want.min(untaken.len());
        // A partial Fisher-Yates shuffle: the first `want` slots become a uniform sample.
        for slot in 0..want {
            let pick = slot + below(rng, (untaken.len() - slot) as u128) as usize;
            untaken.swap(slot, pick);
        }
        untaken.truncate(want);
        untaken
    }

    /// From a random index, walks forward (wrapping) to the next untaken index, `want` times.
    fn pick_scanned(&self, cardinality: u128, want: usize, rng: &mut impl Rng) -> Vec<u128> {
        let mut chosen: HashSet<u128> = HashSet::new();
        let mut picked = Vec::new();
        // Every step past a taken or chosen index passes one of them, so a walk is bounded.
        let max_steps = self.keys.len() as u128 + want as u128 + 1;
        while picked.len() < want {
            let mut index = below(rng, cardinality);
            let mut found = None;
            for _ in 0..max_steps {
                let free = !chosen.contains(&index)
                    && self
                        .space
                        .digits_at(index)
                        .is_some_and(|key| !self.keys.contains(&key));
                if free {
                    found = Some(index);
                    break;
                }
                index = (index + 1) % cardinality;
            }
            match found {
                Some(index) => {
                    chosen.insert(index);
                    picked.push(index);
                }
                None => break,
            }
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeding::stream_rng;
    use crate::test_support::*;

    #[test]
    fn both_ways_of_picking_find_exactly_the_untaken_points() {
        let space = space(vec![("a", int_range(0, 5)), ("b", int_range(0, 4))]);
        let pending: Vec<Point> = (0..25).map(|i| space.point_at(i).unwrap()).collect();
        let request = SuggestRequest {
            space: &space,
            history: &[],
            pending: &pending,
            count: 10,
            seed: SEED,
            state: None,
        };
        let taken = TakenPoints::of_request(&request);
        assert_eq!(taken.remaining(), Some(5));
        let mut rng = stream_rng(SEED, 0, 0);
        for picked in [
            taken.pick_listed(30, 10, &mut rng),
            taken.pick_scanned(30, 10, &mut rng),
        ] {
            let mut picked = picked;
            picked.sort_unstable();
            assert_eq!(picked, [25, 26, 27, 28, 29]);
        }
        let mut taken = taken;
        let points = taken.take_untaken(3, &mut rng);
        assert_eq!(points.len(), 3);
        assert_eq!(taken.remaining(), Some(2));
        assert_eq!(taken.take_untaken(3, &mut rng).len(), 2);
        assert!(taken.is_full());
        assert!(taken.take_untaken(3, &mut rng).is_empty());
    }
}
