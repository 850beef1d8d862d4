//! Replaying recorded curves through a rule on a virtual clock.
//!
//! A benchmark has, for each trial, every point it reported when it ran to the end, each with the
//! time it was reported. [`replay`] merges all points in time order and feeds them one by one, as a
//! live experiment would: when a point arrives, the rule decides for its trial given what every
//! other trial had reported *by then*. A stopped trial's later points never arrive. The result says
//! where each trial stopped and how much training the rule let through, so rules can be compared
//! by the budget they save against the best trials they kill.

use super::{CurvePoint, Decision, StoppingRule};

/// One recorded point: `(step, loss, time)`, lower loss is better, time in any unit.
pub type TimedPoint = (i64, f64, f64);

/// What a replay found.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOutcome {
    /// Per trial (input order): the step at which the rule stopped it, `None` when it ran to the
    /// end.
    pub stop_steps: Vec<Option<i64>>,
    /// Per trial: the full stop decision (with its reason), `None` when it ran to the end.
    pub stops: Vec<Option<Decision>>,
    /// Per trial: the largest step it reported before it stopped or ended (0 for no point).
    pub last_steps: Vec<i64>,
    /// The sum of `last_steps`: the training steps the experiment consumed under the rule (with
    /// steps numbered `1, 2, 3, ...`, the number of steps trained).
    pub steps_consumed: u64,
    /// How many points arrived before their trial stopped (points after a stop are not counted).
    pub points_consumed: usize,
}

/// Replays `curves` (one per trial, points in any order) through `rule`.
///
/// Points arrive in order of time; equal times in order of trial, then of position in the curve.
/// NaN times sort after every number. A point with a NaN loss arrives (it costs training) but
/// rules ignore it. The decision taken when a point arrives uses the other trials' points that
/// arrived before it, finished and stopped trials included.
pub fn replay(curves: &[Vec<TimedPoint>], rule: &dyn StoppingRule) -> ReplayOutcome {
    let mut arrivals: Vec<(f64, usize, usize)> = curves
        .iter()
        .enumerate()
        .flat_map(|(trial, curve)| {
            curve
                .iter()
                .enumerate()
                .map(move |(index, &(_, _, time))| (time, trial, index))
        })
        .collect();
    arrivals.sort_by(|a, b| {
        let time = |t: f64| if t.is_nan() { f64::INFINITY } else { t };
        time(a.0)
            .total_cmp(&time(b.0))
            .then(a.0.is_nan().cmp(&b.0.is_nan()))
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
    });

    let mut seen: Vec<Vec<CurvePoint>> = vec![Vec::new(); curves.len()];
    let mut stops: Vec<Option<Decision>> = vec![None; curves.len()];
    let mut last_steps = vec![0i64; curves.len()];
    let mut points_consumed = 0;
    for (_, trial, index) in arrivals {
        if stops[trial].is_some() {
            continue;
        }
        let Some(&(step, loss, _)) = curves.get(trial).and_then(|c| c.get(index)) else {
            continue;
        };
        points_consumed += 1;
        last_steps[trial] = last_steps[trial].max(step);
        seen[trial].push((step, loss));
        let others: Vec<&[CurvePoint]> = seen
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != trial)
            .map(|(_, curve)| curve.as_slice())
            .collect();
        let decision = rule.decide(&seen[trial], &others);
        if decision.is_stop() {
            stops[trial] = Some(decision);
        }
    }
    ReplayOutcome {
        stop_steps: stops
            .iter()
            .map(|d| d.as_ref().and_then(Decision::stop_step))
            .collect(),
        stops,
        steps_consumed: last_steps
            .iter()
            .map(|&s| u64::try_from(s).unwrap_or(0))
            .fold(0u64, u64::saturating_add),
        last_steps,
        points_consumed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::early_stopping::{AshaStop, MedianStop};

    /// A trial reporting `value` at steps 1..=last, one step per time unit from `start`.
    fn timed(value: f64, last: i64, start: f64) -> Vec<TimedPoint> {
        (1..=last).map(|s| (s, value, start + s as f64)).collect()
    }

    #[test]
    fn sequential_trials_are_judged_against_the_earlier_ones() {
        // Three good trials run first; then a bad one and a better one run side by side.
        let curves = vec![
            timed(0.3, 10, 0.0),
            timed(0.2, 10, 10.0),
            timed(0.4, 10, 20.0),
            timed(0.9, 10, 30.0),
            timed(0.1, 10, 30.0),
        ];
        let outcome = replay(&curves, &MedianStop::default());
        assert_eq!(outcome.stop_steps, [None, None, None, Some(4), None]);
        assert_eq!(outcome.last_steps, [10, 10, 10, 4, 10]);
        assert_eq!(outcome.steps_consumed, 44);
        assert_eq!(outcome.points_consumed, 44);
        let Some(Decision::Stop { reason, .. }) = &outcome.stops[3] else {
            panic!("{:?}", outcome.stops[3]);
        };
        assert!(
            reason.starts_with("medianstop: best loss 0.9 at step 4"),
            "{reason}"
        );
    }

    #[test]
    fn only_points_that_arrived_earlier_count() {
        // All four trials run at once: at step 4 the others have reached step 4 only as their
        // points arrive, in trial order for equal times.
        let curves = vec![
            timed(0.1, 6, 0.0),
            timed(0.2, 6, 0.0),
            timed(0.3, 6, 0.0),
            timed(0.9, 6, 0.0),
        ];
        let outcome = replay(&curves, &MedianStop::default());
        assert_eq!(outcome.stop_steps, [None, None, None, Some(4)]);
        // Reversed, the bad trial reports first at every step, when no other has reached that
        // step yet: it is never compared with anyone, so it runs to the end.
        let reversed: Vec<Vec<TimedPoint>> = curves.into_iter().rev().collect();
        let outcome = replay(&reversed, &MedianStop::default());
        assert_eq!(outcome.stop_steps, [None, None, None, None]);
        // Half a time unit later than the others, it is judged at step 4 again.
        let mut late = reversed;
        late[0] = timed(0.9, 6, 0.5);
        assert_eq!(
            replay(&late, &MedianStop::default()).stop_steps,
            [Some(4), None, None, None]
        );
    }

    #[test]
    fn asha_replay_and_odd_inputs() {
        // Nine trials start together; ASHA keeps a third at rung 1, then at rung 3 (of the ones
        // that got there).
        let curves: Vec<Vec<TimedPoint>> =
            (0..9).map(|i| timed(f64::from(i) / 10.0, 9, 0.0)).collect();
        let outcome = replay(&curves, &AshaStop::default());
        // At rung 1 trials arrive in order 0..8, each compared with those before it: trial 0 is
        // always the best, others stop (n < 6 keeps 1; trial 5 at n = 6 keeps 2: 0.5 > 0.1 stops).
        assert_eq!(outcome.stop_steps[0], None);
        assert!(outcome.stop_steps[1..].iter().all(|s| *s == Some(1)));
        assert_eq!(outcome.steps_consumed, 9 + 8);

        // Empty input, empty curves, NaN losses and NaN times.
        let empty = replay(&[], &AshaStop::default());
        assert_eq!(empty.steps_consumed, 0);
        let odd = vec![
            vec![],
            vec![(1, f64::NAN, f64::NAN), (2, 0.5, 1.0)],
            vec![(-3, 0.5, 0.0)],
        ];
        let outcome = replay(&odd, &MedianStop::default());
        assert_eq!(outcome.stop_steps, [None, None, None]);
        assert_eq!(outcome.points_consumed, 3);
        assert_eq!(outcome.last_steps, [0, 2, 0]);
        assert_eq!(outcome.steps_consumed, 2);
    }
}
