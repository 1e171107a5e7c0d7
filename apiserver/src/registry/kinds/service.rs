//! Services: defaults, validation, and the ClusterIP/NodePort allocation that makes every service
//! address and node port unique.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{LoadBalancerStatus, Service, ServiceSpec, ServiceStatus};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};
use tinykube_machinery::kinds;

use crate::error::{ApiError, ApiResult, FieldError, FieldErrors};
use crate::registry::alloc::{AllocError, IpAllocator, PortAllocator};
use crate::registry::table::{age, join_or, Column};
use crate::registry::validation::{self, push_all, NameRule};
use crate::registry::{Kind, ResourceInfo};

pub static INFO: ResourceInfo = ResourceInfo::of(&kinds::SERVICE, &["status"], NameRule::Dns1035);

const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn service_type(spec: &ServiceSpec) -> &str {
    spec.type_.as_deref().unwrap_or("ClusterIP")
}

fn has_node_ports(spec: &ServiceSpec) -> bool {
    match service_type(spec) {
        "NodePort" => true,
        "LoadBalancer" => spec.allocate_load_balancer_node_ports != Some(false),
        _ => false,
    }
}

fn wants_cluster_ip(spec: &ServiceSpec) -> bool {
    service_type(spec) != "ExternalName" && spec.cluster_ip.as_deref() != Some("None")
}

fn needs_health_check_port(spec: &ServiceSpec) -> bool {
    service_type(spec) == "LoadBalancer" && spec.external_traffic_policy.as_deref() == Some("Local")
}

/// Addresses and ports a service holds in the allocators.
fn held(spec: Option<&ServiceSpec>) -> (Option<Ipv4Addr>, BTreeSet<i32>) {
    let Some(spec) = spec else {
        return (None, BTreeSet::new());
    };
    let ip = spec
        .cluster_ip
        .as_deref()
        .filter(|_| wants_cluster_ip(spec))
        .and_then(|ip| ip.parse().ok());
    let mut ports: BTreeSet<i32> = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.node_port)
        .filter(|p| *p != 0)
        .collect();
    if let Some(h) = spec.health_check_node_port.filter(|h| *h != 0) {
        ports.insert(h);
    }
    (ip, ports)
}

pub struct ServiceKind {
    pub ips: Arc<IpAllocator>,
    pub ports: Arc<PortAllocator>,
}

impl ServiceKind {
    /// Marks what an existing (stored) service holds, at start-up.
    pub fn adopt(&self, svc: &Service) {
        let (ip, ports) = held(svc.spec.as_ref());
        if let Some(ip) = ip {
            if self.ips.allocate(ip).is_err() {
                tracing::warn!(%ip, service = ?svc.metadata.name, "cluster IP held twice or out of range");
            }
        }
        for p in ports {
            if self.ports.allocate(p).is_err() {
                tracing::warn!(port = p, service = ?svc.metadata.name, "node port held twice or out of range");
            }
        }
    }

    fn invalid(svc: &Service, field: &str, value: Value, why: String) -> ApiError {
        let name = svc.metadata.name.clone().unwrap_or_default();
        ApiError::invalid(
            "Service",
            &INFO.target(&name),
            &[FieldError::invalid(field, value, why)],
        )
    }

    fn take_port(
        &self,
        svc: &Service,
        field: &str,
        port: i32,
        taken: &mut Vec<i32>,
    ) -> ApiResult<()> {
        match self.ports.allocate(port) {
            Ok(()) => {
                taken.push(port);
                Ok(())
            }
            Err(AllocError::Taken) => Err(Self::invalid(
                svc,
                field,
                port.into(),
                "provided port is already allocated".into(),
            )),
            Err(AllocError::OutOfRange(why)) => Err(Self::invalid(svc, field, port.into(), why)),
            Err(AllocError::Full) => Err(ApiError::internal(
                "failed to allocate a nodePort: range is full",
            )),
        }
    }

    fn next_port(&self, taken: &mut Vec<i32>) -> ApiResult<i32> {
        let p = self
            .ports
            .allocate_next()
            .map_err(|_| ApiError::internal("failed to allocate a nodePort: range is full"))?;
        taken.push(p);
        Ok(p)
    }

    fn reserve_all(
        &self,
        svc: &mut Service,
        old: Option<&Service>,
        ips: &mut Vec<Ipv4Addr>,
        ports: &mut Vec<i32>,
    ) -> ApiResult<()> {
        let old_spec = old.and_then(|o| o.spec.as_ref());
        let (old_ip, old_ports) = held(old_spec);
        let snapshot = svc.clone();
        let spec = svc.spec.get_or_insert_with(Default::default);
        if wants_cluster_ip(spec) {
            let requested = spec.cluster_ip.clone().filter(|s| !s.is_empty());
            let ip = match requested {
                None => match old_ip {
                    Some(ip) => ip,
                    None => {
                        let ip = self.ips.allocate_next().map_err(|_| {
                            ApiError::internal("failed to allocate a serviceIP: range is full")
                        })?;
                        ips.push(ip);
                        ip
                    }
                },
                Some(s) => {
                    let ip: Ipv4Addr = s.parse().map_err(|_| {
                        Self::invalid(
                            &snapshot,
                            "spec.clusterIPs",
                            json!([s]),
                            "must be a valid IP address".into(),
                        )
                    })?;
                    if Some(ip) != old_ip {
                        match self.ips.allocate(ip) {
                            Ok(()) => ips.push(ip),
                            Err(AllocError::Taken) => {
                                return Err(Self::invalid(
                                    &snapshot,
                                    "spec.clusterIPs",
                                    json!([s]),
                                    format!(
                                    "failed to allocate IP {s}: provided IP is already allocated"
                                ),
                                ))
                            }
                            Err(AllocError::OutOfRange(why)) => {
                                return Err(Self::invalid(
                                    &snapshot,
                                    "spec.clusterIPs",
                                    json!([s]),
                                    format!("failed to allocate IP {s}: {why}"),
                                ))
                            }
                            Err(AllocError::Full) => {
                                return Err(ApiError::internal(
                                    "failed to allocate a serviceIP: range is full",
                                ))
                            }
                        }
                    }
                    ip
                }
            };
            spec.cluster_ip = Some(ip.to_string());
            spec.cluster_ips = Some(vec![ip.to_string()]);
        } else if spec.cluster_ip.as_deref() == Some("None") {
            spec.cluster_ips = Some(vec!["None".into()]);
        }
        if has_node_ports(spec) {
            let old_by_port: BTreeMap<(i32, String), i32> = old_spec
                .iter()
                .flat_map(|s| s.ports.iter().flatten())
                .filter_map(|p| {
                    p.node_port
                        .filter(|n| *n != 0)
                        .map(|n| ((p.port, p.protocol.clone().unwrap_or_default()), n))
                })
                .collect();
            for (i, p) in spec.ports.iter_mut().flatten().enumerate() {
                let field = format!("spec.ports[{i}].nodePort");
                match p.node_port.unwrap_or(0) {
                    0 => {
                        let key = (p.port, p.protocol.clone().unwrap_or_default());
                        p.node_port = Some(match old_by_port.get(&key) {
                            Some(n) => *n,
                            None => self.next_port(ports)?,
                        });
                    }
                    n if old_ports.contains(&n) || ports.contains(&n) => {}
                    n => self.take_port(&snapshot, &field, n, ports)?,
                }
            }
        }
        if needs_health_check_port(spec) {
            match spec.health_check_node_port.unwrap_or(0) {
                0 => {
                    spec.health_check_node_port =
                        Some(match old_spec.and_then(|s| s.health_check_node_port) {
                            Some(n) if n != 0 => n,
                            _ => self.next_port(ports)?,
                        })
                }
                n if old_ports.contains(&n) || ports.contains(&n) => {}
                n => self.take_port(&snapshot, "spec.healthCheckNodePort", n, ports)?,
            }
        }
        Ok(())
    }
}

impl Kind for ServiceKind {
    type Obj = Service;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn prepare_for_create(&self, svc: &mut Service) {
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus::default()),
            ..Default::default()
        });
    }

    fn apply_defaults(&self, svc: &mut Service) {
        let spec = svc.spec.get_or_insert_with(Default::default);
        spec.type_.get_or_insert_with(|| "ClusterIP".into());
        spec.session_affinity.get_or_insert_with(|| "None".into());
        if spec.cluster_ip.as_deref().is_none_or(str::is_empty) {
            if let Some(first) = spec.cluster_ips.as_ref().and_then(|ips| ips.first()) {
                spec.cluster_ip = Some(first.clone());
            }
        }
        for p in spec.ports.iter_mut().flatten() {
            p.protocol.get_or_insert_with(|| "TCP".into());
            if p.target_port.is_none() || p.target_port == Some(IntOrString::Int(0)) {
                p.target_port = Some(IntOrString::Int(p.port));
            }
        }
        let ty = service_type(spec).to_string();
        if ty != "ExternalName" {
            spec.internal_traffic_policy
                .get_or_insert_with(|| "Cluster".into());
            spec.ip_families.get_or_insert_with(|| vec!["IPv4".into()]);
            spec.ip_family_policy
                .get_or_insert_with(|| "SingleStack".into());
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            spec.external_traffic_policy
                .get_or_insert_with(|| "Cluster".into());
        }
        if ty == "LoadBalancer" {
            spec.allocate_load_balancer_node_ports.get_or_insert(true);
        }
    }

    fn validate(&self, svc: &Service) -> FieldErrors {
        let mut errs = Vec::new();
        let Some(spec) = &svc.spec else {
            errs.push(FieldError::required("spec", ""));
            return errs;
        };
        let ty = service_type(spec);
        if !TYPES.contains(&ty) {
            errs.push(FieldError::not_supported("spec.type", ty, &TYPES));
        }
        let headless = spec.cluster_ip.as_deref() == Some("None");
        if ty == "ExternalName" {
            match spec.external_name.as_deref() {
                None | Some("") => errs.push(FieldError::required("spec.externalName", "")),
                Some(n) => push_all(
                    &mut errs,
                    "spec.externalName",
                    n,
                    validation::dns1123_subdomain(n.trim_end_matches('.')),
                ),
            }
        } else {
            if let Some(ip) = spec
                .cluster_ip
                .as_deref()
                .filter(|s| !s.is_empty() && *s != "None")
            {
                push_all(
                    &mut errs,
                    "spec.clusterIPs[0]",
                    ip,
                    validation::ip_address(ip),
                );
            }
            let ports = spec.ports.as_deref().unwrap_or_default();
            if ports.is_empty() && !headless {
                errs.push(FieldError::required("spec.ports", ""));
            }
        }
        let ports = spec.ports.as_deref().unwrap_or_default();
        let mut names = BTreeSet::new();
        let mut pairs = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            let pp = format!("spec.ports[{i}]");
            match p.name.as_deref().filter(|n| !n.is_empty()) {
                None if ports.len() > 1 => {
                    errs.push(FieldError::required(format!("{pp}.name"), ""))
                }
                None => {}
                Some(n) => {
                    push_all(
                        &mut errs,
                        &format!("{pp}.name"),
                        n,
                        validation::dns1123_label(n),
                    );
                    if !names.insert(n.to_string()) {
                        errs.push(FieldError::duplicate(format!("{pp}.name"), n));
                    }
                }
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
            if !pairs.insert((p.port, proto.to_string())) {
                errs.push(FieldError::duplicate(
                    pp.clone(),
                    json!({"port": p.port, "protocol": proto}),
                ));
            }
            match &p.target_port {
                Some(IntOrString::Int(t)) => {
                    validation::port_number(&format!("{pp}.targetPort"), *t, &mut errs)
                }
                Some(IntOrString::String(s)) => push_all(
                    &mut errs,
                    &format!("{pp}.targetPort"),
                    s,
                    validation::port_name(s),
                ),
                None => {}
            }
            if let Some(np) = p.node_port.filter(|n| *n != 0) {
                if ty == "ClusterIP" || ty == "ExternalName" {
                    errs.push(FieldError::forbidden(
                        format!("{pp}.nodePort"),
                        format!("may not be used when `type` is '{ty}'"),
                    ));
                } else if !(1..=65535).contains(&np) {
                    validation::port_number(&format!("{pp}.nodePort"), np, &mut errs);
                }
            }
        }
        let affinity = spec.session_affinity.as_deref().unwrap_or("None");
        if !["ClientIP", "None"].contains(&affinity) {
            errs.push(FieldError::not_supported(
                "spec.sessionAffinity",
                affinity,
                &["ClientIP", "None"],
            ));
        }
        if let Some(p) = spec.external_traffic_policy.as_deref() {
            if ty != "NodePort" && ty != "LoadBalancer" {
                errs.push(FieldError::invalid(
                    "spec.externalTrafficPolicy",
                    p,
                    "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
                ));
            } else if !["Cluster", "Local"].contains(&p) {
                errs.push(FieldError::not_supported(
                    "spec.externalTrafficPolicy",
                    p,
                    &["Cluster", "Local"],
                ));
            }
        }
        if let Some(p) = spec.internal_traffic_policy.as_deref() {
            if !["Cluster", "Local"].contains(&p) {
                errs.push(FieldError::not_supported(
                    "spec.internalTrafficPolicy",
                    p,
                    &["Cluster", "Local"],
                ));
            }
        }
        validation::labels("spec.selector", spec.selector.as_ref(), &mut errs);
        for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
            push_all(
                &mut errs,
                &format!("spec.externalIPs[{i}]"),
                ip,
                validation::ip_address(ip),
            );
        }
        errs
    }

    fn prepare_for_update(&self, new: &mut Service, old: &Service) {
        new.status = old.status.clone();
        // Fields that only make sense for the old type go away with it (dropTypeDependentFields).
        let (Some(ns), Some(os)) = (new.spec.as_mut(), old.spec.as_ref()) else {
            return;
        };
        if !has_node_ports(ns) && has_node_ports(os) {
            let old_ports: BTreeSet<i32> = os
                .ports
                .iter()
                .flatten()
                .filter_map(|p| p.node_port)
                .collect();
            for p in ns.ports.iter_mut().flatten() {
                if p.node_port.is_some_and(|n| old_ports.contains(&n)) {
                    p.node_port = None;
                }
            }
        }
        if !needs_health_check_port(ns) && ns.health_check_node_port == os.health_check_node_port {
            ns.health_check_node_port = None;
        }
        if service_type(ns) == "ExternalName" && service_type(os) != "ExternalName" {
            if ns.cluster_ip == os.cluster_ip {
                ns.cluster_ip = None;
            }
            if ns.cluster_ips == os.cluster_ips {
                ns.cluster_ips = None;
            }
            ns.ip_families = None;
            ns.ip_family_policy = None;
            ns.internal_traffic_policy = None;
        }
        if service_type(ns) != "NodePort"
            && service_type(ns) != "LoadBalancer"
            && ns.external_traffic_policy == os.external_traffic_policy
        {
            ns.external_traffic_policy = None;
        }
    }

    fn validate_update(&self, new: &Service, old: &Service) -> FieldErrors {
        let mut errs = self.validate(new);
        let (Some(ns), Some(os)) = (&new.spec, &old.spec) else {
            return errs;
        };
        let was = os.cluster_ip.clone().filter(|s| !s.is_empty());
        let now = ns.cluster_ip.clone().filter(|s| !s.is_empty());
        if service_type(os) != "ExternalName"
            && service_type(ns) != "ExternalName"
            && was.is_some()
            && now.is_some()
            && was != now
        {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                now.unwrap_or_default(),
                "may not change once set",
            ));
        }
        errs
    }

    fn prepare_for_status_update(&self, new: &mut Service, old: &Service) {
        new.spec = old.spec.clone();
    }

    fn validate_status_update(&self, new: &Service, _old: &Service) -> FieldErrors {
        let mut errs = Vec::new();
        for (i, ing) in new
            .status
            .iter()
            .flat_map(|s| s.load_balancer.iter())
            .flat_map(|lb| lb.ingress.iter().flatten())
            .enumerate()
        {
            if let Some(ip) = ing.ip.as_deref() {
                push_all(
                    &mut errs,
                    &format!("status.loadBalancer.ingress[{i}].ip"),
                    ip,
                    validation::ip_address(ip),
                );
            }
        }
        errs
    }

    fn field(&self, svc: &Service, field: &str) -> Option<String> {
        let spec = svc.spec.as_ref();
        match field {
            "spec.clusterIP" => Some(spec.and_then(|s| s.cluster_ip.clone()).unwrap_or_default()),
            "spec.type" => Some(spec.and_then(|s| s.type_.clone()).unwrap_or_default()),
            _ => None,
        }
    }

    fn supports_field(&self, field: &str) -> bool {
        matches!(
            field,
            "metadata.name" | "metadata.namespace" | "spec.clusterIP" | "spec.type"
        )
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Type", "string", "type determines how the Service is exposed."),
            Column::new("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
            Column::new("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            Column::new("Port(s)", "string", "The list of ports that are exposed by this service."),
            Column::age(),
            Column::new("Selector", "string", "Route service traffic to pods with label keys and values matching this selector.").wide(),
        ]
    }

    fn row(&self, svc: &Service, now: i64) -> Vec<Value> {
        let spec = svc.spec.clone().unwrap_or_default();
        let ty = service_type(&spec).to_string();
        let cluster_ip = spec
            .cluster_ips
            .as_ref()
            .and_then(|ips| ips.first().cloned())
            .or(spec.cluster_ip.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "<none>".into());
        let external = spec.external_ips.clone().unwrap_or_default();
        let external_ip = match ty.as_str() {
            "ClusterIP" | "NodePort" => join_or(external, "<none>"),
            "LoadBalancer" => {
                let mut ingress: Vec<String> = svc
                    .status
                    .iter()
                    .flat_map(|s| s.load_balancer.iter())
                    .flat_map(|lb| lb.ingress.iter().flatten())
                    .filter_map(|i| i.ip.clone().or(i.hostname.clone()))
                    .collect();
                ingress.extend(external);
                join_or(ingress, "<pending>")
            }
            "ExternalName" => spec.external_name.clone().unwrap_or_default(),
            _ => "<unknown>".into(),
        };
        let ports = join_or(
            spec.ports.iter().flatten().map(|p| {
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                match p.node_port.filter(|n| *n > 0) {
                    Some(np) => format!("{}:{np}/{proto}", p.port),
                    None => format!("{}/{proto}", p.port),
                }
            }),
            "<none>",
        );
        let selector = join_or(
            spec.selector
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}")),
            "<none>",
        );
        vec![
            json!(svc.metadata.name.clone().unwrap_or_default()),
            json!(ty),
            json!(cluster_ip),
            json!(external_ip),
            json!(ports),
            age(svc.metadata.creation_timestamp.as_ref(), now),
            json!(selector),
        ]
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn reserve(&self, svc: &mut Service, old: Option<&Service>) -> ApiResult<()> {
        let mut ips = Vec::new();
        let mut ports = Vec::new();
        let result = self.reserve_all(svc, old, &mut ips, &mut ports);
        if result.is_err() {
            for ip in ips {
                self.ips.release(ip);
            }
            for p in ports {
                self.ports.release(p);
            }
        }
        result
    }

    fn release(&self, drop: &Service, keep: Option<&Service>) {
        let (drop_ip, drop_ports) = held(drop.spec.as_ref());
        let (keep_ip, keep_ports) = held(keep.and_then(|k| k.spec.as_ref()));
        if let Some(ip) = drop_ip.filter(|ip| Some(*ip) != keep_ip) {
            self.ips.release(ip);
        }
        for p in drop_ports.difference(&keep_ports) {
            self.ports.release(*p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServicePort;

    fn kind() -> ServiceKind {
        ServiceKind {
            ips: Arc::new(IpAllocator::new("10.96.0.0/12").unwrap()),
            ports: Arc::new(PortAllocator::new("30000-32767").unwrap()),
        }
    }

    fn svc(ty: &str, ports: &[(i32, Option<i32>)]) -> Service {
        Service {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some(ty.into()),
                ports: Some(
                    ports
                        .iter()
                        .enumerate()
                        .map(|(i, (p, np))| ServicePort {
                            name: (ports.len() > 1).then(|| format!("p{i}")),
                            port: *p,
                            node_port: *np,
                            ..Default::default()
                        })
                        .collect(),
                ),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn defaults_and_allocation() {
        let k = kind();
        let mut s = svc("NodePort", &[(8080, None)]);
        k.apply_defaults(&mut s);
        assert!(k.validate(&s).is_empty());
        k.reserve(&mut s, None).unwrap();
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(
            spec.ports.as_ref().unwrap()[0].target_port,
            Some(IntOrString::Int(8080))
        );
        assert_eq!(
            spec.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        let np = spec.ports.as_ref().unwrap()[0].node_port.unwrap();
        assert!((30000..=32767).contains(&np));
        assert!(spec.cluster_ip.as_deref().unwrap().starts_with("10."));
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
        // The same node port cannot be had twice; releasing gives it back.
        let mut t = svc("NodePort", &[(80, Some(np))]);
        k.apply_defaults(&mut t);
        let err = k.reserve(&mut t, None).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("provided port is already allocated"),
            "{}",
            err.message
        );
        k.release(&s, None);
        k.reserve(&mut t, None).unwrap();
    }

    #[test]
    fn node_ports_forbidden_for_cluster_ip() {
        let k = kind();
        let mut s = svc("ClusterIP", &[(80, Some(30080))]);
        k.apply_defaults(&mut s);
        let errs = k.validate(&s);
        assert_eq!(errs[0].field, "spec.ports[0].nodePort");
    }

    #[test]
    fn update_keeps_allocations_and_cluster_ip_is_immutable() {
        let k = kind();
        let mut old = svc("NodePort", &[(80, None)]);
        k.apply_defaults(&mut old);
        k.reserve(&mut old, None).unwrap();
        let mut new = svc("NodePort", &[(80, None)]);
        k.apply_defaults(&mut new);
        k.reserve(&mut new, Some(&old)).unwrap();
        assert_eq!(new.spec, old.spec);
        let mut changed = old.clone();
        changed.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.77".into());
        assert_eq!(
            k.validate_update(&changed, &old)[0].field,
            "spec.clusterIPs[0]"
        );
    }

    #[test]
    fn table_row() {
        let k = kind();
        let mut s = svc("NodePort", &[(8080, Some(31000))]);
        s.spec.as_mut().unwrap().cluster_ip = Some("10.96.0.9".into());
        let row = k.row(&s, 0);
        assert_eq!(row[1], "NodePort");
        assert_eq!(row[2], "10.96.0.9");
        assert_eq!(row[3], "<none>");
        assert_eq!(row[4], "8080:31000/TCP");
        assert_eq!(row[6], "app=web");
    }
}
