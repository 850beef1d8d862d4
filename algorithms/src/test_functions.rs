//! Standard optimisation test functions, all minimised, with their boxes and known optima: what
//! the engine benchmark (`examples/bench`) and the GP tuning harness measure regret on.
//!
//! The four are the ones the reference figures were measured on, over the same boxes, so
//! that our regrets and the reference regrets are comparable: Branin (2-d, three global minima),
//! Hartmann6 (6-d, multimodal), Rosenbrock-4 (a long curved valley) and Ackley-5 on an
//! *asymmetric* box (`[-10, 30]^5`), so that the optimum at the origin is not the centre of the box
//! and an engine that favours the centre gains nothing from it.

use std::f64::consts::{E, PI, TAU};

use crate::{Distribution, Domain, Parameter, Point, SearchSpace, Value};

/// Branin's global minimum (Dixon and Szegő 1978), reached at (−π, 12.275), (π, 2.275) and
/// (9.42478, 2.475).
const BRANIN_MINIMUM: f64 = 0.397887357729738;

/// Hartmann6's global minimum, at (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
/// (Surjanovic and Bingham, Virtual Library of Simulation Experiments).
const HARTMANN6_MINIMUM: f64 = -3.32236801141551;

/// Hartmann6's weights `alpha`.
const HARTMANN6_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];

/// Hartmann6's matrix `A`.
const HARTMANN6_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];

/// Hartmann6's matrix `P` (the usual table times 10^-4).
const HARTMANN6_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];

/// Ackley's constants `a`, `b` (and `c = 2π`), the usual choice.
const ACKLEY_A: f64 = 20.0;
const ACKLEY_B: f64 = 0.2;

/// One of the benchmark's test functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestFunction {
    /// Branin on `x1 ∈ [-5, 10]`, `x2 ∈ [0, 15]`.
    Branin,
    /// Hartmann6 on `[0, 1]^6`.
    Hartmann6,
    /// Rosenbrock in 4 dimensions on `[-5, 10]^4`.
    Rosenbrock4,
    /// Ackley in 5 dimensions on `[-10, 30]^5`.
    Ackley5,
}

impl TestFunction {
    /// Every function, in the order the tables list them.
    pub const ALL: [TestFunction; 4] = [
        TestFunction::Branin,
        TestFunction::Hartmann6,
        TestFunction::Rosenbrock4,
        TestFunction::Ackley5,
    ];

    /// The name used on the command line and in the tables.
    pub fn name(self) -> &'static str {
        match self {
            TestFunction::Branin => "branin",
            TestFunction::Hartmann6 => "hartmann6",
            TestFunction::Rosenbrock4 => "rosenbrock4",
            TestFunction::Ackley5 => "ackley5",
        }
    }

    /// The function named `name`, if any.
    pub fn from_name(name: &str) -> Option<TestFunction> {
        TestFunction::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The box searched: one `(min, max)` per coordinate.
    pub fn bounds(self) -> Vec<(f64, f64)> {
        match self {
            TestFunction::Branin => vec![(-5.0, 10.0), (0.0, 15.0)],
            TestFunction::Hartmann6 => vec![(0.0, 1.0); 6],
            TestFunction::Rosenbrock4 => vec![(-5.0, 10.0); 4],
            TestFunction::Ackley5 => vec![(-10.0, 30.0); 5],
        }
    }

    /// The global minimum over the box.
    pub fn minimum(self) -> f64 {
        match self {
            TestFunction::Branin => BRANIN_MINIMUM,
            TestFunction::Hartmann6 => HARTMANN6_MINIMUM,
            TestFunction::Rosenbrock4 | TestFunction::Ackley5 => 0.0,
        }
    }

    /// The value at `x` (one coordinate per dimension of [`TestFunction::bounds`]).
    pub fn evaluate(self, x: &[f64]) -> f64 {
        match self {
            TestFunction::Branin => branin(x[0], x[1]),
            TestFunction::Hartmann6 => hartmann6(x),
            TestFunction::Rosenbrock4 => rosenbrock(x),
            TestFunction::Ackley5 => ackley(x),
        }
    }

    /// The search space an engine sees: one continuous, uniform double per coordinate.
    pub fn search_space(self) -> SearchSpace {
        box_space(&self.bounds())
    }
}

/// A space of continuous uniform doubles `x0, x1, ...` over `bounds`.
pub fn box_space(bounds: &[(f64, f64)]) -> SearchSpace {
    let params = bounds
        .iter()
        .enumerate()
        .map(|(i, &(min, max))| Parameter {
            name: format!("x{i}"),
            domain: Domain::Double {
                min,
                max,
                step: None,
                distribution: Distribution::Uniform,
            },
        })
        .collect();
    SearchSpace::new(params).expect("finite, ordered bounds with distinct names form a valid space")
}

/// The coordinates of a point of an all-double space, or a message when a coordinate is not a
/// double (an engine answering with the wrong kind of value).
pub fn coordinates(point: &Point) -> Result<Vec<f64>, String> {
    point
        .iter()
        .enumerate()
        .map(|(i, value)| match value {
            Value::Double(x) => Ok(*x),
            other => Err(format!("coordinate x{i} is {other:?}, expected a double")),
        })
        .collect()
}

/// Branin-Hoo with the usual constants.
pub fn branin(x1: f64, x2: f64) -> f64 {
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let r = 6.0;
    let s = 10.0;
    let t = 1.0 / (8.0 * PI);
    (x2 - b * x1 * x1 + c * x1 - r).powi(2) + s * (1.0 - t) * x1.cos() + s
}

/// Hartmann6: `−Σ_i alpha_i exp(−Σ_j A_ij (x_j − P_ij)²)`.
pub fn hartmann6(x: &[f64]) -> f64 {
    let mut sum = 0.0;
    for ((alpha, a_row), p_row) in HARTMANN6_ALPHA.iter().zip(&HARTMANN6_A).zip(&HARTMANN6_P) {
        let exponent: f64 = a_row
            .iter()
            .zip(p_row)
            .zip(x)
            .map(|((a, p), xj)| a * (xj - p).powi(2))
            .sum();
        sum += alpha * (-exponent).exp();
    }
    -sum
}

/// Rosenbrock in any dimension: `Σ 100 (x_{i+1} − x_i²)² + (1 − x_i)²`.
pub fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2)
        .map(|pair| 100.0 * (pair[1] - pair[0] * pair[0]).powi(2) + (1.0 - pair[0]).powi(2))
        .sum()
}

/// Ackley in any dimension with `a = 20`, `b = 0.2`, `c = 2π`.
pub fn ackley(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean_square = x.iter().map(|v| v * v).sum::<f64>() / n;
    let mean_cos = x.iter().map(|v| (TAU * v).cos()).sum::<f64>() / n;
    -ACKLEY_A * (-ACKLEY_B * mean_square.sqrt()).exp() - mean_cos.exp() + ACKLEY_A + E
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    #[test]
    fn branin_at_its_minima_and_at_the_origin() {
        for (x1, x2) in [(-PI, 12.275), (PI, 2.275), (3.0 * PI, 2.475)] {
            assert_close(branin(x1, x2), BRANIN_MINIMUM, 1e-12);
        }
        // (0, 0): (−6)² + 10(1 − 1/(8π)) + 10 = 56 − 10/(8π).
        assert_close(branin(0.0, 0.0), 56.0 - 10.0 / (8.0 * PI), 1e-12);
    }

    #[test]
    fn hartmann6_at_its_minimum_and_at_the_centre() {
        let argmin = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
        // The published minimiser has 6 digits; the function is flat there (the error is second
        // order), so its value matches the minimum to about 1e-11.
        assert_close(hartmann6(&argmin), HARTMANN6_MINIMUM, 1e-9);
        // Computed independently with numpy from the same A, P and alpha.
        assert_close(hartmann6(&[0.5; 6]), -0.5053149917022333, 1e-12);
    }

    #[test]
    fn rosenbrock_at_its_minimum_and_two_other_points() {
        assert_eq!(rosenbrock(&[1.0; 4]), 0.0);
        // Three terms of (1 − 0)².
        assert_eq!(rosenbrock(&[0.0; 4]), 3.0);
        // Only the first term's (1 − x)² = (1 − (−1))² = 4 is left.
        assert_eq!(rosenbrock(&[-1.0, 1.0, 1.0, 1.0]), 4.0);
    }

    #[test]
    fn ackley_at_its_minimum_and_at_ones() {
        assert_close(ackley(&[0.0; 5]), 0.0, 1e-14);
        // All ones: −20 e^{−0.2} − e^{cos 2π} + 20 + e = 20 (1 − e^{−0.2}).
        assert_close(ackley(&[1.0; 5]), 20.0 * (1.0 - (-0.2f64).exp()), 1e-12);
    }

    #[test]
    fn every_minimum_lies_in_its_box_and_is_the_stated_value() {
        let argmins: [(TestFunction, Vec<f64>); 4] = [
            (TestFunction::Branin, vec![PI, 2.275]),
            (
                TestFunction::Hartmann6,
                vec![0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573],
            ),
            (TestFunction::Rosenbrock4, vec![1.0; 4]),
            (TestFunction::Ackley5, vec![0.0; 5]),
        ];
        for (function, argmin) in argmins {
            let bounds = function.bounds();
            assert_eq!(bounds.len(), argmin.len(), "{}", function.name());
            for (&(min, max), x) in bounds.iter().zip(&argmin) {
                assert!(min <= *x && *x <= max, "{}", function.name());
            }
            assert_close(function.evaluate(&argmin), function.minimum(), 1e-9);
            assert_eq!(function.search_space().dims(), argmin.len());
        }
        let (min, max) = TestFunction::Ackley5.bounds()[0];
        assert_ne!(
            (min + max) / 2.0,
            0.0,
            "the Ackley box must not be centred on the optimum"
        );
    }

    #[test]
    fn names_round_trip() {
        for function in TestFunction::ALL {
            assert_eq!(TestFunction::from_name(function.name()), Some(function));
        }
        assert_eq!(TestFunction::from_name("sphere"), None);
    }
}
