//! `cmaes`: the covariance matrix adaptation evolution strategy (Hansen and Ostermeier 2001;
//! Hansen's tutorial, 2016), with IPOP and BIPOP restarts, for an asynchronous service.
//!
//! # Coordinates
//!
//! CMA-ES searches the **unit cube of the numeric parameters**: every double and int parameter is
//! one coordinate, its [`SearchSpace::to_unit`] coordinate (so log, normal and quantised
//! distributions are honoured exactly as everywhere else). Discrete parameters are coordinates
//! too, ordered by **numeric value** (rank `r` of `n` owns `[r/n, (r+1)/n)`), so that a step moves
//! to a neighbouring value whatever order the user listed them in. Ints, stepped doubles and
//! discrete values are rounded by the space's own mapping (a coordinate falls in one value's
//! cell), and the update is told the coordinate of the **rounded** value, the value the trial ran
//! with, never the raw sample. Categorical parameters are not part of the vector: each point
//! draws every categorical value independently and uniformly at random (Katib's goptuna does the
//! same: its CMA-ES sampler leaves categorical parameters to the independent random sampler).
//!
//! At least two double or int parameters are required ([`CmaEsEngine::check_space`], Katib's
//! rule), since a covariance between fewer is meaningless.
//!
//! # Start, `sigma`
//!
//! The first [`CmaEsSettings::startup_trials`] trials come from the scrambled Sobol sequence
//! (exactly the points `sobol` would give); once that many trials have finished, the first run
//! starts with its mean at the best of them (the centre of the cube when none has a loss) and step
//! size `sigma`, a fraction of each parameter's range: the distribution is N(m, σ² I) in the unit
//! cube, with population [`default_population`] `4 + ⌊2 ln n⌋`. See `docs/benchmarks.md`
//! (section CMA-ES) for the measurements that chose the defaults (σ = 1/6, no startup design).
//! From the second generation of a run on, the first point of each generation is the mean
//! itself (`INJECT_MEAN` in the source).
//!
//! # Asks and tells in an asynchronous service
//!
//! A generation has λ points. Each call:
//!
//! 1. **Tell.** When all λ points of the current generation are in the history (matched by
//!    [`SearchSpace::point_key`]: a batch never repeats a point, so a key is one trial), the
//!    distribution is updated with their losses and the next generation begins. A failed trial
//!    (no loss) counts as the worst finite loss seen in the history, so that a generation always
//!    completes. Finished trials that are not in the generation (startup points, points of an
//!    earlier generation or run, trials a user added) are never told.
//! 2. **Re-issue.** A point of the current generation that is neither finished nor running was
//!    lost by the caller (asked, never created): it is suggested again, so a lost point cannot
//!    hold a generation back forever.
//! 3. **Ask.** New points are sampled until the generation has λ. When `count` asks for more
//!    than the generation has left and the generation is not complete, the answer has **fewer
//!    points** (some of the generation are running; the engine contract allows fewer while trials
//!    are pending). It never answers nothing with nothing pending unless the space is exhausted.
//!
//! A sample outside the cube is redrawn (up to 100 times, then clipped), and a sample whose
//! rounded point is taken (finished, running, or earlier in the batch) is redrawn up to 32 times;
//! after that an untaken point is drawn uniformly (a converged search over a finite space), and
//! the update is told that point's coordinate like any other.
//!
//! # Restarts (`restart_strategy`)
//!
//! A run stops by the usual criteria (flat fitness over the last `10 + ⌈30n/λ⌉` generations,
//! `TolX`, no effect of an axis or a coordinate, condition number of C above 1e14, σ blown up;
//! the thresholds of Hansen's `cma` and of the `cmaes` package that Optuna uses). Then:
//!
//! * `none` (Katib's default): the run continues (a search over a finite space keeps proposing
//!   untaken points).
//! * `ipop` (Auger and Hansen 2005): a new run from a uniformly random mean with the population
//!   doubled and the initial σ.
//! * `bipop` (Hansen 2009): two regimes. The first restart is a *large* one (population
//!   `λ_def · 2^i` for the `i`-th large restart, initial σ); afterwards each restart takes the
//!   regime that has used fewer evaluations, the *small* one having population
//!   `⌊λ_def (λ_large / (2 λ_def))^{U²}⌋` and step `σ · 10^{−2U}` (`U` uniform on `[0, 1]`,
//!   `λ_large` the last large population).
//!
//! A distribution that became non-finite is restarted under every strategy (with `none`, at the
//! same population).
//!
//! # State
//!
//! Everything lives in the saved state (module `state`): mean, σ, C, both evolution paths,
//! generation, restart count, population size, BIPOP budgets, and the unit vector of each point
//! asked in the current generation. C's eigendecomposition is recomputed at each call from C's
//! exact bits (a deterministic Jacobi iteration), so a restarted service answers bit for bit as
//! one that kept running. A call's random draws are keyed by the seed and the number of points
//! asked so far, so two calls of 3 give the same points as one call of 6.
//!
//! [`SearchSpace::to_unit`]: crate::space::SearchSpace::to_unit
//! [`SearchSpace::point_key`]: crate::space::SearchSpace::point_key

mod state;
mod strategy;

#[cfg(test)]
mod benchmarks;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use self::state::{Regime, SavedRun, SavedState};
use self::strategy::{Constants, Eigen, SearchDistribution};
use crate::counter_state::trials_so_far;
use crate::engine::{Engine, EngineError, SuggestRequest, Suggestions};
use crate::seeding::{below, stream_rng, unit_f64};
use crate::sobol;
use crate::space::{Domain, Point, SearchSpace, Value};
use crate::taken::TakenPoints;

/// What happens when a run has converged or stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartStrategy {
    /// No restart (Katib's default).
    #[default]
    None,
    /// Restart with the population doubled (IPOP-CMA-ES).
    Ipop,
    /// Alternate large- and small-population restarts (BIPOP-CMA-ES).
    Bipop,
}

impl RestartStrategy {
    /// Katib's spelling (`none`, `ipop`, `bipop`).
    pub fn katib_name(self) -> &'static str {
        match self {
            RestartStrategy::None => "none",
            RestartStrategy::Ipop => "ipop",
            RestartStrategy::Bipop => "bipop",
        }
    }
}

/// The default initial step size, as a fraction of each parameter's range (the unit cube):
/// 1/6, what Optuna's and goptuna's default `min(range)/6` is on a normalised box. With the mean
/// injected, 0.07, 0.1, 0.13 and 1/6 were compared over seeds 0..29 (`docs/benchmarks.md`,
/// section CMA-ES): 0.1 and 1/6 were both below Optuna's figures everywhere, each better on two
/// functions; the established default was kept.
pub const DEFAULT_SIGMA: f64 = 1.0 / 6.0;

/// The default population `4 + ⌊2 ln n⌋`: Hansen's `4 + ⌊3 ln n⌋` made smaller, because
/// hyperparameter budgets are tens to hundreds of trials and a smaller population gets more
/// generations out of them (d = 4: 6 instead of 8; d = 6: 7 instead of 9). Chosen with the same
/// benchmark as [`DEFAULT_SIGMA`]; IPOP and BIPOP grow it as usual.
pub fn default_population(n: usize) -> usize {
    4 + (2.0 * (n.max(1) as f64).ln()).floor() as usize
}

/// Startup Sobol trials before the first run.
pub const DEFAULT_STARTUP_TRIALS: usize = 0;

/// Settings of the CMA-ES engine.
#[derive(Debug, Clone, PartialEq)]
pub struct CmaEsSettings {
    /// Restarts (Katib `restart_strategy`).
    pub restart_strategy: RestartStrategy,
    /// Initial step size in the unit cube (fraction of each range), in `(0, 1]` (Katib `sigma`;
    /// goptuna reads it in the parameters' own units, see `docs/katib-compatibility.md`).
    pub sigma: f64,
    /// Sobol points before the first run; its mean starts at the best of them. Not a Katib
    /// setting: the registry keeps the default.
    pub startup_trials: usize,
    /// The first run's population λ (at least 2); `None` for [`default_population`].
    /// Not a Katib setting: the registry keeps the default.
    pub population: Option<usize>,
}

impl Default for CmaEsSettings {
    fn default() -> Self {
        CmaEsSettings {
            restart_strategy: RestartStrategy::None,
            sigma: DEFAULT_SIGMA,
            startup_trials: DEFAULT_STARTUP_TRIALS,
            population: None,
        }
    }
}

/// The largest population: IPOP and BIPOP stop doubling here (about 2^16; a run of that size
/// needs hundreds of thousands of trials per generation set, far past any tuning budget), and a
/// saved state with a larger one is refused rather than allocated.
pub const MAX_POPULATION: usize = 1 << 16;

/// Whether each generation after a run's first evaluates the current mean as its first point.
/// The mean is CMA-ES's estimate of the optimum and on smooth problems often better than every
/// sample of its generation, and a tuning run's answer is the best point evaluated. It enters the
/// update like any other point (an injected solution in Hansen's sense, "Injecting External
/// Solutions Into CMA-ES", 2011; for the mean the step y = 0, so no repair is needed). Measured
/// with `cmaes::benchmarks` over seeds 0..29 at 100 trials (σ₀ = 0.1), median regret without /
/// with: Branin 3.5e-3 / 5.0e-4, Hartmann6 0.211 / 0.110, Rosenbrock-4 32.4 / 6.7, Ackley-5
/// 6.06 / 4.78.
const INJECT_MEAN: bool = true;

/// Draws of a point outside the cube before it is clipped (the `cmaes` package's
/// `n_max_resampling`).
const MAX_BOX_RESAMPLES: usize = 100;

/// Draws of a point that rounds to a taken point before an untaken one is drawn uniformly.
const MAX_DUPLICATE_DRAWS: usize = 32;

/// Uniform draws tried for an untaken point of an infinite space (a continuous range only a few
/// doubles wide) before the batch ends short.
const MAX_FALLBACK_DRAWS: usize = 64;

/// Flat fitness: the best and worst losses of the recent generations differ by less than this
/// (the `cmaes` package's `tol_fun`).
const TOL_FUN: f64 = 1e-12;

/// `TolX`: every coordinate's standard deviation and path below this times the run's σ₀ (the
/// `cmaes` package's `tol_x = 1e-12 σ₀`).
const TOL_X_RELATIVE: f64 = 1e-12;

/// σ times the largest axis beyond this: diverged (the `cmaes` package's `tol_xup`).
const TOL_X_UP: f64 = 1e4;

/// Condition number of C beyond this: numerically degenerate (Hansen's `tolconditioncov`).
const MAX_CONDITION: f64 = 1e14;

/// Random streams of this engine, each tagged by eight ASCII bytes.
const ASK_STREAM: u64 = u64::from_le_bytes(*b"cmaesask");
const RESTART_STREAM: u64 = u64::from_le_bytes(*b"cmaesrst");

/// The CMA-ES engine.
#[derive(Debug, Clone, Default)]
pub struct CmaEsEngine {
    settings: CmaEsSettings,
}

impl CmaEsEngine {
    /// An engine with these settings.
    pub fn new(settings: CmaEsSettings) -> Self {
        CmaEsEngine { settings }
    }

    /// Its settings.
    pub fn settings(&self) -> &CmaEsSettings {
        &self.settings
    }

    /// The first run's population in `n` dimensions (what IPOP and BIPOP multiply).
    fn lambda_default(&self, n: usize) -> usize {
        self.settings
            .population
            .unwrap_or_else(|| default_population(n))
            .clamp(2, MAX_POPULATION)
    }

    /// The initial step size, made safe: a value outside `(0, 1]` (the registry refuses those)
    /// falls back to the default rather than producing a degenerate run.
    fn sigma0(&self) -> f64 {
        let s = self.settings.sigma;
        if s.is_finite() && s > 0.0 && s <= 1.0 {
            s
        } else {
            DEFAULT_SIGMA
        }
    }
}

/// How one numeric parameter is a coordinate of the CMA-ES vector.
#[derive(Debug, Clone)]
enum Coordinate {
    /// A double or int: its unit-cube coordinate.
    Direct { param: usize },
    /// A discrete parameter, by rank of value: `by_rank[r]` is the index of the `r`-th smallest
    /// value and `rank_of` its inverse.
    Ordinal {
        param: usize,
        by_rank: Vec<usize>,
        rank_of: Vec<usize>,
    },
}

/// Which parameters are coordinates and which are sampled apart.
#[derive(Debug, Clone)]
struct Layout {
    numeric: Vec<Coordinate>,
    /// Categorical parameters: (index, number of choices).
    categorical: Vec<(usize, usize)>,
}

impl Layout {
    fn new(space: &SearchSpace) -> Self {
        let mut numeric = Vec::new();
        let mut categorical = Vec::new();
        for (param, parameter) in space.params().iter().enumerate() {
            match &parameter.domain {
                Domain::Double { .. } | Domain::Int { .. } => {
                    numeric.push(Coordinate::Direct { param });
                }
                Domain::Discrete { values, .. } => {
                    let mut by_rank: Vec<usize> = (0..values.len()).collect();
                    by_rank.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
                    let mut rank_of = vec![0; values.len()];
                    for (rank, &index) in by_rank.iter().enumerate() {
                        rank_of[index] = rank;
                    }
                    numeric.push(Coordinate::Ordinal {
                        param,
                        by_rank,
                        rank_of,
                    });
                }
                Domain::Categorical { choices } => categorical.push((param, choices.len())),
            }
        }
        Layout {
            numeric,
            categorical,
        }
    }

    fn dims(&self) -> usize {
        self.numeric.len()
    }

    /// The unit vector of the whole space for CMA-ES coordinates `x` and categorical choices.
    fn unit_vector(&self, space: &SearchSpace, x: &[f64], choices: &[usize]) -> Vec<f64> {
        let mut unit = vec![0.5; space.dims()];
        for (coordinate, &xi) in self.numeric.iter().zip(x) {
            match coordinate {
                Coordinate::Direct { param } => unit[*param] = xi,
                Coordinate::Ordinal { param, by_rank, .. } => {
                    let n = by_rank.len();
                    let rank = ((xi.clamp(0.0, 1.0) * n as f64) as usize).min(n - 1);
                    unit[*param] = (by_rank[rank] as f64 + 0.5) / n as f64;
                }
            }
        }
        for (&(param, n), &choice) in self.categorical.iter().zip(choices) {
            unit[param] = (choice as f64 + 0.5) / n as f64;
        }
        unit
    }

    /// The CMA-ES coordinates of a point: where its (rounded) values sit in the cube.
    fn coordinates(&self, space: &SearchSpace, point: &Point) -> Vec<f64> {
        let unit = space.to_unit(point);
        self.numeric
            .iter()
            .map(|coordinate| match coordinate {
                Coordinate::Direct { param } => unit.get(*param).copied().unwrap_or(0.5),
                Coordinate::Ordinal { param, rank_of, .. } => match point.get(*param) {
                    Some(Value::Choice(i)) if *i < rank_of.len() => {
                        (rank_of[*i] as f64 + 0.5) / rank_of.len() as f64
                    }
                    _ => 0.5,
                },
            })
            .collect()
    }
}

/// The double and int parameters of a space (the ones Katib counts as continuous).
fn continuous_names(space: &SearchSpace) -> Vec<&str> {
    space
        .params()
        .iter()
        .filter(|p| matches!(p.domain, Domain::Double { .. } | Domain::Int { .. }))
        .map(|p| p.name.as_str())
        .collect()
}

impl Engine for CmaEsEngine {
    fn name(&self) -> &'static str {
        "cmaes"
    }

    fn check_space(&self, space: &SearchSpace) -> Result<(), EngineError> {
        let continuous = continuous_names(space);
        if continuous.len() >= 2 {
            return Ok(());
        }
        let found = match continuous.as_slice() {
            [] => "none".to_owned(),
            names => format!("{} ({})", names.len(), names.join(", ")),
        };
        Err(EngineError::UnsupportedSpace(format!(
            "cmaes needs at least two continuous parameters (double or int) to adapt a covariance \
             between them; this space has {found}. Add a double or int parameter, or use random, \
             sobol or bayesianoptimization for this space"
        )))
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, EngineError> {
        self.check_space(request.space)?;
        let space = request.space;
        let layout = Layout::new(space);
        let mut saved = SavedState::read(request.state, layout.dims(), MAX_POPULATION)?
            .unwrap_or_else(|| SavedState::fresh(layout.dims(), trials_so_far(request)));
        let mut call = Call {
            request,
            layout: &layout,
            taken: TakenPoints::of_request(request),
            points: Vec::new(),
            finished: request
                .history
                .iter()
                .map(|t| (space.point_key(&t.point), t.loss.filter(|l| l.is_finite())))
                .collect(),
            worst: request
                .history
                .iter()
                .filter_map(|t| t.loss.filter(|l| l.is_finite()))
                .fold(None, |worst: Option<f64>, l| {
                    Some(worst.map_or(l, |w| w.max(l)))
                }),
            eigen: None,
        };
        while call.points.len() < request.count && !call.taken.is_full() {
            let progressed = match saved.run.is_some() {
                false => self.startup(&mut call, &mut saved)?,
                true => self.step(&mut call, &mut saved),
            };
            if !progressed {
                break;
            }
        }
        // Nothing new, nothing running to wait for: no untaken point could be found (a space
        // whose doubles are a few floating-point steps wide). Saying so ends the experiment
        // instead of stalling it.
        let stuck = call.points.is_empty() && request.pending.is_empty() && request.count > 0;
        Ok(Suggestions {
            exhausted: call.taken.is_full() || stuck,
            points: call.points,
            state: saved.to_json(),
        })
    }
}

/// One call in progress.
struct Call<'r, 'a> {
    request: &'r SuggestRequest<'a>,
    layout: &'r Layout,
    taken: TakenPoints<'a>,
    points: Vec<Point>,
    /// Finished trials by point key: their finite loss, or `None` (failed).
    finished: HashMap<Vec<u64>, Option<f64>>,
    /// The worst finite loss in the history: what a failed trial counts as.
    worst: Option<f64>,
    /// The eigendecomposition of the current run's covariance, keyed by (restarts, generation):
    /// C only changes in a tell, and decomposing it is O(n³), so one per generation, not per point.
    eigen: Option<((u64, u64), Eigen)>,
}

impl CmaEsEngine {
    /// The startup design, then the first run. `false` when nothing more can happen this call.
    fn startup(
        &self,
        call: &mut Call<'_, '_>,
        saved: &mut SavedState,
    ) -> Result<bool, EngineError> {
        let request = call.request;
        let startup = self.settings.startup_trials;
        let created = request.history.len() + request.pending.len() + call.points.len();
        if created < startup {
            let want = (startup - created).min(request.count - call.points.len());
            let before = call.points.len();
            self.sobol_points(call, saved, want)?;
            return Ok(call.points.len() > before);
        }
        if request.history.len() < startup {
            // The design's trials are running: the first run starts from their best.
            return Ok(false);
        }
        let space = request.space;
        let best = request
            .history
            .iter()
            .filter_map(|t| t.loss.filter(|l| l.is_finite()).map(|l| (l, &t.point)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let mean = match best {
            Some((_, point)) => call.layout.coordinates(space, point),
            None => vec![0.5; call.layout.dims()],
        };
        let lambda = self.lambda_default(call.layout.dims());
        saved.run = Some(new_run(Regime::Default, lambda, self.sigma0(), mean));
        Ok(true)
    }

    /// Adds up to `count` points of the Sobol sequence (random beyond its dimensions).
    fn sobol_points(
        &self,
        call: &mut Call<'_, '_>,
        saved: &mut SavedState,
        count: usize,
    ) -> Result<(), EngineError> {
        let points =
            sobol::space_filling_points(call.request, &call.points, &mut saved.sobol_index, count)?;
        for point in points {
            call.taken.take(&point);
            call.points.push(point);
        }
        Ok(())
    }

    /// One step of a run: a tell, a re-issued point or a new point. `false` when the generation
    /// is fully asked and waits for running trials (or the space has no untaken point).
    fn step(&self, call: &mut Call<'_, '_>, saved: &mut SavedState) -> bool {
        let space = call.request.space;
        let Some(run) = saved.run.as_mut() else {
            return false;
        };
        let asked: Vec<Point> = run.asked.iter().map(|u| space.from_unit(u)).collect();
        if run.asked.len() >= run.lambda {
            let losses: Option<Vec<Option<f64>>> = asked
                .iter()
                .map(|p| call.finished.get(&space.point_key(p)).copied())
                .collect();
            if let Some(losses) = losses {
                let fallback = call.worst.unwrap_or(0.0);
                let solutions = asked
                    .iter()
                    .zip(losses)
                    .map(|(p, l)| (call.layout.coordinates(space, p), l.unwrap_or(fallback)))
                    .collect::<Vec<_>>();
                self.tell(saved, &solutions, call.request.seed);
                return true;
            }
        }
        // A point of the generation that is neither finished, running nor in this batch was
        // lost by the caller: offer it again.
        for point in asked {
            if call.taken.take(&point) {
                call.points.push(point);
                return true;
            }
        }
        if run.asked.len() >= run.lambda {
            return false;
        }
        let mut rng = stream_rng(call.request.seed, ASK_STREAM, saved.draws);
        saved.draws = saved.draws.wrapping_add(1);
        let key = (saved.restarts, run.generation);
        let eigen = match call.eigen.take() {
            Some((k, eigen)) if k == key => eigen,
            _ => distribution_of(run).eigen(),
        };
        let asked = self.ask_one(call, run, &eigen, &mut rng);
        call.eigen = Some((key, eigen));
        let Some((unit, point)) = asked else {
            return false;
        };
        run.asked.push(unit);
        call.points.push(point);
        true
    }

    /// Samples one untaken point of the run's distribution: its unit vector and the point.
    fn ask_one(
        &self,
        call: &mut Call<'_, '_>,
        run: &SavedRun,
        eigen: &Eigen,
        rng: &mut impl rand::Rng,
    ) -> Option<(Vec<f64>, Point)> {
        let space = call.request.space;
        let dist = distribution_of(run);
        // The first point of every generation after a run's first is the mean itself (see
        // `INJECT_MEAN`); if that point is taken, the attempt falls through to sampling.
        let inject_mean = INJECT_MEAN && run.asked.is_empty() && run.generation > 0;
        for attempt in 0..MAX_DUPLICATE_DRAWS {
            let x = if inject_mean && attempt == 0 {
                dist.mean.iter().map(|m| m.clamp(0.0, 1.0)).collect()
            } else {
                sample_in_cube(&dist, eigen, rng)
            };
            let choices: Vec<usize> = call
                .layout
                .categorical
                .iter()
                .map(|&(_, n)| below(rng, n as u128) as usize)
                .collect();
            let unit = call.layout.unit_vector(space, &x, &choices);
            let point = space.from_unit(&unit);
            if call.taken.take(&point) {
                return Some((unit, point));
            }
        }
        if call.taken.remaining().is_some() {
            // Finite spaces map a point's unit vector back to the point exactly.
            let point = call.taken.take_untaken(1, rng).pop()?;
            return Some((space.to_unit(&point), point));
        }
        for _ in 0..MAX_FALLBACK_DRAWS {
            let unit: Vec<f64> = (0..space.dims()).map(|_| unit_f64(rng)).collect();
            let point = space.from_unit(&unit);
            if call.taken.take(&point) {
                return Some((unit, point));
            }
        }
        None
    }

    /// Updates the run with a complete generation, then restarts it if it has stopped.
    fn tell(&self, saved: &mut SavedState, solutions: &[(Vec<f64>, f64)], seed: u64) {
        let Some(run) = saved.run.as_mut() else {
            return;
        };
        let n = run.mean.len();
        let constants = Constants::new(n, run.lambda);
        let mut dist = distribution_of(run);
        let eigen = dist.eigen();
        dist.update(&constants, &eigen, solutions);
        let best = solutions.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
        let worst = solutions
            .iter()
            .map(|s| s.1)
            .fold(f64::NEG_INFINITY, f64::max);
        run.fun_history.extend([best, worst]);
        let window = 2 * fun_history_generations(n, run.lambda);
        if run.fun_history.len() > window {
            run.fun_history.drain(..run.fun_history.len() - window);
        }
        run.mean = dist.mean.clone();
        run.sigma = dist.sigma;
        run.cov = dist.cov.clone();
        run.p_sigma = dist.p_sigma.clone();
        run.p_c = dist.p_c.clone();
        run.generation = dist.generation;
        run.asked.clear();
        let evaluations = run.lambda as u64;
        match run.regime {
            Regime::Default | Regime::Large => {
                saved.bipop.evals_large = saved.bipop.evals_large.saturating_add(evaluations)
            }
            Regime::Small => {
                saved.bipop.evals_small = saved.bipop.evals_small.saturating_add(evaluations)
            }
        }
        let sane = dist.is_sane();
        let stopped = !sane || should_stop(run, &dist);
        if !sane || (stopped && self.settings.restart_strategy != RestartStrategy::None) {
            self.restart(saved, seed);
        }
    }

    /// Starts a new run according to the restart strategy.
    fn restart(&self, saved: &mut SavedState, seed: u64) {
        let Some(previous) = saved.run.as_ref() else {
            return;
        };
        saved.restarts = saved.restarts.saturating_add(1);
        let n = previous.mean.len();
        let lambda_default = self.lambda_default(n);
        let mut rng = stream_rng(seed, RESTART_STREAM, saved.restarts);
        let mean: Vec<f64> = (0..n).map(|_| unit_f64(&mut rng)).collect();
        let sigma0 = self.sigma0();
        let run = match self.settings.restart_strategy {
            RestartStrategy::None => new_run(previous.regime, previous.lambda, sigma0, mean),
            RestartStrategy::Ipop => new_run(
                Regime::Large,
                previous.lambda.saturating_mul(2),
                sigma0,
                mean,
            ),
            RestartStrategy::Bipop => {
                let budget = &mut saved.bipop;
                // The first restart is a large one, so that the small regime has a large
                // population to stay below (see the module docs).
                if budget.large_restarts > 0 && budget.evals_small < budget.evals_large {
                    let lambda_large =
                        lambda_default.saturating_mul(1 << budget.large_restarts.min(30));
                    let u = unit_f64(&mut rng);
                    let ratio = lambda_large as f64 / (2.0 * lambda_default as f64);
                    let lambda = ((lambda_default as f64) * ratio.powf(u * u)).floor() as usize;
                    let v = unit_f64(&mut rng);
                    let sigma = sigma0 * 10f64.powf(-2.0 * v);
                    new_run(Regime::Small, lambda.max(lambda_default), sigma, mean)
                } else {
                    budget.large_restarts = budget.large_restarts.saturating_add(1);
                    let lambda = lambda_default.saturating_mul(1 << budget.large_restarts.min(30));
                    new_run(Regime::Large, lambda, sigma0, mean)
                }
            }
        };
        saved.run = Some(run);
    }
}

/// A fresh run: N(mean, σ² I).
fn new_run(regime: Regime, lambda: usize, sigma: f64, mean: Vec<f64>) -> SavedRun {
    let dist = SearchDistribution::new(mean, sigma);
    SavedRun {
        regime,
        lambda: lambda.clamp(2, MAX_POPULATION),
        sigma0: sigma,
        mean: dist.mean,
        sigma: dist.sigma,
        cov: dist.cov,
        p_sigma: dist.p_sigma,
        p_c: dist.p_c,
        generation: 0,
        fun_history: Vec::new(),
        asked: Vec::new(),
    }
}

fn distribution_of(run: &SavedRun) -> SearchDistribution {
    SearchDistribution {
        mean: run.mean.clone(),
        sigma: run.sigma,
        cov: run.cov.clone(),
        p_sigma: run.p_sigma.clone(),
        p_c: run.p_c.clone(),
        generation: run.generation,
    }
}

/// Generations the flat-fitness test looks back: `10 + ⌈30 n / λ⌉` (Hansen's `tolfun` history).
fn fun_history_generations(n: usize, lambda: usize) -> usize {
    10 + (30 * n).div_ceil(lambda.max(1))
}

/// A sample of N(m, σ² C) inside the unit cube: redrawn while outside, clipped after
/// [`MAX_BOX_RESAMPLES`] draws.
fn sample_in_cube(dist: &SearchDistribution, eigen: &Eigen, rng: &mut impl rand::Rng) -> Vec<f64> {
    let n = dist.dims();
    let mut x = Vec::new();
    for _ in 0..MAX_BOX_RESAMPLES {
        let z: Vec<f64> = (0..n).map(|_| gaussian(rng)).collect();
        x = dist.sample(eigen, &z);
        if x.iter().all(|v| (0.0..=1.0).contains(v)) {
            return x;
        }
    }
    x.iter().map(|v| v.clamp(0.0, 1.0)).collect()
}

/// Whether the run has converged or degenerated (the module docs list the criteria).
fn should_stop(run: &SavedRun, dist: &SearchDistribution) -> bool {
    let n = dist.dims();
    let eigen = dist.eigen();
    let sigma = dist.sigma;
    let history = &run.fun_history;
    if dist.generation as usize > fun_history_generations(n, run.lambda) && !history.is_empty() {
        let high = history.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let low = history.iter().copied().fold(f64::INFINITY, f64::min);
        if high - low < TOL_FUN {
            return true;
        }
    }
    let tol_x = TOL_X_RELATIVE * run.sigma0;
    let diag = |i: usize| dist.cov[i * n + i].max(0.0).sqrt();
    if (0..n).all(|i| sigma * diag(i) < tol_x && (sigma * dist.p_c[i]).abs() < tol_x) {
        return true;
    }
    let largest = eigen.d.iter().copied().fold(0.0f64, f64::max);
    let smallest = eigen.d.iter().copied().fold(f64::INFINITY, f64::min);
    if sigma * largest > TOL_X_UP {
        return true;
    }
    let axis = (dist.generation as usize) % n.max(1);
    let moves_nothing = (0..n).all(|i| {
        let m = dist.mean[i];
        m == m + 0.1 * sigma * eigen.d[axis] * eigen.b[i * n + axis]
    });
    if moves_nothing {
        return true;
    }
    if (0..n).any(|i| dist.mean[i] == dist.mean[i] + 0.2 * sigma * diag(i)) {
        return true;
    }
    (largest / smallest).powi(2) > MAX_CONDITION
}

/// A standard normal draw (Box–Muller, from two uniform draws).
fn gaussian(rng: &mut impl rand::Rng) -> f64 {
    let u1 = 1.0 - unit_f64(rng);
    let u2 = unit_f64(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
