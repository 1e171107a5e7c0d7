//! Nodes: cluster-scoped, registered by kubelets (status included on create), with the STATUS
//! and ROLES columns kubectl shows.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;
use serde_json::{json, Value};
use tinykube_machinery::kinds;

use crate::error::{FieldError, FieldErrors};
use crate::registry::table::{age, join_or, Column};
use crate::registry::validation::{self, push_all, NameRule};
use crate::registry::{Kind, ResourceInfo};

pub static INFO: ResourceInfo = ResourceInfo::of(&kinds::NODE, &["status"], NameRule::Subdomain);

fn valid_cidr(s: &str) -> bool {
    match s.split_once('/') {
        Some((ip, bits)) => {
            let max = if ip.contains(':') { 128 } else { 32 };
            ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= max)
        }
        None => false,
    }
}

pub struct NodeKind;

impl Kind for NodeKind {
    type Obj = Node;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, node: &Node) -> FieldErrors {
        let mut errs = Vec::new();
        let Some(spec) = &node.spec else {
            return errs;
        };
        for (i, c) in spec.pod_cidrs.iter().flatten().enumerate() {
            if !valid_cidr(c) {
                errs.push(FieldError::invalid(
                    format!("spec.podCIDRs[{i}]"),
                    c.as_str(),
                    "must be a valid CIDR",
                ));
            }
        }
        if let Some(c) = spec
            .pod_cidr
            .as_deref()
            .filter(|c| !c.is_empty() && !valid_cidr(c))
        {
            errs.push(FieldError::invalid(
                "spec.podCIDR",
                c,
                "must be a valid CIDR",
            ));
        }
        for (i, t) in spec.taints.iter().flatten().enumerate() {
            let tp = format!("spec.taints[{i}]");
            push_all(
                &mut errs,
                &format!("{tp}.key"),
                &t.key,
                validation::qualified_name(&t.key),
            );
            let valid = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
            if !valid.contains(&t.effect.as_str()) {
                errs.push(FieldError::not_supported(
                    format!("{tp}.effect"),
                    t.effect.as_str(),
                    &valid,
                ));
            }
        }
        errs
    }

    fn prepare_for_update(&self, new: &mut Node, old: &Node) {
        new.status = old.status.clone();
    }

    fn validate_update(&self, new: &Node, old: &Node) -> FieldErrors {
        let mut errs = self.validate(new);
        let cidr = |n: &Node| {
            n.spec
                .as_ref()
                .and_then(|s| s.pod_cidr.clone())
                .filter(|c| !c.is_empty())
        };
        if cidr(old).is_some() && cidr(new) != cidr(old) {
            errs.push(FieldError::forbidden(
                "spec.podCIDR",
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        errs
    }

    fn prepare_for_status_update(&self, new: &mut Node, old: &Node) {
        new.spec = old.spec.clone();
    }

    fn validate_status_update(&self, new: &Node, _old: &Node) -> FieldErrors {
        let mut errs = Vec::new();
        for (i, a) in new
            .status
            .iter()
            .flat_map(|s| s.addresses.iter().flatten())
            .enumerate()
        {
            if a.type_ == "InternalIP" || a.type_ == "ExternalIP" {
                push_all(
                    &mut errs,
                    &format!("status.addresses[{i}].address"),
                    &a.address,
                    validation::ip_address(&a.address),
                );
            }
        }
        errs
    }

    fn field(&self, node: &Node, field: &str) -> Option<String> {
        (field == "spec.unschedulable").then(|| {
            node.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
                .to_string()
        })
    }

    fn supports_field(&self, field: &str) -> bool {
        matches!(field, "metadata.name" | "spec.unschedulable")
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Status", "string", "The status of the node"),
            Column::new("Roles", "string", "The roles of the node"),
            Column::age(),
            Column::new("Version", "string", "Kubelet Version reported by the node."),
            Column::new("Internal-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available.").wide(),
            Column::new("External-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available.").wide(),
            Column::new("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).").wide(),
            Column::new("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).").wide(),
            Column::new("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).").wide(),
        ]
    }

    fn row(&self, node: &Node, now: i64) -> Vec<Value> {
        let status = node.status.clone().unwrap_or_default();
        let mut state: Vec<String> = Vec::new();
        if let Some(c) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
        {
            state.push(if c.status == "True" {
                "Ready".into()
            } else {
                "NotReady".into()
            });
        }
        if state.is_empty() {
            state.push("Unknown".into());
        }
        if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            state.push("SchedulingDisabled".into());
        }
        let mut roles = BTreeSet::new();
        for (k, v) in node.metadata.labels.iter().flatten() {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" && !v.is_empty() {
                roles.insert(v.clone());
            }
        }
        let address = |ty: &str| {
            status
                .addresses
                .iter()
                .flatten()
                .find(|a| a.type_ == ty)
                .map(|a| a.address.clone())
                .unwrap_or_else(|| "<none>".into())
        };
        let info = status.node_info.clone().unwrap_or_default();
        let unknown = |s: String| {
            if s.is_empty() {
                "<unknown>".to_string()
            } else {
                s
            }
        };
        vec![
            json!(node.metadata.name.clone().unwrap_or_default()),
            json!(state.join(",")),
            json!(join_or(roles, "<none>")),
            age(node.metadata.creation_timestamp.as_ref(), now),
            json!(info.kubelet_version),
            json!(address("InternalIP")),
            json!(address("ExternalIP")),
            json!(unknown(info.os_image)),
            json!(unknown(info.kernel_version)),
            json!(unknown(info.container_runtime_version)),
        ]
    }
}
