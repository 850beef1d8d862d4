//! Katib's `kubeflow.org/v1beta1` Experiment and Trial types, field for field.
//!
//! Field names and shapes follow Katib's Go types (`apis/controller/experiments/v1beta1`,
//! `apis/controller/common/v1beta1`) so that Katib YAML reads unchanged. Numbers that Katib keeps as
//! strings (`feasibleSpace.min` ...) stay strings here; they are parsed once, in validation, into
//! the typed search space. Unknown fields under `trialTemplate.trialSpec` are kept as-is
//! (`serde_json::Value`), since it is an arbitrary Kubernetes object.
//!
//! The spec types also derive `JsonSchema`, and `ExperimentSpec` derives kube's `CustomResource`:
//! the `kubeflow.org/v1beta1` Experiment CRD is generated from these same types (the resource
//! struct is `ExperimentResource`; its status and the other CRDs live in [`super::crd`]).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::crd::{self, ExperimentStatus};

pub use sextant_suggestion::katib::{
    AlgorithmSetting, AlgorithmSpec, FeasibleSpace, MetricStrategy, ObjectiveSpec,
    ParameterAssignment, ParameterSpec, parameter_type,
};

/// The API version Sextant reads.
pub const API_VERSION: &str = "kubeflow.org/v1beta1";

/// An Experiment custom resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Experiment {
    /// Always `kubeflow.org/v1beta1`.
    pub api_version: String,
    /// Always `Experiment`.
    pub kind: String,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// What to search and how.
    pub spec: ExperimentSpec,
    /// Present when the document was written by a cluster (`kubectl get -o yaml`); ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// The subset of Kubernetes `ObjectMeta` that a submitted Experiment carries.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The experiment's name.
    #[serde(default)]
    pub name: String,
    /// Namespace (Katib examples use `kubeflow`); kept for Kubernetes, informational locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Anything else a cluster wrote (uid, resourceVersion, ...), kept untouched.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `spec` of an Experiment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "kubeflow.org",
    version = "v1beta1",
    kind = "Experiment",
    root = "ExperimentResource",
    doc = "A Katib Experiment: a search space, an objective, an algorithm and a trial template.",
    namespaced,
    status = "ExperimentStatus",
    shortname = "exp",
    category = "all",
    category = "kubeflow",
    category = "katib",
    printcolumn = r#"{"name": "Type", "type": "string", "jsonPath": ".status.conditions[-1:].type"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[-1:].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentSpec {
    /// The search space.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ParameterSpec>,
    /// What to optimise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<ObjectiveSpec>,
    /// Which engine suggests trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<AlgorithmSpec>,
    /// Which rule stops losing trials early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingSpec>,
    /// How each trial runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_template: Option<TrialTemplate>,
    /// Trials running at once (Katib default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_trial_count: Option<i64>,
    /// Trials to run in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trial_count: Option<i64>,
    /// Failed trials tolerated before the experiment fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_trial_count: Option<i64>,
    /// How metrics are collected from trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_collector_spec: Option<MetricsCollectorSpec>,
    /// Neural architecture search configuration (ENAS/DARTS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nas_config: Option<NasConfig>,
    /// What happens to the suggestion service when the experiment ends (`Never` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_policy: Option<String>,
}

/// `earlyStopping`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EarlyStoppingSpec {
    /// Rule name (`medianstop`, ...).
    #[serde(default)]
    pub algorithm_name: String,
    /// Rule settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithm_settings: Vec<AlgorithmSetting>,
}

/// `trialTemplate`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialTemplate {
    /// Keep finished trial workloads (Kubernetes).
    #[serde(default)]
    pub retain: bool,
    /// The workload, as an arbitrary Kubernetes object with `${trialParameters.*}` placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crd::free_form_object")]
    pub trial_spec: Option<serde_json::Value>,
    /// A ConfigMap that holds the workload instead (Kubernetes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapSource>,
    /// Placeholders and what they refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trial_parameters: Vec<TrialParameterSpec>,
    /// Labels that identify the pod running the primary container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_pod_labels: Option<BTreeMap<String, String>>,
    /// The container whose command is the training program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_container_name: Option<String>,
    /// GJSON-style condition for a succeeded workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// GJSON-style condition for a failed workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
}

/// `trialTemplate.configMap`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapSource {
    /// ConfigMap name.
    #[serde(default)]
    pub config_map_name: String,
    /// ConfigMap namespace.
    #[serde(default)]
    pub config_map_namespace: String,
    /// Key inside the ConfigMap.
    #[serde(default)]
    pub template_path: String,
}

/// One entry of `trialTemplate.trialParameters`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialParameterSpec {
    /// The placeholder name (`${trialParameters.<name>}`).
    #[serde(default)]
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A search-space parameter name, or a `${trialSpec.*}` metadata reference.
    #[serde(default)]
    pub reference: String,
}

/// `metricsCollectorSpec`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsCollectorSpec {
    /// Where metrics come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
    /// Which collector reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<CollectorSpec>,
}

/// `metricsCollectorSpec.source`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceSpec {
    /// Kubernetes `HTTPGetAction` for the Prometheus collector, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crd::free_form_object")]
    pub http_get: Option<serde_json::Value>,
    /// File or directory the metrics are written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_path: Option<FileSystemPath>,
    /// Regular expressions that pick metrics out of lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterSpec>,
}

/// `source.fileSystemPath`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSystemPath {
    /// The path.
    #[serde(default)]
    pub path: String,
    /// `File` or `Directory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `TEXT` or `JSON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// `source.filter`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterSpec {
    /// Regular expressions with two groups: metric name and value.
    #[serde(default)]
    pub metrics_format: Vec<String>,
}

/// `metricsCollectorSpec.collector`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectorSpec {
    /// `StdOut` (default), `File`, `TensorFlowEvent`, `PrometheusMetric`, `Custom`, `None`.
    #[serde(default)]
    pub kind: String,
    /// The container of a `Custom` collector, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crd::free_form_object")]
    pub custom_collector: Option<serde_json::Value>,
}

/// `nasConfig` (parsed and kept; the NAS algorithms are not built yet).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NasConfig {
    /// The network's shape.
    #[serde(default)]
    pub graph_config: GraphConfig,
    /// The candidate operations.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

/// `nasConfig.graphConfig`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GraphConfig {
    /// Number of layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_layers: Option<i64>,
    /// Input sizes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_sizes: Vec<i64>,
    /// Output sizes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_sizes: Vec<i64>,
}

/// One NAS operation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// Operation type.
    #[serde(default)]
    pub operation_type: String,
    /// Its parameters.
    #[serde(default)]
    pub parameters: Vec<ParameterSpec>,
}
