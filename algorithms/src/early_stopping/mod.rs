//! Early-stopping rules: pure decisions about one running trial, given every trial's curve.
//!
//! A *curve* is what a trial has reported for the objective so far: `(step, loss)` pairs, **lower is
//! better** (the caller negates a maximised objective, as for the engines). A rule looks at the
//! curve of the trial being decided and at the curves of the other trials of the experiment
//! (finished and running) and answers [`Decision::Continue`] or [`Decision::Stop`], with a reason
//! written for the user (`sextant describe trial` shows it).
//!
//! The rules never keep state between calls: everything they need (has this trial just reached a
//! rung? is this step the first of an interval?) is read from the curves themselves, so a
//! controller that restarts decides exactly as before.
//!
//! # Input hygiene
//!
//! Points whose loss is NaN are ignored (a diverged run reports `nan`; it neither counts as a
//! value nor as the trial having reached a step). `±inf` is kept: it orders correctly. Curves are
//! sorted by step (stably) before use, so callers need not trust their input order. No input
//! makes a rule panic; an unvalidated setting (say `interval = 0`) is read as the nearest valid one.
//!
//! # The rules
//!
//! * [`MedianStop`] — Katib's `medianstop` (`pkg/earlystopping/v1beta1/medianstop/service.py`),
//!   with the median of Golovin et al. 2017 (Google Vizier, §3.2.2) rather than Katib's. See
//!   `median.rs` for what Katib does and where Sextant differs.
//! * [`PercentileStop`] — the same test at any percentile, evaluated every `interval` steps
//!   (Optuna's `PercentilePruner`); `percentile = 50, interval = 1` decides exactly as
//!   [`MedianStop`].
//! * [`AshaStop`] — asynchronous successive halving as a stopping rule (Li et al. 2020, "A System
//!   for Massively Parallel Hyperparameter Tuning"; Optuna's `SuccessiveHalvingPruner`).
//!
//! [`replay`] runs a rule over recorded curves on a virtual clock, for benchmarks.

mod asha;
mod median;
mod replay;

pub use asha::{AshaStop, DEFAULT_MAX_RESOURCE, DEFAULT_MIN_RESOURCE, DEFAULT_REDUCTION_FACTOR};
pub use median::{
    DEFAULT_INTERVAL, DEFAULT_MIN_TRIALS_REQUIRED, DEFAULT_START_STEP, MedianStop, PercentileStop,
};
pub use replay::{ReplayOutcome, TimedPoint, replay};

/// One reported point: `(step, loss)`, lower is better.
pub type CurvePoint = (i64, f64);

/// What a rule answers for one trial.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Let the trial run on.
    Continue,
    /// Stop the trial now.
    Stop {
        /// The rule's name (`medianstop`, `percentile`, `asha`).
        rule: &'static str,
        /// The step at which the decision was taken (the trial's latest step, or the rung's step
        /// for ASHA).
        step: i64,
        /// The value the trial had to match or beat (the median, the percentile, the rung's cutoff).
        threshold: f64,
        /// The trial's own value that was compared (its best loss so far).
        value: f64,
        /// A full sentence for users: what was compared with what, and over how many trials.
        reason: String,
    },
}

impl Decision {
    /// Whether the decision is to stop.
    pub fn is_stop(&self) -> bool {
        matches!(self, Decision::Stop { .. })
    }

    /// The step of a stop decision, `None` for [`Decision::Continue`].
    pub fn stop_step(&self) -> Option<i64> {
        match self {
            Decision::Stop { step, .. } => Some(*step),
            Decision::Continue => None,
        }
    }
}

/// A rule setting out of its accepted range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("early stopping setting {setting} = {value} is not accepted: {accepted}")]
pub struct InvalidSetting {
    /// The setting's name as users write it (`min_trials_required`, `start_step`, ...).
    pub setting: &'static str,
    /// The value given.
    pub value: String,
    /// What would be accepted.
    pub accepted: String,
}

/// An early-stopping rule.
pub trait StoppingRule {
    /// The rule's name as users write it (`medianstop`, `percentile`, `asha`).
    fn name(&self) -> &'static str;

    /// Decides for the trial whose curve is `trial`, at its latest step, given the curves of the
    /// other trials (finished and running; the trial itself must not be among them).
    fn decide(&self, trial: &[CurvePoint], others: &[&[CurvePoint]]) -> Decision;
}

/// Any of Sextant's rules, for callers that pick one from a spec.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// [`MedianStop`].
    Median(MedianStop),
    /// [`PercentileStop`].
    Percentile(PercentileStop),
    /// [`AshaStop`].
    Asha(AshaStop),
}

impl Rule {
    /// Checks the rule's settings.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        match self {
            Rule::Median(rule) => rule.validate(),
            Rule::Percentile(rule) => rule.validate(),
            Rule::Asha(rule) => rule.validate(),
        }
    }
}

impl StoppingRule for Rule {
    fn name(&self) -> &'static str {
        match self {
            Rule::Median(rule) => rule.name(),
            Rule::Percentile(rule) => rule.name(),
            Rule::Asha(rule) => rule.name(),
        }
    }

    fn decide(&self, trial: &[CurvePoint], others: &[&[CurvePoint]]) -> Decision {
        match self {
            Rule::Median(rule) => rule.decide(trial, others),
            Rule::Percentile(rule) => rule.decide(trial, others),
            Rule::Asha(rule) => rule.decide(trial, others),
        }
    }
}

/// The decision at the latest point of `trial` (same as `rule.decide`; here for symmetry with
/// [`first_stop`]).
pub fn decide_latest(
    rule: &dyn StoppingRule,
    trial: &[CurvePoint],
    others: &[&[CurvePoint]],
) -> Decision {
    rule.decide(trial, others)
}

/// Walks `trial`'s points in step order as if they arrived one by one against fixed `others`, and
/// returns the first stop decision, if any: where the trial would have been stopped had the other
/// trials looked like this throughout.
pub fn first_stop(
    rule: &dyn StoppingRule,
    trial: &[CurvePoint],
    others: &[&[CurvePoint]],
) -> Option<Decision> {
    let trial = clean(trial);
    (1..=trial.len())
        .map(|end| rule.decide(&trial[..end], others))
        .find(Decision::is_stop)
}

/// The curve without NaN losses, sorted by step (stable, so equal steps keep their order).
pub(crate) fn clean(curve: &[CurvePoint]) -> Vec<CurvePoint> {
    let mut points: Vec<CurvePoint> = curve
        .iter()
        .copied()
        .filter(|(_, loss)| !loss.is_nan())
        .collect();
    points.sort_by_key(|&(step, _)| step);
    points
}

/// The lowest loss among `points` with step `<= step`; `None` when there is none.
pub(crate) fn best_up_to(points: &[CurvePoint], step: i64) -> Option<f64> {
    points
        .iter()
        .take_while(|(s, _)| *s <= step)
        .map(|&(_, loss)| loss)
        .reduce(f64::min)
}

/// The largest step strictly below the latest one: the trial's previous report.
pub(crate) fn previous_step(points: &[CurvePoint]) -> Option<i64> {
    let latest = points.last()?.0;
    points.iter().rev().map(|&(s, _)| s).find(|&s| s < latest)
}

/// Significant digits of numbers in reasons: enough to tell values apart, short enough to read.
const REASON_SIGNIFICANT_DIGITS: usize = 6;

/// A number for a reason: at most six significant digits, no trailing zeros (`0.41`, `1.5e-7`).
pub(crate) fn show(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let rounded: f64 = format!("{:.*e}", REASON_SIGNIFICANT_DIGITS - 1, x)
        .parse()
        .unwrap_or(x);
    let magnitude = rounded.abs();
    if rounded == 0.0 || (1e-4..1e15).contains(&magnitude) {
        format!("{}", rounded + 0.0)
    } else {
        format!("{rounded:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_are_cleaned_and_sorted() {
        let curve = [(3, 0.5), (1, f64::NAN), (2, 0.7), (1, 0.9), (2, 0.6)];
        assert_eq!(clean(&curve), [(1, 0.9), (2, 0.7), (2, 0.6), (3, 0.5)]);
        let points = clean(&curve);
        assert_eq!(best_up_to(&points, 2), Some(0.6));
        assert_eq!(best_up_to(&points, 0), None);
        assert_eq!(previous_step(&points), Some(2));
        assert_eq!(previous_step(&points[..1]), None);
        assert_eq!(previous_step(&[]), None);
    }

    #[test]
    fn numbers_in_reasons_are_short() {
        assert_eq!(show(0.41), "0.41");
        assert_eq!(show(0.1 + 0.2), "0.3");
        assert_eq!(show(2.0), "2");
        assert_eq!(show(-0.0), "0");
        assert_eq!(show(1.234_567_89), "1.23457");
        assert_eq!(show(1.5e-7), "1.5e-7");
        assert_eq!(show(3e20), "3e20");
        assert_eq!(show(f64::INFINITY), "inf");
    }

    #[test]
    fn no_rule_panics_on_extreme_input() {
        let extreme: Vec<CurvePoint> = vec![
            (i64::MIN, f64::NEG_INFINITY),
            (-1, f64::NAN),
            (0, f64::INFINITY),
            (3, -0.0),
            (i64::MAX, f64::MAX),
        ];
        let curves: Vec<Vec<CurvePoint>> = (0..extreme.len())
            .flat_map(|end| [extreme[..end].to_vec(), extreme[end..].to_vec()])
            .collect();
        let others: Vec<&[CurvePoint]> = curves.iter().map(Vec::as_slice).collect();
        let rules = [
            Rule::Median(MedianStop::default()),
            Rule::Median(MedianStop::new(1, 1).unwrap()),
            Rule::Percentile(PercentileStop::new(0.0, 1, 1, 1).unwrap()),
            Rule::Percentile(PercentileStop::new(100.0, 1, 1, 7).unwrap()),
            Rule::Asha(AshaStop::default()),
            Rule::Asha(AshaStop::new(1, 2, i64::MAX).unwrap()),
        ];
        for rule in &rules {
            for trial in &curves {
                let _ = rule.decide(trial, &others);
                let _ = first_stop(rule, trial, &others);
            }
        }
    }

    #[test]
    fn first_stop_walks_the_curve() {
        let rule = MedianStop::default();
        let others: Vec<Vec<CurvePoint>> = (0..3)
            .map(|_| (1..=8).map(|s| (s, 0.5)).collect())
            .collect();
        let others: Vec<&[CurvePoint]> = others.iter().map(Vec::as_slice).collect();
        // Good until step 5, then the best so far is still 0.4 < 0.5: never stopped.
        let good: Vec<CurvePoint> = (1..=8).map(|s| (s, 0.4)).collect();
        assert_eq!(first_stop(&rule, &good, &others), None);
        // Worse than the median from the start: stopped at start_step, not before.
        let bad: Vec<CurvePoint> = (1..=8).map(|s| (s, 0.6)).collect();
        let stop = first_stop(&rule, &bad, &others).unwrap();
        assert_eq!(stop.stop_step(), Some(4));
        assert_eq!(decide_latest(&rule, &bad[..3], &others), Decision::Continue);
        let as_enum = Rule::Median(rule.clone());
        assert_eq!(as_enum.name(), "medianstop");
        assert!(as_enum.validate().is_ok());
        assert_eq!(as_enum.decide(&bad, &others), rule.decide(&bad, &others));
    }
}
