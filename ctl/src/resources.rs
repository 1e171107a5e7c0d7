//! The kinds tkctl knows, by every name kubectl accepts for them (plural, singular, short):
//! the apiserver's own catalog.

pub use tinykube_machinery::kinds::{lookup, Kind, ALL};

/// What `get all` lists, in kubectl's order.
pub fn all() -> Vec<&'static Kind> {
    ["pods", "services", "deployments", "replicasets"]
        .iter()
        .filter_map(|p| lookup(p))
        .collect()
}
