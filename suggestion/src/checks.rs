//! Checks shared by the Experiment spec and the suggestion API: parameters into a typed search
//! space, and an algorithm with its settings into a configured engine. Every problem is a
//! [`FieldError`] that names the path, the value and what is accepted; all problems are collected,
//! not just the first.

use std::collections::BTreeMap;

use sextant_algorithms::{Distribution, Domain, Parameter, SearchSpace, SpaceError};

use crate::field_error::FieldError;
use crate::katib::{AlgorithmSpec, ParameterSpec, parameter_type};
use sextant_algorithms::hyperband::schedule as hyperband_schedule;

use crate::registry::{AVAILABLE_ALGORITHMS, ConfiguredEngine, SettingError, hyperband_settings};

// Accepted values as shown in messages: Katib's `ParameterType` and `Distribution`
// (experiment_types.go).
const PARAMETER_TYPES: &str = "double, int, discrete, categorical";
const DISTRIBUTIONS: &str = "uniform, logUniform, normal, logNormal";

/// The problems found so far.
#[derive(Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    /// Records a problem.
    pub fn add(
        &mut self,
        path: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.0.push(FieldError::new(path, value, message));
    }

    /// Records a problem.
    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// How many so far.
    pub fn count(&self) -> usize {
        self.0.len()
    }
}

/// Checks every parameter (at path `base`, e.g. `spec.parameters`) and builds its domain.
pub fn check_parameters(
    parameters: &[ParameterSpec],
    base: &str,
    problems: &mut Problems,
) -> Option<Vec<Parameter>> {
    let before = problems.count();
    let mut names = BTreeMap::new();
    let mut checked = Vec::new();
    for (i, parameter) in parameters.iter().enumerate() {
        let path = format!("{base}[{i}]");
        if parameter.name.is_empty() {
            problems.add(
                format!("{path}.name"),
                "",
                "required: the name trialParameters refer to",
            );
        } else if let Some(first) = names.insert(parameter.name.as_str(), i) {
            problems.add(
                format!("{path}.name"),
                &parameter.name,
                format!("already the name of {base}[{first}]; names must be unique"),
            );
        }
        if let Some(domain) = check_domain(parameter, &path, problems) {
            checked.push(Parameter {
                name: parameter.name.clone(),
                domain,
            });
        }
    }
    (problems.count() == before).then_some(checked)
}

/// Checks the parameters and builds the search space for `algorithm` (name, settings), if known.
pub fn search_space(
    parameters: &[ParameterSpec],
    base: &str,
    algorithm: Option<(&str, &[(String, String)])>,
    problems: &mut Problems,
) -> Option<SearchSpace> {
    let mut checked = check_parameters(parameters, base, problems)?;
    if let Some((name, settings)) = algorithm {
        widen_hyperband_resource(name, settings, &mut checked);
    }
    match SearchSpace::new(checked) {
        Ok(space) => Some(space),
        Err(error) => {
            problems.push(space_error(error, parameters, base));
            None
        }
    }
}

/// Katib's Hyperband sets the resource parameter of every trial itself and ignores that
/// parameter's `feasibleSpace` (Katib's own example declares `num-epochs` with min = max = 1 and
/// `r_l: 2`). So that such YAML runs unchanged, the resource parameter's range is widened to hold
/// every rung, from 1 (or the smallest rung) to `r_l`.
pub fn widen_hyperband_resource(
    algorithm: &str,
    settings: &[(String, String)],
    parameters: &mut [Parameter],
) {
    if algorithm != "hyperband" {
        return;
    }
    let Ok(hyperband) = hyperband_settings(settings) else {
        return;
    };
    let smallest_rung = hyperband_schedule(hyperband.r_l, hyperband.eta)
        .iter()
        .flat_map(|bracket| bracket.rungs.iter().map(|rung| rung.resource))
        .fold(hyperband.r_l, f64::min);
    let Some(parameter) = parameters
        .iter_mut()
        .find(|p| p.name == hyperband.resource_parameter)
    else {
        return;
    };
    match &mut parameter.domain {
        Domain::Int { min, max, .. } => {
            *min = (*min).min(1);
            *max = (*max).max(hyperband.r_l.ceil() as i64);
        }
        Domain::Double { min, max, .. } => {
            *min = min.min(smallest_rung);
            *max = max.max(hyperband.r_l);
        }
        Domain::Discrete { .. } | Domain::Categorical { .. } => {}
    }
}

/// An algorithm that passed [`check_algorithm`].
#[derive(Debug)]
pub struct CheckedAlgorithm {
    /// Katib algorithm name.
    pub name: String,
    /// Settings as (name, value).
    pub settings: Vec<(String, String)>,
    /// The engine, configured.
    pub engine: ConfiguredEngine,
}

/// Checks `algorithm` (at path `base`) against the registry: the name, each setting once, and
/// the settings' values.
pub fn check_algorithm(
    algorithm: Option<&AlgorithmSpec>,
    base: &str,
    problems: &mut Problems,
) -> Option<CheckedAlgorithm> {
    let available = AVAILABLE_ALGORITHMS.join(", ");
    let Some(algorithm) = algorithm else {
        problems.add(
            base,
            "",
            format!("required: algorithmName, one of {available}"),
        );
        return None;
    };
    let before = problems.count();
    let name = algorithm.algorithm_name.as_str();
    if name.is_empty() {
        problems.add(
            format!("{base}.algorithmName"),
            "",
            format!("required; accepted: {available}"),
        );
    }
    let mut seen = BTreeMap::new();
    for (k, setting) in algorithm.algorithm_settings.iter().enumerate() {
        let path = format!("{base}.algorithmSettings[{k}].name");
        if setting.name.is_empty() {
            problems.add(path, "", "required: the setting's name");
        } else if let Some(first) = seen.insert(setting.name.as_str(), k) {
            problems.add(
                path,
                &setting.name,
                format!("already set by algorithmSettings[{first}]; set each setting once"),
            );
        }
    }
    if name.is_empty() {
        return None;
    }
    let settings: Vec<(String, String)> = algorithm
        .algorithm_settings
        .iter()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    match crate::registry::configure(name, &settings) {
        Ok(engine) if problems.count() == before => Some(CheckedAlgorithm {
            name: name.to_string(),
            settings,
            engine,
        }),
        Ok(_) => None,
        Err(error) => {
            let index = error
                .setting_name()
                .and_then(|s| settings.iter().position(|(n, _)| n == s));
            match (index, &error) {
                (Some(k), SettingError::BadValue { value, .. }) => problems.add(
                    format!("{base}.algorithmSettings[{k}].value"),
                    value,
                    error.to_string(),
                ),
                (Some(k), _) => problems.add(
                    format!("{base}.algorithmSettings[{k}].name"),
                    &settings[k].0,
                    error.to_string(),
                ),
                (None, _) => problems.add(format!("{base}.algorithmName"), name, error.to_string()),
            }
            None
        }
    }
}

fn check_domain(parameter: &ParameterSpec, base: &str, problems: &mut Problems) -> Option<Domain> {
    let space = &parameter.feasible_space;
    let space_path = format!("{base}.feasibleSpace");
    let distribution = match set(&space.distribution).unwrap_or("uniform") {
        "uniform" => Some(Distribution::Uniform),
        "logUniform" => Some(Distribution::LogUniform),
        "normal" => Some(Distribution::Normal),
        "logNormal" => Some(Distribution::LogNormal),
        other => {
            problems.add(
                format!("{space_path}.distribution"),
                other,
                format!("accepted: {DISTRIBUTIONS}"),
            );
            None
        }
    };
    let kind = parameter.parameter_type.as_str();
    match kind {
        parameter_type::DOUBLE | parameter_type::INT => {
            if !space.list.is_empty() {
                problems.add(
                    format!("{space_path}.list"),
                    space.list.join(", "),
                    format!(
                        "list is for discrete and categorical parameters; a {kind} parameter \
                         takes min and max (and optionally step)"
                    ),
                );
            }
            if kind == parameter_type::DOUBLE {
                double_domain(space, &space_path, distribution, problems)
            } else {
                int_domain(space, &space_path, distribution, problems)
            }
        }
        parameter_type::DISCRETE | parameter_type::CATEGORICAL => {
            for (field, value) in [
                ("min", &space.min),
                ("max", &space.max),
                ("step", &space.step),
            ] {
                if let Some(value) = set(value) {
                    problems.add(
                        format!("{space_path}.{field}"),
                        value,
                        format!(
                            "{field} is for int and double parameters; a {kind} parameter takes \
                             only list"
                        ),
                    );
                }
            }
            if distribution.is_some_and(|d| d != Distribution::Uniform) {
                problems.add(
                    format!("{space_path}.distribution"),
                    set(&space.distribution).unwrap_or_default(),
                    format!(
                        "a distribution applies to int and double parameters only; a {kind} \
                         parameter accepts uniform (or no distribution)"
                    ),
                );
            }
            if space.list.is_empty() {
                let example = if kind == parameter_type::DISCRETE {
                    "numbers, e.g. [\"16\", \"32\", \"64\"]"
                } else {
                    "strings, e.g. [\"sgd\", \"adam\"]"
                };
                problems.add(
                    format!("{space_path}.list"),
                    "",
                    format!(
                        "required for a {kind} parameter: the values to choose from, {example}"
                    ),
                );
                return None;
            }
            if kind == parameter_type::DISCRETE {
                discrete_domain(&space.list, &space_path, problems)
            } else {
                categorical_domain(&space.list, &space_path, problems)
            }
        }
        other => {
            problems.add(
                format!("{base}.parameterType"),
                other,
                format!("accepted: {PARAMETER_TYPES}"),
            );
            None
        }
    }
}

fn double_domain(
    space: &crate::katib::FeasibleSpace,
    path: &str,
    distribution: Option<Distribution>,
    problems: &mut Problems,
) -> Option<Domain> {
    let parse = |field: &str, value: &Option<String>, problems: &mut Problems| {
        let text = set(value)?;
        match text.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Some(x),
            _ => {
                problems.add(
                    format!("{path}.{field}"),
                    text,
                    "expected a finite number, e.g. \"0.01\" or \"1e-3\"",
                );
                None
            }
        }
    };
    let min = required_bound("min", &space.min, path, "double", problems)
        .then(|| parse("min", &space.min, problems))
        .flatten();
    let max = required_bound("max", &space.max, path, "double", problems)
        .then(|| parse("max", &space.max, problems))
        .flatten();
    let step = parse("step", &space.step, problems);
    if let Some(step) = step.filter(|s| *s <= 0.0) {
        problems.add(
            format!("{path}.step"),
            set(&space.step).unwrap_or_default(),
            format!("{step} is not positive; expected a step greater than 0"),
        );
    }
    let (min, max) = ordered_bounds(min, max, space, path, problems)?;
    check_log_bound(min, distribution?, space, path, problems)?;
    if step.is_some_and(|s| s <= 0.0) {
        return None;
    }
    Some(Domain::Double {
        min,
        max,
        step,
        distribution: distribution?,
    })
}

fn int_domain(
    space: &crate::katib::FeasibleSpace,
    path: &str,
    distribution: Option<Distribution>,
    problems: &mut Problems,
) -> Option<Domain> {
    let parse = |field: &str, value: &Option<String>, problems: &mut Problems| {
        let text = set(value)?;
        match text.trim().parse::<i64>() {
            Ok(x) => Some(x),
            Err(_) => {
                problems.add(
                    format!("{path}.{field}"),
                    text,
                    "expected an integer, e.g. \"3\" (use parameterType double for fractions)",
                );
                None
            }
        }
    };
    let min = required_bound("min", &space.min, path, "int", problems)
        .then(|| parse("min", &space.min, problems))
        .flatten();
    let max = required_bound("max", &space.max, path, "int", problems)
        .then(|| parse("max", &space.max, problems))
        .flatten();
    let step = parse("step", &space.step, problems);
    if let Some(step) = step.filter(|s| *s <= 0) {
        problems.add(
            format!("{path}.step"),
            step.to_string(),
            "expected a step of 1 or more",
        );
    }
    let (min, max) = ordered_bounds(min, max, space, path, problems)?;
    // Compared as f64: the log check only cares about the sign.
    check_log_bound(min as f64, distribution?, space, path, problems)?;
    if step.is_some_and(|s| s <= 0) {
        return None;
    }
    Some(Domain::Int {
        min,
        max,
        step,
        distribution: distribution?,
    })
}

/// Records a missing bound; true when the bound is present.
fn required_bound(
    field: &str,
    value: &Option<String>,
    path: &str,
    kind: &str,
    problems: &mut Problems,
) -> bool {
    if set(value).is_some() {
        return true;
    }
    let meaning = if field == "min" { "lower" } else { "upper" };
    problems.add(
        format!("{path}.{field}"),
        "",
        format!("required for a {kind} parameter: the {meaning} bound, inclusive"),
    );
    false
}

fn ordered_bounds<T: PartialOrd + std::fmt::Display + Copy>(
    min: Option<T>,
    max: Option<T>,
    space: &crate::katib::FeasibleSpace,
    path: &str,
    problems: &mut Problems,
) -> Option<(T, T)> {
    let (min, max) = (min?, max?);
    if min > max {
        problems.add(
            format!("{path}.max"),
            set(&space.max).unwrap_or_default(),
            format!("must be greater than or equal to min ({min})"),
        );
        return None;
    }
    Some((min, max))
}

fn check_log_bound(
    min: f64,
    distribution: Distribution,
    space: &crate::katib::FeasibleSpace,
    path: &str,
    problems: &mut Problems,
) -> Option<()> {
    if matches!(
        distribution,
        Distribution::LogUniform | Distribution::LogNormal
    ) && min <= 0.0
    {
        let name = set(&space.distribution).unwrap_or_default();
        problems.add(
            format!("{path}.min"),
            set(&space.min).unwrap_or_default(),
            format!(
                "{name} spreads values over ln(min)..ln(max), so min must be greater than 0; \
                 accepted: a positive min, or distribution uniform or normal"
            ),
        );
        return None;
    }
    Some(())
}

fn discrete_domain(list: &[String], path: &str, problems: &mut Problems) -> Option<Domain> {
    let before = problems.count();
    let mut values: Vec<f64> = Vec::new();
    for (k, label) in list.iter().enumerate() {
        let item = format!("{path}.list[{k}]");
        match label.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => {
                if let Some(first) = values.iter().position(|v| *v == x) {
                    problems.add(
                        item,
                        label,
                        format!("same value as list[{first}]; list each value once"),
                    );
                }
                values.push(x);
            }
            _ => problems.add(
                item,
                label,
                "expected a number: a discrete parameter's list holds numbers (use parameterType \
                 categorical for strings)",
            ),
        }
    }
    (problems.count() == before).then(|| Domain::Discrete {
        values,
        labels: list.to_vec(),
    })
}

fn categorical_domain(list: &[String], path: &str, problems: &mut Problems) -> Option<Domain> {
    let before = problems.count();
    for (k, choice) in list.iter().enumerate() {
        if let Some(first) = list[..k].iter().position(|c| c == choice) {
            problems.add(
                format!("{path}.list[{k}]"),
                choice,
                format!("same choice as list[{first}]; list each choice once"),
            );
        }
    }
    (problems.count() == before).then(|| Domain::Categorical {
        choices: list.to_vec(),
    })
}

/// A search-space error for a parameter the checks above let through (a step wider than the range,
/// bounds too large to sample), placed on that parameter's feasible space.
pub fn space_error(error: SpaceError, parameters: &[ParameterSpec], base: &str) -> FieldError {
    match &error {
        SpaceError::BadParameter { name, message } => {
            match parameters.iter().position(|p| &p.name == name) {
                Some(i) => FieldError::new(format!("{base}[{i}].feasibleSpace"), name, message),
                None => FieldError::new(base, name, message),
            }
        }
        SpaceError::BadAssignment { .. } => FieldError::new(base, "", error.to_string()),
    }
}

/// A string field that is present and not empty (Go's zero value counts as unset).
pub fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}
