//! `KubernetesRuntime` against the fake apiserver: the objects a trial gets, and how its
//! workload's end is reported.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::json;
use sextant::runtime::kubernetes::{ClusterSettings, KubernetesRuntime};
use sextant::runtime::{ExitOutcome, RuntimeEvent, TrialRuntime};
use sextant::spec::crd::TrialResource;
use sextant::spec::{ExperimentResource, ParameterAssignment};
use sextant::store::{TrialRecord, TrialState};
use tokio::sync::mpsc::{self, UnboundedReceiver};

use crate::fake_apiserver::FakeApiServer;

/// The example's namespace.
const NS: &str = "kubeflow";
/// Long enough for a slow, shared CI machine; the fake answers in milliseconds.
const WAIT: Duration = Duration::from_secs(20);
/// How long to listen for an event that must not come.
const QUIET: Duration = Duration::from_millis(500);

const EXAMPLE: &str = include_str!("../examples/digits/random.yaml");

struct Setup {
    fake: FakeApiServer,
    runtime: KubernetesRuntime,
    events: UnboundedReceiver<RuntimeEvent>,
    owner: ExperimentResource,
}

async fn setup() -> Setup {
    let fake = FakeApiServer::start().await;
    let checked = sextant::spec::check(EXAMPLE).expect("the example is valid");
    let experiment: ExperimentResource =
        serde_saphyr::from_str(EXAMPLE).expect("the example reads as an ExperimentResource");
    let api: Api<ExperimentResource> = Api::namespaced(fake.client(), NS);
    let owner = api
        .create(&PostParams::default(), &experiment)
        .await
        .expect("the fake creates the Experiment");
    let (sender, events) = mpsc::unbounded_channel();
    let runtime = KubernetesRuntime::new(
        fake.client(),
        owner.clone(),
        checked,
        ClusterSettings::default(),
        sender,
    );
    Setup {
        fake,
        runtime,
        events,
        owner,
    }
}

fn trial(name: &str) -> TrialRecord {
    let assignments = [
        ("lr", "0.01"),
        ("hidden-units", "32"),
        ("batch-size", "64"),
        ("optimizer", "adam"),
        ("epochs", "5"),
    ]
    .into_iter()
    .map(|(name, value)| ParameterAssignment {
        name: name.to_string(),
        value: value.to_string(),
    })
    .collect();
    TrialRecord {
        log_path: format!("/tmp/{name}.log").into(),
        name: name.to_string(),
        experiment: "digits-random".to_string(),
        index: 0,
        uid: 1,
        assignments,
        state: TrialState::Pending,
        reason: String::new(),
        message: String::new(),
        events: Vec::new(),
        created: jiff::Timestamp::now(),
        started: None,
        finished: None,
        pid: None,
        exit_code: None,
        gpus: Vec::new(),
        metrics: Vec::new(),
        objective: None,
    }
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    within(what, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn exited(events: &mut UnboundedReceiver<RuntimeEvent>) -> (String, ExitOutcome) {
    match within("an Exited event", events.recv()).await {
        Some(RuntimeEvent::Exited { trial, outcome }) => (trial, outcome),
        other => panic!("expected Exited, got {other:?}"),
    }
}

async fn no_more_events(events: &mut UnboundedReceiver<RuntimeEvent>) {
    if let Ok(event) = tokio::time::timeout(QUIET, events.recv()).await {
        panic!("expected no more events, got {event:?}");
    }
}

/// Starts `name` and waits until its Job exists.
async fn start(setup: &mut Setup, name: &str) -> Job {
    setup
        .runtime
        .start(&trial(name), &json!({}), "secret-token")
        .expect("start");
    let fake = &setup.fake;
    eventually("the Job", || fake.get::<Job>(NS, name).is_some()).await;
    fake.get::<Job>(NS, name).unwrap()
}

#[tokio::test]
async fn start_creates_trial_secret_and_job_with_owners() {
    let mut setup = setup().await;
    let job = start(&mut setup, "digits-random-1").await;

    let trial: TrialResource = setup.fake.get(NS, "digits-random-1").expect("the Trial");
    let owners = trial.owner_references();
    assert_eq!(owners.len(), 1);
    assert_eq!(Some(&owners[0].uid), setup.owner.uid().as_ref());
    assert_eq!(owners[0].kind, "Experiment");

    let trial_uid = trial.uid().expect("the Trial has a uid");
    let secret: Secret = setup
        .fake
        .get(NS, "digits-random-1-token")
        .expect("the Secret");
    assert_eq!(secret.owner_references()[0].uid, trial_uid);
    let token = &secret.data.as_ref().unwrap()["token"];
    assert_eq!(token.0, b"secret-token");

    assert_eq!(job.owner_references()[0].uid, trial_uid);
    assert_eq!(job.owner_references()[0].kind, "Trial");
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.containers[0].name, "training-container");
    // The collector runs as a native sidecar: an init container that restarts.
    let sidecars: Vec<_> = pod
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .collect();
    assert_eq!(sidecars.len(), 1, "the collector sidecar is added: {pod:?}");
    let reads_secret = sidecars[0]
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .any(|r| r.name == "digits-random-1-token" && r.key == "token");
    assert!(
        reads_secret,
        "the sidecar reads the token Secret: {:?}",
        sidecars[0]
    );
}

#[tokio::test]
async fn complete_job_reports_exit_code_zero_once() {
    let mut setup = setup().await;
    start(&mut setup, "digits-random-1").await;
    setup
        .fake
        .set_job_condition(NS, "digits-random-1", "Complete");
    let (trial, outcome) = exited(&mut setup.events).await;
    assert_eq!(trial, "digits-random-1");
    assert_eq!(outcome, ExitOutcome::Code(0));
    // A later change of the finished Job, or a stop, reports nothing more.
    setup.fake.update::<Job>(NS, "digits-random-1", |job| {
        job["metadata"]["labels"]["touched"] = json!("yes");
    });
    setup.runtime.stop("digits-random-1");
    no_more_events(&mut setup.events).await;
    assert!(setup.fake.get::<Job>(NS, "digits-random-1").is_some());
}

#[tokio::test]
async fn failed_job_reports_its_reason() {
    let mut setup = setup().await;
    start(&mut setup, "digits-random-1").await;
    setup
        .fake
        .set_job_condition(NS, "digits-random-1", "Failed");
    let (_, outcome) = exited(&mut setup.events).await;
    match outcome {
        ExitOutcome::Error(message) => {
            assert!(message.contains("BackoffLimitExceeded"), "{message}")
        }
        other => panic!("expected Error, got {other:?}"),
    }
    no_more_events(&mut setup.events).await;
}

#[tokio::test]
async fn stop_deletes_the_job_and_reports_once() {
    let mut setup = setup().await;
    start(&mut setup, "digits-random-1").await;
    setup.runtime.stop("digits-random-1");
    let (trial, outcome) = exited(&mut setup.events).await;
    assert_eq!(trial, "digits-random-1");
    assert_eq!(outcome, ExitOutcome::Error("stopped".into()));
    assert!(setup.fake.get::<Job>(NS, "digits-random-1").is_none());
    setup.runtime.stop("digits-random-1");
    no_more_events(&mut setup.events).await;
    setup.runtime.forget("digits-random-1");
}

#[tokio::test]
async fn deleted_job_is_reported() {
    let mut setup = setup().await;
    start(&mut setup, "digits-random-1").await;
    let jobs: Api<Job> = Api::namespaced(setup.fake.client(), NS);
    jobs.delete("digits-random-1", &Default::default())
        .await
        .unwrap();
    let (_, outcome) = exited(&mut setup.events).await;
    assert_eq!(
        outcome,
        ExitOutcome::Error("the workload was deleted".into())
    );
}

#[tokio::test]
async fn recover_deletes_a_leftover_job() {
    let mut setup = setup().await;
    start(&mut setup, "digits-random-1").await;
    // A new controller: it knows nothing of the trial but its record.
    let (sender, _events) = mpsc::unbounded_channel();
    let mut fresh = KubernetesRuntime::new(
        setup.fake.client(),
        setup.owner.clone(),
        sextant::spec::check(EXAMPLE).unwrap(),
        ClusterSettings::default(),
        sender,
    );
    fresh.recover(&trial("digits-random-1"));
    let fake = &setup.fake;
    eventually("the Job's deletion", || {
        fake.get::<Job>(NS, "digits-random-1").is_none()
    })
    .await;
}

#[tokio::test]
async fn starting_again_is_idempotent() {
    let mut setup = setup().await;
    start(&mut setup, "digits-random-1").await;
    // A restarted controller starts the same trial: every object already exists.
    start(&mut setup, "digits-random-1").await;
    assert_eq!(setup.fake.list::<Job>(NS).len(), 1);
    no_more_events(&mut setup.events).await;
    setup
        .fake
        .set_job_condition(NS, "digits-random-1", "Complete");
    let (_, outcome) = exited(&mut setup.events).await;
    assert_eq!(outcome, ExitOutcome::Code(0));
    no_more_events(&mut setup.events).await;
}

#[tokio::test]
async fn failing_create_reports_an_error_naming_the_object() {
    let mut setup = setup().await;
    // An apiserver that is gone: every request fails.
    let gone = FakeApiServer::start().await;
    let (sender, mut events) = mpsc::unbounded_channel();
    let mut runtime = KubernetesRuntime::new(
        gone.client(),
        setup.owner.clone(),
        sextant::spec::check(EXAMPLE).unwrap(),
        ClusterSettings::default(),
        sender,
    );
    drop(gone);
    runtime
        .start(&trial("digits-random-1"), &json!({}), "secret-token")
        .expect("start only spawns the work");
    let (_, outcome) = exited(&mut events).await;
    match outcome {
        ExitOutcome::Error(message) => {
            assert!(message.contains("Trial \"digits-random-1\""), "{message}")
        }
        other => panic!("expected Error, got {other:?}"),
    }
    no_more_events(&mut events).await;
    no_more_events(&mut setup.events).await;
}
