//! tinykube-kubelet: the node agent.

pub mod image;
pub mod network;
pub mod node;
pub mod runtime;
