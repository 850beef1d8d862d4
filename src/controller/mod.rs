//! The backend-agnostic controller: pure policy ([`policy`], [`metrics`]) and the loop that applies
//! it ([`driver`]); [`kube_status`] translates its state into the Katib status of the custom
//! resources on Kubernetes, [`kube_controller`] and [`kube_trials`] reconcile them, [`leader`] keeps
//! a second controller replica idle.

pub mod driver;
pub mod kube_controller;
#[cfg(test)]
mod kube_mock;
pub mod kube_status;
pub mod kube_trials;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod resume;
pub mod supervisor;
