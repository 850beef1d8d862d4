//! The `hyperband` engine: successive halving over a schedule of brackets (Li et al. 2018,
//! "Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization", JMLR 18(185)).
//!
//! # Settings (Katib's names)
//!
//! * `r_l` — the most resource one configuration gets (epochs, say). Required.
//! * `eta` — the reduction factor: each rung keeps `1/eta` of its configurations and gives them
//!   `eta` times the resource. Default 3.
//! * `resource_name` — the parameter that carries the resource. Required; Sextant calls it
//!   [`HyperbandSettings::resource_parameter`].
//!
//! Katib (`pkg/suggestion/v1beta1/hyperband/service.py`, `ValidateAlgorithmSettings`) requires
//! `r_l` and `resource_name`, reads `r_l` as a float and refuses only `r_l < 0`, reads `eta` as
//! `int(float(eta))` and silently replaces `eta <= 0` by 3 (and divides by `log(1) = 0` for
//! `eta = 1`), and checks that `resource_name` is one of the parameters. Sextant refuses
//! `r_l < 1` (no rung would have a resource of at least 1) and `eta < 2` with an error naming the
//! setting, and checks the resource parameter's type and range against the schedule
//! ([`HyperbandEngine::check_space`]).
//!
//! # The schedule
//!
//! `s_max = floor(log_eta(r_l))`, computed exactly with integers (Katib computes
//! `int(log(r_l) / log(eta))` in floating point, which rounds exact powers down:
//! `log(243) / log(3) = 4.999…`, so Katib runs one bracket fewer for `r_l = 243`). Brackets run
//! `s = s_max, …, 0`; bracket `s` starts `n = ceil((s_max + 1) / (s + 1) * eta^s)` configurations
//! at resource `r = r_l * eta^-s`, and rung `i = 0..=s` holds `n_i = floor(n * eta^-i)`
//! configurations at resource `r_l * eta^(i - s)`: each rung keeps the best `floor(n_i / eta)` of
//! the previous one, as in the paper (Katib rounds the number kept *up*). [`schedule`] returns the
//! table; for `r_l = 81, eta = 3` it is the paper's Table 1: `(81, 1) (27, 3) (9, 9) (3, 27)
//! (1, 81)`, `(34, 3) (11, 9) (3, 27) (1, 81)`, `(15, 9) (5, 27) (1, 81)`, `(8, 27) (2, 81)`,
//! `(5, 81)`: 206 trials.
//!
//! # Trials
//!
//! Every trial is one configuration at one rung. Its point sets the resource parameter to the
//! rung's resource, rounded to the nearest value of the parameter's grid (an int's step, a
//! double's step; a continuous double takes the resource itself) and, for an int, at least 1;
//! Katib truncates with `int()` instead. The other parameters of configuration `j` of bracket `s`
//! are drawn uniformly from the unit cube by a generator keyed by `(seed, s, j)` and mapped through
//! the space, so every distribution is honoured. A promoted configuration becomes a new trial with
//! the same other parameters and the larger resource (Katib does the same: it copies the
//! assignments and replaces the resource).
//!
//! Within a bracket the configurations are distinct: a draw that repeats an earlier configuration
//! of the bracket is drawn again (up to 64 times), and a bracket over a finite space smaller than
//! `n` holds fewer configurations. Across brackets two rungs may ask for the same point (a small
//! space, the same resource): they share one trial, so no point is ever suggested twice.
//!
//! # Asynchrony and failures
//!
//! Katib issues a whole rung at once (it refuses `parallelTrialCount < eta^s_max`), runs the
//! brackets strictly one after another, and raises an error when any trial of a rung did not
//! succeed, which leaves the experiment stuck. Here any batch size works: each call walks the
//! brackets in order `s_max, …, 0` and hands out the unissued trials of every bracket's current
//! rung, so a bracket that waits for its rung to finish lets the next bracket start and several
//! brackets run at once. A rung is promoted when all its trials have finished. Failed trials (no
//! objective, or NaN) are dropped: the next rung keeps `min(n_{i+1}, successful trials)`
//! configurations, and a rung with none left ends its bracket. The best are chosen by loss, ties
//! by the order of the rung. When every bracket has finished, or only waits for trials of its last
//! rung that have all been handed out, the answer says `exhausted`.
//!
//! # State
//!
//! Which trial is which is read from the points themselves: the configurations are a function of
//! the seed, and a configuration at a rung's resource is one point, looked up in the history
//! (first finished trial with that point) and the pending trials. The saved state
//! (`{"r_l", "eta", "resource_name", "brackets": [...]}`) records only what each bracket has
//! decided: the current rung and the configurations promoted into it, or that it is done. It
//! saves recomputing finished rungs; without it (`null`) the engine recomputes the same decisions
//! from the history, so a restart resumes identically either way.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value as Json, json};

use crate::engine::{Engine, EngineError, SuggestRequest, Suggestions};
use crate::seeding::{stream_rng, unit_f64};
use crate::space::{Domain, Parameter, Point, SearchSpace, Value};

/// Katib's default `eta` (and the paper's recommendation).
pub const DEFAULT_ETA: u32 = 3;

/// The most trials a schedule may hold. `r_l` counts resource units per configuration (epochs,
/// say); a schedule beyond this is almost certainly `r_l` given in the wrong unit (steps), and
/// each call draws the configurations of the brackets it walks, so this also bounds a call's work.
pub const MAX_SCHEDULE_TRIALS: u64 = 100_000;

/// Tags this engine's random stream ("hyperbnd" in ASCII).
const HYPERBAND_STREAM: u64 = u64::from_be_bytes(*b"hyperbnd");

/// Draws of one configuration that may repeat an earlier configuration of the bracket before the
/// slot is left empty; with half the space unused the chance of an empty slot is 2^-64.
const MAX_DRAW_ATTEMPTS: u64 = 64;

/// The most points reserved up front, whatever `count` asks for.
const MAX_PREALLOCATED: usize = 1024;

/// Relative tolerance when comparing the saved `r_l` with the configured one (JSON round trip).
const R_L_MATCH_RELATIVE: f64 = 1e-12;

/// Hyperband's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HyperbandSettings {
    /// Katib's `r_l`: the most resource one configuration gets (`>= 1`).
    pub r_l: f64,
    /// Katib's `eta`: the reduction factor (`>= 2`, default [`DEFAULT_ETA`]).
    pub eta: u32,
    /// Katib's `resource_name`: the int (or double) parameter set to each rung's resource.
    pub resource_parameter: String,
}

impl HyperbandSettings {
    /// Settings with Katib's default `eta`.
    pub fn new(r_l: f64, resource_parameter: impl Into<String>) -> Self {
        HyperbandSettings {
            r_l,
            eta: DEFAULT_ETA,
            resource_parameter: resource_parameter.into(),
        }
    }

    /// Checks every setting (the resource parameter against a space is
    /// [`HyperbandEngine::check_space`]'s job).
    pub fn validate(&self) -> Result<(), InvalidHyperbandSetting> {
        if !(self.r_l.is_finite() && self.r_l >= 1.0) {
            return Err(InvalidHyperbandSetting {
                setting: "r_l",
                value: self.r_l.to_string(),
                accepted: "a number >= 1: the most resource (epochs, say) one configuration gets"
                    .to_owned(),
            });
        }
        if self.eta < 2 {
            return Err(InvalidHyperbandSetting {
                setting: "eta",
                value: self.eta.to_string(),
                accepted: format!(
                    "an integer >= 2 (each rung keeps 1/eta of its configurations; default \
                     {DEFAULT_ETA})"
                ),
            });
        }
        if self.resource_parameter.is_empty() {
            return Err(InvalidHyperbandSetting {
                setting: "resource_name",
                value: "\"\"".to_owned(),
                accepted: "the name of the int parameter that carries the resource (epochs, say)"
                    .to_owned(),
            });
        }
        let trials = totals(&schedule(self.r_l, self.eta)).trials;
        if trials > MAX_SCHEDULE_TRIALS {
            return Err(InvalidHyperbandSetting {
                setting: "r_l",
                value: self.r_l.to_string(),
                accepted: format!(
                    "a value whose schedule has at most {MAX_SCHEDULE_TRIALS} trials; with eta = \
                     {} it has {trials}: r_l counts resource per configuration (epochs, not \
                     steps), so lower it or raise eta",
                    self.eta
                ),
            });
        }
        Ok(())
    }
}

/// A Hyperband setting out of its accepted range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("hyperband setting {setting} = {value} is not accepted: {accepted}")]
pub struct InvalidHyperbandSetting {
    /// The setting as Katib users write it (`r_l`, `eta`, `resource_name`).
    pub setting: &'static str,
    /// The value given.
    pub value: String,
    /// What would be accepted.
    pub accepted: String,
}

/// One rung of a bracket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rung {
    /// How many configurations run at this rung (`n_i`).
    pub configurations: u64,
    /// The resource each gets (`r_i`), before rounding to the parameter's grid.
    pub resource: f64,
}

/// One bracket: successive halving from `n` configurations at `r_l * eta^-s` up to `r_l`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bracket {
    /// The bracket's index `s` (`s_max` for the most exploratory one, 0 for the last).
    pub s: u32,
    /// Its rungs, from the first (most configurations, least resource) to the last (`r_l`).
    pub rungs: Vec<Rung>,
}

impl Bracket {
    /// The number of trials the bracket runs (a promotion is a new trial).
    pub fn trials(&self) -> u64 {
        self.rungs
            .iter()
            .fold(0u64, |sum, rung| sum.saturating_add(rung.configurations))
    }

    /// The resource the bracket spends: the sum over rungs of configurations times resource.
    pub fn budget(&self) -> f64 {
        self.rungs
            .iter()
            .map(|rung| rung.configurations as f64 * rung.resource)
            .sum()
    }
}

/// Trials and resource of a whole schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleTotals {
    /// Trials over every bracket.
    pub trials: u64,
    /// Resource over every bracket.
    pub budget: f64,
}

/// `s_max = floor(log_eta(r_l))`, exactly: the largest `s` with `eta^s <= r_l`.
fn s_max(r_l: f64, eta: u32) -> u32 {
    let eta = u64::from(eta.max(2));
    let mut s = 0;
    let mut power: u64 = 1;
    while let Some(next) = power.checked_mul(eta) {
        if next as f64 > r_l {
            break;
        }
        power = next;
        s += 1;
    }
    s
}

/// Hyperband's schedule for `r_l` and `eta` (see the module docs); empty when `r_l` is not a
/// number `>= 1` or `eta < 2`.
pub fn schedule(r_l: f64, eta: u32) -> Vec<Bracket> {
    if !(r_l.is_finite() && r_l >= 1.0) || eta < 2 {
        return Vec::new();
    }
    let s_max = s_max(r_l, eta);
    let eta_wide = u128::from(eta);
    (0..=s_max)
        .rev()
        .map(|s| {
            // eta^s <= r_l fits a u64; n = ceil((s_max + 1) * eta^s / (s + 1)).
            let power = eta_wide.pow(s);
            let n = (u128::from(s_max + 1) * power).div_ceil(u128::from(s + 1));
            let rungs = (0..=s)
                .map(|i| Rung {
                    configurations: u64::try_from(n / eta_wide.pow(i)).unwrap_or(u64::MAX),
                    resource: r_l / f64::from(eta).powi((s - i) as i32),
                })
                .collect();
            Bracket { s, rungs }
        })
        .collect()
}

/// The trials and resource of a schedule.
pub fn totals(schedule: &[Bracket]) -> ScheduleTotals {
    ScheduleTotals {
        trials: schedule
            .iter()
            .fold(0u64, |sum, bracket| sum.saturating_add(bracket.trials())),
        budget: schedule.iter().map(Bracket::budget).sum(),
    }
}

/// Hyperband as an [`Engine`].
#[derive(Debug, Clone)]
pub struct HyperbandEngine {
    settings: HyperbandSettings,
    schedule: Vec<Bracket>,
}

impl HyperbandEngine {
    /// An engine with validated settings.
    pub fn new(settings: HyperbandSettings) -> Result<Self, InvalidHyperbandSetting> {
        settings.validate()?;
        let schedule = schedule(settings.r_l, settings.eta);
        Ok(HyperbandEngine { settings, schedule })
    }

    /// Its settings.
    pub fn settings(&self) -> &HyperbandSettings {
        &self.settings
    }

    /// Its schedule.
    pub fn schedule(&self) -> &[Bracket] {
        &self.schedule
    }

    /// The resource values, by level `k = 0..=s_max` (resource `r_l * eta^-k`), and where the
    /// resource parameter sits; refuses a space the schedule does not fit.
    fn resource_levels(&self, space: &SearchSpace) -> Result<(usize, Vec<Value>), EngineError> {
        let name = &self.settings.resource_parameter;
        let Some(index) = space.params().iter().position(|p| &p.name == name) else {
            let names: Vec<String> = space
                .params()
                .iter()
                .map(|p| format!("{:?}", p.name))
                .collect();
            return Err(EngineError::UnsupportedSpace(format!(
                "hyperband setting resource_name = {name:?} is not a parameter of the search \
                 space; its parameters are {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        };
        let param = &space.params()[index];
        let (min, max) = match param.domain {
            Domain::Int { min, max, .. } => (min as f64, max as f64),
            Domain::Double { min, max, .. } => (min, max),
            Domain::Discrete { .. } | Domain::Categorical { .. } => {
                return Err(EngineError::UnsupportedSpace(format!(
                    "hyperband setting resource_name = {name:?} names a {} parameter; the \
                     resource parameter must be of type int (or double), because Hyperband sets \
                     it to each rung's resource",
                    if matches!(param.domain, Domain::Discrete { .. }) {
                        "discrete"
                    } else {
                        "categorical"
                    }
                )));
            }
        };
        let resources: Vec<f64> = self
            .schedule
            .first()
            .map(|bracket| bracket.rungs.iter().rev().map(|r| r.resource).collect())
            .unwrap_or_default();
        let smallest = resources.last().copied().unwrap_or(self.settings.r_l);
        if min > smallest || max < self.settings.r_l {
            return Err(EngineError::UnsupportedSpace(format!(
                "hyperband: the resource parameter {name:?} has feasibleSpace [{min}, {max}], \
                 which must contain every rung's resource, from {} to r_l = {} (eta = {}); set \
                 feasibleSpace.min <= {} and feasibleSpace.max >= {}, or change r_l",
                show(smallest),
                show(self.settings.r_l),
                self.settings.eta,
                show(smallest),
                show(self.settings.r_l),
            )));
        }
        let levels: Vec<Value> = resources
            .iter()
            .map(|&resource| resource_value(param, resource))
            .collect();
        for k in 1..levels.len() {
            if levels[k] == levels[k - 1] {
                return Err(EngineError::UnsupportedSpace(format!(
                    "hyperband: feasibleSpace.step of the resource parameter {name:?} rounds the \
                     rung resources {} and {} to the same value {}; use a smaller step, or a \
                     larger r_l or eta",
                    show(resources[k]),
                    show(resources[k - 1]),
                    levels[k]
                )));
            }
        }
        Ok((index, levels))
    }

    fn read_state(&self, state: Option<&Json>) -> Result<Vec<Progress>, EngineError> {
        let fresh = vec![Progress::Start; self.schedule.len()];
        let state = match state {
            None | Some(Json::Null) => return Ok(fresh),
            Some(state) => state,
        };
        let bad = |why: String| EngineError::BadState(format!("hyperband: {why}"));
        let saved_r_l = state.get("r_l").and_then(Json::as_f64);
        let saved_eta = state.get("eta").and_then(Json::as_u64);
        let saved_name = state.get("resource_name").and_then(Json::as_str);
        let (Some(r_l), Some(eta), Some(name)) = (saved_r_l, saved_eta, saved_name) else {
            return Err(bad(format!(
                "expected an object with \"r_l\", \"eta\", \"resource_name\" and \"brackets\", \
                 got {state}"
            )));
        };
        let same_r_l = (r_l - self.settings.r_l).abs() <= R_L_MATCH_RELATIVE * self.settings.r_l;
        if !same_r_l
            || eta != u64::from(self.settings.eta)
            || name != self.settings.resource_parameter
        {
            return Err(bad(format!(
                "the state was saved with r_l = {r_l}, eta = {eta}, resource_name = {name:?}, but \
                 the settings are r_l = {}, eta = {}, resource_name = {:?}",
                self.settings.r_l, self.settings.eta, self.settings.resource_parameter
            )));
        }
        let Some(brackets) = state.get("brackets").and_then(Json::as_array) else {
            return Err(bad(format!("\"brackets\" is not an array in {state}")));
        };
        if brackets.len() != self.schedule.len() {
            return Err(bad(format!(
                "{} brackets saved, the schedule has {}",
                brackets.len(),
                self.schedule.len()
            )));
        }
        brackets
            .iter()
            .zip(&self.schedule)
            .map(|(saved, bracket)| Progress::from_json(saved, bracket).map_err(bad))
            .collect()
    }

    fn state(&self, progress: &[Progress]) -> Json {
        json!({
            "r_l": self.settings.r_l,
            "eta": self.settings.eta,
            "resource_name": self.settings.resource_parameter,
            "brackets": progress
                .iter()
                .zip(&self.schedule)
                .map(|(p, bracket)| p.to_json(bracket.s))
                .collect::<Vec<_>>(),
        })
    }
}

/// The nearest value of the resource parameter to `resource` (at least 1 for an int).
fn resource_value(param: &Parameter, resource: f64) -> Value {
    match param.domain {
        Domain::Int { min, max, step, .. } => {
            let step = i128::from(step.unwrap_or(1).max(1));
            let (min, max) = (i128::from(min), i128::from(max));
            let last = (max - min).max(0) / step;
            let nearest = ((resource - min as f64) / step as f64).round();
            let mut k = if nearest.is_nan() {
                0
            } else {
                (nearest.max(0.0) as i128).min(last)
            };
            // Rounding may land below 1 on a grid that starts below 1; resource is never < 1.
            while min + k * step < 1 && k < last {
                k += 1;
            }
            Value::Int(i64::try_from(min + k * step).unwrap_or(i64::MAX))
        }
        Domain::Double { .. } => {
            // Snap through a one-parameter space, so that the value is exactly the grid value the
            // space renders and parses (a continuous double keeps the resource, clamped).
            let wanted = vec![Value::Double(resource)];
            match SearchSpace::new(vec![param.clone()]) {
                Ok(single) => {
                    let key = single.point_key(&wanted);
                    key.first()
                        .and_then(|&digit| single.point_at(u128::from(digit)))
                        .and_then(|point| point.first().copied())
                        .unwrap_or_else(|| match param.domain {
                            Domain::Double { min, max, .. } => {
                                Value::Double(resource.clamp(min, max))
                            }
                            _ => Value::Double(resource),
                        })
                }
                Err(_) => Value::Double(resource),
            }
        }
        Domain::Discrete { .. } | Domain::Categorical { .. } => Value::Choice(0),
    }
}

/// A number for a message: the shortest form that reads back.
fn show(x: f64) -> String {
    format!("{}", x + 0.0)
}

/// What a bracket has decided so far.
#[derive(Debug, Clone, PartialEq)]
enum Progress {
    /// At rung 0, with every configuration of the bracket.
    Start,
    /// At `rung >= 1`, with these configurations (slots), best first.
    At { rung: usize, members: Vec<u64> },
    /// Finished (its last rung ran, or no configuration survived a rung).
    Done,
}

impl Progress {
    fn to_json(&self, s: u32) -> Json {
        match self {
            Progress::Start => json!({ "s": s }),
            Progress::At { rung, members } => json!({ "s": s, "rung": rung, "members": members }),
            Progress::Done => json!({ "s": s, "done": true }),
        }
    }

    fn from_json(saved: &Json, bracket: &Bracket) -> Result<Progress, String> {
        let Some(object) = saved.as_object() else {
            return Err(format!("a bracket's state must be an object, got {saved}"));
        };
        if object.get("s").and_then(Json::as_u64) != Some(u64::from(bracket.s)) {
            return Err(format!(
                "expected the state of bracket s = {}, got {saved}",
                bracket.s
            ));
        }
        if object.get("done").and_then(Json::as_bool) == Some(true) {
            return Ok(Progress::Done);
        }
        let (Some(rung), Some(members)) = (
            object.get("rung").and_then(Json::as_u64),
            object.get("members").and_then(Json::as_array),
        ) else {
            return if only_key(object, "s") {
                Ok(Progress::Start)
            } else {
                Err(format!("unreadable bracket state {saved}"))
            };
        };
        let first = bracket.rungs.first().map_or(0, |r| r.configurations);
        let rung = usize::try_from(rung).unwrap_or(usize::MAX);
        let planned = bracket.rungs.get(rung).map(|r| r.configurations);
        let members: Option<Vec<u64>> = members.iter().map(Json::as_u64).collect();
        match (planned, members) {
            (Some(planned), Some(members))
                if rung >= 1
                    && !members.is_empty()
                    && members.len() as u64 <= planned
                    && members.iter().all(|&slot| slot < first) =>
            {
                Ok(Progress::At { rung, members })
            }
            _ => Err(format!(
                "bracket s = {} has rungs 0..={} of at most {:?} configurations (slots below \
                 {first}); saved {saved} does not fit",
                bracket.s,
                bracket.rungs.len().saturating_sub(1),
                bracket
                    .rungs
                    .iter()
                    .map(|r| r.configurations)
                    .collect::<Vec<_>>(),
            )),
        }
    }
}

fn only_key(object: &Map<String, Json>, key: &str) -> bool {
    object.len() == 1 && object.contains_key(key)
}

/// What is known about one point: finished (with its loss, `None` for failed) or running.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Finished(Option<f64>),
    Running,
}

/// Everything one call works with.
struct Walk<'a> {
    space: &'a SearchSpace,
    seed: u64,
    resource_index: usize,
    levels: Vec<Value>,
    /// Distinct values of the other parameters, `None` when infinite.
    others_cardinality: Option<u128>,
    outcomes: HashMap<Vec<u64>, Outcome>,
}

impl Walk<'_> {
    /// The configurations of a bracket, by slot: each drawn from its own generator, rejecting
    /// configurations the bracket already has; `None` for a slot that found no new one.
    fn configurations(&self, bracket: &Bracket) -> Vec<Option<Point>> {
        let n = bracket.rungs.first().map_or(0, |r| r.configurations);
        let limit = self.others_cardinality.unwrap_or(u128::MAX);
        let mut seen: HashSet<Vec<u64>> = HashSet::new();
        let mut configurations = Vec::new();
        for slot in 0..n {
            if seen.len() as u128 >= limit {
                configurations.push(None);
                continue;
            }
            let mut found = None;
            for attempt in 0..MAX_DRAW_ATTEMPTS {
                let counter = (u64::from(bracket.s) << 48) | (attempt << 40) | slot;
                let mut rng = stream_rng(self.seed, HYPERBAND_STREAM, counter);
                let unit: Vec<f64> = (0..self.space.dims()).map(|_| unit_f64(&mut rng)).collect();
                let point = self.at_level(self.space.from_unit(&unit), 0);
                if seen.insert(self.space.point_key(&point)) {
                    found = Some(point);
                    break;
                }
            }
            configurations.push(found);
        }
        configurations
    }

    /// The configuration with its resource set to level `level` (resource `r_l * eta^-level`).
    fn at_level(&self, mut point: Point, level: usize) -> Point {
        if let (Some(slot), Some(value)) =
            (point.get_mut(self.resource_index), self.levels.get(level))
        {
            *slot = *value;
        }
        point
    }

    /// The point of configuration `slot` at rung `rung` of `bracket`.
    fn point(
        &self,
        configurations: &[Option<Point>],
        bracket: &Bracket,
        rung: usize,
        slot: u64,
    ) -> Option<Point> {
        let configuration = configurations.get(usize::try_from(slot).ok()?)?.clone()?;
        let level = (bracket.s as usize).checked_sub(rung)?;
        Some(self.at_level(configuration, level))
    }

    fn outcome(&self, point: &Point) -> Option<Outcome> {
        self.outcomes.get(&self.space.point_key(point)).copied()
    }

    /// Promotes finished rungs as far as the history allows; returns the progress and the members
    /// of the current rung (empty when done).
    fn advance(
        &self,
        progress: &Progress,
        bracket: &Bracket,
        configurations: &[Option<Point>],
    ) -> Result<(Progress, Vec<u64>), EngineError> {
        let (mut rung, mut members) = match progress {
            Progress::Done => return Ok((Progress::Done, Vec::new())),
            Progress::Start => (
                0,
                (0u64..)
                    .zip(configurations)
                    .filter(|(_, c)| c.is_some())
                    .map(|(slot, _)| slot)
                    .collect::<Vec<u64>>(),
            ),
            Progress::At { rung, members } => (*rung, members.clone()),
        };
        let last = bracket.rungs.len().saturating_sub(1);
        loop {
            let mut scored: Vec<(f64, u64)> = Vec::new();
            let mut complete = true;
            for &slot in &members {
                let point = self
                    .point(configurations, bracket, rung, slot)
                    .ok_or_else(|| {
                        EngineError::BadState(format!(
                            "hyperband: bracket s = {} has no configuration in slot {slot}",
                            bracket.s
                        ))
                    })?;
                match self.outcome(&point) {
                    Some(Outcome::Finished(Some(loss))) if !loss.is_nan() => {
                        scored.push((loss, slot));
                    }
                    Some(Outcome::Finished(_)) => {}
                    Some(Outcome::Running) | None => complete = false,
                }
            }
            let progress = |rung: usize, members: Vec<u64>| {
                if rung == 0 {
                    Progress::Start
                } else {
                    Progress::At { rung, members }
                }
            };
            if !complete {
                return Ok((progress(rung, members.clone()), members));
            }
            if rung >= last {
                return Ok((Progress::Done, Vec::new()));
            }
            let planned = bracket.rungs[rung + 1].configurations;
            let keep = usize::try_from(planned)
                .unwrap_or(usize::MAX)
                .min(scored.len());
            if keep == 0 {
                return Ok((Progress::Done, Vec::new()));
            }
            // Stable: equal losses keep the rung's order.
            scored.sort_by(|a, b| a.0.total_cmp(&b.0));
            members = scored.iter().take(keep).map(|&(_, slot)| slot).collect();
            rung += 1;
        }
    }
}

impl Engine for HyperbandEngine {
    fn name(&self) -> &'static str {
        "hyperband"
    }

    /// The resource parameter must exist, be an int or a double, have a range containing every
    /// rung's resource (from `r_l * eta^-s_max` to `r_l`), and a grid fine enough that no two
    /// rungs round to the same value.
    fn check_space(&self, space: &SearchSpace) -> Result<(), EngineError> {
        self.resource_levels(space).map(|_| ())
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, EngineError> {
        let space = request.space;
        let (resource_index, levels) = self.resource_levels(space)?;
        let mut progress = self.read_state(request.state)?;
        let others: Vec<Parameter> = space
            .params()
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != resource_index)
            .map(|(_, p)| p.clone())
            .collect();
        let others_cardinality = SearchSpace::new(others)
            .ok()
            .and_then(|others| others.cardinality());

        let mut outcomes: HashMap<Vec<u64>, Outcome> = HashMap::new();
        for trial in request.history {
            // The first finished trial with a point decides it; later ones never change a rung.
            outcomes
                .entry(space.point_key(&trial.point))
                .or_insert(Outcome::Finished(trial.loss));
        }
        for point in request.pending {
            outcomes
                .entry(space.point_key(point))
                .or_insert(Outcome::Running);
        }
        let walk = Walk {
            space,
            seed: request.seed,
            resource_index,
            levels,
            others_cardinality,
            outcomes,
        };

        let mut issued: HashSet<Vec<u64>> = HashSet::new();
        let mut points = Vec::with_capacity(request.count.min(MAX_PREALLOCATED));
        let mut more_to_come = false;
        for (bracket, saved) in self.schedule.iter().zip(progress.iter_mut()) {
            if points.len() >= request.count && more_to_come {
                break;
            }
            if *saved == Progress::Done {
                continue;
            }
            let configurations = walk.configurations(bracket);
            let (now, members) = walk.advance(saved, bracket, &configurations)?;
            *saved = now;
            if *saved == Progress::Done {
                continue;
            }
            let rung = match saved {
                Progress::At { rung, .. } => *rung,
                _ => 0,
            };
            let mut all_handed_out = true;
            for slot in members {
                let Some(point) = walk.point(&configurations, bracket, rung, slot) else {
                    continue;
                };
                let key = space.point_key(&point);
                if walk.outcomes.contains_key(&key) || issued.contains(&key) {
                    continue;
                }
                if points.len() < request.count {
                    issued.insert(key);
                    points.push(point);
                } else {
                    all_handed_out = false;
                }
            }
            let last_rung = rung + 1 >= bracket.rungs.len();
            if !(last_rung && all_handed_out) {
                more_to_come = true;
            }
        }
        Ok(Suggestions {
            points,
            exhausted: !more_to_come,
            state: self.state(&progress),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::CompletedTrial;
    use crate::test_support::*;

    /// Two continuous parameters and the resource, `epochs` in `[1, 81]`.
    fn space_xy() -> SearchSpace {
        space(vec![
            ("x", uniform_double(0.0, 1.0)),
            ("epochs", int_range(1, 81)),
            ("y", uniform_double(0.0, 1.0)),
        ])
    }

    fn engine(r_l: f64, eta: u32) -> HyperbandEngine {
        HyperbandEngine::new(HyperbandSettings {
            r_l,
            eta,
            resource_parameter: "epochs".into(),
        })
        .unwrap()
    }

    fn real(value: &Value) -> f64 {
        match *value {
            Value::Double(x) => x,
            Value::Int(i) => i as f64,
            Value::Choice(i) => i as f64,
        }
    }

    /// A loss that improves with the resource (`epochs`) and is best with every other coordinate
    /// near 0.3.
    fn loss(space: &SearchSpace, point: &Point) -> f64 {
        space
            .params()
            .iter()
            .zip(point)
            .map(|(param, value)| {
                if param.name == "epochs" {
                    1.0 / real(value)
                } else {
                    (real(value) - 0.3).powi(2)
                }
            })
            .sum()
    }

    struct Run {
        history: Vec<CompletedTrial>,
        /// The points of every call.
        trace: Vec<Vec<Point>>,
        /// How many points had been suggested when the engine first said exhausted.
        suggested_at_exhaustion: Option<usize>,
    }

    /// Runs an experiment like the controller: keep `parallel` trials running, finish one at a
    /// time (in a scrambled order), ask again. `stateless` drops the saved state every call.
    fn simulate(
        engine: &HyperbandEngine,
        space: &SearchSpace,
        parallel: usize,
        stateless: bool,
        fails: &dyn Fn(&Point) -> bool,
    ) -> Run {
        let mut history: Vec<CompletedTrial> = Vec::new();
        let mut pending: Vec<Point> = Vec::new();
        let mut state: Option<Json> = None;
        let mut trace = Vec::new();
        let mut suggested = 0;
        let mut suggested_at_exhaustion = None;
        for call in 0..100_000usize {
            let answer = engine
                .suggest(&SuggestRequest {
                    space,
                    history: &history,
                    pending: &pending,
                    count: parallel - pending.len(),
                    seed: SEED,
                    state: if stateless { None } else { state.as_ref() },
                })
                .unwrap();
            assert!(answer.points.len() <= parallel - pending.len());
            assert!(answer.points.iter().all(|p| space.contains(p)));
            suggested += answer.points.len();
            if answer.exhausted && suggested_at_exhaustion.is_none() {
                suggested_at_exhaustion = Some(suggested);
            }
            if suggested_at_exhaustion.is_some() {
                assert!(answer.exhausted, "exhausted, then not");
            }
            trace.push(answer.points.clone());
            pending.extend(answer.points);
            state = Some(answer.state);
            if pending.is_empty() {
                assert!(
                    answer.exhausted,
                    "nothing running, nothing suggested, not exhausted"
                );
                return Run {
                    history,
                    trace,
                    suggested_at_exhaustion,
                };
            }
            let point = pending.remove((call * 7) % pending.len());
            let loss = (!fails(&point)).then(|| loss(space, &point));
            history.push(CompletedTrial { point, loss });
        }
        panic!("the experiment never ended");
    }

    fn never(_: &Point) -> bool {
        false
    }

    fn table(schedule: &[Bracket]) -> Vec<Vec<(u64, f64)>> {
        schedule
            .iter()
            .map(|b| {
                b.rungs
                    .iter()
                    .map(|r| (r.configurations, r.resource))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn schedule_matches_the_papers_table() {
        let brackets = schedule(81.0, 3);
        assert_eq!(
            brackets.iter().map(|b| b.s).collect::<Vec<_>>(),
            [4, 3, 2, 1, 0]
        );
        assert_eq!(
            table(&brackets),
            vec![
                vec![(81, 1.0), (27, 3.0), (9, 9.0), (3, 27.0), (1, 81.0)],
                vec![(34, 3.0), (11, 9.0), (3, 27.0), (1, 81.0)],
                vec![(15, 9.0), (5, 27.0), (1, 81.0)],
                vec![(8, 27.0), (2, 81.0)],
                vec![(5, 81.0)],
            ]
        );
        let budgets: Vec<f64> = brackets.iter().map(Bracket::budget).collect();
        assert_eq!(budgets, [405.0, 363.0, 351.0, 378.0, 405.0]);
        assert_eq!(
            brackets.iter().map(Bracket::trials).collect::<Vec<_>>(),
            [121, 49, 21, 10, 5]
        );
        assert_eq!(
            totals(&brackets),
            ScheduleTotals {
                trials: 206,
                budget: 1902.0
            }
        );
    }

    #[test]
    fn schedules_for_other_settings() {
        assert_eq!(
            table(&schedule(27.0, 3)),
            vec![
                vec![(27, 1.0), (9, 3.0), (3, 9.0), (1, 27.0)],
                vec![(12, 3.0), (4, 9.0), (1, 27.0)],
                vec![(6, 9.0), (2, 27.0)],
                vec![(4, 27.0)],
            ]
        );
        assert_eq!(
            table(&schedule(16.0, 2)),
            vec![
                vec![(16, 1.0), (8, 2.0), (4, 4.0), (2, 8.0), (1, 16.0)],
                vec![(10, 2.0), (5, 4.0), (2, 8.0), (1, 16.0)],
                vec![(7, 4.0), (3, 8.0), (1, 16.0)],
                vec![(5, 8.0), (2, 16.0)],
                vec![(5, 16.0)],
            ]
        );
        // An exact power is not rounded down (Katib's float logs give s_max = 4 for 243).
        assert_eq!(schedule(243.0, 3)[0].s, 5);
        assert_eq!(schedule(242.9, 3)[0].s, 4);
        // Not a power: resources are fractions of r_l.
        let hundred = schedule(100.0, 3);
        assert_eq!(hundred[0].rungs[0].configurations, 81);
        assert!((hundred[0].rungs[0].resource - 100.0 / 81.0).abs() < 1e-12);
        // Below eta there is one bracket of one configuration at r_l.
        assert_eq!(table(&schedule(1.0, 3)), vec![vec![(1, 1.0)]]);
        assert_eq!(table(&schedule(2.0, 3)), vec![vec![(1, 2.0)]]);
        // Nonsense gives no schedule rather than a panic.
        for (r_l, eta) in [
            (0.5, 3),
            (f64::NAN, 3),
            (f64::INFINITY, 3),
            (81.0, 1),
            (81.0, 0),
        ] {
            assert!(schedule(r_l, eta).is_empty());
        }
        assert_eq!(schedule(1e300, 2).len(), 64);
    }

    #[test]
    fn settings_are_validated_with_katib_names() {
        let with = |r_l: f64, eta: u32, name: &str| HyperbandSettings {
            r_l,
            eta,
            resource_parameter: name.into(),
        };
        assert_eq!(
            HyperbandSettings::new(81.0, "epochs"),
            with(81.0, 3, "epochs")
        );
        assert!(with(81.0, 3, "epochs").validate().is_ok());
        assert!(with(1.0, 2, "epochs").validate().is_ok());
        for bad in [0.99, 0.0, -3.0, f64::NAN, f64::INFINITY] {
            let e = with(bad, 3, "epochs").validate().unwrap_err();
            assert_eq!(e.setting, "r_l");
            assert!(e.accepted.contains(">= 1"), "{e}");
        }
        let e = with(81.0, 1, "epochs").validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "hyperband setting eta = 1 is not accepted: an integer >= 2 (each rung keeps 1/eta \
             of its configurations; default 3)"
        );
        assert_eq!(
            with(81.0, 3, "").validate().unwrap_err().setting,
            "resource_name"
        );
        let e = HyperbandEngine::new(with(1e9, 3, "epochs")).unwrap_err();
        assert_eq!(e.setting, "r_l");
        assert!(e.accepted.contains("at most 100000"), "{e}");
        assert!(with(10_000.0, 3, "epochs").validate().is_ok());
    }

    fn space_error(engine: &HyperbandEngine, space: &SearchSpace) -> String {
        match engine.check_space(space) {
            Err(EngineError::UnsupportedSpace(message)) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn check_space_wants_an_int_resource_covering_every_rung() {
        let hb = engine(81.0, 3);
        assert_eq!(hb.check_space(&space_xy()), Ok(()));
        let e = space_error(&hb, &unit_square());
        assert!(
            e.contains("resource_name = \"epochs\" is not a parameter")
                && e.contains("\"x\", \"y\""),
            "{e}"
        );
        let e = space_error(&hb, &space(vec![("epochs", choices(&["1", "81"]))]));
        assert!(
            e.contains("categorical") && e.contains("must be of type int"),
            "{e}"
        );
        let e = space_error(&hb, &space(vec![("epochs", int_range(1, 50))]));
        assert!(
            e.contains("feasibleSpace [1, 50]") && e.contains("feasibleSpace.max >= 81"),
            "{e}"
        );
        let e = space_error(&hb, &space(vec![("epochs", int_range(2, 100))]));
        assert!(e.contains("feasibleSpace.min <= 1"), "{e}");
        let coarse = Domain::Int {
            min: 0,
            max: 90,
            step: Some(10),
            distribution: crate::space::Distribution::Uniform,
        };
        let e = space_error(&hb, &space(vec![("epochs", coarse)]));
        assert!(
            e.contains("rounds the rung resources 3 and 9 to the same value 10"),
            "{e}"
        );
        // Doubles work, continuous or stepped, and so do ints with a range wider than r_l.
        for domain in [
            uniform_double(1.0, 81.0),
            Domain::Double {
                min: 0.5,
                max: 100.0,
                step: Some(0.5),
                distribution: crate::space::Distribution::Uniform,
            },
            int_range(0, 1000),
        ] {
            let ok = space(vec![("lr", uniform_double(0.0, 1.0)), ("epochs", domain)]);
            assert_eq!(hb.check_space(&ok), Ok(()));
            let answer = hb
                .suggest(&SuggestRequest {
                    space: &ok,
                    history: &[],
                    pending: &[],
                    count: 81,
                    seed: SEED,
                    state: None,
                })
                .unwrap();
            assert_eq!(answer.points.len(), 81);
            assert!(
                answer
                    .points
                    .iter()
                    .all(|p| ok.contains(p) && real(&p[1]) == 1.0)
            );
        }
        // The same refusal comes from suggest.
        assert!(matches!(
            ask(&hb, &unit_square(), &[], &[], 1, SEED, None),
            Err(EngineError::UnsupportedSpace(_))
        ));
    }

    #[test]
    fn resources_are_rounded_to_the_grid() {
        let hb = engine(100.0, 3);
        let (index, levels) = hb.resource_levels(&space_xy_wide()).unwrap();
        assert_eq!(index, 1);
        // 100, 33.3, 11.1, 3.7, 1.23.
        assert_eq!(levels, [100, 33, 11, 4, 1].map(Value::Int));
        let stepped = space(vec![(
            "epochs",
            Domain::Double {
                min: 0.0,
                max: 100.0,
                step: Some(0.5),
                distribution: crate::space::Distribution::Uniform,
            },
        )]);
        let (_, levels) = hb.resource_levels(&stepped).unwrap();
        assert_eq!(levels, [100.0, 33.5, 11.0, 3.5, 1.0].map(Value::Double));
        let grid_from_zero = space(vec![(
            "epochs",
            Domain::Int {
                min: -5,
                max: 100,
                step: Some(5),
                distribution: crate::space::Distribution::Uniform,
            },
        )]);
        let e = space_error(&hb, &grid_from_zero);
        assert!(e.contains("same value 5"), "{e}");
        let (_, levels) = engine(81.0, 9).resource_levels(&grid_from_zero).unwrap();
        // 81 -> 80, 9 -> 10, 1 -> 0, which is below 1 -> 5.
        assert_eq!(levels, [80, 10, 5].map(Value::Int));
    }

    fn space_xy_wide() -> SearchSpace {
        space(vec![
            ("x", uniform_double(0.0, 1.0)),
            ("epochs", int_range(1, 100)),
            ("y", uniform_double(0.0, 1.0)),
        ])
    }

    #[test]
    fn one_at_a_time_runs_the_whole_schedule() {
        let hb = engine(81.0, 3);
        let space = space_xy();
        let run = simulate(&hb, &space, 1, false, &never);
        assert_eq!(run.history.len(), 206);
        assert_eq!(distinct_keys(&space, &history_points(&run)), 206);
        // Exhausted exactly when the last trial was handed out.
        assert_eq!(run.suggested_at_exhaustion, Some(206));
        // One trial per call, brackets one after another: the first 81 are bracket 4's first rung.
        assert!(run.trace.iter().all(|points| points.len() <= 1));
        assert!(
            run.history[..81]
                .iter()
                .all(|t| t.point[1] == Value::Int(1))
        );
        // After the end, asking again gives nothing and says exhausted.
        let after = hb
            .suggest(&SuggestRequest {
                space: &space,
                history: &run.history,
                pending: &[],
                count: 5,
                seed: SEED,
                state: None,
            })
            .unwrap();
        assert!(after.points.is_empty() && after.exhausted);
        assert!(
            after.state["brackets"]
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b["done"] == true)
        );
    }

    fn history_points(run: &Run) -> Vec<Point> {
        run.history.iter().map(|t| t.point.clone()).collect()
    }

    #[test]
    fn parallel_runs_serve_several_brackets_at_once() {
        let hb = engine(81.0, 3);
        let space = space_xy();
        let run = simulate(&hb, &space, 5, false, &never);
        assert_eq!(run.history.len(), 206);
        assert_eq!(distinct_keys(&space, &history_points(&run)), 206);
        // While bracket 4's first rung waits for its last trials, bracket 3 starts (resource 3
        // trials are handed out before every resource-1 trial has finished).
        let first_three = run
            .trace
            .iter()
            .flatten()
            .position(|p| p[1] == Value::Int(3))
            .unwrap();
        assert!(first_three <= 85, "{first_three}");
        // A batch larger than a rung works too.
        let run = simulate(&hb, &space, 200, false, &never);
        assert_eq!(run.history.len(), 206);
        assert_eq!(
            run.trace[0].len(),
            143,
            "every bracket's first rung at once"
        );
    }

    #[test]
    fn promotions_keep_the_best_configurations_and_their_parameters() {
        let hb = engine(81.0, 3);
        let space = space_xy();
        let run = simulate(&hb, &space, 5, false, &never);
        let others = |p: &Point| (p[0], p[2]);
        let at = |epochs: i64| -> Vec<&CompletedTrial> {
            run.history
                .iter()
                .filter(|t| t.point[1] == Value::Int(epochs))
                .collect()
        };
        // Resource 1 is only bracket 4's first rung; the 27 of them promoted to resource 3 are
        // its best 27, with the same x and y.
        let mut first = at(1);
        assert_eq!(first.len(), 81);
        first.sort_by(|a, b| a.loss.unwrap().total_cmp(&b.loss.unwrap()));
        let best: HashSet<String> = first[..27]
            .iter()
            .map(|t| format!("{:?}", others(&t.point)))
            .collect();
        let promoted: HashSet<String> = at(3)
            .iter()
            .map(|t| format!("{:?}", others(&t.point)))
            .filter(|o| {
                first
                    .iter()
                    .any(|t| format!("{:?}", others(&t.point)) == *o)
            })
            .collect();
        assert_eq!(promoted, best);
        // Every promoted trial (206 - 143 first-rung trials) has its parent one rung below.
        let with_parent = run
            .history
            .iter()
            .filter(|t| {
                let epochs = real(&t.point[1]) as i64;
                epochs > 1
                    && run.history.iter().any(|u| {
                        u.point[1] == Value::Int(epochs / 3) && others(&u.point) == others(&t.point)
                    })
            })
            .count();
        assert_eq!(with_parent, 63);
    }

    #[test]
    fn failed_trials_are_dropped_without_wedging() {
        let hb = engine(81.0, 3);
        let space = space_xy();
        // A few failures in the big first rung leave enough to promote: the schedule is intact.
        let some_fail = |p: &Point| p[1] == Value::Int(1) && real(&p[0]) < 0.1;
        let run = simulate(&hb, &space, 5, false, &some_fail);
        let failed = run.history.iter().filter(|t| t.loss.is_none()).count();
        assert!(failed > 0);
        assert_eq!(run.history.len(), 206);
        // NaN losses count as failures too, and never get promoted.
        let nan_run = {
            let mut history: Vec<CompletedTrial> = Vec::new();
            let mut state = None;
            let mut first = Vec::new();
            for _ in 0..81 {
                let answer = hb
                    .suggest(&SuggestRequest {
                        space: &space,
                        history: &history,
                        pending: &[],
                        count: 1,
                        seed: SEED,
                        state: state.as_ref(),
                    })
                    .unwrap();
                let point = answer.points[0].clone();
                let loss = if first.len() < 60 {
                    f64::NAN
                } else {
                    loss(&space, &point)
                };
                first.push(point.clone());
                history.push(CompletedTrial {
                    point,
                    loss: Some(loss),
                });
                state = Some(answer.state);
            }
            let answer = hb
                .suggest(&SuggestRequest {
                    space: &space,
                    history: &history,
                    pending: &[],
                    count: 100,
                    seed: SEED,
                    state: state.as_ref(),
                })
                .unwrap();
            (first, answer)
        };
        let (first, answer) = nan_run;
        let promoted: Vec<&Point> = answer
            .points
            .iter()
            .filter(|p| p[1] == Value::Int(3))
            .filter(|p| first.iter().any(|f| (f[0], f[2]) == (p[0], p[2])))
            .collect();
        // 21 finite losses, fewer than the 27 planned: all 21 move up, none of the NaNs.
        assert_eq!(promoted.len(), 21);
        assert!(
            promoted
                .iter()
                .all(|p| first[60..].iter().any(|f| (f[0], f[2]) == (p[0], p[2])))
        );

        // A whole rung failing ends its bracket early; the experiment still ends.
        let nines_fail = |p: &Point| p[1] == Value::Int(9);
        let run = simulate(&hb, &space, 5, false, &nines_fail);
        // Lost: bracket 4 rungs at 27 and 81 (3 + 1), bracket 3 likewise (3 + 1), bracket 2 its
        // rungs at 27 and 81 (5 + 1).
        assert_eq!(run.history.len(), 206 - 4 - 4 - 6);
        // Everything failing still ends.
        let run = simulate(&hb, &space, 3, false, &|_: &Point| true);
        assert_eq!(run.history.len(), 143);
    }

    #[test]
    fn restarts_resume_identically_from_state_or_history_alone() {
        let hb = engine(81.0, 3);
        let space = space_xy();
        let fails = |p: &Point| real(&p[2]) > 0.9;
        for parallel in [1, 5, 13] {
            let with_state = simulate(&hb, &space, parallel, false, &fails);
            let without = simulate(&hb, &space, parallel, true, &fails);
            assert_eq!(with_state.trace, without.trace, "parallel {parallel}");
            // A fresh engine built from the same settings answers the same.
            let again = simulate(&engine(81.0, 3), &space, parallel, false, &fails);
            assert_eq!(with_state.trace, again.trace);
        }
    }

    #[test]
    fn waits_for_pending_trials_and_never_repeats_them() {
        let hb = engine(9.0, 3);
        let space = space(vec![
            ("x", uniform_double(0.0, 1.0)),
            ("epochs", int_range(1, 9)),
        ]);
        // Schedule (9, 1) (3, 3) (1, 9) | (5, 3) (1, 9) | (3, 9).
        let first = ask(&hb, &space, &[], &[], 100, SEED, None).unwrap();
        assert_eq!(first.points.len(), 9 + 5 + 3);
        assert!(!first.exhausted);
        // Everything running: nothing to add, not exhausted.
        let wait = ask(
            &hb,
            &space,
            &[],
            &first.points,
            100,
            SEED,
            Some(&first.state),
        )
        .unwrap();
        assert!(wait.points.is_empty() && !wait.exhausted);
        // A saved state, then the same call with no state: same answer.
        let stateless = ask(&hb, &space, &[], &first.points, 100, SEED, None).unwrap();
        assert_eq!(stateless.points, wait.points);
        // Count 0 gives nothing and is not exhausted.
        let none = ask(&hb, &space, &[], &[], 0, SEED, None).unwrap();
        assert!(none.points.is_empty() && !none.exhausted);
        // Deterministic given the seed; another seed gives other configurations.
        assert_eq!(ask(&hb, &space, &[], &[], 100, SEED, None).unwrap(), first);
        let other = ask(&hb, &space, &[], &[], 100, SEED + 1, None).unwrap();
        assert_ne!(other.points, first.points);
    }

    #[test]
    fn foreign_and_malformed_trials_are_ignored() {
        let hb = engine(9.0, 3);
        let space = space(vec![
            ("x", uniform_double(0.0, 1.0)),
            ("epochs", int_range(1, 9)),
        ]);
        let clean = ask(&hb, &space, &[], &[], 100, SEED, None).unwrap();
        let history = vec![
            CompletedTrial {
                point: vec![],
                loss: Some(1.0),
            },
            CompletedTrial {
                point: vec![Value::Choice(3), Value::Double(f64::NAN), Value::Int(2)],
                loss: Some(f64::NEG_INFINITY),
            },
            CompletedTrial {
                point: vec![Value::Double(0.123), Value::Int(1)],
                loss: None,
            },
        ];
        let answer = hb
            .suggest(&SuggestRequest {
                space: &space,
                history: &history,
                pending: &[vec![Value::Int(7)]],
                count: 100,
                seed: SEED,
                state: None,
            })
            .unwrap();
        assert_eq!(answer.points, clean.points);
    }

    #[test]
    fn small_finite_spaces_share_trials_instead_of_repeating_points() {
        let hb = engine(81.0, 3);
        let finite = space(vec![
            ("opt", choices(&["adam", "sgd"])),
            ("epochs", int_range(1, 81)),
        ]);
        for parallel in [1, 4] {
            let run = simulate(&hb, &finite, parallel, false, &never);
            let points = history_points(&run);
            assert_eq!(distinct_keys(&finite, &points), points.len());
            // Two configurations at five resources at most.
            assert!(points.len() <= 10, "{}", points.len());
            assert!(points.iter().all(|p| finite.contains(p)));
        }
        // Only the resource: one configuration per bracket.
        let only = space(vec![("epochs", int_range(1, 81))]);
        let run = simulate(&hb, &only, 2, false, &never);
        assert_eq!(run.history.len(), 5);
    }

    #[test]
    fn state_records_progress_and_bad_states_are_refused() {
        let hb = engine(81.0, 3);
        let space = space_xy();
        let first = ask(&hb, &space, &[], &[], 2, SEED, None).unwrap();
        assert_eq!(
            first.state,
            json!({
                "r_l": 81.0,
                "eta": 3,
                "resource_name": "epochs",
                "brackets": [{"s": 4}, {"s": 3}, {"s": 2}, {"s": 1}, {"s": 0}],
            })
        );
        // Mid-run: some bracket has moved past its first rung, with its members listed.
        let run = simulate(&hb, &space, 1, false, &never);
        // 81 trials at the first rung and 27 at the second have finished: the third is next.
        let mid = &run.history[..108];
        let answer = hb
            .suggest(&SuggestRequest {
                space: &space,
                history: mid,
                pending: &[],
                count: 1,
                seed: SEED,
                state: None,
            })
            .unwrap();
        let bracket = &answer.state["brackets"][0];
        assert_eq!(bracket["rung"], 2);
        assert_eq!(bracket["members"].as_array().unwrap().len(), 9);

        let refused = |state: Json| {
            let result = ask(&hb, &space, &[], &[], 1, SEED, Some(&state));
            match result {
                Err(EngineError::BadState(message)) => message,
                other => panic!("{state} gave {other:?}"),
            }
        };
        let mut other_settings = first.state.clone();
        other_settings["eta"] = json!(2);
        assert!(refused(other_settings).contains("eta = 2"));
        assert!(refused(json!({"next": 3})).contains("expected an object"));
        let mut short = first.state.clone();
        short["brackets"] = json!([{"s": 4}]);
        assert!(refused(short).contains("1 brackets saved"));
        for bracket in [
            json!({"s": 3}),
            json!({"s": 4, "rung": 1, "members": [81]}),
            json!({"s": 4, "rung": 5, "members": [0]}),
            json!({"s": 4, "rung": 0, "members": [0]}),
            json!({"s": 4, "rung": 1, "members": []}),
            json!({"s": 4, "rung": 4, "members": [0, 1]}),
            json!({"s": 4, "extra": 1}),
            json!(7),
        ] {
            let mut state = first.state.clone();
            state["brackets"][0] = bracket.clone();
            let message = refused(state);
            assert!(message.starts_with("hyperband: "), "{message}");
        }
        // A valid hand-made state is followed.
        let mut state = first.state.clone();
        state["brackets"][0] = json!({"s": 4, "rung": 4, "members": [5]});
        let answer = ask(&hb, &space, &[], &[], 1, SEED, Some(&state)).unwrap();
        assert_eq!(answer.points[0][1], Value::Int(81));
        let mut done = first.state.clone();
        for b in done["brackets"].as_array_mut().unwrap() {
            b["done"] = json!(true);
        }
        let answer = ask(&hb, &space, &[], &[], 1, SEED, Some(&done)).unwrap();
        assert!(answer.points.is_empty() && answer.exhausted);
    }
}
