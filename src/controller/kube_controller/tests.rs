//! The exact API calls of each reconcile branch, against a `tower-test` mock apiserver
//! ([`MockApi`]): the Experiment reconciler (finalizer added, invalid spec, name taken in another
//! namespace, deletion with and without the record being this Experiment's, a finished experiment's
//! status refresh, a new experiment started) and the Trial reconciler (`retain`, finished or not,
//! deletion).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::*;
use crate::controller::driver::trial_name;
use crate::controller::kube_mock::{MockApi, status_error};
use crate::controller::kube_trials::{TRIAL_FINALIZER, TrialContext, reconcile_trial};
use crate::runtime::gpu::GpuPool;
use crate::store::{ExperimentPhase, TrialRecord, TrialState};
use sextant_collector::Observation;

const EXAMPLE: &str = include_str!("../../../tests/data/katib-random.yaml");
const NS: &str = "kubeflow";
const NAME: &str = "random";
const EXPERIMENTS: &str = "/apis/kubeflow.org/v1beta1/namespaces/kubeflow/experiments";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/kubeflow/events";

/// Katib's random example as the apiserver returns it: namespace, uid, resourceVersion and our
/// finalizer (unless `finalizer` is false).
fn experiment(finalizer: bool) -> ExperimentResource {
    let mut experiment: ExperimentResource = serde_saphyr::from_str(EXAMPLE).unwrap();
    experiment.metadata.namespace = Some(NS.into());
    experiment.metadata.uid = Some("uid-random".into());
    experiment.metadata.resource_version = Some("7".into());
    if finalizer {
        experiment.metadata.finalizers = Some(vec![EXPERIMENT_FINALIZER.into()]);
    }
    experiment
}

struct Fixture {
    mock: MockApi,
    context: Arc<Context>,
    _data: tempfile::TempDir,
}

/// A reconcile context on a mock that answers every PATCH of the Experiment (object or status)
/// with `answer`, and everything else with `respond`.
fn fixture(
    answer: ExperimentResource,
    respond: impl Fn(&str, &str, &Value) -> Option<(u16, Value)> + Send + 'static,
) -> Fixture {
    let answer = serde_json::to_value(&answer).unwrap();
    let mock = MockApi::new(move |method, path, body| {
        if method == "PATCH" && path.starts_with(&format!("{EXPERIMENTS}/{NAME}")) {
            return Some((200, answer.clone()));
        }
        respond(method, path, body)
    });
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(&data.path().join("store")).unwrap();
    let supervisor = Supervisor::new(
        store.clone(),
        data.path().to_path_buf(),
        "http://sextant.test:6789".into(),
        GpuPool::new(Vec::new()),
    );
    let context = Arc::new(Context {
        recorder: Recorder::new(mock.client.clone(), reporter()),
        client: mock.client.clone(),
        store,
        supervisor,
        settings: ControllerSettings {
            namespace: None,
            cluster: ClusterSettings::default(),
            work_dir: data.path().join("work"),
            requeue: Duration::from_secs(2),
        },
        claim: tokio::sync::Mutex::new(()),
    });
    Fixture {
        mock,
        context,
        _data: data,
    }
}

fn nothing_else(method: &str, path: &str, _: &Value) -> Option<(u16, Value)> {
    panic!("unexpected call {method} {path}")
}

/// Stores the example's record as a run in `namespace` would, with `phase`.
fn store_record(store: &Store, namespace: &str, phase: ExperimentPhase) {
    let mut experiment = experiment(true);
    experiment.metadata.namespace = Some(namespace.into());
    let checked = spec::check(&spec_text(&experiment, namespace)).unwrap();
    let Ok(Prepared::Run(mut record)) = prepare(store, &checked, None, ".".into()) else {
        panic!("a new record")
    };
    record.phase = phase;
    store.put_experiment(&record).unwrap();
}

fn stored_trial(index: u64, state: TrialState) -> TrialRecord {
    let now = Timestamp::from_second(1_700_000_000).unwrap();
    TrialRecord {
        name: trial_name(NAME, index),
        experiment: NAME.into(),
        index,
        uid: 1000 + index,
        assignments: vec![],
        state,
        reason: format!("Trial{state}"),
        message: String::new(),
        events: vec![],
        created: now,
        started: None,
        finished: None,
        log_path: "x.log".into(),
        pid: None,
        exit_code: None,
        gpus: vec![],
        metrics: vec![],
        objective: None,
    }
}

#[tokio::test]
async fn a_new_experiment_gets_the_finalizer_and_nothing_else() {
    let f = fixture(experiment(true), nothing_else);
    let action = reconcile(Arc::new(experiment(false)), f.context.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    let calls = f.mock.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].line, format!("PATCH {EXPERIMENTS}/{NAME}?"));
    assert_eq!(calls[0].content_type, "application/json-patch+json");
    assert_eq!(
        calls[0].body,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [EXPERIMENT_FINALIZER]},
        ])
    );
    assert!(f.context.store.experiment(NAME).unwrap().is_none());
}

#[tokio::test]
async fn an_invalid_spec_gets_a_failed_condition_and_no_record() {
    let f = fixture(experiment(true), nothing_else);
    let mut invalid = experiment(true);
    invalid.spec.algorithm.as_mut().unwrap().algorithm_name = "no-such-algorithm".into();
    let action = reconcile(Arc::new(invalid), f.context.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    let calls = f.mock.calls();
    assert_eq!(
        f.mock.lines(),
        [format!("PATCH {EXPERIMENTS}/{NAME}/status?")]
    );
    assert_eq!(calls[0].content_type, "application/merge-patch+json");
    let condition = &calls[0].body["status"]["conditions"][0];
    assert_eq!(condition["type"], "Failed");
    assert_eq!(condition["status"], "True");
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("no-such-algorithm"),
        "{condition}"
    );
    assert!(f.context.store.experiment(NAME).unwrap().is_none());
}

#[tokio::test]
async fn a_name_taken_in_another_namespace_gets_a_failed_condition() {
    let f = fixture(experiment(true), nothing_else);
    store_record(&f.context.store, "team-a", ExperimentPhase::Running);
    reconcile(Arc::new(experiment(true)), f.context.clone())
        .await
        .unwrap();
    let calls = f.mock.calls();
    assert_eq!(
        f.mock.lines(),
        [format!("PATCH {EXPERIMENTS}/{NAME}/status?")]
    );
    let message = calls[0].body["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("\"team-a\""), "{message}");
    assert!(!f.context.supervisor.is_running(NAME));
}

/// The Experiment with a deletion timestamp.
fn deleting() -> ExperimentResource {
    let mut experiment = experiment(true);
    experiment.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::from_second(1_700_000_000).unwrap(),
        ));
    experiment
}

fn finalizer_removal() -> Value {
    json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": EXPERIMENT_FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ])
}

#[tokio::test]
async fn a_deleted_experiment_loses_its_record_then_its_finalizer() {
    let f = fixture(experiment(false), nothing_else);
    store_record(&f.context.store, NS, ExperimentPhase::Running);
    let action = reconcile(Arc::new(deleting()), f.context.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    let calls = f.mock.calls();
    assert_eq!(f.mock.lines(), [format!("PATCH {EXPERIMENTS}/{NAME}?")]);
    assert_eq!(calls[0].body, finalizer_removal());
    assert!(f.context.store.experiment(NAME).unwrap().is_none());
}

#[tokio::test]
async fn deleting_an_experiment_keeps_another_namespaces_record() {
    let f = fixture(experiment(false), nothing_else);
    store_record(&f.context.store, "team-a", ExperimentPhase::Running);
    reconcile(Arc::new(deleting()), f.context.clone())
        .await
        .unwrap();
    assert_eq!(f.mock.lines(), [format!("PATCH {EXPERIMENTS}/{NAME}?")]);
    assert_eq!(f.mock.calls()[0].body, finalizer_removal());
    assert!(f.context.store.experiment(NAME).unwrap().is_some());
}

#[tokio::test]
async fn a_finished_experiment_gets_its_trial_and_experiment_statuses_and_no_new_driver() {
    let trials = "/apis/kubeflow.org/v1beta1/namespaces/kubeflow/trials";
    let first = trial_name(NAME, 0);
    let second = trial_name(NAME, 1);
    let _ = second;
    let first_path = format!("{trials}/{first}");
    let trial_json = |name: &str| {
        json!({
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
            "metadata": {"name": name, "namespace": NS, "resourceVersion": "3"},
            "spec": {},
        })
    };
    let list = format!("{trials}?&labelSelector=katib.kubeflow.org%2Fexperiment%3D{NAME}");
    let f = fixture(experiment(true), move |method, path, body| {
        match (method, path) {
            // The second Trial was deleted meanwhile: no status to write.
            ("GET", p) if p == list => Some((
                200,
                json!({"apiVersion": "kubeflow.org/v1beta1", "kind": "TrialList",
                       "metadata": {"resourceVersion": "9"}, "items": [trial_json(&first)]}),
            )),
            ("PATCH", p) if p == format!("{first_path}/status?") => Some((200, trial_json(&first))),
            ("POST", p) if p.starts_with(EVENTS) => Some((201, body.clone())),
            _ => nothing_else(method, path, &Value::Null),
        }
    });
    store_record(&f.context.store, NS, ExperimentPhase::Succeeded);
    f.context
        .store
        .put_trial(&stored_trial(0, TrialState::Succeeded))
        .unwrap();
    f.context
        .store
        .put_trial(&stored_trial(1, TrialState::Failed))
        .unwrap();
    let action = reconcile(Arc::new(experiment(true)), f.context.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::await_change(), "finished: no requeue");
    let trial0 = trial_name(NAME, 0);
    assert_eq!(
        f.mock.lines(),
        [
            format!("GET {trials}?&labelSelector=katib.kubeflow.org%2Fexperiment%3D{NAME}"),
            format!("PATCH {trials}/{trial0}/status?"),
            format!("POST {EVENTS}?"),
            format!("PATCH {EXPERIMENTS}/{NAME}/status?"),
            format!("POST {EVENTS}?"),
        ]
    );
    let calls = f.mock.calls();
    assert_eq!(
        calls[1].body["status"]["conditions"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["type"],
        "Succeeded"
    );
    // The Events name the new condition's reason, on the Trial and on the Experiment.
    assert_eq!(calls[2].body["reason"], "TrialSucceeded");
    assert_eq!(calls[2].body["regarding"]["kind"], "Trial");
    assert_eq!(calls[4].body["regarding"]["kind"], "Experiment");
    assert_eq!(
        calls[4].body["reason"],
        calls[3].body["status"]["conditions"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["reason"]
    );
    assert_eq!(calls[3].body["status"]["trials"], 2);
    assert!(!f.context.supervisor.is_running(NAME));
}

#[tokio::test]
async fn a_new_valid_experiment_gets_the_collector_identity_before_its_driver_starts() {
    // The driver's own calls (Trials, Secrets, Jobs and their watch) are the runtime's, tested in
    // tests/kubernetes_runtime.rs; here they are answered so that it can run, and the watches held.
    // A tiny object memory, so the runtime finds the objects it created (a Job without
    // conditions: the trial runs).
    let created = std::sync::Mutex::new(std::collections::BTreeMap::<String, Value>::new());
    let f = fixture(experiment(true), move |method, path, body| {
        if path.contains("watch=true") {
            return None;
        }
        let path = path.split('?').next().unwrap_or_default().to_string();
        let mut created = created.lock().unwrap();
        match method {
            "PATCH" | "POST" => {
                let mut object = body.clone();
                object["metadata"]["uid"] = json!("uid-x");
                object["metadata"]["resourceVersion"] = json!("5");
                if method == "POST" {
                    let name = object["metadata"]["name"].as_str().unwrap_or_default();
                    created.insert(format!("{path}/{name}"), object.clone());
                }
                Some((if method == "POST" { 201 } else { 200 }, object))
            }
            "GET" => match created.get(&path) {
                Some(object) => Some((200, object.clone())),
                None => {
                    let items: Vec<Value> = created
                        .iter()
                        .filter(|(key, _)| key.starts_with(&format!("{path}/")))
                        .map(|(_, object)| object.clone())
                        .collect();
                    Some((
                        200,
                        json!({"apiVersion": "v1", "kind": "List",
                               "metadata": {"resourceVersion": "5"}, "items": items}),
                    ))
                }
            },
            "DELETE" => Some((
                200,
                created
                    .remove(&path)
                    .unwrap_or_else(|| status_error(404, "NotFound")),
            )),
            _ => None,
        }
    });
    let action = reconcile(Arc::new(experiment(true)), f.context.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    assert!(
        f.context.supervisor.is_running(NAME),
        "{:?} {:#?} {:#?}",
        f.context
            .store
            .experiment(NAME)
            .unwrap()
            .map(|r| (r.phase, r.message)),
        f.context
            .store
            .trials(NAME)
            .unwrap()
            .iter()
            .map(|t| (t.state, t.message.clone()))
            .collect::<Vec<_>>(),
        f.mock.lines()
    );
    let calls = f.mock.calls();
    let apply = "force=true&fieldManager=sextant-controller";
    assert_eq!(
        calls[..3]
            .iter()
            .map(|c| c.line.clone())
            .collect::<Vec<_>>(),
        [
            format!("PATCH /api/v1/namespaces/kubeflow/serviceaccounts/sextant-collector?&{apply}"),
            format!(
                "PATCH /apis/rbac.authorization.k8s.io/v1/namespaces/kubeflow/roles/sextant-collector?&{apply}"
            ),
            format!(
                "PATCH /apis/rbac.authorization.k8s.io/v1/namespaces/kubeflow/rolebindings/sextant-collector?&{apply}"
            ),
        ]
    );
    assert!(
        calls[..3]
            .iter()
            .all(|c| c.content_type == "application/apply-patch+yaml")
    );
    assert_eq!(calls[1].body["rules"][1]["resources"], json!(["pods/log"]));
    // Then the Experiment's status (Created/Running), from the same reconcile.
    assert!(
        calls
            .iter()
            .any(|c| c.line == format!("PATCH {EXPERIMENTS}/{NAME}/status?")),
        "{:#?}",
        f.mock.lines()
    );
    // The driver goes with the test's runtime (its watches are held open by the mock).
}

// --- the Trial reconciler ---

const JOB: &str = "/apis/batch/v1/namespaces/kubeflow/jobs";
const TRIALS: &str = "/apis/kubeflow.org/v1beta1/namespaces/kubeflow/trials";

/// The Trial of stored trial 0 with its Job as run spec.
fn trial_resource_json(retain: bool, deleting: bool) -> TrialResource {
    let name = trial_name(NAME, 0);
    let mut trial = json!({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
        "metadata": {
            "name": name, "namespace": NS, "uid": "uid-t", "resourceVersion": "4",
            "labels": {"katib.kubeflow.org/experiment": NAME},
            "finalizers": [TRIAL_FINALIZER],
        },
        "spec": {
            "runSpec": {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}},
            "retainRun": retain,
        },
    });
    if deleting {
        trial["metadata"]["deletionTimestamp"] = json!("2026-11-22T00:00:00Z");
    }
    serde_json::from_value(trial).unwrap()
}

struct TrialFixture {
    mock: MockApi,
    context: Arc<TrialContext>,
    _data: tempfile::TempDir,
}

fn trial_fixture(
    state: TrialState,
    namespace: &str,
    respond: impl Fn(&str, &str, &Value) -> Option<(u16, Value)> + Send + 'static,
) -> TrialFixture {
    let mock = MockApi::new(respond);
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(&data.path().join("store")).unwrap();
    store_record(&store, namespace, ExperimentPhase::Running);
    store.put_trial(&stored_trial(0, state)).unwrap();
    store
        .put_observations(
            1000,
            &[Observation {
                metric_name: "Validation-accuracy".into(),
                value: 0.9,
                step: 0,
                timestamp: Timestamp::from_second(1_700_000_000).unwrap(),
            }],
        )
        .unwrap();
    TrialFixture {
        context: Arc::new(TrialContext {
            client: mock.client.clone(),
            store,
        }),
        mock,
        _data: data,
    }
}

fn job_json() -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": trial_name(NAME, 0), "namespace": NS}})
}

#[tokio::test]
async fn a_finished_trial_without_retain_has_its_job_deleted() {
    let f = trial_fixture(TrialState::Succeeded, NS, |method, _, _| match method {
        "GET" | "DELETE" => Some((200, job_json())),
        _ => None,
    });
    reconcile_trial(
        Arc::new(trial_resource_json(false, false)),
        f.context.clone(),
    )
    .await
    .unwrap();
    let job = format!("{JOB}/{}", trial_name(NAME, 0));
    assert_eq!(
        f.mock.lines(),
        [format!("GET {job}"), format!("DELETE {job}?")]
    );
    assert_eq!(
        f.mock.calls()[1].body,
        json!({"propagationPolicy": "Background"})
    );
}

#[tokio::test]
async fn a_finished_trials_job_already_gone_is_not_deleted_again() {
    let f = trial_fixture(TrialState::Failed, NS, |method, _, _| match method {
        "GET" => Some((404, status_error(404, "NotFound"))),
        _ => None,
    });
    reconcile_trial(
        Arc::new(trial_resource_json(false, false)),
        f.context.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        f.mock.lines(),
        [format!("GET {JOB}/{}", trial_name(NAME, 0))]
    );
}

#[tokio::test]
async fn a_running_trial_or_one_with_retain_makes_no_call() {
    for (state, retain) in [(TrialState::Running, false), (TrialState::Succeeded, true)] {
        let f = trial_fixture(state, NS, nothing_else);
        reconcile_trial(
            Arc::new(trial_resource_json(retain, false)),
            f.context.clone(),
        )
        .await
        .unwrap();
        assert_eq!(
            f.mock.lines(),
            Vec::<String>::new(),
            "{state:?} retain {retain}"
        );
    }
}

#[tokio::test]
async fn a_deleted_trial_loses_its_observation_log_then_its_finalizer() {
    for (namespace, kept) in [(NS, 0), ("team-a", 1)] {
        let answer = serde_json::to_value(trial_resource_json(false, false)).unwrap();
        let f = trial_fixture(TrialState::Succeeded, namespace, move |method, _, _| {
            (method == "PATCH").then(|| (200, answer.clone()))
        });
        reconcile_trial(
            Arc::new(trial_resource_json(false, true)),
            f.context.clone(),
        )
        .await
        .unwrap();
        let calls = f.mock.calls();
        assert_eq!(
            f.mock.lines(),
            [format!("PATCH {TRIALS}/{}?", trial_name(NAME, 0))]
        );
        assert_eq!(
            calls[0].body,
            json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": TRIAL_FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/0"},
            ])
        );
        // Another namespace's experiment owns the stored trial of that name: its points stay.
        let points = f.context.store.observations(1000, None).unwrap().len();
        assert_eq!(points, kept, "record in {namespace}");
        assert!(
            f.context
                .store
                .trial(&trial_name(NAME, 0))
                .unwrap()
                .is_some()
        );
    }
}
