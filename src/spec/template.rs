//! Trial-template rendering and the primary container.
//!
//! A trial's workload is `spec.trialTemplate.trialSpec` with every `${trialParameters.NAME}`
//! placeholder replaced. Each `trialParameters` entry says what its placeholder stands for: a
//! search-space parameter (the trial's assigned value), or one of Katib's trial metadata references
//! `${trialSpec.Name}`, `${trialSpec.Namespace}`, `${trialSpec.Kind}`, `${trialSpec.APIVersion}`,
//! `${trialSpec.Labels[KEY]}`, `${trialSpec.Annotations[KEY]}`. As in Katib's manifest generator
//! (`pkg/controller.v1beta1/experiment/manifest/generator.go`), Name and Namespace are the trial's,
//! while Kind, APIVersion, Labels and Annotations are read from the template's own top level.
//!
//! Katib substitutes text in the template serialised as JSON, one placeholder after another. Sextant
//! walks the JSON value instead and substitutes inside every string (and every object key) in one
//! pass, so a value containing quotes cannot break the document and a substituted value is never
//! itself scanned for placeholders. The placeholder syntax is Katib's regex
//! `\$\{trialParameters\..+?\}` (`TrialTemplateParamReplaceFormatRegex`, controller.v1beta1/consts):
//! the name runs up to the first `}`.
//!
//! [`primary_container`] reads what the local runtime needs from the rendered workload: the container
//! named by `primaryContainerName`, found in any `containers` array (a batch Job's
//! `spec.template.spec.containers`, each replica of a PyTorchJob or TFJob, ...).

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::FieldError;
use super::types::{ParameterAssignment, TrialTemplate};

/// Where the template sits in an Experiment; every path in an error from this module starts here.
pub const TRIAL_SPEC_PATH: &str = "spec.trialTemplate.trialSpec";

/// Opening of a placeholder (Katib `TrialTemplateParamReplaceFormat` = `${trialParameters.%v}`).
pub const PLACEHOLDER_PREFIX: &str = "${trialParameters.";

/// Opening of a trial metadata reference (Katib `TrialTemplateMetaReplaceFormatRegex`).
pub const META_REFERENCE_PREFIX: &str = "${trialSpec.";

/// The metadata references Katib accepts (Katib `TrialTemplateMetaKeys`, controller.v1beta1/consts).
pub const ACCEPTED_META_REFERENCES: &str = "${trialSpec.Name}, ${trialSpec.Namespace}, \
     ${trialSpec.Kind}, ${trialSpec.APIVersion}, ${trialSpec.Labels[KEY]}, ${trialSpec.Annotations[KEY]}";

/// The extended resource NVIDIA's Kubernetes device plugin registers; the local runtime hands out
/// this many GPUs to the trial.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// What the local runtime needs of the primary container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PrimaryContainer {
    /// Container name.
    pub name: String,
    /// The image (not used locally).
    pub image: Option<String>,
    /// `command`.
    pub command: Vec<String>,
    /// `args`.
    pub args: Vec<String>,
    /// `env` entries with plain `value`s.
    pub env: Vec<(String, String)>,
    /// `workingDir`.
    pub working_dir: Option<String>,
    /// `resources.limits["nvidia.com/gpu"]` (0 when absent).
    pub gpus: u32,
}

/// The trial's identity, for `${trialSpec.*}` placeholders.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrialIdentity {
    /// Trial name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// A `${trialSpec.*}` reference of a trial parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaReference {
    /// `${trialSpec.Name}`: the trial's name.
    Name,
    /// `${trialSpec.Namespace}`: the trial's namespace.
    Namespace,
    /// `${trialSpec.Kind}`: the template's `kind`.
    Kind,
    /// `${trialSpec.APIVersion}`: the template's `apiVersion`.
    ApiVersion,
    /// `${trialSpec.Labels[KEY]}`: a label of the template's `metadata.labels`.
    Label(String),
    /// `${trialSpec.Annotations[KEY]}`: an annotation of the template's `metadata.annotations`.
    Annotation(String),
}

impl MetaReference {
    /// Reads a trial parameter's `reference`: `None` when it is not a `${trialSpec.` reference at
    /// all (so it names a search parameter), `Some(Err(message))` when it starts like one but is not
    /// one Katib accepts.
    pub fn parse(reference: &str) -> Option<Result<MetaReference, String>> {
        let rest = reference.strip_prefix(META_REFERENCE_PREFIX)?;
        let invalid = || {
            Err(format!(
                "not a trial metadata reference; accepted: {ACCEPTED_META_REFERENCES}"
            ))
        };
        let Some(key) = rest.strip_suffix('}') else {
            return Some(invalid());
        };
        let parsed = match key {
            "Name" => Ok(MetaReference::Name),
            "Namespace" => Ok(MetaReference::Namespace),
            "Kind" => Ok(MetaReference::Kind),
            "APIVersion" => Ok(MetaReference::ApiVersion),
            _ => match key.split_once('[') {
                Some((map, index)) => match index.strip_suffix(']') {
                    Some(index) if !index.is_empty() && map == "Labels" => {
                        Ok(MetaReference::Label(index.to_string()))
                    }
                    Some(index) if !index.is_empty() && map == "Annotations" => {
                        Ok(MetaReference::Annotation(index.to_string()))
                    }
                    _ => invalid(),
                },
                None => invalid(),
            },
        };
        Some(parsed)
    }

    /// The value this reference stands for in one trial; `Err` says what is missing.
    pub fn resolve(&self, trial_spec: &Value, trial: &TrialIdentity) -> Result<String, String> {
        let top_level = |field: &str| {
            trial_spec
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("{TRIAL_SPEC_PATH}.{field} is not set"))
        };
        let metadata_entry = |map: &str, key: &str| {
            let entries = trial_spec.get("metadata").and_then(|m| m.get(map));
            match entries.and_then(|e| e.get(key)).and_then(Value::as_str) {
                Some(value) => Ok(value.to_string()),
                None => {
                    let keys: Vec<&str> = entries
                        .and_then(Value::as_object)
                        .map(|o| o.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    Err(format!(
                        "{TRIAL_SPEC_PATH}.metadata.{map} has no {key:?}; keys there: {}",
                        list_or_none(&keys)
                    ))
                }
            }
        };
        match self {
            MetaReference::Name => Ok(trial.name.clone()),
            MetaReference::Namespace => Ok(trial.namespace.clone()),
            MetaReference::Kind => top_level("kind"),
            MetaReference::ApiVersion => top_level("apiVersion"),
            MetaReference::Label(key) => metadata_entry("labels", key),
            MetaReference::Annotation(key) => metadata_entry("annotations", key),
        }
    }
}

/// Renders the trial template for one trial: every `${trialParameters.X}` replaced, and
/// `metadata.name` / `metadata.namespace` set to the trial's, as Katib does for the trial's workload
/// (an empty namespace is left out).
///
/// Errors name the path of what could not be rendered: a trial parameter whose parameter has no
/// assignment in this trial, a metadata reference that cannot be resolved, or a placeholder that no
/// trial parameter defines.
pub fn render_trial_spec(
    template: &TrialTemplate,
    assignments: &[ParameterAssignment],
    trial: &TrialIdentity,
) -> Result<Value, FieldError> {
    let Some(trial_spec) = template.trial_spec.as_ref() else {
        return Err(FieldError::new(
            TRIAL_SPEC_PATH,
            "",
            "required: the workload each trial runs",
        ));
    };
    let values = placeholder_values(template, trial_spec, assignments, trial)?;
    let mut rendered = trial_spec.clone();
    substitute(&mut rendered, &values, TRIAL_SPEC_PATH)?;
    if let Some(object) = rendered.as_object_mut() {
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if !metadata.is_object() {
            *metadata = Value::Object(Default::default());
        }
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert("name".into(), trial.name.clone().into());
            if !trial.namespace.is_empty() {
                metadata.insert("namespace".into(), trial.namespace.clone().into());
            }
        }
    }
    Ok(rendered)
}

/// Finds the primary container in a rendered workload: the first container named `name` in any
/// `containers` array, walking objects in key order (so a PyTorchJob's `Master` replica comes before
/// `Worker`, a TFJob's `Chief` before `PS` and `Worker`).
///
/// Only plain `env[].value`s are read; entries with `valueFrom` (secrets, field refs) need
/// Kubernetes and are skipped. An entry with neither is an empty string, as in Kubernetes.
pub fn primary_container(rendered: &Value, name: &str) -> Result<PrimaryContainer, FieldError> {
    let containers = containers(rendered);
    let Some((path, container)) = containers
        .iter()
        .find(|(_, c)| c.get("name").and_then(Value::as_str) == Some(name))
    else {
        let names: Vec<&str> = containers
            .iter()
            .filter_map(|(_, c)| c.get("name").and_then(Value::as_str))
            .collect();
        return Err(FieldError::new(
            TRIAL_SPEC_PATH,
            name,
            format!(
                "no container named {name:?} in any `containers` list; containers found: {}",
                list_or_none(&names)
            ),
        ));
    };
    read_container(container, path, name)
}

/// The names of every container in `containers` lists of a workload, in the order
/// [`primary_container`] searches them.
pub fn container_names(workload: &Value) -> Vec<String> {
    containers(workload)
        .iter()
        .filter_map(|(_, c)| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Every placeholder used in a workload: (path of the string or key that holds it, name).
pub fn placeholders_used(workload: &Value) -> Vec<(String, String)> {
    let mut used = Vec::new();
    collect_placeholders(workload, TRIAL_SPEC_PATH.to_string(), &mut used);
    used
}

/// One `${trialParameters.NAME}` in a string: byte range and name.
struct Placeholder<'a> {
    start: usize,
    end: usize,
    name: &'a str,
}

fn placeholders_in(text: &str) -> Vec<Placeholder<'_>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find(PLACEHOLDER_PREFIX) {
        let start = from + offset;
        let name_start = start + PLACEHOLDER_PREFIX.len();
        let Some(close) = text[name_start..].find('}') else {
            break;
        };
        let end = name_start + close + 1;
        found.push(Placeholder {
            start,
            end,
            name: &text[name_start..name_start + close],
        });
        from = end;
    }
    found
}

fn collect_placeholders(value: &Value, path: String, used: &mut Vec<(String, String)>) {
    match value {
        Value::String(text) => {
            for placeholder in placeholders_in(text) {
                used.push((path.clone(), placeholder.name.to_string()));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_placeholders(item, format!("{path}[{i}]"), used);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let item_path = child_path(&path, key);
                for placeholder in placeholders_in(key) {
                    used.push((item_path.clone(), placeholder.name.to_string()));
                }
                collect_placeholders(item, item_path, used);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The value of every defined placeholder for this trial.
fn placeholder_values(
    template: &TrialTemplate,
    trial_spec: &Value,
    assignments: &[ParameterAssignment],
    trial: &TrialIdentity,
) -> Result<BTreeMap<String, String>, FieldError> {
    let mut values = BTreeMap::new();
    for (i, parameter) in template.trial_parameters.iter().enumerate() {
        let path = format!("spec.trialTemplate.trialParameters[{i}].reference");
        let value = match MetaReference::parse(&parameter.reference) {
            Some(Ok(meta)) => meta
                .resolve(trial_spec, trial)
                .map_err(|message| FieldError::new(&path, &parameter.reference, message))?,
            Some(Err(message)) => {
                return Err(FieldError::new(path, &parameter.reference, message));
            }
            None => match assignments.iter().find(|a| a.name == parameter.reference) {
                Some(assignment) => assignment.value.clone(),
                None => {
                    let assigned: Vec<&str> = assignments.iter().map(|a| a.name.as_str()).collect();
                    return Err(FieldError::new(
                        path,
                        &parameter.reference,
                        format!(
                            "this trial has no value for parameter {:?}; assigned: {}",
                            parameter.reference,
                            list_or_none(&assigned)
                        ),
                    ));
                }
            },
        };
        values.insert(parameter.name.clone(), value);
    }
    Ok(values)
}

fn substitute(
    value: &mut Value,
    values: &BTreeMap<String, String>,
    path: &str,
) -> Result<(), FieldError> {
    match value {
        Value::String(text) => {
            if let Some(replaced) = substitute_text(text, values, path)? {
                *text = replaced;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, values, &format!("{path}[{i}]"))?;
            }
        }
        Value::Object(map) => {
            for (key, mut item) in std::mem::take(map) {
                let item_path = child_path(path, &key);
                substitute(&mut item, values, &item_path)?;
                let key = substitute_text(&key, values, &item_path)?.unwrap_or(key);
                map.insert(key, item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// `Some(new text)` when `text` holds placeholders, `None` when it has none.
fn substitute_text(
    text: &str,
    values: &BTreeMap<String, String>,
    path: &str,
) -> Result<Option<String>, FieldError> {
    let placeholders = placeholders_in(text);
    if placeholders.is_empty() {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for placeholder in placeholders {
        let Some(value) = values.get(placeholder.name) else {
            let defined: Vec<&str> = values.keys().map(String::as_str).collect();
            return Err(FieldError::new(
                path,
                &text[placeholder.start..placeholder.end],
                format!(
                    "placeholder {:?} is not defined in spec.trialTemplate.trialParameters; defined: {}",
                    placeholder.name,
                    list_or_none(&defined)
                ),
            ));
        };
        out.push_str(&text[copied..placeholder.start]);
        out.push_str(value);
        copied = placeholder.end;
    }
    out.push_str(&text[copied..]);
    Ok(Some(out))
}

/// Every element of every `containers` array, with its path.
fn containers(workload: &Value) -> Vec<(String, &Value)> {
    let mut found = Vec::new();
    collect_containers(workload, TRIAL_SPEC_PATH.to_string(), &mut found);
    found
}

fn collect_containers<'a>(value: &'a Value, path: String, found: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let item_path = child_path(&path, key);
                if key == "containers"
                    && let Value::Array(list) = item
                {
                    for (i, container) in list.iter().enumerate() {
                        found.push((format!("{item_path}[{i}]"), container));
                    }
                }
                collect_containers(item, item_path, found);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_containers(item, format!("{path}[{i}]"), found);
            }
        }
        Value::Null | Value::Bool(_) | Value::String(_) | Value::Number(_) => {}
    }
}

fn read_container(
    container: &Value,
    path: &str,
    name: &str,
) -> Result<PrimaryContainer, FieldError> {
    let optional_string = |field: &str| -> Result<Option<String>, FieldError> {
        match container.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(FieldError::new(
                format!("{path}.{field}"),
                other.to_string(),
                "expected a string",
            )),
        }
    };
    let string_list = |field: &str| -> Result<Vec<String>, FieldError> {
        match container.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(FieldError::new(
                        format!("{path}.{field}[{i}]"),
                        other.to_string(),
                        "expected a string (quote numbers in YAML, e.g. \"3\")",
                    )),
                })
                .collect(),
            Some(other) => Err(FieldError::new(
                format!("{path}.{field}"),
                other.to_string(),
                "expected a list of strings",
            )),
        }
    };
    Ok(PrimaryContainer {
        name: name.to_string(),
        image: optional_string("image")?,
        command: string_list("command")?,
        args: string_list("args")?,
        env: read_env(container, path)?,
        working_dir: optional_string("workingDir")?,
        gpus: read_gpus(container, path)?,
    })
}

fn read_env(container: &Value, path: &str) -> Result<Vec<(String, String)>, FieldError> {
    let entries = match container.get("env") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(other) => {
            return Err(FieldError::new(
                format!("{path}.env"),
                other.to_string(),
                "expected a list of {name, value} entries",
            ));
        }
    };
    let mut env = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let entry_path = format!("{path}.env[{i}]");
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            return Err(FieldError::new(
                format!("{entry_path}.name"),
                entry.get("name").map(Value::to_string).unwrap_or_default(),
                "expected the variable's name, a string",
            ));
        };
        if entry.get("valueFrom").is_some_and(|v| !v.is_null()) {
            continue;
        }
        let value = match entry.get("value") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(value)) => value.clone(),
            Some(other) => {
                return Err(FieldError::new(
                    format!("{entry_path}.value"),
                    other.to_string(),
                    "expected a string (quote numbers in YAML, e.g. \"3\")",
                ));
            }
        };
        env.push((name.to_string(), value));
    }
    Ok(env)
}

fn read_gpus(container: &Value, path: &str) -> Result<u32, FieldError> {
    let Some(limit) = container
        .get("resources")
        .and_then(|r| r.get("limits"))
        .and_then(|l| l.get(GPU_RESOURCE))
    else {
        return Ok(0);
    };
    let parsed = match limit {
        Value::Null => Some(0),
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse::<u32>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        let shown = match limit {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        FieldError::new(
            format!("{path}.resources.limits[{GPU_RESOURCE:?}]"),
            shown,
            "expected a whole number of GPUs, e.g. 1 or \"2\"",
        )
    })
}

/// `path.key`, or `path["key"]` when the key is not a plain identifier (`nvidia.com/gpu`).
pub(crate) fn child_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{key:?}]")
    }
}

pub(crate) fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::types::TrialParameterSpec;
    use serde_json::json;

    fn trial_parameter(name: &str, reference: &str) -> TrialParameterSpec {
        TrialParameterSpec {
            name: name.into(),
            description: String::new(),
            reference: reference.into(),
        }
    }

    fn assignment(name: &str, value: &str) -> ParameterAssignment {
        ParameterAssignment {
            name: name.into(),
            value: value.into(),
        }
    }

    fn job() -> Value {
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "labels": {"team": "vision"},
                "annotations": {"owner": "ada"}
            },
            "spec": {"template": {"spec": {
                "containers": [
                    {"name": "sidecar", "image": "busybox"},
                    {
                        "name": "training-container",
                        "image": "python:3.12",
                        "command": ["python", "train.py"],
                        "args": ["--lr=${trialParameters.learningRate}", "--layers", "${trialParameters.layers}"],
                        "env": [
                            {"name": "TRIAL", "value": "${trialParameters.trialName}"},
                            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                            {"name": "EMPTY"}
                        ],
                        "workingDir": "/work",
                        "resources": {"limits": {"nvidia.com/gpu": 2, "cpu": "1"}}
                    }
                ],
                "restartPolicy": "Never"
            }}}
        })
    }

    fn template(trial_spec: Value, parameters: Vec<TrialParameterSpec>) -> TrialTemplate {
        TrialTemplate {
            trial_spec: Some(trial_spec),
            trial_parameters: parameters,
            primary_container_name: Some("training-container".into()),
            ..TrialTemplate::default()
        }
    }

    fn identity() -> TrialIdentity {
        TrialIdentity {
            name: "demo-abc123".into(),
            namespace: "kubeflow".into(),
        }
    }

    fn job_template() -> TrialTemplate {
        template(
            job(),
            vec![
                trial_parameter("learningRate", "lr"),
                trial_parameter("layers", "num_layers"),
                trial_parameter("trialName", "${trialSpec.Name}"),
            ],
        )
    }

    fn job_assignments() -> Vec<ParameterAssignment> {
        vec![assignment("lr", "0.05"), assignment("num_layers", "3")]
    }

    #[test]
    fn renders_parameters_and_trial_name_and_sets_metadata() {
        let rendered = render_trial_spec(&job_template(), &job_assignments(), &identity()).unwrap();
        let container = &rendered["spec"]["template"]["spec"]["containers"][1];
        assert_eq!(container["args"], json!(["--lr=0.05", "--layers", "3"]));
        assert_eq!(container["env"][0]["value"], "demo-abc123");
        assert_eq!(rendered["metadata"]["name"], "demo-abc123");
        assert_eq!(rendered["metadata"]["namespace"], "kubeflow");
        assert_eq!(rendered["metadata"]["labels"]["team"], "vision");
    }

    #[test]
    fn renders_every_metadata_reference() {
        let spec = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"labels": {"team": "vision"}, "annotations": {"owner": "ada"}},
            "spec": {"values": [
                "${trialParameters.n}", "${trialParameters.ns}", "${trialParameters.k}",
                "${trialParameters.v}", "${trialParameters.l}", "${trialParameters.a}"
            ]}
        });
        let t = template(
            spec,
            vec![
                trial_parameter("n", "${trialSpec.Name}"),
                trial_parameter("ns", "${trialSpec.Namespace}"),
                trial_parameter("k", "${trialSpec.Kind}"),
                trial_parameter("v", "${trialSpec.APIVersion}"),
                trial_parameter("l", "${trialSpec.Labels[team]}"),
                trial_parameter("a", "${trialSpec.Annotations[owner]}"),
            ],
        );
        let rendered = render_trial_spec(&t, &[], &identity()).unwrap();
        assert_eq!(
            rendered["spec"]["values"],
            json!([
                "demo-abc123",
                "kubeflow",
                "Job",
                "batch/v1",
                "vision",
                "ada"
            ])
        );
    }

    #[test]
    fn substitutes_several_placeholders_in_one_string_and_in_keys() {
        let spec = json!({"kind": "Job", "apiVersion": "batch/v1", "spec": {
            "cmd": "train --a=${trialParameters.a} --b=${trialParameters.b} end",
            "${trialParameters.a}-key": 1
        }});
        let t = template(
            spec,
            vec![trial_parameter("a", "x"), trial_parameter("b", "y")],
        );
        let rendered = render_trial_spec(
            &t,
            &[assignment("x", "1"), assignment("y", "two")],
            &identity(),
        )
        .unwrap();
        assert_eq!(rendered["spec"]["cmd"], "train --a=1 --b=two end");
        assert_eq!(rendered["spec"]["1-key"], 1);
    }

    #[test]
    fn values_are_inserted_verbatim_and_never_rescanned() {
        let spec = json!({"kind": "Job", "apiVersion": "batch/v1",
            "spec": {"x": "${trialParameters.a}", "y": "${trialParameters.b}"}});
        let t = template(
            spec,
            vec![trial_parameter("a", "p"), trial_parameter("b", "q")],
        );
        let rendered = render_trial_spec(
            &t,
            &[
                assignment("p", "say \"hi\" ${trialParameters.b}"),
                assignment("q", "2"),
            ],
            &identity(),
        )
        .unwrap();
        assert_eq!(rendered["spec"]["x"], "say \"hi\" ${trialParameters.b}");
    }

    #[test]
    fn undefined_placeholder_is_an_error_naming_it_and_its_path() {
        let mut t = job_template();
        t.trial_parameters.remove(1);
        let err = render_trial_spec(&t, &job_assignments(), &identity()).unwrap_err();
        assert_eq!(
            err.path,
            "spec.trialTemplate.trialSpec.spec.template.spec.containers[1].args[2]"
        );
        assert_eq!(err.value, "${trialParameters.layers}");
        assert!(err.message.contains("\"layers\" is not defined"), "{err}");
        assert!(
            err.message.contains("defined: learningRate, trialName"),
            "{err}"
        );
    }

    #[test]
    fn missing_assignment_is_an_error_naming_the_parameter() {
        let err = render_trial_spec(&job_template(), &[assignment("lr", "0.1")], &identity())
            .unwrap_err();
        assert_eq!(err.path, "spec.trialTemplate.trialParameters[1].reference");
        assert_eq!(err.value, "num_layers");
        assert!(err.message.contains("assigned: lr"), "{err}");
    }

    #[test]
    fn missing_label_is_an_error_listing_the_labels() {
        let t = template(
            job(),
            vec![trial_parameter(
                "learningRate",
                "${trialSpec.Labels[missing]}",
            )],
        );
        let err = render_trial_spec(&t, &[], &identity()).unwrap_err();
        assert_eq!(err.path, "spec.trialTemplate.trialParameters[0].reference");
        assert!(err.message.contains("keys there: team"), "{err}");
    }

    #[test]
    fn meta_references_parse_like_katib() {
        assert_eq!(MetaReference::parse("lr"), None);
        assert_eq!(
            MetaReference::parse("${trialSpec.APIVersion}"),
            Some(Ok(MetaReference::ApiVersion))
        );
        assert_eq!(
            MetaReference::parse("${trialSpec.Annotations[a/b]}"),
            Some(Ok(MetaReference::Annotation("a/b".into())))
        );
        for bad in [
            "${trialSpec.Uid}",
            "${trialSpec.Labels[]}",
            "${trialSpec.Name",
            "${trialSpec.Foo[x]}",
        ] {
            let err = MetaReference::parse(bad).unwrap().unwrap_err();
            assert!(err.contains("${trialSpec.Labels[KEY]}"), "{bad}: {err}");
        }
    }

    #[test]
    fn an_unclosed_placeholder_is_left_as_text() {
        let spec =
            json!({"kind": "Job", "apiVersion": "batch/v1", "spec": {"x": "${trialParameters.a"}});
        let rendered = render_trial_spec(&template(spec, vec![]), &[], &identity()).unwrap();
        assert_eq!(rendered["spec"]["x"], "${trialParameters.a");
    }

    #[test]
    fn render_without_trial_spec_is_an_error() {
        let t = TrialTemplate::default();
        let err = render_trial_spec(&t, &[], &identity()).unwrap_err();
        assert_eq!(err.path, TRIAL_SPEC_PATH);
    }

    #[test]
    fn reads_the_primary_container_of_a_job() {
        let rendered = render_trial_spec(&job_template(), &job_assignments(), &identity()).unwrap();
        let container = primary_container(&rendered, "training-container").unwrap();
        assert_eq!(
            container,
            PrimaryContainer {
                name: "training-container".into(),
                image: Some("python:3.12".into()),
                command: vec!["python".into(), "train.py".into()],
                args: vec!["--lr=0.05".into(), "--layers".into(), "3".into()],
                env: vec![
                    ("TRIAL".into(), "demo-abc123".into()),
                    ("EMPTY".into(), String::new())
                ],
                working_dir: Some("/work".into()),
                gpus: 2,
            }
        );
    }

    #[test]
    fn finds_the_container_of_a_pytorchjob_master_replica() {
        let spec = json!({
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "spec": {"pytorchReplicaSpecs": {
                "Worker": {"replicas": 2, "template": {"spec": {"containers": [
                    {"name": "pytorch", "image": "w", "command": ["worker"]}
                ]}}},
                "Master": {"replicas": 1, "template": {"spec": {"containers": [
                    {"name": "pytorch", "image": "m", "command": ["master"],
                     "resources": {"limits": {"nvidia.com/gpu": "1"}}}
                ]}}}
            }}
        });
        let container = primary_container(&spec, "pytorch").unwrap();
        assert_eq!(container.command, vec!["master".to_string()]);
        assert_eq!(container.gpus, 1);
        assert_eq!(container_names(&spec), vec!["pytorch", "pytorch"]);
    }

    #[test]
    fn no_gpu_limit_means_zero_gpus() {
        let spec =
            json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "2"}}}]}});
        assert_eq!(primary_container(&spec, "c").unwrap().gpus, 0);
        assert_eq!(
            primary_container(&spec, "c").unwrap().command,
            Vec::<String>::new()
        );
    }

    #[test]
    fn missing_primary_container_lists_the_containers_found() {
        let err = primary_container(&job(), "trainer").unwrap_err();
        assert_eq!(err.path, TRIAL_SPEC_PATH);
        assert_eq!(err.value, "trainer");
        assert!(
            err.message
                .contains("containers found: sidecar, training-container"),
            "{err}"
        );
    }

    #[test]
    fn bad_gpu_limit_names_its_path_and_the_accepted_form() {
        for bad in [json!("two"), json!(-1), json!(1.5), json!([1])] {
            let spec = json!({"spec": {"containers": [
                {"name": "c", "resources": {"limits": {"nvidia.com/gpu": bad}}}
            ]}});
            let err = primary_container(&spec, "c").unwrap_err();
            assert_eq!(
                err.path,
                "spec.trialTemplate.trialSpec.spec.containers[0].resources.limits[\"nvidia.com/gpu\"]"
            );
            assert!(err.message.contains("whole number of GPUs"), "{err}");
        }
    }

    #[test]
    fn bad_command_args_env_and_working_dir_name_their_paths() {
        let cases = [
            (
                json!({"command": "python train.py"}),
                "containers[0].command",
                "list of strings",
            ),
            (
                json!({"args": ["--n", 3]}),
                "containers[0].args[1]",
                "expected a string",
            ),
            (
                json!({"env": [{"name": "N", "value": 3}]}),
                "containers[0].env[0].value",
                "a string",
            ),
            (
                json!({"env": [{"value": "x"}]}),
                "containers[0].env[0].name",
                "name",
            ),
            (
                json!({"env": {"N": "3"}}),
                "containers[0].env",
                "list of {name, value}",
            ),
            (
                json!({"workingDir": 7}),
                "containers[0].workingDir",
                "a string",
            ),
            (json!({"image": false}), "containers[0].image", "a string"),
        ];
        for (fields, path, message) in cases {
            let mut container = fields;
            container["name"] = "c".into();
            let spec = json!({"spec": {"containers": [container]}});
            let err = primary_container(&spec, "c").unwrap_err();
            assert_eq!(
                err.path,
                format!("spec.trialTemplate.trialSpec.spec.{path}")
            );
            assert!(err.message.contains(message), "{err}");
        }
    }

    #[test]
    fn placeholders_used_reports_paths_and_names() {
        let used = placeholders_used(&job());
        assert_eq!(
            used,
            vec![
                (
                    "spec.trialTemplate.trialSpec.spec.template.spec.containers[1].args[0]".into(),
                    "learningRate".into()
                ),
                (
                    "spec.trialTemplate.trialSpec.spec.template.spec.containers[1].args[2]".into(),
                    "layers".into()
                ),
                (
                    "spec.trialTemplate.trialSpec.spec.template.spec.containers[1].env[0].value"
                        .into(),
                    "trialName".into()
                ),
            ]
        );
    }
}
