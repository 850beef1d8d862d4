//! The trial's workload as the controller creates it (notes/k8s-design.md, "The trial pod").
//!
//! The trial template is rendered with Katib's placeholders ([`render_trial_spec`]); then every pod
//! template that runs the primary container gets the metrics collector:
//!
//! - StdOut: a native sidecar (an `initContainers` entry with `restartPolicy: Always`, placed after
//!   the template's own init containers) that follows the primary container's log through the
//!   Kubernetes API; the pod gets the `sextant-collector` ServiceAccount unless it names its own.
//! - File: the same sidecar reading the metrics file, which sits on an `emptyDir` volume
//!   (`sextant-metrics`) mounted at the file's directory in the primary container and the sidecar.
//! - Push: no sidecar; the primary container gets what it needs to push (endpoint, experiment,
//!   trial, token from the trial's Secret).
//! - None: nothing.
//!
//! The object and its pod templates get Sextant's and Katib's experiment/trial labels. Nothing else
//! in the template changes: resources (`nvidia.com/gpu`), node selectors, tolerations, affinity,
//! volumes and init containers pass through as written.
//!
//! Where the pod templates are: a `batch/v1` Job's `spec.template`; each replica's `template` in a
//! Kubeflow training job (`spec.{pytorch,tf,mpi,xgb}ReplicaSpecs.<Role>.template`). Other kinds
//! (TrainJob, Argo Workflows, Tekton PipelineRuns ...) are refused: their pods are built by their
//! own controllers from templates of other shapes, and Sextant does not run a pod webhook.
//!
//! Which pod templates get the collector: those whose `spec.containers` holds the primary
//! container. When the template carries Katib's `primaryPodLabels` on some of those pod templates
//! (`metadata.labels`), only the matching ones; when no pod template carries them, the labels are
//! ones the job's operator sets on pods at run time (Katib's default for training jobs is
//! `training.kubeflow.org/job-role: master`), which a template cannot be matched against, so every
//! pod template with the primary container gets it. In Katib's PyTorchJob example, Master and
//! Worker both run the container `pytorch`, so both get a collector.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::ClusterSettings;
use crate::spec::defaults::JOB_KIND;
use crate::spec::template::{TRIAL_SPEC_PATH, TrialIdentity, render_trial_spec};
use crate::spec::{CheckedExperiment, Collector, FieldError, FileFormat, ParameterAssignment};

/// The sidecar's container name.
pub const SIDECAR_NAME: &str = "sextant-collector";

/// The `emptyDir` volume that holds a File collector's metrics file.
pub const METRICS_VOLUME: &str = "sextant-metrics";

/// The key of the trial's push token in its Secret `<trial>-token`.
pub const TOKEN_SECRET_KEY: &str = "token";

/// The sidecar's writable scratch volume (its root filesystem is read-only): where the collector
/// spills points past its memory bound and keeps what it could not deliver.
pub const SPOOL_VOLUME: &str = "sextant-spool";

/// Where the spool volume is mounted in the sidecar.
pub const SPOOL_DIR: &str = "/var/spool/sextant-collector";

/// The collector's final-flush budget: under the pod's default 30 s termination grace period, so
/// the kubelet does not kill it mid-flush after sending SIGTERM.
pub const SIDECAR_FLUSH_TIMEOUT_SECONDS: u32 = 20;

/// Sextant's label with the experiment's name.
pub const LABEL_EXPERIMENT: &str = "sextant.io/experiment";
/// Sextant's label with the trial's name.
pub const LABEL_TRIAL: &str = "sextant.io/trial";
/// Katib's experiment label (`consts.LabelExperimentName`), so Katib tooling finds the pods.
pub const KATIB_LABEL_EXPERIMENT: &str = "katib.kubeflow.org/experiment";
/// Katib's trial label (`consts.LabelTrialName`).
pub const KATIB_LABEL_TRIAL: &str = "katib.kubeflow.org/trial";

/// The batch Job API version whose pod template Sextant knows.
pub const JOB_API_VERSION: &str = "batch/v1";

/// The API group of Kubeflow training jobs (`kubeflow.org/v1`, MPIJob also `v2beta1`).
pub const KUBEFLOW_API_GROUP: &str = "kubeflow.org/";

/// Kubeflow training kinds and the field that holds their replica specs (Training Operator v1).
pub const REPLICA_SPECS_FIELDS: &[(&str, &str)] = &[
    ("PyTorchJob", "pytorchReplicaSpecs"),
    ("TFJob", "tfReplicaSpecs"),
    ("MPIJob", "mpiReplicaSpecs"),
    ("XGBoostJob", "xgbReplicaSpecs"),
];

/// The sidecar's resources, from the design: the collector holds a line buffer and a small queue.
const SIDECAR_CPU_REQUEST: &str = "10m";
const SIDECAR_MEMORY_REQUEST: &str = "16Mi";
const SIDECAR_MEMORY_LIMIT: &str = "64Mi";

/// The non-root user of the distroless image the collector ships in (`nonroot`, 65532).
const SIDECAR_USER: u32 = 65532;

/// Why a trial's workload could not be rendered. Each names the field path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// A placeholder or metadata reference of the template could not be substituted.
    #[error("{0}")]
    Template(FieldError),
    /// The workload's kind has no pod template Sextant knows.
    #[error(
        "{path}: {kind:?} (apiVersion {api_version:?}) has no pod template Sextant knows how to add \
         the metrics collector to; supported: Job (batch/v1), PyTorchJob, TFJob, MPIJob, XGBoostJob (kubeflow.org)"
    )]
    UnsupportedKind {
        /// `spec.trialTemplate.trialSpec.kind`.
        path: String,
        /// The workload's `apiVersion`.
        api_version: String,
        /// The workload's `kind`.
        kind: String,
    },
    /// No pod template runs the primary container.
    #[error(
        "{path}: no pod template has a container named {name:?} (primaryContainerName); containers found: {}",
        if found.is_empty() { "none".to_string() } else { found.join(", ") }
    )]
    PrimaryContainerNotFound {
        /// `spec.trialTemplate.primaryContainerName`.
        path: String,
        /// The name looked for.
        name: String,
        /// The containers of the pod templates, as `<pod template path>: <name>`.
        found: Vec<String>,
    },
    /// The template is not shaped as Kubernetes expects where Sextant edits it, or already uses a
    /// name or path Sextant adds.
    #[error("{path}: {message}")]
    Conflict {
        /// The field.
        path: String,
        /// What is wrong and what would be accepted.
        message: String,
    },
}

impl RenderError {
    /// The path of the field the error is about.
    pub fn path(&self) -> &str {
        match self {
            RenderError::Template(e) => &e.path,
            RenderError::UnsupportedKind { path, .. }
            | RenderError::PrimaryContainerNotFound { path, .. }
            | RenderError::Conflict { path, .. } => path,
        }
    }
}

/// The name of the Secret holding a trial's push token.
pub fn token_secret_name(trial: &str) -> String {
    format!("{trial}-token")
}

/// The labels of a trial's object and pods.
pub fn trial_labels(experiment: &str, trial: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        (LABEL_EXPERIMENT, experiment.to_string()),
        (LABEL_TRIAL, trial.to_string()),
        (KATIB_LABEL_EXPERIMENT, experiment.to_string()),
        (KATIB_LABEL_TRIAL, trial.to_string()),
    ])
}

/// Renders the workload the controller creates for one trial: the template with the trial's
/// values, `metadata.name`/`namespace` of the trial, the labels, and the metrics collector.
pub fn render_workload(
    checked: &CheckedExperiment,
    trial: &TrialIdentity,
    assignments: &[ParameterAssignment],
    cluster: &ClusterSettings,
) -> Result<Value, RenderError> {
    let mut workload =
        render_trial_spec(&checked.template, assignments, trial).map_err(RenderError::Template)?;
    let primary = checked
        .template
        .primary_container_name
        .as_deref()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| RenderError::Conflict {
            path: "spec.trialTemplate.primaryContainerName".into(),
            message: "required: the container that runs the training program".into(),
        })?;
    let templates = pod_templates(&workload)?;
    let labels = trial_labels(&checked.name, &trial.name);
    add_labels(&mut workload, "", TRIAL_SPEC_PATH, &labels)?;
    for template in &templates {
        add_labels(&mut workload, &template.pointer, &template.path, &labels)?;
    }
    let targets = primary_templates(
        &workload,
        &templates,
        primary,
        checked.template.primary_pod_labels.as_ref(),
    )?;
    let injection = Injection {
        experiment: &checked.name,
        trial: &trial.name,
        primary,
        metrics: checked.objective.metric_names(),
        collector: &checked.collector,
        cluster,
    };
    for template in targets {
        injection.apply(&mut workload, template)?;
    }
    Ok(workload)
}

/// A pod template inside the workload.
#[derive(Debug, Clone)]
struct PodTemplate {
    /// JSON pointer from the workload's root.
    pointer: String,
    /// Field path for messages.
    path: String,
}

/// The pod templates of a workload, or why it has none Sextant knows.
fn pod_templates(workload: &Value) -> Result<Vec<PodTemplate>, RenderError> {
    let field = |name: &str| workload.get(name).and_then(Value::as_str).unwrap_or("");
    let (kind, api_version) = (field("kind"), field("apiVersion"));
    let templates = if kind == JOB_KIND && api_version == JOB_API_VERSION {
        vec![PodTemplate {
            pointer: "/spec/template".into(),
            path: format!("{TRIAL_SPEC_PATH}.spec.template"),
        }]
    } else if let Some((_, specs_field)) = REPLICA_SPECS_FIELDS
        .iter()
        .find(|(k, _)| *k == kind)
        .filter(|_| api_version.starts_with(KUBEFLOW_API_GROUP))
    {
        let specs_path = format!("{TRIAL_SPEC_PATH}.spec.{specs_field}");
        let specs = workload
            .get("spec")
            .and_then(|s| s.get(*specs_field))
            .and_then(Value::as_object)
            .filter(|specs| !specs.is_empty())
            .ok_or_else(|| RenderError::Conflict {
                path: specs_path.clone(),
                message: format!(
                    "required for {kind}: the replica specs, an object of replica type (Master, Worker ...) to {{replicas, template}}"
                ),
            })?;
        specs
            .keys()
            .map(|role| PodTemplate {
                pointer: format!("/spec/{specs_field}/{}/template", pointer_escape(role)),
                path: format!("{specs_path}.{role}.template"),
            })
            .collect()
    } else {
        return Err(RenderError::UnsupportedKind {
            path: format!("{TRIAL_SPEC_PATH}.kind"),
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        });
    };
    for template in &templates {
        if !workload
            .pointer(&template.pointer)
            .is_some_and(Value::is_object)
        {
            return Err(RenderError::Conflict {
                path: template.path.clone(),
                message: "required: the pod template ({metadata, spec: {containers}})".into(),
            });
        }
    }
    Ok(templates)
}

/// The pod templates that get the collector (see the module documentation).
fn primary_templates<'t>(
    workload: &Value,
    templates: &'t [PodTemplate],
    primary: &str,
    primary_pod_labels: Option<&BTreeMap<String, String>>,
) -> Result<Vec<&'t PodTemplate>, RenderError> {
    let mut found = Vec::new();
    let mut candidates = Vec::new();
    for template in templates {
        let names = container_names(workload.pointer(&template.pointer).unwrap_or(&Value::Null));
        if names.iter().any(|n| n == primary) {
            candidates.push(template);
        }
        found.extend(names.into_iter().map(|n| format!("{}: {n}", template.path)));
    }
    if candidates.is_empty() {
        return Err(RenderError::PrimaryContainerNotFound {
            path: "spec.trialTemplate.primaryContainerName".into(),
            name: primary.to_string(),
            found,
        });
    }
    let Some(wanted) = primary_pod_labels.filter(|labels| !labels.is_empty()) else {
        return Ok(candidates);
    };
    let labelled: Vec<&PodTemplate> = candidates
        .iter()
        .copied()
        .filter(|template| {
            let labels = workload
                .pointer(&format!("{}/metadata/labels", template.pointer))
                .and_then(Value::as_object);
            wanted.iter().all(|(key, value)| {
                labels
                    .and_then(|l| l.get(key))
                    .and_then(Value::as_str)
                    .is_some_and(|v| v == value)
            })
        })
        .collect();
    Ok(if labelled.is_empty() {
        candidates
    } else {
        labelled
    })
}

/// The names in a pod template's `spec.containers`.
fn container_names(template: &Value) -> Vec<String> {
    template
        .get("spec")
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(|containers| {
            containers
                .iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What the collector needs, shared by every pod template it goes into.
struct Injection<'a> {
    experiment: &'a str,
    trial: &'a str,
    primary: &'a str,
    metrics: Vec<String>,
    collector: &'a Collector,
    cluster: &'a ClusterSettings,
}

impl Injection<'_> {
    fn apply(&self, workload: &mut Value, template: &PodTemplate) -> Result<(), RenderError> {
        let spec_path = format!("{}.spec", template.path);
        let pod = workload
            .pointer_mut(&format!("{}/spec", template.pointer))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| RenderError::Conflict {
                path: spec_path.clone(),
                message: "required: the pod spec".into(),
            })?;
        match self.collector {
            Collector::None => Ok(()),
            Collector::Push => {
                let (primary, path) = primary_container(pod, self.primary, &spec_path)?;
                set_env(primary, &format!("{path}.env"), self.trial_env())
            }
            Collector::StdOut { filters } => {
                let mut args = vec![
                    "--kube-log".to_string(),
                    "--container".to_string(),
                    self.primary.to_string(),
                    "--metrics".to_string(),
                    self.metrics.join(","),
                ];
                push_filters(&mut args, filters);
                self.add_sidecar(pod, &spec_path, args, None)
            }
            Collector::File {
                path,
                format,
                filters,
            } => {
                let directory = metrics_directory(path)?;
                let mut args = vec![
                    "--file".to_string(),
                    path.clone(),
                    "--format".to_string(),
                    match format {
                        FileFormat::Text => "text",
                        FileFormat::Json => "json",
                    }
                    .to_string(),
                    "--until-container".to_string(),
                    self.primary.to_string(),
                    "--metrics".to_string(),
                    self.metrics.join(","),
                ];
                if *format == FileFormat::Text {
                    push_filters(&mut args, filters);
                }
                let volumes = child_array(pod, "volumes", &format!("{spec_path}.volumes"))?;
                if let Some(i) = volumes.iter().position(|v| has_name(v, METRICS_VOLUME)) {
                    return Err(RenderError::Conflict {
                        path: format!("{spec_path}.volumes[{i}].name"),
                        message: format!(
                            "{METRICS_VOLUME:?} is the volume Sextant adds for the File collector's metrics file; rename this volume"
                        ),
                    });
                }
                volumes.push(json!({"name": METRICS_VOLUME, "emptyDir": {}}));
                let mount = json!({"name": METRICS_VOLUME, "mountPath": directory});
                let (primary, primary_path) = primary_container(pod, self.primary, &spec_path)?;
                let mounts_path = format!("{primary_path}.volumeMounts");
                let mounts = child_array(primary, "volumeMounts", &mounts_path)?;
                if let Some(i) = mounts
                    .iter()
                    .position(|m| m.get("mountPath").and_then(Value::as_str) == Some(directory))
                {
                    return Err(RenderError::Conflict {
                        path: format!("{mounts_path}[{i}].mountPath"),
                        message: format!(
                            "the File collector mounts its {METRICS_VOLUME:?} volume at {directory:?} (the directory of \
                             spec.metricsCollectorSpec.source.fileSystemPath.path); write the metrics file to another directory"
                        ),
                    });
                }
                mounts.push(mount.clone());
                self.add_sidecar(pod, &spec_path, args, Some(mount))
            }
        }
    }

    /// What a trial process needs to push metrics: the design's `SEXTANT_*` variables.
    fn trial_env(&self) -> Vec<Value> {
        vec![
            json!({"name": "SEXTANT_ENDPOINT", "value": self.cluster.endpoint}),
            json!({"name": "SEXTANT_EXPERIMENT", "value": self.experiment}),
            json!({"name": "SEXTANT_TRIAL", "value": self.trial}),
            json!({"name": "SEXTANT_TOKEN", "valueFrom": {"secretKeyRef": {
                "name": token_secret_name(self.trial),
                "key": TOKEN_SECRET_KEY,
            }}}),
        ]
    }

    fn add_sidecar(
        &self,
        pod: &mut Map<String, Value>,
        spec_path: &str,
        args: Vec<String>,
        mount: Option<Value>,
    ) -> Result<(), RenderError> {
        if let Some(i) = pod
            .get("containers")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().position(|c| has_name(c, SIDECAR_NAME)))
        {
            return Err(taken_name(format!("{spec_path}.containers[{i}].name")));
        }
        let mut args = args;
        args.extend([
            "--flush-timeout".to_string(),
            SIDECAR_FLUSH_TIMEOUT_SECONDS.to_string(),
            "--spool-dir".to_string(),
            SPOOL_DIR.to_string(),
        ]);
        let volumes = child_array(pod, "volumes", &format!("{spec_path}.volumes"))?;
        if let Some(i) = volumes.iter().position(|v| has_name(v, SPOOL_VOLUME)) {
            return Err(RenderError::Conflict {
                path: format!("{spec_path}.volumes[{i}].name"),
                message: format!(
                    "{SPOOL_VOLUME:?} is the scratch volume Sextant adds for its metrics collector; rename this volume"
                ),
            });
        }
        volumes.push(json!({"name": SPOOL_VOLUME, "emptyDir": {}}));
        let mut mounts: Vec<Value> = mount.into_iter().collect();
        mounts.push(json!({"name": SPOOL_VOLUME, "mountPath": SPOOL_DIR}));
        let mut env = self.trial_env();
        env.push(
            json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        );
        env.push(
            json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
        );
        let mut sidecar = json!({
            "name": SIDECAR_NAME,
            "image": self.cluster.collector_image,
            "command": [super::COLLECTOR_COMMAND],
            "args": args,
            "env": env,
            "resources": {
                "requests": {"cpu": SIDECAR_CPU_REQUEST, "memory": SIDECAR_MEMORY_REQUEST},
                "limits": {"memory": SIDECAR_MEMORY_LIMIT},
            },
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": SIDECAR_USER,
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
            },
            // A native sidecar (Kubernetes 1.29+): started before the containers, kept running
            // beside them, and not holding the Job open once they have exited.
            "restartPolicy": "Always",
        });
        sidecar["volumeMounts"] = Value::Array(mounts);
        let init_path = format!("{spec_path}.initContainers");
        let init = child_array(pod, "initContainers", &init_path)?;
        if let Some(i) = init.iter().position(|c| has_name(c, SIDECAR_NAME)) {
            return Err(taken_name(format!("{init_path}[{i}].name")));
        }
        init.push(sidecar);
        let names_account = |key: &str| {
            pod.get(key)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        };
        // `serviceAccount` is the deprecated alias Kubernetes still honours.
        if !names_account("serviceAccountName") && !names_account("serviceAccount") {
            pod.insert(
                "serviceAccountName".into(),
                self.cluster.collector_service_account.clone().into(),
            );
        }
        Ok(())
    }
}

fn push_filters(args: &mut Vec<String>, filters: &[String]) {
    for filter in filters {
        args.push("--filter".into());
        args.push(filter.clone());
    }
}

fn taken_name(path: String) -> RenderError {
    RenderError::Conflict {
        path,
        message: format!(
            "{SIDECAR_NAME:?} is the name of the metrics collector sidecar Sextant adds; rename this container"
        ),
    }
}

fn has_name(item: &Value, name: &str) -> bool {
    item.get("name").and_then(Value::as_str) == Some(name)
}

/// The directory of a File collector's metrics file, where the shared volume is mounted.
fn metrics_directory(path: &str) -> Result<&str, RenderError> {
    match path.rsplit_once('/') {
        Some((directory, file)) if !directory.is_empty() && !file.is_empty() => Ok(directory),
        _ => Err(RenderError::Conflict {
            path: "spec.metricsCollectorSpec.source.fileSystemPath.path".into(),
            message: format!(
                "{path:?}: on Kubernetes the metrics file must be in a directory below / (e.g. /var/log/katib/metrics.log): \
                 Sextant mounts a shared volume over that directory"
            ),
        }),
    }
}

/// The primary container in a pod spec, with its path.
fn primary_container<'p>(
    pod: &'p mut Map<String, Value>,
    name: &str,
    spec_path: &str,
) -> Result<(&'p mut Map<String, Value>, String), RenderError> {
    let containers = pod
        .get_mut("containers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| RenderError::Conflict {
            path: format!("{spec_path}.containers"),
            message: "required: the pod's containers (a list)".into(),
        })?;
    let i = containers
        .iter()
        .position(|c| has_name(c, name))
        .ok_or_else(|| RenderError::PrimaryContainerNotFound {
            path: "spec.trialTemplate.primaryContainerName".into(),
            name: name.to_string(),
            found: Vec::new(),
        })?;
    let path = format!("{spec_path}.containers[{i}]");
    let container = containers[i]
        .as_object_mut()
        .ok_or_else(|| RenderError::Conflict {
            path: path.clone(),
            message: "expected a container (an object)".into(),
        })?;
    Ok((container, path))
}

/// Sets env entries on a container: an entry of the same name is replaced (the trial's values are
/// what the collector and the push helper must see), the rest are kept in order.
fn set_env(
    container: &mut Map<String, Value>,
    path: &str,
    entries: Vec<Value>,
) -> Result<(), RenderError> {
    let env = child_array(container, "env", path)?;
    let names: Vec<&str> = entries.iter().filter_map(|e| e["name"].as_str()).collect();
    env.retain(|existing| {
        !existing
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| names.contains(&n))
    });
    env.extend(entries);
    Ok(())
}

/// Adds the labels to `metadata.labels` of the object at `pointer` ("" for the root).
fn add_labels(
    workload: &mut Value,
    pointer: &str,
    path: &str,
    labels: &BTreeMap<&'static str, String>,
) -> Result<(), RenderError> {
    let object = workload
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| RenderError::Conflict {
            path: path.to_string(),
            message: "expected an object".into(),
        })?;
    let metadata = child_object(object, "metadata", &format!("{path}.metadata"))?;
    let existing = child_object(metadata, "labels", &format!("{path}.metadata.labels"))?;
    for (key, value) in labels {
        existing.insert((*key).to_string(), value.clone().into());
    }
    Ok(())
}

/// `map[key]` as an object, created when absent (or null).
fn child_object<'m>(
    map: &'m mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'m mut Map<String, Value>, RenderError> {
    let entry = map.entry(key).or_insert_with(|| json!({}));
    if entry.is_null() {
        *entry = json!({});
    }
    entry.as_object_mut().ok_or_else(|| RenderError::Conflict {
        path: path.to_string(),
        message: "expected an object (a map)".into(),
    })
}

/// `map[key]` as a list, created when absent (or null).
fn child_array<'m>(
    map: &'m mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'m mut Vec<Value>, RenderError> {
    let entry = map.entry(key).or_insert_with(|| json!([]));
    if entry.is_null() {
        *entry = json!([]);
    }
    entry.as_array_mut().ok_or_else(|| RenderError::Conflict {
        path: path.to_string(),
        message: "expected a list".into(),
    })
}

/// Escapes a key for a JSON pointer (RFC 6901).
fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec;

    const RANDOM: &str = include_str!("../../../examples/digits/random.yaml");
    const PYTORCH_GPU: &str = include_str!("../../../examples/digits/pytorch-gpu.yaml");

    fn identity() -> TrialIdentity {
        TrialIdentity {
            name: "digits-random-0001".into(),
            namespace: "kubeflow".into(),
        }
    }

    fn digits_assignments() -> Vec<ParameterAssignment> {
        [
            ("lr", "0.01"),
            ("hidden-units", "64"),
            ("batch-size", "32"),
            ("optimizer", "adam"),
            ("epochs", "5"),
        ]
        .into_iter()
        .map(|(name, value)| ParameterAssignment {
            name: name.into(),
            value: value.into(),
        })
        .collect()
    }

    fn render(checked: &CheckedExperiment) -> Result<Value, RenderError> {
        render_workload(
            checked,
            &identity(),
            &digits_assignments(),
            &ClusterSettings::default(),
        )
    }

    /// The digits experiment with its trial spec replaced (no placeholders) and a collector.
    fn with_spec(trial_spec: Value, primary: &str, collector: Collector) -> CheckedExperiment {
        let mut checked = spec::check(RANDOM).unwrap();
        checked.template.trial_spec = Some(trial_spec);
        checked.template.trial_parameters.clear();
        checked.template.primary_container_name = Some(primary.into());
        checked.template.primary_pod_labels = None;
        checked.collector = collector;
        checked
    }

    fn job(pod_spec: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": pod_spec}}})
    }

    fn stdout() -> Collector {
        Collector::StdOut {
            filters: Vec::new(),
        }
    }

    fn pod(workload: &Value) -> &Value {
        &workload["spec"]["template"]["spec"]
    }

    fn expected_env() -> Value {
        json!([
            {"name": "SEXTANT_ENDPOINT", "value": "http://sextant.sextant-system.svc:6789"},
            {"name": "SEXTANT_EXPERIMENT", "value": "digits-random"},
            {"name": "SEXTANT_TRIAL", "value": "digits-random-0001"},
            {"name": "SEXTANT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "digits-random-0001-token", "key": "token"}}},
        ])
    }

    /// What every sidecar gets after its mode's arguments.
    fn common_args() -> Vec<Value> {
        [
            "--flush-timeout",
            "20",
            "--spool-dir",
            "/var/spool/sextant-collector",
        ]
        .map(Value::from)
        .to_vec()
    }

    fn spool_mount() -> Value {
        json!({"name": "sextant-spool", "mountPath": "/var/spool/sextant-collector"})
    }

    fn with_common_args(args: Value) -> Value {
        let mut args = args.as_array().unwrap().clone();
        args.extend(common_args());
        Value::Array(args)
    }

    fn expected_sidecar(args: Value) -> Value {
        let args = with_common_args(args);
        let mut env = expected_env();
        let env_list = env.as_array_mut().unwrap();
        env_list.push(
            json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        );
        env_list.push(json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}));
        json!({
            "name": "sextant-collector",
            "image": "ghcr.io/sextant-tuning/sextant:0.1.0",
            "command": ["/usr/local/bin/sextant-collector"],
            "args": args,
            "env": env,
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            "securityContext": {
                "runAsNonRoot": true, "runAsUser": 65532, "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}
            },
            "restartPolicy": "Always",
            "volumeMounts": [spool_mount()],
        })
    }

    fn expected_labels() -> Value {
        json!({
            "sextant.io/experiment": "digits-random",
            "sextant.io/trial": "digits-random-0001",
            "katib.kubeflow.org/experiment": "digits-random",
            "katib.kubeflow.org/trial": "digits-random-0001",
        })
    }

    #[test]
    fn digits_random_renders_a_job_with_the_stdout_sidecar() {
        let checked = spec::check(RANDOM).unwrap();
        let workload = render(&checked).unwrap();
        assert_eq!(workload["apiVersion"], "batch/v1");
        assert_eq!(workload["kind"], "Job");
        assert_eq!(
            workload["metadata"],
            json!({"name": "digits-random-0001", "namespace": "kubeflow", "labels": expected_labels()})
        );
        assert_eq!(
            workload["spec"]["template"]["metadata"],
            json!({"labels": expected_labels()})
        );
        let pod = pod(&workload);
        assert_eq!(
            pod["containers"],
            json!([{
                "name": "training-container",
                "image": "docker.io/sextant/digits:latest",
                "command": ["python3", "train.py", "--lr=0.01", "--hidden-units=64",
                            "--batch-size=32", "--optimizer=adam", "--epochs=5"],
            }])
        );
        assert_eq!(
            pod["initContainers"],
            json!([expected_sidecar(json!([
                "--kube-log",
                "--container",
                "training-container",
                "--metrics",
                "accuracy,loss"
            ]))])
        );
        assert_eq!(pod["serviceAccountName"], "sextant-collector");
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(
            pod["volumes"],
            json!([{"name": "sextant-spool", "emptyDir": {}}])
        );
        assert_eq!(pod.as_object().unwrap().len(), 5, "{pod:#}");
    }

    #[test]
    fn cluster_settings_reach_the_sidecar() {
        let checked = spec::check(RANDOM).unwrap();
        let cluster = ClusterSettings {
            endpoint: "http://sextant.ml.svc:80".into(),
            collector_image: "registry.local/sextant:dev".into(),
            collector_service_account: "collector".into(),
        };
        let workload =
            render_workload(&checked, &identity(), &digits_assignments(), &cluster).unwrap();
        let sidecar = &pod(&workload)["initContainers"][0];
        assert_eq!(sidecar["image"], "registry.local/sextant:dev");
        assert_eq!(sidecar["env"][0]["value"], "http://sextant.ml.svc:80");
        assert_eq!(pod(&workload)["serviceAccountName"], "collector");
    }

    #[test]
    fn pytorch_gpu_keeps_the_gpu_limit() {
        let checked = spec::check(PYTORCH_GPU).unwrap();
        let workload = render(&checked).unwrap();
        assert_eq!(
            pod(&workload)["containers"][0]["resources"],
            json!({"limits": {"nvidia.com/gpu": 1}})
        );
        assert_eq!(pod(&workload)["initContainers"][0]["name"], SIDECAR_NAME);
    }

    #[test]
    fn stdout_filters_become_filter_flags() {
        let checked = with_spec(
            job(json!({"containers": [{"name": "main", "image": "i"}]})),
            "main",
            Collector::StdOut {
                filters: vec!["(\\w+)=(\\S+)".into(), "(\\w+): (\\d+)".into()],
            },
        );
        let workload = render(&checked).unwrap();
        assert_eq!(
            pod(&workload)["initContainers"][0]["args"],
            with_common_args(json!([
                "--kube-log",
                "--container",
                "main",
                "--metrics",
                "accuracy,loss",
                "--filter",
                "(\\w+)=(\\S+)",
                "--filter",
                "(\\w+): (\\d+)"
            ]))
        );
    }

    #[test]
    fn file_collector_shares_an_empty_dir_at_the_files_directory() {
        let checked = with_spec(
            job(json!({
                "containers": [{"name": "main", "image": "i",
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}],
            })),
            "main",
            Collector::File {
                path: "/var/log/katib/metrics.log".into(),
                format: FileFormat::Text,
                filters: vec!["(\\w+)=(\\S+)".into()],
            },
        );
        let workload = render(&checked).unwrap();
        let pod = pod(&workload);
        let mount = json!({"name": "sextant-metrics", "mountPath": "/var/log/katib"});
        let mut sidecar = expected_sidecar(json!([
            "--file",
            "/var/log/katib/metrics.log",
            "--format",
            "text",
            "--until-container",
            "main",
            "--metrics",
            "accuracy,loss",
            "--filter",
            "(\\w+)=(\\S+)"
        ]));
        sidecar["volumeMounts"] = json!([mount, spool_mount()]);
        assert_eq!(pod["initContainers"], json!([sidecar]));
        assert_eq!(
            pod["volumes"],
            json!([
                {"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
                {"name": "sextant-metrics", "emptyDir": {}},
                {"name": "sextant-spool", "emptyDir": {}},
            ])
        );
        assert_eq!(
            pod["containers"][0]["volumeMounts"],
            json!([{"name": "data", "mountPath": "/data"}, mount])
        );
        assert_eq!(pod["serviceAccountName"], "sextant-collector");
    }

    #[test]
    fn json_file_collector_has_no_filters() {
        let checked = with_spec(
            job(json!({"containers": [{"name": "main"}]})),
            "main",
            Collector::File {
                path: "/out/m.json".into(),
                format: FileFormat::Json,
                filters: Vec::new(),
            },
        );
        let workload = render(&checked).unwrap();
        assert_eq!(
            pod(&workload)["initContainers"][0]["args"],
            with_common_args(json!([
                "--file",
                "/out/m.json",
                "--format",
                "json",
                "--until-container",
                "main",
                "--metrics",
                "accuracy,loss"
            ]))
        );
    }

    #[test]
    fn push_collector_sets_env_on_the_primary_container_only() {
        let checked = with_spec(
            job(json!({"containers": [
                {"name": "helper"},
                {"name": "main", "env": [{"name": "KEEP", "value": "1"},
                                         {"name": "SEXTANT_TRIAL", "value": "stale"}]},
            ]})),
            "main",
            Collector::Push,
        );
        let workload = render(&checked).unwrap();
        let pod = pod(&workload);
        let mut env = vec![json!({"name": "KEEP", "value": "1"})];
        env.extend(expected_env().as_array().unwrap().iter().cloned());
        assert_eq!(pod["containers"][1]["env"], Value::Array(env));
        assert_eq!(pod["containers"][0], json!({"name": "helper"}));
        assert!(pod.get("initContainers").is_none(), "{pod:#}");
        assert!(pod.get("serviceAccountName").is_none(), "{pod:#}");
        assert_eq!(workload["metadata"]["labels"], expected_labels());
    }

    #[test]
    fn none_collector_adds_only_labels() {
        let spec = job(json!({"containers": [{"name": "main"}]}));
        let checked = with_spec(spec.clone(), "main", Collector::None);
        let workload = render(&checked).unwrap();
        assert_eq!(pod(&workload), &json!({"containers": [{"name": "main"}]}));
        assert_eq!(
            workload["spec"]["template"]["metadata"]["labels"],
            expected_labels()
        );
    }

    #[test]
    fn the_rest_of_the_pod_template_passes_through_and_the_sidecar_goes_last() {
        let original = json!({
            "containers": [{"name": "main", "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
            "initContainers": [{"name": "fetch-data", "image": "busybox"},
                               {"name": "warm-cache", "image": "busybox"}],
            "nodeSelector": {"accelerator": "h100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "serviceAccountName": "trainer",
        });
        let mut spec = job(original.clone());
        spec["spec"]["template"]["metadata"] = json!({"labels": {"team": "vision"}});
        spec["spec"]["backoffLimit"] = json!(0);
        let checked = with_spec(spec, "main", stdout());
        let workload = render(&checked).unwrap();
        let pod = pod(&workload).as_object().unwrap();
        for (key, value) in original.as_object().unwrap() {
            match key.as_str() {
                "initContainers" => {}
                // The template's volumes come first, untouched; the collector's scratch volume
                // is added after them.
                "volumes" => {
                    let mut expected = value.as_array().unwrap().clone();
                    expected.push(json!({"name": "sextant-spool", "emptyDir": {}}));
                    assert_eq!(pod[key], Value::Array(expected), "{key}");
                }
                _ => assert_eq!(&pod[key], value, "{key}"),
            }
        }
        let init: Vec<&str> = pod["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(init, ["fetch-data", "warm-cache", "sextant-collector"]);
        assert_eq!(pod["initContainers"][0], original["initContainers"][0]);
        assert_eq!(pod["serviceAccountName"], "trainer");
        assert_eq!(workload["spec"]["backoffLimit"], 0);
        let mut labels = expected_labels();
        labels["team"] = "vision".into();
        assert_eq!(workload["spec"]["template"]["metadata"]["labels"], labels);
    }

    #[test]
    fn deprecated_service_account_is_kept_too() {
        let checked = with_spec(
            job(json!({"containers": [{"name": "main"}], "serviceAccount": "old"})),
            "main",
            stdout(),
        );
        let workload = render(&checked).unwrap();
        assert!(pod(&workload).get("serviceAccountName").is_none());
    }

    fn pytorchjob() -> Value {
        let replica = |command: &str| {
            json!({"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [
                {"name": "pytorch", "image": "docker.io/kubeflowkatib/pytorch-mnist-cpu:v0.15.0",
                 "command": [command]}
            ]}}})
        };
        json!({
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "spec": {"pytorchReplicaSpecs": {"Master": replica("master"), "Worker": replica("worker")}}
        })
    }

    #[test]
    fn pytorchjob_gets_a_sidecar_in_every_replica_running_the_primary_container() {
        let mut checked = with_spec(pytorchjob(), "pytorch", stdout());
        // Katib's default for training jobs: a label the operator sets on pods, not in templates.
        checked.template.primary_pod_labels = Some(BTreeMap::from([(
            "training.kubeflow.org/job-role".into(),
            "master".into(),
        )]));
        let workload = render(&checked).unwrap();
        assert_eq!(workload["metadata"]["labels"], expected_labels());
        for role in ["Master", "Worker"] {
            let template = &workload["spec"]["pytorchReplicaSpecs"][role]["template"];
            assert_eq!(template["metadata"]["labels"], expected_labels(), "{role}");
            assert_eq!(
                template["spec"]["initContainers"],
                json!([expected_sidecar(json!([
                    "--kube-log",
                    "--container",
                    "pytorch",
                    "--metrics",
                    "accuracy,loss"
                ]))]),
                "{role}"
            );
            assert_eq!(template["spec"]["serviceAccountName"], "sextant-collector");
        }
        assert_eq!(
            workload["spec"]["pytorchReplicaSpecs"]["Worker"]["restartPolicy"],
            "OnFailure"
        );
    }

    #[test]
    fn primary_pod_labels_on_templates_select_the_replicas() {
        let mut spec = pytorchjob();
        spec["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["metadata"] =
            json!({"labels": {"role": "chief"}});
        let mut checked = with_spec(spec, "pytorch", stdout());
        checked.template.primary_pod_labels =
            Some(BTreeMap::from([("role".into(), "chief".into())]));
        let workload = render(&checked).unwrap();
        let replicas = &workload["spec"]["pytorchReplicaSpecs"];
        assert_eq!(
            replicas["Master"]["template"]["spec"]["initContainers"][0]["name"],
            SIDECAR_NAME
        );
        assert!(
            replicas["Worker"]["template"]["spec"]
                .get("initContainers")
                .is_none()
        );
        // Every pod template is labelled, with or without a sidecar.
        assert_eq!(
            replicas["Worker"]["template"]["metadata"]["labels"],
            expected_labels()
        );
    }

    #[test]
    fn replica_without_the_primary_container_gets_no_sidecar() {
        let mut spec = pytorchjob();
        spec["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["name"] =
            "other".into();
        let workload = render(&with_spec(spec, "pytorch", Collector::Push)).unwrap();
        let replicas = &workload["spec"]["pytorchReplicaSpecs"];
        assert_eq!(
            replicas["Master"]["template"]["spec"]["containers"][0]["env"],
            expected_env()
        );
        assert!(
            replicas["Worker"]["template"]["spec"]["containers"][0]
                .get("env")
                .is_none()
        );
    }

    #[test]
    fn missing_primary_container_is_refused_listing_the_containers() {
        let checked = with_spec(pytorchjob(), "trainer", stdout());
        let err = render(&checked).unwrap_err();
        assert!(
            matches!(err, RenderError::PrimaryContainerNotFound { .. }),
            "{err}"
        );
        assert_eq!(err.path(), "spec.trialTemplate.primaryContainerName");
        let text = err.to_string();
        assert!(text.contains("\"trainer\""), "{text}");
        assert!(
            text.contains(
                "spec.trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Master.template: pytorch"
            ),
            "{text}"
        );
    }

    #[test]
    fn kinds_without_a_known_pod_template_are_refused() {
        let cases = [
            json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
                   "spec": {"trainer": {"image": "x"}}}),
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {}}),
            json!({"apiVersion": "batch.volcano.sh/v1alpha1", "kind": "Job", "spec": {}}),
        ];
        for spec in cases {
            let err = render(&with_spec(spec.clone(), "main", stdout())).unwrap_err();
            assert!(matches!(err, RenderError::UnsupportedKind { .. }), "{err}");
            assert_eq!(err.path(), "spec.trialTemplate.trialSpec.kind");
            assert!(
                err.to_string()
                    .contains("supported: Job (batch/v1), PyTorchJob"),
                "{err}"
            );
        }
    }

    #[test]
    fn malformed_templates_and_taken_names_name_the_field() {
        let file = Collector::File {
            path: "/m/metrics.log".into(),
            format: FileFormat::Text,
            filters: Vec::new(),
        };
        let cases = [
            (
                json!({"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "spec": {}}),
                stdout(),
                "spec.trialTemplate.trialSpec.spec.tfReplicaSpecs",
            ),
            (
                json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {}}),
                stdout(),
                "spec.trialTemplate.trialSpec.spec.template",
            ),
            (
                job(json!({"containers": [{"name": "main"}],
                           "initContainers": [{"name": "sextant-collector"}]})),
                stdout(),
                "spec.trialTemplate.trialSpec.spec.template.spec.initContainers[0].name",
            ),
            (
                job(json!({"containers": [{"name": "main"}], "initContainers": "x"})),
                stdout(),
                "spec.trialTemplate.trialSpec.spec.template.spec.initContainers",
            ),
            (
                job(json!({"containers": [{"name": "main"}],
                           "volumes": [{"name": "sextant-metrics"}]})),
                file.clone(),
                "spec.trialTemplate.trialSpec.spec.template.spec.volumes[0].name",
            ),
            (
                job(json!({"containers": [{"name": "main",
                           "volumeMounts": [{"name": "v", "mountPath": "/m"}]}]})),
                file,
                "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].volumeMounts[0].mountPath",
            ),
            (
                job(json!({"containers": [{"name": "main"}]})),
                Collector::File {
                    path: "/metrics.log".into(),
                    format: FileFormat::Text,
                    filters: Vec::new(),
                },
                "spec.metricsCollectorSpec.source.fileSystemPath.path",
            ),
        ];
        for (spec, collector, path) in cases {
            let err = render(&with_spec(spec, "main", collector)).unwrap_err();
            assert_eq!(err.path(), path, "{err}");
        }
    }

    #[test]
    fn template_errors_keep_their_field_path() {
        let mut checked = spec::check(RANDOM).unwrap();
        checked.template.trial_parameters.remove(0);
        let err = render(&checked).unwrap_err();
        assert!(matches!(err, RenderError::Template(_)), "{err}");
        assert!(err.path().ends_with("containers[0].command[2]"), "{err}");
    }
}
