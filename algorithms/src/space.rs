//! The typed search space and its mapping to and from the unit cube.
//!
//! Every engine works in one coordinate system, `[0,1]^n` with one coordinate per parameter, and
//! [`SearchSpace::from_unit`] turns any vector of that cube into a valid point. Distributions live
//! here and nowhere else, so an engine that samples the cube evenly (random, Sobol) honours every
//! distribution, and an engine that models the cube (GP-BO, TPE, CMA-ES) needs no special cases.
//!
//! # How each parameter maps
//!
//! * **Double, continuous** (no `step`): the unit coordinate is the value's CDF under its
//!   distribution. `uniform` is linear on `[min, max]`; `logUniform` is linear in `ln x`; `normal`
//!   is a normal with mean `(min+max)/2` and sd `(max-min)/6`, truncated to `[min, max]` and sampled
//!   by the inverse CDF of the truncated law, `u -> Φ⁻¹(Φ(a) + u(Φ(b) − Φ(a)))`; `logNormal` is the
//!   same in `ln x` space.
//! * **Quantised numbers** (an int, or a double with `step`): the allowed values are the grid
//!   `g_k = min + k*step`, `k = 0..=K`, `g_K <= max`. Each grid value owns a *cell* of the
//!   continuous line: the cells of neighbouring values meet half-way between them, and the outer
//!   cells reach half a step beyond the first and last values (`[min-0.5, max+0.5]` for a plain
//!   int). For the log distributions the outer cells are mirrored in log space instead
//!   (`ln lo = 2 ln g_0 − ln(g_0 + step/2)`), which keeps them positive for any step and gives every
//!   value, the smallest included, a non-zero share. The distribution's continuous law (mean and sd
//!   still from the declared `min` and `max`) is truncated to the union of the cells; a draw lands
//!   in one cell and becomes that cell's value. A point maps back to the unit coordinate of its
//!   cell's middle (in probability), so `from_unit(to_unit(p)) == p`.
//! * **Discrete and categorical**: `Value::Choice(i)`; the coordinate `(i+0.5)/n`, and back by
//!   `floor(u*n)`.
//!
//! # Rendering
//!
//! Katib passes every value as a string. Ints render as integers, discrete values as the label the
//! user wrote, categorical values as the choice. Doubles render as the shortest decimal that reads
//! back to the same `f64`; quantised doubles are first rounded to 12 significant digits (only where
//! that moves them by a negligible fraction of a step), so `min = 0.1, step = 0.1` gives `0.3`, not
//! `0.30000000000000004`. That rounding is part of the value itself, so `parse(render(p)) == p`.
//!
//! # Identity of points
//!
//! [`SearchSpace::point_key`] gives a canonical key (a grid index per quantised coordinate, the
//! bits of the value for a continuous one) that engines use to detect repeated points. For a finite
//! space the key is the point's mixed-radix digits, and [`SearchSpace::point_at`] /
//! [`SearchSpace::index_of`] number the points with the **last parameter varying fastest** (the
//! order of nested loops written in the parameters' order, like Python's `itertools.product`).

use std::collections::{HashMap, HashSet};
use std::f64::consts::SQRT_2;
use std::fmt;

use statrs::function::erf::erfc_inv;

/// Significant digits a quantised double keeps; 12 leaves a wide margin over the error of
/// `min + k*step` (about 1e-16 relative) while staying below what the user could have meant.
const QUANTISED_SIGNIFICANT_DIGITS: usize = 12;

/// The 12-digit rounding of a quantised double is used only when it moves the value by at most
/// this fraction of a step; otherwise (a step tiny against the magnitude) the exact value is kept
/// so that neighbouring grid values stay distinct.
const ROUNDING_SLACK_STEPS: f64 = 1e-6;

/// A parsed double matches a grid value when it lies within this fraction of a step of it.
const GRID_MATCH_STEPS: f64 = 1e-6;

/// A parsed double may lie this far outside `[min, max]` (relative to the range or magnitude) and
/// is then clamped: other tools print bounds with fewer digits than an `f64` holds.
const RANGE_SLACK: f64 = 1e-9;

/// A parsed discrete number matches a listed value within this relative tolerance.
const DISCRETE_MATCH_RELATIVE: f64 = 1e-9;

/// The most steps a quantised double may have: beyond 2^52 consecutive multiples of the step are no
/// longer exactly representable.
const MAX_DOUBLE_STEPS: f64 = 4_503_599_627_370_496.0;

/// A double's step must be at least this many ULPs of the bounds' magnitude, so that neighbouring
/// grid values are distinct doubles.
const MIN_STEP_ULPS: f64 = 16.0;

/// The largest magnitude a double bound may have; keeps `max - min` and the half-step cells beyond
/// the bounds finite.
const MAX_DOUBLE_MAGNITUDE: f64 = 1e300;

/// Standard deviations between the mean and each bound of a (log)normal parameter:
/// sd = (max - min) / 6, as Katib documents for `normal`.
const NORMAL_HALF_WIDTH_SDS: f64 = 3.0;

/// 2^63: doubles at or past this magnitude do not fit an `i64`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// The most accepted values an error message lists before it elides the rest.
const MAX_LISTED_VALUES: usize = 20;

/// How values of a numeric parameter are spread over its range (Katib's `distribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Distribution {
    /// Even over `[min, max]`.
    #[default]
    Uniform,
    /// Even over `[ln min, ln max]`; needs `min > 0`.
    LogUniform,
    /// Normal with mean `(min+max)/2` and sd `(max-min)/6`, truncated to `[min, max]`.
    Normal,
    /// Normal in log space with the same rule over `[ln min, ln max]`, truncated; needs `min > 0`.
    LogNormal,
}

impl Distribution {
    /// Katib's spelling (`uniform`, `logUniform`, `normal`, `logNormal`).
    pub fn katib_name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::LogUniform => "logUniform",
            Distribution::Normal => "normal",
            Distribution::LogNormal => "logNormal",
        }
    }

    fn is_log(self) -> bool {
        matches!(self, Distribution::LogUniform | Distribution::LogNormal)
    }

    fn is_normal(self) -> bool {
        matches!(self, Distribution::Normal | Distribution::LogNormal)
    }
}

/// The values one parameter may take.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// A real number in `[min, max]`, quantised to `min + k*step` when `step` is set.
    Double {
        /// Lower bound, inclusive.
        min: f64,
        /// Upper bound, inclusive.
        max: f64,
        /// Quantisation step.
        step: Option<f64>,
        /// How values are spread.
        distribution: Distribution,
    },
    /// An integer in `[min, max]`, on `min + k*step` (step defaults to 1).
    Int {
        /// Lower bound, inclusive.
        min: i64,
        /// Upper bound, inclusive.
        max: i64,
        /// Step between allowed values.
        step: Option<i64>,
        /// How values are spread.
        distribution: Distribution,
    },
    /// One of a list of numbers, kept in the user's order; `labels` are the strings the user wrote
    /// (so `"0.10"` comes back as `"0.10"`).
    Discrete {
        /// The numeric values.
        values: Vec<f64>,
        /// The user's spelling of each value.
        labels: Vec<String>,
    },
    /// One of a list of strings.
    Categorical {
        /// The choices.
        choices: Vec<String>,
    },
}

/// One named parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// The parameter's name.
    pub name: String,
    /// Its values.
    pub domain: Domain,
}

/// One coordinate of a point: the value of one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A double's value.
    Double(f64),
    /// An int's value.
    Int(i64),
    /// The index of a discrete value or categorical choice.
    Choice(usize),
}

/// An assignment of every parameter, in the space's parameter order.
pub type Point = Vec<Value>;

/// Why a space or an assignment is not acceptable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpaceError {
    /// A parameter definition is unusable.
    #[error("parameter {name:?}: {message}")]
    BadParameter {
        /// The parameter.
        name: String,
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// An assignment does not fit the space.
    #[error("assignment {name:?}={value:?}: {message}")]
    BadAssignment {
        /// The parameter.
        name: String,
        /// The value given.
        value: String,
        /// What is wrong.
        message: String,
    },
}

/// A typed search space.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    params: Vec<Parameter>,
}

impl SearchSpace {
    /// Builds a space, checking every parameter (bounds ordered, log distributions positive, steps
    /// positive, lists non-empty and without duplicates, names unique).
    ///
    /// An empty list of parameters is accepted: it is the space of one (empty) point. Whether an
    /// experiment may have no parameters is the spec's rule, not the space's.
    pub fn new(params: Vec<Parameter>) -> Result<Self, SpaceError> {
        let mut names = HashSet::new();
        for param in &params {
            if param.name.is_empty() {
                return Err(bad_param(
                    &param.name,
                    "the name is empty; every parameter needs a non-empty name",
                ));
            }
            if !names.insert(param.name.as_str()) {
                return Err(bad_param(
                    &param.name,
                    "the name appears more than once; parameter names must be unique",
                ));
            }
            validate_domain(&param.domain).map_err(|message| bad_param(&param.name, message))?;
        }
        Ok(SearchSpace { params })
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[Parameter] {
        &self.params
    }

    /// The number of parameters (coordinates of a point).
    pub fn dims(&self) -> usize {
        self.params.len()
    }

    /// Maps a point to `[0,1]^n` (one coordinate per parameter).
    ///
    /// Never panics: a coordinate that is missing, of the wrong kind or out of range maps to the
    /// nearest sensible place (out-of-range values are clamped, a missing or mismatched coordinate
    /// maps to 0.5).
    pub fn to_unit(&self, point: &Point) -> Vec<f64> {
        self.params
            .iter()
            .enumerate()
            .map(|(i, param)| match point.get(i) {
                Some(value) => unit_of(&param.domain, value),
                None => 0.5,
            })
            .collect()
    }

    /// Maps a unit-cube vector to a valid point (distribution applied, step quantised, clamped).
    ///
    /// Accepts any input: coordinates are clamped to `[0,1]`, NaN and missing coordinates count as
    /// 0.5, extra coordinates are ignored.
    pub fn from_unit(&self, unit: &[f64]) -> Point {
        self.params
            .iter()
            .enumerate()
            .map(|(i, param)| {
                let u = unit.get(i).copied().unwrap_or(0.5);
                let u = if u.is_nan() { 0.5 } else { u.clamp(0.0, 1.0) };
                value_from_unit(&param.domain, u)
            })
            .collect()
    }

    /// The number of distinct points, `None` when infinite (a double without `step`).
    ///
    /// Saturates at `u128::MAX`. A double with `min == max` is a constant and counts once.
    pub fn cardinality(&self) -> Option<u128> {
        self.params.iter().try_fold(1u128, |acc, param| {
            radix(&param.domain).map(|n| acc.saturating_mul(n))
        })
    }

    /// The Katib string form of every value: `(name, value)` pairs in parameter order.
    ///
    /// A value of the wrong kind or out of range is first brought to the nearest valid value, so
    /// what is rendered always parses back.
    pub fn render(&self, point: &Point) -> Vec<(String, String)> {
        self.params
            .iter()
            .enumerate()
            .map(|(i, param)| {
                let value = match point.get(i) {
                    Some(value) => snap(&param.domain, value),
                    None => value_from_unit(&param.domain, 0.5),
                };
                (param.name.clone(), render_value(&param.domain, &value))
            })
            .collect()
    }

    /// Parses Katib string assignments back into a point (order-insensitive by name).
    ///
    /// Doubles are read as numbers (values a hair outside the bounds, as other tools print them,
    /// are clamped); quantised doubles are matched to the nearest grid value; ints may be written
    /// as `3` or `3.0`; discrete values are matched by label, then by numeric value. Every
    /// parameter needs exactly one value and unknown names are refused.
    pub fn parse(&self, assignments: &[(String, String)]) -> Result<Point, SpaceError> {
        let mut given: HashMap<&str, &str> = HashMap::new();
        for (name, value) in assignments {
            if !self.params.iter().any(|p| &p.name == name) {
                return Err(SpaceError::BadAssignment {
                    name: name.clone(),
                    value: value.clone(),
                    message: format!(
                        "not a parameter of the search space; its parameters are {}",
                        list_accepted(self.params.iter().map(|p| p.name.as_str()))
                    ),
                });
            }
            if let Some(previous) = given.insert(name, value)
                && previous != value
            {
                return Err(SpaceError::BadAssignment {
                    name: name.clone(),
                    value: value.clone(),
                    message: format!(
                        "given twice, also as {previous:?}; give each parameter one value"
                    ),
                });
            }
        }
        self.params
            .iter()
            .map(|param| match given.get(param.name.as_str()) {
                Some(text) => {
                    parse_value(&param.domain, text).map_err(|message| SpaceError::BadAssignment {
                        name: param.name.clone(),
                        value: (*text).to_owned(),
                        message,
                    })
                }
                None => Err(SpaceError::BadAssignment {
                    name: param.name.clone(),
                    value: String::new(),
                    message: "no value given; every parameter of the search space needs one"
                        .to_owned(),
                }),
            })
            .collect()
    }

    /// Whether `point` is a valid point of this space: one value per parameter, of the right kind,
    /// inside the bounds and (for quantised parameters) on the grid.
    pub fn contains(&self, point: &Point) -> bool {
        point.len() == self.params.len()
            && self
                .params
                .iter()
                .zip(point)
                .all(|(param, value)| value_is_valid(&param.domain, value))
    }

    /// A canonical key for deduplication: equal for two points exactly when they are the same
    /// point of the space (after bringing each coordinate to its nearest valid value).
    ///
    /// Per coordinate: the grid index of a quantised number (int, or double with `step`), the
    /// choice index of a discrete or categorical value, the bits of a continuous double. For a
    /// finite space the key is the point's mixed-radix digits (see [`SearchSpace::point_at`]).
    pub fn point_key(&self, point: &Point) -> Vec<u64> {
        self.params
            .iter()
            .enumerate()
            .map(|(i, param)| match point.get(i) {
                Some(value) => key_digit(&param.domain, value),
                None => key_digit(&param.domain, &value_from_unit(&param.domain, 0.5)),
            })
            .collect()
    }

    /// The point with number `index` in a finite space (`None` for an infinite space or an index
    /// past the end). Points are numbered in mixed radix with the **last parameter varying
    /// fastest**, each parameter's values in their own order (grid values ascending, lists in the
    /// user's order).
    pub fn point_at(&self, index: u128) -> Option<Point> {
        let digits = self.digits_at(index)?;
        Some(
            self.params
                .iter()
                .zip(digits)
                .map(|(param, digit)| value_at_digit(&param.domain, digit))
                .collect(),
        )
    }

    /// The number of `point` in the order of [`SearchSpace::point_at`]; `None` for an infinite
    /// space or when the number does not fit in a `u128`.
    pub fn index_of(&self, point: &Point) -> Option<u128> {
        let key = self.point_key(point);
        self.params
            .iter()
            .zip(key)
            .try_fold(0u128, |acc, (param, digit)| {
                let n = radix(&param.domain)?;
                acc.checked_mul(n)?.checked_add(u128::from(digit))
            })
    }

    /// The unit-cube interval that parameter `param`'s value `value` owns: the cell of a quantised
    /// number (an int, a double with `step`), or `[i/n, (i+1)/n)` of a discrete or categorical
    /// value. `None` for a continuous double (a value owns a single coordinate) and for an index
    /// past the parameters. Model-based engines integrate their densities over this interval, so a
    /// grid value is scored by the probability of every unit coordinate that maps to it.
    pub fn unit_cell(&self, param: usize, value: &Value) -> Option<(f64, f64)> {
        let domain = &self.params.get(param)?.domain;
        match domain {
            Domain::Discrete { .. } | Domain::Categorical { .. } => {
                let n = list_len(domain).max(1);
                let i = match *value {
                    Value::Choice(i) => i.min(n - 1),
                    _ => 0,
                };
                Some((i as f64 / n as f64, (i + 1) as f64 / n as f64))
            }
            _ => {
                let num = Numeric::of(domain)?;
                let (step, last) = num.grid?;
                if last == 0 {
                    return Some((0.0, 1.0));
                }
                let k = key_digit(domain, value).min(last);
                let law = num.law();
                let lo = if k == 0 {
                    law.lo
                } else {
                    num.transform(num.min + (k as f64 - 0.5) * step)
                };
                let hi = if k == last {
                    law.hi
                } else {
                    num.transform(num.min + (k as f64 + 0.5) * step)
                };
                Some((law.cdf(lo), law.cdf(hi)))
            }
        }
    }

    /// The key ([`SearchSpace::point_key`]) of point number `index`, without building the point.
    pub(crate) fn digits_at(&self, mut index: u128) -> Option<Vec<u64>> {
        let mut digits = vec![0u64; self.params.len()];
        for (slot, param) in digits.iter_mut().zip(&self.params).rev() {
            let n = radix(&param.domain)?;
            // `n >= 1` for every valid domain; `max(1)` keeps a hand-built space from dividing by 0.
            let n = n.max(1);
            *slot = u64::try_from(index % n).unwrap_or(u64::MAX);
            index /= n;
        }
        (index == 0).then_some(digits)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Double(x) => write!(f, "{x}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Choice(i) => write!(f, "#{i}"),
        }
    }
}

fn bad_param(name: &str, message: impl Into<String>) -> SpaceError {
    SpaceError::BadParameter {
        name: name.to_owned(),
        message: message.into(),
    }
}

/// Lists accepted values for an error message, eliding past [`MAX_LISTED_VALUES`].
fn list_accepted<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.into_iter().collect();
    let mut shown: Vec<String> = items
        .iter()
        .take(MAX_LISTED_VALUES)
        .map(|s| format!("{s:?}"))
        .collect();
    if items.len() > MAX_LISTED_VALUES {
        shown.push(format!("... ({} in all)", items.len()));
    }
    shown.join(", ")
}

// ---------------------------------------------------------------------------------------------
// Validation

fn validate_domain(domain: &Domain) -> Result<(), String> {
    match domain {
        Domain::Double {
            min,
            max,
            step,
            distribution,
        } => validate_double(*min, *max, *step, *distribution),
        Domain::Int {
            min,
            max,
            step,
            distribution,
        } => validate_int(*min, *max, *step, *distribution),
        Domain::Discrete { values, labels } => validate_discrete(values, labels),
        Domain::Categorical { choices } => validate_categorical(choices),
    }
}

fn validate_double(
    min: f64,
    max: f64,
    step: Option<f64>,
    distribution: Distribution,
) -> Result<(), String> {
    for (field, value) in [("min", min), ("max", max)] {
        if !value.is_finite() {
            return Err(format!("{field} is {value}; bounds must be finite numbers"));
        }
        if value.abs() > MAX_DOUBLE_MAGNITUDE {
            return Err(format!(
                "{field} ({value:e}) is too large; bounds must lie within ±{MAX_DOUBLE_MAGNITUDE:e}"
            ));
        }
    }
    if min > max {
        return Err(format!(
            "min ({min}) is greater than max ({max}); min must be <= max (equal for a constant)"
        ));
    }
    if distribution.is_log() && min <= 0.0 {
        return Err(format!(
            "{} needs min > 0, got min = {min}; use a positive min or the {} distribution",
            distribution.katib_name(),
            if distribution == Distribution::LogNormal {
                "normal"
            } else {
                "uniform"
            }
        ));
    }
    if let Some(step) = step {
        if !step.is_finite() || step <= 0.0 {
            return Err(format!(
                "step is {step}; a step must be a finite number > 0"
            ));
        }
        if min < max {
            let range = max - min;
            // Allow rounding noise: [0.1, 0.3] with step 0.2 has a range of 0.19999999999999998.
            if step > range * (1.0 + 1e-12) {
                return Err(format!(
                    "step ({step}) is larger than max - min ({range}); use a step <= {range}, \
                     or min == max for a constant"
                ));
            }
            if range / step > MAX_DOUBLE_STEPS {
                return Err(format!(
                    "step ({step}) is too small for the range [{min}, {max}]: at most 2^52 steps \
                     fit; use a step >= {:e} or drop the step",
                    range / MAX_DOUBLE_STEPS
                ));
            }
            let resolution = min.abs().max(max.abs()) * f64::EPSILON * MIN_STEP_ULPS;
            if step < resolution {
                return Err(format!(
                    "step ({step:e}) is below what a double resolves at this magnitude; use a \
                     step >= {resolution:e} or drop the step"
                ));
            }
        }
    }
    Ok(())
}

fn validate_int(
    min: i64,
    max: i64,
    step: Option<i64>,
    distribution: Distribution,
) -> Result<(), String> {
    if min > max {
        return Err(format!(
            "min ({min}) is greater than max ({max}); min must be <= max (equal for a constant)"
        ));
    }
    if distribution.is_log() && min < 1 {
        return Err(format!(
            "{} needs min >= 1 for an int, got min = {min}; use min >= 1 or the {} distribution",
            distribution.katib_name(),
            if distribution == Distribution::LogNormal {
                "normal"
            } else {
                "uniform"
            }
        ));
    }
    if let Some(step) = step {
        if step <= 0 {
            return Err(format!("step is {step}; an int step must be >= 1"));
        }
        let range = i128::from(max) - i128::from(min);
        if min < max && i128::from(step) > range {
            return Err(format!(
                "step ({step}) is larger than max - min ({range}); use a step <= {range}, \
                 or min == max for a constant"
            ));
        }
    }
    Ok(())
}

fn validate_discrete(values: &[f64], labels: &[String]) -> Result<(), String> {
    if values.is_empty() {
        return Err("the list of values is empty; give at least one value".to_owned());
    }
    if labels.len() != values.len() {
        return Err(format!(
            "{} labels for {} values; give one label (the value as written) per value",
            labels.len(),
            values.len()
        ));
    }
    for (value, label) in values.iter().zip(labels) {
        if !value.is_finite() {
            return Err(format!(
                "value {label:?} is {value}; discrete values must be finite numbers"
            ));
        }
    }
    for (i, value) in values.iter().enumerate() {
        if let Some(j) = values[..i].iter().position(|v| v == value) {
            return Err(format!(
                "values {:?} and {:?} are the same number; list each value once",
                labels[j], labels[i]
            ));
        }
        if let Some(j) = labels[..i].iter().position(|l| l == &labels[i]) {
            return Err(format!(
                "label {:?} is given for two values (#{j} and #{i}); labels must be unique",
                labels[i]
            ));
        }
    }
    Ok(())
}

fn validate_categorical(choices: &[String]) -> Result<(), String> {
    if choices.is_empty() {
        return Err("the list of choices is empty; give at least one choice".to_owned());
    }
    for (i, choice) in choices.iter().enumerate() {
        if choices[..i].contains(choice) {
            return Err(format!(
                "choice {choice:?} is listed more than once; list each choice once"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The continuous law of a numeric parameter

/// The standard normal CDF. `libm`'s `erfc` (a port of musl's) is accurate to an ulp or so;
/// statrs 0.19's `erf` is off by about 1e-10, enough to break exact round trips of grid cells.
fn phi(z: f64) -> f64 {
    0.5 * libm::erfc(-z / SQRT_2)
}

/// The standard normal quantile: statrs's `erfc_inv` for a start, then one Newton step on
/// [`phi`] so that `phi_inv(phi(z))` returns `z` to rounding.
fn phi_inv(p: f64) -> f64 {
    let z = -SQRT_2 * erfc_inv(2.0 * p);
    if !z.is_finite() {
        return z;
    }
    let density = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    if density > 0.0 {
        let refined = z - (phi(z) - p) / density;
        if refined.is_finite() {
            return refined;
        }
    }
    z
}

/// A continuous law on `[lo, hi]` in transformed coordinates (`x` or `ln x`).
#[derive(Debug, Clone, Copy)]
struct Law {
    lo: f64,
    hi: f64,
    /// `Some` for a truncated normal: (mean, sd, Φ(a), Φ(b)).
    normal: Option<(f64, f64, f64, f64)>,
}

impl Law {
    fn new(lo: f64, hi: f64, normal: Option<(f64, f64)>) -> Self {
        let normal = normal.and_then(|(mu, sigma)| {
            (sigma > 0.0 && hi > lo).then(|| {
                let pa = phi((lo - mu) / sigma);
                let pb = phi((hi - mu) / sigma);
                (mu, sigma, pa, pb)
            })
        });
        Law { lo, hi, normal }
    }

    /// The transformed value at probability `u`.
    fn quantile(&self, u: f64) -> f64 {
        if self.hi <= self.lo || u <= 0.0 {
            return self.lo;
        }
        if u >= 1.0 {
            return self.hi;
        }
        let t = match self.normal {
            Some((mu, sigma, pa, pb)) => mu + sigma * phi_inv(pa + u * (pb - pa)),
            None => self.lo + u * (self.hi - self.lo),
        };
        if t.is_nan() {
            0.5 * (self.lo + self.hi)
        } else {
            t.clamp(self.lo, self.hi)
        }
    }

    /// The probability below transformed value `t`.
    fn cdf(&self, t: f64) -> f64 {
        if self.hi <= self.lo {
            return 0.5;
        }
        let p = match self.normal {
            Some((mu, sigma, pa, pb)) => (phi((t - mu) / sigma) - pa) / (pb - pa),
            None => (t - self.lo) / (self.hi - self.lo),
        };
        if p.is_nan() { 0.5 } else { p.clamp(0.0, 1.0) }
    }
}

/// A numeric parameter (double or int) seen as reals.
#[derive(Debug, Clone, Copy)]
struct Numeric {
    min: f64,
    max: f64,
    log: bool,
    normal: bool,
    /// `Some((step, K))` when quantised to `min + k*step`, `k = 0..=K`.
    grid: Option<(f64, u64)>,
}

impl Numeric {
    fn of(domain: &Domain) -> Option<Numeric> {
        match *domain {
            Domain::Double {
                min,
                max,
                step,
                distribution,
            } => Some(Numeric {
                min,
                max,
                log: distribution.is_log(),
                normal: distribution.is_normal(),
                grid: double_grid(min, max, step),
            }),
            Domain::Int {
                min,
                max,
                step,
                distribution,
            } => {
                let (step, last) = int_grid(min, max, step);
                Some(Numeric {
                    min: min as f64,
                    max: max as f64,
                    log: distribution.is_log(),
                    normal: distribution.is_normal(),
                    grid: Some((step as f64, last)),
                })
            }
            Domain::Discrete { .. } | Domain::Categorical { .. } => None,
        }
    }

    fn transform(&self, x: f64) -> f64 {
        if self.log { x.ln() } else { x }
    }

    fn untransform(&self, t: f64) -> f64 {
        if self.log { t.exp() } else { t }
    }

    fn law(&self) -> Law {
        let (tmin, tmax) = (self.transform(self.min), self.transform(self.max));
        let normal = self.normal.then(|| {
            (
                0.5 * (tmin + tmax),
                (tmax - tmin) / (2.0 * NORMAL_HALF_WIDTH_SDS),
            )
        });
        let (lo, hi) = match self.grid {
            None | Some((_, 0)) => (tmin, tmax),
            Some((step, last)) => {
                let first = self.min;
                let end = self.min + last as f64 * step;
                let half = 0.5 * step;
                if self.log {
                    // Mirror the first and last half-cells in log space so they stay positive.
                    (
                        2.0 * first.ln() - (first + half).ln(),
                        2.0 * end.ln() - (end - half).ln(),
                    )
                } else {
                    (first - half, end + half)
                }
            }
        };
        Law::new(lo, hi, normal)
    }

    /// The grid index nearest to `x` (quantised parameters only).
    fn nearest_index(&self, x: f64) -> u64 {
        match self.grid {
            Some((step, last)) => {
                let k = ((x - self.min) / step).round();
                if k.is_nan() || k <= 0.0 {
                    0
                } else if k >= last as f64 {
                    last
                } else {
                    k as u64
                }
            }
            None => 0,
        }
    }

    /// A unit coordinate to either a grid index or a continuous value.
    fn sample(&self, u: f64) -> Sampled {
        let x = self.untransform(self.law().quantile(u));
        match self.grid {
            Some((_, 0)) => Sampled::Index(0),
            Some(_) => Sampled::Index(self.nearest_index(x)),
            None if self.min >= self.max => Sampled::Real(self.min),
            None => Sampled::Real(if x.is_nan() {
                self.min
            } else {
                x.clamp(self.min, self.max)
            }),
        }
    }

    /// The unit coordinate of grid index `k`: the middle (in probability) of its cell.
    fn unit_of_index(&self, k: u64) -> f64 {
        let Some((step, last)) = self.grid else {
            return 0.5;
        };
        if last == 0 {
            return 0.5;
        }
        let k = k.min(last);
        let law = self.law();
        let lo = if k == 0 {
            law.lo
        } else {
            self.transform(self.min + (k as f64 - 0.5) * step)
        };
        let hi = if k == last {
            law.hi
        } else {
            self.transform(self.min + (k as f64 + 0.5) * step)
        };
        0.5 * (law.cdf(lo) + law.cdf(hi))
    }

    /// The unit coordinate of a continuous value.
    fn unit_of_real(&self, x: f64) -> f64 {
        if self.min >= self.max || x.is_nan() {
            return 0.5;
        }
        self.law().cdf(self.transform(x.clamp(self.min, self.max)))
    }
}

/// What a numeric coordinate samples to.
enum Sampled {
    Index(u64),
    Real(f64),
}

/// `(step, K)` of a double: `None` when continuous, `K = 0` for a constant.
fn double_grid(min: f64, max: f64, step: Option<f64>) -> Option<(f64, u64)> {
    if min >= max {
        return Some((step.unwrap_or(1.0), 0));
    }
    let step = step?;
    // (max-min)/step may come out a hair under an integer (0.3/0.1 = 2.9999999999999996): allow a
    // relative 1e-12 before flooring so that a max on the grid is part of it.
    let steps = ((max - min) / step * (1.0 + 1e-12)).floor();
    Some((step, if steps >= 1.0 { steps as u64 } else { 0 }))
}

/// `(step, K)` of an int.
fn int_grid(min: i64, max: i64, step: Option<i64>) -> (i64, u64) {
    let step = step.unwrap_or(1).max(1);
    let range = (i128::from(max) - i128::from(min)).max(0);
    let last = range / i128::from(step);
    (step, u64::try_from(last).unwrap_or(u64::MAX))
}

/// Rounds to [`QUANTISED_SIGNIFICANT_DIGITS`] significant digits.
fn round_significant(x: f64) -> f64 {
    format!("{:.*e}", QUANTISED_SIGNIFICANT_DIGITS - 1, x)
        .parse()
        .unwrap_or(x)
}

/// The value of grid index `k` of a quantised double.
fn double_grid_value(min: f64, max: f64, step: f64, k: u64) -> f64 {
    let raw = min + k as f64 * step;
    let rounded = round_significant(raw);
    let value = if (rounded - raw).abs() <= step * ROUNDING_SLACK_STEPS {
        rounded
    } else {
        raw
    };
    value.clamp(min, max)
}

/// The value of grid index `k` of an int.
fn int_grid_value(min: i64, max: i64, step: Option<i64>, k: u64) -> i64 {
    let (step, last) = int_grid(min, max, step);
    let v = i128::from(min) + i128::from(k.min(last)) * i128::from(step);
    i64::try_from(v).unwrap_or(max)
}

// ---------------------------------------------------------------------------------------------
// Per-parameter mappings

/// How many values a parameter has: `None` for a continuous double. At most 2^64 (an int over
/// all of `i64`), so every key digit fits a `u64`.
fn radix(domain: &Domain) -> Option<u128> {
    match domain {
        Domain::Double { min, max, step, .. } => {
            double_grid(*min, *max, *step).map(|(_, last)| u128::from(last) + 1)
        }
        Domain::Int { min, max, step, .. } => Some(u128::from(int_grid(*min, *max, *step).1) + 1),
        Domain::Discrete { values, .. } => Some(values.len() as u128),
        Domain::Categorical { choices } => Some(choices.len() as u128),
    }
}

fn list_len(domain: &Domain) -> usize {
    match domain {
        Domain::Discrete { values, .. } => values.len(),
        Domain::Categorical { choices } => choices.len(),
        _ => 0,
    }
}

fn value_from_unit(domain: &Domain, u: f64) -> Value {
    match domain {
        Domain::Discrete { .. } | Domain::Categorical { .. } => {
            let n = list_len(domain).max(1);
            let i = (u * n as f64).floor();
            Value::Choice(if i >= 0.0 { (i as usize).min(n - 1) } else { 0 })
        }
        _ => match Numeric::of(domain) {
            Some(num) => match num.sample(u) {
                Sampled::Index(k) => value_at_digit(domain, k),
                Sampled::Real(x) => Value::Double(snap_to_bounds(domain, x)),
            },
            None => Value::Choice(0),
        },
    }
}

/// A continuous double within rounding of a bound is that bound: `exp(ln 0.001)` is
/// 0.0010000000000000002, and users should see the `0.001` they wrote.
fn snap_to_bounds(domain: &Domain, x: f64) -> f64 {
    const RELATIVE_TOLERANCE: f64 = 1e-12;
    let Domain::Double { min, max, .. } = *domain else {
        return x;
    };
    let tolerance = RELATIVE_TOLERANCE * min.abs().max(max.abs()).max(max - min);
    if (x - min).abs() <= tolerance {
        min
    } else if (x - max).abs() <= tolerance {
        max
    } else {
        x.clamp(min, max)
    }
}

/// The value with key digit `digit` (grid index or choice index; ignored for a continuous double).
fn value_at_digit(domain: &Domain, digit: u64) -> Value {
    match *domain {
        Domain::Double { min, max, step, .. } => match double_grid(min, max, step) {
            Some((_, 0)) => Value::Double(min),
            Some((step, last)) => Value::Double(double_grid_value(min, max, step, digit.min(last))),
            None => Value::Double(min),
        },
        Domain::Int { min, max, step, .. } => Value::Int(int_grid_value(min, max, step, digit)),
        Domain::Discrete { .. } | Domain::Categorical { .. } => {
            let n = list_len(domain).max(1);
            Value::Choice(usize::try_from(digit).unwrap_or(usize::MAX).min(n - 1))
        }
    }
}

/// A value read as a real, whatever its kind.
fn as_real(value: &Value) -> f64 {
    match *value {
        Value::Double(x) => x,
        Value::Int(i) => i as f64,
        Value::Choice(i) => i as f64,
    }
}

/// The key digit of a value (see [`SearchSpace::point_key`]).
fn key_digit(domain: &Domain, value: &Value) -> u64 {
    match domain {
        Domain::Discrete { .. } | Domain::Categorical { .. } => {
            let n = list_len(domain).max(1);
            match *value {
                Value::Choice(i) => i.min(n - 1) as u64,
                _ => 0,
            }
        }
        Domain::Int { min, max, step, .. } => {
            let (step, last) = int_grid(*min, *max, *step);
            let v = match *value {
                Value::Int(i) => i128::from(i),
                other => {
                    let x = as_real(&other).round();
                    if x.is_nan() {
                        i128::from(*min)
                    } else {
                        x as i128
                    }
                }
            };
            let offset = (v - i128::from(*min)).max(0);
            // Nearest grid index: round half up.
            let k = (offset + i128::from(step) / 2) / i128::from(step);
            u64::try_from(k).unwrap_or(u64::MAX).min(last)
        }
        Domain::Double { min, max, step, .. } => {
            let Some(num) = Numeric::of(domain) else {
                return 0;
            };
            match double_grid(*min, *max, *step) {
                Some(_) => num.nearest_index(as_real(value)),
                None => {
                    let x = as_real(value);
                    let x = if x.is_nan() {
                        *min
                    } else {
                        x.clamp(*min, *max)
                    };
                    // +0.0 and -0.0 are one value.
                    (x + 0.0).to_bits()
                }
            }
        }
    }
}

/// The nearest valid value to `value`.
fn snap(domain: &Domain, value: &Value) -> Value {
    match domain {
        Domain::Double { min, max, step, .. } if double_grid(*min, *max, *step).is_none() => {
            let x = as_real(value);
            Value::Double(
                if x.is_nan() {
                    *min
                } else {
                    x.clamp(*min, *max)
                } + 0.0,
            )
        }
        _ => value_at_digit(domain, key_digit(domain, value)),
    }
}

fn unit_of(domain: &Domain, value: &Value) -> f64 {
    match domain {
        Domain::Discrete { .. } | Domain::Categorical { .. } => match *value {
            Value::Choice(i) => {
                let n = list_len(domain).max(1);
                (i.min(n - 1) as f64 + 0.5) / n as f64
            }
            _ => 0.5,
        },
        _ => match Numeric::of(domain) {
            Some(num) if num.grid.is_some() => num.unit_of_index(key_digit(domain, value)),
            Some(num) => num.unit_of_real(as_real(value)),
            None => 0.5,
        },
    }
}

fn value_is_valid(domain: &Domain, value: &Value) -> bool {
    match (domain, value) {
        (Domain::Double { min, max, step, .. }, Value::Double(x)) => {
            x.is_finite()
                && *min <= *x
                && *x <= *max
                && (double_grid(*min, *max, *step).is_none() || snap(domain, value) == *value)
        }
        (Domain::Int { min, max, step, .. }, Value::Int(i)) => {
            let step = i128::from(step.unwrap_or(1).max(1));
            min <= i && i <= max && (i128::from(*i) - i128::from(*min)) % step == 0
        }
        (Domain::Discrete { .. } | Domain::Categorical { .. }, Value::Choice(i)) => {
            *i < list_len(domain)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Strings

/// The shortest decimal that reads back as `x`; exponent form for very small or large magnitudes
/// (which Python, Go and Rust all parse).
fn format_double(x: f64) -> String {
    let x = x + 0.0; // -0.0 renders as 0
    let magnitude = x.abs();
    if x == 0.0 || (1e-5..1e16).contains(&magnitude) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

fn render_value(domain: &Domain, value: &Value) -> String {
    match (domain, value) {
        (Domain::Discrete { labels, .. }, Value::Choice(i)) => {
            labels.get(*i).cloned().unwrap_or_default()
        }
        (Domain::Categorical { choices }, Value::Choice(i)) => {
            choices.get(*i).cloned().unwrap_or_default()
        }
        (_, Value::Int(i)) => i.to_string(),
        (_, Value::Double(x)) => format_double(*x),
        (_, Value::Choice(i)) => i.to_string(),
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

fn parse_value(domain: &Domain, text: &str) -> Result<Value, String> {
    match domain {
        Domain::Double { min, max, step, .. } => parse_double(*min, *max, *step, text),
        Domain::Int { min, max, step, .. } => parse_int(*min, *max, *step, text),
        Domain::Discrete { values, labels } => {
            if let Some(i) = labels.iter().position(|l| l == text) {
                return Ok(Value::Choice(i));
            }
            let found = parse_number(text).and_then(|x| {
                values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| (*v - x).abs() <= DISCRETE_MATCH_RELATIVE * v.abs().max(1.0))
                    .min_by(|a, b| (a.1 - x).abs().total_cmp(&(b.1 - x).abs()))
                    .map(|(i, _)| i)
            });
            found.map(Value::Choice).ok_or_else(|| {
                format!(
                    "not one of the listed values; accepted: {}",
                    list_accepted(labels.iter().map(String::as_str))
                )
            })
        }
        Domain::Categorical { choices } => choices
            .iter()
            .position(|c| c == text)
            .map(Value::Choice)
            .ok_or_else(|| {
                format!(
                    "not one of the choices; accepted: {}",
                    list_accepted(choices.iter().map(String::as_str))
                )
            }),
    }
}

fn parse_double(min: f64, max: f64, step: Option<f64>, text: &str) -> Result<Value, String> {
    let accepted = || match double_grid(min, max, step) {
        Some((step, last)) if last > 0 => {
            format!("a number in [{min}, {max}] on the grid {min} + k*{step}")
        }
        Some(_) => format!("the constant {}", format_double(min)),
        None => format!("a number in [{min}, {max}]"),
    };
    let x = parse_number(text)
        .ok_or_else(|| format!("not a finite number; accepted: {}", accepted()))?;
    let slack = RANGE_SLACK * (max - min).max(min.abs()).max(max.abs());
    if x < min - slack || x > max + slack {
        return Err(format!("out of range; accepted: {}", accepted()));
    }
    let x = x.clamp(min, max);
    match double_grid(min, max, step) {
        None => Ok(Value::Double(x + 0.0)),
        Some((_, 0)) => Ok(Value::Double(min)),
        Some((step, last)) => {
            let k = ((x - min) / step).round();
            let k = if k <= 0.0 { 0 } else { (k as u64).min(last) };
            let value = double_grid_value(min, max, step, k);
            if (value - x).abs() <= step * GRID_MATCH_STEPS + RANGE_SLACK * x.abs() {
                Ok(Value::Double(value))
            } else {
                Err(format!(
                    "not on the grid (nearest is {}); accepted: {}",
                    format_double(value),
                    accepted()
                ))
            }
        }
    }
}

fn parse_int(min: i64, max: i64, step: Option<i64>, text: &str) -> Result<Value, String> {
    let step_value = step.unwrap_or(1).max(1);
    let accepted = || {
        if step_value == 1 {
            format!("an integer in [{min}, {max}]")
        } else {
            format!("an integer in [{min}, {max}] of the form {min} + k*{step_value}")
        }
    };
    let trimmed = text.trim();
    // Integers may arrive as "3" or, from tools that only know floats, as "3.0".
    let i = match trimmed.parse::<i64>() {
        Ok(i) => i,
        Err(_) => match parse_number(trimmed) {
            // 2^63 as f64: values at or past it do not fit an i64.
            Some(x) if x.fract() == 0.0 && x.abs() < TWO_POW_63 => x as i64,
            _ => return Err(format!("not an integer; accepted: {}", accepted())),
        },
    };
    if i < min || i > max {
        return Err(format!("out of range; accepted: {}", accepted()));
    }
    if (i128::from(i) - i128::from(min)) % i128::from(step_value) != 0 {
        return Err(format!("not on the step; accepted: {}", accepted()));
    }
    Ok(Value::Int(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{Rng, SeedableRng};

    const SEED: u64 = 20_251_122;

    fn double(min: f64, max: f64, step: Option<f64>, distribution: Distribution) -> Domain {
        Domain::Double {
            min,
            max,
            step,
            distribution,
        }
    }

    fn int(min: i64, max: i64, step: Option<i64>, distribution: Distribution) -> Domain {
        Domain::Int {
            min,
            max,
            step,
            distribution,
        }
    }

    fn discrete(labels: &[&str]) -> Domain {
        Domain::Discrete {
            values: labels.iter().map(|l| l.parse().unwrap()).collect(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        }
    }

    fn categorical(choices: &[&str]) -> Domain {
        Domain::Categorical {
            choices: choices.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    fn space_of(domains: Vec<Domain>) -> Result<SearchSpace, SpaceError> {
        SearchSpace::new(
            domains
                .into_iter()
                .enumerate()
                .map(|(i, domain)| Parameter {
                    name: format!("p{i}"),
                    domain,
                })
                .collect(),
        )
    }

    fn one(domain: Domain) -> SearchSpace {
        space_of(vec![domain]).unwrap()
    }

    fn error_of(domain: Domain) -> String {
        match space_of(vec![domain]) {
            Err(SpaceError::BadParameter { name, message }) => {
                assert_eq!(name, "p0");
                message
            }
            other => panic!("expected BadParameter, got {other:?}"),
        }
    }

    fn unit_sample(n: usize) -> Vec<f64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
        (0..n)
            .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
            .collect()
    }

    fn every_kind() -> Vec<Domain> {
        use Distribution::*;
        let mut domains = Vec::new();
        for dist in [Uniform, LogUniform, Normal, LogNormal] {
            domains.push(double(0.001, 10.0, None, dist));
            domains.push(double(0.1, 1.0, Some(0.1), dist));
            domains.push(double(0.5, 7.3, Some(0.25), dist));
            domains.push(double(2.0, 2.0, None, dist));
            domains.push(int(1, 100, None, dist));
            domains.push(int(1, 11, Some(3), dist));
            domains.push(int(4, 4, Some(2), dist));
            domains.push(int(1, 5, Some(2), dist));
        }
        domains.push(double(-3.0, 5.0, None, Uniform));
        domains.push(double(-3.0, 5.0, Some(0.5), Normal));
        domains.push(int(-50, 50, Some(7), Normal));
        domains.push(discrete(&["0.10", "0.5", "2"]));
        domains.push(categorical(&["adam", "sgd", "rmsprop"]));
        domains
    }

    #[test]
    fn every_kind_round_trips() {
        let units = unit_sample(400);
        for domain in every_kind() {
            let space = one(domain.clone());
            for &u in &units {
                let point = space.from_unit(&[u]);
                assert!(space.contains(&point), "{domain:?}: {point:?} from {u}");
                let again = space.from_unit(&space.to_unit(&point));
                if space.cardinality().is_some() {
                    assert_eq!(again, point, "{domain:?}");
                } else {
                    let (Value::Double(a), Value::Double(b)) = (again[0], point[0]) else {
                        panic!("{again:?} {point:?}");
                    };
                    assert!(
                        (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                        "{domain:?}: {a} {b}"
                    );
                }
                let rendered = space.render(&point);
                assert_eq!(
                    space.parse(&rendered).unwrap(),
                    point,
                    "{domain:?} {rendered:?}"
                );
                if let Domain::Double {
                    min,
                    max,
                    step: None,
                    ..
                } = domain
                    && min < max
                {
                    let back = space.to_unit(&point)[0];
                    assert!((back - u).abs() < 1e-9, "{domain:?}: {u} -> {back}");
                }
            }
        }
    }

    #[test]
    fn finite_domains_enumerate_in_order() {
        for domain in every_kind() {
            let space = one(domain.clone());
            let Some(n) = space.cardinality() else {
                continue;
            };
            let points: Vec<Point> = (0..n).map(|i| space.point_at(i).unwrap()).collect();
            assert_eq!(space.point_at(n), None);
            for (i, point) in points.iter().enumerate() {
                assert!(space.contains(point));
                assert_eq!(space.index_of(point), Some(i as u128));
                assert_eq!(space.parse(&space.render(point)).unwrap(), *point);
                // Every value has a cell of its own: mapping its unit coordinate back finds it.
                assert_eq!(space.from_unit(&space.to_unit(point)), *point, "{domain:?}");
            }
            let units: Vec<f64> = points.iter().map(|p| space.to_unit(p)[0]).collect();
            if let Domain::Double { .. } | Domain::Int { .. } = domain {
                assert!(
                    units.windows(2).all(|w| w[0] < w[1]),
                    "{domain:?} {units:?}"
                );
            }
        }
    }

    #[test]
    fn quantised_doubles_render_short() {
        let space = one(double(0.1, 1.0, Some(0.1), Distribution::Uniform));
        assert_eq!(space.cardinality(), Some(10));
        let rendered: Vec<String> = (0..10)
            .map(|i| space.render(&space.point_at(i).unwrap())[0].1.clone())
            .collect();
        assert_eq!(
            rendered,
            [
                "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"
            ]
        );
        assert_eq!(space.point_at(2).unwrap(), vec![Value::Double(0.3)]);
        // A value computed as min + k*step still parses onto the grid.
        let parsed = space
            .parse(&[("p0".into(), "0.30000000000000004".into())])
            .unwrap();
        assert_eq!(parsed, vec![Value::Double(0.3)]);
        let off_grid = space.parse(&[("p0".into(), "0.35".into())]).unwrap_err();
        assert!(
            off_grid.to_string().contains("not on the grid"),
            "{off_grid}"
        );
    }

    #[test]
    fn steps_stop_at_or_below_max() {
        let space = one(int(1, 11, Some(3), Distribution::Uniform));
        let all: Vec<Point> = (0..4).map(|i| space.point_at(i).unwrap()).collect();
        assert_eq!(space.cardinality(), Some(4));
        assert_eq!(all, [1, 4, 7, 10].map(|i| vec![Value::Int(i)]).to_vec());
        let space = one(double(0.0, 1.0, Some(0.3), Distribution::Uniform));
        assert_eq!(space.cardinality(), Some(4));
        assert_eq!(space.render(&space.point_at(3).unwrap())[0].1, "0.9");
        let space = one(double(0.1, 0.3, Some(0.2), Distribution::Uniform));
        assert_eq!(space.cardinality(), Some(2));
        assert_eq!(space.point_at(1).unwrap(), vec![Value::Double(0.3)]);
    }

    #[test]
    fn int_grid_gives_every_value_a_share() {
        for dist in [
            Distribution::Uniform,
            Distribution::LogUniform,
            Distribution::Normal,
            Distribution::LogNormal,
        ] {
            let space = one(int(1, 9, Some(2), dist));
            let mut counts = [0usize; 5];
            for u in unit_sample(20_000) {
                if let Value::Int(i) = space.from_unit(&[u])[0] {
                    counts[(i as usize - 1) / 2] += 1;
                }
            }
            assert!(counts.iter().all(|&c| c > 0), "{dist:?}: {counts:?}");
            if dist == Distribution::Uniform {
                assert!(
                    counts.iter().all(|&c| (3_600..4_400).contains(&c)),
                    "{counts:?}"
                );
            }
        }
    }

    #[test]
    fn truncated_normal_stays_in_range_and_centres() {
        let space = one(double(0.0, 10.0, None, Distribution::Normal));
        let xs: Vec<f64> = unit_sample(20_000)
            .into_iter()
            .map(|u| match space.from_unit(&[u])[0] {
                Value::Double(x) => x,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(xs.iter().all(|x| (0.0..=10.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 5.0).abs() < 0.05, "mean {mean}");
        // sd = 10/6; P(|x-5| < sd) = 0.6827 / 0.9973 for the normal truncated at 3 sd.
        let within = xs.iter().filter(|x| (*x - 5.0).abs() < 10.0 / 6.0).count();
        let share = within as f64 / xs.len() as f64;
        assert!((share - 0.6845).abs() < 0.015, "share {share}");
        // The extremes of the unit interval land on the bounds.
        assert_eq!(space.from_unit(&[0.0]), vec![Value::Double(0.0)]);
        assert_eq!(space.from_unit(&[1.0]), vec![Value::Double(10.0)]);
        assert_eq!(space.from_unit(&[0.5]), vec![Value::Double(5.0)]);
    }

    #[test]
    fn log_uniform_is_even_in_log_space() {
        let space = one(double(1e-4, 1.0, None, Distribution::LogUniform));
        let logs: Vec<f64> = unit_sample(20_000)
            .into_iter()
            .map(|u| match space.from_unit(&[u])[0] {
                Value::Double(x) => x.log10(),
                other => panic!("{other:?}"),
            })
            .collect();
        for (quartile, expected) in [(0.25, -3.0), (0.5, -2.0), (0.75, -1.0)] {
            let share = logs.iter().filter(|l| **l < expected).count() as f64 / logs.len() as f64;
            assert!((share - quartile).abs() < 0.015, "{quartile}: {share}");
        }
    }

    #[test]
    fn log_int_gives_each_decade_a_similar_share() {
        let space = one(int(1, 1000, None, Distribution::LogUniform));
        let mut decades = [0usize; 3];
        for u in unit_sample(30_000) {
            if let Value::Int(i) = space.from_unit(&[u])[0] {
                decades[((i as f64).log10().floor() as usize).min(2)] += 1;
            }
        }
        // [1,10), [10,100), [100,1000]: about a third each (the first slightly more, its cell
        // reaching below 1).
        for count in decades {
            assert!((8_500..11_500).contains(&count), "{decades:?}");
        }
    }

    #[test]
    fn log_normal_centres_on_the_geometric_mean() {
        let space = one(double(1e-3, 10.0, None, Distribution::LogNormal));
        let xs: Vec<f64> = unit_sample(20_000)
            .into_iter()
            .map(|u| match space.from_unit(&[u])[0] {
                Value::Double(x) => x,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(xs.iter().all(|x| (1e-3..=10.0).contains(x)));
        let geometric_mean = (1e-3f64 * 10.0).sqrt();
        let below = xs.iter().filter(|x| **x < geometric_mean).count() as f64 / xs.len() as f64;
        assert!((below - 0.5).abs() < 0.015, "{below}");
    }

    #[test]
    fn log_bounds_render_as_written() {
        // Regression: exp(ln 0.001) rendered as 0.0010000000000000002.
        let space = SearchSpace::new(vec![Parameter {
            name: "lr".into(),
            domain: Domain::Double {
                min: 0.001,
                max: 0.3,
                step: None,
                distribution: Distribution::LogUniform,
            },
        }])
        .unwrap();
        assert_eq!(space.render(&space.from_unit(&[0.0]))[0].1, "0.001");
        assert_eq!(space.render(&space.from_unit(&[1.0]))[0].1, "0.3");
    }

    #[test]
    fn from_unit_accepts_anything() {
        let space = space_of(every_kind()).unwrap();
        let n = space.dims();
        for input in [
            vec![f64::NAN; n],
            vec![f64::INFINITY; n],
            vec![f64::NEG_INFINITY; n],
            vec![-5.0; n],
            vec![7.0; n],
            vec![],
            vec![0.3],
            vec![1.0; n + 3],
        ] {
            let point = space.from_unit(&input);
            assert!(space.contains(&point), "{input:?} -> {point:?}");
        }
    }

    #[test]
    fn to_unit_tolerates_bad_points() {
        let space = space_of(every_kind()).unwrap();
        let n = space.dims();
        for point in [
            vec![],
            vec![Value::Choice(99); n],
            vec![Value::Double(f64::NAN); n],
        ] {
            let unit = space.to_unit(&point);
            assert_eq!(unit.len(), n);
            assert!(unit.iter().all(|u| (0.0..=1.0).contains(u)));
            let rendered = space.render(&point);
            assert!(space.parse(&rendered).is_ok(), "{rendered:?}");
        }
    }

    #[test]
    fn cardinality_counts_and_saturates() {
        let space = space_of(vec![
            int(0, 9, None, Distribution::Uniform),
            categorical(&["a", "b", "c"]),
            double(1.0, 1.0, None, Distribution::Uniform),
        ])
        .unwrap();
        assert_eq!(space.cardinality(), Some(30));
        let infinite = space_of(vec![
            int(0, 9, None, Distribution::Uniform),
            double(0.0, 1.0, None, Distribution::Uniform),
        ])
        .unwrap();
        assert_eq!(infinite.cardinality(), None);
        assert_eq!(infinite.point_at(0), None);
        let huge = space_of(vec![
            int(i64::MIN, i64::MAX, None, Distribution::Uniform);
            3
        ])
        .unwrap();
        assert_eq!(huge.cardinality(), Some(u128::MAX));
        let p = huge.from_unit(&[0.0, 0.5, 1.0]);
        assert!(huge.contains(&p));
        assert_eq!(p[0], Value::Int(i64::MIN));
        assert_eq!(p[2], Value::Int(i64::MAX));
        assert_eq!(huge.parse(&huge.render(&p)).unwrap(), p);
    }

    #[test]
    fn point_order_varies_the_last_parameter_fastest() {
        let space = space_of(vec![
            categorical(&["a", "b"]),
            int(1, 3, None, Distribution::Uniform),
        ])
        .unwrap();
        let order: Vec<Point> = (0..6).map(|i| space.point_at(i).unwrap()).collect();
        assert_eq!(order[0], vec![Value::Choice(0), Value::Int(1)]);
        assert_eq!(order[1], vec![Value::Choice(0), Value::Int(2)]);
        assert_eq!(order[3], vec![Value::Choice(1), Value::Int(1)]);
        assert_eq!(space.point_key(&order[4]), vec![1, 1]);
    }

    #[test]
    fn point_keys_identify_points() {
        let space = space_of(vec![
            double(0.0, 1.0, None, Distribution::Uniform),
            double(0.0, 1.0, Some(0.1), Distribution::Uniform),
        ])
        .unwrap();
        let a = vec![Value::Double(0.0), Value::Double(0.3)];
        let b = vec![Value::Double(-0.0), Value::Double(0.1 + 0.2)];
        let c = vec![Value::Double(0.5), Value::Double(0.3)];
        assert_eq!(space.point_key(&a), space.point_key(&b));
        assert_ne!(space.point_key(&a), space.point_key(&c));
    }

    #[test]
    fn render_and_parse_by_name() {
        let space = SearchSpace::new(vec![
            Parameter {
                name: "lr".into(),
                domain: double(1e-6, 0.1, None, Distribution::LogUniform),
            },
            Parameter {
                name: "layers".into(),
                domain: int(1, 8, None, Distribution::Uniform),
            },
            Parameter {
                name: "dropout".into(),
                domain: discrete(&["0.10", "0.5"]),
            },
            Parameter {
                name: "opt".into(),
                domain: categorical(&["adam", "sgd"]),
            },
        ])
        .unwrap();
        let point = vec![
            Value::Double(2.5e-6),
            Value::Int(3),
            Value::Choice(0),
            Value::Choice(1),
        ];
        let rendered = space.render(&point);
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        assert_eq!(
            rendered,
            pairs(&[
                ("lr", "2.5e-6"),
                ("layers", "3"),
                ("dropout", "0.10"),
                ("opt", "sgd")
            ])
        );
        // Any order, ints as floats, discrete values by number.
        let parsed = space
            .parse(&pairs(&[
                ("opt", "sgd"),
                ("dropout", "0.1"),
                ("layers", "3.0"),
                ("lr", "0.0000025"),
            ]))
            .unwrap();
        assert_eq!(parsed, point);

        let err = |v: &[(&str, &str)]| space.parse(&pairs(v)).unwrap_err().to_string();
        let full = [
            ("lr", "0.01"),
            ("layers", "3"),
            ("dropout", "0.5"),
            ("opt", "adam"),
        ];
        let with = |name: &str, value: &'static str| {
            full.iter()
                .map(|(n, v)| if *n == name { (*n, value) } else { (*n, *v) })
                .collect::<Vec<_>>()
        };
        let missing = err(&full[1..]);
        assert!(
            missing.contains("\"lr\"") && missing.contains("no value"),
            "{missing}"
        );
        let mut unknown = full.to_vec();
        unknown.push(("momentum", "0.9"));
        let unknown = err(&unknown);
        assert!(
            unknown.contains("momentum") && unknown.contains("\"layers\""),
            "{unknown}"
        );
        let e = err(&with("lr", "fast"));
        assert!(
            e.contains("\"lr\"") && e.contains("fast") && e.contains("[0.000001, 0.1]"),
            "{e}"
        );
        let e = err(&with("lr", "0.5"));
        assert!(e.contains("out of range"), "{e}");
        let e = err(&with("layers", "3.5"));
        assert!(e.contains("not an integer") && e.contains("[1, 8]"), "{e}");
        let e = err(&with("layers", "9"));
        assert!(e.contains("out of range"), "{e}");
        let e = err(&with("dropout", "0.3"));
        assert!(e.contains("\"0.10\", \"0.5\""), "{e}");
        let e = err(&with("opt", "Adam"));
        assert!(e.contains("\"adam\", \"sgd\""), "{e}");
        let e = err(&with("lr", "NaN"));
        assert!(e.contains("not a finite number"), "{e}");
        let mut twice = full.to_vec();
        twice.push(("opt", "sgd"));
        assert!(err(&twice).contains("given twice"));
        let mut same_twice = full.to_vec();
        same_twice.push(("opt", "adam"));
        assert!(space.parse(&pairs(&same_twice)).is_ok());
    }

    #[test]
    fn parse_checks_int_steps_and_clamps_double_noise() {
        let space = one(int(1, 10, Some(3), Distribution::Uniform));
        assert!(space.parse(&[("p0".into(), "7".into())]).is_ok());
        let e = space
            .parse(&[("p0".into(), "8".into())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 + k*3"), "{e}");
        let space = one(double(0.0, 0.1, None, Distribution::Uniform));
        assert_eq!(
            space
                .parse(&[("p0".into(), "0.10000000000000001".into())])
                .unwrap(),
            vec![Value::Double(0.1)]
        );
    }

    #[test]
    fn names_must_be_present_and_unique() {
        let e = SearchSpace::new(vec![Parameter {
            name: String::new(),
            domain: categorical(&["a"]),
        }])
        .unwrap_err();
        assert!(e.to_string().contains("non-empty"), "{e}");
        let p = Parameter {
            name: "x".into(),
            domain: categorical(&["a"]),
        };
        let e = SearchSpace::new(vec![p.clone(), p.clone()]).unwrap_err();
        assert!(e.to_string().contains("unique"), "{e}");
        assert!(SearchSpace::new(vec![p]).is_ok());
        assert_eq!(SearchSpace::new(vec![]).unwrap().cardinality(), Some(1));
    }

    #[test]
    fn double_bounds_are_checked_both_sides() {
        use Distribution::*;
        assert!(error_of(double(2.0, 1.0, None, Uniform)).contains("min must be <= max"));
        assert!(space_of(vec![double(1.0, 1.0, None, Uniform)]).is_ok());
        assert!(error_of(double(f64::NAN, 1.0, None, Uniform)).contains("finite"));
        assert!(error_of(double(0.0, f64::INFINITY, None, Uniform)).contains("finite"));
        assert!(error_of(double(0.0, 1e301, None, Uniform)).contains("within"));
        assert!(space_of(vec![double(-1e300, 1e300, None, Uniform)]).is_ok());
        for dist in [LogUniform, LogNormal] {
            let e = error_of(double(0.0, 1.0, None, dist));
            assert!(e.contains("min > 0"), "{e}");
            assert!(space_of(vec![double(1e-9, 1.0, None, dist)]).is_ok());
        }
        assert!(error_of(double(-1.0, 1.0, None, LogNormal)).contains("normal distribution"));
    }

    #[test]
    fn double_steps_are_checked_both_sides() {
        use Distribution::*;
        for bad in [0.0, -0.1, f64::NAN, f64::INFINITY] {
            let e = error_of(double(0.0, 1.0, Some(bad), Uniform));
            assert!(e.contains("> 0"), "{e}");
        }
        let e = error_of(double(0.0, 1.0, Some(1.5), Uniform));
        assert!(e.contains("step <= 1"), "{e}");
        assert!(space_of(vec![double(0.0, 1.0, Some(1.0), Uniform)]).is_ok());
        assert!(space_of(vec![double(1.0, 1.0, Some(5.0), Uniform)]).is_ok());
        let e = error_of(double(0.0, 1.0, Some(1e-17), Uniform));
        assert!(e.contains("2^52"), "{e}");
        let e = error_of(double(1e10, 1e10 + 1.0, Some(1e-9), Uniform));
        assert!(e.contains("resolves"), "{e}");
        assert!(space_of(vec![double(0.0, 1.0, Some(1e-12), Uniform)]).is_ok());
    }

    #[test]
    fn int_domains_are_checked_both_sides() {
        use Distribution::*;
        assert!(error_of(int(5, 1, None, Uniform)).contains("min must be <= max"));
        assert!(space_of(vec![int(5, 5, None, Uniform)]).is_ok());
        for dist in [LogUniform, LogNormal] {
            assert!(error_of(int(0, 10, None, dist)).contains("min >= 1"));
            assert!(space_of(vec![int(1, 10, None, dist)]).is_ok());
        }
        assert!(error_of(int(0, 10, Some(0), Uniform)).contains(">= 1"));
        assert!(error_of(int(0, 10, Some(-2), Uniform)).contains(">= 1"));
        assert!(error_of(int(0, 10, Some(11), Uniform)).contains("step <= 10"));
        assert!(space_of(vec![int(0, 10, Some(10), Uniform)]).is_ok());
        assert!(space_of(vec![int(3, 3, Some(10), Uniform)]).is_ok());
    }

    #[test]
    fn lists_are_checked_both_sides() {
        assert!(error_of(discrete(&[])).contains("at least one"));
        assert!(space_of(vec![discrete(&["1"])]).is_ok());
        let e = error_of(discrete(&["0.1", "0.10"]));
        assert!(e.contains("same number"), "{e}");
        let e = error_of(Domain::Discrete {
            values: vec![1.0, 2.0],
            labels: vec!["1".into()],
        });
        assert!(e.contains("one label"), "{e}");
        let e = error_of(Domain::Discrete {
            values: vec![1.0, f64::NAN],
            labels: vec!["1".into(), "x".into()],
        });
        assert!(e.contains("finite"), "{e}");
        let e = error_of(Domain::Discrete {
            values: vec![1.0, 2.0],
            labels: vec!["a".into(), "a".into()],
        });
        assert!(e.contains("labels must be unique"), "{e}");
        assert!(error_of(categorical(&[])).contains("at least one"));
        assert!(error_of(categorical(&["a", "b", "a"])).contains("\"a\""));
        assert!(space_of(vec![categorical(&["a", "b"])]).is_ok());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn distribution() -> impl Strategy<Value = Distribution> {
            prop_oneof![
                Just(Distribution::Uniform),
                Just(Distribution::LogUniform),
                Just(Distribution::Normal),
                Just(Distribution::LogNormal),
            ]
        }

        fn domain() -> impl Strategy<Value = Domain> {
            prop_oneof![
                (
                    -1e3..1e3f64,
                    prop_oneof![Just(0.0), 1e-6..1e3f64],
                    prop::option::of(1u32..200),
                    distribution()
                )
                    .prop_map(|(min, width, steps, dist)| {
                        let min = if dist.is_log() { min.abs() + 1e-3 } else { min };
                        let max = min + width;
                        let step = steps.map(|n| {
                            if width > 0.0 {
                                width / f64::from(n)
                            } else {
                                1.0
                            }
                        });
                        double(min, max, step, dist)
                    }),
                (
                    -1000i64..1000,
                    0i64..2000,
                    prop::option::of(1i64..50),
                    distribution()
                )
                    .prop_map(|(min, width, step, dist)| {
                        let min = if dist.is_log() { min.abs() + 1 } else { min };
                        let step = step.map(|s| s.min(width.max(1)));
                        int(min, min + width, step, dist)
                    }),
                prop::collection::btree_set(-100i32..100, 1..6).prop_map(|set| {
                    let labels: Vec<String> = set
                        .iter()
                        .map(|v| format!("{}", f64::from(*v) / 4.0))
                        .collect();
                    Domain::Discrete {
                        values: set.iter().map(|v| f64::from(*v) / 4.0).collect(),
                        labels,
                    }
                }),
                (1usize..6).prop_map(|n| Domain::Categorical {
                    choices: (0..n).map(|i| format!("c{i}")).collect(),
                }),
            ]
        }

        proptest! {
            #[test]
            fn points_from_the_cube_are_valid_and_round_trip(
                domains in prop::collection::vec(domain(), 1..6),
                unit in prop::collection::vec(prop::num::f64::ANY, 0..8),
            ) {
                let space = space_of(domains).unwrap();
                let point = space.from_unit(&unit);
                prop_assert!(space.contains(&point), "{:?}", point);
                let rendered = space.render(&point);
                prop_assert_eq!(space.parse(&rendered).unwrap(), point.clone());
                // Quantised and list coordinates come back exactly, continuous ones to rounding.
                let again = space.from_unit(&space.to_unit(&point));
                for ((param, a), b) in space.params().iter().zip(&again).zip(&point) {
                    match (&param.domain, a, b) {
                        (
                            Domain::Double { min, max, step: None, .. },
                            Value::Double(a),
                            Value::Double(b),
                        ) => prop_assert!((a - b).abs() <= 1e-9 * (max - min).max(1.0)),
                        _ => prop_assert_eq!(a, b),
                    }
                }
                if space.cardinality().is_some() {
                    let index = space.index_of(&point).unwrap();
                    prop_assert_eq!(space.point_at(index).unwrap(), point);
                }
            }
        }
    }
}
