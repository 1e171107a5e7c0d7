//! End-to-end test framework (a node in its own network namespace) lands with the kubelet.
