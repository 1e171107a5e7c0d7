//! Endpoints and EndpointSlices: for every service with a selector, the addresses of its pods
//! (ready ones as addresses, the rest as not ready), each service port resolved per pod (a named
//! targetPort is looked up in the pod's containers). Services without a selector keep the
//! Endpoints their users write; those are mirrored into EndpointSlices for kube-proxy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::api::discovery::v1::{self as discovery, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::informer::{key_of, revision as rev, split_key, Informer};
use super::podutil::{self, controller_ref};
use super::queue::{run_workers, Queue};
use crate::error::ApiError;
use crate::registry::kinds::{
    endpoints::EndpointsKind, endpointslice::EndpointSliceKind, pod::PodKind, service::ServiceKind,
};
use crate::registry::selector::Selector;
use crate::registry::{Part, WriteOptions};

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
pub const MIRRORED_BY: &str = "endpointslicemirroring-controller.k8s.io";
const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
const MAX_PER_SLICE: usize = 100;

/// The service's selector, when it has one (no selector: endpoints are the user's).
pub fn service_selector(svc: &Service) -> Option<Selector> {
    let map = svc
        .spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|m| !m.is_empty())?;
    let ls = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some(map.clone()),
        match_expressions: None,
    };
    Selector::from_label_selector(&ls).ok()
}

/// The container port a service port reaches on this pod (FindPort).
fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    match sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port)) {
        IntOrString::Int(n) => Some(n),
        IntOrString::String(name) => {
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|p| p.container_port)
        }
    }
}

/// A resolved service port: (name, port, protocol, appProtocol).
type PortKey = (String, i32, String, Option<String>);

/// One pod as an endpoint of a service.
#[derive(Debug, Clone)]
struct Member {
    ip: String,
    node: Option<String>,
    target: ObjectReference,
    hostname: Option<String>,
    ready: bool,
    terminating: bool,
    /// Every service port that resolves on this pod.
    ports: Vec<PortKey>,
}

fn members(svc: &Service, pods: &[Arc<Pod>], include_terminating: bool) -> Vec<Member> {
    let Some(sel) = service_selector(svc) else {
        return Vec::new();
    };
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_unready = spec.publish_not_ready_addresses == Some(true);
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    let mut out = Vec::new();
    for pod in pods {
        if !sel.matches_opt(pod.metadata.labels.as_ref()) || podutil::is_terminal(pod) {
            continue;
        }
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        if terminating && !include_terminating && !publish_unready {
            continue;
        }
        let pspec = pod.spec.clone().unwrap_or_default();
        let hostname = pspec
            .hostname
            .clone()
            .filter(|h| !h.is_empty() && pspec.subdomain.as_deref() == Some(svc_name.as_str()));
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|sp| {
                find_port(pod, sp).map(|n| {
                    (
                        sp.name.clone().unwrap_or_default(),
                        n,
                        sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        sp.app_protocol.clone(),
                    )
                })
            })
            .collect::<Vec<_>>();
        // A pod that offers none of the ports is not an endpoint (unless the service has none).
        if ports.is_empty() && !spec.ports.as_ref().is_none_or(Vec::is_empty) {
            continue;
        }
        out.push(Member {
            ip,
            node: pspec.node_name.clone().filter(|n| !n.is_empty()),
            target: ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            hostname,
            ready: publish_unready || (podutil::is_ready(pod) && !terminating),
            terminating,
            ports,
        });
    }
    out.sort_by(|a, b| a.ip.cmp(&b.ip).then(a.target.name.cmp(&b.target.name)));
    out
}

/// The subsets of a service's Endpoints, packed as Kubernetes' RepackSubsets does: addresses
/// with the same ports together, addresses and ports sorted.
pub fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    type PortKey = Vec<(String, i32, String, Option<String>)>;
    let mut groups: BTreeMap<PortKey, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for m in members(svc, pods, false) {
        let mut ports = m.ports.clone();
        ports.sort();
        let addr = EndpointAddress {
            ip: m.ip.clone(),
            hostname: m.hostname.clone(),
            node_name: m.node.clone(),
            target_ref: Some(m.target.clone()),
        };
        let g = groups.entry(ports).or_default();
        if m.ready {
            g.0.push(addr);
        } else {
            g.1.push(addr);
        }
    }
    groups
        .into_iter()
        .map(|(ports, (ready, not_ready))| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then(|| {
                ports
                    .into_iter()
                    .map(|(name, port, protocol, app)| EndpointPort {
                        name: (!name.is_empty()).then_some(name),
                        port,
                        protocol: Some(protocol),
                        app_protocol: app,
                    })
                    .collect()
            }),
        })
        .collect()
}

/// What one EndpointSlice should hold.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceContent {
    pub ports: Vec<discovery::EndpointPort>,
    pub endpoints: Vec<discovery::Endpoint>,
}

/// The slices of a service: one per distinct port mapping, at most 100 endpoints each.
/// Terminating pods stay in, marked terminating (kube-proxy drains them).
pub fn slices(svc: &Service, pods: &[Arc<Pod>]) -> Vec<SliceContent> {
    let mut groups: BTreeMap<Vec<PortKey>, Vec<discovery::Endpoint>> = BTreeMap::new();
    for m in members(svc, pods, true) {
        let mut ports = m.ports.clone();
        ports.sort();
        groups.entry(ports).or_default().push(discovery::Endpoint {
            addresses: vec![m.ip.clone()],
            conditions: Some(discovery::EndpointConditions {
                ready: Some(m.ready),
                serving: Some(
                    m.ready
                        || (m.terminating
                            && pods
                                .iter()
                                .any(|p| p.metadata.uid == m.target.uid && podutil::is_ready(p))),
                ),
                terminating: Some(m.terminating),
            }),
            hostname: m.hostname.clone(),
            node_name: m.node.clone(),
            target_ref: Some(m.target.clone()),
            ..Default::default()
        });
    }
    let mut out = Vec::new();
    for (ports, endpoints) in groups {
        let ports: Vec<discovery::EndpointPort> = ports
            .into_iter()
            .map(|(name, port, protocol, app)| discovery::EndpointPort {
                name: Some(name),
                port: Some(port),
                protocol: Some(protocol),
                app_protocol: app,
            })
            .collect();
        for chunk in endpoints.chunks(MAX_PER_SLICE) {
            out.push(SliceContent {
                ports: ports.clone(),
                endpoints: chunk.to_vec(),
            });
        }
    }
    out
}

/// The slices that mirror user-managed Endpoints of a service without a selector.
pub fn mirrored(ep: &Endpoints) -> Vec<SliceContent> {
    let mut out = Vec::new();
    for ss in ep.subsets.iter().flatten() {
        let ports = ss
            .ports
            .iter()
            .flatten()
            .map(|p| discovery::EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect::<Vec<_>>();
        let endpoint = |a: &EndpointAddress, ready: bool| discovery::Endpoint {
            addresses: vec![a.ip.clone()],
            conditions: Some(discovery::EndpointConditions {
                ready: Some(ready),
                serving: Some(ready),
                terminating: Some(false),
            }),
            hostname: a.hostname.clone(),
            node_name: a.node_name.clone(),
            target_ref: a.target_ref.clone(),
            ..Default::default()
        };
        let mut endpoints: Vec<discovery::Endpoint> = ss
            .addresses
            .iter()
            .flatten()
            .map(|a| endpoint(a, true))
            .collect();
        endpoints.extend(
            ss.not_ready_addresses
                .iter()
                .flatten()
                .map(|a| endpoint(a, false)),
        );
        for chunk in endpoints.chunks(MAX_PER_SLICE) {
            out.push(SliceContent {
                ports: ports.clone(),
                endpoints: chunk.to_vec(),
            });
        }
    }
    out
}

pub struct Controller {
    pub services: Arc<Informer<ServiceKind>>,
    pub pods: Arc<Informer<PodKind>>,
    pub endpoints: Arc<Informer<EndpointsKind>>,
    pub slices: Arc<Informer<EndpointSliceKind>>,
    pub queue: Arc<Queue>,
}

impl Controller {
    pub fn new(
        services: Arc<Informer<ServiceKind>>,
        pods: Arc<Informer<PodKind>>,
        endpoints: Arc<Informer<EndpointsKind>>,
        slices: Arc<Informer<EndpointSliceKind>>,
    ) -> Arc<Controller> {
        let c = Arc::new(Controller {
            services,
            pods,
            endpoints,
            slices,
            queue: Queue::new("endpoints"),
        });
        c.services.enqueue_to(c.queue.clone());
        let q = c.queue.clone();
        let svcs = c.services.clone();
        c.pods.on_change(move |old, new| {
            let mut keys = BTreeSet::new();
            for pod in [old, new].into_iter().flatten() {
                let ns = pod.metadata.namespace.as_deref();
                for svc in svcs.list(ns) {
                    if service_selector(&svc)
                        .is_some_and(|s| s.matches_opt(pod.metadata.labels.as_ref()))
                    {
                        keys.insert(key_of(svc.as_ref()));
                    }
                }
            }
            for k in keys {
                q.add(k);
            }
        });
        // Endpoints of an existing service are resynced when touched (repairing drift, mirroring
        // user edits); Endpoints written before their service are left for the service to find.
        let q = c.queue.clone();
        let svcs = c.services.clone();
        c.endpoints.on_change(move |old, new| {
            if let Some(e) = new.or(old) {
                let key = key_of(e.as_ref());
                if svcs.get(&key).is_some() {
                    q.add(key);
                }
            }
        });
        let q = c.queue.clone();
        let svcs = c.services.clone();
        c.slices.on_change(move |old, new| {
            if let Some(s) = new.or(old) {
                if let Some(svc) = s
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                {
                    let key = format!(
                        "{}/{svc}",
                        s.metadata.namespace.as_deref().unwrap_or_default()
                    );
                    if svcs.get(&key).is_some() {
                        q.add(key);
                    }
                }
            }
        });
        c
    }

    /// Starts the workers; call once the informers have synced.
    pub fn run(self: &Arc<Self>) {
        let this = self.clone();
        run_workers(self.queue.clone(), 4, move |key| {
            let this = this.clone();
            async move { this.sync(&key).await }
        });
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = split_key(key);
        let opts = WriteOptions::default();
        let Some(svc) = self.services.get(key) else {
            // The service is gone: so are its endpoints and slices.
            if self.endpoints.get(key).is_some() {
                match self
                    .endpoints
                    .registry
                    .delete(ns, name, &DeleteOptions::default(), false)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            self.reconcile_slices(ns, name, None, Vec::new(), "")
                .await?;
            return Ok(None);
        };
        if service_selector(&svc).is_none() {
            // User-managed endpoints: mirror them for kube-proxy.
            let ep = self.endpoints.get(key);
            let skip = ep.as_ref().is_none_or(|e| {
                e.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SKIP_MIRROR))
                    .map(String::as_str)
                    == Some("true")
            });
            let desired = match (&ep, skip) {
                (Some(ep), false) => mirrored(ep),
                _ => Vec::new(),
            };
            self.reconcile_slices(ns, name, Some(&svc), desired, MIRRORED_BY)
                .await?;
            return Ok(None);
        }
        let pods = self.pods.list(ns);
        let want = subsets(&svc, &pods);
        let labels = svc.metadata.labels.clone();
        let current = self.endpoints.get(key);
        let same = current.as_ref().is_some_and(|e| {
            e.subsets.clone().unwrap_or_default() == want && e.metadata.labels == labels
        });
        if !same {
            let subsets = (!want.is_empty()).then_some(want.clone());
            let written = match current {
                Some(_) => {
                    self.endpoints
                        .registry
                        .modify(ns, name, Part::Main, &opts, |old| {
                            let mut e = old.clone();
                            e.subsets = subsets.clone();
                            e.metadata.labels = labels.clone();
                            Ok(e)
                        })
                        .await
                }
                None => {
                    let e = Endpoints {
                        metadata: ObjectMeta {
                            name: Some(name.to_string()),
                            labels: labels.clone(),
                            ..Default::default()
                        },
                        subsets,
                    };
                    self.endpoints.registry.create(ns, e, &opts).await
                }
            };
            match written {
                Ok(e) => self.endpoints.wait_for(rev(&e.metadata)).await,
                Err(e) if e.code == 404 => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        self.reconcile_slices(ns, name, Some(&svc), slices(&svc, &pods), MANAGED_BY)
            .await?;
        Ok(None)
    }

    /// Makes the slices managed by `manager` for service `name` hold exactly `desired`.
    async fn reconcile_slices(
        &self,
        ns: Option<&str>,
        name: &str,
        svc: Option<&Service>,
        desired: Vec<SliceContent>,
        manager: &str,
    ) -> Result<(), ApiError> {
        let opts = WriteOptions::default();
        let registry = &self.slices.registry;
        let mut existing: Vec<Arc<EndpointSlice>> = self
            .slices
            .list(ns)
            .into_iter()
            .filter(|s| {
                let l = s.metadata.labels.clone().unwrap_or_default();
                l.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
                    && l.get(MANAGED_BY_LABEL)
                        .is_some_and(|m| m == MANAGED_BY || m == MIRRORED_BY)
            })
            .collect();
        existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut labels: BTreeMap<String, String> = svc
            .and_then(|s| s.metadata.labels.clone())
            .unwrap_or_default();
        labels.insert(SERVICE_NAME_LABEL.into(), name.into());
        labels.insert(MANAGED_BY_LABEL.into(), manager.into());
        let mut newest = 0;
        let mut used = vec![false; existing.len()];
        for want in desired {
            let found = existing
                .iter()
                .enumerate()
                .find(|(i, s)| {
                    // Slices of the other manager (the service gained or lost its selector) go.
                    let theirs = s
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(MANAGED_BY_LABEL))
                        .map(String::as_str);
                    !used[*i]
                        && theirs == Some(manager)
                        && s.ports.clone().unwrap_or_default() == want.ports
                })
                .map(|(i, _)| i);
            match found {
                Some(i) => {
                    used[i] = true;
                    let s = &existing[i];
                    if s.endpoints == want.endpoints && s.metadata.labels.as_ref() == Some(&labels)
                    {
                        continue;
                    }
                    let slice_name = s.metadata.name.clone().unwrap_or_default();
                    let written = registry
                        .modify(ns, &slice_name, Part::Main, &opts, |old| {
                            let mut s = old.clone();
                            s.endpoints = want.endpoints.clone();
                            s.ports = Some(want.ports.clone());
                            s.metadata.labels = Some(labels.clone());
                            Ok(s)
                        })
                        .await;
                    match written {
                        Ok(s) => newest = newest.max(rev(&s.metadata)),
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
                None => {
                    let Some(svc) = svc else { continue };
                    let slice = EndpointSlice {
                        metadata: ObjectMeta {
                            generate_name: Some(format!("{name}-")),
                            labels: Some(labels.clone()),
                            owner_references: Some(vec![controller_ref(svc)]),
                            ..Default::default()
                        },
                        address_type: "IPv4".into(),
                        endpoints: want.endpoints,
                        ports: Some(want.ports),
                    };
                    let s = registry.create(ns, slice, &opts).await?;
                    newest = newest.max(rev(&s.metadata));
                }
            }
        }
        for (i, s) in existing.iter().enumerate() {
            if used[i] {
                continue;
            }
            match registry
                .delete(
                    ns,
                    s.metadata.name.as_deref().unwrap_or_default(),
                    &DeleteOptions::default(),
                    false,
                )
                .await
            {
                Ok(out) => newest = newest.max(rev(&out.object().metadata)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        if newest > 0 {
            self.slices.wait_for(newest).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ports: serde_json::Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default", "uid": "svc"},
            "spec": {"selector": {"app": "web"}, "ports": ports}}),
        )
        .unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, port_name: &str, port: i32) -> Arc<Pod> {
        Arc::new(serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i", "ports": [{"name": port_name, "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        })).unwrap())
    }

    #[test]
    fn ready_and_not_ready_addresses_with_resolved_ports() {
        let s = svc(json!([{"name": "http", "port": 80, "targetPort": 8080}]));
        let pods = [
            pod("a", "10.244.0.2", true, "http", 8080),
            pod("b", "10.244.0.3", false, "http", 8080),
        ];
        let ss = subsets(&s, &pods);
        assert_eq!(ss.len(), 1);
        assert_eq!(ss[0].addresses.as_ref().unwrap()[0].ip, "10.244.0.2");
        assert_eq!(
            ss[0].not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.244.0.3"
        );
        assert_eq!(ss[0].ports.as_ref().unwrap()[0].port, 8080);
        assert_eq!(
            ss[0].addresses.as_ref().unwrap()[0]
                .target_ref
                .as_ref()
                .unwrap()
                .name
                .as_deref(),
            Some("a")
        );
    }

    #[test]
    fn named_target_ports_resolve_per_pod() {
        let s = svc(json!([{"name": "http", "port": 80, "targetPort": "web"}]));
        let pods = [
            pod("a", "10.244.0.2", true, "web", 8080),
            pod("b", "10.244.0.3", true, "web", 9090),
            pod("c", "10.244.0.4", true, "other", 7070),
        ];
        let ss = subsets(&s, &pods);
        let mut got: Vec<(String, i32)> = ss
            .iter()
            .flat_map(|s| {
                s.addresses
                    .iter()
                    .flatten()
                    .map(move |a| (a.ip.clone(), s.ports.as_ref().unwrap()[0].port))
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("10.244.0.2".to_string(), 8080),
                ("10.244.0.3".to_string(), 9090)
            ]
        );
        assert_eq!(slices(&s, &pods).len(), 2, "one slice per port mapping");
    }

    #[test]
    fn terminating_pods_leave_endpoints_but_stay_in_slices_as_terminating() {
        let s = svc(json!([{"port": 80, "targetPort": 8080}]));
        let mut p = (*pod("a", "10.244.0.2", true, "http", 8080)).clone();
        p.metadata.deletion_timestamp = Some(crate::registry::now());
        let pods = [Arc::new(p)];
        assert!(subsets(&s, &pods).is_empty());
        let sl = slices(&s, &pods);
        let c = sl[0].endpoints[0].conditions.clone().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(true), Some(true))
        );
    }

    #[test]
    fn large_services_are_split_into_slices_of_100() {
        let s = svc(json!([{"port": 80, "targetPort": 8080}]));
        let pods: Vec<_> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.244.{}.{}", i / 200, i % 200 + 1),
                    true,
                    "http",
                    8080,
                )
            })
            .collect();
        let sizes: Vec<usize> = slices(&s, &pods)
            .iter()
            .map(|s| s.endpoints.len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
    }

    #[test]
    fn no_selector_no_managed_endpoints() {
        let mut s = svc(json!([{"port": 80}]));
        s.spec.as_mut().unwrap().selector = None;
        assert!(subsets(&s, &[pod("a", "10.244.0.2", true, "http", 80)]).is_empty());
    }
}
