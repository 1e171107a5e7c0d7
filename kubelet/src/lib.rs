//! tinykube-kubelet: the node agent.

pub mod daemon;
pub mod events;
pub mod image;
pub mod kubelet;
pub mod lifecycle;
pub mod logs;
pub mod network;
pub mod node;
pub mod objects;
pub mod prober;
pub mod runtime;
pub mod server;
pub mod status;
pub mod volumes;
