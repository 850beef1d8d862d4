//! The Gaussian process: hyperparameters by maximum a posteriori, and the posterior.
//!
//! # Fit
//!
//! The hyperparameters `θ = (log ℓ_1.., log s, log(σ²_n − floor))` maximise the log marginal
//! likelihood plus a log prior, by argmin's L-BFGS with the **analytic gradient**
//! `∂ LML/∂θ = ½ tr((ααᵀ − K⁻¹) ∂K/∂θ)` (Rasmussen and Williams 2006, eq. 5.9), from a few
//! starts (the previous fit as a warm start, a default, and seeded random starts on a first fit).
//! argmin has no bounded L-BFGS, so the search runs unconstrained in log space and the objective
//! is evaluated at `θ` clamped to a generous box plus a quadratic penalty for leaving it:
//! continuous, with a continuous gradient, and nothing can overflow.
//!
//! The priors are Optuna GPSampler's (`optuna/_gp/prior.py`), chosen because the quality targets
//! are Optuna's and because they are weak where the data are informative and firm where they are
//! not, so the fit never blows up on 2 points or on constant data:
//! * each length-scale: `−(0.1 ℓ² + 0.1/ℓ²)` (a log-density in `1/ℓ²`), which keeps
//!   `ℓ ∈ [~0.05, ~20]` on the unit cube; an irrelevant input drifts to the long end;
//! * signal variance `s ~ Gamma(2, 1)` in standardised output units;
//! * noise variance `σ²_n ~ Gamma(1.1, 30)` above a floor of `1e-6`, which favours
//!   near-interpolation of deterministic objectives but lets real noise be learned.
//!
//! # Posterior
//!
//! [`Posterior`] holds the factor of `K + σ²_n I` as a [`GrowingCholesky`], so that pending
//! points and the points already chosen for a batch can be added as *fantasies* (kriging
//! believer) in `O(n²)` each, without refitting. Predictions for many candidates share one
//! blocked triangular solve.

use std::cell::RefCell;

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{Mat, Par};

use super::kernel::{Hyper, Kernel, NOISE_FLOOR, matern52_with_slope};
use super::linalg::{GrowingCholesky, dot, solve_lower_many};

/// Rate of the length-scale prior `−RATE · (ℓ² + 1/ℓ²)` (Optuna's 0.1).
const LENGTHSCALE_PRIOR_RATE: f64 = 0.1;
/// Shape and rate of the Gamma prior on the signal variance (Optuna's Gamma(2, 1)).
const SIGNAL_PRIOR: (f64, f64) = (2.0, 1.0);
/// Shape and rate of the Gamma prior on the noise variance (Optuna's Gamma(1.1, 30)).
const NOISE_PRIOR: (f64, f64) = (1.1, 30.0);

/// The box the objective clamps `log ℓ` to: `ℓ ∈ [1e-3, 1e3]`. The prior already makes the ends
/// cost thousands of nats; the box is a safety net against overflow.
const LOG_LENGTHSCALE_BOX: (f64, f64) = (-6.907_755_278_982_137, 6.907_755_278_982_137);
/// The box of `log s`: `s ∈ [1e-4, 1e3]` (the outputs are standardised: `s ≈ 1`).
const LOG_SIGNAL_BOX: (f64, f64) = (-9.210_340_371_976_182, 6.907_755_278_982_137);
/// The box of `log(σ²_n − floor)`: `[1e-12, 10]`.
const LOG_NOISE_BOX: (f64, f64) = (-27.631_021_115_928_547, 2.302_585_092_994_046);
/// Weight of the quadratic penalty for leaving the box.
const BOX_PENALTY: f64 = 100.0;

/// Cost returned where the covariance cannot be factorised (never seen in practice thanks to the
/// noise floor): large and finite, so the line search backs off instead of failing.
const FAILED_COST: f64 = 1e12;

/// L-BFGS memory (pairs of updates kept).
const LBFGS_MEMORY: usize = 7;
/// Stop when the gradient norm of the negative log posterior falls below this (Optuna uses
/// `gtol = 1e-2` on the same, unnormalised objective).
const FIT_GRADIENT_TOLERANCE: f64 = 1e-2;
/// Most L-BFGS iterations per start; a warm start typically needs under ten.
const FIT_MAX_ITERATIONS: u64 = 60;

/// `log(2π)`.
const LOG_2PI: f64 = 1.837_877_066_409_345_5;

/// The default start of a fit: `ℓ = 1` (Optuna's initial inverse squared length-scale of 1),
/// `s = 1`, noise `1e-2`.
pub(crate) fn default_start(dims: usize) -> Hyper {
    Hyper {
        log_lengthscales: vec![0.0; dims],
        log_signal: 0.0,
        log_noise: (1e-2f64).ln(),
    }
}

/// Training data: `n` rows of `dims` features, flat, and their standardised targets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Data<'a> {
    /// Row-major `n × dims` inputs.
    pub(crate) x: &'a [f64],
    /// Targets.
    pub(crate) y: &'a [f64],
    /// Input dimensions.
    pub(crate) dims: usize,
}

impl Data<'_> {
    fn n(&self) -> usize {
        self.y.len()
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.dims..(i + 1) * self.dims]
    }
}

/// The negative log posterior of the hyperparameters, with its gradient.
struct Objective {
    n: usize,
    dims: usize,
    /// Per pair `(i, j)`, `j < i`, at index `i(i−1)/2 + j`: the squared differences per input.
    sq: Vec<f64>,
    y: Vec<f64>,
    /// The last evaluation (argmin asks for cost and gradient separately at the same point).
    last: RefCell<Option<(Vec<f64>, f64, Vec<f64>)>>,
}

impl Objective {
    fn new(data: Data<'_>) -> Self {
        let n = data.n();
        let dims = data.dims;
        let mut sq = Vec::with_capacity(n * n.saturating_sub(1) / 2 * dims);
        for i in 0..n {
            let a = data.row(i);
            for j in 0..i {
                let b = data.row(j);
                sq.extend(a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)));
            }
        }
        Objective {
            n,
            dims,
            sq,
            y: data.y.to_vec(),
            last: RefCell::new(None),
        }
    }

    fn cached(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        if let Some((at, cost, grad)) = self.last.borrow().as_ref()
            && at.as_slice() == theta
        {
            return (*cost, grad.clone());
        }
        let (cost, grad) = self.evaluate(theta);
        *self.last.borrow_mut() = Some((theta.to_vec(), cost, grad.clone()));
        (cost, grad)
    }

    /// `−(LML + log prior) + box penalty` and its gradient at `theta`.
    fn evaluate(&self, theta: &[f64]) -> (f64, Vec<f64>) {
        let p = Hyper::count(self.dims);
        if theta.len() != p || theta.iter().any(|v| !v.is_finite()) {
            return (FAILED_COST, vec![0.0; p]);
        }
        let (clamped, penalty, penalty_grad) = clamp_to_box(theta);
        match self.neg_log_posterior(&clamped) {
            Some((cost, mut grad)) => {
                for (g, pg) in grad.iter_mut().zip(&penalty_grad) {
                    *g += pg;
                }
                (cost + penalty, grad)
            }
            None => (FAILED_COST + penalty, penalty_grad),
        }
    }

    fn neg_log_posterior(&self, theta: &[f64]) -> Option<(f64, Vec<f64>)> {
        let (n, dims) = (self.n, self.dims);
        let hyper = Hyper::from_flat(theta);
        let kernel = hyper.kernel();
        let w = &kernel.inv_sq_lengthscales;
        let s = kernel.signal;
        let pairs = n * n.saturating_sub(1) / 2;
        // Per pair: k_ij (no noise) and −2 s dm/d(r²), the factor of every length-scale gradient.
        let mut k_pair = Vec::with_capacity(pairs);
        let mut g_pair = Vec::with_capacity(pairs);
        let mut k = Mat::<f64>::zeros(n, n);
        let mut p = 0;
        for i in 0..n {
            for j in 0..i {
                let r2: f64 = self.sq[p * dims..(p + 1) * dims]
                    .iter()
                    .zip(w)
                    .map(|(d, w)| d * w)
                    .sum();
                let (m, slope) = matern52_with_slope(r2);
                k[(i, j)] = s * m;
                k_pair.push(s * m);
                g_pair.push(-2.0 * s * slope);
                p += 1;
            }
            k[(i, i)] = s + kernel.noise;
        }
        let par = Par::Seq;
        let mut buffer = MemBuffer::new(
            llt::factor::cholesky_in_place_scratch::<f64>(n, par, Default::default())
                .or(llt::inverse::inverse_scratch::<f64>(n, par)),
        );
        let stack = MemStack::new(&mut buffer);
        llt::factor::cholesky_in_place(
            k.as_mut(),
            Default::default(),
            par,
            stack,
            Default::default(),
        )
        .ok()?;
        let l = k;
        let mut alpha = Mat::from_fn(n, 1, |i, _| self.y[i]);
        solve_lower_triangular_in_place(l.as_ref(), alpha.as_mut(), par);
        solve_upper_triangular_in_place(l.transpose(), alpha.as_mut(), par);
        let alpha: Vec<f64> = (0..n).map(|i| alpha[(i, 0)]).collect();
        let half_log_det: f64 = (0..n).map(|i| l[(i, i)].ln()).sum();
        let lml = -0.5 * dot(&self.y, &alpha) - half_log_det - 0.5 * n as f64 * LOG_2PI;
        if !lml.is_finite() {
            return None;
        }
        // K⁻¹ (lower triangle).
        let mut k_inv = Mat::<f64>::zeros(n, n);
        llt::inverse::inverse(k_inv.as_mut(), l.as_ref(), par, stack);

        let mut grad = vec![0.0; dims + 2];
        let (grad_ls, rest) = grad.split_at_mut(dims);
        let mut signal_term = 0.0;
        let mut p = 0;
        for i in 0..n {
            let ai = alpha[i];
            for j in 0..i {
                // W_ij = α_i α_j − (K⁻¹)_ij, counted twice (i, j and j, i).
                let wij = ai * alpha[j] - k_inv[(i, j)];
                signal_term += 2.0 * wij * k_pair[p];
                let factor = wij * g_pair[p];
                for ((g, d), wd) in grad_ls
                    .iter_mut()
                    .zip(&self.sq[p * dims..(p + 1) * dims])
                    .zip(w)
                {
                    *g += factor * d * wd;
                }
                p += 1;
            }
        }
        let mut noise_term = 0.0;
        for i in 0..n {
            let wii = alpha[i] * alpha[i] - k_inv[(i, i)];
            signal_term += wii * s;
            noise_term += wii;
        }
        // ∂LML/∂log ℓ_d = ½ Σ_ij W_ij ∂K_ij/∂log ℓ_d, with ∂K_ij/∂log ℓ_d = g_ij (Δ_d/ℓ_d)²; the ½
        // cancels the pair's double count, already left out above.
        rest[0] = 0.5 * signal_term;
        rest[1] = 0.5 * noise_term * (kernel.noise - NOISE_FLOOR);

        let (prior, prior_grad) = log_prior(&hyper, &kernel);
        let cost = -(lml + prior);
        for (g, pg) in grad.iter_mut().zip(prior_grad) {
            *g = -(*g + pg);
        }
        Some((cost, grad))
    }
}

/// The log prior and its gradient in `θ`.
fn log_prior(hyper: &Hyper, kernel: &Kernel) -> (f64, Vec<f64>) {
    let mut value = 0.0;
    let mut grad = Vec::with_capacity(hyper.dims() + 2);
    for &log_l in &hyper.log_lengthscales {
        let l2 = (2.0 * log_l).exp();
        value -= LENGTHSCALE_PRIOR_RATE * (l2 + 1.0 / l2);
        grad.push(-2.0 * LENGTHSCALE_PRIOR_RATE * (l2 - 1.0 / l2));
    }
    let s = kernel.signal;
    value += (SIGNAL_PRIOR.0 - 1.0) * s.ln() - SIGNAL_PRIOR.1 * s;
    grad.push((SIGNAL_PRIOR.0 - 1.0) - SIGNAL_PRIOR.1 * s);
    let v = kernel.noise;
    let above = v - NOISE_FLOOR;
    value += (NOISE_PRIOR.0 - 1.0) * v.ln() - NOISE_PRIOR.1 * v;
    grad.push(((NOISE_PRIOR.0 - 1.0) / v - NOISE_PRIOR.1) * above);
    (value, grad)
}

/// `theta` clamped to the box, the penalty for the excess and the penalty's gradient.
fn clamp_to_box(theta: &[f64]) -> (Vec<f64>, f64, Vec<f64>) {
    let dims = theta.len().saturating_sub(2);
    let mut clamped = Vec::with_capacity(theta.len());
    let mut penalty = 0.0;
    let mut grad = Vec::with_capacity(theta.len());
    for (i, &t) in theta.iter().enumerate() {
        let (lo, hi) = if i < dims {
            LOG_LENGTHSCALE_BOX
        } else if i == dims {
            LOG_SIGNAL_BOX
        } else {
            LOG_NOISE_BOX
        };
        let c = t.clamp(lo, hi);
        let excess = t - c;
        penalty += BOX_PENALTY * excess * excess;
        grad.push(2.0 * BOX_PENALTY * excess);
        clamped.push(c);
    }
    (clamped, penalty, grad)
}

impl CostFunction for Objective {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, param: &Self::Param) -> Result<Self::Output, argmin::core::Error> {
        Ok(self.cached(param).0)
    }
}

impl Gradient for Objective {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, param: &Self::Param) -> Result<Self::Gradient, argmin::core::Error> {
        Ok(self.cached(param).1)
    }
}

/// The negative log posterior of `hyper` on `data` (for tests and for comparing starts).
#[cfg(test)]
pub(crate) fn neg_log_posterior(data: Data<'_>, hyper: &Hyper) -> (f64, Vec<f64>) {
    Objective::new(data).evaluate(&hyper.to_flat())
}

/// Runs L-BFGS from each start and returns the best hyperparameters found (clamped to the box),
/// or `None` when there are no data.
pub(crate) fn fit(data: Data<'_>, starts: &[Hyper]) -> Option<Hyper> {
    if data.n() == 0 || data.x.len() != data.n() * data.dims {
        return None;
    }
    let objective = Objective::new(data);
    let mut best: Option<(f64, Vec<f64>)> = None;
    for start in starts {
        let theta0 = start.to_flat();
        if theta0.len() != Hyper::count(data.dims) {
            continue;
        }
        let (cost0, _) = objective.evaluate(&theta0);
        let mut candidate = (cost0, theta0.clone());
        if let Some((cost, theta)) = run_lbfgs(&objective, theta0)
            && cost < candidate.0
        {
            candidate = (cost, theta);
        }
        if best.as_ref().is_none_or(|(c, _)| candidate.0 < *c) {
            best = Some(candidate);
        }
    }
    best.map(|(_, theta)| Hyper::from_flat(&clamp_to_box(&theta).0))
}

fn run_lbfgs(objective: &Objective, theta0: Vec<f64>) -> Option<(f64, Vec<f64>)> {
    let linesearch = MoreThuenteLineSearch::new();
    let solver = LBFGS::new(linesearch, LBFGS_MEMORY)
        .with_tolerance_grad(FIT_GRADIENT_TOLERANCE)
        .ok()?
        .with_tolerance_cost(0.0)
        .ok()?;
    let result = Executor::new(ObjectiveRef(objective), solver)
        .configure(|state| state.param(theta0).max_iters(FIT_MAX_ITERATIONS))
        .ctrlc(false)
        .run()
        .ok()?;
    let state = result.state();
    let theta = state.get_best_param()?.clone();
    let cost = state.get_best_cost();
    (cost.is_finite() && theta.iter().all(|v| v.is_finite())).then_some((cost, theta))
}

/// argmin takes its problem by value; this lends it the objective.
struct ObjectiveRef<'a>(&'a Objective);

impl CostFunction for ObjectiveRef<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, param: &Self::Param) -> Result<Self::Output, argmin::core::Error> {
        self.0.cost(param)
    }
}

impl Gradient for ObjectiveRef<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, param: &Self::Param) -> Result<Self::Gradient, argmin::core::Error> {
        self.0.gradient(param)
    }
}

/// Extends `chol` (the factor of the first `chol.len()` rows of `x`) to all `n` rows of `x`.
pub(crate) fn extend_factor(
    chol: &mut GrowingCholesky,
    kernel: &Kernel,
    x: &[f64],
    dims: usize,
    n: usize,
) {
    let n = n.min(x.len().checked_div(dims).unwrap_or(0));
    let mut k = Vec::with_capacity(n);
    for i in chol.len()..n {
        let xi = &x[i * dims..(i + 1) * dims];
        k.clear();
        k.extend((0..i).map(|j| kernel.eval(xi, &x[j * dims..(j + 1) * dims])));
        chol.push(&k, kernel.signal + kernel.noise);
    }
}

/// The GP posterior given fixed hyperparameters, with fantasies appended as needed.
#[derive(Debug, Clone)]
pub(crate) struct Posterior {
    kernel: Kernel,
    dims: usize,
    /// Rows of inputs (real observations, then fantasies).
    x: Vec<f64>,
    /// Standardised targets.
    y: Vec<f64>,
    chol: GrowingCholesky,
    /// `(K + σ²I)⁻¹ y`.
    alpha: Vec<f64>,
    /// `L` as a dense matrix for many-candidate solves, rebuilt after a fantasy.
    dense: Option<Mat<f64>>,
}

/// A prediction: posterior mean and variance of the latent function (noise excluded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Prediction {
    /// Mean.
    pub(crate) mean: f64,
    /// Variance, at least 0.
    pub(crate) var: f64,
}

/// A prediction with its gradient in the input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PredictionWithGrad {
    /// Mean and variance.
    pub(crate) at: Prediction,
    /// `∂ mean / ∂x`.
    pub(crate) d_mean: Vec<f64>,
    /// `∂ var / ∂x`.
    pub(crate) d_var: Vec<f64>,
}

impl Posterior {
    /// The posterior for inputs `x` (row-major, `dims` columns) and targets `y`, where `chol`
    /// already factors a prefix of the rows (it is extended to all of them).
    pub(crate) fn new(
        kernel: Kernel,
        dims: usize,
        x: Vec<f64>,
        y: Vec<f64>,
        mut chol: GrowingCholesky,
    ) -> Self {
        let n = y.len();
        chol.truncate(n);
        extend_factor(&mut chol, &kernel, &x, dims, n);
        let mut posterior = Posterior {
            kernel,
            dims,
            x,
            y,
            chol,
            alpha: Vec::new(),
            dense: None,
        };
        posterior.update_alpha();
        posterior
    }

    fn update_alpha(&mut self) {
        let mut alpha = self.y.clone();
        self.chol.solve_lower(&mut alpha);
        self.chol.solve_upper(&mut alpha);
        self.alpha = alpha;
        self.dense = None;
    }

    /// Number of rows (observations and fantasies).
    pub(crate) fn len(&self) -> usize {
        self.y.len()
    }

    /// The kernel.
    pub(crate) fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// The factor, truncated to the first `n` rows (for the cache).
    pub(crate) fn into_factor(mut self, n: usize) -> GrowingCholesky {
        self.chol.truncate(n);
        self.chol
    }

    /// Adds a fantasy observation `y` at `x` (kriging believer: `y` is the posterior mean).
    pub(crate) fn add_fantasy(&mut self, x: &[f64], y: f64) {
        if x.len() != self.dims {
            return;
        }
        let k = self.cross(x);
        self.chol.push(&k, self.kernel.signal + self.kernel.noise);
        self.x.extend_from_slice(x);
        self.y.push(y);
        self.update_alpha();
    }

    /// Mean and variance at each row of `xs` (row-major, `dims` columns): one blocked triangular
    /// solve for all of them.
    pub(crate) fn predict_many(&mut self, xs: &[f64]) -> Vec<Prediction> {
        let dims = self.dims;
        let m = if dims == 0 { 0 } else { xs.len() / dims };
        let n = self.len();
        if n == 0 {
            return vec![
                Prediction {
                    mean: 0.0,
                    var: self.kernel.signal,
                };
                m
            ];
        }
        let dense = self.dense.get_or_insert_with(|| self.chol.to_dense());
        let mut v = Mat::from_fn(n, m, |i, c| {
            self.kernel.eval(
                &self.x[i * dims..(i + 1) * dims],
                &xs[c * dims..(c + 1) * dims],
            )
        });
        let means: Vec<f64> = (0..m)
            .map(|c| dot(v.col_as_slice(c), &self.alpha))
            .collect();
        solve_lower_many(dense.as_ref(), v.as_mut());
        means
            .into_iter()
            .enumerate()
            .map(|(c, mean)| {
                let col = v.col_as_slice(c);
                Prediction {
                    mean,
                    var: (self.kernel.signal - dot(col, col)).max(0.0),
                }
            })
            .collect()
    }

    /// Mean and variance at `x`, without gradient (two `O(n²)` solves, no dense copy).
    pub(crate) fn predict_one(&self, x: &[f64]) -> Prediction {
        let k = self.cross(x);
        let mean = dot(&k, &self.alpha);
        let mut v = k;
        self.chol.solve_lower(&mut v);
        Prediction {
            mean,
            var: (self.kernel.signal - dot(&v, &v)).max(0.0),
        }
    }

    fn cross(&self, x: &[f64]) -> Vec<f64> {
        let dims = self.dims;
        (0..self.len())
            .map(|i| self.kernel.eval(x, &self.x[i * dims..(i + 1) * dims]))
            .collect()
    }

    /// Mean and variance at `x` and their gradients in `x`.
    pub(crate) fn predict_with_grad(&self, x: &[f64]) -> PredictionWithGrad {
        let dims = self.dims;
        let n = self.len();
        let kernel = &self.kernel;
        let mut k = Vec::with_capacity(n);
        // Per training point, ∂k/∂r² · s (the slope shared by every input dimension).
        let mut slope = Vec::with_capacity(n);
        for i in 0..n {
            let row = &self.x[i * dims..(i + 1) * dims];
            let (m, dm) = matern52_with_slope(kernel.r2(x, row));
            k.push(kernel.signal * m);
            slope.push(kernel.signal * dm);
        }
        let mean = dot(&k, &self.alpha);
        let mut v = k;
        self.chol.solve_lower(&mut v);
        let var = (kernel.signal - dot(&v, &v)).max(0.0);
        let mut w = v;
        self.chol.solve_upper(&mut w);
        // ∂k_i/∂x_d = 2 s m'(r²) (x_d − x_id) / ℓ_d²; mean: Σ α_i ∂k_i; var: −2 Σ w_i ∂k_i.
        let mut d_mean = vec![0.0; dims];
        let mut d_var = vec![0.0; dims];
        for i in 0..n {
            let row = &self.x[i * dims..(i + 1) * dims];
            let a = 2.0 * slope[i] * self.alpha[i];
            let b = -4.0 * slope[i] * w[i];
            for d in 0..dims {
                let diff = (x[d] - row[d]) * kernel.inv_sq_lengthscales[d];
                d_mean[d] += a * diff;
                d_var[d] += b * diff;
            }
        }
        PredictionWithGrad {
            at: Prediction { mean, var },
            d_mean,
            d_var,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeding::{stream_rng, unit_f64};

    fn random_data(
        n: usize,
        dims: usize,
        seed: u64,
        f: impl Fn(&[f64]) -> f64,
    ) -> (Vec<f64>, Vec<f64>) {
        let mut rng = stream_rng(seed, 1, 2);
        let x: Vec<f64> = (0..n * dims).map(|_| unit_f64(&mut rng)).collect();
        let y: Vec<f64> = x.chunks(dims).map(&f).collect();
        (x, y)
    }

    #[test]
    fn likelihood_gradient_matches_finite_differences() {
        let (x, y) = random_data(15, 3, 5, |p| (3.0 * p[0]).sin() + p[1] * p[1] - 0.5 * p[2]);
        let data = Data {
            x: &x,
            y: &y,
            dims: 3,
        };
        let hyper = Hyper {
            log_lengthscales: vec![-0.7, 0.2, 0.5],
            log_signal: 0.3,
            log_noise: -4.0,
        };
        let (_, grad) = neg_log_posterior(data, &hyper);
        let theta = hyper.to_flat();
        for i in 0..theta.len() {
            let h = 1e-5;
            let mut up = theta.clone();
            let mut down = theta.clone();
            up[i] += h;
            down[i] -= h;
            let fd = (neg_log_posterior(data, &Hyper::from_flat(&up)).0
                - neg_log_posterior(data, &Hyper::from_flat(&down)).0)
                / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() < 1e-5 * (1.0 + fd.abs()),
                "θ_{i}: finite difference {fd}, analytic {}",
                grad[i]
            );
        }
    }

    #[test]
    fn fit_finds_the_relevant_dimension() {
        // y depends on x_0 only; x_1 is irrelevant and must get a much longer length-scale.
        let (x, y) = random_data(40, 2, 9, |p| (6.0 * p[0]).sin());
        let data = Data {
            x: &x,
            y: &y,
            dims: 2,
        };
        let hyper = fit(data, &[default_start(2)]).unwrap();
        let (l0, l1) = (
            hyper.log_lengthscales[0].exp(),
            hyper.log_lengthscales[1].exp(),
        );
        assert!(l1 > 5.0 * l0, "ℓ_relevant = {l0}, ℓ_irrelevant = {l1}");
        // And the fit improves on its start.
        assert!(neg_log_posterior(data, &hyper).0 < neg_log_posterior(data, &default_start(2)).0);
    }

    #[test]
    fn posterior_matches_the_closed_form_in_one_dimension() {
        // Two points: K = [[s+σ², k12], [k12, s+σ²]], mean at x* = k*ᵀ K⁻¹ y.
        let hyper = Hyper {
            log_lengthscales: vec![(0.5f64).ln()],
            log_signal: 0.0,
            log_noise: (1e-3f64).ln(),
        };
        let kernel = hyper.kernel();
        let x = vec![0.2, 0.7];
        let y = vec![1.0, -1.0];
        let mut post = Posterior::new(
            kernel.clone(),
            1,
            x.clone(),
            y.clone(),
            GrowingCholesky::new(),
        );
        let a = kernel.signal + kernel.noise;
        let b = kernel.eval(&[0.2], &[0.7]);
        let det = a * a - b * b;
        let inv = [[a / det, -b / det], [-b / det, a / det]];
        for xs in [0.0, 0.2, 0.45, 1.0] {
            let ks = [kernel.eval(&[xs], &[0.2]), kernel.eval(&[xs], &[0.7])];
            let kinv_y = [
                inv[0][0] * y[0] + inv[0][1] * y[1],
                inv[1][0] * y[0] + inv[1][1] * y[1],
            ];
            let mean = ks[0] * kinv_y[0] + ks[1] * kinv_y[1];
            let quad = ks[0] * (inv[0][0] * ks[0] + inv[0][1] * ks[1])
                + ks[1] * (inv[1][0] * ks[0] + inv[1][1] * ks[1]);
            let var = kernel.signal - quad;
            let one = post.predict_one(&[xs]);
            let many = post.predict_many(&[xs])[0];
            let with_grad = post.predict_with_grad(&[xs]).at;
            for got in [one, many, with_grad] {
                assert!(
                    (got.mean - mean).abs() < 1e-12,
                    "{xs}: {} vs {mean}",
                    got.mean
                );
                assert!((got.var - var).abs() < 1e-12, "{xs}: {} vs {var}", got.var);
            }
        }
        // At a training point the mean nearly interpolates and the variance nearly vanishes.
        let at = post.predict_one(&[0.2]);
        assert!((at.mean - 1.0).abs() < 0.01 && at.var < 0.01);
    }

    #[test]
    fn prediction_gradient_matches_finite_differences() {
        let (x, y) = random_data(12, 2, 3, |p| p[0] - p[1] * p[1]);
        let hyper = Hyper {
            log_lengthscales: vec![-1.0, -0.5],
            log_signal: 0.1,
            log_noise: -6.0,
        };
        let post = Posterior::new(hyper.kernel(), 2, x, y, GrowingCholesky::new());
        let at = [0.31, 0.64];
        let g = post.predict_with_grad(&at);
        for d in 0..2 {
            let h = 1e-6;
            let (mut up, mut down) = (at, at);
            up[d] += h;
            down[d] -= h;
            let (pu, pd) = (post.predict_one(&up), post.predict_one(&down));
            let fd_mean = (pu.mean - pd.mean) / (2.0 * h);
            let fd_var = (pu.var - pd.var) / (2.0 * h);
            assert!(
                (fd_mean - g.d_mean[d]).abs() < 1e-6,
                "{fd_mean} {}",
                g.d_mean[d]
            );
            assert!(
                (fd_var - g.d_var[d]).abs() < 1e-6,
                "{fd_var} {}",
                g.d_var[d]
            );
        }
    }

    #[test]
    fn fantasies_shrink_the_variance_and_keep_the_mean() {
        let (x, y) = random_data(10, 2, 4, |p| p[0] + p[1]);
        let hyper = Hyper {
            log_noise: -12.0,
            ..default_start(2)
        };
        let mut post = Posterior::new(hyper.kernel(), 2, x, y, GrowingCholesky::new());
        let at = [0.5, 0.5];
        let before = post.predict_one(&at);
        post.add_fantasy(&at, before.mean);
        let after = post.predict_one(&at);
        assert!((after.mean - before.mean).abs() < 1e-9);
        assert!(after.var < 0.01 * before.var.max(1e-12) + 1e-5);
    }
}
