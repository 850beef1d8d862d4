//! Parzen estimators on the unit cube: the densities `l(x)` (good trials) and `g(x)` (the rest)
//! that TPE compares.
//!
//! A [`Parzen`] is a weighted mixture of *components*; each component has one [`Kernel`] per
//! modelled dimension and its density is the product of its kernels. The univariate TPE builds
//! one single-dimension `Parzen` per parameter (the product of the marginals is the model); the
//! multivariate TPE builds one `Parzen` over all dimensions (one kernel per trial, so the model
//! keeps the correlations between parameters).
//!
//! * **Numeric dimensions** (doubles, ints, discrete numbers) live on the parameter's unit
//!   coordinate, where the space has already applied the distribution (log, normal) and a
//!   quantised value sits in the middle of its cell. A kernel is a normal truncated to `[0, 1]`.
//!   A continuous value is scored by the kernel's pdf; a quantised or listed value by the
//!   kernel's probability mass over the value's cell ([`SearchSpace::unit_cell`]), so a grid value
//!   gets exactly the probability of every coordinate that maps to it.
//! * **Categorical dimensions** have no order, so their kernels are probability vectors over the
//!   choices.
//!
//! Everything is computed in log space (log-sum-exp over components): in 12 dimensions a product
//! of kernels underflows a double long before it stops mattering which candidate is best.
//!
//! [`SearchSpace::unit_cell`]: crate::space::SearchSpace::unit_cell

use rand::Rng;
use statrs::function::erf::erfc_inv;

use crate::seeding::unit_f64;

/// `ln(√(2π))`.
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// A mixture term this far (in log) below the largest adds less than `e^-25 ≈ 1.4e-11` of it:
/// skipped without an `exp`. Most kernels of the bad group are far from any one candidate; with
/// 10,000 terms the density moves by < 1.4e-7 relative, far below what separates candidates.
const NEGLIGIBLE_LOG_RATIO: f64 = 25.0;

/// Where a point lies in one dimension, as the kernels score it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Coord {
    /// A continuous coordinate in `[0, 1]`: scored by density.
    Real(f64),
    /// A quantised or listed value: its cell `[lo, hi]` on the unit line, scored by mass.
    Cell(f64, f64),
    /// A categorical choice.
    Choice(usize),
}

/// One dimension of one component.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kernel {
    /// A normal with mean `mu` and sd `sigma`, truncated to `[0, 1]`; `log_z` is the log of its
    /// mass on `[0, 1]` before truncation, `log_norm = ln σ + log_z` (kept so that scoring, the
    /// hot loop, takes no logarithm).
    Normal {
        mu: f64,
        sigma: f64,
        log_z: f64,
        log_norm: f64,
    },
    /// Log-probabilities of the choices (sum of probabilities 1).
    Categorical { log_p: Vec<f64> },
}

impl Kernel {
    /// A normal kernel truncated to `[0, 1]`.
    pub(crate) fn normal(mu: f64, sigma: f64) -> Kernel {
        Kernel::normal_with_ln_sigma(mu, sigma, sigma.ln())
    }

    /// [`Kernel::normal`] with `ln σ` given: a group's kernels share one width, and a logarithm
    /// per kernel was a tenth of the engine's time.
    pub(crate) fn normal_with_ln_sigma(mu: f64, sigma: f64, ln_sigma: f64) -> Kernel {
        // Z = 1 − Φ(−μ/σ) − Φ(−(1−μ)/σ). A tail more than 8.3 sds away is below half an ulp of 1
        // (Φ(−8.3) ≈ 5e-17) and is not computed: most kernels of a large group need no erfc.
        let tail = |t: f64| if t > 8.3 { 0.0 } else { phi(-t) };
        let (left, right) = (mu / sigma, (1.0 - mu) / sigma);
        let z = if left >= 0.0 && right >= 0.0 {
            1.0 - tail(left) - tail(right)
        } else {
            // The centre is outside [0, 1]: the difference of CDFs, on the side without cancellation.
            if left < 0.0 {
                phi(-left) - phi(-left - 1.0 / sigma)
            } else {
                phi(right) - phi(right - 1.0 / sigma)
            }
        };
        let log_z = if z == 1.0 {
            0.0
        } else if z > 0.0 {
            z.ln()
        } else {
            // Mass beyond double precision: the pdf at the nearer end over σ stands in for it.
            let edge = if mu > 1.0 { 1.0 } else { 0.0 };
            log_normal_pdf((edge - mu) / sigma) - ln_sigma
        };
        Kernel::Normal {
            mu,
            sigma,
            log_z,
            log_norm: ln_sigma + log_z,
        }
    }

    /// A categorical kernel from (unnormalised, non-negative) weights per choice.
    pub(crate) fn categorical(weights: &[f64]) -> Kernel {
        let total: f64 = weights.iter().sum();
        let log_p = weights
            .iter()
            .map(|w| {
                if total > 0.0 && *w > 0.0 {
                    (w / total).ln()
                } else if total > 0.0 {
                    f64::NEG_INFINITY
                } else {
                    -(weights.len().max(1) as f64).ln()
                }
            })
            .collect();
        Kernel::Categorical { log_p }
    }

    /// The log density (continuous) or log probability (cell, choice) of `coord`.
    pub(crate) fn log_score(&self, coord: Coord) -> f64 {
        match (self, coord) {
            (
                Kernel::Normal {
                    mu,
                    sigma,
                    log_norm,
                    ..
                },
                Coord::Real(u),
            ) => log_normal_pdf((u - mu) / sigma) - log_norm,
            (
                Kernel::Normal {
                    mu, sigma, log_z, ..
                },
                Coord::Cell(lo, hi),
            ) => log_normal_mass((lo - mu) / sigma, (hi - mu) / sigma) - log_z,
            (Kernel::Categorical { log_p }, Coord::Choice(c)) => {
                log_p.get(c).copied().unwrap_or(f64::NEG_INFINITY)
            }
            // A coordinate of another kind than the kernel: the model cannot tell, so neutral.
            _ => 0.0,
        }
    }

    /// A draw on the unit line (a categorical draw as its choice's coordinate `(c + 0.5)/k`).
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> f64 {
        match self {
            Kernel::Normal { mu, sigma, .. } => {
                let lo = phi(-mu / sigma);
                let hi = phi((1.0 - mu) / sigma);
                let p = lo + unit_f64(rng) * (hi - lo);
                let x = mu + sigma * phi_inv(p);
                if x.is_finite() {
                    x.clamp(0.0, 1.0)
                } else {
                    mu.clamp(0.0, 1.0)
                }
            }
            Kernel::Categorical { log_p } => {
                let k = log_p.len().max(1);
                let mut r = unit_f64(rng);
                for (c, lp) in log_p.iter().enumerate() {
                    let p = lp.exp();
                    if r < p {
                        return (c as f64 + 0.5) / k as f64;
                    }
                    r -= p;
                }
                // Rounding left a sliver: the last choice with any probability.
                let last = log_p.iter().rposition(|lp| lp.is_finite()).unwrap_or(0);
                (last as f64 + 0.5) / k as f64
            }
        }
    }
}

/// A weighted mixture of product kernels.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parzen {
    /// Log mixture weights, normalised (their exps sum to 1).
    log_weights: Vec<f64>,
    /// Kernels per component.
    dims: usize,
    /// `kernels[i * dims + d]`: component `i`, dimension `d`, in one block so that scoring walks
    /// memory in order.
    kernels: Vec<Kernel>,
    /// For a one-dimensional mixture of normal kernels: the narrow kernels sorted by centre, so
    /// that scoring visits only those within reach of the point (`tpe` scores one-dimensional
    /// mixtures of hundreds of kernels per candidate and dimension).
    sorted: Option<SortedKernels>,
}

/// The components of a one-dimensional normal mixture, for windowed scoring.
#[derive(Debug, Clone, PartialEq)]
struct SortedKernels {
    /// Centres of the narrow kernels, ascending.
    mus: Vec<f64>,
    /// Their component indices, in the same order.
    index: Vec<usize>,
    /// `1/σ` of each, in the same order.
    inv_sigmas: Vec<f64>,
    /// `ln w − ln √(2π) − ln σ − ln Z` of each: the term at its centre, so that scoring a
    /// continuous coordinate is `offset − ((u − μ)/σ)²/2`, four operations.
    offsets: Vec<f64>,
    /// Components always scored: the wide kernels (the prior) and anything not a normal kernel.
    wide: Vec<usize>,
    /// Narrow kernels farther than this from the point (or its cell) are skipped.
    reach: f64,
}

/// A kernel at most this wide (sd, on the unit line) is narrow: scored only within reach.
const NARROW_SIGMA: f64 = 0.5;

/// Narrow kernels are skipped beyond this many of the widest narrow kernel's sds: their term is
/// below `e^(−8.5²/2) ≈ 2e-16` of their peak, while the prior kernel, always scored, keeps every
/// density at least `φ(0.5)/(n+1)` of a unit; a skipped kernel changes the density by < 1e-13
/// relative even at the smallest width (1/100).
const REACH_SDS: f64 = 8.5;

impl SortedKernels {
    fn of(kernels: &[Kernel], log_weights: &[f64]) -> Option<SortedKernels> {
        let mut narrow: Vec<(f64, usize, f64, f64)> = Vec::new();
        let mut wide = Vec::new();
        let mut widest: f64 = 0.0;
        for (i, (kernel, lw)) in kernels.iter().zip(log_weights).enumerate() {
            match kernel {
                Kernel::Normal {
                    mu,
                    sigma,
                    log_norm,
                    ..
                } if *sigma <= NARROW_SIGMA && mu.is_finite() => {
                    narrow.push((*mu, i, 1.0 / sigma, lw - LN_SQRT_2PI - log_norm));
                    widest = widest.max(*sigma);
                }
                _ => wide.push(i),
            }
        }
        narrow.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        Some(SortedKernels {
            mus: narrow.iter().map(|k| k.0).collect(),
            index: narrow.iter().map(|k| k.1).collect(),
            inv_sigmas: narrow.iter().map(|k| k.2).collect(),
            offsets: narrow.iter().map(|k| k.3).collect(),
            wide,
            reach: REACH_SDS * widest,
        })
    }

    /// The range of narrow kernels within reach of `[lo, hi]`.
    fn window(&self, lo: f64, hi: f64) -> std::ops::Range<usize> {
        let start = self.mus.partition_point(|&m| m < lo - self.reach);
        let end = self.mus.partition_point(|&m| m <= hi + self.reach);
        start..end.max(start)
    }

    /// The components to score at `coord`: the narrow ones within reach, then the wide ones.
    fn near(&self, coord: Coord) -> impl Iterator<Item = usize> + '_ {
        let (lo, hi) = match coord {
            Coord::Real(u) => (u, u),
            Coord::Cell(lo, hi) => (lo, hi),
            Coord::Choice(_) => (f64::NEG_INFINITY, f64::INFINITY),
        };
        self.index[self.window(lo, hi)]
            .iter()
            .chain(&self.wide)
            .copied()
    }
}

impl Parzen {
    /// A mixture of `components` (weight, kernels); weights need not be normalised. Components of
    /// zero weight are dropped.
    pub(crate) fn new(components: Vec<(f64, Vec<Kernel>)>) -> Parzen {
        let dims = components.first().map_or(0, |(_, k)| k.len());
        let (weights, kernels): (Vec<f64>, Vec<Vec<Kernel>>) = components
            .into_iter()
            .filter(|(_, ks)| ks.len() == dims)
            .unzip();
        Parzen::from_flat(&weights, kernels.into_iter().flatten().collect(), dims)
    }

    /// A mixture from its weights and its kernels in one block (`kernels[i * dims + d]`), without
    /// a vector per component (building the bad group's density was a tenth of a call in
    /// allocations). Components of zero weight are dropped.
    pub(crate) fn from_flat(weights: &[f64], kernels: Vec<Kernel>, dims: usize) -> Parzen {
        let total: f64 = weights.iter().sum();
        let ln_total = total.ln();
        let dims = dims.max(1);
        let keep: Vec<bool> = weights.iter().map(|w| *w > 0.0 && total > 0.0).collect();
        let log_weights: Vec<f64> = weights
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            // Most weights are exactly 1 (recent trials): no logarithm needed for them.
            .map(|(w, _)| {
                if *w == 1.0 {
                    -ln_total
                } else {
                    w.ln() - ln_total
                }
            })
            .collect();
        let kernels: Vec<Kernel> = if keep.iter().all(|k| *k) {
            kernels
        } else {
            kernels
                .chunks_exact(dims)
                .zip(&keep)
                .filter(|(_, k)| **k)
                .flat_map(|(ks, _)| ks.iter().cloned())
                .collect()
        };
        let sorted = if dims == 1 {
            SortedKernels::of(&kernels, &log_weights)
        } else {
            None
        };
        Parzen {
            log_weights,
            dims,
            kernels,
            sorted,
        }
    }

    /// The kernels of component `i`.
    fn component(&self, i: usize) -> Option<&[Kernel]> {
        self.kernels.get(i * self.dims..(i + 1) * self.dims)
    }

    /// The log density of the point `coords` (one coordinate per modelled dimension).
    pub(crate) fn log_density(&self, coords: &[Coord]) -> f64 {
        // Two passes, the second only exponentiating terms within NEGLIGIBLE_LOG_RATIO of the
        // largest: computing a term is a few multiplications, an `exp` is the cost of scoring
        // (the engine's hot loop), and most kernels of a large group are far from any one point.
        let term = |(lw, ks): (&f64, &[Kernel])| {
            lw + ks
                .iter()
                .zip(coords)
                .map(|(k, c)| k.log_score(*c))
                .sum::<f64>()
        };
        if let (Some(sorted), [Coord::Real(u)]) = (&self.sorted, coords) {
            // The common case, a continuous coordinate: narrow kernels by their precomputed
            // offsets, the wide ones as usual, in one pass. The sum is taken relative to a lower
            // bound on the largest term (the wide terms and the two narrow kernels around `u`),
            // not the largest itself: no term can exceed it by more than the spread of the
            // weights and truncations (≤ ln n + ln 2), so nothing overflows, and a term skipped
            // as negligible is negligible against the largest too.
            let narrow_term = |k: usize| {
                let z = (u - sorted.mus[k]) * sorted.inv_sigmas[k];
                sorted.offsets[k] - 0.5 * z * z
            };
            let wide: Vec<f64> = sorted
                .wide
                .iter()
                .map(|&i| term((&self.log_weights[i], &self.kernels[i..=i])))
                .filter(|t| !t.is_nan())
                .collect();
            let window = sorted.window(*u, *u);
            let next = sorted.mus.partition_point(|&m| m < *u);
            let mut bound = wide.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            for k in [next.wrapping_sub(1), next] {
                if window.contains(&k) {
                    bound = bound.max(narrow_term(k));
                }
            }
            if !bound.is_finite() {
                // No wide kernel and no narrow one within reach: the plain two-pass sum.
                return log_sum_exp_of(|| window.clone().map(narrow_term).filter(|t| !t.is_nan()));
            }
            let sum: f64 = window
                .map(narrow_term)
                .chain(wide)
                .filter(|t| *t - bound > -NEGLIGIBLE_LOG_RATIO)
                .map(|t| (t - bound).exp())
                .sum();
            return bound + sum.ln();
        }
        if let (Some(sorted), [coord]) = (&self.sorted, coords) {
            let terms = || {
                sorted
                    .near(*coord)
                    .map(|i| term((&self.log_weights[i], &self.kernels[i..=i])))
                    .filter(|t| !t.is_nan())
            };
            return log_sum_exp_of(terms);
        }
        let terms = || {
            self.log_weights
                .iter()
                .zip(self.kernels.chunks_exact(self.dims.max(1)))
                .map(term)
                .filter(|t| !t.is_nan())
        };
        log_sum_exp_of(terms)
    }

    /// The number of components.
    pub(crate) fn len(&self) -> usize {
        self.log_weights.len()
    }

    /// A draw from component `i` only (its kernels), or from the whole mixture when it has no
    /// component `i`.
    pub(crate) fn sample_component(&self, i: usize, rng: &mut impl Rng) -> Vec<f64> {
        match self.component(i) {
            Some(kernels) => kernels.iter().map(|k| k.sample(rng)).collect(),
            None => self.sample(rng),
        }
    }

    /// Picks a component index by weight.
    pub(crate) fn pick(&self, rng: &mut impl Rng) -> usize {
        let mut r = unit_f64(rng);
        for (i, lw) in self.log_weights.iter().enumerate() {
            let w = lw.exp();
            if r < w {
                return i;
            }
            r -= w;
        }
        self.log_weights.len().saturating_sub(1)
    }

    /// A draw: a component by weight, then each of its kernels. Unit coordinates, one per
    /// dimension.
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> Vec<f64> {
        let i = self.pick(rng);
        match self.component(i) {
            Some(kernels) => kernels.iter().map(|k| k.sample(rng)).collect(),
            None => Vec::new(),
        }
    }
}

/// `ln Σ exp(t)` over the terms `terms()` yields (called twice: for the largest, then the sum),
/// `-∞` for none. Terms more than [`NEGLIGIBLE_LOG_RATIO`] below the largest are not
/// exponentiated.
fn log_sum_exp_of<I: Iterator<Item = f64>>(terms: impl Fn() -> I) -> f64 {
    let top = terms().fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        return top;
    }
    let sum: f64 = terms()
        .filter(|t| t - top > -NEGLIGIBLE_LOG_RATIO)
        .map(|t| (t - top).exp())
        .sum();
    top + sum.ln()
}

/// The standard normal CDF.
pub(crate) fn phi(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// The standard normal quantile (`p` clamped into `(0, 1)`).
fn phi_inv(p: f64) -> f64 {
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    -std::f64::consts::SQRT_2 * erfc_inv(2.0 * p)
}

/// `ln φ(z)`.
fn log_normal_pdf(z: f64) -> f64 {
    -0.5 * z * z - LN_SQRT_2PI
}

/// `ln(Φ(b) − Φ(a))` for `a ≤ b`, accurate in both tails (computed on the side where the masses
/// do not cancel), and the pdf at the nearer end times the width once even that underflows.
fn log_normal_mass(a: f64, b: f64) -> f64 {
    let mass = if a > 0.0 {
        // Upper tail: Φ(b) − Φ(a) = Φ(−a) − Φ(−b), both small, no cancellation against 1.
        phi(-a) - phi(-b)
    } else {
        phi(b) - phi(a)
    };
    if mass > 0.0 {
        mass.ln()
    } else {
        let nearer = if a > 0.0 { a } else { b.min(0.0) };
        log_normal_pdf(nearer) + (b - a).max(f64::MIN_POSITIVE).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeding::stream_rng;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    /// Hand computation: two kernels on [0, 1] and a wide prior.
    ///
    /// l(x) = Σ w_i φ((x−μ_i)/σ_i) / (σ_i Z_i), Z_i = Φ((1−μ_i)/σ_i) − Φ(−μ_i/σ_i).
    #[test]
    fn mixture_pdf_matches_a_hand_computation() {
        // Kernels at 0.2 (σ 0.1) and 0.7 (σ 0.2), prior at 0.5 (σ 1), weights 1, 1, 1 → 1/3 each.
        let parzen = Parzen::new(vec![
            (1.0, vec![Kernel::normal(0.2, 0.1)]),
            (1.0, vec![Kernel::normal(0.7, 0.2)]),
            (1.0, vec![Kernel::normal(0.5, 1.0)]),
        ]);
        let x = 0.3;
        let pdf = |z: f64| (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        // Z_1 = Φ(8) − Φ(−2), Z_2 = Φ(1.5) − Φ(−3.5), Z_3 = Φ(0.5) − Φ(−0.5), from tables.
        let z1 = 0.977_249_868_051_820_1;
        let z2 = 0.932_960_169_652_106_4;
        let z3 = 0.382_924_922_548_026_2;
        let by_hand =
            (pdf(1.0) / (0.1 * z1) + pdf(-2.0) / (0.2 * z2) + pdf(-0.2) / (1.0 * z3)) / 3.0;
        // = (0.2419707/0.0977250 + 0.0539910/0.1865920 + 0.3910427/0.3829249) / 3 ≈ 1.26220
        assert!(close(by_hand, 1.262_20, 1e-4), "{by_hand}");
        let got = parzen.log_density(&[Coord::Real(x)]).exp();
        assert!(close(got, by_hand, 1e-9), "{got} vs {by_hand}");
    }

    #[test]
    fn cell_masses_sum_to_one_and_match_the_cdf() {
        let kernel = Kernel::normal(0.4, 0.15);
        let cells = [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)];
        let total: f64 = cells
            .iter()
            .map(|&(a, b)| kernel.log_score(Coord::Cell(a, b)).exp())
            .sum();
        assert!(close(total, 1.0, 1e-12), "{total}");
        // Mass of [0.25, 0.5]: (Φ(0.6667) − Φ(−1)) / (Φ(4) − Φ(−2.6667)).
        let by_hand = (0.747_507_462_453_077_1 - 0.158_655_253_931_457_07)
            / (0.999_968_328_758_166_9 - 0.003_830_380_567_589_736);
        let got = kernel.log_score(Coord::Cell(0.25, 0.5)).exp();
        assert!(close(got, by_hand, 1e-9), "{got} vs {by_hand}");
        // Far tails stay finite and ordered.
        let far = Kernel::normal(0.0, 0.001);
        let a = far.log_score(Coord::Cell(0.5, 0.6));
        let b = far.log_score(Coord::Cell(0.9, 1.0));
        assert!(a.is_finite() && b.is_finite() && a > b, "{a} {b}");
    }

    #[test]
    fn categorical_kernels_and_products() {
        let kernel = Kernel::categorical(&[3.0, 1.0, 0.0]);
        assert!(close(kernel.log_score(Coord::Choice(0)).exp(), 0.75, 1e-12));
        assert_eq!(kernel.log_score(Coord::Choice(2)), f64::NEG_INFINITY);
        // A joint density is the weighted sum of products.
        let parzen = Parzen::new(vec![
            (3.0, vec![Kernel::normal(0.5, 0.1), kernel.clone()]),
            (
                1.0,
                vec![
                    Kernel::normal(0.5, 1.0),
                    Kernel::categorical(&[1.0, 1.0, 1.0]),
                ],
            ),
        ]);
        let d1 = Kernel::normal(0.5, 0.1).log_score(Coord::Real(0.5)).exp();
        let d2 = Kernel::normal(0.5, 1.0).log_score(Coord::Real(0.5)).exp();
        let by_hand = 0.75 * d1 * 0.25 + 0.25 * d2 / 3.0;
        let got = parzen
            .log_density(&[Coord::Real(0.5), Coord::Choice(1)])
            .exp();
        assert!(close(got, by_hand, 1e-12), "{got} vs {by_hand}");
    }

    #[test]
    fn samples_stay_in_the_cube_and_follow_the_kernels() {
        let mut rng = stream_rng(1, 2, 3);
        let narrow = Kernel::normal(0.9, 0.01);
        let draws: Vec<f64> = (0..2000).map(|_| narrow.sample(&mut rng)).collect();
        assert!(draws.iter().all(|u| (0.0..=1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.9).abs() < 0.002, "{mean}");
        // Mostly outside the cube: still inside after truncation.
        let outside = Kernel::normal(1.3, 0.05);
        assert!((0..200).all(|_| (0.0..=1.0).contains(&outside.sample(&mut rng))));
        let cat = Kernel::categorical(&[0.0, 1.0, 0.0]);
        assert!((0..100).all(|_| cat.sample(&mut rng) == 0.5));
    }
}
