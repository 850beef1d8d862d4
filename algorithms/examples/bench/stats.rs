//! Quantiles and the number formats of the tables.

/// The `q`-quantile of `values` (`0 ≤ q ≤ 1`) by linear interpolation between order statistics
/// (Hyndman and Fan's type 7, numpy's default), or `None` for no values. With 5 values the 0.99
/// quantile lies 96% of the way from the 4th to the 5th (the largest).
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let fraction = position - below as f64;
    Some(sorted[below] + fraction * (sorted[above] - sorted[below]))
}

/// The median and quartiles of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quartiles {
    /// The 0.25 quantile.
    pub q1: f64,
    /// The median.
    pub median: f64,
    /// The 0.75 quantile.
    pub q3: f64,
}

impl Quartiles {
    /// The quartiles of `values`, or `None` for no values.
    pub fn of(values: &[f64]) -> Option<Quartiles> {
        Some(Quartiles {
            q1: quantile(values, 0.25)?,
            median: quantile(values, 0.5)?,
            q3: quantile(values, 0.75)?,
        })
    }
}

/// A value with 3 significant digits: plain between 0.01 and 10 000, scientific outside.
pub fn format_value(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 {
        "0".to_owned()
    } else if !(0.01..10_000.0).contains(&magnitude) {
        format!("{value:.2e}")
    } else if magnitude < 0.1 {
        format!("{value:.4}")
    } else if magnitude < 1.0 {
        format!("{value:.3}")
    } else if magnitude < 10.0 {
        format!("{value:.2}")
    } else if magnitude < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// A duration in milliseconds with about 3 significant digits.
pub fn format_ms(ms: f64) -> String {
    if ms < 0.01 {
        format!("{ms:.4}")
    } else if ms < 1.0 {
        format!("{ms:.3}")
    } else if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// A ratio such as `2.5×`.
pub fn format_ratio(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{}×", format_value(ratio))
    } else {
        "∞×".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let values = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(quantile(&values, 0.5), Some(3.0));
        assert_eq!(quantile(&values, 0.25), Some(2.0));
        assert_eq!(quantile(&values, 0.0), Some(1.0));
        assert_eq!(quantile(&values, 1.0), Some(5.0));
        // numpy.quantile([1, 2, 3, 4, 5], 0.99) == 4.96
        assert!((quantile(&values, 0.99).unwrap() - 4.96).abs() < 1e-12);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), Some(1.5));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn values_keep_three_significant_digits() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(3.6e-5), "3.60e-5");
        assert_eq!(format_value(0.0035), "3.50e-3");
        assert_eq!(format_value(0.0123), "0.0123");
        assert_eq!(format_value(0.397), "0.397");
        assert_eq!(format_value(4.08), "4.08");
        assert_eq!(format_value(14.04), "14.0");
        assert_eq!(format_value(258.4), "258");
        assert_eq!(format_value(12345.0), "1.23e4");
        assert_eq!(format_ms(0.0123), "0.012");
        assert_eq!(format_ms(561.2), "561");
        assert_eq!(format_ratio(2.5), "2.50×");
    }
}
