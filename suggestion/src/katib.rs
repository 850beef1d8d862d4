//! Katib's `kubeflow.org/v1beta1` types that the suggestion API shares with the Experiment spec:
//! parameters, objective, algorithm and assignments, field for field (Katib's
//! `apis/controller/common/v1beta1`). Numbers Katib keeps as strings stay strings; bare YAML/JSON
//! numbers are accepted and kept as their text.
//!
//! The types also derive `JsonSchema`, from which Sextant's CRDs are generated: a string-or-number
//! field's schema is [`string_or_number_schema`], since a Kubernetes structural schema cannot say
//! "string or number" with a `type`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};

/// One search-space parameter.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParameterSpec {
    /// The parameter's name.
    #[serde(default)]
    pub name: String,
    /// `double`, `int`, `discrete` or `categorical`.
    #[serde(default)]
    pub parameter_type: String,
    /// Its values.
    #[serde(default)]
    pub feasible_space: FeasibleSpace,
}

/// `feasibleSpace` of a parameter; numbers as strings, like Katib.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeasibleSpace {
    /// Upper bound.
    #[serde(
        default,
        deserialize_with = "string_or_number_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "string_or_number_schema")]
    pub max: Option<String>,
    /// Lower bound.
    #[serde(
        default,
        deserialize_with = "string_or_number_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "string_or_number_schema")]
    pub min: Option<String>,
    /// Values of a discrete or categorical parameter.
    #[serde(
        default,
        deserialize_with = "string_or_number_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(schema_with = "string_or_number_list_schema")]
    pub list: Vec<String>,
    /// Quantisation step.
    #[serde(
        default,
        deserialize_with = "string_or_number_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "string_or_number_schema")]
    pub step: Option<String>,
    /// `uniform` (default), `logUniform`, `normal`, `logNormal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
}

/// `objective`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectiveSpec {
    /// `minimize` or `maximize`.
    #[serde(default, rename = "type")]
    pub objective_type: String,
    /// Stop the experiment once the objective reaches this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<f64>,
    /// The metric optimised.
    #[serde(default)]
    pub objective_metric_name: String,
    /// Other metrics collected and shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_metric_names: Vec<String>,
    /// How each metric's series is reduced to one value (`min`, `max`, `latest`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_strategies: Vec<MetricStrategy>,
}

/// One metric's reduction strategy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricStrategy {
    /// The metric.
    #[serde(default)]
    pub name: String,
    /// `min`, `max` or `latest`.
    #[serde(default)]
    pub value: String,
}

/// `algorithm`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlgorithmSpec {
    /// Katib algorithm name (`random`, `grid`, `sobol`, ...).
    #[serde(default)]
    pub algorithm_name: String,
    /// Engine settings as name/value strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithm_settings: Vec<AlgorithmSetting>,
}

/// One algorithm or early-stopping setting.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlgorithmSetting {
    /// Setting name.
    #[serde(default)]
    pub name: String,
    /// Setting value, a string like everything in Katib settings.
    #[serde(default, deserialize_with = "string_or_number")]
    #[schemars(schema_with = "string_or_number_schema")]
    pub value: String,
}

/// A parameter's value in a trial (`parameterAssignments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParameterAssignment {
    /// Parameter name.
    pub name: String,
    /// Value in Katib's string form.
    pub value: String,
}

/// Katib's parameter types.
pub mod parameter_type {
    /// A real number.
    pub const DOUBLE: &str = "double";
    /// An integer.
    pub const INT: &str = "int";
    /// A number from a list.
    pub const DISCRETE: &str = "discrete";
    /// A string from a list.
    pub const CATEGORICAL: &str = "categorical";
}

/// Katib accepts numbers as strings; people also write them bare in YAML. Take both.
pub(crate) fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    scalar_to_string(value).map_err(serde::de::Error::custom)
}

fn string_or_number_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    value
        .map(scalar_to_string)
        .transpose()
        .map_err(serde::de::Error::custom)
}

fn string_or_number_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let values = Option::<Vec<serde_json::Value>>::deserialize(d)?.unwrap_or_default();
    values
        .into_iter()
        .map(scalar_to_string)
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

/// Schema of a string-or-number field. A structural schema needs a `type` on every field except
/// those marked `x-kubernetes-preserve-unknown-fields` (or int-or-string, which rejects `0.01`), and
/// may not put a `type` inside `anyOf`; so the field is left untyped and the apiserver keeps
/// whatever scalar was written, as Katib's own CRD does for the whole spec. The deserializers
/// above then turn it into a string or reject it, with the field's path.
pub fn string_or_number_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A string, or a number kept as its text (Katib writes numbers as strings).",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Schema of a list of string-or-number values (`feasibleSpace.list`).
pub fn string_or_number_list_schema(generator: &mut SchemaGenerator) -> Schema {
    let items = string_or_number_schema(generator);
    json_schema!({
        "type": "array",
        "items": items
    })
}

fn scalar_to_string(value: serde_json::Value) -> Result<String, String> {
    match value {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a string or a number, found {other}")),
    }
}
