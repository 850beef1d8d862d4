//! The Matérn-5/2 kernel with one length-scale per input dimension (ARD), and its hyperparameters.
//!
//! `k(x, x') = s · (1 + √5 r + 5r²/3) · exp(−√5 r)`, `r² = Σ_d (x_d − x'_d)² / ℓ_d²`.
//!
//! Matérn-5/2 is twice differentiable: smooth enough for gradient-based acquisition search, rough
//! enough not to over-smooth real objectives (the squared exponential's infinite smoothness is
//! a known source of over-confidence; Snoek, Larochelle and Adams 2012 recommend Matérn-5/2 for
//! BO, and scikit-optimize, Optuna's GPSampler and BoTorch all default to it).
//!
//! The hyperparameters are kept in log space (`log ℓ_d`, `log s`, `log(σ²_n − floor)`) so that
//! the unconstrained L-BFGS of the fit can move them freely and every one stays positive.

/// √5, the Matérn-5/2 constant.
const SQRT5: f64 = 2.236_067_977_499_79;

/// The smallest noise variance (in standardised output units): a floor that keeps the covariance
/// matrix well conditioned whatever the data, also for exactly repeated points. Optuna's GPSampler
/// uses the same value (`DEFAULT_MINIMUM_NOISE_VAR = 1e-6`).
pub(crate) const NOISE_FLOOR: f64 = 1e-6;

/// The GP's hyperparameters, in log space.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hyper {
    /// `log ℓ_d`, one per model input dimension.
    pub(crate) log_lengthscales: Vec<f64>,
    /// `log s`, the signal variance.
    pub(crate) log_signal: f64,
    /// `log(σ²_n − NOISE_FLOOR)`: the noise variance above its floor.
    pub(crate) log_noise: f64,
}

impl Hyper {
    /// Number of hyperparameters for `dims` input dimensions.
    pub(crate) fn count(dims: usize) -> usize {
        dims + 2
    }

    /// From the flat vector `[log ℓ_1.., log s, log noise]`.
    pub(crate) fn from_flat(theta: &[f64]) -> Hyper {
        let d = theta.len().saturating_sub(2);
        Hyper {
            log_lengthscales: theta[..d].to_vec(),
            log_signal: theta.get(d).copied().unwrap_or(0.0),
            log_noise: theta.get(d + 1).copied().unwrap_or(0.0),
        }
    }

    /// The flat vector `[log ℓ_1.., log s, log noise]`.
    pub(crate) fn to_flat(&self) -> Vec<f64> {
        let mut theta = self.log_lengthscales.clone();
        theta.push(self.log_signal);
        theta.push(self.log_noise);
        theta
    }

    /// Number of input dimensions.
    pub(crate) fn dims(&self) -> usize {
        self.log_lengthscales.len()
    }

    /// Whether every value is finite.
    pub(crate) fn is_finite(&self) -> bool {
        self.to_flat().iter().all(|v| v.is_finite())
    }

    /// The kernel these hyperparameters define.
    pub(crate) fn kernel(&self) -> Kernel {
        Kernel {
            inv_sq_lengthscales: self
                .log_lengthscales
                .iter()
                .map(|l| (-2.0 * l).exp())
                .collect(),
            signal: self.log_signal.exp(),
            noise: NOISE_FLOOR + self.log_noise.exp(),
        }
    }
}

/// The kernel with its hyperparameters out of log space, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Kernel {
    /// `1 / ℓ_d²`.
    pub(crate) inv_sq_lengthscales: Vec<f64>,
    /// Signal variance `s`.
    pub(crate) signal: f64,
    /// Noise variance `σ²_n` (floor included).
    pub(crate) noise: f64,
}

impl Kernel {
    /// Scaled squared distance `r² = Σ_d (a_d − b_d)² / ℓ_d²`.
    pub(crate) fn r2(&self, a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .zip(&self.inv_sq_lengthscales)
            .map(|((x, y), w)| (x - y) * (x - y) * w)
            .sum()
    }

    /// `k(a, b)` (no noise).
    pub(crate) fn eval(&self, a: &[f64], b: &[f64]) -> f64 {
        self.signal * matern52(self.r2(a, b))
    }

    /// `k(a, b)` and its gradient with respect to `a`, added to `grad` after scaling by `weight`:
    /// `grad += weight · ∂k(a, b)/∂a`. Returns `k(a, b)`.
    pub(crate) fn eval_with_grad(
        &self,
        a: &[f64],
        b: &[f64],
        weight: f64,
        grad: &mut [f64],
    ) -> f64 {
        let r2 = self.r2(a, b);
        let (m, dm_dr2) = matern52_with_slope(r2);
        let scale = weight * self.signal * dm_dr2 * 2.0;
        for (((g, x), y), w) in grad.iter_mut().zip(a).zip(b).zip(&self.inv_sq_lengthscales) {
            *g += scale * (x - y) * w;
        }
        self.signal * m
    }
}

/// The Matérn-5/2 correlation at squared scaled distance `r2`.
pub(crate) fn matern52(r2: f64) -> f64 {
    let r = r2.max(0.0).sqrt();
    let sr = SQRT5 * r;
    (1.0 + sr + sr * sr / 3.0) * (-sr).exp()
}

/// The correlation and its derivative with respect to `r²`:
/// `dm/d(r²) = −(5/6)(1 + √5 r) exp(−√5 r)`, finite at `r = 0`.
pub(crate) fn matern52_with_slope(r2: f64) -> (f64, f64) {
    let r = r2.max(0.0).sqrt();
    let sr = SQRT5 * r;
    let e = (-sr).exp();
    (
        (1.0 + sr + sr * sr / 3.0) * e,
        -(5.0 / 6.0) * (1.0 + sr) * e,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hyper() -> Hyper {
        Hyper {
            log_lengthscales: vec![-1.0, 0.3, 0.0],
            log_signal: 0.4,
            log_noise: -5.0,
        }
    }

    #[test]
    fn matern_has_the_closed_form_values() {
        assert_eq!(matern52(0.0), 1.0);
        // r = 1: (1 + √5 + 5/3) e^{−√5}.
        let expected = (1.0 + SQRT5 + 5.0 / 3.0) * (-SQRT5).exp();
        assert!((matern52(1.0) - expected).abs() < 1e-15);
        assert!(matern52(1e6) < 1e-300);
        let (_, slope) = matern52_with_slope(0.0);
        assert!((slope + 5.0 / 6.0).abs() < 1e-15);
    }

    #[test]
    fn slope_matches_finite_differences() {
        for r2 in [1e-4f64, 0.01, 0.3, 1.0, 4.0, 20.0] {
            let h = 1e-6 * r2.max(1e-3);
            let fd = (matern52(r2 + h) - matern52(r2 - h)) / (2.0 * h);
            let (_, slope) = matern52_with_slope(r2);
            assert!(
                (fd - slope).abs() < 1e-7 * (1.0 + slope.abs()),
                "{r2}: {fd} {slope}"
            );
        }
    }

    #[test]
    fn input_gradient_matches_finite_differences() {
        let kernel = hyper().kernel();
        let a = [0.2, 0.7, 0.1];
        let b = [0.35, 0.4, 0.9];
        let mut grad = vec![0.0; 3];
        let k = kernel.eval_with_grad(&a, &b, 1.0, &mut grad);
        assert!((k - kernel.eval(&a, &b)).abs() < 1e-15);
        for d in 0..3 {
            let h = 1e-6;
            let (mut up, mut down) = (a, a);
            up[d] += h;
            down[d] -= h;
            let fd = (kernel.eval(&up, &b) - kernel.eval(&down, &b)) / (2.0 * h);
            assert!((fd - grad[d]).abs() < 1e-7, "dim {d}: {fd} vs {}", grad[d]);
        }
    }

    #[test]
    fn flat_round_trip() {
        let h = hyper();
        assert_eq!(Hyper::from_flat(&h.to_flat()), h);
        assert_eq!(Hyper::count(3), h.to_flat().len());
        assert!(h.is_finite());
        assert!((h.kernel().noise - NOISE_FLOOR - (-5.0f64).exp()).abs() < 1e-18);
    }
}
