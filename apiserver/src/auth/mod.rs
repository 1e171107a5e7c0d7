//! Authentication (client certificates, bearer tokens), authorization, and the node's PKI.

pub mod authn;
pub mod authz;
pub mod pki;
pub mod review;
