//! [`KubernetesRuntime`]: trials as Kubernetes workloads.
//!
//! `start` is synchronous (the [`TrialRuntime`] contract) and only spawns a Tokio task per trial;
//! the task creates the trial's objects — the Trial resource (owned by the Experiment), the token
//! Secret and the workload (both owned by the Trial) — then watches the workload and reports its
//! end through the events channel, as the local runtime reports a process exit. Every object is
//! created idempotently (AlreadyExists is success), so starting a trial again after a restart
//! picks up what is already there.
//!
//! Exactly one `Exited` is sent per trial: the task and `stop` share a flag that the first report
//! sets, and nothing is reported once it is set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;

use super::render::{TOKEN_SECRET_KEY, token_secret_name};
use super::{ClusterSettings, Conditions, render_workload, workload_outcome};
use crate::controller::kube_status::{trial_resource, workload_owner_reference};
use crate::runtime::{ExitOutcome, RuntimeEvent, StartError, StartedTrial, TrialRuntime};
use crate::spec::DEFAULT_NAMESPACE;
use crate::spec::crd::TrialResource;
use crate::spec::template::TrialIdentity;
use crate::spec::{CheckedExperiment, ExperimentResource};
use crate::store::TrialRecord;

/// Runs an experiment's trials as Kubernetes workloads.
pub struct KubernetesRuntime {
    client: kube::Client,
    owner: ExperimentResource,
    checked: Arc<CheckedExperiment>,
    cluster: ClusterSettings,
    events: UnboundedSender<RuntimeEvent>,
    trials: HashMap<String, TrialWorkload>,
}

/// What the runtime keeps about one started trial.
struct TrialWorkload {
    name: String,
    namespace: String,
    resource: ApiResource,
    watch: AbortHandle,
    shared: Arc<Shared>,
}

/// State the watch task and `stop` share.
#[derive(Default)]
struct Shared {
    /// `stop` asked for the workload's deletion.
    stopping: AtomicBool,
    /// The trial's `Exited` was sent (or the workload ended): nothing more is reported.
    reported: AtomicBool,
}

impl Shared {
    /// Sends `Exited` unless it was sent already.
    fn report(&self, events: &UnboundedSender<RuntimeEvent>, trial: &str, outcome: ExitOutcome) {
        if !self.reported.swap(true, Ordering::SeqCst) {
            let _ = events.send(RuntimeEvent::Exited {
                trial: trial.to_string(),
                outcome,
            });
        }
    }
}

impl KubernetesRuntime {
    /// A runtime for the experiment `owner` (as read from the apiserver: it needs its uid), with
    /// `checked` the same experiment defaulted and validated.
    pub fn new(
        client: kube::Client,
        owner: ExperimentResource,
        checked: CheckedExperiment,
        cluster: ClusterSettings,
        events: UnboundedSender<RuntimeEvent>,
    ) -> Self {
        KubernetesRuntime {
            client,
            owner,
            checked: Arc::new(checked),
            cluster,
            events,
            trials: HashMap::new(),
        }
    }

    fn namespace(&self) -> String {
        self.owner
            .metadata
            .namespace
            .clone()
            .or_else(|| self.checked.experiment.metadata.namespace.clone())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
    }

    /// The trial's workload as Kubernetes gets it, with its name and API resource.
    fn workload(&self, trial: &TrialRecord) -> Result<(Value, String, ApiResource), StartError> {
        let identity = TrialIdentity {
            name: trial.name.clone(),
            namespace: self.namespace(),
        };
        let workload = render_workload(&self.checked, &identity, &trial.assignments, &self.cluster)
            .map_err(|e| StartError(format!("{}: {e}", e.path())))?;
        let resource = api_resource(&workload).map_err(StartError)?;
        let name = workload
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(&trial.name)
            .to_string();
        Ok((workload, name, resource))
    }
}

/// The API resource of a workload, from its `apiVersion` and `kind`. The plural is the lowercase
/// kind plus `s` (jobs, pytorchjobs, tfjobs, mpijobs, xgboostjobs, trainjobs), which holds for
/// every kind Katib runs; there is no discovery, so the controller needs no `list` on API groups.
pub(crate) fn api_resource(workload: &Value) -> Result<ApiResource, String> {
    let text = |key: &str| workload.get(key).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if api_version.is_empty() || kind.is_empty() {
        return Err("the workload has no apiVersion or kind".to_string());
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let plural = format!("{}s", kind.to_ascii_lowercase());
    Ok(ApiResource::from_gvk_with_plural(&gvk, &plural))
}

/// `Ok` for success and for AlreadyExists (the object is there from an earlier start).
fn created<T>(result: Result<T, kube::Error>, what: &str) -> Result<(), String> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(format!("creating {what} failed: {e}")),
    }
}

/// Reads an object back (after AlreadyExists, for its uid).
async fn get<K>(api: &Api<K>, name: &str, what: &str) -> Result<K, String>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get(name)
        .await
        .map_err(|e| format!("reading {what} failed: {e}"))
}

/// Everything the trial's task needs.
struct Launch {
    client: kube::Client,
    namespace: String,
    trial_resource: TrialResource,
    token: String,
    workload: Value,
    name: String,
    resource: ApiResource,
    conditions: Conditions,
    events: UnboundedSender<RuntimeEvent>,
    shared: Arc<Shared>,
    trial: String,
}

impl Launch {
    async fn run(self) {
        match self.create().await {
            Ok(()) => self.watch().await,
            Err(message) => {
                self.shared
                    .report(&self.events, &self.trial, ExitOutcome::Error(message))
            }
        }
    }

    /// Creates the Trial, its Secret and its workload; then deletes the workload if `stop` came
    /// meanwhile (its delete may have found nothing yet).
    async fn create(&self) -> Result<(), String> {
        let trials: Api<TrialResource> = Api::namespaced(self.client.clone(), &self.namespace);
        let what = format!("Trial {:?}", self.trial);
        created(
            trials
                .create(&PostParams::default(), &self.trial_resource)
                .await,
            &what,
        )?;
        let trial = get(&trials, &self.trial, &what).await?;
        let owner = workload_owner_reference(&trial).map_err(|e| e.to_string())?;

        let secret_name = token_secret_name(&self.trial);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(secret_name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: trial.metadata.labels.clone(),
                owner_references: Some(vec![owner.clone()]),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                TOKEN_SECRET_KEY.to_string(),
                ByteString(self.token.clone().into_bytes()),
            )])),
            ..Secret::default()
        };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        created(
            secrets.create(&PostParams::default(), &secret).await,
            &format!("Secret {secret_name:?}"),
        )?;

        let mut object: DynamicObject = serde_json::from_value(self.workload.clone())
            .map_err(|e| format!("the workload is not a Kubernetes object: {e}"))?;
        object.metadata.namespace = Some(self.namespace.clone());
        object.metadata.owner_references = Some(vec![owner]);
        let workloads = self.workloads();
        created(
            workloads.create(&PostParams::default(), &object).await,
            &format!("{} {:?}", self.resource.kind, self.name),
        )?;
        if self.shared.stopping.load(Ordering::SeqCst) {
            delete_workload(&workloads, &self.name).await?;
        }
        Ok(())
    }

    fn workloads(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &self.resource)
    }

    /// Watches the workload until it ends or is deleted, and reports that once.
    async fn watch(&self) {
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let mut stream =
            std::pin::pin!(watcher::watcher(self.workloads(), config).default_backoff());
        let mut seen = false;
        while let Some(event) = stream.next().await {
            let outcome = match event {
                Ok(Event::Apply(object) | Event::InitApply(object)) => {
                    seen = true;
                    match serde_json::to_value(&object) {
                        Ok(value) => workload_outcome(&self.conditions.status(&value)),
                        Err(e) => Some(ExitOutcome::Error(format!(
                            "the workload could not be read: {e}"
                        ))),
                    }
                }
                Ok(Event::Delete(_)) => Some(self.gone()),
                Ok(Event::InitDone) if !seen => Some(self.gone()),
                Ok(Event::Init | Event::InitDone) => None,
                Err(e) => {
                    tracing::warn!(trial = %self.trial, error = %e, "watching the workload failed; retrying");
                    None
                }
            };
            if let Some(outcome) = outcome {
                self.shared.report(&self.events, &self.trial, outcome);
                return;
            }
        }
    }

    /// The outcome of a workload that disappeared.
    fn gone(&self) -> ExitOutcome {
        ExitOutcome::Error(if self.shared.stopping.load(Ordering::SeqCst) {
            "stopped".to_string()
        } else {
            "the workload was deleted".to_string()
        })
    }
}

/// Deletes a workload with background propagation (its pods go after it); NotFound is success.
pub(crate) async fn delete_workload(api: &Api<DynamicObject>, name: &str) -> Result<(), String> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(format!("deleting the workload {name:?} failed: {e}")),
    }
}

impl Drop for KubernetesRuntime {
    /// The watches end with the runtime (their reports would go nowhere); the workloads stay.
    fn drop(&mut self) {
        for workload in self.trials.values() {
            workload.watch.abort();
        }
    }
}

impl TrialRuntime for KubernetesRuntime {
    fn free_slots(&self) -> Option<u32> {
        // The cluster schedules; parallelTrialCount still applies.
        None
    }

    fn start(
        &mut self,
        trial: &TrialRecord,
        _workload: &serde_json::Value,
        token: &str,
    ) -> Result<StartedTrial, StartError> {
        // The driver passes the bare trialSpec; the cluster needs it with labels and the sidecar.
        let (workload, name, resource) = self.workload(trial)?;
        let trial_resource = trial_resource(&self.owner, &self.checked, trial, &workload)
            .map_err(|e| StartError(e.to_string()))?;
        let conditions = Conditions::for_template(&self.checked.template)
            .map_err(|e| StartError(e.to_string()))?;
        if let Some(previous) = self.trials.remove(&trial.name) {
            previous.watch.abort();
        }
        let shared = Arc::new(Shared::default());
        let namespace = self.namespace();
        let launch = Launch {
            client: self.client.clone(),
            namespace: namespace.clone(),
            trial_resource,
            token: token.to_string(),
            workload,
            name: name.clone(),
            resource: resource.clone(),
            conditions,
            events: self.events.clone(),
            shared: shared.clone(),
            trial: trial.name.clone(),
        };
        let watch = tokio::spawn(launch.run()).abort_handle();
        self.trials.insert(
            trial.name.clone(),
            TrialWorkload {
                name,
                namespace,
                resource,
                watch,
                shared,
            },
        );
        Ok(StartedTrial::default())
    }

    fn stop(&mut self, trial: &str) {
        let Some(workload) = self.trials.get(trial) else {
            return;
        };
        if workload.shared.reported.load(Ordering::SeqCst) {
            return;
        }
        workload.shared.stopping.store(true, Ordering::SeqCst);
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &workload.namespace, &workload.resource);
        let (name, shared, events, watch, trial) = (
            workload.name.clone(),
            workload.shared.clone(),
            self.events.clone(),
            workload.watch.clone(),
            trial.to_string(),
        );
        tokio::spawn(async move {
            if let Err(message) = delete_workload(&api, &name).await {
                watch.abort();
                shared.report(&events, &trial, ExitOutcome::Error(message));
            }
        });
    }

    fn forget(&mut self, trial: &str) {
        if let Some(workload) = self.trials.remove(trial) {
            workload.watch.abort();
        }
    }

    fn trials_outlive_driver(&self) -> bool {
        true
    }

    fn adopt(&mut self, trial: &TrialRecord, token: &str) -> Result<(), StartError> {
        // Starting is idempotent: what exists is taken as is, what is missing (a trial cut off
        // before its workload was created) is created, and the watch reports the end.
        self.start(trial, &Value::Null, token).map(|_| ())
    }

    fn recover(&mut self, trial: &TrialRecord) {
        let (name, resource) = match self.workload(trial) {
            Ok((_, name, resource)) => (name, resource),
            Err(e) => {
                tracing::warn!(trial = %trial.name, error = %e, "cannot name a leftover trial's workload");
                return;
            }
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace(), &resource);
        let trial = trial.name.clone();
        tokio::spawn(async move {
            if let Err(message) = delete_workload(&api, &name).await {
                tracing::warn!(%trial, %message, "cleaning up a trial's workload failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::api_resource;

    #[test]
    fn api_resource_is_built_from_api_version_and_kind() {
        let job = api_resource(&json!({"apiVersion": "batch/v1", "kind": "Job"})).unwrap();
        assert_eq!(
            (
                job.group.as_str(),
                job.version.as_str(),
                job.plural.as_str()
            ),
            ("batch", "v1", "jobs")
        );
        let pytorch =
            api_resource(&json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob"})).unwrap();
        assert_eq!(pytorch.plural, "pytorchjobs");
        assert_eq!(pytorch.api_version, "kubeflow.org/v1");
        let pod = api_resource(&json!({"apiVersion": "v1", "kind": "Pod"})).unwrap();
        assert_eq!((pod.group.as_str(), pod.plural.as_str()), ("", "pods"));
        assert!(api_resource(&json!({"kind": "Job"})).is_err());
    }
}
