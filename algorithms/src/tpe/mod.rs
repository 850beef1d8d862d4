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
//!    "linear forgetting" of hyperopt and Optuna). Numbers get truncated normal kernels, scored
//!    by their mass over the value's cell when quantised; categorical parameters get their own
//!    estimator, a smoothed histogram of the choices.
//!    * `tpe` (univariate) models each parameter separately: `l` and `g` are products of
//!      one-dimensional estimators, each kernel's width from its neighbours (the distance to the
//!      farther of the two nearest kernel centres, clipped to `[1/min(100, n+2), 1]`).
//!    * `multivariate-tpe` models all parameters jointly: one kernel per trial over every
//!      dimension, widths `0.2 · n^(−1/(d+4))` (Scott-like, the rule of Optuna's multivariate
//!      TPE), so correlations between parameters are kept.
//! 4. **Choice.** `n_ei_candidates` points are drawn from `l`, each taken to its valid point
//!    ([`SearchSpace::from_unit`]) and scored by `log l(x) − log g(x)` (maximising it maximises
//!    expected improvement, Bergstra et al. 2011, eq. 5); the best untaken one wins. For `tpe`
//!    the score is a sum over parameters, so the candidate built from each parameter's best draw
//!    is scored too (what hyperopt and Optuna effectively suggest). Then the best candidate is
//!    polished by a few rounds of Gaussian moves that keep whichever raises the score.
//!
//! # Defaults (Sextant's, chosen with `examples/bench`)
//!
//! See [`TpeSettings::default`] and `docs/benchmarks.md` ("TPE and multivariate TPE") for the
//! benchmark that chose them.
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
use serde_json::{Value as Json, json};

use self::parzen::{Coord, Kernel, Parzen};
use crate::counter_state::trials_so_far;
use crate::engine::{Engine, EngineError, SuggestRequest, Suggestions};
use crate::random::RandomEngine;
use crate::seeding::{stream_rng, unit_f64};
use crate::sobol::{self, SobolEngine};
use crate::space::{Domain, Point, SearchSpace};
use crate::taken::TakenPoints;

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

/// Sextant's default number of start-up trials: Optuna's `n_startup_trials` (10), the same as
/// the GP engine's `n_initial_points`.
pub const DEFAULT_STARTUP_TRIALS: usize = 10;

/// Sextant's default candidates per point. Optuna and hyperopt draw 24; drawing is cheap here and
/// more candidates found better points on the benchmark (docs/benchmarks.md).
pub const DEFAULT_EI_CANDIDATES: usize = 64;

/// Sextant's default good share: Optuna's `0.1 · n`, capped at 25.
pub const DEFAULT_GAMMA: GammaRule = GammaRule::Fraction {
    fraction: 0.1,
    cap: LINEAR_FORGETTING,
};

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

/// Optuna's multivariate bandwidth factor: `σ = 0.2 · n^(−1/(d+4))` on the unit range.
const MULTIVARIATE_SIGMA0: f64 = 0.2;

/// Kernel widths are at least `1 / min(MAGIC_CLIP_MAX, kernels)` of the range (hyperopt's "magic
/// clip"): without it a tight cluster gives kernels too narrow to ever leave it.
const MAGIC_CLIP_MAX: f64 = 100.0;

/// Rounds of Gaussian moves that polish the best candidate, and their sizes relative to the
/// kernels' width.
const POLISH_ROUNDS: usize = 8;
fn knob(k: &str, d: f64) -> f64 { std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d) }
const POLISH_SCALES: [f64; 3] = [1.0, 0.3, 0.1];

/// Extra rounds of candidates when every candidate of a round is taken, before falling back.
const EXTRA_CANDIDATE_ROUNDS: u64 = 4;

/// Random draws tried when no candidate is free in an infinite space.
const MAX_FALLBACK_DRAWS: usize = 64;

/// Random streams, each tagged by eight ASCII bytes.
const CANDIDATE_STREAM: u64 = u64::from_le_bytes(*b"tpe-cand");
const POLISH_STREAM: u64 = u64::from_le_bytes(*b"tpe-pols");
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
        let mut call = Call {
            request,
            taken: TakenPoints::of_request(request),
            points: Vec::new(),
            sobol_index,
        };
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

/// One call in progress.
struct Call<'r, 'a> {
    request: &'r SuggestRequest<'a>,
    taken: TakenPoints<'a>,
    points: Vec<Point>,
    sobol_index: u64,
}

impl Call<'_, '_> {
    /// Adds up to `count` points of the Sobol sequence (random search for spaces too wide for
    /// it), skipping taken ones.
    fn space_filling(&mut self, count: usize) -> Result<(), EngineError> {
        if count == 0 {
            return Ok(());
        }
        let space = self.request.space;
        let pending: Vec<Point> = self
            .request
            .pending
            .iter()
            .chain(&self.points)
            .cloned()
            .collect();
        let (engine, key): (&dyn Engine, &str) = if space.dims() <= sobol::MAX_DIMENSIONS {
            (&SobolEngine, "index")
        } else {
            (&RandomEngine, "draws")
        };
        let state = json!({ key: self.sobol_index });
        let answer = engine.suggest(&SuggestRequest {
            space,
            history: self.request.history,
            pending: &pending,
            count,
            seed: self.request.seed,
            state: Some(&state),
        })?;
        if let Some(next) = answer.state.get(key).and_then(Json::as_u64) {
            self.sobol_index = next;
        }
        for point in answer.points {
            self.taken.take(&point);
            self.points.push(point);
        }
        Ok(())
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
                let mus: Vec<f64> = group.iter().map(|(o, _)| o.unit[d]).collect();
                let sigmas = if knob("TPE_SCOTT", 0.0) > 0.0 {
                    let s = spread_bandwidth(group, d, 1.0);
                    vec![s; mus.len()]
                } else {
                    neighbour_bandwidths(&mus)
                };
                let mut components: Vec<(f64, Vec<Kernel>)> = group
                    .iter()
                    .zip(mus.iter().zip(sigmas))
                    .map(|((_, w), (mu, sigma))| (*w, vec![Kernel::normal(*mu, sigma)]))
                    .collect();
                components.push((prior_weight, vec![Kernel::normal(0.5, 1.0)]));
                Parzen::new(components)
            }
        }
    }

    /// The joint estimator: one component per trial over every dimension, and the prior.
    fn joint(&self, group: &[(&Observed, f64)], prior_weight: f64) -> Parzen {
        let n = group.len().max(1) as f64;
        let dims = self.kinds.len() as f64;
        let min_sigma = 1.0 / MAGIC_CLIP_MAX.min(group.len() as f64 + 2.0);
        let sigma = (knob("TPE_SIG0", MULTIVARIATE_SIGMA0) * n.powf(-1.0 / (dims + 4.0))).clamp(min_sigma, 1.0);
        let scott = knob("TPE_MSCOTT", 0.0) > 0.0;
        let sigmas: Vec<f64> = (0..self.kinds.len()).map(|d| if scott { spread_bandwidth(group, d, dims) } else { sigma }).collect();
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
                        _ => Kernel::normal(obs.unit[d], sigmas[d]),
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
                if knob("TPE_JOINT", 0.0) > 0.0 {
                    // One trial for every dimension: the draw stays near a good point as a whole.
                    let reference = ps.iter().max_by_key(|p| p.len());
                    let i = reference.map_or(0, |p| p.pick(rng));
                    ps.iter()
                        .map(|p| {
                            let v = if p.len() > 1 { p.sample_component(i, rng) } else { p.sample(rng) };
                            v.first().copied().unwrap_or(0.5)
                        })
                        .collect()
                } else {
                    ps.iter()
                        .map(|p| p.sample(rng).first().copied().unwrap_or(0.5))
                        .collect()
                }
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

/// Scott-like width from the group's weighted spread in dimension `d`.
fn spread_bandwidth(group: &[(&Observed, f64)], d: usize, dims: f64) -> f64 {
    let n = group.len() as f64;
    let wsum: f64 = group.iter().map(|(_, w)| w).sum::<f64>().max(1e-12);
    let mean = group.iter().map(|(o, w)| w * o.unit[d]).sum::<f64>() / wsum;
    let var = group.iter().map(|(o, w)| w * (o.unit[d] - mean).powi(2)).sum::<f64>() / wsum;
    let min_sigma = knob("TPE_MINSIG", 0.0).max(1.0 / MAGIC_CLIP_MAX.min(n + 2.0) * knob("TPE_CLIPF", 1.0));
    (knob("TPE_C", 1.06) * var.sqrt() * n.max(1.0).powf(-1.0 / (dims + 4.0))).clamp(min_sigma, 1.0)
}

/// Each kernel's width from its neighbours: the distance to the farther of the nearest centres
/// on either side, with the prior's centre 0.5 among them and the ends of the range as the outer
/// neighbours; clipped to `[1/min(100, n + 2), 1]` (`n` trials plus the prior, plus one).
pub(crate) fn neighbour_bandwidths(mus: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = mus.iter().copied().chain([0.5]).collect();
    sorted.sort_by(f64::total_cmp);
    let min_sigma = 1.0 / MAGIC_CLIP_MAX.min(sorted.len() as f64 + 1.0);
    mus.iter()
        .map(|&mu| {
            // The position of this centre among the sorted ones (any of equal values will do).
            let i = sorted.partition_point(|&s| s < mu);
            let left = if i == 0 { 0.0 } else { sorted[i - 1] };
            let right = sorted
                .get(i + 1..)
                .and_then(|rest| rest.iter().copied().find(|&s| s > mu).or(rest.first().copied()))
                .unwrap_or(1.0);
            let sigma = knob("TPE_NBW", 1.0) * (mu - left).max(right - mu);
            sigma.clamp(min_sigma, 1.0)
        })
        .collect()
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

/// Each observation of `group` (in creation order) with its forgetting weight.
fn weighted<'o>(group: Vec<&'o Observed>) -> Vec<(&'o Observed, f64)> {
    let w = forgetting_weights(group.len());
    group.into_iter().zip(w).collect()
}

/// A candidate: its valid point, the model's coordinates and score parts.
struct Candidate {
    point: Point,
    unit: Vec<f64>,
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
        order.sort_by(|&a, &b| observed[a].loss.total_cmp(&observed[b].loss).then(a.cmp(&b)));
        let mut is_below = vec![false; n];
        for &i in &order[..n_below] {
            is_below[i] = true;
        }
        let below: Vec<&Observed> = (0..n).filter(|&i| is_below[i]).map(|i| &observed[i]).collect();
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
        let l = model.density(&weighted(below), prior_weight);

        while call.points.len() < request.count && !call.taken.is_full() {
            let g = model.density(&weighted(above.iter().collect()), prior_weight);
            let draw = trials_so_far(request).wrapping_add(call.points.len() as u64);
            let mut chosen = None;
            for round in 0..=EXTRA_CANDIDATE_ROUNDS {
                let counter = draw.wrapping_mul(EXTRA_CANDIDATE_ROUNDS + 1).wrapping_add(round);
                let mut ranked = self.candidates(model, &l, &g, request.seed, counter);
                ranked.sort_by(|a, b| b.score().total_cmp(&a.score()));
                if let Some(best) = ranked.iter().position(|c| !call.taken.has_key(&space.point_key(&c.point))) {
                    let polished = self.polish(model, &l, &g, &ranked[best], call, request.seed, counter);
                    chosen = Some(polished.unwrap_or_else(|| ranked[best].point.clone()));
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

    /// Candidates drawn from `l`, scored by `log l − log g`; for the univariate model also the
    /// candidate made of each dimension's best draw.
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
        let mut out: Vec<Candidate> = (0..count)
            .map(|_| {
                let unit = l.sample(&mut rng);
                score(model, l, g, unit)
            })
            .collect();
        if !model.multivariate && model.kinds.len() > 1 && knob("TPE_COMBO", 1.0) > 0.0 {
            // The score is a sum over dimensions: the best draw of each dimension together.
            let unit: Vec<f64> = (0..model.kinds.len())
                .map(|d| {
                    out.iter()
                        .max_by(|a, b| a.parts[d].total_cmp(&b.parts[d]))
                        .map_or(0.5, |c| c.unit[d])
                })
                .collect();
            out.push(score(model, l, g, unit));
        }
        out
    }

    /// Gaussian moves around `start` that raise the score, for continuous and quantised
    /// dimensions; `None` when nothing untaken improved on it.
    #[allow(clippy::too_many_arguments)]
    fn polish(
        &self,
        model: &Model<'_>,
        l: &Density,
        g: &Density,
        start: &Candidate,
        call: &Call<'_, '_>,
        seed: u64,
        counter: u64,
    ) -> Option<Point> {
        let space = model.space;
        let mut rng = stream_rng(seed, POLISH_STREAM, counter);
        let n = call.request.history.len().max(1) as f64;
        let width = MULTIVARIATE_SIGMA0 * n.powf(-1.0 / (model.kinds.len() as f64 + 4.0));
        let mut best_unit = start.unit.clone();
        let mut best_score = start.score();
        let mut improved = None;
        for round in 0..(knob("TPE_POLISH", POLISH_ROUNDS as f64) as usize) {
            let scale = width * POLISH_SCALES[round % POLISH_SCALES.len()];
            let moved: Vec<f64> = best_unit
                .iter()
                .zip(&model.kinds)
                .map(|(&u, kind)| match kind {
                    DimKind::Categorical(_) => u,
                    _ => (u + scale * gaussian(&mut rng)).clamp(0.0, 1.0),
                })
                .collect();
            let candidate = score(model, l, g, moved);
            if candidate.score() > best_score
                && !call.taken.has_key(&space.point_key(&candidate.point))
            {
                best_score = candidate.score();
                best_unit = candidate.unit;
                improved = Some(candidate.point);
            }
        }
        improved
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
    Candidate {
        point,
        unit: snapped,
        parts,
    }
}

/// A standard normal draw (Box–Muller).
fn gaussian(rng: &mut impl rand::Rng) -> f64 {
    let u1 = 1.0 - unit_f64(rng);
    let u2 = unit_f64(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
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
