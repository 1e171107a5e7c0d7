//! What the renderer works from: each port of each Service with its endpoints, taken from the
//! Service and its EndpointSlices (a pure function, as kube-proxy's change trackers are).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// One endpoint of a service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
    pub ready: bool,
    /// Serving but terminating (used only when no endpoint is ready, as Kubernetes does).
    pub serving_terminating: bool,
    /// On this node.
    pub local: bool,
}

/// One port of one service: everything a rule needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The port's name ("" for an unnamed single port).
    pub port_name: String,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub cluster_ip: Option<String>,
    pub port: u16,
    pub node_port: Option<u16>,
    pub external_ips: Vec<String>,
    pub load_balancer_ips: Vec<String>,
    /// sessionAffinity ClientIP timeout in seconds.
    pub affinity_seconds: Option<i32>,
    /// externalTrafficPolicy: Local.
    pub external_local: bool,
    /// internalTrafficPolicy: Local.
    pub internal_local: bool,
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `ns/name:port` (`ns/name` for an unnamed port), as kube-proxy's comments name it.
    pub fn id(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }

    /// The endpoints traffic goes to: the ready ones, or (none being ready) the serving
    /// terminating ones.
    pub fn usable(&self) -> Vec<&Endpoint> {
        let ready: Vec<&Endpoint> = self.endpoints.iter().filter(|e| e.ready).collect();
        if !ready.is_empty() {
            return ready;
        }
        self.endpoints
            .iter()
            .filter(|e| e.serving_terminating)
            .collect()
    }
}

/// The service ports of `svc` with their endpoints from `slices` (those labelled with the
/// service's name), for node `node`. ExternalName and headless services have none.
pub fn service_ports(svc: &Service, slices: &[&EndpointSlice], node: &str) -> Vec<ServicePort> {
    let Some(spec) = svc.spec.as_ref() else {
        return vec![];
    };
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if kind == "ExternalName" {
        return vec![];
    }
    let cluster_ip = spec
        .cluster_ip
        .clone()
        .filter(|ip| !ip.is_empty() && ip != "None");
    let lb_ips: Vec<String> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for p in spec.ports.iter().flatten() {
        let protocol = p.protocol.as_deref().unwrap_or("TCP").to_lowercase();
        let port_name = p.name.clone().unwrap_or_default();
        // Endpoints of this port: slice ports match by name and protocol.
        let mut endpoints = BTreeMap::new();
        for s in slices {
            if s.address_type != "IPv4" {
                continue;
            }
            let Some(sp) = s.ports.iter().flatten().find(|sp| {
                sp.name.clone().unwrap_or_default() == port_name
                    && sp.protocol.as_deref().unwrap_or("TCP").to_lowercase() == protocol
            }) else {
                continue;
            };
            let Some(port) = sp.port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            for e in &s.endpoints {
                let c = e.conditions.as_ref();
                let ready = c.and_then(|c| c.ready).unwrap_or(true);
                let serving = c.and_then(|c| c.serving).unwrap_or(ready);
                let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
                let local = e.node_name.as_deref().is_none_or(|n| n == node);
                for ip in &e.addresses {
                    endpoints.insert(
                        (ip.clone(), port),
                        Endpoint {
                            ip: ip.clone(),
                            port,
                            ready: ready && !terminating,
                            serving_terminating: serving && terminating,
                            local,
                        },
                    );
                }
            }
        }
        let node_port = p
            .node_port
            .filter(|_| kind == "NodePort" || kind == "LoadBalancer")
            .and_then(|n| u16::try_from(n).ok());
        out.push(ServicePort {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            name: svc.metadata.name.clone().unwrap_or_default(),
            port_name,
            protocol,
            cluster_ip: cluster_ip.clone(),
            port: p.port as u16,
            node_port,
            external_ips: spec.external_ips.clone().unwrap_or_default(),
            load_balancer_ips: if kind == "LoadBalancer" {
                lb_ips.clone()
            } else {
                vec![]
            },
            affinity_seconds: (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
                spec.session_affinity_config
                    .as_ref()
                    .and_then(|c| c.client_ip.as_ref())
                    .and_then(|c| c.timeout_seconds)
                    .unwrap_or(10800)
            }),
            external_local: spec.external_traffic_policy.as_deref() == Some("Local")
                && (kind == "NodePort" || kind == "LoadBalancer"),
            internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
            endpoints: endpoints.into_values().collect(),
        });
    }
    out
}
