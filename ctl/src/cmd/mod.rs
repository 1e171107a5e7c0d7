//! The verbs, one file each (`label` also does `annotate`, `apply` also `create`). A verb
//! uses the client and the support modules; no verb uses another.

pub mod api_resources;
pub mod apply;
pub mod cluster_info;
pub mod completion;
pub mod config;
pub mod delete;
pub mod describe;
pub mod exec;
pub mod expose;
pub mod get;
pub mod image;
pub mod ip;
pub mod label;
pub mod logs;
pub mod port_forward;
pub mod rollout;
pub mod run;
pub mod scale;
pub mod set;
pub mod version;
