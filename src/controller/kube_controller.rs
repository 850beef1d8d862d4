//! `sextant controller`: Experiments applied to a Kubernetes cluster, run by the same driver as
//! `sextant serve`, with trials as Kubernetes workloads ([`KubernetesRuntime`]).
//!
//! One reconcile per Experiment: its spec is checked (an invalid one gets a `Failed` condition and
//! is not retried until it changes), the store record is created or found ([`prepare`]), the
//! metrics collector's ServiceAccount and Role are applied in its namespace, a driver task is
//! started through the [`Supervisor`] when none runs (so pushed metrics reach it), and the Katib
//! `status` of the Experiment and of its Trials is brought up to date from the store (a merge
//! patch on the `status` subresource, only when it differs). While the experiment runs it is
//! reconciled again every [`ControllerSettings::requeue`]; once finished, only on changes.
//!
//! The store is keyed by experiment name, while Kubernetes names are per namespace: a second
//! Experiment of a name already taken in another namespace is refused with a `Failed` condition.
//!
//! Every Experiment gets the finalizer [`EXPERIMENT_FINALIZER`]. When one is deleted, its driver
//! is stopped at once (running trials are stopped, not left running) and its store record (trials,
//! observations, engine state) deleted, then the finalizer is removed and Kubernetes deletes the
//! Trials and their workloads through owner references. The Trials' own reconciler
//! ([`super::kube_trials`]) runs beside this one.
//!
//! Only one controller acts at a time: `sextant controller` holds a Lease ([`super::leader`])
//! before it opens the store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use std::collections::HashMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller, Error as ControllerError};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::kube_status::{condition, experiment_status, set_condition, trial_status};
use super::kube_trials::{TrialContext, reconcile_trial};
use super::policy::reason;
use super::resume::{Prepared, prepare};
use super::supervisor::Supervisor;
use crate::runtime::kubernetes::render::KATIB_LABEL_EXPERIMENT;
use crate::runtime::kubernetes::{ClusterSettings, KubernetesRuntime, ensure_collector_rbac};
use crate::spec::DEFAULT_NAMESPACE;
use crate::spec::crd::{Condition, ExperimentStatus, TrialResource};
use crate::spec::{self, CheckedExperiment, Collector, ExperimentResource};
use crate::store::{Store, StoreError};

/// The finalizer every Experiment gets: its driver is stopped and its store record deleted before
/// the Experiment goes.
pub const EXPERIMENT_FINALIZER: &str = "sextant.io/experiment-cleanup";

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// Watch only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
    /// Where trials run and how they reach Sextant's API.
    pub cluster: ClusterSettings,
    /// The experiments' work directory in the store records (unused by Kubernetes trials).
    pub work_dir: PathBuf,
    /// How often a running experiment's status is refreshed.
    pub requeue: Duration,
}

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The apiserver failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

struct Context {
    client: Client,
    /// Writes Events on Experiments and Trials.
    recorder: Recorder,
    store: Store,
    supervisor: Supervisor,
    settings: ControllerSettings,
    /// Held from the store look-up to the driver's start, so two Experiments of one name (in two
    /// namespaces) reconciled at once cannot both claim the record.
    claim: tokio::sync::Mutex<()>,
}

/// Runs the controller until `shutdown` resolves; the running drivers are then stopped (their
/// experiments resume at the next start).
pub async fn run(
    client: Client,
    store: Store,
    supervisor: Supervisor,
    settings: ControllerSettings,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (experiments, trials) = match &settings.namespace {
        Some(ns) => (
            Api::<ExperimentResource>::namespaced(client.clone(), ns),
            Api::<TrialResource>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::<ExperimentResource>::all(client.clone()),
            Api::<TrialResource>::all(client.clone()),
        ),
    };
    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter()),
        client,
        store,
        supervisor: supervisor.clone(),
        settings,
        claim: tokio::sync::Mutex::new(()),
    });
    let trial_context = Arc::new(TrialContext {
        client: context.client.clone(),
        store: context.store.clone(),
    });
    let jobs = match &context.settings.namespace {
        Some(ns) => Api::<Job>::namespaced(context.client.clone(), ns),
        None => Api::<Job>::all(context.client.clone()),
    };
    let (stop_trials, trials_stopped) = tokio::sync::oneshot::channel::<()>();
    let trial_controller = Controller::new(trials.clone(), watcher::Config::default())
        .owns(jobs, watcher::Config::default())
        .graceful_shutdown_on(async move {
            let _ = trials_stopped.await;
        })
        .run(
            reconcile_trial,
            |_trial, error, _context| {
                tracing::warn!("trial reconcile error: {error}");
                Action::requeue(Duration::from_secs(5))
            },
            trial_context,
        )
        .for_each(|result| async move {
            match result {
                Ok(_) | Err(ControllerError::ObjectNotFound(_)) => {}
                Err(e) => tracing::warn!("trial reconcile failed: {e}"),
            }
        });
    let trial_task = tokio::spawn(trial_controller);
    let stopper = supervisor.clone();
    Controller::new(experiments, watcher::Config::default())
        .owns(trials, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| {
            let supervisor = stopper.clone();
            async move {
                match result {
                    Ok(_) => {}
                    Err(ControllerError::ObjectNotFound(gone)) => {
                        // A scheduled reconcile of an Experiment deleted without its finalizer
                        // (removed by hand): stop its driver.
                        if supervisor.stop(&gone.name).await {
                            tracing::info!(experiment = gone.name, "experiment deleted; stopped");
                        }
                    }
                    Err(e) => tracing::warn!("reconcile failed: {e}"),
                }
            }
        })
        .await;
    let _ = stop_trials.send(());
    let _ = trial_task.await;
    supervisor.shutdown().await;
}

/// The controller's name on the Events it writes.
fn reporter() -> Reporter {
    Reporter {
        controller: "sextant-controller".into(),
        instance: std::env::var("POD_NAME").ok(),
    }
}

fn error_policy(
    _experiment: Arc<ExperimentResource>,
    error: &ReconcileError,
    _context: Arc<Context>,
) -> Action {
    tracing::warn!("reconcile error: {error}");
    Action::requeue(Duration::from_secs(5))
}

/// The Experiment as a Katib manifest, for [`spec::check`].
fn spec_text(experiment: &ExperimentResource, namespace: &str) -> String {
    json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": experiment.name_any(), "namespace": namespace},
        "spec": experiment.spec,
    })
    .to_string()
}

async fn reconcile(
    experiment: Arc<ExperimentResource>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let namespace = experiment
        .namespace()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let api = Api::<ExperimentResource>::namespaced(context.client.clone(), &namespace);
    finalizer(&api, EXPERIMENT_FINALIZER, experiment, |event| async {
        match event {
            Finalizer::Apply(experiment) => apply(experiment, &context, &api, &namespace).await,
            Finalizer::Cleanup(experiment) => cleanup(&experiment, &context, &namespace).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => ReconcileError::Finalizer(other.to_string()),
    })
}

/// Whether the store's record of `name` belongs to the Experiment in `namespace` (or there is none).
fn record_namespace(context: &Context, name: &str) -> Result<Option<String>, StoreError> {
    Ok(context.store.experiment(name)?.map(|record| {
        record
            .experiment
            .metadata
            .namespace
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
    }))
}

/// The Experiment is being deleted: its driver is stopped (running trials are stopped with it)
/// and its store record deleted, unless the record is another namespace's Experiment's.
async fn cleanup(
    experiment: &ExperimentResource,
    context: &Context,
    namespace: &str,
) -> Result<Action, ReconcileError> {
    let name = experiment.name_any();
    let _claim = context.claim.lock().await;
    if record_namespace(context, &name)?.is_some_and(|theirs| theirs != namespace) {
        return Ok(Action::await_change());
    }
    context.supervisor.stop(&name).await;
    if context.store.delete_experiment(&name)? {
        context.store.flush()?;
        tracing::info!(
            experiment = name,
            "experiment deleted; its store record deleted"
        );
    }
    Ok(Action::await_change())
}

async fn apply(
    experiment: Arc<ExperimentResource>,
    context: &Context,
    api: &Api<ExperimentResource>,
    namespace: &str,
) -> Result<Action, ReconcileError> {
    let name = experiment.name_any();
    let namespace = namespace.to_string();
    let api = api.clone();
    let checked = match spec::check(&spec_text(&experiment, &namespace)) {
        Ok(checked) => checked,
        Err(e) => {
            fail(&api, &experiment, &format!("invalid Experiment: {e}")).await?;
            return Ok(Action::await_change());
        }
    };
    let claim = context.claim.lock().await;
    if let Some(theirs) = record_namespace(context, &name)?
        && theirs != namespace
    {
        let message = format!(
            "an experiment named {name:?} already runs in namespace {theirs:?}; Sextant keeps one experiment per name across namespaces"
        );
        fail(&api, &experiment, &message).await?;
        return Ok(Action::await_change());
    }
    if !context.supervisor.is_running(&name) {
        let work_dir = context.settings.work_dir.clone();
        match prepare(&context.store, &checked, None, work_dir) {
            Ok(Prepared::Run(record)) => {
                if needs_collector_account(&checked) {
                    let account = &context.settings.cluster.collector_service_account;
                    if let Err(message) =
                        ensure_collector_rbac(&context.client, &namespace, account).await
                    {
                        fail(&api, &experiment, &message).await?;
                        return Ok(Action::requeue(Duration::from_secs(30)));
                    }
                }
                if let Err(message) = start(context, &experiment, checked, record) {
                    fail(&api, &experiment, &message).await?;
                    return Ok(Action::await_change());
                }
            }
            Ok(Prepared::AlreadyCompleted(_)) => {}
            Err(e) => {
                fail(&api, &experiment, &e.to_string()).await?;
                return Ok(Action::await_change());
            }
        }
    }
    drop(claim);
    let finished = refresh_status(context, &api, &experiment, &namespace).await?;
    Ok(if finished {
        Action::await_change()
    } else {
        Action::requeue(context.settings.requeue)
    })
}

/// Whether the experiment's trial pods get the collector sidecar that reads the training
/// container's log through the API (StdOut and File collectors), and so need its ServiceAccount.
fn needs_collector_account(checked: &CheckedExperiment) -> bool {
    matches!(
        checked.collector,
        Collector::StdOut { .. } | Collector::File { .. }
    )
}

/// Starts the experiment's driver with trials on Kubernetes.
fn start(
    context: &Context,
    experiment: &ExperimentResource,
    checked: CheckedExperiment,
    record: crate::store::ExperimentRecord,
) -> Result<(), String> {
    let engine =
        sextant_suggestion::configure(&checked.algorithm.name, &checked.algorithm.settings)
            .map_err(|e| format!("spec.algorithm: {e}"))?;
    let log_dir = context.supervisor.log_dir(&record.name);
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| format!("cannot create the log directory {}: {e}", log_dir.display()))?;
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let runtime = KubernetesRuntime::new(
        context.client.clone(),
        experiment.clone(),
        checked.clone(),
        context.settings.cluster.clone(),
        events_tx,
    );
    context
        .supervisor
        .start_with(checked, record, engine, runtime, events_rx, log_dir)
        .map_err(|e| e.to_string())
}

/// Writes the store's state onto the Experiment and its Trials. Returns whether the experiment
/// has finished.
async fn refresh_status(
    context: &Context,
    api: &Api<ExperimentResource>,
    experiment: &ExperimentResource,
    namespace: &str,
) -> Result<bool, ReconcileError> {
    let name = experiment.name_any();
    let Some(record) = context.store.experiment(&name)? else {
        return Ok(false);
    };
    let trials = context.store.trials(&name)?;
    let now = Timestamp::now();
    let trial_api = Api::<TrialResource>::namespaced(context.client.clone(), namespace);
    // One LIST of the experiment's Trials rather than a GET each: a refresh costs one call however
    // many trials there are.
    let selector = format!("{KATIB_LABEL_EXPERIMENT}={name}");
    let mut resources: HashMap<String, TrialResource> = trial_api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .map(|t| (t.name_any(), t))
        .collect();
    for trial in &trials {
        let Some(resource) = resources.remove(&trial.name) else {
            continue;
        };
        let new = trial_status(trial, resource.status.as_ref(), now);
        if resource.status.as_ref() != Some(&new) {
            let patch = status_patch(resource.status.as_ref(), &new);
            trial_api
                .patch_status(&trial.name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            let old = resource.status.as_ref().map(|s| s.conditions.as_slice());
            record_transition(context, &resource.object_ref(&()), old, &new.conditions).await;
        }
    }
    // The Experiment last, from the same snapshot: once it shows an end, its Trials show theirs.
    let status = experiment_status(&record, &trials, experiment.status.as_ref(), now);
    if experiment.status.as_ref() != Some(&status) {
        patch_status(api, &name, experiment.status.as_ref(), &status).await?;
        let old = experiment.status.as_ref().map(|s| s.conditions.as_slice());
        record_transition(
            context,
            &experiment.object_ref(&()),
            old,
            &status.conditions,
        )
        .await;
    }
    // Finished once the driver is gone too, so the last trial statuses were written.
    Ok(record.phase.is_finished() && !context.supervisor.is_running(&name))
}

/// Records a Kubernetes Event on `object` when its last condition changed (`kubectl describe`
/// shows them): the condition's reason and message, a Warning for failures. An Event that cannot
/// be written is only logged: events are for people, the status is the record.
async fn record_transition(
    context: &Context,
    object: &ObjectReference,
    old: Option<&[Condition]>,
    new: &[Condition],
) {
    let Some(last) = new.last() else { return };
    let same = old
        .and_then(|o| o.last())
        .is_some_and(|o| o.condition_type == last.condition_type && o.reason == last.reason);
    if same || last.status != condition::TRUE {
        return;
    }
    let event = Event {
        type_: if last.condition_type == condition::FAILED {
            EventType::Warning
        } else {
            EventType::Normal
        },
        // Kubernetes refuses an Event without a reason.
        reason: if last.reason.is_empty() {
            last.condition_type.clone()
        } else {
            last.reason.clone()
        },
        note: Some(last.message.clone()).filter(|m| !m.is_empty()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = context.recorder.publish(&event, object).await {
        tracing::warn!("recording the event {}: {e}", last.reason);
    }
}

async fn patch_status(
    api: &Api<ExperimentResource>,
    name: &str,
    previous: Option<&ExperimentStatus>,
    status: &ExperimentStatus,
) -> Result<(), kube::Error> {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(status_patch(previous, status)),
    )
    .await
    .map(|_| ())
}

/// The merge patch `{"status": ...}` taking `previous` to `status`. The statuses leave out empty
/// lists and zero counters, and a merge patch keeps what it does not name, so what `previous` has
/// and `status` no longer does is set to `null` (removed).
fn status_patch<T: serde::Serialize>(previous: Option<&T>, status: &T) -> Value {
    let new = serde_json::to_value(status).unwrap_or(Value::Null);
    let old = previous
        .and_then(|p| serde_json::to_value(p).ok())
        .unwrap_or(Value::Null);
    json!({ "status": with_removals(&old, &new) })
}

fn with_removals(old: &Value, new: &Value) -> Value {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return new.clone();
    };
    let mut patch = new.clone();
    for (key, old_value) in old {
        match new.get(key) {
            None => {
                patch.insert(key.clone(), Value::Null);
            }
            Some(new_value) => {
                patch.insert(key.clone(), with_removals(old_value, new_value));
            }
        }
    }
    Value::Object(patch)
}

/// Marks the Experiment Failed with `message` (when it is not already).
async fn fail(
    api: &Api<ExperimentResource>,
    experiment: &ExperimentResource,
    message: &str,
) -> Result<(), kube::Error> {
    tracing::warn!(experiment = experiment.name_any(), "{message}");
    let mut status = experiment.status.clone().unwrap_or_default();
    set_condition(
        &mut status.conditions,
        condition::FAILED,
        condition::TRUE,
        reason::FAILED,
        message,
        Timestamp::now(),
    );
    if experiment.status.as_ref() == Some(&status) {
        return Ok(());
    }
    patch_status(
        api,
        &experiment.name_any(),
        experiment.status.as_ref(),
        &status,
    )
    .await
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod patch_tests {
    use super::*;

    #[test]
    fn a_status_patch_removes_what_the_new_status_leaves_out() {
        let old = json!({"trialsRunning": 2, "trials": 3, "best": {"name": "a", "x": 1}});
        let new = json!({"trials": 3, "best": {"name": "b"}});
        assert_eq!(
            status_patch(Some(&old), &new),
            json!({"status": {"trialsRunning": null, "trials": 3, "best": {"name": "b", "x": null}}})
        );
        assert_eq!(status_patch(None, &new), json!({ "status": new }));
    }
}
