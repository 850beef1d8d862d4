//! The fake apiserver's memory: objects as JSON, one global resourceVersion counter (as etcd's
//! revision), and a log of every change for watches to replay from a resourceVersion.
//!
//! Everything here is synchronous and runs under one mutex; the HTTP layer ([`super::http`]) only
//! parses requests and streams watch events. The semantics follow the Kubernetes API conventions
//! closely enough for kube-rs clients, watchers, finalizers and controllers:
//!
//! - every write bumps the counter, stamps `metadata.resourceVersion` and records a change;
//!   a write that changes nothing is not a write (no new resourceVersion, no event), as in
//!   Kubernetes, so a controller that patches an unchanged status does not wake itself up;
//! - `metadata.generation` grows when anything outside `metadata` and `status` changes;
//! - on kinds with a status subresource, writes to the object keep the stored `status` and writes
//!   to `/status` keep everything but `status`;
//! - deleting an object with finalizers only sets `deletionTimestamp`; removing its last finalizer
//!   deletes it; a deleted owner's dependents are deleted (background propagation) or orphaned.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::selector::Selector;

/// One kind the fake serves.
#[derive(Debug)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// The URL segment.
    pub plural: &'static str,
    /// The `kind` of its objects.
    pub kind: &'static str,
    /// Whether it has a `/status` subresource.
    pub status: bool,
}

impl ResourceType {
    /// `apiVersion` of its objects: `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group`, as Kubernetes names a resource in its error messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// The kinds the controller reads and writes. All are namespaced; cluster-wide list and watch
/// (`Api::all`) are served too.
pub const RESOURCES: &[ResourceType] = &[
    ResourceType {
        group: "kubeflow.org",
        version: "v1beta1",
        plural: "experiments",
        kind: "Experiment",
        status: true,
    },
    ResourceType {
        group: "kubeflow.org",
        version: "v1beta1",
        plural: "trials",
        kind: "Trial",
        status: true,
    },
    ResourceType {
        group: "kubeflow.org",
        version: "v1beta1",
        plural: "suggestions",
        kind: "Suggestion",
        status: true,
    },
    ResourceType {
        group: "batch",
        version: "v1",
        plural: "jobs",
        kind: "Job",
        status: true,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        status: true,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        status: false,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        status: false,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        status: false,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        status: false,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        kind: "Role",
        status: false,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        kind: "RoleBinding",
        status: false,
    },
    ResourceType {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        status: false,
    },
    ResourceType {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        kind: "Event",
        status: false,
    },
];

/// Index into [`RESOURCES`].
pub type ResourceId = usize;

/// The resource served at `group/version/plural`, if any.
pub fn resource_id(group: &str, version: &str, plural: &str) -> Option<ResourceId> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Watch event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One write, as watches see it.
#[derive(Debug)]
pub struct Change {
    pub resource_version: u64,
    pub resource: ResourceId,
    pub namespace: String,
    pub change_type: ChangeType,
    /// The object after the change (for a delete, the last state, with the delete's
    /// resourceVersion).
    pub object: Value,
    /// The object before a modification: a label-selected watch turns a change that moves an
    /// object into or out of its selection into ADDED or DELETED.
    pub previous: Option<Value>,
}

/// A Kubernetes `Status` failure.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        ApiError {
            code,
            reason,
            message,
            details: json!({}),
        }
    }

    fn about(mut self, resource: &ResourceType, name: &str) -> Self {
        self.details = json!({ "name": name, "group": resource.group, "kind": resource.plural });
        self
    }

    pub fn not_found(resource: &ResourceType, name: &str) -> Self {
        let message = format!("{} \"{name}\" not found", resource.group_resource());
        ApiError::new(404, "NotFound", message).about(resource, name)
    }

    pub fn already_exists(resource: &ResourceType, name: &str) -> Self {
        let message = format!("{} \"{name}\" already exists", resource.group_resource());
        ApiError::new(409, "AlreadyExists", message).about(resource, name)
    }

    pub fn conflict(resource: &ResourceType, name: &str, why: &str) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            resource.group_resource()
        );
        ApiError::new(409, "Conflict", message).about(resource, name)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message.into())
    }

    pub fn invalid(resource: &ResourceType, name: &str, why: impl Into<String>) -> Self {
        let message = format!(
            "{} \"{name}\" is invalid: {}",
            resource.group_resource(),
            why.into()
        );
        ApiError::new(422, "Invalid", message).about(resource, name)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {content_type}"
            ),
        )
    }

    pub fn unknown_resource() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
        )
    }

    /// The `Status` object Kubernetes sends with an error.
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        })
    }
}

/// How a patch body is read (from its content type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386 (`application/merge-patch+json`).
    Merge,
    /// `application/strategic-merge-patch+json`, approximated as a merge patch: lists are
    /// replaced, not merged by key.
    Strategic,
    /// RFC 6902 (`application/json-patch+json`), used by `kube::runtime::finalizer`.
    Json,
    /// Server-side apply (`application/apply-patch+yaml`), approximated as a merge patch of the
    /// applied fields that creates a missing object. Fields a manager stops applying are not
    /// removed and there are no field-ownership conflicts.
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// `DeleteOptions`' `propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Delete dependents (`Background`, the default; `Foreground` is treated the same).
    Cascade,
    /// Remove the owner reference from dependents.
    Orphan,
}

/// The parts of `DeleteOptions` the fake honours.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteOptions {
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

impl DeleteOptions {
    /// Reads a `DeleteOptions` body (empty means defaults).
    pub fn from_body(body: &[u8]) -> Result<Self, ApiError> {
        let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("DeleteOptions: {e}")))?
        };
        let propagation = match value["propagationPolicy"].as_str() {
            Some("Orphan") => Propagation::Orphan,
            _ => Propagation::Cascade,
        };
        let text = |v: &Value| v.as_str().map(str::to_string);
        Ok(DeleteOptions {
            propagation,
            precondition_uid: text(&value["preconditions"]["uid"]),
            precondition_resource_version: text(&value["preconditions"]["resourceVersion"]),
        })
    }
}

impl Default for DeleteOptions {
    fn default() -> Self {
        DeleteOptions {
            propagation: Propagation::Cascade,
            precondition_uid: None,
            precondition_resource_version: None,
        }
    }
}

/// Which part of an object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The object: on kinds with a status subresource, `status` is kept as stored.
    Object,
    /// The `/status` subresource: only `status` changes.
    Status,
    /// The test acting as the cluster (kubelet, job controller): everything changes.
    Everything,
}

type Key = (ResourceId, String, String);

/// Change log capacity for live watchers; a watcher that falls further behind is cut off and
/// re-watches from its last resourceVersion (the log itself is kept whole).
const WATCH_CHANNEL_CAPACITY: usize = 4096;

/// Objects, the resourceVersion counter and the change log.
pub struct Store {
    resource_version: u64,
    uids: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<Arc<Change>>,
    changes: broadcast::Sender<Arc<Change>>,
    /// `METHOD path?query` of every request, oldest first.
    pub requests: Vec<String>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            // As etcd's revision: never 0, which a watch would read as "from any version".
            resource_version: 1,
            uids: 0,
            objects: BTreeMap::new(),
            log: Vec::new(),
            changes: broadcast::channel(WATCH_CHANNEL_CAPACITY).0,
            requests: Vec::new(),
        }
    }
}

/// What a watch sends before live changes.
pub enum WatchStart {
    /// `resourceVersion` unset or `0`: ADDED for every current object, then changes.
    Now,
    /// `sendInitialEvents=true`: ADDED for every current object, a BOOKMARK annotated
    /// `k8s.io/initial-events-end`, then changes.
    InitialEvents,
    /// `resourceVersion=N`: every change after N.
    After(u64),
}

/// Which objects a list or watch covers.
pub struct Scope<'a> {
    pub resource: ResourceId,
    /// `None` for all namespaces.
    pub namespace: Option<&'a str>,
    pub labels: &'a Selector,
    pub fields: &'a Selector,
}

impl Scope<'_> {
    pub fn covers(&self, resource: ResourceId, namespace: &str, object: &Value) -> bool {
        resource == self.resource
            && self.namespace.is_none_or(|ns| ns == namespace)
            && self.labels.matches_labels(&object["metadata"]["labels"])
            && self.fields.matches_fields(object)
    }
}

impl Store {
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    pub fn get(
        &self,
        resource: ResourceId,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.objects
            .get(&(resource, namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&RESOURCES[resource], name))
    }

    /// The objects in scope, by namespace then name, and the resourceVersion of the list.
    pub fn list(&self, scope: &Scope) -> (Vec<Value>, u64) {
        let items = self
            .objects
            .iter()
            .filter(|((resource, namespace, _), object)| scope.covers(*resource, namespace, object))
            .map(|(_, object)| object.clone())
            .collect();
        (items, self.resource_version)
    }

    /// The events a new watch starts with, and a receiver for the changes after them. Both come
    /// from under the store's lock, so nothing is missed or sent twice.
    pub fn watch(
        &self,
        scope: &Scope,
        start: WatchStart,
    ) -> (Vec<(ChangeType, Value)>, broadcast::Receiver<Arc<Change>>) {
        let receiver = self.changes.subscribe();
        let backlog = match start {
            // The HTTP layer follows initial events with their bookmark.
            WatchStart::Now | WatchStart::InitialEvents => self
                .list(scope)
                .0
                .into_iter()
                .map(|o| (ChangeType::Added, o))
                .collect(),
            WatchStart::After(after) => self
                .log
                .iter()
                .filter(|c| c.resource_version > after)
                .filter_map(|c| scoped_event(scope, c))
                .collect(),
        };
        (backlog, receiver)
    }

    pub fn create(
        &mut self,
        resource: ResourceId,
        namespace: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let rt = &RESOURCES[resource];
        let mut object = body;
        check_type(rt, &mut object)?;
        let metadata = metadata_mut(&mut object)?;
        match metadata.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != namespace => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({ns}) does not match the namespace sent on the request ({namespace})"
                )));
            }
            _ => {}
        }
        let mut name = metadata
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            let prefix = metadata
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            name = format!("{prefix}{}", generated_suffix(self.uids));
        }
        let key = (resource, namespace.to_string(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(rt, &name));
        }
        self.uids += 1;
        self.resource_version += 1;
        metadata.insert("name".into(), json!(name));
        metadata.insert("namespace".into(), json!(namespace));
        metadata.insert(
            "uid".into(),
            json!(format!("00000000-0000-4000-8000-{:012x}", self.uids)),
        );
        metadata.insert(
            "resourceVersion".into(),
            json!(self.resource_version.to_string()),
        );
        metadata.insert("creationTimestamp".into(), json!(now()));
        metadata.insert("generation".into(), json!(1));
        for server_owned in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
        ] {
            metadata.remove(server_owned);
        }
        if rt.status {
            // Status is written through the subresource only.
            if let Some(fields) = object.as_object_mut() {
                fields.remove("status");
            }
        }
        self.objects.insert(key, object.clone());
        self.record(resource, namespace, ChangeType::Added, object.clone(), None);
        Ok(object)
    }

    /// PUT: replaces the object (or its status), failing with Conflict when the body carries a
    /// resourceVersion that is not the stored one. A body without one replaces unconditionally
    /// (Kubernetes refuses that for custom resources; kube-rs always sends one).
    pub fn replace(
        &mut self,
        resource: ResourceId,
        namespace: &str,
        name: &str,
        body: Value,
        target: Target,
    ) -> Result<Value, ApiError> {
        let rt = &RESOURCES[resource];
        let old = self.get(resource, namespace, name)?;
        let mut new = body;
        check_type(rt, &mut new)?;
        check_resource_version(rt, name, &old, &new)?;
        self.update(resource, namespace, name, old, new, target)
    }

    /// PATCH: applies the patch to the stored object (a server-side apply to a missing object
    /// creates it).
    pub fn patch(
        &mut self,
        resource: ResourceId,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        patch: &[u8],
        target: Target,
    ) -> Result<Value, ApiError> {
        let rt = &RESOURCES[resource];
        let parse = |bytes: &[u8]| -> Result<Value, ApiError> {
            serde_json::from_slice(bytes)
                .map_err(|e| ApiError::bad_request(format!("patch body: {e}")))
        };
        let old = match self.get(resource, namespace, name) {
            Ok(old) => old,
            Err(_) if patch_type == PatchType::Apply && target == Target::Object => {
                let mut body = parse(patch)?;
                metadata_mut(&mut body)?.insert("name".into(), json!(name));
                return self.create(resource, namespace, body);
            }
            Err(missing) => return Err(missing),
        };
        let mut new = old.clone();
        match patch_type {
            PatchType::Merge | PatchType::Strategic | PatchType::Apply => {
                let patch = parse(patch)?;
                if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
                    && Some(rv) != old["metadata"]["resourceVersion"].as_str()
                {
                    return Err(ApiError::conflict(rt, name, MODIFIED));
                }
                if patch_type == PatchType::Apply {
                    check_type(rt, &mut patch.clone())?;
                }
                json_patch::merge(&mut new, &patch);
            }
            PatchType::Json => {
                let mut operations: Vec<Value> = serde_json::from_slice(patch)
                    .map_err(|e| ApiError::bad_request(format!("json patch: {e}")))?;
                // The apiserver's JSON patch (evanphx/json-patch) passes `test` of `null` on a
                // missing path; kube's finalizer helper relies on it.
                operations.retain(|op| {
                    !(op["op"] == "test"
                        && op["value"].is_null()
                        && op["path"]
                            .as_str()
                            .is_some_and(|p| new.pointer(p).is_none()))
                });
                let operations: json_patch::Patch =
                    serde_json::from_value(Value::Array(operations))
                        .map_err(|e| ApiError::bad_request(format!("json patch: {e}")))?;
                json_patch::patch(&mut new, &operations)
                    .map_err(|e| ApiError::invalid(rt, name, e.to_string()))?;
            }
        }
        self.update(resource, namespace, name, old, new, target)
    }

    /// DELETE: an object with finalizers is only marked (`deletionTimestamp`).
    pub fn delete(
        &mut self,
        resource: ResourceId,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let rt = &RESOURCES[resource];
        let old = self.get(resource, namespace, name)?;
        let metadata = &old["metadata"];
        if let Some(uid) = &options.precondition_uid
            && metadata["uid"].as_str() != Some(uid)
        {
            let why = format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                metadata["uid"].as_str().unwrap_or("")
            );
            return Err(ApiError::conflict(rt, name, &why));
        }
        if let Some(rv) = &options.precondition_resource_version
            && metadata["resourceVersion"].as_str() != Some(rv)
        {
            return Err(ApiError::conflict(rt, name, MODIFIED));
        }
        if has_finalizers(&old) {
            if metadata.get("deletionTimestamp").is_some() {
                return Ok(old);
            }
            let mut marked = old.clone();
            let fields = metadata_mut(&mut marked)?;
            fields.insert("deletionTimestamp".into(), json!(now()));
            fields.insert("deletionGracePeriodSeconds".into(), json!(0));
            return self.update(resource, namespace, name, old, marked, Target::Everything);
        }
        Ok(self.remove(resource, namespace, name, options.propagation))
    }

    /// The test acting as the cluster: changes anything in the object, status included.
    pub fn mutate(
        &mut self,
        resource: ResourceId,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let old = self.get(resource, namespace, name)?;
        let mut new = old.clone();
        change(&mut new);
        self.update(resource, namespace, name, old, new, Target::Everything)
    }

    /// The write path shared by replace, patch and the test's own changes.
    fn update(
        &mut self,
        resource: ResourceId,
        namespace: &str,
        name: &str,
        old: Value,
        candidate: Value,
        target: Target,
    ) -> Result<Value, ApiError> {
        let rt = &RESOURCES[resource];
        let mut new = match target {
            Target::Object if rt.status => with_field(candidate, "status", old.get("status")),
            Target::Status => with_field(old.clone(), "status", candidate.get("status")),
            _ => candidate,
        };
        // Server-owned metadata stays as stored.
        let stored = old["metadata"].as_object().cloned().unwrap_or_default();
        let metadata = metadata_mut(&mut new)?;
        for key in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
        ] {
            match stored.get(key) {
                Some(value) => metadata.insert(key.into(), value.clone()),
                None => metadata.remove(key),
            };
        }
        if target != Target::Everything {
            for key in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
                match stored.get(key) {
                    Some(value) => metadata.insert(key.into(), value.clone()),
                    None => metadata.remove(key),
                };
            }
        }
        if new == old {
            return Ok(old);
        }
        if new["metadata"].get("deletionTimestamp").is_some() && !has_finalizers(&new) {
            // The last finalizer is gone: the delete completes.
            let key = (resource, namespace.to_string(), name.to_string());
            self.objects.insert(key, new);
            return Ok(self.remove(resource, namespace, name, Propagation::Cascade));
        }
        if without_metadata_and_status(&new) != without_metadata_and_status(&old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            metadata_mut(&mut new)?.insert("generation".into(), json!(generation));
        }
        self.resource_version += 1;
        metadata_mut(&mut new)?.insert(
            "resourceVersion".into(),
            json!(self.resource_version.to_string()),
        );
        let key = (resource, namespace.to_string(), name.to_string());
        self.objects.insert(key, new.clone());
        self.record(
            resource,
            namespace,
            ChangeType::Modified,
            new.clone(),
            Some(old),
        );
        Ok(new)
    }

    /// Removes an object now and collects its dependents.
    fn remove(
        &mut self,
        resource: ResourceId,
        namespace: &str,
        name: &str,
        propagation: Propagation,
    ) -> Value {
        let key = (resource, namespace.to_string(), name.to_string());
        let Some(mut object) = self.objects.remove(&key) else {
            return Value::Null;
        };
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.record(
            resource,
            namespace,
            ChangeType::Deleted,
            object.clone(),
            None,
        );
        if let Some(uid) = object["metadata"]["uid"].as_str() {
            self.collect_dependents(namespace, uid, propagation);
        }
        object
    }

    /// The garbage collector, run at once: dependents that name the deleted owner lose that
    /// reference (orphan, or another owner is still alive) or are deleted.
    fn collect_dependents(&mut self, namespace: &str, owner_uid: &str, propagation: Propagation) {
        let live_uids: BTreeSet<String> = self
            .objects
            .values()
            .filter_map(|o| o["metadata"]["uid"].as_str().map(str::to_string))
            .collect();
        let dependents: Vec<Key> = self
            .objects
            .iter()
            .filter(|((_, ns, _), object)| {
                ns == namespace && owner_uids(object).any(|u| u == owner_uid)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for (resource, ns, name) in dependents {
            let Ok(object) = self.get(resource, &ns, &name) else {
                continue; // Deleted by an earlier cascade in this loop.
            };
            let other_owner_alive =
                owner_uids(&object).any(|u| u != owner_uid && live_uids.contains(u));
            if propagation == Propagation::Orphan || other_owner_alive {
                let _ = self.mutate(resource, &ns, &name, |o| {
                    if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
                    }
                });
            } else {
                let _ = self.delete(resource, &ns, &name, &DeleteOptions::default());
            }
        }
    }

    fn record(
        &mut self,
        resource: ResourceId,
        namespace: &str,
        change_type: ChangeType,
        object: Value,
        previous: Option<Value>,
    ) {
        let change = Arc::new(Change {
            resource_version: self.resource_version,
            resource,
            namespace: namespace.to_string(),
            change_type,
            object,
            previous,
        });
        self.log.push(change.clone());
        // No receivers is not an error: nobody is watching.
        let _ = self.changes.send(change);
    }
}

const MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// What a scoped watch sends for a change, if anything: a change that moves an object into a
/// label selection is ADDED, out of it DELETED.
pub fn scoped_event(scope: &Scope, change: &Change) -> Option<(ChangeType, Value)> {
    if change.resource != scope.resource || scope.namespace.is_some_and(|ns| ns != change.namespace)
    {
        return None;
    }
    let now = scope.covers(change.resource, &change.namespace, &change.object);
    let before = change
        .previous
        .as_ref()
        .is_some_and(|p| scope.covers(change.resource, &change.namespace, p));
    let change_type = match (change.change_type, before, now) {
        (ChangeType::Modified, true, true) => ChangeType::Modified,
        (ChangeType::Modified, false, true) => ChangeType::Added,
        (ChangeType::Modified, true, false) => ChangeType::Deleted,
        (ChangeType::Modified, false, false) => return None,
        (other, _, true) => other,
        (_, _, false) => return None,
    };
    Some((change_type, change.object.clone()))
}

/// Fills in `apiVersion` and `kind`, and refuses a body of another kind.
fn check_type(rt: &ResourceType, object: &mut Value) -> Result<(), ApiError> {
    let Some(fields) = object.as_object_mut() else {
        return Err(ApiError::bad_request("the body is not a JSON object"));
    };
    let api_version = rt.api_version();
    for (field, expected) in [("apiVersion", api_version.as_str()), ("kind", rt.kind)] {
        match fields.get(field).and_then(Value::as_str) {
            Some(given) if given != expected => {
                return Err(ApiError::bad_request(format!(
                    "{field} {given} does not match the request's {expected}"
                )));
            }
            _ => {
                fields.insert(field.into(), json!(expected));
            }
        }
    }
    Ok(())
}

fn check_resource_version(
    rt: &ResourceType,
    name: &str,
    old: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    match new["metadata"]["resourceVersion"].as_str() {
        Some(rv) if !rv.is_empty() && Some(rv) != old["metadata"]["resourceVersion"].as_str() => {
            Err(ApiError::conflict(rt, name, MODIFIED))
        }
        _ => Ok(()),
    }
}

fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let fields = object
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body is not a JSON object"))?;
    fields
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata is not an object"))
}

fn with_field(mut object: Value, field: &str, value: Option<&Value>) -> Value {
    if let Some(fields) = object.as_object_mut() {
        match value {
            Some(value) => fields.insert(field.into(), value.clone()),
            None => fields.remove(field),
        };
    }
    object
}

fn without_metadata_and_status(object: &Value) -> Value {
    let mut rest = object.clone();
    if let Some(fields) = rest.as_object_mut() {
        fields.remove("metadata");
        fields.remove("status");
    }
    rest
}

fn has_finalizers(object: &Value) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

/// Five characters from Kubernetes' `generateName` alphabet (no vowels, no confusable digits).
fn generated_suffix(seed: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Now, as Kubernetes writes timestamps (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
