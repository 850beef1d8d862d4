//! The `sobol` engine: a scrambled, seeded Sobol sequence mapped through the space.
//!
//! Sobol points fill the unit cube far more evenly than independent draws (every block of `2^m`
//! consecutive points puts exactly one point in each of `2^m` equal slices of every coordinate),
//! which is what a space-filling start wants. Mapping with [`SearchSpace::from_unit`] keeps every
//! distribution honoured, as for random search.
//!
//! * **Sequence**: Joe and Kuo's direction numbers (`new-joe-kuo-6`, the set scipy uses), for up
//!   to [`MAX_DIMENSIONS`] parameters; a larger space is refused with `UnsupportedSpace`. Points
//!   are computed directly from their index in natural order (`x_i = ⊕ v_k` over the set bits
//!   `k` of `i`), 64 bits per coordinate, so any index is reachable without iterating.
//! * **Scrambling**: a nested uniform (Owen) scramble of the top 53 bits of every coordinate:
//!   each bit is flipped by a hash of (seed, dimension, bit position, the bits above it). This is
//!   the direct form of hash-based Owen scrambling (Burley, "Practical Hash-based Owen
//!   Scrambling", 2020), taken 53 bits deep instead of 32 so that the result is a full-precision
//!   `f64` in `[0, 1)`. It keeps the stratification above, removes the unscrambled sequence's
//!   lattice artefacts and its point at the origin, and gives each seed its own, equally good,
//!   sequence.
//! * **State**: the next index (`{"index": i}`); without state it starts at `history + pending`
//!   so a restart does not replay the first points. Two calls of 3 give one call of 6.
//! * **Finite spaces**: a point that maps to a taken point is skipped. After 64 skips in a row
//!   the space is nearly used up and the rest of the batch is picked among the untaken points
//!   directly (as random search does); when none are left the answer says `exhausted`.
//!
//! [`SearchSpace::from_unit`]: crate::space::SearchSpace::from_unit

use crate::counter_state::{counter_state, read_counter, trials_so_far};
use crate::engine::{Engine, EngineError, SuggestRequest, Suggestions};
use crate::seeding::{mix64, stream_rng};
use crate::sobol_directions::{JOE_KUO_D6, JOE_KUO_ROWS};
use crate::space::SearchSpace;
use crate::taken::TakenPoints;

/// The most parameters the Sobol engine supports: dimension 1 plus the 999 rows of direction
/// numbers carried in `sobol_directions`.
pub const MAX_DIMENSIONS: usize = JOE_KUO_ROWS + 1;

/// Bits of each coordinate that are scrambled and kept: a double's 53-bit significand.
const SCRAMBLED_BITS: u32 = 53;

/// Bits of each Sobol coordinate (and of the index): one direction number per bit.
const BITS: usize = 64;

/// Duplicates in a row after which the Sobol engine picks among the untaken points directly.
const MAX_CONSECUTIVE_DUPLICATES: usize = 64;

/// The key of the next index in the saved state.
const STATE_KEY: &str = "index";

/// Tags the scrambling seeds ("sobol" in ASCII).
const SCRAMBLE_STREAM: u64 = 0x73_6F_62_6F_6C;

/// Tags the random stream used to pick untaken points ("sobolpk" in ASCII).
const FALLBACK_STREAM: u64 = 0x73_6F_62_6F_6C_70_6B;

/// The most points reserved up front, whatever `count` asks for.
const MAX_PREALLOCATED: usize = 1024;

/// Scrambled, seeded Sobol sequence.
#[derive(Debug, Clone, Copy, Default)]
pub struct SobolEngine;

impl Engine for SobolEngine {
    fn name(&self) -> &'static str {
        "sobol"
    }

    fn check_space(&self, space: &SearchSpace) -> Result<(), EngineError> {
        if space.dims() > MAX_DIMENSIONS {
            return Err(EngineError::UnsupportedSpace(format!(
                "sobol supports at most {MAX_DIMENSIONS} parameters, this space has {}; use \
                 random for larger spaces",
                space.dims()
            )));
        }
        Ok(())
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, EngineError> {
        self.check_space(request.space)?;
        let space = request.space;
        let sequence = ScrambledSobol::new(space.dims(), request.seed);
        let mut index = read_counter(request, STATE_KEY, trials_so_far(request))?;
        let mut taken = TakenPoints::of_request(request);
        let mut points = Vec::with_capacity(request.count.min(MAX_PREALLOCATED));
        let mut duplicates = 0;
        while points.len() < request.count && !taken.is_full() {
            let point = space.from_unit(&sequence.point(index));
            index = index.wrapping_add(1);
            if taken.take(&point) {
                points.push(point);
                duplicates = 0;
                continue;
            }
            duplicates += 1;
            if duplicates < MAX_CONSECUTIVE_DUPLICATES {
                continue;
            }
            if taken.remaining().is_some() {
                let mut rng = stream_rng(request.seed, FALLBACK_STREAM, index);
                let wanted = request.count - points.len();
                points.extend(taken.take_untaken(wanted, &mut rng));
                break;
            }
            // Infinite in name but repeating in practice (a continuous range only a few doubles
            // wide): a repeated point is better than a stalled experiment.
            points.push(point);
            duplicates = 0;
        }
        Ok(Suggestions {
            points,
            exhausted: taken.is_full(),
            state: counter_state(STATE_KEY, index),
        })
    }
}

/// The first `dims` dimensions of the Sobol sequence with the scramble of one seed.
#[derive(Debug, Clone)]
struct ScrambledSobol {
    /// Per dimension, the direction numbers `v_1..v_64` (`v_1` for the index's lowest bit).
    directions: Vec<[u64; BITS]>,
    /// Per dimension, the seed of its Owen scramble.
    seeds: Vec<u64>,
}

impl ScrambledSobol {
    /// `dims` must be at most [`MAX_DIMENSIONS`]; dimensions past it are left out.
    fn new(dims: usize, seed: u64) -> Self {
        let dims = dims.min(MAX_DIMENSIONS);
        ScrambledSobol {
            directions: (0..dims).map(directions).collect(),
            seeds: (0..dims as u64)
                .map(|d| mix64(seed ^ mix64(SCRAMBLE_STREAM ^ mix64(d))))
                .collect(),
        }
    }

    /// The point with number `index`, in `[0, 1)^dims`.
    fn point(&self, index: u64) -> Vec<f64> {
        // 2^-53, the weight of the last kept bit.
        const SCALE: f64 = 1.0 / (1u64 << SCRAMBLED_BITS) as f64;
        self.directions
            .iter()
            .zip(&self.seeds)
            .map(|(v, &seed)| {
                let x = owen_scramble(sobol_bits(v, index), seed);
                (x >> (64 - SCRAMBLED_BITS)) as f64 * SCALE
            })
            .collect()
    }
}

/// The unscrambled coordinate of point `index`: the XOR of the direction numbers of its set bits.
fn sobol_bits(v: &[u64; BITS], index: u64) -> u64 {
    v.iter()
        .enumerate()
        .filter(|(bit, _)| (index >> bit) & 1 == 1)
        .fold(0, |acc, (_, v)| acc ^ v)
}

/// The direction numbers of dimension `dim` (0-based), each left-aligned in 64 bits
/// (`v_k = m_k / 2^k`), extended past the initial ones by Bratley and Fox's recurrence.
fn directions(dim: usize) -> [u64; BITS] {
    let mut v = [0u64; BITS];
    let Some(&(s, a, m)) = dim.checked_sub(1).and_then(|row| JOE_KUO_D6.get(row)) else {
        // Dimension 1: van der Corput, all m_k = 1.
        for (k, slot) in v.iter_mut().enumerate() {
            *slot = 1u64 << (BITS - 1 - k);
        }
        return v;
    };
    let s = s as usize;
    for k in 0..BITS {
        v[k] = if k < s {
            u64::from(m[k]) << (BITS - 1 - k)
        } else {
            let mut value = v[k - s] ^ (v[k - s] >> s);
            for j in 1..s {
                if (a >> (s - 1 - j)) & 1 == 1 {
                    value ^= v[k - j];
                }
            }
            value
        };
    }
    v
}

/// Nested uniform (Owen) scramble of the top 53 bits of `x`: bit `j` (from the
/// top) is flipped or not by a hash of the bits above it, so points that share a prefix are
/// permuted together and the net structure survives.
fn owen_scramble(x: u64, seed: u64) -> u64 {
    let mut out = 0u64;
    for j in 0..SCRAMBLED_BITS {
        let prefix = if j == 0 { 0 } else { x >> (64 - j) };
        // The position sits above any prefix (j <= 52 bits long), so (j, prefix) pairs are distinct.
        let flip = mix64(seed ^ mix64(prefix | (u64::from(j) << 58))) & 1;
        let bit = ((x >> (63 - j)) & 1) ^ flip;
        out |= bit << (63 - j);
    }
    out
}

/// Up to `count` space-filling points for a model-based engine's start-up (the Sobol sequence, or
/// random search for spaces wider than [`MAX_DIMENSIONS`]), none of them taken by the request's
/// history and pending trials or by `batch` (the points this call already chose). The sequence
/// continues from `*index`, which is advanced, so an engine keeps one number in its state.
pub(crate) fn space_filling_points(
    request: &SuggestRequest<'_>,
    batch: &[crate::space::Point],
    index: &mut u64,
    count: usize,
) -> Result<Vec<crate::space::Point>, EngineError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let space = request.space;
    let pending: Vec<crate::space::Point> = request.pending.iter().chain(batch).cloned().collect();
    let (engine, key): (&dyn Engine, &str) = if space.dims() <= MAX_DIMENSIONS {
        (&SobolEngine, "index")
    } else {
        (&crate::random::RandomEngine, "draws")
    };
    let state = serde_json::json!({ key: *index });
    let answer = engine.suggest(&SuggestRequest {
        space,
        history: request.history,
        pending: &pending,
        count,
        seed: request.seed,
        state: Some(&state),
    })?;
    if let Some(next) = answer.state.get(key).and_then(serde_json::Value::as_u64) {
        *index = next;
    }
    Ok(answer.points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::RandomEngine;
    use crate::space::{Point, Value};
    use crate::test_support::*;

    fn unscrambled(dim: usize, index: u64) -> f64 {
        sobol_bits(&directions(dim), index) as f64 / 2f64.powi(64)
    }

    #[test]
    fn follows_the_sampling_contract() {
        sampling_contract(&SobolEngine);
    }

    #[test]
    fn unscrambled_points_match_the_published_sequence() {
        // Joe and Kuo's generator (Gray-code order) starts, after the origin, with these points
        // in dimensions 1-3; Gray-code point n is natural-order point n ^ (n >> 1).
        let expected = [
            [0.5, 0.5, 0.5],
            [0.75, 0.25, 0.25],
            [0.25, 0.75, 0.75],
            [0.375, 0.375, 0.625],
            [0.875, 0.875, 0.125],
            [0.625, 0.125, 0.875],
            [0.125, 0.625, 0.375],
        ];
        for (n, row) in (1u64..).zip(expected) {
            let gray = n ^ (n >> 1);
            let got: Vec<f64> = (0..3).map(|d| unscrambled(d, gray)).collect();
            assert_eq!(got, row, "point {n}");
        }
    }

    #[test]
    fn every_dimension_is_stratified() {
        // The first 2^10 points put one point in each of 2^10 slices of every coordinate: this
        // holds only if every row of direction numbers was carried over right. The scramble
        // keeps it.
        const M: u32 = 10;
        let sequence = ScrambledSobol::new(MAX_DIMENSIONS, SEED);
        let points: Vec<Vec<f64>> = (0..1u64 << M).map(|i| sequence.point(i)).collect();
        for dim in 0..MAX_DIMENSIONS {
            let mut seen = vec![false; 1 << M];
            for point in &points {
                let slice = (point[dim] * f64::from(1u32 << M)) as usize;
                assert!(!seen[slice], "dimension {dim}: slice {slice} twice");
                seen[slice] = true;
            }
        }
    }

    #[test]
    fn coordinates_have_full_precision() {
        let sequence = ScrambledSobol::new(3, SEED);
        let fine = (0..64)
            .flat_map(|i| sequence.point(i))
            .filter(|x| (x * 2f64.powi(32)).fract() != 0.0)
            .count();
        assert!(
            fine > 180,
            "{fine} of 192 coordinates use more than 32 bits"
        );
    }

    #[test]
    fn is_more_even_than_random_search() {
        // 256 points in 16 x 16 cells of the unit square: Sobol's first two dimensions form a
        // (0, 8, 2)-net, so every cell holds exactly one point; random points clump.
        let square = unit_square();
        let cell_counts = |points: &[Point]| {
            let mut counts = [0u32; 256];
            for p in points {
                let [Value::Double(x), Value::Double(y)] = p[..] else {
                    panic!("{p:?}");
                };
                counts[(x * 16.0) as usize * 16 + (y * 16.0) as usize] += 1;
            }
            counts
        };
        let squared_error = |counts: [u32; 256]| {
            counts
                .iter()
                .map(|&c| (f64::from(c) - 1.0).powi(2))
                .sum::<f64>()
        };
        for seed in [1, 2, 3] {
            let sobol = ask(&SobolEngine, &square, &[], &[], 256, seed, None).unwrap();
            let random = ask(&RandomEngine, &square, &[], &[], 256, seed, None).unwrap();
            assert_eq!(cell_counts(&sobol.points), [1; 256]);
            assert!(squared_error(cell_counts(&random.points)) > 100.0);
            // And over all boxes anchored at the origin (star discrepancy on a 32 x 32 lattice).
            let star = |points: &[Point]| {
                let mut worst = 0f64;
                for i in 1..=32 {
                    for j in 1..=32 {
                        let (a, b) = (f64::from(i) / 32.0, f64::from(j) / 32.0);
                        let inside = points
                            .iter()
                            .filter(|p| {
                                matches!(p[..], [Value::Double(x), Value::Double(y)] if x < a && y < b)
                            })
                            .count();
                        worst = worst.max((inside as f64 / points.len() as f64 - a * b).abs());
                    }
                }
                worst
            };
            assert!(
                star(&sobol.points) * 2.0 < star(&random.points),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn refuses_too_many_dimensions() {
        let params: Vec<_> = (0..=MAX_DIMENSIONS)
            .map(|i| (format!("p{i}"), uniform_double(0.0, 1.0)))
            .collect();
        let space = space(
            params
                .iter()
                .map(|(n, d)| (n.as_str(), d.clone()))
                .collect(),
        );
        assert!(matches!(
            SobolEngine.check_space(&space),
            Err(EngineError::UnsupportedSpace(m)) if m.contains("at most 1000")
        ));
        let fits = crate::space::SearchSpace::new(space.params()[1..].to_vec()).unwrap();
        assert_eq!(SobolEngine.check_space(&fits), Ok(()));
    }
}
