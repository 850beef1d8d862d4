//! Maximising an acquisition over the search space.
//!
//! The shape follows Optuna's GPSampler (`optim_mixed.py`) and BoTorch's `optimize_acqf`: score
//! many space-filling candidates in one batch, then polish the best few with a local optimiser.
//!
//! 1. **Candidates**: scrambled Sobol points of the space's unit cube, plus the best observed
//!    points and random perturbations of them (where the next improvement usually is once the
//!    model has located a basin). Every candidate goes through [`Encoder::snap_unit`], so it is a
//!    valid point (ints rounded, categoricals decided) and is scored *at* that point.
//! 2. **Scoring**: all candidates share one blocked triangular solve
//!    ([`Posterior::predict_many`]).
//! 3. **Local search** from the top few distinct candidates (and the best observed point),
//!    alternating two moves until neither improves:
//!    * the continuous doubles by argmin's L-BFGS with the analytic gradient of the score. The
//!      unit box is handled by evaluating at the clamped point plus a quadratic penalty outside
//!      it (argmin has no bounded L-BFGS), in coordinates scaled by the length-scales so the
//!      problem is well conditioned (Optuna does the same);
//!    * every finite parameter by a discrete line search: all values when there are at most
//!      [`EXHAUSTIVE_VALUES`], else steps of ±1, ±2, ±4, … grid positions; all choices of a
//!      categorical. The acquisition is only ever evaluated at grid points, so nothing is
//!      rounded after the fact.
//!
//! The result is every scored point, best first, so the caller can skip points already taken.

use std::cell::RefCell;
use std::cmp::Ordering;

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

use super::acquisition::Score;
use super::encoding::{EXHAUSTIVE_VALUES, Encoder, Slot, index_of_unit, unit_of_index};
use super::gp::Posterior;
use crate::space::{Point, SearchSpace};

/// Most alternating rounds (continuous L-BFGS, then discrete line search) per local search.
const MAX_LOCAL_ROUNDS: usize = 4;
/// L-BFGS iterations per continuous polish.
const POLISH_MAX_ITERATIONS: u64 = 40;
/// L-BFGS memory.
const POLISH_MEMORY: usize = 5;
/// Gradient-norm tolerance of the polish, in length-scale units.
const POLISH_GRADIENT_TOLERANCE: f64 = 1e-6;
/// Weight of the quadratic penalty for leaving the unit box during the polish.
const BOX_PENALTY: f64 = 1e4;
/// A move must improve the score by at least this much to count (stops ping-pong on ties).
const MIN_IMPROVEMENT: f64 = 1e-12;
/// Cost used where a score is not finite.
const FAILED_COST: f64 = 1e300;

/// One scored point.
#[derive(Debug, Clone)]
pub(crate) struct Scored {
    /// The acquisition score (higher is better).
    pub(crate) value: f64,
    /// The point.
    pub(crate) point: Point,
    /// Its encoding.
    pub(crate) features: Vec<f64>,
}

/// What an acquisition search works with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Search<'a> {
    /// The space.
    pub(crate) space: &'a SearchSpace,
    /// Its encoding.
    pub(crate) encoder: &'a Encoder,
    /// The incumbent (lowest standardised observation).
    pub(crate) best: f64,
    /// Number of local searches per score (0: candidates only).
    pub(crate) local_searches: usize,
}

impl Search<'_> {
    /// Scores `candidates` (unit vectors of the space) and the `starts` (encodings) under each of
    /// `scores`, polishes the best, and returns, per score, every scored point best first.
    pub(crate) fn run(
        &self,
        posterior: &mut Posterior,
        scores: &[Score],
        candidates: &[Vec<f64>],
        starts: &[Vec<f64>],
    ) -> Vec<Vec<Scored>> {
        let width = self.encoder.width();
        let mut points = Vec::with_capacity(candidates.len() + starts.len());
        let mut flat = Vec::with_capacity((candidates.len() + starts.len()) * width);
        for unit in candidates {
            let (point, features) = self.encoder.snap_unit(self.space, unit);
            flat.extend_from_slice(&features);
            points.push(point);
        }
        for start in starts {
            let (point, features) = self.encoder.snap(self.space, start);
            flat.extend_from_slice(&features);
            points.push(point);
        }
        let predictions = posterior.predict_many(&flat);
        scores
            .iter()
            .map(|&score| {
                let mut scored: Vec<Scored> = predictions
                    .iter()
                    .zip(&points)
                    .enumerate()
                    .map(|(i, (p, point))| Scored {
                        value: finite_or_worst(score.value(p.mean, p.var, self.best)),
                        point: point.clone(),
                        features: flat[i * width..(i + 1) * width].to_vec(),
                    })
                    .collect();
                sort_best_first(&mut scored);
                let mut polished = Vec::new();
                let mut seen: Vec<Vec<u64>> = Vec::new();
                // The top distinct candidates, then the best observed point (the last start).
                let mut picks: Vec<usize> = Vec::new();
                for (i, s) in scored.iter().enumerate() {
                    if picks.len() >= self.local_searches {
                        break;
                    }
                    let key = self.space.point_key(&s.point);
                    if !seen.contains(&key) {
                        seen.push(key);
                        picks.push(i);
                    }
                }
                let mut starts_to_polish: Vec<Vec<f64>> =
                    picks.iter().map(|&i| scored[i].features.clone()).collect();
                if self.local_searches > 0
                    && let Some(first_start) = starts.first()
                {
                    starts_to_polish.push(self.encoder.snap(self.space, first_start).1);
                }
                for start in starts_to_polish {
                    polished.push(self.local_search(posterior, score, start));
                }
                scored.extend(polished);
                sort_best_first(&mut scored);
                scored
            })
            .collect()
    }

    /// Alternates continuous L-BFGS and discrete line searches from `start` (an exact encoding of
    /// a valid point) until neither improves.
    fn local_search(&self, posterior: &mut Posterior, score: Score, start: Vec<f64>) -> Scored {
        let mut features = start;
        let mut value = self.score_one(posterior, score, &features);
        let continuous = self.encoder.columns_of_continuous();
        for _ in 0..MAX_LOCAL_ROUNDS {
            let mut moved = false;
            if !continuous.is_empty()
                && let Some((v, f)) =
                    self.polish_continuous(posterior, score, &features, &continuous)
                && v > value + MIN_IMPROVEMENT
            {
                value = v;
                features = f;
            }
            for slot in self.encoder.slots() {
                if let Some((v, f)) = self.line_search(posterior, score, &features, slot)
                    && v > value + MIN_IMPROVEMENT
                {
                    value = v;
                    features = f;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        let (point, features) = self.encoder.snap(self.space, &features);
        let value = self.score_one(posterior, score, &features);
        Scored {
            value,
            point,
            features,
        }
    }

    fn score_one(&self, posterior: &Posterior, score: Score, features: &[f64]) -> f64 {
        let p = posterior.predict_one(features);
        finite_or_worst(score.value(p.mean, p.var, self.best))
    }

    /// L-BFGS over the continuous columns, the others fixed.
    fn polish_continuous(
        &self,
        posterior: &Posterior,
        score: Score,
        features: &[f64],
        columns: &[usize],
    ) -> Option<(f64, Vec<f64>)> {
        let scale: Vec<f64> = columns
            .iter()
            .map(|&c| {
                let w = posterior
                    .kernel()
                    .inv_sq_lengthscales
                    .get(c)
                    .copied()
                    .unwrap_or(1.0);
                let l = 1.0 / w.sqrt();
                if l.is_finite() && l > 0.0 { l } else { 1.0 }
            })
            .collect();
        let problem = Polish {
            posterior,
            score,
            best: self.best,
            base: features.to_vec(),
            columns: columns.to_vec(),
            scale: scale.clone(),
            last: RefCell::new(None),
        };
        let z0: Vec<f64> = columns
            .iter()
            .zip(&scale)
            .map(|(&c, l)| features[c] / l)
            .collect();
        let solver = LBFGS::new(MoreThuenteLineSearch::new(), POLISH_MEMORY)
            .with_tolerance_grad(POLISH_GRADIENT_TOLERANCE)
            .ok()?
            .with_tolerance_cost(0.0)
            .ok()?;
        let result = Executor::new(problem, solver)
            .configure(|state| state.param(z0).max_iters(POLISH_MAX_ITERATIONS))
            .ctrlc(false)
            .run()
            .ok()?;
        let z = result.state().get_best_param()?.clone();
        let mut out = features.to_vec();
        for ((&c, l), zk) in columns.iter().zip(&scale).zip(&z) {
            let x = (zk * l).clamp(0.0, 1.0);
            if !x.is_finite() {
                return None;
            }
            out[c] = x;
        }
        let (_, snapped) = self.encoder.snap(self.space, &out);
        Some((self.score_one(posterior, score, &snapped), snapped))
    }

    /// The best value of one finite parameter with the others fixed; `None` for a continuous
    /// parameter or when nothing else is worth trying.
    fn line_search(
        &self,
        posterior: &mut Posterior,
        score: Score,
        features: &[f64],
        slot: &Slot,
    ) -> Option<(f64, Vec<f64>)> {
        let width = self.encoder.width();
        let mut alternatives: Vec<Vec<f64>> = Vec::new();
        match slot {
            Slot::Continuous { .. } => return None,
            Slot::OneHot { column, choices } => {
                for c in 0..*choices {
                    let mut f = features.to_vec();
                    for (k, v) in f[*column..*column + choices].iter_mut().enumerate() {
                        *v = if k == c { 1.0 } else { 0.0 };
                    }
                    alternatives.push(f);
                }
            }
            Slot::Ordinal {
                column,
                alone,
                count,
            } => {
                let indices: Vec<u128> = if *count <= EXHAUSTIVE_VALUES {
                    (0..*count).collect()
                } else {
                    let current = index_of_unit(alone, features[*column]).unwrap_or(0);
                    let mut around = Vec::new();
                    let mut step = 1u128;
                    while step < *count {
                        if let Some(i) = current.checked_sub(step) {
                            around.push(i);
                        }
                        if current + step < *count {
                            around.push(current + step);
                        }
                        step *= 2;
                    }
                    around
                };
                for index in indices {
                    if let Some(u) = unit_of_index(alone, index) {
                        let mut f = features.to_vec();
                        f[*column] = u;
                        alternatives.push(f);
                    }
                }
            }
        }
        if alternatives.len() < 2 && matches!(slot, Slot::OneHot { .. }) {
            return None;
        }
        let flat: Vec<f64> = alternatives.concat();
        let predictions = posterior.predict_many(&flat);
        let mut best: Option<(f64, usize)> = None;
        for (i, p) in predictions.iter().enumerate() {
            let v = finite_or_worst(score.value(p.mean, p.var, self.best));
            if best.is_none_or(|(bv, _)| v > bv) {
                best = Some((v, i));
            }
        }
        let (value, i) = best?;
        Some((value, flat[i * width..(i + 1) * width].to_vec()))
    }
}

/// The polish objective: `−score` at the clamped point plus the box penalty, in coordinates
/// `z = x / ℓ`.
struct Polish<'a> {
    posterior: &'a Posterior,
    score: Score,
    best: f64,
    base: Vec<f64>,
    columns: Vec<usize>,
    scale: Vec<f64>,
    last: RefCell<Option<(Vec<f64>, f64, Vec<f64>)>>,
}

impl Polish<'_> {
    fn cached(&self, z: &[f64]) -> (f64, Vec<f64>) {
        if let Some((at, cost, grad)) = self.last.borrow().as_ref()
            && at.as_slice() == z
        {
            return (*cost, grad.clone());
        }
        let result = self.evaluate(z);
        *self.last.borrow_mut() = Some((z.to_vec(), result.0, result.1.clone()));
        result
    }

    fn evaluate(&self, z: &[f64]) -> (f64, Vec<f64>) {
        let k = self.columns.len();
        if z.len() != k || z.iter().any(|v| !v.is_finite()) {
            return (FAILED_COST, vec![0.0; k]);
        }
        let mut x = self.base.clone();
        let mut penalty = 0.0;
        let mut excess = Vec::with_capacity(k);
        for ((&c, l), zk) in self.columns.iter().zip(&self.scale).zip(z) {
            let raw = zk * l;
            let clamped = raw.clamp(0.0, 1.0);
            let e = raw - clamped;
            penalty += BOX_PENALTY * e * e;
            excess.push(e);
            x[c] = clamped;
        }
        let p = self.posterior.predict_with_grad(&x);
        let s = self.score.with_grad(p.at.mean, p.at.var, self.best);
        if !s.value.is_finite() {
            return (FAILED_COST, vec![0.0; k]);
        }
        let grad = self
            .columns
            .iter()
            .zip(&self.scale)
            .zip(&excess)
            .map(|((&c, l), &e)| {
                let inside = if e == 0.0 { 1.0 } else { 0.0 };
                let d = s.d_mean * p.d_mean[c] + s.d_var * p.d_var[c];
                (-d * inside + 2.0 * BOX_PENALTY * e) * l
            })
            .collect();
        (-s.value + penalty, grad)
    }
}

impl CostFunction for Polish<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, param: &Self::Param) -> Result<Self::Output, argmin::core::Error> {
        Ok(self.cached(param).0)
    }
}

impl Gradient for Polish<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, param: &Self::Param) -> Result<Self::Gradient, argmin::core::Error> {
        Ok(self.cached(param).1)
    }
}

fn finite_or_worst(v: f64) -> f64 {
    if v.is_nan() { f64::NEG_INFINITY } else { v }
}

/// Sorts by score, best first; ties keep their order (the sort is stable), so results are
/// deterministic.
fn sort_best_first(scored: &mut [Scored]) {
    scored.sort_by(|a, b| b.value.partial_cmp(&a.value).unwrap_or(Ordering::Equal));
}
