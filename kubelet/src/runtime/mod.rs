//! The container runtime: per-container shims running youki's libcontainer, CRI log files.

pub mod attach;
pub mod cgroups;
pub mod crilog;
pub mod exec;
pub mod pause;
pub mod plan;
pub mod pods;
pub mod sandbox;
pub mod shim;
pub mod spec;
pub mod subpath;
