//! The metrics sidecar's identity in a namespace that runs trials: the ServiceAccount
//! `sextant-collector`, a Role allowing `get` on `pods` and `pods/log`, and the RoleBinding between
//! them. The controller applies these before it starts an experiment's trials in a namespace
//! (server-side apply, so a changed or deleted object is brought back), and `deploy/collector-rbac.yaml`
//! is the same three objects for the `kubeflow` namespace (a test keeps them equal).

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

/// The field manager of the controller's server-side applies.
pub const FIELD_MANAGER: &str = "sextant-controller";

/// The three objects, in the order they are applied.
pub fn collector_rbac_objects(namespace: &str, service_account: &str) -> Vec<Value> {
    let labels = json!({
        "app.kubernetes.io/name": "sextant",
        "app.kubernetes.io/component": "collector",
    });
    let metadata = |name: &str| json!({"name": name, "namespace": namespace, "labels": labels});
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(service_account),
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(service_account),
            "rules": [
                // Has the training container terminated (and with what exit code)?
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                // Follow the training container's log from its beginning.
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(service_account),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": service_account,
            },
            "subjects": [{
                "kind": "ServiceAccount",
                "name": service_account,
                "namespace": namespace,
            }],
        }),
    ]
}

/// Applies the collector's ServiceAccount, Role and RoleBinding in `namespace`.
pub async fn ensure_collector_rbac(
    client: &kube::Client,
    namespace: &str,
    service_account: &str,
) -> Result<(), String> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for object in collector_rbac_objects(namespace, service_account) {
        let (group, version) = match object["apiVersion"].as_str().unwrap_or_default() {
            "v1" => ("", "v1"),
            _ => ("rbac.authorization.k8s.io", "v1"),
        };
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let plural = format!("{}s", kind.to_ascii_lowercase());
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, &kind),
            &plural,
        );
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
        api.patch(service_account, &params, &Patch::Apply(&object))
            .await
            .map_err(|e| {
                format!("applying the {kind} {namespace}/{service_account} for the metrics collector failed: {e}")
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_objects_are_the_checked_in_template() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/collector-rbac.yaml"),
        )
        .unwrap();
        let shipped: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        assert_eq!(
            shipped,
            collector_rbac_objects("kubeflow", "sextant-collector")
        );
    }
}
