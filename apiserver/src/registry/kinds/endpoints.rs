//! Endpoints: the addresses behind a service (written by the endpoints controller, or by users for
//! services without a selector).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Endpoints;
use serde_json::{json, Value};
use tinykube_machinery::kinds;

use crate::error::{FieldError, FieldErrors};
use crate::registry::table::{age, Column};
use crate::registry::validation::{self, push_all, NameRule};
use crate::registry::{Kind, ResourceInfo};

pub static INFO: ResourceInfo = ResourceInfo::of(&kinds::ENDPOINTS, &[], NameRule::Subdomain);

/// Endpoint addresses must be routable: kube-proxy cannot send traffic to loopback or link-local.
pub fn endpoint_ip(field: &str, ip: &str, errs: &mut FieldErrors) {
    match ip.parse::<IpAddr>() {
        Err(_) => push_all(errs, field, ip, validation::ip_address(ip)),
        Ok(a) if a.is_loopback() => errs.push(FieldError::invalid(
            field,
            ip,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        )),
        Ok(IpAddr::V4(v4)) if v4.is_link_local() => errs.push(FieldError::invalid(
            field,
            ip,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        )),
        Ok(a) if a.is_unspecified() || a.is_multicast() => errs.push(FieldError::invalid(
            field,
            ip,
            "may not be unspecified or multicast",
        )),
        Ok(_) => {}
    }
}

pub struct EndpointsKind;

impl Kind for EndpointsKind {
    type Obj = Endpoints;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, ep: &Endpoints) -> FieldErrors {
        let mut errs = Vec::new();
        for (i, ss) in ep.subsets.iter().flatten().enumerate() {
            let sp = format!("subsets[{i}]");
            for (j, a) in ss.addresses.iter().flatten().enumerate() {
                endpoint_ip(&format!("{sp}.addresses[{j}].ip"), &a.ip, &mut errs);
            }
            for (j, a) in ss.not_ready_addresses.iter().flatten().enumerate() {
                endpoint_ip(&format!("{sp}.notReadyAddresses[{j}].ip"), &a.ip, &mut errs);
            }
            let ports = ss.ports.as_deref().unwrap_or_default();
            for (j, p) in ports.iter().enumerate() {
                let pp = format!("{sp}.ports[{j}]");
                match p.name.as_deref().filter(|n| !n.is_empty()) {
                    Some(n) => push_all(
                        &mut errs,
                        &format!("{pp}.name"),
                        n,
                        validation::dns1123_label(n),
                    ),
                    None if ports.len() > 1 => {
                        errs.push(FieldError::required(format!("{pp}.name"), ""))
                    }
                    None => {}
                }
                validation::port_number(&format!("{pp}.port"), p.port, &mut errs);
                let proto = p.protocol.as_deref().unwrap_or("TCP");
                if !["TCP", "UDP", "SCTP"].contains(&proto) {
                    errs.push(FieldError::not_supported(
                        format!("{pp}.protocol"),
                        proto,
                        &["SCTP", "TCP", "UDP"],
                    ));
                }
            }
        }
        errs
    }

    fn apply_defaults(&self, ep: &mut Endpoints) {
        for ss in ep.subsets.iter_mut().flatten() {
            for p in ss.ports.iter_mut().flatten() {
                p.protocol.get_or_insert_with(|| "TCP".into());
            }
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "Endpoints",
                "string",
                "Endpoints is the list of endpoints in the service.",
            ),
            Column::age(),
        ]
    }

    fn row(&self, ep: &Endpoints, now: i64) -> Vec<Value> {
        vec![
            json!(ep.metadata.name.clone().unwrap_or_default()),
            json!(format_endpoints(ep)),
            age(ep.metadata.creation_timestamp.as_ref(), now),
        ]
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }
}

/// `10.244.0.5:8080,10.244.0.6:8080 + 2 more...`, as kubectl prints ready endpoints.
pub fn format_endpoints(ep: &Endpoints) -> String {
    const MAX: usize = 3;
    let Some(subsets) = ep.subsets.as_ref().filter(|s| !s.is_empty()) else {
        return "<none>".into();
    };
    let mut list = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addrs = ss.addresses.as_deref().unwrap_or_default();
        match ss.ports.as_deref() {
            None | Some([]) => {
                count += addrs.len();
                for a in addrs {
                    if list.len() < MAX {
                        list.push(a.ip.clone());
                    }
                }
            }
            Some(ports) => {
                for p in ports {
                    count += addrs.len();
                    for a in addrs {
                        if list.len() < MAX {
                            let host = if a.ip.contains(':') {
                                format!("[{}]", a.ip)
                            } else {
                                a.ip.clone()
                            };
                            list.push(format!("{host}:{}", p.port));
                        }
                    }
                }
            }
        }
    }
    let joined = list.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}
