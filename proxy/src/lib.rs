//! tinykube-proxy: Services and EndpointSlices become iptables rules, as kube-proxy's iptables
//! mode makes them — rendered whole by a pure function and applied with one
//! `iptables-restore --noflush` per sync.

pub mod dns;
pub mod iptables;
pub mod model;
pub mod proxier;
pub mod render;
pub mod trace;

#[cfg(test)]
mod tests;
