//! One module per kind: its discovery entry (`INFO`) and its strategy (`impl Kind`).

pub mod configmap;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod event;
pub mod job;
pub mod lease;
pub mod namespace;
pub mod node;
pub mod pod;
pub mod rbac;
pub mod replicaset;
pub mod secret;
pub mod service;
pub mod serviceaccount;
mod workload;
