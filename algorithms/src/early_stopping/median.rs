//! Median and percentile stopping: stop a trial whose best loss so far is worse than what the
//! other trials had typically reached by the same step.
//!
//! # What Katib does (`pkg/earlystopping/v1beta1/medianstop/service.py`)
//!
//! Settings `min_trials_required` (default 3, validated `> 0`) and `start_step` (default 4,
//! validated `>= 1`). For every **succeeded** trial Katib averages the first `start_step` reported
//! values of the objective; once at least `min_trials_required` trials have such an average it
//! takes the **mean** of those averages (the code says "median" but computes a mean) and sends
//! the metrics collector the rule "objective worse than that value, from report number
//! `start_step` on". The collector then compares each newly reported value (not the best so far)
//! with that single number.
//!
//! # What Sextant does
//!
//! The rule Katib names, as Golovin et al. 2017 (Vizier) define it: at the trial's latest step
//! `s >= start_step`, take every *other* trial (finished or running) that has reported at step `s`
//! or later, and compute its **running average**: the mean of its values at steps `<= s`. When at
//! least `min_trials_required` such trials exist, stop the trial if its **best** loss so far is
//! strictly worse (greater) than the **median** of those running averages. Ties continue.
//! Differences from Katib, on purpose: a true median; running trials count as soon as they have
//! reached step `s` (Katib waits for trials to succeed); averages at the same step `s` rather than
//! over the first `start_step` reports; the trial's best value rather than its latest; `start_step`
//! is a step number (with steps `1, 2, 3, ...` it is Katib's report count).
//!
//! [`PercentileStop`] replaces the median by the `percentile`-th percentile (linear interpolation
//! between closest ranks, NumPy's default, so percentile 50 *is* the median) and evaluates once
//! per window of `interval` steps from `start_step` (Optuna's `PercentilePruner`: with steps
//! `1, 2, 3, ...` that is every step `s` with `(s - start_step) % interval == 0`; with gaps, the
//! first report in each window). Lower percentiles stop more trials: percentile 25 keeps only
//! trials that are at least as good as the best quarter of the others.

use super::show;
use super::{CurvePoint, Decision, InvalidSetting, StoppingRule, best_up_to, clean, previous_step};

/// Katib's default `min_trials_required`.
pub const DEFAULT_MIN_TRIALS_REQUIRED: usize = 3;
/// Katib's default `start_step`.
pub const DEFAULT_START_STEP: i64 = 4;
/// The median, as a percentile.
const MEDIAN_PERCENTILE: f64 = 50.0;
/// Optuna's default `interval_steps`: evaluate at every step.
pub const DEFAULT_INTERVAL: i64 = 1;

/// Katib's `medianstop`, with Vizier's median (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedianStop {
    /// How many other trials must have reached the step before any trial is stopped (`>= 1`).
    pub min_trials_required: usize,
    /// The first step at which a trial may be stopped (`>= 1`).
    pub start_step: i64,
}

impl Default for MedianStop {
    fn default() -> Self {
        MedianStop {
            min_trials_required: DEFAULT_MIN_TRIALS_REQUIRED,
            start_step: DEFAULT_START_STEP,
        }
    }
}

impl MedianStop {
    /// A validated rule.
    pub fn new(min_trials_required: usize, start_step: i64) -> Result<Self, InvalidSetting> {
        let rule = MedianStop {
            min_trials_required,
            start_step,
        };
        rule.validate()?;
        Ok(rule)
    }

    /// Checks the settings against Katib's ranges.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        check_min_trials(self.min_trials_required)?;
        check_start_step(self.start_step)
    }
}

impl StoppingRule for MedianStop {
    fn name(&self) -> &'static str {
        "medianstop"
    }

    fn decide(&self, trial: &[CurvePoint], others: &[&[CurvePoint]]) -> Decision {
        percentile_decision(
            &Setup {
                rule: self.name(),
                percentile: MEDIAN_PERCENTILE,
                min_trials_required: self.min_trials_required,
                start_step: self.start_step,
                interval: DEFAULT_INTERVAL,
            },
            trial,
            others,
        )
    }
}

/// The median test at any percentile, every `interval` steps (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct PercentileStop {
    /// The percentile of the other trials' running averages to beat, in `[0, 100]` (50: median).
    pub percentile: f64,
    /// How many other trials must have reached the step before any trial is stopped (`>= 1`).
    pub min_trials_required: usize,
    /// The first step at which a trial may be stopped (`>= 1`).
    pub start_step: i64,
    /// Evaluate once per this many steps from `start_step` (`>= 1`).
    pub interval: i64,
}

impl Default for PercentileStop {
    fn default() -> Self {
        PercentileStop {
            percentile: MEDIAN_PERCENTILE,
            min_trials_required: DEFAULT_MIN_TRIALS_REQUIRED,
            start_step: DEFAULT_START_STEP,
            interval: DEFAULT_INTERVAL,
        }
    }
}

impl PercentileStop {
    /// A validated rule.
    pub fn new(
        percentile: f64,
        min_trials_required: usize,
        start_step: i64,
        interval: i64,
    ) -> Result<Self, InvalidSetting> {
        let rule = PercentileStop {
            percentile,
            min_trials_required,
            start_step,
            interval,
        };
        rule.validate()?;
        Ok(rule)
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(0.0..=100.0).contains(&self.percentile) {
            return Err(InvalidSetting {
                setting: "percentile",
                value: self.percentile.to_string(),
                accepted: "a number from 0 to 100 (50 is the median)".to_owned(),
            });
        }
        check_min_trials(self.min_trials_required)?;
        check_start_step(self.start_step)?;
        if self.interval < 1 {
            return Err(InvalidSetting {
                setting: "interval",
                value: self.interval.to_string(),
                accepted: "an integer >= 1 (1 evaluates at every step)".to_owned(),
            });
        }
        Ok(())
    }
}

impl StoppingRule for PercentileStop {
    fn name(&self) -> &'static str {
        "percentile"
    }

    fn decide(&self, trial: &[CurvePoint], others: &[&[CurvePoint]]) -> Decision {
        percentile_decision(
            &Setup {
                rule: self.name(),
                percentile: self.percentile,
                min_trials_required: self.min_trials_required,
                start_step: self.start_step,
                interval: self.interval,
            },
            trial,
            others,
        )
    }
}

fn check_min_trials(min_trials_required: usize) -> Result<(), InvalidSetting> {
    if min_trials_required < 1 {
        return Err(InvalidSetting {
            setting: "min_trials_required",
            value: min_trials_required.to_string(),
            accepted: "an integer >= 1".to_owned(),
        });
    }
    Ok(())
}

fn check_start_step(start_step: i64) -> Result<(), InvalidSetting> {
    if start_step < 1 {
        return Err(InvalidSetting {
            setting: "start_step",
            value: start_step.to_string(),
            accepted: "an integer >= 1".to_owned(),
        });
    }
    Ok(())
}

/// The settings both rules share, read leniently (out-of-range values taken as the nearest valid).
struct Setup {
    rule: &'static str,
    percentile: f64,
    min_trials_required: usize,
    start_step: i64,
    interval: i64,
}

fn percentile_decision(setup: &Setup, trial: &[CurvePoint], others: &[&[CurvePoint]]) -> Decision {
    let points = clean(trial);
    let Some(&(step, _)) = points.last() else {
        return Decision::Continue;
    };
    let start_step = setup.start_step.max(1);
    if step < start_step || !first_in_window(&points, start_step, setup.interval.max(1)) {
        return Decision::Continue;
    }
    let Some(best) = best_up_to(&points, step) else {
        return Decision::Continue;
    };
    let averages: Vec<f64> = others
        .iter()
        .filter_map(|curve| running_average(&clean(curve), step))
        .collect();
    if averages.len() < setup.min_trials_required.max(1) {
        return Decision::Continue;
    }
    let percentile = if setup.percentile.is_nan() {
        MEDIAN_PERCENTILE
    } else {
        setup.percentile.clamp(0.0, 100.0)
    };
    let Some(threshold) = percentile_of(averages.clone(), percentile) else {
        return Decision::Continue;
    };
    if best > threshold {
        let what = if setup.rule == "medianstop" {
            format!("the median {}", show(threshold))
        } else {
            format!("percentile {} ({})", show(percentile), show(threshold))
        };
        Decision::Stop {
            rule: setup.rule,
            step,
            threshold,
            value: best,
            reason: format!(
                "{}: best loss {} at step {step} is worse than {what} of the running averages of \
                 {} other trials at step {step}",
                setup.rule,
                show(best),
                averages.len()
            ),
        }
    } else {
        Decision::Continue
    }
}

/// Whether the latest step is the first report in its window of `interval` steps counted from
/// `start_step` (or the first report at or after `start_step`).
fn first_in_window(points: &[CurvePoint], start_step: i64, interval: i64) -> bool {
    let Some(&(step, _)) = points.last() else {
        return false;
    };
    let window = |s: i64| (s - start_step).div_euclid(interval);
    match previous_step(points) {
        Some(previous) if previous >= start_step => window(previous) != window(step),
        _ => true,
    }
}

/// The mean of the values at steps `<= step` of a curve that has reached `step`; `None` when it
/// has not reached it, has nothing at or before it, or the mean is NaN (`+inf` and `-inf` mixed).
fn running_average(points: &[CurvePoint], step: i64) -> Option<f64> {
    if points.last()?.0 < step {
        return None;
    }
    let values: Vec<f64> = points
        .iter()
        .take_while(|(s, _)| *s <= step)
        .map(|&(_, loss)| loss)
        .collect();
    if values.is_empty() {
        return None;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (!mean.is_nan()).then_some(mean)
}

/// The `p`-th percentile (`0..=100`) by linear interpolation between closest ranks (NumPy's
/// `linear`): rank `(n - 1) * p / 100`. `None` for no values or a NaN result.
pub(crate) fn percentile_of(mut values: Vec<f64>, p: f64) -> Option<f64> {
    values.retain(|v| !v.is_nan());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (values.len() - 1) as f64 * (p / 100.0);
    let below = rank.floor();
    let fraction = rank - below;
    let lo = values.get(below as usize).copied()?;
    let hi = values.get(rank.ceil() as usize).copied().unwrap_or(lo);
    let value = if fraction == 0.0 || lo == hi {
        lo
    } else {
        lo + fraction * (hi - lo)
    };
    (!value.is_nan()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeding::{stream_rng, unit_f64};

    fn flat(value: f64, last: i64) -> Vec<CurvePoint> {
        (1..=last).map(|s| (s, value)).collect()
    }

    fn segment(value: f64, first: i64, last: i64) -> Vec<CurvePoint> {
        (first..=last).map(|s| (s, value)).collect()
    }

    fn refs(curves: &[Vec<CurvePoint>]) -> Vec<&[CurvePoint]> {
        curves.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile_of(v.clone(), 50.0), Some(2.5));
        assert_eq!(percentile_of(v.clone(), 0.0), Some(1.0));
        assert_eq!(percentile_of(v.clone(), 100.0), Some(4.0));
        assert_eq!(percentile_of(v, 25.0), Some(1.75));
        assert_eq!(percentile_of(vec![5.0, 1.0, 3.0], 50.0), Some(3.0));
        assert_eq!(percentile_of(vec![], 50.0), None);
        assert_eq!(
            percentile_of(vec![1.0, f64::INFINITY], 50.0),
            Some(f64::INFINITY)
        );
        assert_eq!(
            percentile_of(vec![f64::NEG_INFINITY, f64::INFINITY], 50.0),
            None
        );
    }

    #[test]
    fn median_stops_only_strictly_worse_trials() {
        let rule = MedianStop::default();
        // Others' running averages at step 6: 0.3, (3 * 0.35 + 3 * 0.31) / 6 = 0.33, 0.5.
        let others = vec![
            flat(0.3, 8),
            [segment(0.35, 1, 3), segment(0.31, 4, 6)].concat(),
            flat(0.5, 6),
        ];
        let others = refs(&others);
        let worse = [flat(0.5, 5), vec![(6, 0.41)]].concat();
        let Decision::Stop {
            rule: name,
            step,
            threshold,
            value,
            reason,
        } = rule.decide(&worse, &others)
        else {
            panic!("should stop");
        };
        assert_eq!((name, step, value), ("medianstop", 6, 0.41));
        assert!((threshold - 0.33).abs() < 1e-12, "{threshold}");
        assert_eq!(
            reason,
            "medianstop: best loss 0.41 at step 6 is worse than the median 0.33 of the running \
             averages of 3 other trials at step 6"
        );
        // Best so far, not latest: an earlier good value keeps the trial.
        let recovered = [segment(0.2, 1, 2), segment(0.9, 3, 6)].concat();
        assert_eq!(rule.decide(&recovered, &others), Decision::Continue);
        // Ties continue; a hair better continues; a hair worse stops.
        let at = |v: f64| [flat(0.9, 5), vec![(6, v)]].concat();
        let median = threshold;
        assert_eq!(rule.decide(&at(median), &others), Decision::Continue);
        assert_eq!(rule.decide(&at(median - 1e-9), &others), Decision::Continue);
        assert!(rule.decide(&at(median + 1e-9), &others).is_stop());
    }

    #[test]
    fn median_waits_for_enough_trials_and_for_start_step() {
        let rule = MedianStop::default();
        let bad = flat(1.0, 6);
        // Two others at step 6, a third only at step 5: too few.
        let few = vec![flat(0.1, 6), flat(0.1, 6), flat(0.1, 5)];
        assert_eq!(rule.decide(&bad, &refs(&few)), Decision::Continue);
        // The third reaches step 6 (or later): enough.
        let enough = vec![flat(0.1, 6), flat(0.1, 9), flat(0.1, 6)];
        assert!(rule.decide(&bad, &refs(&enough)).is_stop());
        // A curve that starts after the step has no running average there.
        let late = vec![flat(0.1, 6), flat(0.1, 6), vec![(7, 0.1)]];
        assert_eq!(rule.decide(&bad, &refs(&late)), Decision::Continue);
        // Before start_step nothing stops; at start_step it does.
        assert_eq!(
            rule.decide(&flat(1.0, 3), &refs(&enough)),
            Decision::Continue
        );
        assert!(rule.decide(&flat(1.0, 4), &refs(&enough)).is_stop());
        let strict = MedianStop::new(4, 2).unwrap();
        assert_eq!(strict.decide(&bad, &refs(&enough)), Decision::Continue);
        let one = MedianStop::new(1, 1).unwrap();
        assert!(one.decide(&flat(1.0, 1), &refs(&enough[..1])).is_stop());
    }

    #[test]
    fn running_averages_use_values_up_to_the_step() {
        // Other trials improve late; at step 4 their averages are still high.
        let others = vec![
            [segment(1.0, 1, 4), segment(0.0, 5, 10)].concat(),
            [segment(1.0, 1, 4), segment(0.0, 5, 10)].concat(),
            [segment(1.0, 1, 4), segment(0.0, 5, 10)].concat(),
        ];
        let rule = MedianStop::default();
        assert_eq!(
            rule.decide(&flat(0.9, 4), &refs(&others)),
            Decision::Continue
        );
        // At step 10 the averages are 0.4.
        assert!(rule.decide(&flat(0.5, 10), &refs(&others)).is_stop());
        assert_eq!(
            rule.decide(&flat(0.4, 10), &refs(&others)),
            Decision::Continue
        );
    }

    #[test]
    fn nan_points_and_empty_curves_are_ignored() {
        let rule = MedianStop::default();
        let others = vec![
            flat(0.1, 6),
            flat(0.1, 6),
            flat(0.1, 6),
            vec![],
            flat(f64::NAN, 9),
        ];
        let mut bad = flat(1.0, 6);
        bad.push((7, f64::NAN));
        // The NaN at step 7 is not a report: the decision is taken at step 6.
        assert_eq!(rule.decide(&bad, &refs(&others)).stop_step(), Some(6));
        assert_eq!(rule.decide(&[], &refs(&others)), Decision::Continue);
        assert_eq!(
            rule.decide(&[(5, f64::NAN)], &refs(&others)),
            Decision::Continue
        );
        assert_eq!(rule.decide(&bad, &[]), Decision::Continue);
        // Unvalidated settings never panic.
        let odd = MedianStop {
            min_trials_required: 0,
            start_step: i64::MIN,
        };
        assert!(odd.decide(&bad, &refs(&others)).is_stop());
        let odd = PercentileStop {
            percentile: f64::NAN,
            min_trials_required: 0,
            start_step: -5,
            interval: 0,
        };
        assert!(odd.decide(&bad, &refs(&others)).is_stop());
    }

    #[test]
    fn percentile_sets_how_strict_the_rule_is() {
        let others: Vec<Vec<CurvePoint>> = [0.1, 0.2, 0.3, 0.4, 0.5]
            .iter()
            .map(|&v| flat(v, 8))
            .collect();
        let others = refs(&others);
        let trial = flat(0.25, 4);
        let at = |p: f64| PercentileStop {
            percentile: p,
            ..PercentileStop::default()
        };
        // Percentile 25 is 0.2: 0.25 is worse. Percentile 50 is 0.3: 0.25 is better.
        let Decision::Stop { reason, .. } = at(25.0).decide(&trial, &others) else {
            panic!("should stop");
        };
        assert_eq!(
            reason,
            "percentile: best loss 0.25 at step 4 is worse than percentile 25 (0.2) of the \
             running averages of 5 other trials at step 4"
        );
        assert_eq!(at(50.0).decide(&trial, &others), Decision::Continue);
        // Percentile 0 keeps only the best; 100 stops only what is worse than every other.
        assert!(at(0.0).decide(&flat(0.11, 4), &others).is_stop());
        assert_eq!(at(0.0).decide(&flat(0.1, 4), &others), Decision::Continue);
        assert_eq!(at(100.0).decide(&flat(0.5, 4), &others), Decision::Continue);
        assert!(at(100.0).decide(&flat(0.51, 4), &others).is_stop());
    }

    #[test]
    fn percentile_evaluates_once_per_interval() {
        let others: Vec<Vec<CurvePoint>> = (0..3).map(|_| flat(0.1, 20)).collect();
        let others = refs(&others);
        let rule = PercentileStop {
            interval: 3,
            ..PercentileStop::default()
        };
        let bad = |last| flat(1.0, last);
        // Steps 4, 7, 10, ... are evaluated; 5, 6, 8 are not.
        let decided: Vec<i64> = (1..=11)
            .filter(|&s| rule.decide(&bad(s), &others).is_stop())
            .collect();
        assert_eq!(decided, [4, 7, 10]);
        // With gaps, the first report in a window is evaluated: 2, 5 (window 0), 8 (window 1).
        let gappy =
            |steps: &[i64]| -> Vec<CurvePoint> { steps.iter().map(|&s| (s, 1.0)).collect() };
        assert!(rule.decide(&gappy(&[2, 5]), &others).is_stop());
        assert!(!rule.decide(&gappy(&[2, 5, 6]), &others).is_stop());
        assert!(rule.decide(&gappy(&[2, 5, 6, 8]), &others).is_stop());
        // A repeated report at the same step is evaluated again (its best may have changed).
        let repeated = [bad(4), vec![(4, 1.0)]].concat();
        assert!(rule.decide(&repeated, &others).is_stop());
    }

    #[test]
    fn percentile_50_decides_as_median() {
        let mut rng = stream_rng(11, 0, 0);
        let mut checked = 0;
        for case in 0..300 {
            let trials = 2 + case % 7;
            let curves: Vec<Vec<CurvePoint>> = (0..trials)
                .map(|_| {
                    let len = 1 + (unit_f64(&mut rng) * 10.0) as i64;
                    (1..=len)
                        .map(|s| (s, (unit_f64(&mut rng) * 4.0).round() / 4.0))
                        .collect()
                })
                .collect();
            let min_trials = 1 + case % 4;
            let start = 1 + (case % 5) as i64;
            let median = MedianStop::new(min_trials, start).unwrap();
            let percentile = PercentileStop::new(50.0, min_trials, start, 1).unwrap();
            for (i, curve) in curves.iter().enumerate() {
                let others: Vec<&[CurvePoint]> = curves
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, c)| c.as_slice())
                    .collect();
                for end in 1..=curve.len() {
                    let a = median.decide(&curve[..end], &others);
                    let b = percentile.decide(&curve[..end], &others);
                    assert_eq!(a.stop_step(), b.stop_step());
                    if let (
                        Decision::Stop {
                            threshold: x,
                            value: v,
                            ..
                        },
                        Decision::Stop {
                            threshold: y,
                            value: w,
                            ..
                        },
                    ) = (&a, &b)
                    {
                        assert_eq!((x, v), (y, w));
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }

    #[test]
    fn settings_are_validated_with_their_names() {
        assert_eq!(MedianStop::default(), MedianStop::new(3, 4).unwrap());
        let e = MedianStop::new(0, 4).unwrap_err();
        assert_eq!(e.setting, "min_trials_required");
        assert_eq!(
            e.to_string(),
            "early stopping setting min_trials_required = 0 is not accepted: an integer >= 1"
        );
        assert_eq!(MedianStop::new(3, 0).unwrap_err().setting, "start_step");
        assert!(MedianStop::new(1, 1).is_ok());
        assert!(PercentileStop::new(0.0, 1, 1, 1).is_ok());
        assert!(PercentileStop::new(100.0, 1, 1, 1).is_ok());
        for bad in [-0.1, 100.1, f64::NAN] {
            let e = PercentileStop::new(bad, 3, 4, 1).unwrap_err();
            assert_eq!(e.setting, "percentile");
            assert!(e.accepted.contains("0 to 100"), "{e}");
        }
        assert_eq!(
            PercentileStop::new(50.0, 3, 4, 0).unwrap_err().setting,
            "interval"
        );
        assert_eq!(
            PercentileStop::new(50.0, 0, 4, 1).unwrap_err().setting,
            "min_trials_required"
        );
        assert_eq!(
            PercentileStop::new(50.0, 3, 0, 1).unwrap_err().setting,
            "start_step"
        );
        assert_eq!(
            PercentileStop::default(),
            PercentileStop::new(50.0, 3, 4, 1).unwrap()
        );
    }
}
