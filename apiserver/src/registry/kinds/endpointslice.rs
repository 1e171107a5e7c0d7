//! discovery.k8s.io EndpointSlices: what kube-proxy reads to find a service's pods.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};

use super::endpoints::endpoint_ip;
use crate::error::{FieldError, FieldErrors};
use crate::registry::table::{age, join_or, Column};
use crate::registry::validation::{self, push_all, NameRule};
use crate::registry::{Kind, ResourceInfo};

pub static INFO: ResourceInfo = ResourceInfo::of(&kinds::ENDPOINT_SLICE, &[], NameRule::Subdomain);

pub struct EndpointSliceKind;

impl Kind for EndpointSliceKind {
    type Obj = EndpointSlice;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn apply_defaults(&self, s: &mut EndpointSlice) {
        for p in s.ports.iter_mut().flatten() {
            p.protocol.get_or_insert_with(|| "TCP".into());
            p.name.get_or_insert_with(String::new);
        }
    }

    fn validate(&self, s: &EndpointSlice) -> FieldErrors {
        let mut errs = Vec::new();
        let types = ["IPv4", "IPv6", "FQDN"];
        if !types.contains(&s.address_type.as_str()) {
            errs.push(FieldError::not_supported(
                "addressType",
                s.address_type.as_str(),
                &types,
            ));
        }
        if s.endpoints.len() > 1000 {
            errs.push(FieldError::invalid(
                "endpoints",
                s.endpoints.len(),
                "must have at most 1000 items",
            ));
        }
        for (i, e) in s.endpoints.iter().enumerate() {
            let ep = format!("endpoints[{i}]");
            if e.addresses.is_empty() || e.addresses.len() > 100 {
                errs.push(FieldError::invalid(
                    format!("{ep}.addresses"),
                    e.addresses.len(),
                    "must contain between 1 and 100 addresses",
                ));
            }
            for (j, a) in e.addresses.iter().enumerate() {
                let f = format!("{ep}.addresses[{j}]");
                match s.address_type.as_str() {
                    "IPv4" if a.contains(':') => errs.push(FieldError::invalid(
                        f,
                        a.as_str(),
                        "must be an IPv4 address",
                    )),
                    "IPv6" if !a.contains(':') => errs.push(FieldError::invalid(
                        f,
                        a.as_str(),
                        "must be an IPv6 address",
                    )),
                    "IPv4" | "IPv6" => endpoint_ip(&f, a, &mut errs),
                    _ => push_all(&mut errs, &f, a, validation::dns1123_subdomain(a)),
                }
            }
        }
        for (i, p) in s.ports.iter().flatten().enumerate() {
            let pp = format!("ports[{i}]");
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                push_all(
                    &mut errs,
                    &format!("{pp}.name"),
                    n,
                    validation::dns1123_label(n),
                );
            }
            if let Some(port) = p.port {
                validation::port_number(&format!("{pp}.port"), port, &mut errs);
            }
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "AddressType",
                "string",
                "addressType specifies the type of address carried by this EndpointSlice.",
            ),
            Column::new(
                "Ports",
                "string",
                "ports specifies the list of network ports exposed by each endpoint in this slice.",
            ),
            Column::new(
                "Endpoints",
                "string",
                "endpoints is a list of unique endpoints in this slice.",
            ),
            Column::age(),
        ]
    }

    fn row(&self, s: &EndpointSlice, now: i64) -> Vec<Value> {
        let ports = match s.ports.as_deref() {
            None | Some([]) => "<unset>".to_string(),
            Some(ps) => join_or(
                ps.iter().map(|p| {
                    p.port
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "<unset>".into())
                }),
                "<unset>",
            ),
        };
        let addrs: Vec<String> = s
            .endpoints
            .iter()
            .flat_map(|e| e.addresses.iter().cloned())
            .collect();
        let endpoints = if addrs.is_empty() {
            "<unset>".to_string()
        } else if addrs.len() > 3 {
            format!("{} + {} more...", addrs[..3].join(","), addrs.len() - 3)
        } else {
            addrs.join(",")
        };
        vec![
            json!(s.metadata.name.clone().unwrap_or_default()),
            json!(s.address_type),
            json!(ports),
            json!(endpoints),
            age(s.metadata.creation_timestamp.as_ref(), now),
        ]
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }
}
use tinykube_machinery::kinds;
