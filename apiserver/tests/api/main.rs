//! Integration tests: the real tinykube-apiserver binary on a free port with a temporary data
//! dir, driven by kube-rs, raw HTTP and the installed kubectl.

mod alloc;
mod auth;
mod controllers;
mod crud;
mod discovery;
mod durability;
mod errors;
mod fake_kubelet;
mod harness;
mod kubectl;
mod protobuf;
mod python;
mod tables;
mod watch;
