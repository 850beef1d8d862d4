//! Against a real cluster (ignored by default: none is reachable on the build machines). Run with
//! a kubeconfig pointing at a disposable cluster, Kubernetes 1.33 or later:
//!
//! ```sh
//! cargo test --test tests real_cluster -- --ignored
//! ```
//!
//! It server-side applies Sextant's CRDs, waits until they are established, then asks the
//! apiserver to accept — as a dry run, so nothing runs — Katib's random-search Experiment unchanged
//! and the Job `sextant render` makes of its first trial (native sidecar included). This is what
//! the fake apiserver cannot show: that the real schemas and admission accept our objects.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use sextant::cli::render::first_batch_workload;
use sextant::runtime::kubernetes::ClusterSettings;
use sextant::spec::{self, crd};

const EXAMPLE: &str = include_str!("data/katib-random.yaml");

#[tokio::test]
#[ignore = "needs a real cluster (kubeconfig)"]
async fn real_cluster_accepts_the_crds_katibs_example_and_the_rendered_job() {
    let client = kube::Client::try_default()
        .await
        .expect("a kubeconfig or in-cluster config");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let apply = PatchParams::apply("sextant-test").force();
    for definition in crd::crds() {
        let name = definition.metadata.name.clone().unwrap();
        crds.patch(&name, &apply, &Patch::Apply(&definition))
            .await
            .unwrap_or_else(|e| panic!("applying the CRD {name}: {e}"));
        let established = async {
            loop {
                let current = crds.get(&name).await.unwrap();
                let ok = current.status.and_then(|s| s.conditions).is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
                if ok {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), established)
            .await
            .unwrap_or_else(|_| panic!("the CRD {name} is not established after 60 s"));
    }

    let dry_run = PostParams {
        dry_run: true,
        field_manager: None,
    };
    let experiment: Value = serde_saphyr::from_str(EXAMPLE).unwrap();
    let namespace = "default";
    let experiments = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kubeflow.org", "v1beta1", "Experiment"),
            "experiments",
        ),
    );
    let mut object: DynamicObject = serde_json::from_value(experiment).unwrap();
    object.metadata.namespace = Some(namespace.into());
    experiments
        .create(&dry_run, &object)
        .await
        .expect("the apiserver accepts Katib's example against the generated schema");

    let checked = spec::check(EXAMPLE).unwrap();
    let job = first_batch_workload(&checked, 0, &ClusterSettings::default()).unwrap();
    let jobs = Api::<DynamicObject>::namespaced_with(
        client,
        namespace,
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("batch", "v1", "Job"), "jobs"),
    );
    let mut job: DynamicObject = serde_json::from_value(job).unwrap();
    job.metadata.namespace = Some(namespace.into());
    jobs.create(&dry_run, &job)
        .await
        .expect("the apiserver accepts the rendered Job with its native sidecar");
}
