//! How points become GP inputs: the unit cube, with categorical parameters one-hot.
//!
//! Every numeric parameter (double, int, discrete) is one input: its unit-cube coordinate from
//! [`SearchSpace::to_unit`], where the space has already applied the distribution (log, normal)
//! and, for a quantised value, taken the middle of its cell. An int, a double with `step` and a
//! discrete list keep their order, so the kernel's notion of "near" is right for them.
//!
//! A categorical parameter with `k` choices is `k` inputs, one-hot: its choices have no order,
//! and one-hot gives every pair of choices the same distance (`√2` before length-scales), each
//! choice its own length-scale. A block decodes by argmax.
//!
//! Engines move in the space's unit cube (`dims` coordinates); the model sees the encoding
//! (`width` inputs). [`Encoder::snap`] is the rounding the acquisition is evaluated at:
//! unit vector → [`SearchSpace::from_unit`] (a valid point, quantised and clamped) → encoding.
//! So every point scored is a point that can be suggested.
//!
//! [`SearchSpace::to_unit`]: crate::space::SearchSpace::to_unit
//! [`SearchSpace::from_unit`]: crate::space::SearchSpace::from_unit

use crate::space::{Domain, Parameter, Point, SearchSpace, Value};

/// Finite parameters with at most this many values are searched exhaustively by the local
/// search; larger ones by steps of 1, 2, 4, ... grid positions around the current value.
pub(crate) const EXHAUSTIVE_VALUES: u128 = 32;

/// How one parameter is encoded and searched.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// A continuous double: one input, searched by gradient.
    Continuous {
        /// Its input column.
        column: usize,
    },
    /// A finite ordered parameter (int, double with step, discrete): one input.
    Ordinal {
        /// Its input column.
        column: usize,
        /// The parameter alone, to enumerate its values.
        alone: SearchSpace,
        /// Its number of values.
        count: u128,
    },
    /// A categorical parameter: `choices` inputs, one-hot.
    OneHot {
        /// The first input column of the block.
        column: usize,
        /// The number of choices.
        choices: usize,
    },
}

/// The encoding of one search space.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    slots: Vec<Slot>,
    width: usize,
}

impl Encoder {
    /// The encoding of `space`.
    pub(crate) fn new(space: &SearchSpace) -> Encoder {
        let mut slots = Vec::with_capacity(space.dims());
        let mut column = 0;
        for param in space.params() {
            let slot = match &param.domain {
                Domain::Categorical { choices } => Slot::OneHot {
                    column,
                    choices: choices.len(),
                },
                Domain::Double { step: None, .. } => Slot::Continuous { column },
                _ => {
                    let alone = SearchSpace::new(vec![Parameter {
                        name: param.name.clone(),
                        domain: param.domain.clone(),
                    }])
                    .unwrap_or_else(|_| space.clone());
                    let count = alone.cardinality().unwrap_or(1).max(1);
                    Slot::Ordinal {
                        column,
                        alone,
                        count,
                    }
                }
            };
            column += match slot {
                Slot::OneHot { choices, .. } => choices,
                _ => 1,
            };
            slots.push(slot);
        }
        Encoder {
            slots,
            width: column,
        }
    }

    /// Number of model inputs.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// The slots, one per parameter.
    pub(crate) fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Whether every parameter is continuous (so points are compared by exact bits only).
    pub(crate) fn columns_of_continuous(&self) -> Vec<usize> {
        self.slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Continuous { column } => Some(*column),
                _ => None,
            })
            .collect()
    }

    /// The encoding of `point` (a point of `space`), appended to `out`.
    pub(crate) fn encode_into(&self, space: &SearchSpace, point: &Point, out: &mut Vec<f64>) {
        let unit = space.to_unit(point);
        self.encode_unit_into(&unit, point, out);
    }

    /// The encoding of `point`.
    pub(crate) fn encode(&self, space: &SearchSpace, point: &Point) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.width);
        self.encode_into(space, point, &mut out);
        out
    }

    /// Encodes given the point's unit coordinates (as `to_unit` gives them).
    fn encode_unit_into(&self, unit: &[f64], point: &Point, out: &mut Vec<f64>) {
        for (i, slot) in self.slots.iter().enumerate() {
            match slot {
                Slot::OneHot { choices, .. } => {
                    let chosen = match point.get(i) {
                        Some(Value::Choice(c)) => *c,
                        _ => choice_of_unit(unit.get(i).copied().unwrap_or(0.5), *choices),
                    };
                    out.extend((0..*choices).map(|c| if c == chosen { 1.0 } else { 0.0 }));
                }
                _ => out.push(unit.get(i).copied().unwrap_or(0.5)),
            }
        }
    }

    /// The space's unit coordinates of an encoding: numeric inputs as they are, a one-hot block
    /// as the middle of its argmax choice's interval.
    pub(crate) fn unit_of(&self, features: &[f64]) -> Vec<f64> {
        self.slots
            .iter()
            .map(|slot| match *slot {
                Slot::Continuous { column } | Slot::Ordinal { column, .. } => {
                    features.get(column).copied().unwrap_or(0.5)
                }
                Slot::OneHot { column, choices } => {
                    let block = features.get(column..column + choices).unwrap_or(&[]);
                    (argmax(block) as f64 + 0.5) / choices.max(1) as f64
                }
            })
            .collect()
    }

    /// The point an encoding stands for: numeric inputs through `from_unit` (rounded to the grid,
    /// clamped), one-hot blocks by argmax.
    pub(crate) fn decode(&self, space: &SearchSpace, features: &[f64]) -> Point {
        space.from_unit(&self.unit_of(features))
    }

    /// The valid point nearest to unit vector `unit`, and its encoding.
    pub(crate) fn snap_unit(&self, space: &SearchSpace, unit: &[f64]) -> (Point, Vec<f64>) {
        let point = space.from_unit(unit);
        let features = self.encode(space, &point);
        (point, features)
    }

    /// The valid point an encoding rounds to, and that point's exact encoding: the acquisition
    /// is always evaluated at the latter.
    pub(crate) fn snap(&self, space: &SearchSpace, features: &[f64]) -> (Point, Vec<f64>) {
        self.snap_unit(space, &self.unit_of(features))
    }
}

/// The index of the largest value (the first of ties); 0 for an empty or all-NaN block.
fn argmax(block: &[f64]) -> usize {
    let mut best = 0;
    let mut best_value = f64::NEG_INFINITY;
    for (i, &v) in block.iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best
}

/// The choice a unit coordinate falls in, as `from_unit` maps it.
fn choice_of_unit(u: f64, choices: usize) -> usize {
    let u = if u.is_nan() { 0.5 } else { u.clamp(0.0, 1.0) };
    ((u * choices as f64) as usize).min(choices.saturating_sub(1))
}

/// The unit coordinate of value number `index` of a one-parameter space.
pub(crate) fn unit_of_index(alone: &SearchSpace, index: u128) -> Option<f64> {
    let point = alone.point_at(index)?;
    alone.to_unit(&point).first().copied()
}

/// The index of the value with unit coordinate `u` in a one-parameter space.
pub(crate) fn index_of_unit(alone: &SearchSpace, u: f64) -> Option<u128> {
    alone.index_of(&alone.from_unit(&[u]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Distribution;
    use crate::test_support::*;

    fn mixed() -> SearchSpace {
        space(vec![
            ("lr", uniform_double(0.0, 2.0)),
            ("opt", choices(&["adam", "sgd", "rmsprop"])),
            ("layers", int_range(1, 5)),
            (
                "drop",
                Domain::Discrete {
                    values: vec![0.1, 0.2, 0.5],
                    labels: vec!["0.1".into(), "0.2".into(), "0.5".into()],
                },
            ),
            (
                "wd",
                Domain::Double {
                    min: 1e-5,
                    max: 1e-1,
                    step: None,
                    distribution: Distribution::LogUniform,
                },
            ),
        ])
    }

    #[test]
    fn widths_and_one_hot_blocks() {
        let space = mixed();
        let encoder = Encoder::new(&space);
        assert_eq!(encoder.width(), 1 + 3 + 1 + 1 + 1);
        let point = vec![
            Value::Double(0.5),
            Value::Choice(2),
            Value::Int(3),
            Value::Choice(1),
            Value::Double(1e-3),
        ];
        let f = encoder.encode(&space, &point);
        assert_eq!(&f[1..4], &[0.0, 0.0, 1.0]);
        assert!((f[0] - 0.25).abs() < 1e-15);
        assert!((f[6] - 0.5).abs() < 1e-12, "log-uniform midpoint: {}", f[6]);
        assert_eq!(encoder.columns_of_continuous(), vec![0, 6]);
    }

    #[test]
    fn encodings_round_trip() {
        let space = mixed();
        let encoder = Encoder::new(&space);
        let count = 200;
        for i in 0..count {
            let unit: Vec<f64> = (0..space.dims())
                .map(|d| ((i * (d + 3) * 37 + d * 11) % count) as f64 / count as f64)
                .collect();
            let point = space.from_unit(&unit);
            let f = encoder.encode(&space, &point);
            assert_eq!(f.len(), encoder.width());
            let back = encoder.decode(&space, &f);
            assert_eq!(
                space.point_key(&back),
                space.point_key(&point),
                "{point:?} {back:?}"
            );
            // A perturbed one-hot block still decodes to its argmax.
            let mut soft = f.clone();
            for v in &mut soft[1..4] {
                *v = 0.3 + 0.4 * *v;
            }
            assert_eq!(encoder.decode(&space, &soft), back);
            let (snapped, g) = encoder.snap(&space, &soft);
            assert_eq!(snapped, back);
            assert_eq!(g, f);
        }
    }

    #[test]
    fn ordinal_values_are_enumerable() {
        let space = mixed();
        let encoder = Encoder::new(&space);
        let Slot::Ordinal { alone, count, .. } = &encoder.slots()[2] else {
            panic!("layers is ordinal");
        };
        assert_eq!(*count, 5);
        for index in 0..5 {
            let u = unit_of_index(alone, index).unwrap();
            assert_eq!(index_of_unit(alone, u), Some(index));
        }
        assert_eq!(unit_of_index(alone, 5), None);
    }
}
