//! Katib's validation rules, and the typed experiment they produce.
//!
//! The rules are those of Katib's validating webhook
//! (`pkg/webhook/v1beta1/experiment/validator/validator.go`) plus the checks Katib leaves to its
//! suggestion services or to the first trial (numbers that do not parse, `min > max`, a log
//! distribution over non-positive values, a search parameter no trial parameter passes on, an engine
//! that cannot search the space). Sextant runs them all up front, so a spec that cannot run is
//! refused before any trial starts.
//!
//! Unlike Katib, which stops at the first problem of some sections, every rule is checked and every
//! problem is reported at once, each as a [`FieldError`] with the exact path
//! (`spec.parameters[2].feasibleSpace.max`), the value as written, and what would be accepted.
//!
//! Parts of Katib that Sextant does not have yet (early stopping, NAS, ConfigMap templates, the
//! TensorFlowEvent / PrometheusMetric / Custom / Push collectors, the algorithms the registry lists
//! as not built) are refused with a message that says so, never silently ignored or replaced.
//!
//! The output, [`CheckedExperiment`], is built only from checked values: the controller never parses
//! a spec string again.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sextant_algorithms::early_stopping::Rule;
use sextant_algorithms::{Parameter, SearchSpace};
use sextant_suggestion::SettingError;
use sextant_suggestion::checks::{Problems, set, widen_hyperband_resource};
use sextant_suggestion::early_stopping::{AVAILABLE_RULES, configure_early_stopping};

use super::defaults::{DEFAULT_PARALLEL_TRIAL_COUNT, FILE_KIND};
use super::template::{
    ACCEPTED_META_REFERENCES, MetaReference, PLACEHOLDER_PREFIX, TRIAL_SPEC_PATH, TrialIdentity,
    container_names, list_or_none, placeholders_used, primary_container,
};
use super::types::{Experiment, ExperimentSpec};
use super::{
    Algorithm, CheckedExperiment, Collector, Direction, FileFormat, MetricStrategyKind, Objective,
    SpecError,
};

/// Longest accepted `metadata.name`: Katib names the suggestion Deployment after the experiment and
/// the algorithm, which must fit Kubernetes' 63 characters (Katib PR #2468, validator.go).
pub const MAX_NAME_LENGTH: usize = 40;

/// Largest accepted trial count: Katib stores the counts as `int32` (experiment_types.go).
pub const MAX_COUNT: i64 = i32::MAX as i64;

/// `spec.resumePolicy` values (Katib `NeverResume`, `LongRunning`, `FromVolume`, experiment_types.go).
pub const RESUME_POLICIES: &[&str] = &["Never", "LongRunning", "FromVolume"];

/// Collector kinds Sextant runs today.
pub const AVAILABLE_COLLECTOR_KINDS: &[&str] = &["StdOut", "File", "None", "Push"];

/// Katib collector kinds (common_types.go) that Sextant has not built yet.
pub const COLLECTOR_KINDS_NOT_YET_BUILT: &[&str] =
    &["TensorFlowEvent", "PrometheusMetric", "Custom"];

/// Metric file formats (Katib `TextFormat`, `JsonFormat`, common_types.go).
pub const FILE_FORMATS: &[&str] = &["TEXT", "JSON"];

// Accepted metric strategies as shown in messages: Katib's `MetricStrategyType` (common_types.go).
const METRIC_STRATEGIES: &str = "min, max, latest";

/// Checks a defaulted experiment and produces its typed form.
pub fn validate(experiment: Experiment) -> Result<CheckedExperiment, SpecError> {
    let mut problems = Problems::default();
    let spec = &experiment.spec;

    check_name(&experiment.metadata.name, &mut problems);
    let counts = check_counts(spec, &mut problems);
    check_resume_policy(spec, &mut problems);
    let objective = check_objective(spec, &mut problems);
    let algorithm = sextant_suggestion::checks::check_algorithm(
        spec.algorithm.as_ref(),
        "spec.algorithm",
        &mut problems,
    )
    .map(|checked| {
        let seed = checked.engine.seed;
        (
            Algorithm {
                name: checked.name,
                settings: checked.settings,
                seed,
            },
            checked.engine,
        )
    });
    let early_stopping = check_early_stopping(spec, &mut problems);
    let parameters = check_parameters(spec, &mut problems);
    let collector = check_collector(spec, &mut problems);
    check_trial_template(spec, &mut problems);

    let space = parameters.and_then(|mut parameters| {
        if let Some((algorithm, _)) = &algorithm {
            widen_hyperband_resource(&algorithm.name, &algorithm.settings, &mut parameters);
        }
        match SearchSpace::new(parameters) {
            Ok(space) => Some(space),
            Err(error) => {
                problems.push(sextant_suggestion::checks::space_error(
                    error,
                    &spec.parameters,
                    "spec.parameters",
                ));
                None
            }
        }
    });
    if let (Some(space), Some((algorithm, engine))) = (&space, &algorithm)
        && let Err(error) = engine.engine.check_space(space)
    {
        problems.add(
            "spec.algorithm.algorithmName",
            &algorithm.name,
            format!(
                "algorithm {:?} cannot search these spec.parameters: {error}",
                algorithm.name
            ),
        );
    }

    match (counts, objective, algorithm, space, collector) {
        (Some(counts), Some(objective), Some((algorithm, _)), Some(space), Some(collector))
            if problems.0.is_empty() && early_stopping.is_ok() =>
        {
            let template = experiment.spec.trial_template.clone().unwrap_or_default();
            Ok(CheckedExperiment {
                name: experiment.metadata.name.clone(),
                space,
                objective,
                algorithm,
                parallel_trial_count: counts.parallel,
                max_trial_count: counts.max,
                max_failed_trial_count: counts.max_failed,
                collector,
                template,
                early_stopping: early_stopping.unwrap_or_default(),
                experiment,
            })
        }
        _ => {
            if problems.0.is_empty() {
                // Every check that returns nothing records why; this is only a safety net.
                problems.add("spec", "", "the experiment could not be checked");
            }
            Err(SpecError::Invalid(problems.0))
        }
    }
}

fn check_name(name: &str, problems: &mut Problems) {
    const ACCEPTED: &str = "lower-case letters, digits and '-', starting with a letter and ending \
                            with a letter or digit (e.g. \"my-experiment\"; regex ^[a-z]([-a-z0-9]*[a-z0-9])?$)";
    if name.is_empty() {
        problems.add("metadata.name", "", format!("required: {ACCEPTED}"));
        return;
    }
    let bytes = name.as_bytes();
    let well_formed = bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !well_formed {
        problems.add("metadata.name", name, format!("expected {ACCEPTED}"));
    }
    let length = name.chars().count();
    if length > MAX_NAME_LENGTH {
        problems.add(
            "metadata.name",
            name,
            format!("{length} characters; at most {MAX_NAME_LENGTH} are accepted (Katib's limit)"),
        );
    }
}

struct Counts {
    parallel: u32,
    max: Option<u32>,
    max_failed: Option<u32>,
}

fn check_counts(spec: &ExperimentSpec, problems: &mut Problems) -> Option<Counts> {
    let before = problems.count();
    let mut count = |field: &str, value: Option<i64>, least: i64| -> Option<u32> {
        let value = value?;
        let path = format!("spec.{field}");
        if value < least {
            let accepted = if least == 0 {
                "must be 0 or more"
            } else {
                "must be greater than 0"
            };
            problems.add(path, value.to_string(), accepted);
            None
        } else if value > MAX_COUNT {
            problems.add(
                path,
                value.to_string(),
                format!("must be at most {MAX_COUNT} (Katib stores counts as int32)"),
            );
            None
        } else {
            u32::try_from(value).ok()
        }
    };
    let parallel = count(
        "parallelTrialCount",
        Some(
            spec.parallel_trial_count
                .unwrap_or(DEFAULT_PARALLEL_TRIAL_COUNT),
        ),
        1,
    );
    let max = count("maxTrialCount", spec.max_trial_count, 1);
    let max_failed = count("maxFailedTrialCount", spec.max_failed_trial_count, 0);
    if let Some(max) = max {
        if let Some(max_failed) = max_failed.filter(|f| *f > max) {
            problems.add(
                "spec.maxFailedTrialCount",
                max_failed.to_string(),
                format!("must be at most spec.maxTrialCount ({max})"),
            );
        }
        if let Some(parallel) = parallel.filter(|p| *p > max) {
            problems.add(
                "spec.parallelTrialCount",
                parallel.to_string(),
                format!("must be at most spec.maxTrialCount ({max})"),
            );
        }
    }
    if problems.count() > before {
        return None;
    }
    Some(Counts {
        parallel: parallel?,
        max,
        max_failed,
    })
}

fn check_resume_policy(spec: &ExperimentSpec, problems: &mut Problems) {
    if let Some(policy) = spec.resume_policy.as_deref()
        && !policy.is_empty()
        && !RESUME_POLICIES.contains(&policy)
    {
        problems.add(
            "spec.resumePolicy",
            policy,
            format!("accepted: {}", RESUME_POLICIES.join(", ")),
        );
    }
}

fn check_objective(spec: &ExperimentSpec, problems: &mut Problems) -> Option<Objective> {
    let Some(objective) = spec.objective.as_ref() else {
        problems.add(
            "spec.objective",
            "",
            "required: type (minimize or maximize) and objectiveMetricName",
        );
        return None;
    };
    let before = problems.count();
    let direction = match objective.objective_type.as_str() {
        "minimize" => Some(Direction::Minimize),
        "maximize" => Some(Direction::Maximize),
        other => {
            problems.add("spec.objective.type", other, "accepted: minimize, maximize");
            None
        }
    };
    let metric = objective.objective_metric_name.as_str();
    if metric.is_empty() {
        problems.add(
            "spec.objective.objectiveMetricName",
            "",
            "required: the name of the metric to optimise, as the trial reports it",
        );
    }
    if let Some(goal) = objective.goal.filter(|g| !g.is_finite()) {
        problems.add(
            "spec.objective.goal",
            goal.to_string(),
            "expected a finite number",
        );
    }

    let mut seen = BTreeMap::new();
    for (k, name) in objective.additional_metric_names.iter().enumerate() {
        let path = format!("spec.objective.additionalMetricNames[{k}]");
        if name.is_empty() {
            problems.add(path, "", "expected a metric name, not an empty string");
        } else if name == metric {
            problems.add(
                path,
                name,
                "must not repeat spec.objective.objectiveMetricName; list only the other metrics",
            );
        } else if let Some(first) = seen.insert(name.as_str(), k) {
            problems.add(
                path,
                name,
                format!("already listed as additionalMetricNames[{first}]; list each metric once"),
            );
        }
    }

    let mut metric_names: Vec<&str> = vec![metric];
    metric_names.extend(objective.additional_metric_names.iter().map(String::as_str));
    let mut strategies = BTreeMap::new();
    let mut named = BTreeMap::new();
    for (k, strategy) in objective.metric_strategies.iter().enumerate() {
        let path = format!("spec.objective.metricStrategies[{k}]");
        if !metric_names.contains(&strategy.name.as_str()) || strategy.name.is_empty() {
            problems.add(
                format!("{path}.name"),
                &strategy.name,
                format!(
                    "not a metric of this objective; accepted: {}",
                    list_or_none(
                        &metric_names
                            .iter()
                            .copied()
                            .filter(|m| !m.is_empty())
                            .collect::<Vec<_>>()
                    )
                ),
            );
        } else if let Some(first) = named.insert(strategy.name.as_str(), k) {
            problems.add(
                format!("{path}.name"),
                &strategy.name,
                format!("already given a strategy by metricStrategies[{first}]"),
            );
        }
        let kind = match strategy.value.as_str() {
            "min" => Some(MetricStrategyKind::Min),
            "max" => Some(MetricStrategyKind::Max),
            "latest" => Some(MetricStrategyKind::Latest),
            other => {
                problems.add(
                    format!("{path}.value"),
                    other,
                    format!("accepted: {METRIC_STRATEGIES}"),
                );
                None
            }
        };
        if let Some(kind) = kind {
            strategies.entry(strategy.name.clone()).or_insert(kind);
        }
    }
    if problems.count() > before {
        return None;
    }
    let direction = direction?;
    // Defaulting gives every metric a strategy; this covers a caller that skipped it.
    let fallback = match direction {
        Direction::Minimize => MetricStrategyKind::Min,
        Direction::Maximize => MetricStrategyKind::Max,
    };
    for name in &metric_names {
        strategies.entry((*name).to_string()).or_insert(fallback);
    }
    Some(Objective {
        direction,
        goal: objective.goal,
        metric: metric.to_string(),
        additional_metrics: objective.additional_metric_names.clone(),
        strategies,
    })
}

/// `spec.earlyStopping`: `Ok(None)` when absent, the rule when valid, `Err(())` when refused
/// (the problems say why).
fn check_early_stopping(
    spec: &ExperimentSpec,
    problems: &mut Problems,
) -> Result<Option<Rule>, ()> {
    let Some(early_stopping) = spec.early_stopping.as_ref() else {
        return Ok(None);
    };
    let name = early_stopping.algorithm_name.as_str();
    if name.is_empty() {
        problems.add(
            "spec.earlyStopping.algorithmName",
            "",
            format!("required; accepted: {}", AVAILABLE_RULES.join(", ")),
        );
        return Err(());
    }
    let settings: Vec<(String, String)> = early_stopping
        .algorithm_settings
        .iter()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    configure_early_stopping(name, &settings)
        .map(Some)
        .map_err(|error| {
            let index = error
                .setting_name()
                .and_then(|s| settings.iter().position(|(n, _)| n == s));
            match (index, &error) {
                (Some(k), SettingError::BadValue { value, .. }) => problems.add(
                    format!("spec.earlyStopping.algorithmSettings[{k}].value"),
                    value,
                    error.to_string(),
                ),
                (Some(k), _) => problems.add(
                    format!("spec.earlyStopping.algorithmSettings[{k}].name"),
                    &settings[k].0,
                    error.to_string(),
                ),
                (None, _) => {
                    problems.add("spec.earlyStopping.algorithmName", name, error.to_string())
                }
            }
        })
}

fn check_parameters(spec: &ExperimentSpec, problems: &mut Problems) -> Option<Vec<Parameter>> {
    if spec.nas_config.is_some() {
        problems.add(
            "spec.nasConfig",
            "",
            "NAS (enas/darts) is not built yet in Sextant; accepted now: a hyperparameter search \
             space under spec.parameters",
        );
    }
    if spec.parameters.is_empty() {
        if spec.nas_config.is_none() {
            problems.add(
                "spec.parameters",
                "",
                "required: at least one parameter to search (name, parameterType, feasibleSpace)",
            );
        }
        return None;
    }
    sextant_suggestion::checks::check_parameters(&spec.parameters, "spec.parameters", problems)
}

fn check_collector(spec: &ExperimentSpec, problems: &mut Problems) -> Option<Collector> {
    const BASE: &str = "spec.metricsCollectorSpec";
    let before = problems.count();
    let collector_spec = spec.metrics_collector_spec.clone().unwrap_or_default();
    let source = collector_spec.source.unwrap_or_default();
    let (kind, custom) = match collector_spec.collector {
        Some(collector) => (collector.kind, collector.custom_collector),
        None => ("StdOut".to_string(), None),
    };
    let available = AVAILABLE_COLLECTOR_KINDS.join(", ");
    if custom.is_some() && kind != "Custom" {
        problems.add(
            format!("{BASE}.collector.customCollector"),
            "",
            format!("only read by collector kind Custom, not {kind:?}; remove it"),
        );
    }
    if source.http_get.is_some() && kind != "PrometheusMetric" {
        problems.add(
            format!("{BASE}.source.httpGet"),
            "",
            format!("only read by collector kind PrometheusMetric, not {kind:?}; remove it"),
        );
    }
    let filters = source
        .filter
        .as_ref()
        .map(|f| f.metrics_format.clone())
        .unwrap_or_default();
    check_filters(&filters, problems);

    let collector = match kind.as_str() {
        "StdOut" | "None" | "Push" => {
            if source.file_system_path.is_some() {
                problems.add(
                    format!("{BASE}.source.fileSystemPath"),
                    "",
                    format!(
                        "only read by collector kind File; kind {kind} does not read files (remove \
                         it, or set collector.kind: File)"
                    ),
                );
            }
            if kind != "StdOut" && source.filter.is_some() {
                let why = if kind == "None" {
                    "collector kind None collects nothing"
                } else {
                    "with collector kind Push the trial sends its metrics itself"
                };
                problems.add(
                    format!("{BASE}.source.filter"),
                    "",
                    format!("{why}, so a filter is never used; remove it"),
                );
            }
            if kind == "None" {
                Some(Collector::None)
            } else if kind == "Push" {
                Some(Collector::Push)
            } else {
                Some(Collector::StdOut {
                    filters: filters.clone(),
                })
            }
        }
        "File" => file_collector(&source, &filters, problems),
        other if COLLECTOR_KINDS_NOT_YET_BUILT.contains(&other) => {
            problems.add(
                format!("{BASE}.collector.kind"),
                other,
                format!(
                    "the {other} collector is not built yet in Sextant; available now: {available}"
                ),
            );
            None
        }
        other => {
            problems.add(
                format!("{BASE}.collector.kind"),
                other,
                format!(
                    "accepted: {available} (Katib's {} are not built yet)",
                    COLLECTOR_KINDS_NOT_YET_BUILT.join(", ")
                ),
            );
            None
        }
    };
    collector.filter(|_| problems.count() == before)
}

fn file_collector(
    source: &super::types::SourceSpec,
    filters: &[String],
    problems: &mut Problems,
) -> Option<Collector> {
    const PATH: &str = "spec.metricsCollectorSpec.source.fileSystemPath";
    let Some(file) = source.file_system_path.as_ref() else {
        problems.add(
            format!("{PATH}.path"),
            "",
            "required for collector kind File: the absolute path of the metrics file",
        );
        return None;
    };
    let kind = set(&file.kind).unwrap_or_default();
    if kind != FILE_KIND {
        problems.add(
            format!("{PATH}.kind"),
            kind,
            "accepted: File (Directory is for the TensorFlowEvent collector, not built yet)",
        );
    }
    if file.path.is_empty() {
        problems.add(
            format!("{PATH}.path"),
            "",
            "required for collector kind File: the absolute path of the metrics file",
        );
    } else if !file.path.starts_with('/') {
        problems.add(
            format!("{PATH}.path"),
            &file.path,
            "expected an absolute path, e.g. /var/log/katib/metrics.log",
        );
    }
    let format = match set(&file.format).unwrap_or_default() {
        "TEXT" => Some(FileFormat::Text),
        "JSON" => Some(FileFormat::Json),
        other => {
            problems.add(
                format!("{PATH}.format"),
                other,
                format!("accepted: {}", FILE_FORMATS.join(", ")),
            );
            None
        }
    };
    if format == Some(FileFormat::Json) && source.filter.is_some() {
        problems.add(
            "spec.metricsCollectorSpec.source.filter",
            "",
            "a JSON metrics file is read by key, so filter must be left out (filters apply to TEXT)",
        );
    }
    Some(Collector::File {
        path: file.path.clone(),
        format: format?,
        filters: filters.to_vec(),
    })
}

/// Katib requires each `metricsFormat` to compile and to have two groups: the metric's name, then
/// its value. Katib checks the groups textually (`.*\(.*\).*\(.*\).*`); Sextant counts the capture
/// groups of the compiled regex, which also refuses `(?:...)` groups that capture nothing.
fn check_filters(filters: &[String], problems: &mut Problems) {
    for (k, filter) in filters.iter().enumerate() {
        let path = format!("spec.metricsCollectorSpec.source.filter.metricsFormat[{k}]");
        match regex::Regex::new(filter) {
            Err(error) => problems.add(
                path,
                filter,
                format!("not a valid regular expression: {error}"),
            ),
            Ok(regex) if regex.captures_len() < 3 => problems.add(
                path,
                filter,
                format!(
                    "needs two capture groups, the metric's name then its value, e.g. Katib's \
                     default {}",
                    sextant_collector::DEFAULT_METRICS_FORMAT
                ),
            ),
            Ok(_) => {}
        }
    }
}

fn check_trial_template(spec: &ExperimentSpec, problems: &mut Problems) {
    const BASE: &str = "spec.trialTemplate";
    let Some(template) = spec.trial_template.as_ref() else {
        problems.add(
            BASE,
            "",
            "required: the workload each trial runs (trialSpec), its trialParameters and \
             primaryContainerName",
        );
        return;
    };
    match (&template.trial_spec, &template.config_map) {
        (Some(_), Some(_)) => problems.add(
            format!("{BASE}.configMap"),
            template
                .config_map
                .as_ref()
                .map(|c| c.config_map_name.clone())
                .unwrap_or_default(),
            "only one of trialSpec and configMap may be set; keep trialSpec",
        ),
        (None, Some(config_map)) => problems.add(
            format!("{BASE}.configMap"),
            &config_map.config_map_name,
            "ConfigMap templates need Kubernetes, which is not built yet in Sextant; accepted now: \
             the workload inline under spec.trialTemplate.trialSpec",
        ),
        (None, None) => problems.add(
            TRIAL_SPEC_PATH,
            "",
            "required: the workload each trial runs, e.g. a batch/v1 Job",
        ),
        (Some(_), None) => {}
    }
    let trial_spec = template.trial_spec.as_ref().filter(|s| s.is_object());
    if let Some(other) = template.trial_spec.as_ref().filter(|s| !s.is_object()) {
        problems.add(
            TRIAL_SPEC_PATH,
            other.to_string(),
            "expected a Kubernetes object with apiVersion, kind and spec",
        );
    }
    if let Some(trial_spec) = trial_spec {
        check_workload_header(trial_spec, problems);
        check_primary_container(template, trial_spec, problems);
        check_conditions(template, trial_spec, problems);
    }
    check_trial_parameters(spec, template, trial_spec, problems);
}

fn check_workload_header(trial_spec: &Value, problems: &mut Problems) {
    for (field, example) in [("apiVersion", "batch/v1"), ("kind", "Job")] {
        let value = trial_spec.get(field);
        if value.and_then(Value::as_str).is_none_or(str::is_empty) {
            problems.add(
                format!("{TRIAL_SPEC_PATH}.{field}"),
                value.map(Value::to_string).unwrap_or_default(),
                format!("required: a non-empty string, e.g. {example:?}"),
            );
        }
    }
    for field in ["name", "namespace"] {
        if let Some(value) = trial_spec.get("metadata").and_then(|m| m.get(field)) {
            let shown = value
                .as_str()
                .map(str::to_string)
                .unwrap_or(value.to_string());
            problems.add(
                format!("{TRIAL_SPEC_PATH}.metadata.{field}"),
                shown,
                "must be left out: each trial's workload takes the trial's name and namespace",
            );
        }
    }
}

fn check_primary_container(
    template: &super::types::TrialTemplate,
    trial_spec: &Value,
    problems: &mut Problems,
) {
    const PATH: &str = "spec.trialTemplate.primaryContainerName";
    let names = container_names(trial_spec);
    let shown: Vec<&str> = names.iter().map(String::as_str).collect();
    let found = format!("containers in trialSpec: {}", list_or_none(&shown));
    let Some(name) = set(&template.primary_container_name) else {
        problems.add(
            PATH,
            "",
            format!("required: the container that runs the training code; {found}"),
        );
        return;
    };
    if !names.iter().any(|n| n == name) {
        problems.add(PATH, name, format!("no container with this name; {found}"));
        return;
    }
    // Read it now, so a malformed command or GPU limit is reported before any trial. Values that
    // still hold a placeholder are only known per trial.
    if let Err(error) = primary_container(trial_spec, name)
        && !error.value.contains(PLACEHOLDER_PREFIX)
    {
        problems.push(error);
    }
}

fn check_conditions(
    template: &super::types::TrialTemplate,
    trial_spec: &Value,
    problems: &mut Problems,
) {
    let kind = trial_spec
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    for (field, value) in [
        ("successCondition", &template.success_condition),
        ("failureCondition", &template.failure_condition),
    ] {
        match set(value) {
            None => problems.add(
                format!("spec.trialTemplate.{field}"),
                "",
                format!(
                    "required for kind {kind:?}: a GJSON condition on the workload's status \
                     (filled in for Job, TFJob, PyTorchJob, XGBoostJob, MPIJob and TrainJob)"
                ),
            ),
            Some(expression) => {
                // Checked here, not when the first trial ends: the controller evaluates it.
                if let Err(message) = crate::runtime::kubernetes::conditions::check(expression) {
                    problems.add(format!("spec.trialTemplate.{field}"), expression, message);
                }
            }
        }
    }
}

fn check_trial_parameters(
    spec: &ExperimentSpec,
    template: &super::types::TrialTemplate,
    trial_spec: Option<&Value>,
    problems: &mut Problems,
) {
    const BASE: &str = "spec.trialTemplate.trialParameters";
    if template.trial_parameters.is_empty() {
        problems.add(
            BASE,
            "",
            "required: one {name, reference} per ${trialParameters.NAME} placeholder in trialSpec, \
             with reference a spec.parameters name",
        );
        return;
    }
    let parameter_names: Vec<&str> = spec
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| !n.is_empty())
        .collect();
    let used = trial_spec.map(placeholders_used).unwrap_or_default();
    let used_names: BTreeSet<&str> = used.iter().map(|(_, name)| name.as_str()).collect();
    let mut names = BTreeMap::new();
    let mut references = BTreeMap::new();
    for (k, trial_parameter) in template.trial_parameters.iter().enumerate() {
        let path = format!("{BASE}[{k}]");
        let name = trial_parameter.name.as_str();
        if name.is_empty() {
            problems.add(
                format!("{path}.name"),
                "",
                "required: the NAME of a ${trialParameters.NAME} placeholder",
            );
        } else if name.contains('{') || name.contains('}') {
            problems.add(
                format!("{path}.name"),
                name,
                "must not contain '{' or '}': write the bare NAME of ${trialParameters.NAME}",
            );
        } else if let Some(first) = names.insert(name, k) {
            problems.add(
                format!("{path}.name"),
                name,
                format!("already defined by trialParameters[{first}]; names must be unique"),
            );
        } else if trial_spec.is_some() && !used_names.contains(name) {
            problems.add(
                format!("{path}.name"),
                name,
                format!(
                    "not used: trialSpec has no ${{trialParameters.{name}}}; use it in trialSpec \
                     or remove this entry"
                ),
            );
        }

        let reference = trial_parameter.reference.as_str();
        let reference_path = format!("{path}.reference");
        if reference.is_empty() {
            problems.add(
                reference_path,
                "",
                format!(
                    "required: a spec.parameters name ({}) or one of {ACCEPTED_META_REFERENCES}",
                    list_or_none(&parameter_names)
                ),
            );
            continue;
        }
        if let Some(first) = references.insert(reference, k) {
            problems.add(
                reference_path,
                reference,
                format!(
                    "already referenced by trialParameters[{first}]; references must be unique"
                ),
            );
            continue;
        }
        match MetaReference::parse(reference) {
            Some(Err(message)) => problems.add(reference_path, reference, message),
            Some(Ok(meta @ (MetaReference::Label(_) | MetaReference::Annotation(_)))) => {
                if let Some(trial_spec) = trial_spec
                    && let Err(message) = meta.resolve(trial_spec, &TrialIdentity::default())
                {
                    problems.add(reference_path, reference, message);
                }
            }
            Some(Ok(_)) => {}
            None => {
                if !parameter_names.contains(&reference) {
                    problems.add(
                        reference_path,
                        reference,
                        format!(
                            "not a spec.parameters name; accepted: {} or one of \
                             {ACCEPTED_META_REFERENCES}",
                            list_or_none(&parameter_names)
                        ),
                    );
                }
            }
        }
    }

    let defined: Vec<&str> = names.keys().copied().collect();
    for (path, name) in &used {
        if !names.contains_key(name.as_str()) {
            problems.add(
                path,
                format!("{PLACEHOLDER_PREFIX}{name}}}"),
                format!(
                    "placeholder {name:?} is not defined in spec.trialTemplate.trialParameters; \
                     defined: {}",
                    list_or_none(&defined)
                ),
            );
        }
    }

    // Katib's generator needs one trial parameter per search parameter: otherwise the assignment
    // count differs and every trial fails to start. Sextant refuses it here instead.
    for (i, parameter) in spec.parameters.iter().enumerate() {
        if !parameter.name.is_empty() && !references.contains_key(parameter.name.as_str()) {
            problems.add(
                format!("spec.parameters[{i}].name"),
                &parameter.name,
                format!(
                    "not referenced by any spec.trialTemplate.trialParameters entry, so no trial \
                     could receive its value; add {{name: ..., reference: {}}} and use the \
                     placeholder in trialSpec",
                    parameter.name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
