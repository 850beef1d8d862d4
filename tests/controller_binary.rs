//! The real `sextant controller` binary against the fake apiserver (through a kubeconfig): it
//! takes the Lease before doing anything, reconciles an Experiment into Trials and Jobs, a second
//! replica waits, and SIGTERM releases the Lease so the second takes over at once.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use sextant::spec::ExperimentResource;
use sextant::spec::crd::TrialResource;

use crate::fake_apiserver::FakeApiServer;
use crate::fixture::Workspace;

const EXAMPLE: &str = include_str!("data/katib-random.yaml");
const WAIT: Duration = Duration::from_secs(30);

/// A running `sextant controller`, killed if the test fails.
struct Controller(Option<Child>);

impl Controller {
    fn start(ws: &Workspace, kubeconfig: &std::path::Path, identity: &str) -> Controller {
        let child = ws
            .sextant()
            .args([
                "controller",
                "--listen",
                "127.0.0.1:0",
                "--identity",
                identity,
                "--lease-namespace",
                "sextant-system",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env_remove("SEXTANT_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sextant controller");
        Controller(Some(child))
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        child.wait().unwrap()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn holder(fake: &FakeApiServer) -> Option<String> {
    fake.get::<Lease>("sextant-system", "sextant-controller")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_binary_leads_reconciles_and_hands_over_on_sigterm() {
    let fake = FakeApiServer::start().await;
    let (first_ws, second_ws) = (Workspace::new(), Workspace::new());
    let kubeconfig = first_ws.write(
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: test\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: test\n\
             current-context: fake\n",
            fake.url()
        ),
    );
    let first = Controller::start(&first_ws, &kubeconfig, "replica-a");
    wait_for("replica-a holds the Lease", || {
        holder(&fake).as_deref() == Some("replica-a")
    })
    .await;

    let mut experiment: ExperimentResource = serde_saphyr::from_str(EXAMPLE).unwrap();
    experiment.metadata.namespace = Some("kubeflow".into());
    Api::<ExperimentResource>::namespaced(fake.client(), "kubeflow")
        .create(&PostParams::default(), &experiment)
        .await
        .unwrap();
    wait_for("the first trials and their Jobs", || {
        fake.list::<TrialResource>("kubeflow").len() == 3 && fake.list::<Job>("kubeflow").len() == 3
    })
    .await;

    // A second replica (its own data directory, as a second pod would have) waits.
    let second = Controller::start(&second_ws, &kubeconfig, "replica-b");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(holder(&fake).as_deref(), Some("replica-a"));
    assert!(
        !second_ws.data_dir().join("db").exists()
            && std::fs::read_dir(second_ws.data_dir()).map_or(true, |d| d.count() == 0),
        "a waiting replica does not open its store"
    );

    let status = first.terminate();
    assert!(
        status.success(),
        "SIGTERM ends the controller cleanly: {status}"
    );
    // Released on the way out, so the other replica takes over at its next try (2 s), not after
    // the 15 s lease duration.
    let handed_over = Instant::now();
    wait_for("replica-b takes the Lease", || {
        holder(&fake).as_deref() == Some("replica-b")
    })
    .await;
    assert!(handed_over.elapsed() < Duration::from_secs(10));
    // The first replica left the trials running (a restart does not stop them).
    assert_eq!(fake.list::<Job>("kubeflow").len(), 3);
    second.terminate();
}
