//! Katib's defaulting, applied before validation.
//!
//! This is the mutating admission webhook of Katib (`Experiment.SetDefault` in
//! `pkg/apis/controller/experiments/v1beta1/experiment_defaults.go`), field for field, so that an
//! experiment stored and shown by Sextant looks like the one Katib would have stored. Defaulting never
//! fails and never refuses anything: a value that is set is kept as written, even when it is wrong,
//! and [`super::validate`] reports it. An empty string counts as unset, as it does in Go.
//!
//! Two small departures, both invisible once validation has run:
//! - no metric strategy is added for an empty `objectiveMetricName` (Katib adds one named `""`,
//!   which only produces a second, confusing error next to "objectiveMetricName must be specified");
//! - when `metricsCollectorSpec.collector` is present with an empty `kind`, it is left empty, as in
//!   Katib, and validation refuses it with the accepted kinds.

use std::collections::BTreeMap;

use super::types::{
    CollectorSpec, Experiment, FileSystemPath, MetricStrategy, MetricsCollectorSpec, SourceSpec,
    TrialTemplate,
};

/// `spec.parallelTrialCount` when unset (Katib `DefaultTrialParallelCount`, experiments/v1beta1/constants.go).
pub const DEFAULT_PARALLEL_TRIAL_COUNT: i64 = 3;

/// `spec.resumePolicy` when unset (Katib `DefaultResumePolicy` = `NeverResume`, experiments/v1beta1/constants.go).
pub const DEFAULT_RESUME_POLICY: &str = "Never";

/// `feasibleSpace.distribution` when unset (Katib `DistributionUniform`, set by
/// `setDefaultParameterDistribution` in experiment_defaults.go).
pub const DEFAULT_DISTRIBUTION: &str = "uniform";

/// Collector kind when `metricsCollectorSpec.collector` is unset (Katib `StdOutCollector`, common/v1beta1/common_types.go).
pub const DEFAULT_COLLECTOR_KIND: &str = "StdOut";

/// `fileSystemPath.path` of a File collector when unset (Katib `DefaultFilePath`, common_types.go).
pub const DEFAULT_METRICS_FILE_PATH: &str = "/var/log/katib/metrics.log";

/// `fileSystemPath.kind` of a File collector when unset (Katib `FileKind`, common_types.go).
pub const FILE_KIND: &str = "File";

/// `fileSystemPath.kind` of a TensorFlowEvent collector when unset (Katib `DirectoryKind`, common_types.go).
pub const DIRECTORY_KIND: &str = "Directory";

/// `fileSystemPath.format` of a File collector when unset (Katib `TextFormat`, common_types.go).
pub const DEFAULT_METRICS_FILE_FORMAT: &str = "TEXT";

/// `fileSystemPath.path` of a TensorFlowEvent collector when unset (Katib `DefaultTensorflowEventDirPath`, common_types.go).
pub const DEFAULT_TF_EVENT_DIR_PATH: &str = "/var/log/katib/tfevent/";

/// `source.httpGet.path` of a PrometheusMetric collector when unset (Katib `DefaultPrometheusPath`, common_types.go).
pub const DEFAULT_PROMETHEUS_PATH: &str = "/metrics";

/// `source.httpGet.port` of a PrometheusMetric collector when unset (Katib `DefaultPrometheusPort`, common_types.go).
pub const DEFAULT_PROMETHEUS_PORT: u16 = 8080;

/// The batch Job kind (Katib `consts.JobKindJob`, controller.v1beta1/consts/const.go).
pub const JOB_KIND: &str = "Job";

/// Success condition of a batch Job (Katib `DefaultJobSuccessCondition`, experiments/v1beta1/constants.go).
pub const JOB_SUCCESS_CONDITION: &str =
    r#"status.conditions.#(type=="Complete")#|#(status=="True")#"#;

/// Failure condition of a batch Job (Katib `DefaultJobFailureCondition`, experiments/v1beta1/constants.go).
pub const JOB_FAILURE_CONDITION: &str =
    r#"status.conditions.#(type=="Failed")#|#(status=="True")#"#;

/// Kubeflow Training Operator v1 kinds (Katib `KubeflowJobKinds`, experiments/v1beta1/constants.go).
pub const KUBEFLOW_JOB_KINDS: &[&str] = &["TFJob", "PyTorchJob", "XGBoostJob", "MPIJob"];

/// Success condition of a Kubeflow training job (Katib `DefaultKubeflowJobSuccessCondition`).
pub const KUBEFLOW_JOB_SUCCESS_CONDITION: &str =
    r#"status.conditions.#(type=="Succeeded")#|#(status=="True")#"#;

/// Failure condition of a Kubeflow training job (Katib `DefaultKubeflowJobFailureCondition`).
pub const KUBEFLOW_JOB_FAILURE_CONDITION: &str =
    r#"status.conditions.#(type=="Failed")#|#(status=="True")#"#;

/// Primary pod label of a Kubeflow training job (Katib `DefaultKubeflowJobPrimaryPodLabels`).
pub const KUBEFLOW_JOB_PRIMARY_POD_LABEL: (&str, &str) =
    ("training.kubeflow.org/job-role", "master");

/// The Kubeflow Trainer v2 kind (the `"TrainJob"` literal in Katib's experiment_defaults.go).
pub const TRAIN_JOB_KIND: &str = "TrainJob";

/// Success condition of a TrainJob (Katib `DefaultTrainJobSuccessCondition`).
pub const TRAIN_JOB_SUCCESS_CONDITION: &str =
    r#"status.conditions.#(type=="Complete")#|#(status=="True")#"#;

/// Failure condition of a TrainJob (Katib `DefaultTrainJobFailureCondition`).
pub const TRAIN_JOB_FAILURE_CONDITION: &str =
    r#"status.conditions.#(type=="Failed")#|#(status=="True")#"#;

/// Primary pod label of a TrainJob (Katib `DefaultTrainJobPrimaryPodLabels`).
pub const TRAIN_JOB_PRIMARY_POD_LABEL: (&str, &str) =
    ("jobset.sigs.k8s.io/replicatedjob-name", "node");

/// Fills in Katib's defaults, in Katib's order: parallelTrialCount, resumePolicy, metric strategies,
/// trial template conditions and primary pod labels, metrics collector, parameter distributions.
pub fn apply_defaults(experiment: &mut Experiment) {
    let spec = &mut experiment.spec;
    if spec.parallel_trial_count.is_none() {
        spec.parallel_trial_count = Some(DEFAULT_PARALLEL_TRIAL_COUNT);
    }
    if is_unset(&spec.resume_policy) {
        spec.resume_policy = Some(DEFAULT_RESUME_POLICY.to_string());
    }
    if let Some(objective) = spec.objective.as_mut() {
        default_metric_strategies(objective);
    }
    if let Some(template) = spec.trial_template.as_mut() {
        default_trial_template(template);
    }
    default_metrics_collector(
        spec.metrics_collector_spec
            .get_or_insert_with(MetricsCollectorSpec::default),
    );
    for parameter in &mut spec.parameters {
        if is_unset(&parameter.feasible_space.distribution) {
            parameter.feasible_space.distribution = Some(DEFAULT_DISTRIBUTION.to_string());
        }
    }
}

/// The strategy Katib gives a metric that has none: `min` when minimising, `max` when maximising,
/// `latest` when the objective type is not (yet) valid. Katib applies this to the additional metrics
/// too (despite its comment saying "latest"), so they follow the objective's direction.
pub fn default_strategy_for(objective_type: &str) -> &'static str {
    match objective_type {
        "minimize" => "min",
        "maximize" => "max",
        _ => "latest",
    }
}

fn default_metric_strategies(objective: &mut super::types::ObjectiveSpec) {
    let value = default_strategy_for(&objective.objective_type);
    let objective_has_one = objective
        .metric_strategies
        .iter()
        .any(|s| s.name == objective.objective_metric_name);
    if !objective_has_one && !objective.objective_metric_name.is_empty() {
        objective.metric_strategies.push(MetricStrategy {
            name: objective.objective_metric_name.clone(),
            value: value.to_string(),
        });
    }
    for metric in &objective.additional_metric_names {
        if !objective
            .metric_strategies
            .iter()
            .any(|s| &s.name == metric)
        {
            objective.metric_strategies.push(MetricStrategy {
                name: metric.clone(),
                value: value.to_string(),
            });
        }
    }
}

fn default_trial_template(template: &mut TrialTemplate) {
    let Some(kind) = template
        .trial_spec
        .as_ref()
        .and_then(|spec| spec.get("kind"))
        .and_then(|kind| kind.as_str())
        .map(str::to_string)
    else {
        return;
    };
    let (success, failure, primary_pod_label) = if kind == JOB_KIND {
        (JOB_SUCCESS_CONDITION, JOB_FAILURE_CONDITION, None)
    } else if KUBEFLOW_JOB_KINDS.contains(&kind.as_str()) {
        (
            KUBEFLOW_JOB_SUCCESS_CONDITION,
            KUBEFLOW_JOB_FAILURE_CONDITION,
            Some(KUBEFLOW_JOB_PRIMARY_POD_LABEL),
        )
    } else if kind == TRAIN_JOB_KIND {
        (
            TRAIN_JOB_SUCCESS_CONDITION,
            TRAIN_JOB_FAILURE_CONDITION,
            Some(TRAIN_JOB_PRIMARY_POD_LABEL),
        )
    } else {
        return;
    };
    if is_unset(&template.success_condition) {
        template.success_condition = Some(success.to_string());
    }
    if is_unset(&template.failure_condition) {
        template.failure_condition = Some(failure.to_string());
    }
    if let Some((key, value)) = primary_pod_label
        && template
            .primary_pod_labels
            .as_ref()
            .is_none_or(BTreeMap::is_empty)
    {
        template.primary_pod_labels = Some(BTreeMap::from([(key.to_string(), value.to_string())]));
    }
}

fn default_metrics_collector(spec: &mut MetricsCollectorSpec) {
    let collector = spec.collector.get_or_insert_with(|| CollectorSpec {
        kind: DEFAULT_COLLECTOR_KIND.to_string(),
        custom_collector: None,
    });
    match collector.kind.as_str() {
        "PrometheusMetric" => {
            let source = spec.source.get_or_insert_with(SourceSpec::default);
            let http_get = source
                .http_get
                .get_or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let Some(http_get) = http_get.as_object_mut() {
                let path_unset = http_get
                    .get("path")
                    .is_none_or(|p| p.as_str().is_some_and(str::is_empty) || p.is_null());
                if path_unset {
                    http_get.insert("path".into(), DEFAULT_PROMETHEUS_PATH.into());
                }
                // Katib's test is `Port.String() == "0"`: absent, 0 and "0" all count as unset.
                let port_unset = http_get.get("port").is_none_or(|p| {
                    p.is_null() || p.as_u64() == Some(0) || p.as_str().is_some_and(|s| s == "0")
                });
                if port_unset {
                    http_get.insert("port".into(), DEFAULT_PROMETHEUS_PORT.into());
                }
            }
        }
        "File" => {
            let path = spec
                .source
                .get_or_insert_with(SourceSpec::default)
                .file_system_path
                .get_or_insert_with(FileSystemPath::default);
            if is_unset(&path.kind) {
                path.kind = Some(FILE_KIND.to_string());
            }
            if path.path.is_empty() {
                path.path = DEFAULT_METRICS_FILE_PATH.to_string();
            }
            if is_unset(&path.format) {
                path.format = Some(DEFAULT_METRICS_FILE_FORMAT.to_string());
            }
        }
        "TensorFlowEvent" => {
            let path = spec
                .source
                .get_or_insert_with(SourceSpec::default)
                .file_system_path
                .get_or_insert_with(FileSystemPath::default);
            if is_unset(&path.kind) {
                path.kind = Some(DIRECTORY_KIND.to_string());
            }
            if path.path.is_empty() {
                path.path = DEFAULT_TF_EVENT_DIR_PATH.to_string();
            }
        }
        _ => {}
    }
}

/// Go's zero value: a missing field and an empty string are the same thing to Katib.
fn is_unset(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(str::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse::parse_experiment;

    const BASE: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: demo
spec:
  objective:
    type: maximize
    objectiveMetricName: accuracy
    additionalMetricNames: [loss]
  algorithm:
    algorithmName: random
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.01", max: "0.1"}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - name: learningRate
        reference: lr
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training-container
                image: python:3.12
                command: [python, train.py, "--lr=${trialParameters.learningRate}"]
"#;

    fn defaulted(text: &str) -> Experiment {
        let mut experiment = parse_experiment(text).unwrap();
        apply_defaults(&mut experiment);
        experiment
    }

    fn base_with(edit: impl FnOnce(&mut Experiment)) -> Experiment {
        let mut experiment = parse_experiment(BASE).unwrap();
        edit(&mut experiment);
        apply_defaults(&mut experiment);
        experiment
    }

    fn template(experiment: &Experiment) -> &TrialTemplate {
        experiment.spec.trial_template.as_ref().unwrap()
    }

    fn collector(experiment: &Experiment) -> &MetricsCollectorSpec {
        experiment.spec.metrics_collector_spec.as_ref().unwrap()
    }

    fn file_path(experiment: &Experiment) -> &FileSystemPath {
        collector(experiment)
            .source
            .as_ref()
            .unwrap()
            .file_system_path
            .as_ref()
            .unwrap()
    }

    fn strategies(experiment: &Experiment) -> Vec<(String, String)> {
        experiment
            .spec
            .objective
            .as_ref()
            .unwrap()
            .metric_strategies
            .iter()
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect()
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn parallel_trial_count_defaults_to_3_and_is_kept_when_set() {
        assert_eq!(defaulted(BASE).spec.parallel_trial_count, Some(3));
        let set = base_with(|e| e.spec.parallel_trial_count = Some(7));
        assert_eq!(set.spec.parallel_trial_count, Some(7));
    }

    #[test]
    fn resume_policy_defaults_to_never_and_is_kept_when_set() {
        assert_eq!(defaulted(BASE).spec.resume_policy.as_deref(), Some("Never"));
        let empty = base_with(|e| e.spec.resume_policy = Some(String::new()));
        assert_eq!(empty.spec.resume_policy.as_deref(), Some("Never"));
        let set = base_with(|e| e.spec.resume_policy = Some("LongRunning".into()));
        assert_eq!(set.spec.resume_policy.as_deref(), Some("LongRunning"));
    }

    #[test]
    fn distribution_defaults_to_uniform_and_is_kept_when_set() {
        let unset = defaulted(BASE);
        let space = &unset.spec.parameters[0].feasible_space;
        assert_eq!(space.distribution.as_deref(), Some("uniform"));
        let set = base_with(|e| {
            e.spec.parameters[0].feasible_space.distribution = Some("logUniform".into())
        });
        let space = &set.spec.parameters[0].feasible_space;
        assert_eq!(space.distribution.as_deref(), Some("logUniform"));
    }

    #[test]
    fn metric_strategies_follow_a_maximize_objective() {
        assert_eq!(
            strategies(&defaulted(BASE)),
            vec![pair("accuracy", "max"), pair("loss", "max")]
        );
    }

    #[test]
    fn metric_strategies_follow_a_minimize_objective() {
        let e =
            base_with(|e| e.spec.objective.as_mut().unwrap().objective_type = "minimize".into());
        assert_eq!(
            strategies(&e),
            vec![pair("accuracy", "min"), pair("loss", "min")]
        );
    }

    #[test]
    fn metric_strategies_are_latest_when_the_objective_type_is_invalid() {
        let e = base_with(|e| e.spec.objective.as_mut().unwrap().objective_type = "up".into());
        assert_eq!(
            strategies(&e),
            vec![pair("accuracy", "latest"), pair("loss", "latest")]
        );
    }

    #[test]
    fn metric_strategies_that_are_set_are_kept() {
        let e = base_with(|e| {
            e.spec.objective.as_mut().unwrap().metric_strategies = vec![
                MetricStrategy {
                    name: "loss".into(),
                    value: "latest".into(),
                },
                MetricStrategy {
                    name: "accuracy".into(),
                    value: "latest".into(),
                },
            ]
        });
        assert_eq!(
            strategies(&e),
            vec![pair("loss", "latest"), pair("accuracy", "latest")]
        );
    }

    #[test]
    fn no_strategy_is_invented_for_an_empty_objective_metric() {
        let e = base_with(|e| {
            let objective = e.spec.objective.as_mut().unwrap();
            objective.objective_metric_name.clear();
            objective.additional_metric_names.clear();
        });
        assert!(strategies(&e).is_empty());
    }

    #[test]
    fn collector_defaults_to_stdout_and_is_kept_when_set() {
        let unset = defaulted(BASE);
        assert_eq!(collector(&unset).collector.as_ref().unwrap().kind, "StdOut");
        assert!(collector(&unset).source.is_none());
        let set = base_with(|e| {
            e.spec.metrics_collector_spec = Some(MetricsCollectorSpec {
                source: None,
                collector: Some(CollectorSpec {
                    kind: "None".into(),
                    custom_collector: None,
                }),
            })
        });
        assert_eq!(collector(&set).collector.as_ref().unwrap().kind, "None");
    }

    fn with_collector(kind: &str, path: Option<FileSystemPath>) -> Experiment {
        base_with(|e| {
            e.spec.metrics_collector_spec = Some(MetricsCollectorSpec {
                source: path.map(|p| SourceSpec {
                    file_system_path: Some(p),
                    ..SourceSpec::default()
                }),
                collector: Some(CollectorSpec {
                    kind: kind.into(),
                    custom_collector: None,
                }),
            })
        })
    }

    #[test]
    fn file_collector_defaults_kind_path_and_format() {
        let e = with_collector("File", None);
        let path = file_path(&e);
        assert_eq!(path.kind.as_deref(), Some("File"));
        assert_eq!(path.path, "/var/log/katib/metrics.log");
        assert_eq!(path.format.as_deref(), Some("TEXT"));
    }

    #[test]
    fn file_collector_settings_that_are_set_are_kept() {
        let e = with_collector(
            "File",
            Some(FileSystemPath {
                path: "/out/metrics.json".into(),
                kind: Some("Directory".into()),
                format: Some("JSON".into()),
            }),
        );
        let path = file_path(&e);
        assert_eq!(path.kind.as_deref(), Some("Directory"));
        assert_eq!(path.path, "/out/metrics.json");
        assert_eq!(path.format.as_deref(), Some("JSON"));
    }

    #[test]
    fn tensorflow_event_collector_defaults_directory_and_path() {
        let e = with_collector("TensorFlowEvent", None);
        let path = file_path(&e);
        assert_eq!(path.kind.as_deref(), Some("Directory"));
        assert_eq!(path.path, "/var/log/katib/tfevent/");
        assert_eq!(path.format, None);
        let set = with_collector(
            "TensorFlowEvent",
            Some(FileSystemPath {
                path: "/logs/".into(),
                ..FileSystemPath::default()
            }),
        );
        assert_eq!(file_path(&set).path, "/logs/");
    }

    #[test]
    fn prometheus_collector_defaults_path_and_port() {
        let e = with_collector("PrometheusMetric", None);
        let http_get = collector(&e).source.as_ref().unwrap().http_get.clone();
        assert_eq!(
            http_get,
            Some(serde_json::json!({"path": "/metrics", "port": 8080}))
        );
        let set = base_with(|e| {
            e.spec.metrics_collector_spec = Some(MetricsCollectorSpec {
                source: Some(SourceSpec {
                    http_get: Some(serde_json::json!({"path": "/m", "port": 9090})),
                    ..SourceSpec::default()
                }),
                collector: Some(CollectorSpec {
                    kind: "PrometheusMetric".into(),
                    custom_collector: None,
                }),
            })
        });
        let http_get = collector(&set).source.as_ref().unwrap().http_get.clone();
        assert_eq!(
            http_get,
            Some(serde_json::json!({"path": "/m", "port": 9090}))
        );
    }

    #[test]
    fn job_template_gets_job_conditions_and_no_pod_labels() {
        let e = defaulted(BASE);
        let t = template(&e);
        assert_eq!(t.success_condition.as_deref(), Some(JOB_SUCCESS_CONDITION));
        assert_eq!(t.failure_condition.as_deref(), Some(JOB_FAILURE_CONDITION));
        assert_eq!(t.primary_pod_labels, None);
    }

    #[test]
    fn conditions_that_are_set_are_kept() {
        let e = base_with(|e| {
            let t = e.spec.trial_template.as_mut().unwrap();
            t.success_condition = Some("status.done".into());
            t.failure_condition = Some("status.broken".into());
        });
        let t = template(&e);
        assert_eq!(t.success_condition.as_deref(), Some("status.done"));
        assert_eq!(t.failure_condition.as_deref(), Some("status.broken"));
    }

    fn with_kind(kind: &str) -> Experiment {
        base_with(|e| {
            let spec = e.spec.trial_template.as_mut().unwrap();
            spec.trial_spec.as_mut().unwrap()["kind"] = kind.into();
        })
    }

    #[test]
    fn kubeflow_job_gets_succeeded_condition_and_master_pod_label() {
        for kind in KUBEFLOW_JOB_KINDS {
            let e = with_kind(kind);
            let t = template(&e);
            assert_eq!(
                t.success_condition.as_deref(),
                Some(KUBEFLOW_JOB_SUCCESS_CONDITION)
            );
            assert_eq!(
                t.failure_condition.as_deref(),
                Some(KUBEFLOW_JOB_FAILURE_CONDITION)
            );
            let labels = t.primary_pod_labels.clone().unwrap();
            assert_eq!(labels["training.kubeflow.org/job-role"], "master");
        }
    }

    #[test]
    fn primary_pod_labels_that_are_set_are_kept() {
        let e = base_with(|e| {
            let t = e.spec.trial_template.as_mut().unwrap();
            t.trial_spec.as_mut().unwrap()["kind"] = "PyTorchJob".into();
            t.primary_pod_labels = Some(BTreeMap::from([("role".into(), "chief".into())]));
        });
        let labels = template(&e).primary_pod_labels.clone().unwrap();
        assert_eq!(labels, BTreeMap::from([("role".into(), "chief".into())]));
    }

    #[test]
    fn train_job_gets_complete_condition_and_node_pod_label() {
        let e = with_kind("TrainJob");
        let t = template(&e);
        assert_eq!(
            t.success_condition.as_deref(),
            Some(TRAIN_JOB_SUCCESS_CONDITION)
        );
        assert_eq!(
            t.failure_condition.as_deref(),
            Some(TRAIN_JOB_FAILURE_CONDITION)
        );
        let labels = t.primary_pod_labels.clone().unwrap();
        assert_eq!(labels["jobset.sigs.k8s.io/replicatedjob-name"], "node");
    }

    #[test]
    fn other_kinds_get_no_template_defaults() {
        let e = with_kind("Pipeline");
        let t = template(&e);
        assert_eq!(t.success_condition, None);
        assert_eq!(t.failure_condition, None);
        assert_eq!(t.primary_pod_labels, None);
    }

    #[test]
    fn primary_container_name_is_not_defaulted_like_katib() {
        let e = base_with(|e| {
            e.spec
                .trial_template
                .as_mut()
                .unwrap()
                .primary_container_name = None
        });
        assert_eq!(template(&e).primary_container_name, None);
    }
}
