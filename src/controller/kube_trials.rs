//! The Trial reconciler of `sextant controller`: what happens to a Trial resource after the
//! experiment's driver created it.
//!
//! Two jobs, both about the end of a trial:
//! * **`retain: false`** (Katib's default): once the store records the trial as finished, its
//!   workload (the Job or training job the trial ran as) is deleted, with its pods. With
//!   `retain: true` it stays for inspection. Early-stopped and killed trials had their workload
//!   deleted by the driver already; deleting again is harmless.
//! * **The observation log**: every Trial is created with the finalizer [`TRIAL_FINALIZER`]; when
//!   the Trial is deleted (by hand, or with its Experiment through owner references) its points are
//!   deleted from the store before the finalizer is removed, as Katib's `clean-metrics-in-db`
//!   finalizer does. The trial's record and metric summary stay while its Experiment exists, so the
//!   experiment's best trial and counts do not change.
//!
//! The store is keyed by names that are unique per cluster (see [`super::kube_controller`]); a
//! Trial whose experiment's record lives in another namespace is not Sextant's and is left alone.

use std::sync::Arc;

use kube::api::{Api, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Client, ResourceExt};

use crate::runtime::kubernetes::runtime::{api_resource, delete_workload};
use crate::spec::DEFAULT_NAMESPACE;
use crate::spec::crd::TrialResource;
use crate::store::{Store, StoreError, TrialRecord};

/// The finalizer every Trial carries from its creation: its observation log is deleted from the
/// store before the Trial goes.
pub const TRIAL_FINALIZER: &str = "sextant.io/observation-log";

/// Why a Trial reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum TrialReconcileError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The apiserver failed.
    #[error("{0}")]
    Kube(String),
}

/// What the Trial reconciler needs.
pub struct TrialContext {
    /// The apiserver.
    pub client: Client,
    /// Sextant's store.
    pub store: Store,
}

/// The Trial's record in the store, when the store's record is this Trial's: same experiment (the
/// Katib label) and the experiment's record in the same namespace.
fn own_record(
    store: &Store,
    trial: &TrialResource,
) -> Result<Option<TrialRecord>, TrialReconcileError> {
    let Some(record) = store.trial(&trial.name_any())? else {
        return Ok(None);
    };
    let namespace = trial
        .namespace()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let same_namespace = store.experiment(&record.experiment)?.is_some_and(|e| {
        e.experiment
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE)
            == namespace
    });
    let same_experiment = trial
        .labels()
        .get(crate::runtime::kubernetes::render::KATIB_LABEL_EXPERIMENT)
        .is_none_or(|e| *e == record.experiment);
    Ok((same_namespace && same_experiment).then_some(record))
}

/// Whether the trial's workload should be deleted now: the trial has finished and the template
/// does not ask to keep it.
pub fn workload_to_delete(trial: &TrialResource, record: Option<&TrialRecord>) -> bool {
    !trial.spec.retain_run
        && trial.spec.run_spec.is_some()
        && record.is_some_and(|r| !r.state.is_active())
}

/// Reconciles one Trial (see the module documentation).
pub async fn reconcile_trial(
    trial: Arc<TrialResource>,
    context: Arc<TrialContext>,
) -> Result<Action, kube::runtime::finalizer::Error<TrialReconcileError>> {
    let namespace = trial
        .namespace()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let api = Api::<TrialResource>::namespaced(context.client.clone(), &namespace);
    finalizer(&api, TRIAL_FINALIZER, trial, |event| async {
        match event {
            Finalizer::Apply(trial) => apply(&trial, &context, &namespace).await,
            Finalizer::Cleanup(trial) => cleanup(&trial, &context),
        }
    })
    .await
}

async fn apply(
    trial: &TrialResource,
    context: &TrialContext,
    namespace: &str,
) -> Result<Action, TrialReconcileError> {
    let record = own_record(&context.store, trial)?;
    if !workload_to_delete(trial, record.as_ref()) {
        return Ok(Action::await_change());
    }
    let Some(workload) = trial.spec.run_spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let resource = api_resource(workload).map_err(TrialReconcileError::Kube)?;
    let name = workload
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(&trial.name_any())
        .to_string();
    let workloads =
        Api::<DynamicObject>::namespaced_with(context.client.clone(), namespace, &resource);
    // Ask first: a finished trial is reconciled again on every change of its Trial, and a GET
    // that finds nothing is cheaper for the apiserver than a DELETE.
    let exists = workloads
        .get_opt(&name)
        .await
        .map_err(|e| TrialReconcileError::Kube(e.to_string()))?
        .is_some_and(|w| w.metadata.deletion_timestamp.is_none());
    if exists {
        delete_workload(&workloads, &name)
            .await
            .map_err(TrialReconcileError::Kube)?;
        tracing::info!(
            trial = trial.name_any(),
            "trial finished; workload {name} deleted (retain: false)"
        );
    }
    Ok(Action::await_change())
}

fn cleanup(trial: &TrialResource, context: &TrialContext) -> Result<Action, TrialReconcileError> {
    if own_record(&context.store, trial)?.is_some() {
        let removed = context.store.delete_trial_observations(&trial.name_any())?;
        // On disk before the finalizer goes: the Trial must not disappear with its points kept.
        context.store.flush()?;
        tracing::info!(
            trial = trial.name_any(),
            "trial deleted; {removed} observation points deleted"
        );
    }
    Ok(Action::await_change())
}
