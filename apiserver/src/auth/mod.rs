//! Authentication (client certificates, bearer tokens), authorization, and the node's PKI.

pub mod authn;
pub mod authz;
pub mod impersonate;
pub mod pki;
pub mod policy;
pub mod rbac;
pub mod review;
pub mod serviceaccount;
