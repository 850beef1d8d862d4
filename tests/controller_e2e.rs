//! `sextant controller` end to end against the fake apiserver: the controller runs in-process with
//! the API served beside it (as `sextant controller` serves it), Katib's random example is
//! applied, and the test plays the trials (pushes each trial's objective with its token) and the
//! Job controller (marks each Job Complete) until the Experiment succeeds.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::json;
use sextant::api::{self, AccessConfig, AppState};
use sextant::controller::kube_controller::{self, ControllerSettings, EXPERIMENT_FINALIZER};
use sextant::controller::kube_trials::TRIAL_FINALIZER;
use sextant::controller::supervisor::Supervisor;
use sextant::runtime::gpu::GpuPool;
use sextant::runtime::kubernetes::ClusterSettings;
use sextant::spec::ExperimentResource;
use sextant::spec::crd::TrialResource;
use sextant::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fake_apiserver::FakeApiServer;

const NS: &str = "kubeflow";
const NAME: &str = "random";
const EXAMPLE: &str = include_str!("data/katib-random.yaml");
/// The whole test's bound.
const TOTAL: Duration = Duration::from_secs(60);
/// How long the deletion test waits for the driver to stop.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// Waits until `done` holds, up to `STOP_WAIT`; panics with `what` otherwise.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(STOP_WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for: {what}"));
}

/// POSTs `body` to the API with a bearer token; returns the status code and body.
async fn post(address: std::net::SocketAddr, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the API");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("read");
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn katib_random_example_runs_to_succeeded() {
    tokio::time::timeout(TOTAL, run_example())
        .await
        .expect("the experiment succeeds within 60 s");
}

/// The controller running in-process over a fake apiserver, with the API served beside it.
struct Harness {
    fake: FakeApiServer,
    store: Store,
    supervisor: Supervisor,
    address: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    controller: tokio::task::JoinHandle<()>,
    _data: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let fake = FakeApiServer::start().await;
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(&data.path().join("store")).unwrap();
        Harness::start_on(fake, store, data).await
    }

    /// A controller (with its API) on an existing apiserver and store: a restarted controller.
    async fn start_on(fake: FakeApiServer, store: Store, data: tempfile::TempDir) -> Harness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let supervisor = Supervisor::new(
            store.clone(),
            data.path().to_path_buf(),
            format!("http://{address}"),
            GpuPool::new(Vec::new()),
        );
        let state = AppState::new(
            store.clone(),
            supervisor.clone(),
            AccessConfig {
                admin_token: "admin".into(),
                auth_reads: false,
            },
        );
        state.set_ready();
        let router = api::router(state, api::DEFAULT_REQUEST_TIMEOUT);
        tokio::spawn(api::serve(listener, router, std::future::pending()));
        let settings = ControllerSettings {
            namespace: None,
            cluster: ClusterSettings {
                endpoint: format!("http://{address}"),
                ..ClusterSettings::default()
            },
            work_dir: data.path().join("work"),
            requeue: Duration::from_millis(200),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let controller = tokio::spawn(kube_controller::run(
            fake.client(),
            store.clone(),
            supervisor.clone(),
            settings,
            async move {
                let _ = stopped.await;
            },
        ));
        Harness {
            fake,
            store,
            supervisor,
            address,
            stop,
            controller,
            _data: data,
        }
    }

    async fn shut_down(self) {
        let _ = self.stop.send(());
        self.controller.await.unwrap();
    }

    /// Stops the controller as SIGTERM does, and starts another on the same apiserver and store.
    async fn restart(self) -> Harness {
        let _ = self.stop.send(());
        self.controller.await.unwrap();
        Harness::start_on(self.fake, self.store, self._data).await
    }
}

/// Creates `experiment` in `namespace`.
async fn apply(fake: &FakeApiServer, namespace: &str, experiment: &ExperimentResource) {
    let mut experiment = experiment.clone();
    experiment.metadata.namespace = Some(namespace.to_string());
    Api::<ExperimentResource>::namespaced(fake.client(), namespace)
        .create(&PostParams::default(), &experiment)
        .await
        .expect("the fake creates the Experiment");
}

async fn run_example() {
    let Harness {
        fake,
        store,
        address,
        stop,
        controller,
        _data,
        ..
    } = Harness::start().await;
    let experiment: ExperimentResource =
        serde_saphyr::from_str(EXAMPLE).expect("Katib's example reads as an Experiment");
    apply(&fake, NS, &experiment).await;

    let done = play_until_ended(&fake, &store, address, BTreeSet::new()).await;

    let current: ExperimentResource = fake.get(NS, NAME).unwrap();
    let status = current.status.clone().expect("a status");
    let last = status.conditions.last().unwrap();
    assert_eq!(
        (last.condition_type.as_str(), last.status.as_str()),
        ("Succeeded", "True"),
        "{status:?}"
    );
    assert_eq!(status.trials, 12, "{status:?}");
    assert_eq!(status.trials_succeeded, 12, "{status:?}");
    assert_eq!(status.trials_failed, 0, "{status:#?}");
    let best = status.current_optimal_trial.expect("currentOptimalTrial");
    assert!(!best.best_trial_name.is_empty(), "{best:?}");
    assert!(done.contains(&best.best_trial_name), "{best:?}");
    // Every Trial resource got its final status too, and the finalizer that deletes its
    // observation log.
    let trials = fake.list::<TrialResource>(NS);
    assert_eq!(trials.len(), 12);
    for t in &trials {
        let conditions = &t.status.as_ref().expect("a Trial status").conditions;
        assert_eq!(
            conditions.last().map(|c| c.condition_type.as_str()),
            Some("Succeeded"),
            "{}: {conditions:?}",
            t.name_any()
        );
        assert_eq!(t.finalizers(), [TRIAL_FINALIZER.to_string()]);
    }
    assert_eq!(current.finalizers(), [EXPERIMENT_FINALIZER.to_string()]);
    // The collector sidecar's identity was set up in the namespace.
    assert!(
        fake.get::<ServiceAccount>(NS, "sextant-collector")
            .is_some()
    );
    let role: Role = fake
        .get(NS, "sextant-collector")
        .expect("the collector Role");
    assert_eq!(role.rules.unwrap().len(), 2);
    assert!(fake.get::<RoleBinding>(NS, "sextant-collector").is_some());
    // Katib's default `retain: false`: the finished trials' Jobs are deleted.
    wait_for("every finished Job deleted", || {
        fake.list::<Job>(NS).is_empty()
    })
    .await;

    // Deleting one Trial deletes its observation log; its record (and the experiment's best) stay.
    let victim = best.best_trial_name.clone();
    let uid = store
        .trial(&victim)
        .unwrap()
        .expect("the trial's record")
        .uid;
    assert!(!store.observations(uid, None).unwrap().is_empty());
    Api::<TrialResource>::namespaced(fake.client(), NS)
        .delete(&victim, &Default::default())
        .await
        .expect("the fake deletes the Trial");
    wait_for("the deleted Trial gone", || {
        fake.get::<TrialResource>(NS, &victim).is_none()
    })
    .await;
    assert!(store.observations(uid, None).unwrap().is_empty());
    assert!(store.trial(&victim).unwrap().is_some());

    // Deleting the Experiment deletes its store record, and owner references everything else.
    Api::<ExperimentResource>::namespaced(fake.client(), NS)
        .delete(NAME, &Default::default())
        .await
        .expect("the fake deletes the Experiment");
    wait_for("the Experiment, its Trials and its record gone", || {
        fake.get::<ExperimentResource>(NS, NAME).is_none()
            && fake.list::<TrialResource>(NS).is_empty()
            && fake.list::<Secret>(NS).is_empty()
            && store.experiment(NAME).unwrap().is_none()
    })
    .await;
    assert!(store.trials(NAME).unwrap().is_empty());
    let _ = stop.send(());
    controller.await.unwrap();
}

/// Plays the trials (pushes each one's objective with its token) and the Job controller (marks
/// each Job Complete) until the Experiment ends; returns the trials played, `done` included.
async fn play_until_ended(
    fake: &FakeApiServer,
    store: &Store,
    address: std::net::SocketAddr,
    mut done: BTreeSet<String>,
) -> BTreeSet<String> {
    let mut value = 0.5;
    let started = std::time::Instant::now();
    loop {
        if started.elapsed() > TOTAL - Duration::from_secs(5) {
            let trials: Vec<String> = store
                .trials(NAME)
                .unwrap()
                .iter()
                .map(|t| format!("{} {} {} {}", t.name, t.state, t.reason, t.message))
                .collect();
            let current: Option<ExperimentResource> = fake.get(NS, NAME);
            let status = current.and_then(|c| c.status);
            let requests = fake.requests();
            panic!(
                "the Experiment did not end: {:?}\nstore: {:#?}\njobs done: {done:?}\nstatus: {status:#?}\nlast requests: {:#?}",
                store
                    .experiment(NAME)
                    .unwrap()
                    .map(|r| (r.phase, r.reason, r.message)),
                trials,
                &requests[requests.len().saturating_sub(15)..]
            );
        }
        let current: ExperimentResource = fake.get(NS, NAME).expect("the Experiment");
        // Ended, and the last trials' states written (trials still in flight when the budget
        // is reached are stopped by the driver just after).
        let ended = current.status.as_ref().is_some_and(|s| {
            s.trials_running + s.trials_pending == 0
                && s.conditions.last().is_some_and(|c| {
                    (c.condition_type == "Succeeded" || c.condition_type == "Failed")
                        && c.status == "True"
                })
        });
        if ended {
            break;
        }
        for job in fake.list::<Job>(NS) {
            let trial = job.name_any();
            if done.contains(&trial) {
                continue;
            }
            let Some(secret) = fake.get::<Secret>(NS, &format!("{trial}-token")) else {
                continue;
            };
            let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
            // Below the goal (0.99), so all 12 trials run.
            value += 0.01;
            let body = json!({"observations": [
                {"metricName": "Validation-accuracy", "value": value, "step": 1},
                {"metricName": "Train-accuracy", "value": value, "step": 1},
            ]})
            .to_string();
            let path = format!("/v1/experiments/{NAME}/trials/{trial}/metrics");
            let (status, reply) = post(address, &path, &token, &body).await;
            assert_eq!(status, 200, "push for {trial}: {reply}");
            fake.set_job_condition(NS, &trial, "Complete");
            done.insert(trial);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    done
}

/// The last condition of the Experiment once it is `Failed`, waiting up to `TOTAL`.
async fn failed_condition(fake: &FakeApiServer, namespace: &str, name: &str) -> String {
    tokio::time::timeout(TOTAL, async {
        loop {
            let current: Option<ExperimentResource> = fake.get(namespace, name);
            if let Some(c) = current
                .and_then(|e| e.status)
                .and_then(|s| s.conditions.last().cloned())
                .filter(|c| c.condition_type == "Failed" && c.status == "True")
            {
                return c.message;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{namespace}/{name} did not get a Failed condition"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_and_names_taken_in_another_namespace_get_a_failed_condition() {
    let harness = Harness::start().await;
    let fake = &harness.fake;
    let experiment: ExperimentResource = serde_saphyr::from_str(EXAMPLE).unwrap();
    apply(fake, NS, &experiment).await;
    tokio::time::timeout(TOTAL, async {
        while harness.store.experiment(NAME).unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first experiment is stored");

    // The same name in another namespace: the store holds one experiment per name.
    apply(fake, "other", &experiment).await;
    let message = failed_condition(fake, "other", NAME).await;
    assert!(
        message.contains("namespace") && message.contains(NS),
        "{message}"
    );

    // A spec that does not validate.
    let mut invalid = experiment.clone();
    invalid.metadata.name = Some("invalid".into());
    invalid.spec.algorithm.as_mut().unwrap().algorithm_name = "no-such-algorithm".into();
    apply(fake, NS, &invalid).await;
    let message = failed_condition(fake, NS, "invalid").await;
    assert!(message.contains("invalid Experiment"), "{message}");
    assert!(harness.store.experiment("invalid").unwrap().is_none());
    // The first one was not disturbed.
    let first = harness.store.experiment(NAME).unwrap().expect("stored");
    assert_eq!(first.experiment.metadata.namespace.as_deref(), Some(NS));
    harness.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_experiment_stops_its_driver_and_deletes_everything() {
    let harness = Harness::start().await;
    let fake = &harness.fake;
    let experiment: ExperimentResource = serde_saphyr::from_str(EXAMPLE).unwrap();
    apply(fake, NS, &experiment).await;
    tokio::time::timeout(TOTAL, async {
        while fake.list::<Job>(NS).is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the first trials' Jobs appear");
    Api::<ExperimentResource>::namespaced(fake.client(), NS)
        .delete(NAME, &Default::default())
        .await
        .expect("the fake deletes the Experiment");
    let store = &harness.store;
    // The finalizer holds the Experiment until the driver has stopped (its running trials with
    // it) and the record is deleted; then owner references take the Trials, Secrets and Jobs.
    wait_for("the driver stopped and everything deleted", || {
        !harness.supervisor.is_running(NAME)
            && store.experiment(NAME).unwrap().is_none()
            && fake.get::<ExperimentResource>(NS, NAME).is_none()
            && fake.list::<TrialResource>(NS).is_empty()
            && fake.list::<Job>(NS).is_empty()
    })
    .await;
    assert!(store.trials(NAME).unwrap().is_empty());
    harness.shut_down().await;
}

/// A controller restart (SIGTERM, an upgrade, a new leader) leaves running trials running: their
/// Jobs are not deleted, their records stay Running, and the next controller picks them up and
/// finishes the experiment with no trial Killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_picks_up_the_running_trials() {
    let harness = Harness::start().await;
    let experiment: ExperimentResource = serde_saphyr::from_str(EXAMPLE).unwrap();
    apply(&harness.fake, NS, &experiment).await;
    let running = |store: &Store| {
        store
            .trials(NAME)
            .unwrap()
            .iter()
            .filter(|t| t.state == sextant::store::TrialState::Running)
            .map(|t| t.name.clone())
            .collect::<BTreeSet<_>>()
    };
    wait_for("3 trials running with their Jobs", || {
        running(&harness.store).len() == 3 && harness.fake.list::<Job>(NS).len() == 3
    })
    .await;
    let before = running(&harness.store);

    let harness = harness.restart().await;
    // Nothing was stopped: the same trials run, with their Jobs.
    assert_eq!(running(&harness.store), before);
    let jobs: BTreeSet<String> = harness
        .fake
        .list::<Job>(NS)
        .iter()
        .map(|j| j.name_any())
        .collect();
    assert_eq!(jobs, before);

    play_until_ended(
        &harness.fake,
        &harness.store,
        harness.address,
        BTreeSet::new(),
    )
    .await;
    let trials = harness.store.trials(NAME).unwrap();
    assert_eq!(trials.len(), 12, "{trials:#?}");
    assert!(
        trials
            .iter()
            .all(|t| t.state == sextant::store::TrialState::Succeeded),
        "{:#?}",
        trials
            .iter()
            .map(|t| (&t.name, t.state, &t.message))
            .collect::<Vec<_>>()
    );
    harness.shut_down().await;
}
