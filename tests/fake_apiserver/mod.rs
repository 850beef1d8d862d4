//! A small in-process Kubernetes apiserver for the controller's end-to-end tests: real HTTP on
//! `127.0.0.1`, objects in memory, and the REST semantics kube-rs relies on, so a real
//! `kube::Client`, `kube::runtime::watcher` and `kube::runtime::Controller` run against it
//! unchanged.
//!
//! No real apiserver can be had here (no binary ships one; `envtest` needs Go and downloads), and
//! tower-test mocks only check single calls, so the whole controller loop needs this.
//!
//! Served (namespaced kinds in [`store::RESOURCES`]: Katib's Experiment/Trial/Suggestion, Job,
//! Pod, Secret, ConfigMap, ServiceAccount, Role, RoleBinding, Lease, core and events.k8s.io
//! Event): list (label and field selectors), watch (from a resourceVersion, from now, or with
//! `sendInitialEvents` and the closing bookmark), get, create (with `generateName`), replace,
//! merge / strategic (as merge) / JSON / apply (as merge) patches on the object and on `/status`,
//! delete (finalizers, owner-reference cascade, orphaning, preconditions), and `Status` error
//! bodies. See [`store`] for the exact rules.
//!
//! Not served: discovery (`/api`, `/apis`; typed `Api<K>` and `ApiResource` never need it),
//! cluster-scoped kinds, pagination (every list is one page), `dryRun`, `managedFields`,
//! admission (defaults, validation against the CRD schema), subresources other than `status`,
//! pod logs, and nothing runs workloads: the test plays the Job controller with
//! [`FakeApiServer::set_job_condition`] and [`FakeApiServer::update`].
//!
//! ```ignore
//! let fake = FakeApiServer::start().await;
//! let client = fake.client();                       // default namespace "default"
//! // ... run the controller with `client`, then act as the cluster:
//! fake.set_job_condition("default", "trial-1", "Complete");
//! let exp: ExperimentResource = fake.get("default", "exp").unwrap();
//! ```

// Helpers for the controller's integration test, which not every one of them serves yet.
#![allow(dead_code)]

mod http;
mod selector;
mod store;
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use store::{ResourceId, Store};

/// The fake apiserver, serving until dropped.
pub struct FakeApiServer {
    store: Arc<Mutex<Store>>,
    address: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeApiServer {
    /// Starts serving on a free port of 127.0.0.1 (needs a Tokio runtime).
    pub async fn start() -> Self {
        let store = Arc::new(Mutex::new(Store::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener
            .local_addr()
            .expect("a bound socket has an address");
        let app = http::router(store.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake apiserver serves");
        });
        FakeApiServer {
            store,
            address,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A kube client for the fake: plain HTTP, no credentials, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        let url = self.url().parse().expect("the fake's URL parses");
        kube::Client::try_from(kube::Config::new(url)).expect("a client for plain HTTP builds")
    }

    /// The stored object, typed (`None` when absent).
    pub fn get<K>(&self, namespace: &str, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let object = self.store().get(resource_of::<K>(), namespace, name).ok()?;
        Some(serde_json::from_value(object).expect("a stored object reads as its kind"))
    }

    /// The stored objects of a kind in a namespace, by name.
    pub fn list<K>(&self, namespace: &str) -> Vec<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let everything = selector::Selector::default();
        let scope = store::Scope {
            resource: resource_of::<K>(),
            namespace: Some(namespace),
            labels: &everything,
            fields: &everything,
        };
        let (items, _) = self.store().list(&scope);
        items
            .into_iter()
            .map(|o| serde_json::from_value(o).expect("a stored object reads as its kind"))
            .collect()
    }

    /// Changes a stored object as the cluster would (status included): a new resourceVersion
    /// and a MODIFIED event, or a completed delete when the last finalizer goes. Panics when the
    /// object is absent.
    pub fn update<K>(&self, namespace: &str, name: &str, change: impl FnOnce(&mut Value)) -> Value
    where
        K: Resource<DynamicType = ()>,
    {
        self.store()
            .mutate(resource_of::<K>(), namespace, name, change)
            .unwrap_or_else(|e| panic!("update {namespace}/{name}: {}", e.message))
    }

    /// Plays the Job controller: `Complete` marks the Job succeeded (`succeeded: 1`,
    /// `completionTime`, conditions `SuccessCriteriaMet` and `Complete`, as Kubernetes 1.31+
    /// writes them), `Failed` marks it failed (`failed: 1`, `FailureTarget` and `Failed`, reason
    /// `BackoffLimitExceeded`); any other type is added as a `True` condition.
    pub fn set_job_condition(&self, namespace: &str, name: &str, condition_type: &str) {
        use k8s_openapi::api::batch::v1::Job;
        let now = store::now();
        let condition = |t: &str, reason: &str| {
            json!({
                "type": t, "status": "True", "reason": reason, "message": "",
                "lastProbeTime": now, "lastTransitionTime": now,
            })
        };
        self.update::<Job>(namespace, name, |job| {
            let status = &mut job["status"];
            if status.get("startTime").is_none() {
                status["startTime"] = json!(now);
            }
            status["active"] = json!(0);
            status["ready"] = json!(0);
            let new_conditions = match condition_type {
                "Complete" => {
                    status["succeeded"] = json!(1);
                    status["completionTime"] = json!(now);
                    vec![
                        condition("SuccessCriteriaMet", "CompletionsReached"),
                        condition("Complete", "CompletionsReached"),
                    ]
                }
                "Failed" => {
                    status["failed"] = json!(1);
                    vec![
                        condition("FailureTarget", "BackoffLimitExceeded"),
                        condition("Failed", "BackoffLimitExceeded"),
                    ]
                }
                other => vec![condition(other, "")],
            };
            let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
            status["conditions"] = json!([conditions, new_conditions].concat());
        });
    }

    /// `METHOD path?query` of every request so far, oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.store().requests.clone()
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().expect("the fake's store is not poisoned")
    }
}

/// The fake's resource for a kube type; panics for a kind the fake does not serve.
fn resource_of<K: Resource<DynamicType = ()>>() -> ResourceId {
    let (group, version, plural) = (K::group(&()), K::version(&()), K::plural(&()));
    store::resource_id(&group, &version, &plural)
        .unwrap_or_else(|| panic!("the fake apiserver does not serve {group}/{version}/{plural}"))
}
