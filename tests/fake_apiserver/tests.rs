//! The fake against the real kube-rs client, watcher and controller, over real HTTP.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use sextant::spec::ExperimentResource;
use sextant::spec::crd::{ExperimentStatus, TrialResource};
use tokio::sync::mpsc;

use super::FakeApiServer;

const NS: &str = "default";
/// Long enough for a slow, shared CI machine; the fake answers in milliseconds.
const WAIT: Duration = Duration::from_secs(20);

fn experiment(name: &str) -> ExperimentResource {
    let mut experiment = ExperimentResource::new(name, Default::default());
    experiment.metadata.labels = Some([("team".to_string(), "search".to_string())].into());
    experiment
}

fn job(name: &str, owner: Option<&ExperimentResource>) -> Job {
    let mut job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": name, "labels": { "sextant.io/trial": name } },
        "spec": { "template": { "spec": {
            "restartPolicy": "Never",
            "containers": [{ "name": "training", "image": "busybox" }],
        }}},
    }))
    .unwrap();
    if let Some(owner) = owner {
        job.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    }
    job
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn conditions(job: &Job) -> Vec<String> {
    let status = job.status.as_ref();
    status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.type_.clone())
        .collect()
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test]
async fn experiment_create_get_list_patch_status_delete() {
    let fake = FakeApiServer::start().await;
    let api: Api<ExperimentResource> = Api::default_namespaced(fake.client());

    let created = api
        .create(&PostParams::default(), &experiment("exp"))
        .await
        .unwrap();
    let uid = created.uid().expect("a uid is assigned");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.namespace().as_deref(), Some(NS));
    let created_rv = created.resource_version().unwrap();

    let again = api.create(&PostParams::default(), &experiment("exp")).await;
    assert_eq!(api_error(again), (409, "AlreadyExists".into()));

    let got = api.get("exp").await.unwrap();
    assert_eq!(got.uid().as_deref(), Some(uid.as_str()));
    api.create(
        &PostParams::default(),
        &ExperimentResource::new("other", Default::default()),
    )
    .await
    .unwrap();
    let selected = api
        .list(&ListParams::default().labels("team=search"))
        .await
        .unwrap();
    assert_eq!(
        selected
            .items
            .iter()
            .map(|e| e.name_any())
            .collect::<Vec<_>>(),
        ["exp"]
    );
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    let all: Api<ExperimentResource> = Api::all(fake.client());
    assert_eq!(
        all.list(&ListParams::default().labels("team!=search"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // A spec change bumps the generation; status written to the object is ignored.
    let patch = json!({ "spec": { "maxTrialCount": 4 }, "status": { "trials": 9 } });
    let patched = api
        .patch("exp", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.spec.max_trial_count, Some(4));
    assert_eq!(patched.metadata.generation, Some(2));
    assert!(patched.status.is_none());
    assert_ne!(patched.resource_version().unwrap(), created_rv);

    // Status goes through /status and leaves the generation alone.
    let status = json!({ "status": { "trials": 2, "conditions": [{ "type": "Running", "status": "True" }] } });
    let patched = api
        .patch_status("exp", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(patched.status.as_ref().unwrap().trials, 2);
    assert_eq!(patched.metadata.generation, Some(2));

    // Server-side apply, on the status.
    let apply = json!({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "status": { "trialsSucceeded": 1 },
    });
    let applied = api
        .patch_status("exp", &PatchParams::apply("sextant"), &Patch::Apply(&apply))
        .await
        .unwrap();
    let status = applied.status.unwrap();
    assert_eq!((status.trials, status.trials_succeeded), (2, 1));

    // A patch that changes nothing is no write.
    let same = api
        .patch_status(
            "exp",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": { "trials": 2 } })),
        )
        .await
        .unwrap();
    assert_eq!(same.resource_version(), applied.metadata.resource_version);

    // Replace with a stale resourceVersion conflicts; with the current one it works.
    let mut stale = patched.clone();
    stale.spec.max_trial_count = Some(5);
    assert_eq!(
        api_error(api.replace("exp", &PostParams::default(), &stale).await),
        (409, "Conflict".into())
    );
    let mut fresh = api.get("exp").await.unwrap();
    fresh.spec.max_trial_count = Some(5);
    let replaced = api
        .replace("exp", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(replaced.spec.max_trial_count, Some(5));
    assert_eq!(replaced.status.unwrap().trials_succeeded, 1);

    let deleted = api.delete("exp", &DeleteParams::default()).await.unwrap();
    assert_eq!(deleted.left().map(|e| e.name_any()).as_deref(), Some("exp"));
    assert_eq!(api_error(api.get("exp").await), (404, "NotFound".into()));
    assert!(api.get_opt("exp").await.unwrap().is_none());
    assert_eq!(
        api_error(api.delete("exp", &DeleteParams::default()).await),
        (404, "NotFound".into())
    );
}

#[tokio::test]
async fn job_create_apply_complete_delete() {
    let fake = FakeApiServer::start().await;
    let jobs: Api<Job> = Api::default_namespaced(fake.client());

    jobs.create(&PostParams::default(), &job("trial-1", None))
        .await
        .unwrap();
    // Server-side apply creates a missing object.
    let applied = jobs
        .patch(
            "trial-2",
            &PatchParams::apply("sextant"),
            &Patch::Apply(&job("trial-2", None)),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.generation, Some(1));
    let selected = jobs
        .list(&ListParams::default().labels("sextant.io/trial=trial-2"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);

    fake.set_job_condition(NS, "trial-1", "Complete");
    let done = jobs.get("trial-1").await.unwrap();
    assert_eq!(conditions(&done), ["SuccessCriteriaMet", "Complete"]);
    assert_eq!(done.status.unwrap().succeeded, Some(1));
    fake.set_job_condition(NS, "trial-2", "Failed");
    assert_eq!(
        conditions(&fake.get::<Job>(NS, "trial-2").unwrap()),
        ["FailureTarget", "Failed"]
    );

    jobs.delete("trial-1", &DeleteParams::background())
        .await
        .unwrap();
    let left: Vec<String> = fake.list::<Job>(NS).iter().map(|j| j.name_any()).collect();
    assert_eq!(left, ["trial-2"]);
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.starts_with("DELETE /apis/batch/v1/namespaces/default/jobs/trial-1"))
    );
}

/// Collects watcher events into `(kind, name)` until `count` arrive.
async fn next_events<K: Resource + Clone>(
    stream: &mut (impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Unpin),
    count: usize,
) -> Vec<(&'static str, String)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let event = within("a watch event", stream.try_next())
            .await
            .unwrap()
            .expect("the watch goes on");
        seen.push(match event {
            Event::Init => ("Init", String::new()),
            Event::InitApply(o) => ("InitApply", o.meta().name.clone().unwrap()),
            Event::InitDone => ("InitDone", String::new()),
            Event::Apply(o) => ("Apply", o.meta().name.clone().unwrap()),
            Event::Delete(o) => ("Delete", o.meta().name.clone().unwrap()),
        });
    }
    seen
}

async fn watch_sees_changes(config: watcher::Config) {
    let fake = FakeApiServer::start().await;
    let api: Api<ExperimentResource> = Api::default_namespaced(fake.client());
    api.create(&PostParams::default(), &experiment("before"))
        .await
        .unwrap();

    let mut events = watcher(api.clone(), config).boxed();
    let initial = next_events(&mut events, 3).await;
    assert_eq!(
        initial,
        [
            ("Init", "".into()),
            ("InitApply", "before".into()),
            ("InitDone", "".into())
        ]
    );

    api.create(&PostParams::default(), &experiment("after"))
        .await
        .unwrap();
    let status = json!({ "status": { "trials": 1 } });
    api.patch_status("after", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    let live = next_events(&mut events, 3).await;
    assert_eq!(
        live,
        [
            ("Apply", "after".into()),
            ("Apply", "after".into()),
            ("Delete", "before".into())
        ]
    );
}

fn watcher(
    api: Api<ExperimentResource>,
    config: watcher::Config,
) -> impl futures::Stream<Item = Result<Event<ExperimentResource>, watcher::Error>> {
    watcher::watcher(api, config)
}

#[tokio::test]
async fn watcher_list_then_watch_sees_added_modified_deleted() {
    // kube 5's default: list (resourceVersion=0, limit=500), then watch from the list's
    // resourceVersion with bookmarks.
    watch_sees_changes(watcher::Config::default()).await;
}

#[tokio::test]
async fn watcher_streaming_list_sees_added_modified_deleted() {
    // `sendInitialEvents=true`: initial ADDED events closed by the `initial-events-end` bookmark.
    watch_sees_changes(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test]
async fn watch_restarts_after_its_timeout_without_losing_changes() {
    let fake = FakeApiServer::start().await;
    let api: Api<ExperimentResource> = Api::default_namespaced(fake.client());
    let mut events = watcher(api.clone(), watcher::Config::default().timeout(1)).boxed();
    assert_eq!(next_events(&mut events, 2).await.len(), 2); // Init, InitDone
    // The watcher opens its watch when polled after the list.
    api.create(&PostParams::default(), &experiment("early"))
        .await
        .unwrap();
    assert_eq!(
        next_events(&mut events, 1).await,
        [("Apply", "early".into())]
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    api.create(&PostParams::default(), &experiment("late"))
        .await
        .unwrap();
    assert_eq!(
        next_events(&mut events, 1).await,
        [("Apply", "late".into())]
    );
    let watches = fake
        .requests()
        .iter()
        .filter(|r| r.contains("watch=true"))
        .count();
    assert!(watches >= 2, "the watch was renewed: {:?}", fake.requests());
}

#[tokio::test]
async fn label_selected_watch_sees_objects_enter_and_leave() {
    let fake = FakeApiServer::start().await;
    let api: Api<ExperimentResource> = Api::default_namespaced(fake.client());
    api.create(
        &PostParams::default(),
        &ExperimentResource::new("e", Default::default()),
    )
    .await
    .unwrap();
    let mut events = watcher(
        api.clone(),
        watcher::Config::default().labels("team=search"),
    )
    .boxed();
    assert_eq!(next_events(&mut events, 2).await.len(), 2);
    let label = |value: Value| json!({ "metadata": { "labels": { "team": value } } });
    api.patch(
        "e",
        &PatchParams::default(),
        &Patch::Merge(&label(json!("search"))),
    )
    .await
    .unwrap();
    api.patch(
        "e",
        &PatchParams::default(),
        &Patch::Merge(&label(Value::Null)),
    )
    .await
    .unwrap();
    assert_eq!(
        next_events(&mut events, 2).await,
        [("Apply", "e".into()), ("Delete", "e".into())]
    );
}

#[tokio::test]
async fn removing_the_last_finalizer_completes_a_delete() {
    let fake = FakeApiServer::start().await;
    let api: Api<ExperimentResource> = Api::default_namespaced(fake.client());
    let mut held = experiment("held");
    held.metadata.finalizers = Some(vec!["sextant.io/cleanup".into(), "other/x".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();

    let pending = api
        .delete("held", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(
        api.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    // As `kube::runtime::finalizer` removes its own: a JSON patch with a test.
    let remove = |index: usize, name: &str| -> json_patch::Patch {
        serde_json::from_value(json!([
            { "op": "test", "path": format!("/metadata/finalizers/{index}"), "value": name },
            { "op": "remove", "path": format!("/metadata/finalizers/{index}") },
        ]))
        .unwrap()
    };
    let wrong = api
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Json::<()>(remove(0, "other/x")),
        )
        .await;
    assert_eq!(api_error(wrong).0, 422);
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Json::<()>(remove(1, "other/x")),
    )
    .await
    .unwrap();
    assert!(api.get_opt("held").await.unwrap().is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Json::<()>(remove(0, "sextant.io/cleanup")),
    )
    .await
    .unwrap();
    assert!(api.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_an_owner_deletes_or_orphans_its_dependents() {
    let fake = FakeApiServer::start().await;
    let client = fake.client();
    let experiments: Api<ExperimentResource> = Api::default_namespaced(client.clone());
    let trials: Api<TrialResource> = Api::default_namespaced(client.clone());
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());

    let exp = experiments
        .create(&PostParams::default(), &experiment("exp"))
        .await
        .unwrap();
    let other = experiments
        .create(&PostParams::default(), &experiment("other"))
        .await
        .unwrap();
    let mut trial = TrialResource::new("exp-t1", Default::default());
    trial.metadata.owner_references = Some(vec![exp.controller_owner_ref(&()).unwrap()]);
    let trial = trials.create(&PostParams::default(), &trial).await.unwrap();
    // Trial -> Job and Secret: the cascade goes down more than one level.
    let mut job = job("exp-t1", None);
    job.metadata.owner_references = Some(vec![trial.controller_owner_ref(&()).unwrap()]);
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let mut token: Secret =
        serde_json::from_value(json!({ "metadata": { "name": "exp-t1-token" } })).unwrap();
    token.metadata.owner_references = Some(vec![trial.controller_owner_ref(&()).unwrap()]);
    secrets
        .create(&PostParams::default(), &token)
        .await
        .unwrap();
    // Owned by both experiments: survives while `other` lives.
    let mut shared: Secret =
        serde_json::from_value(json!({ "metadata": { "name": "shared" } })).unwrap();
    shared.metadata.owner_references = Some(vec![
        exp.owner_ref(&()).unwrap(),
        other.owner_ref(&()).unwrap(),
    ]);
    secrets
        .create(&PostParams::default(), &shared)
        .await
        .unwrap();

    experiments
        .delete("exp", &DeleteParams::background())
        .await
        .unwrap();
    assert!(trials.get_opt("exp-t1").await.unwrap().is_none());
    assert!(jobs.get_opt("exp-t1").await.unwrap().is_none());
    assert!(secrets.get_opt("exp-t1-token").await.unwrap().is_none());
    let shared = secrets.get("shared").await.unwrap();
    let owners: Vec<String> = shared
        .owner_references()
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(owners, ["other"]);

    // Orphaning keeps the dependent and drops the reference.
    experiments
        .delete("other", &DeleteParams::orphan())
        .await
        .unwrap();
    assert!(
        secrets
            .get("shared")
            .await
            .unwrap()
            .owner_references()
            .is_empty()
    );
}

#[tokio::test]
async fn errors_are_kubernetes_status_objects() {
    let fake = FakeApiServer::start().await;
    let api: Api<ExperimentResource> = Api::default_namespaced(fake.client());
    match api.get("missing").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
            assert_eq!(
                status.message,
                "experiments.kubeflow.org \"missing\" not found"
            );
            assert_eq!(status.details.unwrap().name, "missing");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    let apply_without_manager = api
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Apply(&experiment("x")),
        )
        .await;
    assert_eq!(api_error(apply_without_manager).0, 400);
}

/// What the test controller saw, in order.
struct Seen {
    client: kube::Client,
    reconciles: mpsc::UnboundedSender<String>,
}

/// A tiny controller of the shape the real one will have: an Experiment owns a Job; when the
/// Job completes, the Experiment's status says Succeeded.
async fn reconcile(
    experiment: Arc<ExperimentResource>,
    seen: Arc<Seen>,
) -> Result<Action, kube::Error> {
    let name = experiment.name_any();
    let jobs: Api<Job> = Api::default_namespaced(seen.client.clone());
    let job_name = format!("{name}-trial");
    let outcome = match jobs.get_opt(&job_name).await? {
        None => {
            jobs.create(&PostParams::default(), &job(&job_name, Some(&experiment)))
                .await?;
            "job created"
        }
        Some(job) if conditions(&job).iter().any(|c| c == "Complete") => {
            let status =
                json!({ "status": { "conditions": [{ "type": "Succeeded", "status": "True" }] } });
            let experiments: Api<ExperimentResource> = Api::default_namespaced(seen.client.clone());
            experiments
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
            "job complete"
        }
        Some(_) => "job running",
    };
    let _ = seen.reconciles.send(outcome.to_string());
    Ok(Action::await_change())
}

fn retry(_: Arc<ExperimentResource>, _: &kube::Error, _: Arc<Seen>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

#[tokio::test]
async fn a_controller_reconciles_on_create_and_when_an_owned_job_changes() {
    let fake = FakeApiServer::start().await;
    let client = fake.client();
    let experiments: Api<ExperimentResource> = Api::default_namespaced(client.clone());
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let (sender, mut reconciles) = mpsc::unbounded_channel();
    let seen = Arc::new(Seen {
        client: client.clone(),
        reconciles: sender,
    });
    let controller = Controller::new(experiments.clone(), watcher::Config::default())
        .owns(jobs, watcher::Config::default())
        .run(reconcile, retry, seen)
        .for_each(|_| async {});
    let controller = tokio::spawn(controller);

    experiments
        .create(&PostParams::default(), &experiment("exp"))
        .await
        .unwrap();
    let mut next = async || within("a reconcile", reconciles.recv()).await.unwrap();
    assert_eq!(next().await, "job created");
    // The new Job is an owned object's change: the Experiment is reconciled again.
    assert_eq!(next().await, "job running");
    let job = fake
        .get::<Job>(NS, "exp-trial")
        .expect("the controller created the Job");
    assert_eq!(job.owner_references()[0].name, "exp");

    fake.set_job_condition(NS, "exp-trial", "Complete");
    assert_eq!(next().await, "job complete");
    within("the experiment to succeed", async {
        loop {
            let exp = fake.get::<ExperimentResource>(NS, "exp").unwrap();
            if exp
                .status
                .is_some_and(|s| s.conditions.iter().any(|c| c.condition_type == "Succeeded"))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    controller.abort();
}

#[tokio::test]
async fn status_replace_and_event_recorder() {
    use k8s_openapi::api::events::v1::Event as KubeEvent;
    use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};

    let fake = FakeApiServer::start().await;
    let client = fake.client();
    let api: Api<ExperimentResource> = Api::default_namespaced(client.clone());
    let created = api
        .create(&PostParams::default(), &experiment("exp"))
        .await
        .unwrap();

    let mut with_status = created.clone();
    with_status.status = Some(ExperimentStatus {
        trials: 3,
        ..Default::default()
    });
    with_status.spec.max_trial_count = Some(7); // Ignored: only the status is written.
    let replaced = api
        .replace_status("exp", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().trials, 3);
    assert_eq!(replaced.spec.max_trial_count, None);
    let stale = api
        .replace_status("exp", &PostParams::default(), &with_status)
        .await;
    assert_eq!(api_error(stale), (409, "Conflict".into()));

    // kube's recorder creates an events.k8s.io Event, then patches it when the same one recurs.
    let reporter = Reporter {
        controller: "sextant".into(),
        instance: None,
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let event = RecordedEvent {
        type_: EventType::Normal,
        reason: "TrialCreated".into(),
        note: Some("exp-t1".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = created.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let events = fake.list::<KubeEvent>(NS);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason.as_deref(), Some("TrialCreated"));
}
