//! Asynchronous successive halving (ASHA) as a stopping rule.
//!
//! Li et al. 2020 ("A System for Massively Parallel Hyperparameter Tuning", MLSys) promote a
//! configuration from one rung to the next as soon as it is in the top `1/eta` of the rung, without
//! waiting for the rung to fill. Used as a stopping rule (as Optuna's `SuccessiveHalvingPruner` and
//! Ray Tune's `ASHAScheduler` do), every trial simply runs on while it passes each rung and stops
//! at the first rung it fails. Katib has no ASHA early-stopping rule; its `hyperband` suggestion
//! algorithm is the synchronous version (see `hyperband.rs`).
//!
//! # Rungs
//!
//! Rung `k` sits at step `min_resource * eta^k`, for every `k` with that step **below**
//! `max_resource`. A trial that reaches `max_resource` has used its whole budget: a decision there
//! would save nothing and would only mark a finished trial as stopped, so there is no rung at
//! `max_resource` itself (Ray Tune stops such trials as finished, not as pruned).
//!
//! # The decision
//!
//! A trial is judged at a rung once, when it first reaches it: its latest step is at or past the
//! rung's step and its previous report was below it. (A trial whose report jumps over several
//! rungs is judged at each of them in turn and stops at the first it fails.) Its *rung value* is
//! its best loss at steps `<= ` the rung's step (or, when its first report is already past the
//! rung, that first value). It competes with every trial that has reached the rung so far,
//! itself included — the others' rung values computed the same way, from any trial whose latest
//! step is at or past the rung. With `n` competitors it continues when it is among the best
//! `max(1, floor(n / eta))` (the rule of Optuna's `SuccessiveHalvingPruner`): so the first trial
//! at a rung always continues, and ties with the cutoff continue.

use super::{CurvePoint, Decision, InvalidSetting, StoppingRule, clean, previous_step, show};

/// The default smallest resource (step of the first rung), as in Optuna's `min_resource="auto"`
/// floor and Ray Tune's `grace_period`.
pub const DEFAULT_MIN_RESOURCE: i64 = 1;
/// The default reduction factor: Katib's Hyperband `eta` and Li et al.'s recommendation.
pub const DEFAULT_REDUCTION_FACTOR: u32 = 3;
/// The default maximum resource: the `R = 81` of Li et al.'s worked Hyperband example (rungs at
/// 1, 3, 9, 27 with `eta = 3`).
pub const DEFAULT_MAX_RESOURCE: i64 = 81;

/// ASHA rungs as a stopping rule (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AshaStop {
    /// The step of the first rung (`>= 1`).
    pub min_resource: i64,
    /// `eta`: each rung keeps the best `1/eta` of the trials that reach it (`>= 2`).
    pub reduction_factor: u32,
    /// The step at which a trial has used its whole budget (`> min_resource`).
    pub max_resource: i64,
}

impl Default for AshaStop {
    fn default() -> Self {
        AshaStop {
            min_resource: DEFAULT_MIN_RESOURCE,
            reduction_factor: DEFAULT_REDUCTION_FACTOR,
            max_resource: DEFAULT_MAX_RESOURCE,
        }
    }
}

impl AshaStop {
    /// A validated rule.
    pub fn new(
        min_resource: i64,
        reduction_factor: u32,
        max_resource: i64,
    ) -> Result<Self, InvalidSetting> {
        let rule = AshaStop {
            min_resource,
            reduction_factor,
            max_resource,
        };
        rule.validate()?;
        Ok(rule)
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.min_resource < 1 {
            return Err(InvalidSetting {
                setting: "min_resource",
                value: self.min_resource.to_string(),
                accepted: "an integer >= 1 (the step of the first rung)".to_owned(),
            });
        }
        if self.reduction_factor < 2 {
            return Err(InvalidSetting {
                setting: "reduction_factor",
                value: self.reduction_factor.to_string(),
                accepted: "an integer >= 2 (each rung keeps the best 1/reduction_factor)"
                    .to_owned(),
            });
        }
        if self.max_resource <= self.min_resource {
            return Err(InvalidSetting {
                setting: "max_resource",
                value: self.max_resource.to_string(),
                accepted: format!(
                    "an integer > min_resource ({}), so that there is at least one rung",
                    self.min_resource
                ),
            });
        }
        Ok(())
    }

    /// The rungs' steps: `min_resource * eta^k < max_resource`, ascending (empty for settings that
    /// leave no rung).
    pub fn rungs(&self) -> Vec<i64> {
        let eta = i64::from(self.reduction_factor.max(2));
        let mut rungs = Vec::new();
        let mut step = self.min_resource.max(1);
        while step < self.max_resource {
            rungs.push(step);
            match step.checked_mul(eta) {
                Some(next) => step = next,
                None => break,
            }
        }
        rungs
    }
}

impl StoppingRule for AshaStop {
    fn name(&self) -> &'static str {
        "asha"
    }

    fn decide(&self, trial: &[CurvePoint], others: &[&[CurvePoint]]) -> Decision {
        let points = clean(trial);
        let Some(&(latest, _)) = points.last() else {
            return Decision::Continue;
        };
        let previous = previous_step(&points);
        let eta = self.reduction_factor.max(2);
        let others: Vec<Vec<CurvePoint>> = others.iter().map(|c| clean(c)).collect();
        let newly_reached = self
            .rungs()
            .into_iter()
            .filter(|&rung| rung <= latest && previous.is_none_or(|p| p < rung));
        for rung in newly_reached {
            let Some(value) = rung_value(&points, rung) else {
                continue;
            };
            let mut competitors: Vec<f64> = others
                .iter()
                .filter_map(|curve| rung_value(curve, rung))
                .collect();
            competitors.push(value);
            competitors.sort_by(f64::total_cmp);
            let n = competitors.len();
            let keep = (n / eta as usize).max(1);
            let cutoff = competitors[keep - 1];
            if value > cutoff {
                let ordinal = |k: usize| match k {
                    1 => "best".to_owned(),
                    k => format!("best {k}"),
                };
                return Decision::Stop {
                    rule: self.name(),
                    step: rung,
                    threshold: cutoff,
                    value,
                    reason: format!(
                        "asha: best loss {} by the rung at step {rung} is worse than {}, the \
                         cutoff for the {} of the {n} trials that have reached that rung \
                         (reduction factor {eta})",
                        show(value),
                        show(cutoff),
                        ordinal(keep),
                    ),
                };
            }
        }
        Decision::Continue
    }
}

/// A curve's value at a rung: its best loss at steps `<= rung` once it has reached the rung, or its
/// first value at or past the rung when it reported nothing before; `None` before it reaches it.
fn rung_value(points: &[CurvePoint], rung: i64) -> Option<f64> {
    if points.last()?.0 < rung {
        return None;
    }
    super::best_up_to(points, rung).or_else(|| points.first().map(|&(_, loss)| loss))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(value: f64, last: i64) -> Vec<CurvePoint> {
        (1..=last).map(|s| (s, value)).collect()
    }

    fn refs(curves: &[Vec<CurvePoint>]) -> Vec<&[CurvePoint]> {
        curves.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn rungs_sit_at_powers_of_eta_below_the_budget() {
        assert_eq!(AshaStop::default().rungs(), [1, 3, 9, 27]);
        assert_eq!(AshaStop::new(2, 2, 20).unwrap().rungs(), [2, 4, 8, 16]);
        assert_eq!(AshaStop::new(1, 3, 82).unwrap().rungs(), [1, 3, 9, 27, 81]);
        assert_eq!(AshaStop::new(5, 4, 6).unwrap().rungs(), [5]);
        let huge = AshaStop::new(1, 1000, i64::MAX).unwrap();
        assert_eq!(huge.rungs().len(), 7);
        let odd = AshaStop {
            min_resource: -3,
            reduction_factor: 0,
            max_resource: 5,
        };
        assert_eq!(odd.rungs(), [1, 2, 4]);
    }

    #[test]
    fn the_first_trial_at_a_rung_always_continues() {
        let rule = AshaStop::default();
        assert_eq!(rule.decide(&flat(100.0, 1), &[]), Decision::Continue);
        // Others that have not reached step 3 do not compete at rung 3.
        let behind = vec![flat(0.1, 2), flat(0.1, 2)];
        assert_eq!(
            rule.decide(&flat(100.0, 3), &refs(&behind)),
            Decision::Continue
        );
    }

    #[test]
    fn keeps_the_top_third_of_the_trials_at_the_rung() {
        let rule = AshaStop::default();
        // Five others at rung 3 with values 0.1..0.5; with the trial, n = 6, keep 2: cutoff 0.2.
        let others: Vec<Vec<CurvePoint>> = [0.1, 0.2, 0.3, 0.4, 0.5]
            .iter()
            .map(|&v| flat(v, 5))
            .collect();
        let others = refs(&others);
        let at = |v: f64| [flat(9.0, 2), vec![(3, v)]].concat();
        assert_eq!(rule.decide(&at(0.15), &others), Decision::Continue);
        assert_eq!(rule.decide(&at(0.2), &others), Decision::Continue); // tie with the cutoff
        let Decision::Stop {
            rule: name,
            step,
            threshold,
            value,
            reason,
        } = rule.decide(&at(0.25), &others)
        else {
            panic!("should stop");
        };
        assert_eq!((name, step, threshold, value), ("asha", 3, 0.2, 0.25));
        assert_eq!(
            reason,
            "asha: best loss 0.25 by the rung at step 3 is worse than 0.2, the cutoff for the best \
             2 of the 6 trials that have reached that rung (reduction factor 3)"
        );
        // With two others (n = 3) only the best continues.
        assert!(rule.decide(&at(0.15), &others[..2]).is_stop());
        assert_eq!(rule.decide(&at(0.15), &others[1..3]), Decision::Continue);
        // With one other (n = 2) floor(2/3) = 0, so at least one continues: the better one.
        assert!(rule.decide(&at(0.3), &others[..1]).is_stop());
        assert_eq!(rule.decide(&at(0.1), &others[..1]), Decision::Continue);
    }

    #[test]
    fn judges_each_rung_once_when_first_reached() {
        let rule = AshaStop::default();
        let others: Vec<Vec<CurvePoint>> = [0.1, 0.1, 0.1].iter().map(|&v| flat(v, 9)).collect();
        let others = refs(&others);
        // Reaching rung 3 with a bad value stops it; at step 4 (no new rung) it is not judged.
        let bad = flat(1.0, 3);
        assert_eq!(rule.decide(&bad, &others).stop_step(), Some(3));
        assert_eq!(rule.decide(&flat(1.0, 4), &others), Decision::Continue);
        // The rung value is the best up to the rung step, not the latest value.
        let improving = [vec![(1, 0.05), (2, 1.0)], vec![(3, 1.0)]].concat();
        assert_eq!(rule.decide(&improving, &others), Decision::Continue);
        // A report that jumps from step 2 to 10 is judged at rung 3 and at rung 9 (its best up to 9
        // is the value at step 2).
        let jump = vec![(1, 0.05), (2, 1.0), (10, 0.0)];
        assert_eq!(rule.decide(&jump, &others), Decision::Continue);
        let jump_bad = vec![(1, 0.5), (2, 1.0), (10, 0.0)];
        assert_eq!(rule.decide(&jump_bad, &others).stop_step(), Some(3));
        // A first report past the rung counts with its own value.
        assert_eq!(rule.decide(&[(4, 0.01)], &others), Decision::Continue);
        assert_eq!(rule.decide(&[(4, 0.2)], &others).stop_step(), Some(1));
    }

    #[test]
    fn promotion_is_asynchronous() {
        // Trials arrive at rung 1 one at a time; each is compared with those that came before.
        let rule = AshaStop::default();
        let values = [0.5, 0.6, 0.4, 0.7, 0.3, 0.45];
        let mut arrived: Vec<Vec<CurvePoint>> = Vec::new();
        let mut continued = Vec::new();
        for &v in &values {
            let curve = vec![(1, v)];
            let decision = rule.decide(&curve, &refs(&arrived));
            continued.push(!decision.is_stop());
            arrived.push(curve);
        }
        // n = 1: keep 1 (0.5 best). n = 2: keep 1, 0.6 > 0.5 stops. n = 3: keep 1, 0.4 is best.
        // n = 4: keep 1, 0.7 stops. n = 5: keep 1, 0.3 is best. n = 6: keep 2 (0.3, 0.4): 0.45 stops.
        assert_eq!(continued, [true, false, true, false, true, false]);
    }

    #[test]
    fn ignores_nan_and_never_panics() {
        let rule = AshaStop::default();
        let others = vec![vec![(1, f64::NAN), (3, f64::NAN)], vec![], flat(0.1, 3)];
        assert_eq!(rule.decide(&[], &refs(&others)), Decision::Continue);
        assert_eq!(
            rule.decide(&[(1, f64::NAN)], &refs(&others)),
            Decision::Continue
        );
        assert!(rule.decide(&flat(1.0, 1), &refs(&others[2..])).is_stop());
        let odd = AshaStop {
            min_resource: 0,
            reduction_factor: 1,
            max_resource: i64::MIN,
        };
        assert_eq!(odd.rungs(), Vec::<i64>::new());
        assert_eq!(
            odd.decide(&flat(1.0, 5), &refs(&others)),
            Decision::Continue
        );
    }

    #[test]
    fn settings_are_validated_with_their_names() {
        assert_eq!(AshaStop::default(), AshaStop::new(1, 3, 81).unwrap());
        assert_eq!(AshaStop::new(0, 3, 81).unwrap_err().setting, "min_resource");
        let e = AshaStop::new(1, 1, 81).unwrap_err();
        assert_eq!(e.setting, "reduction_factor");
        assert!(e.to_string().contains(">= 2"), "{e}");
        assert!(AshaStop::new(1, 2, 81).is_ok());
        let e = AshaStop::new(5, 3, 5).unwrap_err();
        assert_eq!(e.setting, "max_resource");
        assert!(e.accepted.contains("> min_resource (5)"), "{e}");
        assert!(AshaStop::new(5, 3, 6).is_ok());
    }
}
