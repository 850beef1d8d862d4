//! The Kubernetes manifests Sextant ships (`deploy/`) are valid objects for the Kubernetes version
//! we target, checked offline against the API's own OpenAPI schemas by `kubernetes-validate`
//! (PyPI; it ships the schemas, no cluster or network needed).
//!
//! `--strict` rejects fields the schema does not know, which is what catches a misspelt or
//! misplaced key (`securityContext` one level too high) that `kubectl apply` would drop silently
//! on older clients. `kubernetes-validate` only warns, with exit status 0, about an object whose
//! schema it lacks, so a typo in `apiVersion` would pass unnoticed: [`check_manifests`] turns
//! those warnings into failures, except for the Kubeflow custom resources (Experiment, Trial,
//! PyTorchJob, TrainJob, ...), whose schemas live in their CRDs, not in Kubernetes; those objects
//! are skipped. The CRDs themselves are ordinary `apiextensions.k8s.io/v1` objects and are checked.
//!
//! [`validate_manifests`] is meant for reuse: the trial Jobs the controller renders can go through
//! it too.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixture::{Workspace, text};

/// The Kubernetes version the manifests are checked against. 1.33 made native sidecars (an init
/// container with `restartPolicy: Always`, which the trial pods' metrics collector is) generally
/// available, so it is the oldest version the Kubernetes runtime is meant for; validating against
/// the oldest supported version also catches fields that only newer clusters know.
const KUBERNETES_VERSION: &str = "1.33.0";

/// The pinned release `.ci/run` installs; named in the message when the tool is missing.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

/// API groups whose objects are custom resources: no schema in Kubernetes itself, so
/// `kubernetes-validate` cannot check them (Katib's kinds, Training Operator v1 jobs, Trainer v2).
const CUSTOM_RESOURCE_GROUPS: &[&str] = &["kubeflow.org", "trainer.kubeflow.org"];

/// What `kubernetes-validate` prints for an object it has no schema for.
const NO_SCHEMA: &str = "Couldn't find schema for kind ";

/// Checks every Kubernetes object in `paths` (files of one or more YAML documents) and panics with
/// the validator's findings when one is not valid. Custom resources are skipped (see the module
/// docs).
pub fn validate_manifests(paths: &[PathBuf]) {
    if let Err(findings) = check_manifests(paths) {
        panic!("{findings}");
    }
}

/// [`validate_manifests`] without the panic: `Err` holds what was wrong, for a test to show.
pub fn check_manifests(paths: &[PathBuf]) -> Result<(), String> {
    assert!(!paths.is_empty(), "no manifest to validate");
    let output = match Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSION])
        .args(paths)
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "kubernetes-validate is not installed, and the Kubernetes manifests cannot be checked \
             without it: `python3 -m pip install {KUBERNETES_VALIDATE}` (.ci/run installs it)"
        ),
        Err(e) => panic!("cannot run kubernetes-validate: {e}"),
    };
    let report = format!("{}{}", text(&output.stdout), text(&output.stderr));
    if !output.status.success() {
        return Err(format!(
            "kubernetes-validate --strict -k {KUBERNETES_VERSION} rejected a manifest:\n{report}"
        ));
    }
    let unknown: Vec<&str> = report
        .lines()
        .filter(|line| line.contains(NO_SCHEMA) && !is_custom_resource(line))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "kubernetes-validate has no schema for these objects (a misspelt apiVersion or kind, or \
             a custom resource whose group is not in CUSTOM_RESOURCE_GROUPS):\n{}",
            unknown.join("\n")
        ));
    }
    Ok(())
}

/// Whether a no-schema warning (`... kind Experiment with api version kubeflow.org/v1beta1 for
/// kubernetes version 1.33`) is about a custom resource of a known group.
fn is_custom_resource(warning: &str) -> bool {
    let Some((_, api_version)) = warning.split_once(" with api version ") else {
        return false;
    };
    let api_version = api_version.split_whitespace().next().unwrap_or_default();
    match api_version.split_once('/') {
        Some((group, _)) => CUSTOM_RESOURCE_GROUPS.contains(&group),
        None => false, // the core group ("v1") is never a custom resource
    }
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every YAML file in `deploy/` except the kustomization, which configures kustomize and is not a
/// Kubernetes object. `crds.yaml` is included once it exists.
fn shipped_manifests() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .expect("read deploy/")
        .map(|entry| entry.expect("read deploy/").path())
        .filter(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            )
        })
        .filter(|path| path.file_stem().and_then(|s| s.to_str()) != Some("kustomization"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn every_shipped_manifest_is_valid_for_kubernetes() {
    let paths = shipped_manifests();
    for expected in [
        "namespace.yaml",
        "rbac.yaml",
        "controller.yaml",
        "service.yaml",
    ] {
        assert!(
            paths.iter().any(|p| p.ends_with(expected)),
            "deploy/{expected} is missing"
        );
    }
    validate_manifests(&paths);
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let path = deploy_dir().join("kustomization.yaml");
    let kustomization: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&path).expect("read kustomization.yaml"))
            .expect("kustomization.yaml is YAML");
    let resources: Vec<&str> = kustomization["resources"]
        .as_array()
        .expect("kustomization.yaml has resources")
        .iter()
        .map(|r| r.as_str().expect("a resource is a path"))
        .collect();
    for manifest in shipped_manifests() {
        let name = manifest.file_name().unwrap().to_str().unwrap();
        assert!(
            resources.contains(&name),
            "deploy/{name} is not in deploy/kustomization.yaml, so `kubectl apply -k deploy/` \
             would leave it out"
        );
    }
}

/// The check is not vacuous: it rejects an unknown field, a wrong type and a misspelt apiVersion,
/// and skips a custom resource.
#[test]
fn the_manifest_check_rejects_what_a_cluster_would() {
    let ws = Workspace::new();
    let service = |spec: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: api}}\nspec: {spec}\n")
    };
    let cases = [
        (
            "unknown-field.yaml",
            service("{portz: [{port: 80}]}"),
            "portz",
        ),
        (
            "wrong-type.yaml",
            service("{ports: [{port: eighty}]}"),
            "eighty",
        ),
        (
            "misspelt-api-version.yaml",
            "apiVersion: app/v1\nkind: Deployment\nmetadata: {name: api}\n".to_string(),
            "app/v1",
        ),
    ];
    for (name, yaml, needle) in cases {
        let findings = check_manifests(&[ws.write(name, &yaml)])
            .expect_err(&format!("{name} should be rejected"));
        assert!(findings.contains(needle), "{name}: {findings}");
    }
    let experiment = ws.write(
        "experiment.yaml",
        "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata: {name: e}\nspec: {}\n",
    );
    let good = ws.write("good.yaml", &service("{ports: [{port: 80}]}"));
    assert_eq!(check_manifests(&[experiment, good]), Ok(()));
}

#[test]
fn rendered_trial_workloads_are_valid_for_kubernetes() {
    // What the controller would create for a trial of each example, collector sidecar included.
    let (_dir, mut files) = sextant::cli::render::rendered_examples().expect("render the examples");
    assert!(!files.is_empty(), "no example was rendered");
    // Katib's own random-search example, through the CLI as a user would render it.
    let ws = Workspace::new();
    let katib = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/katib-random.yaml");
    let out = ws.run(&["render", katib.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    files.push(ws.write("katib-random-trial.yaml", &text(&out.stdout)));
    validate_manifests(&files);
}
