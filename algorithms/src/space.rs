//! The typed search space and its mapping to and from the unit cube.
//!
//! TODO(helper): implementation pending; the public API below is the contract other crates use.

use std::fmt;

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
    pub fn new(params: Vec<Parameter>) -> Result<Self, SpaceError> {
        todo!("{params:?}")
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[Parameter] {
        &self.params
    }

    /// Maps a point to `[0,1]^n` (one coordinate per parameter).
    pub fn to_unit(&self, point: &Point) -> Vec<f64> {
        todo!("{point:?}")
    }

    /// Maps a unit-cube vector to a valid point (distribution applied, step quantised, clamped).
    pub fn from_unit(&self, unit: &[f64]) -> Point {
        todo!("{unit:?}")
    }

    /// The number of distinct points, `None` when infinite (a double without `step`).
    pub fn cardinality(&self) -> Option<u128> {
        todo!()
    }

    /// The Katib string form of every value: `(name, value)` pairs in parameter order.
    pub fn render(&self, point: &Point) -> Vec<(String, String)> {
        todo!("{point:?}")
    }

    /// Parses Katib string assignments back into a point (order-insensitive by name).
    pub fn parse(&self, assignments: &[(String, String)]) -> Result<Point, SpaceError> {
        todo!("{assignments:?}")
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
