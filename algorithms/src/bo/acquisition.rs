//! Acquisition functions on the standardised posterior, for *minimisation*.
//!
//! With `μ, σ` the posterior mean and standard deviation of the latent function, `f*` the best
//! (lowest) standardised observation and `z = (f* − ξ − μ)/σ`:
//!
//! * EI `= σ h(z)`, `h(z) = φ(z) + z Φ(z)` (Jones, Schonlau and Welch 1998);
//! * PI `= Φ(z)` (Kushner 1964);
//! * LCB `= μ − κσ` (Srinivas et al. 2010), maximised as `−LCB`;
//! * LogEI `= log σ + log h(z)`, computed as in Ament et al. 2023 ("Unexpected Improvements to
//!   Expected Improvement for Bayesian Optimization", NeurIPS, eq. 9): `h(z)` underflows to 0
//!   for `z < −38` in doubles, and with it EI and its gradient, leaving the optimiser on a flat
//!   landscape; `log h` stays finite and informative for every `z`.
//!
//! EI and PI are *scored* on the log scale (`log EI`, `log PI`): the logarithm is monotone, so
//! the maximiser is the one the user asked for, and the optimiser keeps a useful gradient where
//! the plain values underflow. `Ei` and `LogEi` differ only in `ξ` (scikit-optimize's 0.01 for
//! `EI`, 0 for `LogEI` as in Optuna and BoTorch).

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// `log(2π)/2`.
const HALF_LOG_2PI: f64 = 0.918_938_533_204_672_8;
/// `log(π/2)/2`.
const HALF_LOG_PI_OVER_2: f64 = 0.225_791_352_644_727_43;
/// Below this `z`, `log h(z)` uses its asymptotic form `−z²/2 − log√(2π) − 2 log|z|`: `1/√ε`,
/// where the exact form's cancellation would lose every digit (Ament et al. 2023, eq. 9).
const ASYMPTOTIC_Z: f64 = -67_108_864.0;
/// Below this `z`, `log Φ(z)` goes through the scaled complementary error function.
const LOG_CDF_SWITCH_Z: f64 = -5.0;
/// Above this argument `erfcx` uses its asymptotic series (`exp(x²)` would overflow past 26.6).
const ERFCX_SERIES_FROM: f64 = 25.0;

/// What an acquisition scores; higher is better for all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Score {
    /// `log EI` with `ξ`.
    LogEi {
        /// The improvement margin `ξ`, in standardised units.
        xi: f64,
    },
    /// `log PI` with `ξ`.
    LogPi {
        /// The improvement margin `ξ`, in standardised units.
        xi: f64,
    },
    /// `−LCB = −(μ − κσ)`.
    NegLcb {
        /// The exploration weight `κ`.
        kappa: f64,
    },
}

/// A score and its partial derivatives in the posterior mean and variance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ScoreWithGrad {
    /// The score.
    pub(crate) value: f64,
    /// `∂ score / ∂μ`.
    pub(crate) d_mean: f64,
    /// `∂ score / ∂σ²`.
    pub(crate) d_var: f64,
}

/// The smallest standard deviation used: a point at a training point of a noise-free model has
/// `σ = 0`, which would make `z` infinite.
const MIN_SD: f64 = 1e-10;

impl Score {
    /// The score at posterior mean `mean` and variance `var`, given the incumbent `best`.
    pub(crate) fn value(self, mean: f64, var: f64, best: f64) -> f64 {
        self.with_grad(mean, var, best).value
    }

    /// The score and its derivatives.
    pub(crate) fn with_grad(self, mean: f64, var: f64, best: f64) -> ScoreWithGrad {
        let sd = var.max(0.0).sqrt().max(MIN_SD);
        // ∂σ/∂σ² = 1/(2σ).
        let dsd_dvar = 0.5 / sd;
        let result = match self {
            Score::LogEi { xi } => {
                let z = (best - xi - mean) / sd;
                let log_h = log_h(z);
                // d log h/dz = Φ(z)/h(z).
                let r = (log_cdf(z) - log_h).exp();
                let value = sd.ln() + log_h;
                // dz/dμ = −1/σ; dz/dσ = −z/σ.
                ScoreWithGrad {
                    value,
                    d_mean: -r / sd,
                    d_var: (1.0 / sd - r * z / sd) * dsd_dvar,
                }
            }
            Score::LogPi { xi } => {
                let z = (best - xi - mean) / sd;
                let value = log_cdf(z);
                // d log Φ/dz = φ(z)/Φ(z).
                let r = (log_pdf(z) - value).exp();
                ScoreWithGrad {
                    value,
                    d_mean: -r / sd,
                    d_var: -r * z / sd * dsd_dvar,
                }
            }
            Score::NegLcb { kappa } => ScoreWithGrad {
                value: -(mean - kappa * sd),
                d_mean: -1.0,
                d_var: kappa * dsd_dvar,
            },
        };
        if result.value.is_nan() {
            ScoreWithGrad {
                value: f64::NEG_INFINITY,
                d_mean: 0.0,
                d_var: 0.0,
            }
        } else {
            result
        }
    }
}

/// Expected improvement (of a minimisation) at mean `mean`, sd `sd`, incumbent `best`, margin
/// `xi`, computed directly: underflows to 0 for `z < −38`.
pub(crate) fn expected_improvement(mean: f64, sd: f64, best: f64, xi: f64) -> f64 {
    let sd = sd.max(MIN_SD);
    let z = (best - xi - mean) / sd;
    sd * (pdf(z) + z * cdf(z))
}

/// The standard normal density.
pub(crate) fn pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * PI).sqrt()
}

/// `log φ(z)`.
fn log_pdf(z: f64) -> f64 {
    -0.5 * z * z - HALF_LOG_2PI
}

/// The standard normal CDF, `Φ(z) = erfc(−z/√2)/2` (libm's `erfc` keeps relative accuracy in
/// the lower tail).
pub(crate) fn cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z * FRAC_1_SQRT_2)
}

/// `log Φ(z)`, finite for every finite `z`.
pub(crate) fn log_cdf(z: f64) -> f64 {
    if z < LOG_CDF_SWITCH_Z {
        // Φ(z) = erfcx(−z/√2) e^{−z²/2} / 2.
        (0.5 * erfcx(-z * FRAC_1_SQRT_2)).ln() - 0.5 * z * z
    } else {
        cdf(z).ln()
    }
}

/// `log h(z)`, `h(z) = φ(z) + z Φ(z)`, accurate and finite for every finite `z` (Ament et al.
/// 2023, eq. 9).
pub(crate) fn log_h(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NEG_INFINITY;
    }
    if z > -1.0 {
        (pdf(z) + z * cdf(z)).ln()
    } else if z > ASYMPTOTIC_Z {
        // h(z) = φ(z) (1 − |z| √(π/2) erfcx(|z|/√2)).
        let t = (erfcx(-z * FRAC_1_SQRT_2) * -z).ln() + HALF_LOG_PI_OVER_2;
        -0.5 * z * z - HALF_LOG_2PI + log1mexp(t)
    } else {
        -0.5 * z * z - HALF_LOG_2PI - 2.0 * (-z).ln()
    }
}

/// `log(1 − eˣ)` for `x < 0` (Mächler 2012: two forms, each accurate on its side of −log 2).
fn log1mexp(x: f64) -> f64 {
    if x > -std::f64::consts::LN_2 {
        (-x.exp_m1()).ln()
    } else {
        (-x.exp()).ln_1p()
    }
}

/// The scaled complementary error function `erfcx(x) = exp(x²) erfc(x)`, for `x ≥ 0`.
fn erfcx(x: f64) -> f64 {
    if x < ERFCX_SERIES_FROM {
        (x * x).exp() * libm::erfc(x)
    } else {
        // erfcx(x) ~ 1/(x√π) Σ_k (−1)^k (2k−1)!! / (2x²)^k; at x ≥ 25 five terms reach 1e-16.
        let inv = 1.0 / (2.0 * x * x);
        let series = 1.0 - inv * (1.0 - 3.0 * inv * (1.0 - 5.0 * inv * (1.0 - 7.0 * inv)));
        series / (x * PI.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ei_agrees_with_ei_where_ei_is_stable() {
        for z in [
            -8.0, -5.0, -3.0, -1.5, -1.0, -0.99, -0.3, 0.0, 0.5, 2.0, 10.0,
        ] {
            let direct = (pdf(z) + z * cdf(z)).ln();
            let stable = log_h(z);
            assert!(
                (direct - stable).abs() < 1e-9 * (1.0 + direct.abs()),
                "z = {z}: {direct} vs {stable}"
            );
        }
        // And as a score, on the mean/sd scale.
        let (mean, var, best) = (0.3, 0.04, 0.1);
        let score = Score::LogEi { xi: 0.0 }.value(mean, var, best);
        let ei = expected_improvement(mean, var.sqrt(), best, 0.0);
        assert!((score - ei.ln()).abs() < 1e-10);
    }

    #[test]
    fn log_ei_stays_finite_where_ei_underflows() {
        let mut previous = f64::INFINITY;
        for z in [-40.0, -100.0, -1e3, -1e5, -1e8, -1e12, -1e150] {
            let ei = expected_improvement(-z, 1.0, 0.0, 0.0);
            assert_eq!(ei, 0.0, "EI at z = {z} was expected to underflow");
            let v = log_h(z);
            assert!(v.is_finite() && v < previous, "z = {z}: {v}");
            previous = v;
            // Close to the asymptote −z²/2 − log√(2π) − 2 log|z|.
            let asymptote = -0.5 * z * z - HALF_LOG_2PI - 2.0 * (-z).ln();
            // The next term of the expansion is 3/z² (relative, in h).
            let tolerance = 4.0 / (z * z) + 1e-14 * asymptote.abs();
            assert!(
                (v - asymptote).abs() <= tolerance,
                "{z}: {v} vs {asymptote}"
            );
        }
        // The branches meet smoothly.
        for z in [-1.0, ASYMPTOTIC_Z] {
            let (a, b) = (log_h(z * (1.0 + 1e-12)), log_h(z * (1.0 - 1e-12)));
            assert!((a - b).abs() < 1e-6 * (1.0 + a.abs()), "{z}: {a} {b}");
        }
        // The score's gradient is finite and points towards a lower mean.
        let g = Score::LogEi { xi: 0.0 }.with_grad(60.0, 1e-4, 0.0);
        assert!(g.value.is_finite() && g.d_mean < 0.0 && g.d_var > 0.0);
    }

    #[test]
    fn score_gradients_match_finite_differences() {
        for score in [
            Score::LogEi { xi: 0.0 },
            Score::LogEi { xi: 0.01 },
            Score::LogPi { xi: 0.01 },
            Score::NegLcb { kappa: 1.96 },
        ] {
            for (mean, var) in [(0.2, 0.5), (1.5, 0.01), (-0.4, 2.0), (8.0, 0.02)] {
                let best = 0.0;
                let g = score.with_grad(mean, var, best);
                let h = 1e-6;
                let fd_mean = (score.value(mean + h, var, best) - score.value(mean - h, var, best))
                    / (2.0 * h);
                let hv = 1e-6 * var;
                let fd_var = (score.value(mean, var + hv, best)
                    - score.value(mean, var - hv, best))
                    / (2.0 * hv);
                assert!(
                    (fd_mean - g.d_mean).abs() < 1e-5 * (1.0 + fd_mean.abs()),
                    "{score:?}"
                );
                assert!(
                    (fd_var - g.d_var).abs() < 1e-4 * (1.0 + fd_var.abs()),
                    "{score:?}"
                );
            }
        }
    }

    #[test]
    fn log_cdf_is_finite_in_the_far_tail() {
        assert!((log_cdf(-3.0) - cdf(-3.0).ln()).abs() < 1e-12);
        assert!((log_cdf(-6.0) - cdf(-6.0).ln()).abs() < 1e-10);
        let far = log_cdf(-1e4);
        assert!(far.is_finite() && far < -4e7);
        assert_eq!(log_cdf(40.0), 0.0);
    }
}
