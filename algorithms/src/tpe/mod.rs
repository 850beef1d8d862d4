//! `tpe` and `multivariate-tpe`: the Tree-structured Parzen Estimator (Bergstra et al. 2011).
//!
//! One call of [`TpeEngine::suggest`]:
//!
//! 1. **Start-up design.** While fewer than `n_startup_trials` trials exist (finished and
//!    running), points come from the scrambled Sobol engine, exactly the points the `sobol`
//!    algorithm would give (random search beyond Sobol's dimensions), as the GP engine does.
//! 2. **Split** (`GammaRule`). Finished trials with a finite loss are sorted by loss; the best
//!    `n_below(n)` are the *good* group, the others the *bad* group. Trials still running, and the
//!    points already chosen in this call, join the bad group as if they had the worst loss (the
//!    *constant liar*, on by default): the model then avoids the places being evaluated, so a
//!    batch of `n` spreads out instead of sampling one mode `n` times. Failed trials (no loss) are
//!    not modelled, but like every finished and running trial their points are never suggested
//!    again ([`SearchSpace::point_key`]); a finite space that is used up says `exhausted`.
//! 3. **Densities** (`parzen`). `l(x)` is a Parzen estimator of the good group, `g(x)` of the bad
//!    one, on the space's unit cube, where every distribution (uniform, logUniform, normal,
//!    logNormal) and every `step` is already applied, so the model honours them with no special
//!    case. Each density mixes one kernel per trial and a wide *prior* kernel (weight
//!    `prior_weight`); the older trials of a group count less once it holds more than 25 (the
//!    "linear forgetting" of hyperopt and Optuna), and in `l` the better good trials count more
//!    (by rank, `1 − 0.9·r/m`). Numbers get truncated normal kernels, scored
//!    by their mass over the value's cell when quantised; categorical parameters get their own
//!    estimator, a smoothed histogram of the choices.
//!    Kernel widths follow the group's spread (`spread_bandwidth`): `factor · sd · n^(−1/(d+4))`
//!    per dimension, clipped to `[1/min(100, n+2), 1]`.
//!    * `tpe` (univariate) models each parameter separately: `l` and `g` are products of
//!      one-dimensional estimators (`d = 1` in the width rule), as in hyperopt and Optuna's
//!      default TPE.
//!    * `multivariate-tpe` models all parameters jointly: one kernel per trial over every
//!      dimension (`d` = the number of parameters), so correlations between parameters are kept,
//!      as in Optuna's `multivariate=True`.
//! 4. **Choice.** `n_ei_candidates` points are drawn from `l`, each taken to its valid point
//!    ([`SearchSpace::from_unit`]) and scored by `log l(x) − log g(x)` (maximising it maximises
//!    expected improvement, Bergstra et al. 2011, eq. 5); the best untaken one wins. `tpe` draws
//!    a candidate from one good trial's kernels in every dimension (as the joint model does)
//!    rather than from each dimension's mixture independently; its score stays the univariate
//!    one. If every candidate is taken (a nearly used-up finite space), a few more rounds are
//!    drawn, then an untaken point is picked at random.
//!
//! # Defaults (Sextant's, chosen with `examples/bench`)
//!
//! | setting | hyperopt | Optuna | Sextant |
//! |---|---|---|---|
//! | start-up trials | 20 random | 10 random | 5 (`tpe`) / 10 (`multivariate-tpe`) scrambled Sobol |
//! | candidates | 24 | 24 | 24 |
//! | good group of `n` | `ceil(0.25·√n)`, ≤ 25 | `ceil(0.1·n)`, ≤ 25 | `ceil(0.25·n)`, ≤ 25 (hyperopt's rule when `gamma` is set) |
//! | good trials' weights | equal | equal | by rank, `1 − 0.9·r/m` |
//! | prior weight | 1 | 1 | 1 |
//! | kernel widths | neighbours | neighbours / `0.2·n^(−1/(d+4))` | `0.6 · sd · n^(−1/5)` / `0.5 · sd · n^(−1/(d+4))` |
//! | running trials | ignored | ignored (constant liar optional) | constant liar |
//!
//! What each choice was measured against is in `docs/benchmarks.md` ("TPE and multivariate TPE")
//! and beside each constant below. They were compared over seeds 0..19 and then 0..39 (the
//! benchmark's reported seeds are 0..9): medians move by ±30 % between neighbouring settings and
//! between seed sets, so these are the best of a coarse grid, not fine optima.
//!
//! # Determinism
//!
//! Given the request (space, history, pending, seed, state) the answer is fixed: every random
//! stream is keyed by the seed and the number of trials created so far. The saved state holds
//! only the next index of the start-up Sobol design, so a restart resumes exactly.
//!
//! [`SearchSpace::point_key`]: crate::space::SearchSpace::point_key
//! [`SearchSpace::from_unit`]: crate::space::SearchSpace::from_unit

mod parzen;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use self::parzen::{Coord, Kernel, Parzen};
use crate::counter_state::trials_so_far;
use crate::engine::{Engine, EngineError, SuggestRequest, Suggestions};

use crate::batch::Batch as Call;
use crate::seeding::{stream_rng, unit_f64};
use crate::space::{Domain, Point, SearchSpace};

/// How many of the `n` finished trials form the good group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GammaRule {
    /// `min(ceil(fraction · n), cap)`: Optuna's default is `fraction = 0.1, cap = 25`.
    Fraction {
        /// Share of the trials that are good.
        fraction: f64,
        /// At most this many good trials.
        cap: usize,
    },
    /// hyperopt's rule, used when the hyperopt setting `gamma` is given:
    /// `min(ceil(gamma · √n), 25)`.
    HyperoptSqrt {
        /// hyperopt's `gamma` (default 0.25), in `(0, 1)`.
        gamma: f64,
    },
}

/// hyperopt's and Optuna's cap on the good group, and the size from which old trials are
/// down-weighted ("linear forgetting", Optuna's `default_weights`).
pub const LINEAR_FORGETTING: usize = 25;

impl GammaRule {
    /// The size of the good group among `n` finished trials: at least 1 when `n ≥ 1`, at most `n`.
    pub fn n_below(&self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let wanted = match *self {
            GammaRule::Fraction { fraction, cap } => {
                ((fraction * n as f64).ceil().max(0.0) as usize).min(cap)
            }
            GammaRule::HyperoptSqrt { gamma } => {
                ((gamma * (n as f64).sqrt()).ceil().max(0.0) as usize).min(LINEAR_FORGETTING)
            }
        };
        wanted.clamp(1, n)
    }
}

/// Settings of both TPE engines.
#[derive(Debug, Clone, PartialEq)]
pub struct TpeSettings {
    /// Trials from the scrambled Sobol sequence before the model is used.
    pub n_startup_trials: usize,
    /// Candidates drawn from `l(x)` per suggested point.
    pub n_ei_candidates: usize,
    /// Weight of the prior kernel in each density (hyperopt and Optuna: 1.0).
    pub prior_weight: f64,
    /// The good/bad split.
    pub gamma: GammaRule,
    /// Count running trials (and earlier points of the batch) as the worst loss.
    pub constant_liar: bool,
}

/// `tpe`'s default number of start-up trials. Optuna starts with 10, hyperopt with 20; with
/// Sobol start-up points 5 did better than 3, 7, 10 and 20 on the benchmark (seeds 0..19, then
/// 10 against 5 over seeds 0..39: geometric mean of the regret ratios 1.12 for 10).
pub const DEFAULT_STARTUP_TRIALS: usize = 5;

/// `multivariate-tpe`'s default start-up trials: Optuna's 10. Over seeds 0..39, 5 was mixed (better
/// on Hartmann6 and Ackley-5, much worse on Branin's precision; geometric mean of the regret
/// ratios 1.12 against 10), so Optuna's value is kept.
pub const MULTIVARIATE_DEFAULT_STARTUP_TRIALS: usize = 10;

/// Sextant's default candidates per point: Optuna's and hyperopt's 24. More is cheap here but was
/// worse on the benchmark: 48, 64, 96 and 256 candidates exploit `l/g` harder and got stuck more
/// often (docs/benchmarks.md, "TPE and multivariate TPE").
pub const DEFAULT_EI_CANDIDATES: usize = 24;

/// The default good share of both variants: `min(ceil(0.25 · n), 25)`. Optuna's is `0.1 · n`
/// (same cap); with the spread-following widths a larger good group did better. Over seeds 0..39
/// (0.1, 0.15, 0.2, 0.25, 0.3 tried) 0.25 had the best geometric mean of the regret ratios over
/// the 8 (function, budget) cells for both variants.
pub const DEFAULT_GAMMA: GammaRule = GammaRule::Fraction {
    fraction: 0.25,
    cap: LINEAR_FORGETTING,
};

/// `tpe`'s defaults.
impl Default for TpeSettings {
    fn default() -> Self {
        TpeSettings {
            n_startup_trials: DEFAULT_STARTUP_TRIALS,
            n_ei_candidates: DEFAULT_EI_CANDIDATES,
            prior_weight: 1.0,
            gamma: DEFAULT_GAMMA,
            constant_liar: true,
        }
    }
}

impl TpeSettings {
    /// `multivariate-tpe`'s defaults: as `tpe`'s but for the start-up trials.
    pub fn multivariate_default() -> Self {
        TpeSettings {
            n_startup_trials: MULTIVARIATE_DEFAULT_STARTUP_TRIALS,
            ..TpeSettings::default()
        }
    }

    /// The defaults of `tpe` (`multivariate == false`) or `multivariate-tpe`.
    pub fn defaults_for(multivariate: bool) -> Self {
        if multivariate {
            TpeSettings::multivariate_default()
        } else {
            TpeSettings::default()
        }
    }
}

/// Kernel widths are `factor · spread · n^(−1/(d+4))` (see [`spread_bandwidth`]); the factor of
/// Scott's rule for a normal sample is 1.06. Smaller factors, chosen with the benchmark
/// (`docs/benchmarks.md`), concentrate the good density on the good trials: over seeds 0..19 of
/// the 4 test functions `tpe` was best at 0.6 (0.4, 0.5, 0.7, 0.8, 1.06 tried) and
/// `multivariate-tpe` at 0.5 (0.5, 0.6, 0.8, 1.06, 1.6 tried).
const UNIVARIATE_BANDWIDTH_FACTOR: f64 = 0.6;
const MULTIVARIATE_BANDWIDTH_FACTOR: f64 = 0.5;

/// Kernel widths are at least `1 / min(MAGIC_CLIP_MAX, kernels)` of the range (hyperopt's "magic
/// clip"): without it a tight cluster gives kernels too narrow to ever leave it.
const MAGIC_CLIP_MAX: f64 = 100.0;

/// Extra rounds of candidates when every candidate of a round is taken, before falling back.
const EXTRA_CANDIDATE_ROUNDS: u64 = 4;

/// Random draws tried when no candidate is free in an infinite space.
const MAX_FALLBACK_DRAWS: usize = 64;

/// Random streams, each tagged by eight ASCII bytes.
const CANDIDATE_STREAM: u64 = u64::from_le_bytes(*b"tpe-cand");
const FALLBACK_STREAM: u64 = u64::from_le_bytes(*b"tpe-fall");

/// The state's format version.
const STATE_VERSION: u64 = 1;

/// The TPE engine, univariate (`tpe`) or multivariate (`multivariate-tpe`).
#[derive(Debug, Clone, Default)]
pub struct TpeEngine {
    settings: TpeSettings,
    multivariate: bool,
}

impl TpeEngine {
    /// `tpe`: one estimator per parameter.
    pub fn new(settings: TpeSettings) -> Self {
        TpeEngine {
            settings,
            multivariate: false,
        }
    }

    /// `multivariate-tpe`: one estimator over all parameters.
    pub fn multivariate(settings: TpeSettings) -> Self {
        TpeEngine {
            settings,
            multivariate: true,
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &TpeSettings {
        &self.settings
    }
}

/// The saved state: the next index of the start-up design.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedState {
    engine: String,
    version: u64,
    sobol_index: u64,
}

impl TpeEngine {
    fn read_state(&self, state: Option<&Json>) -> Result<Option<u64>, EngineError> {
        let Some(state) = state.filter(|s| !s.is_null()) else {
            return Ok(None);
        };
        let name = self.name();
        if state.get("engine").and_then(Json::as_str) != Some(name) {
            let mut text = state.to_string();
            text.truncate(200);
            return Err(EngineError::BadState(format!(
                "expected the state of {name} (an object with \"engine\": \"{name}\"), got {text}"
            )));
        }
        if state.get("version").and_then(Json::as_u64) != Some(STATE_VERSION) {
            // Another version: start over from the trials created so far, never fail.
            return Ok(None);
        }
        let saved: SavedState = serde_json::from_value(state.clone())
            .map_err(|e| EngineError::BadState(format!("{name} state version 1: {e}")))?;
        Ok(Some(saved.sobol_index))
    }
}

impl Engine for TpeEngine {
    fn name(&self) -> &'static str {
        if self.multivariate {
            "multivariate-tpe"
        } else {
            "tpe"
        }
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, EngineError> {
        let so_far = trials_so_far(request);
        let sobol_index = self.read_state(request.state)?.unwrap_or(so_far);
        let mut call = Call::new(request, sobol_index);
        let startup =
            usize::try_from((self.settings.n_startup_trials as u64).saturating_sub(so_far))
                .unwrap_or(usize::MAX)
                .min(request.count);
        call.space_filling(startup)?;

        if call.points.len() < request.count && !call.taken.is_full() {
            let model = Model::new(request.space, self.multivariate);
            let observed: Vec<Observed> = request
                .history
                .iter()
                .filter_map(|trial| {
                    let loss = trial.loss.filter(|l| l.is_finite())?;
                    model.observe(&trial.point, loss)
                })
                .collect();
            if observed.is_empty() || request.space.dims() == 0 {
                let rest = request.count - call.points.len();
                call.space_filling(rest)?;
            } else {
                self.model_points(&mut call, &model, observed);
            }
        }
        let state = SavedState {
            engine: self.name().to_owned(),
            version: STATE_VERSION,
            sobol_index: call.sobol_index,
        };
        Ok(Suggestions {
            exhausted: call.taken.is_full(),
            points: call.points,
            state: serde_json::to_value(state).unwrap_or(Json::Null),
        })
    }
}

/// How one parameter is modelled.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DimKind {
    /// A continuous double: scored by density at its unit coordinate.
    Continuous,
    /// A quantised number or a discrete value: scored by mass over its unit cell.
    Cell,
    /// A categorical parameter with this many choices.
    Categorical(usize),
}

/// A point as the model sees it.
#[derive(Debug, Clone)]
struct Observed {
    /// Unit coordinates (kernel centres; a choice's `(c + 0.5)/k`).
    unit: Vec<f64>,
    /// The coordinates the kernels score.
    coords: Vec<Coord>,
    /// The loss (`+∞` for a constant liar).
    loss: f64,
}

/// The space as the estimators see it.
struct Model<'s> {
    space: &'s SearchSpace,
    kinds: Vec<DimKind>,
    multivariate: bool,
}

impl<'s> Model<'s> {
    fn new(space: &'s SearchSpace, multivariate: bool) -> Model<'s> {
        let kinds = space
            .params()
            .iter()
            .map(|p| match &p.domain {
                Domain::Categorical { choices } => DimKind::Categorical(choices.len().max(1)),
                Domain::Double { step: None, .. } => DimKind::Continuous,
                _ => DimKind::Cell,
            })
            .collect();
        Model {
            space,
            kinds,
            multivariate,
        }
    }

    /// The model's view of `point`; `None` for a point the space cannot place (wrong length or a
    /// NaN coordinate).
    fn observe(&self, point: &Point, loss: f64) -> Option<Observed> {
        if point.len() != self.space.dims() {
            return None;
        }
        let unit = self.space.to_unit(point);
        if !unit.iter().all(|u| u.is_finite()) {
            return None;
        }
        let coords = self.coords(point, &unit);
        Some(Observed { unit, coords, loss })
    }

    fn coords(&self, point: &Point, unit: &[f64]) -> Vec<Coord> {
        self.kinds
            .iter()
            .enumerate()
            .map(|(d, kind)| match kind {
                DimKind::Continuous => Coord::Real(unit[d]),
                DimKind::Cell => match point.get(d).and_then(|v| self.space.unit_cell(d, v)) {
                    Some((lo, hi)) => Coord::Cell(lo, hi),
                    None => Coord::Real(unit[d]),
                },
                DimKind::Categorical(k) => {
                    Coord::Choice(((unit[d] * *k as f64).floor().max(0.0) as usize).min(k - 1))
                }
            })
            .collect()
    }

    /// The density of `group` (each observation with its weight).
    fn density(&self, group: &[(&Observed, f64)], prior_weight: f64) -> Density {
        if self.multivariate {
            Density::Joint(self.joint(group, prior_weight))
        } else {
            Density::Marginals(
                (0..self.kinds.len())
                    .map(|d| self.marginal(d, group, prior_weight))
                    .collect(),
            )
        }
    }

    /// The one-dimensional estimator of dimension `d`.
    fn marginal(&self, d: usize, group: &[(&Observed, f64)], prior_weight: f64) -> Parzen {
        match self.kinds[d] {
            DimKind::Categorical(k) => {
                // A smoothed histogram: each trial's weight on its choice, the prior spread evenly.
                let mut counts = vec![prior_weight / k as f64; k];
                for (obs, w) in group {
                    if let Coord::Choice(c) = obs.coords[d] {
                        counts[c.min(k - 1)] += w;
                    }
                }
                Parzen::new(vec![(1.0, vec![Kernel::categorical(&counts)])])
            }
            DimKind::Continuous | DimKind::Cell => {
                let sigma = spread_bandwidth(group, d, 1, UNIVARIATE_BANDWIDTH_FACTOR);
                let ln_sigma = sigma.ln();
                let mut weights: Vec<f64> = group.iter().map(|(_, w)| *w).collect();
                let mut kernels: Vec<Kernel> = group
                    .iter()
                    .map(|(obs, _)| Kernel::normal_with_ln_sigma(obs.unit[d], sigma, ln_sigma))
                    .collect();
                weights.push(prior_weight);
                kernels.push(Kernel::normal(0.5, 1.0));
                Parzen::from_flat(&weights, kernels, 1)
            }
        }
    }

    /// The joint estimator: one component per trial over every dimension, and the prior.
    fn joint(&self, group: &[(&Observed, f64)], prior_weight: f64) -> Parzen {
        let dims = self.kinds.len();
        let sigmas: Vec<f64> = (0..dims)
            .map(|d| spread_bandwidth(group, d, dims, MULTIVARIATE_BANDWIDTH_FACTOR))
            .collect();
        let ln_sigmas: Vec<f64> = sigmas.iter().map(|s| s.ln()).collect();
        let mut components: Vec<(f64, Vec<Kernel>)> = group
            .iter()
            .map(|(obs, w)| {
                let kernels = self
                    .kinds
                    .iter()
                    .enumerate()
                    .map(|(d, kind)| match (kind, obs.coords[d]) {
                        (DimKind::Categorical(k), Coord::Choice(c)) => {
                            // Its own choice plus the prior's even share: a product over
                            // dimensions must not be zero for every other choice.
                            let mut p = vec![prior_weight / *k as f64; *k];
                            p[c.min(k - 1)] += 1.0;
                            Kernel::categorical(&p)
                        }
                        _ => Kernel::normal_with_ln_sigma(obs.unit[d], sigmas[d], ln_sigmas[d]),
                    })
                    .collect();
                (*w, kernels)
            })
            .collect();
        let prior = self
            .kinds
            .iter()
            .map(|kind| match kind {
                DimKind::Categorical(k) => Kernel::categorical(&vec![1.0; *k]),
                _ => Kernel::normal(0.5, 1.0),
            })
            .collect();
        components.push((prior_weight, prior));
        Parzen::new(components)
    }
}

/// The density of one group: a joint estimator or one per dimension.
enum Density {
    Joint(Parzen),
    Marginals(Vec<Parzen>),
}

impl Density {
    fn sample(&self, rng: &mut impl rand::Rng) -> Vec<f64> {
        match self {
            Density::Joint(p) => p.sample(rng),
            Density::Marginals(ps) => {
                // One trial (or the prior) for every dimension, so a draw lands near a good trial
                // as a whole rather than mixing coordinates of different trials; the score below
                // is still the univariate one. Every numeric marginal lists the same trials in
                // the same order (then the prior); a categorical marginal is one histogram.
                let reference = ps.iter().max_by_key(|p| p.len());
                let i = reference.map_or(0, |p| p.pick(rng));
                ps.iter()
                    .map(|p| {
                        let draw = if p.len() > 1 {
                            p.sample_component(i, rng)
                        } else {
                            p.sample(rng)
                        };
                        draw.first().copied().unwrap_or(0.5)
                    })
                    .collect()
            }
        }
    }

    /// Per-dimension log densities (marginals) or the joint log density as one entry.
    fn log_parts(&self, coords: &[Coord]) -> Vec<f64> {
        match self {
            Density::Joint(p) => vec![p.log_density(coords)],
            Density::Marginals(ps) => ps
                .iter()
                .zip(coords)
                .map(|(p, c)| p.log_density(std::slice::from_ref(c)))
                .collect(),
        }
    }
}

/// The kernel width of dimension `d` for a group: `factor · spread · n^(−1/(dims+4))`, where
/// `spread` is the weighted standard deviation of the group's unit coordinates in `d` (Scott's
/// rule, with the factor of [`UNIVARIATE_BANDWIDTH_FACTOR`] / [`MULTIVARIATE_BANDWIDTH_FACTOR`]),
/// clipped to `[1/min(100, n + 2), 1]` (hyperopt's "magic clip": `n` trials and the prior, plus
/// one).
///
/// Why not hyperopt's and Optuna's rules: the univariate one (each kernel as wide as the distance
/// to its farther neighbour, the prior's centre 0.5 among them) keeps the good density wide while
/// the good trials are few and scattered, and Optuna's multivariate `0.2 · n^(−1/(d+4))` ignores
/// how concentrated they already are. Following the spread lets the good density narrow as the
/// good trials converge, which is where the benchmark's precision came from.
fn spread_bandwidth(group: &[(&Observed, f64)], d: usize, dims: usize, factor: f64) -> f64 {
    let n = group.len() as f64;
    let min_sigma = 1.0 / MAGIC_CLIP_MAX.min(n + 2.0);
    let total: f64 = group.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return 1.0;
    }
    let mean = group.iter().map(|(o, w)| w * o.unit[d]).sum::<f64>() / total;
    let variance = group
        .iter()
        .map(|(o, w)| w * (o.unit[d] - mean).powi(2))
        .sum::<f64>()
        / total;
    let sigma = factor * variance.sqrt() * n.max(1.0).powf(-1.0 / (dims as f64 + 4.0));
    if sigma.is_nan() {
        return 1.0;
    }
    sigma.clamp(min_sigma, 1.0)
}

/// hyperopt's and Optuna's weights for `n` trials in creation order: all 1 up to 25 trials;
/// beyond, the 25 most recent weigh 1 and the older ones ramp linearly from `1/n` up to 1.
pub fn forgetting_weights(n: usize) -> Vec<f64> {
    if n <= LINEAR_FORGETTING {
        return vec![1.0; n];
    }
    let ramp = n - LINEAR_FORGETTING;
    let mut weights: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                let t = i as f64 / (ramp - 1) as f64;
                1.0 / n as f64 + t * (1.0 - 1.0 / n as f64)
            }
        })
        .collect();
    weights.extend(std::iter::repeat_n(1.0, LINEAR_FORGETTING));
    weights
}

/// How much less the worst good trial counts than the best in `l`: weights fall linearly with
/// rank, `1 − RANK_WEIGHT_SLOPE · r/m` for rank `r = 0..m` (0 the best). Over seeds 0..39 a slope
/// of 0.9 made `multivariate-tpe` better on 6 of the 8 (function, budget) cells (geometric mean
/// of the regret ratios 0.73) and was neutral for `tpe` (better on Branin and Hartmann6, worse on
/// Rosenbrock-4; geometric mean 1.01); 0.5, 0.7 and 1.0 were tried too (docs/benchmarks.md).
const RANK_WEIGHT_SLOPE: f64 = 0.9;

/// The rank weights of a good group of `m` trials, best first.
fn rank_weights(m: usize) -> Vec<f64> {
    (0..m)
        .map(|r| 1.0 - RANK_WEIGHT_SLOPE * r as f64 / m as f64)
        .collect()
}

/// Each observation of `group` (in creation order) with its forgetting weight.
fn weighted(group: Vec<&Observed>) -> Vec<(&Observed, f64)> {
    let w = forgetting_weights(group.len());
    group.into_iter().zip(w).collect()
}

/// A candidate: its valid point and its score's parts (one per dimension for `tpe`, one for
/// `multivariate-tpe`).
struct Candidate {
    point: Point,
    parts: Vec<f64>,
}

impl Candidate {
    fn score(&self) -> f64 {
        let s: f64 = self.parts.iter().sum();
        if s.is_nan() { f64::NEG_INFINITY } else { s }
    }
}

impl TpeEngine {
    /// Fills the rest of the batch from the model.
    fn model_points(&self, call: &mut Call<'_, '_>, model: &Model<'_>, observed: Vec<Observed>) {
        let request = call.request;
        let space = request.space;
        let n = observed.len();
        let n_below = self.settings.gamma.n_below(n);
        // Sorted by loss, ties by creation order; the good group is the first `n_below`.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| {
            observed[a]
                .loss
                .total_cmp(&observed[b].loss)
                .then(a.cmp(&b))
        });
        let mut is_below = vec![false; n];
        for &i in &order[..n_below] {
            is_below[i] = true;
        }
        let below: Vec<&Observed> = (0..n)
            .filter(|&i| is_below[i])
            .map(|i| &observed[i])
            .collect();
        let mut above: Vec<Observed> = (0..n)
            .filter(|&i| !is_below[i])
            .map(|i| observed[i].clone())
            .collect();
        if self.settings.constant_liar {
            for point in request.pending.iter().chain(&call.points) {
                above.extend(model.observe(point, f64::INFINITY));
            }
        }
        let prior_weight = self.settings.prior_weight;
        // The good group by rank: better trials weigh more in `l` (on top of the forgetting).
        let mut good = weighted(below);
        let mut ranks: Vec<usize> = (0..good.len()).collect();
        ranks.sort_by(|&a, &b| good[a].0.loss.total_cmp(&good[b].0.loss).then(a.cmp(&b)));
        for (w, &i) in rank_weights(ranks.len()).into_iter().zip(&ranks) {
            good[i].1 *= w;
        }
        let l = model.density(&good, prior_weight);

        while call.points.len() < request.count && !call.taken.is_full() {
            let g = model.density(&weighted(above.iter().collect()), prior_weight);
            let draw = trials_so_far(request).wrapping_add(call.points.len() as u64);
            let mut chosen = None;
            for round in 0..=EXTRA_CANDIDATE_ROUNDS {
                let counter = draw
                    .wrapping_mul(EXTRA_CANDIDATE_ROUNDS + 1)
                    .wrapping_add(round);
                let mut ranked = self.candidates(model, &l, &g, request.seed, counter);
                ranked.sort_by(|a, b| b.score().total_cmp(&a.score()));
                if let Some(best) = ranked
                    .into_iter()
                    .find(|c| !call.taken.has_key(&space.point_key(&c.point)))
                {
                    chosen = Some(best.point);
                    break;
                }
            }
            let point = match chosen {
                Some(point) => {
                    call.taken.take(&point);
                    point
                }
                None => match fallback_point(call, draw) {
                    Some(point) => point,
                    None => break,
                },
            };
            if self.settings.constant_liar {
                above.extend(model.observe(&point, f64::INFINITY));
            }
            call.points.push(point);
        }
    }

    /// Candidates drawn from `l`, scored by `log l − log g`.
    fn candidates(
        &self,
        model: &Model<'_>,
        l: &Density,
        g: &Density,
        seed: u64,
        counter: u64,
    ) -> Vec<Candidate> {
        let mut rng = stream_rng(seed, CANDIDATE_STREAM, counter);
        let count = self.settings.n_ei_candidates.max(1);
        (0..count)
            .map(|_| {
                let unit = l.sample(&mut rng);
                score(model, l, g, unit)
            })
            .collect()
    }
}

/// The candidate at unit vector `unit`: its valid point, and that point's score.
fn score(model: &Model<'_>, l: &Density, g: &Density, unit: Vec<f64>) -> Candidate {
    let point = model.space.from_unit(&unit);
    // Kernels score the valid point (a grid value's cell), not the raw draw.
    let snapped = model.space.to_unit(&point);
    let coords = model.coords(&point, &snapped);
    let parts = l
        .log_parts(&coords)
        .into_iter()
        .zip(g.log_parts(&coords))
        .map(|(a, b)| a - b)
        .collect();
    Candidate { point, parts }
}

/// A point no candidate offered, marked taken: an untaken point of a finite space, or a random
/// untaken one.
fn fallback_point(call: &mut Call<'_, '_>, draw: u64) -> Option<Point> {
    let space = call.request.space;
    let mut rng = stream_rng(call.request.seed, FALLBACK_STREAM, draw);
    if call.taken.remaining().is_some() {
        return call.taken.take_untaken(1, &mut rng).pop();
    }
    for _ in 0..MAX_FALLBACK_DRAWS {
        let unit: Vec<f64> = (0..space.dims()).map(|_| unit_f64(&mut rng)).collect();
        let point = space.from_unit(&unit);
        if call.taken.take(&point) {
            return Some(point);
        }
    }
    None
}
