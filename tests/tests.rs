//! Integration tests: the real `sextant` binary, real child processes, a real sled directory, and
//! a fake Kubernetes apiserver for the kube-rs client and controller.

mod fixture;

mod collector;
mod controller_binary;
mod controller_e2e;
mod digits;
mod early_stopping;
mod fake_apiserver;
mod gpu;
mod kubernetes_runtime;
mod leader_election;
mod manifests;
mod real_cluster;
mod resume;
mod run;
mod serve;
mod validate;
