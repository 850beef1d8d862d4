//! Trials as Kubernetes workloads: what the controller creates for a trial, and how it reads the
//! workload's status back.
//!
//! Everything here is pure: objects are `serde_json::Value`s, so the decisions (what the trial's
//! Job looks like, whether it succeeded) are unit-tested without a cluster and shared by the
//! controller and `sextant render`. The shapes follow `notes/k8s-design.md`, the contract with the
//! `sextant-collector` sidecar: [`render`] adds the collector to the trial's pod template(s),
//! [`conditions`] evaluates Katib's success and failure conditions against the workload.

pub mod collector_rbac;
pub mod conditions;
pub mod render;
pub mod runtime;

pub use collector_rbac::ensure_collector_rbac;
pub use conditions::{Conditions, WorkloadPhase, WorkloadStatus, workload_outcome};
pub use render::{RenderError, render_workload};
pub use runtime::KubernetesRuntime;

/// The API of the controller's Service as seen from trial pods (`sextant` Service, namespace
/// `sextant-system`, port 6789: the design's names).
pub const DEFAULT_ENDPOINT: &str = "http://sextant.sextant-system.svc:6789";

/// The image that holds `/usr/local/bin/sextant-collector` (the release image of this version).
pub const DEFAULT_COLLECTOR_IMAGE: &str = "ghcr.io/sextant-tuning/sextant:0.1.0";

/// The collector's path inside [`DEFAULT_COLLECTOR_IMAGE`].
pub const COLLECTOR_COMMAND: &str = "/usr/local/bin/sextant-collector";

/// The ServiceAccount the controller maintains in every namespace that runs trials, bound to a
/// Role allowing `get` on `pods` and `pods/log` (what the sidecar needs to read the primary
/// container's log).
pub const COLLECTOR_SERVICE_ACCOUNT: &str = "sextant-collector";

/// Where trials run and how they reach Sextant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Sextant's API as trial pods reach it (`SEXTANT_ENDPOINT`).
    pub endpoint: String,
    /// The image of the collector sidecar.
    pub collector_image: String,
    /// The ServiceAccount given to trial pods that get a sidecar and name none themselves.
    pub collector_service_account: String,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            collector_image: DEFAULT_COLLECTOR_IMAGE.to_string(),
            collector_service_account: COLLECTOR_SERVICE_ACCOUNT.to_string(),
        }
    }
}
