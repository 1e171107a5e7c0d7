//! The describers: each turns an object (and what was fetched beside it) into kubectl's
//! describe text. Pure functions of JSON, so the layouts are tested without a server; the
//! `describe` verb (`cmd/describe.rs`) fetches and calls them.
//!
//! One file per family of kinds, as kubectl's describe.go groups them; `writer` is kubectl's
//! PrefixWriter over the tabwriter, `common` what every describer shares.

mod cluster;
mod common;
mod config;
mod containers;
mod generic;
mod gosort;
mod network;
mod pod;
mod workloads;
mod writer;

use common::*;
use containers::*;
use pod::*;
use writer::*;

pub use cluster::{namespace, node};
pub use common::format_selector;
pub use config::{config_map, secret, service_account};
pub use generic::generic;
pub use network::{endpoints, service};
pub use pod::{pod, pod_template};
pub use workloads::{deployment, replicaset, PodCounts};
pub use writer::{arr, parse_time, st, W};
