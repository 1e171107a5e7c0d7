//! Pod networking: named network namespaces and the CNI runtime that wires them.

pub mod cni;
pub mod masq;
pub mod netns;
