//! Kubernetes' value rules, written once for the apiserver, the kubelet, the proxy and tkctl
//! (the part of `k8s.io/apimachinery` and `k8s.io/kubernetes/pkg/...` utilities they share):
//! resource quantities, Go durations and human ages, pod-template equality, the user a client
//! certificate names, the node settings a daemon changes and gives back, and the TLS verifier
//! for peers whose certificates nobody signs for us.
//!
//! Pure functions with table tests taken from Kubernetes' documented examples; nothing here
//! talks to the network or the API.

pub mod cert;
pub mod cidr;
pub mod duration;
pub mod kinds;
pub mod quantity;
pub mod sysctl;
pub mod template;
pub mod tls;

pub use quantity::Quantity;
