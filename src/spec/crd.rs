//! The `kubeflow.org/v1beta1` custom resources Sextant serves on Kubernetes: Experiment, Trial and
//! Suggestion, with Katib's field names, and their CRDs generated from these Rust types.
//!
//! The Experiment's spec is the same [`ExperimentSpec`] the rest of Sextant reads (it derives
//! `CustomResource` in [`super::types`], as `ExperimentResource`); this module holds the statuses,
//! the Trial and Suggestion resources, and [`crds`], the manifests `sextant crd` prints.
//!
//! Two kinds of field need a hand-written schema, since a Kubernetes *structural* schema wants a
//! `type` on every field: free-form Kubernetes objects (`trialTemplate.trialSpec`, a Trial's
//! `runSpec`, `httpGet`, `customCollector`) are `type: object` with
//! `x-kubernetes-preserve-unknown-fields: true`, so the apiserver keeps every field; Katib's
//! string-or-number values use `sextant_suggestion::katib::string_or_number_schema`.
//!
//! Katib's own CRDs carry no schema (`x-kubernetes-preserve-unknown-fields` on the whole object,
//! validated by a webhook instead). Ours type every field Katib defines, so `kubectl explain` works
//! and a misspelt field is pruned instead of kept; the printer columns, categories and the status
//! subresource are Katib's.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, CustomResourceExt};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::types::{EarlyStoppingSpec, ExperimentResource, MetricsCollectorSpec};
use sextant_suggestion::katib::{
    AlgorithmSetting, AlgorithmSpec, ObjectiveSpec, ParameterAssignment,
};

/// Schema of a free-form Kubernetes object: any fields, all kept.
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// One entry of `status.conditions` (Katib's Experiment, Trial and Suggestion conditions have the
/// same shape).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Created`, `Running`, `Succeeded`, `Failed`, ... (per kind).
    #[serde(rename = "type")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Why the condition last changed, in one word.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Why the condition last changed, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the condition was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// When the condition last changed status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// One metric of an observation, reduced three ways; values are strings as in Katib.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Metric name.
    #[serde(default)]
    pub name: String,
    /// Smallest value reported.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub min: String,
    /// Largest value reported.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max: String,
    /// Last value reported.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub latest: String,
}

/// A trial's metrics (Katib's `common.Observation`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// One entry per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

/// `status.currentOptimalTrial` of an Experiment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptimalTrial {
    /// The best trial so far.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub best_trial_name: String,
    /// Its parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// Its metrics.
    #[serde(default)]
    pub observation: Observation,
}

/// `status` of an Experiment (Katib's `ExperimentStatus`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// When the controller first saw the experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the experiment ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// When the controller last reconciled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<Time>,
    /// Observed conditions, oldest first; the last one is the current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The best trial so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_optimal_trial: Option<OptimalTrial>,
    /// Names of pending trials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_trial_list: Vec<String>,
    /// Names of running trials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub running_trial_list: Vec<String>,
    /// Names of succeeded trials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub succeeded_trial_list: Vec<String>,
    /// Names of failed trials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_trial_list: Vec<String>,
    /// Names of killed trials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub killed_trial_list: Vec<String>,
    /// Names of early-stopped trials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub early_stopped_trial_list: Vec<String>,
    /// Names of trials whose metrics could not be collected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics_unavailable_trial_list: Vec<String>,
    /// Trials owned by the experiment.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trials: i32,
    /// Pending trials.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trials_pending: i32,
    /// Running trials.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trials_running: i32,
    /// Succeeded trials.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trials_succeeded: i32,
    /// Failed trials.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trials_failed: i32,
    /// Killed trials.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trials_killed: i32,
    /// Early-stopped trials.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trials_early_stopped: i32,
    /// Trials whose metrics could not be collected (Katib's spelling, without the `s`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trial_metrics_unavailable: i32,
}

/// One early-stopping rule of a trial (Katib's `common.EarlyStoppingRule`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EarlyStoppingRule {
    /// The metric the rule reads.
    #[serde(default)]
    pub name: String,
    /// The threshold, a string as in Katib.
    #[serde(default)]
    pub value: String,
    /// `equal`, `less` or `greater`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comparison: String,
    /// Reports to wait for before the rule applies.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_step: i32,
}

/// `spec` of a Trial (Katib's `TrialSpec`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "kubeflow.org",
    version = "v1beta1",
    kind = "Trial",
    root = "TrialResource",
    doc = "One Katib Trial: an experiment's parameter assignment and the workload that runs it.",
    namespaced,
    status = "TrialStatus",
    shortname = "tr",
    category = "all",
    category = "kubeflow",
    category = "katib",
    printcolumn = r#"{"name": "Type", "type": "string", "jsonPath": ".status.conditions[-1:].type"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[-1:].status"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TrialResourceSpec {
    /// The experiment's objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<ObjectiveSpec>,
    /// The trial's parameter values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// Rules that stop the trial early; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub early_stopping_rules: Vec<EarlyStoppingRule>,
    /// The workload, the rendered trial template: any Kubernetes object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub run_spec: Option<serde_json::Value>,
    /// How metrics are collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_collector: Option<MetricsCollectorSpec>,
    /// Labels that identify the pod running the primary container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_pod_labels: Option<BTreeMap<String, String>>,
    /// The container that runs the training program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_container_name: Option<String>,
    /// GJSON-style condition for a succeeded workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// GJSON-style condition for a failed workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// Keep the workload after the trial ends.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retain_run: bool,
    /// Labels for services that track trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `status` of a Trial (Katib's `TrialStatus`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialStatus {
    /// When the controller first saw the trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the trial ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// When the controller last reconciled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<Time>,
    /// Observed conditions, oldest first; the last one is the current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The trial's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
}

/// `spec` of a Suggestion (Katib's `SuggestionSpec`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "kubeflow.org",
    version = "v1beta1",
    kind = "Suggestion",
    root = "SuggestionResource",
    doc = "The Katib Suggestion of an experiment: the algorithm and the assignments it made.",
    namespaced,
    status = "SuggestionStatus",
    shortname = "sugg",
    category = "all",
    category = "kubeflow",
    category = "katib",
    printcolumn = r#"{"name": "Type", "type": "string", "jsonPath": ".status.conditions[-1:].type"}"#,
    printcolumn = r#"{"name": "Status", "type": "string", "jsonPath": ".status.conditions[-1:].status"}"#,
    printcolumn = r#"{"name": "Requested", "type": "string", "jsonPath": ".spec.requests"}"#,
    printcolumn = r#"{"name": "Assigned", "type": "string", "jsonPath": ".status.suggestionCount"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionResourceSpec {
    /// The search algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<AlgorithmSpec>,
    /// The early-stopping rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingSpec>,
    /// Suggestions requested so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requests: i32,
    /// What happens to the suggestion service when the experiment ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_policy: Option<String>,
}

/// One suggested trial (Katib's `TrialAssignment`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialAssignment {
    /// The trial's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its parameter values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// Its early-stopping rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub early_stopping_rules: Vec<EarlyStoppingRule>,
}

/// `status` of a Suggestion (Katib's `SuggestionStatus`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionStatus {
    /// Algorithm settings the engine changed, which override the experiment's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithm_settings: Vec<AlgorithmSetting>,
    /// Suggestions made so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub suggestion_count: i32,
    /// The suggestions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<TrialAssignment>,
    /// When the controller first saw the suggestion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the suggestion ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// When the controller last reconciled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<Time>,
    /// Observed conditions, oldest first; the last one is the current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The three CRDs, in the order `sextant crd` prints them: Experiment, Trial, Suggestion.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [
        ExperimentResource::crd(),
        TrialResource::crd(),
        SuggestionResource::crd(),
    ]
    .into_iter()
    .map(without_defaults)
    .collect()
}

/// Drops the `default` values schemars writes for `#[serde(default)]` fields. Katib's apiserver
/// stores objects as written and Sextant applies Katib's defaults itself (`spec::defaults`), so
/// the apiserver must not fill in `parameters: []`, `retain: false` and the like.
fn without_defaults(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            let mut json = serde_json::to_value(&*schema).expect("a schema serialises");
            strip_defaults(&mut json);
            *schema = serde_json::from_value(json).expect("a schema without defaults reads back");
        }
    }
    crd
}

fn strip_defaults(schema: &mut serde_json::Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    map.remove("default");
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            // A map from field names to schemas: a field may be called `default`.
            "properties" => value
                .as_object_mut()
                .into_iter()
                .flat_map(|fields| fields.values_mut())
                .for_each(strip_defaults),
            "items" | "additionalProperties" | "not" => strip_defaults(value),
            "allOf" | "anyOf" | "oneOf" => value
                .as_array_mut()
                .into_iter()
                .flatten()
                .for_each(strip_defaults),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
