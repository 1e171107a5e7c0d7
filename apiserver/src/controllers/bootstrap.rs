//! What every cluster has from its first start: the system namespaces, the `kubernetes`
//! service in `default` (10.96.0.1) with the apiserver's address as its endpoint, and the
//! `kube-dns` service in `kube-system` (10.96.0.10), whose endpoint the cluster DNS (served by
//! tinykube-proxy) writes when it starts.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{anyhow, Result};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Namespace, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{self as discovery, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::registry::catalog::Catalog;
use crate::registry::{Part, WriteOptions};

pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

fn meta(name: &str, namespace: Option<&str>, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_string),
        labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        }),
        ..Default::default()
    }
}

pub async fn run(c: &Catalog, advertise: Option<IpAddr>, port: u16) -> Result<()> {
    let opts = WriteOptions::default();
    for ns in SYSTEM_NAMESPACES {
        let obj = Namespace {
            metadata: meta(ns, None, &[("kubernetes.io/metadata.name", ns)]),
            ..Default::default()
        };
        match c.namespaces.create(None, obj, &opts).await {
            Ok(_) => tracing::info!(namespace = ns, "created system namespace"),
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(anyhow!("creating namespace {ns}: {e}")),
        }
    }
    let https = |target: i32| ServicePort {
        name: Some("https".into()),
        port: 443,
        protocol: Some("TCP".into()),
        target_port: Some(IntOrString::Int(target)),
        ..Default::default()
    };
    let svc = Service {
        metadata: meta(
            "kubernetes",
            Some("default"),
            &[("component", "apiserver"), ("provider", "kubernetes")],
        ),
        spec: Some(ServiceSpec {
            cluster_ip: Some(c.ips.nth(1).to_string()),
            ports: Some(vec![https(port as i32)]),
            session_affinity: Some("None".into()),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    match c.services.get(Some("default"), "kubernetes").await {
        Err(e) if e.code == 404 => {
            c.services
                .create(Some("default"), svc, &opts)
                .await
                .map_err(|e| anyhow!("creating the kubernetes service: {e}"))?;
            tracing::info!("created the kubernetes service");
        }
        Err(e) => return Err(anyhow!("reading the kubernetes service: {e}")),
        Ok(_) => {
            // Keep the target port in step with the port we serve on.
            c.services
                .modify(Some("default"), "kubernetes", Part::Main, &opts, |old| {
                    let mut new = old.clone();
                    if let Some(spec) = new.spec.as_mut() {
                        spec.ports = Some(vec![https(port as i32)]);
                    }
                    Ok(new)
                })
                .await
                .map_err(|e| anyhow!("updating the kubernetes service: {e}"))?;
        }
    }
    kube_dns(c).await?;
    let Some(ip) = advertise else {
        tracing::warn!("no advertise address: the kubernetes service has no endpoints");
        return Ok(());
    };
    let endpoints = Endpoints {
        metadata: meta(
            "kubernetes",
            Some("default"),
            &[("endpointslice.kubernetes.io/skip-mirror", "true")],
        ),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: ip.to_string(),
                ..Default::default()
            }]),
            ports: Some(vec![EndpointPort {
                name: Some("https".into()),
                port: port as i32,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }]),
    };
    c.endpoints
        .update(Some("default"), "kubernetes", endpoints, Part::Main, &opts)
        .await
        .map_err(|e| anyhow!("writing the kubernetes endpoints: {e}"))?;
    let slice = EndpointSlice {
        metadata: meta(
            "kubernetes",
            Some("default"),
            &[("kubernetes.io/service-name", "kubernetes")],
        ),
        address_type: if ip.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
        endpoints: vec![discovery::Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(discovery::EndpointConditions {
                ready: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ports: Some(vec![discovery::EndpointPort {
            name: Some("https".into()),
            port: Some(port as i32),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    };
    c.endpointslices
        .update(Some("default"), "kubernetes", slice, Part::Main, &opts)
        .await
        .map_err(|e| anyhow!("writing the kubernetes endpoint slice: {e}"))?;
    Ok(())
}

/// The `kube-dns` Service as kubeadm installs it (the 10th address of the service range,
/// ports 53/UDP, 53/TCP and 9153/TCP, CoreDNS's labels), without a selector: its Endpoints and
/// EndpointSlice are made empty here and filled by the DNS server itself. Left alone if there.
async fn kube_dns(c: &Catalog) -> Result<()> {
    let opts = WriteOptions::default();
    let labels = [
        ("k8s-app", "kube-dns"),
        ("kubernetes.io/cluster-service", "true"),
        ("kubernetes.io/name", "CoreDNS"),
    ];
    let port = |name: &str, protocol: &str, port: i32| ServicePort {
        name: Some(name.into()),
        port,
        protocol: Some(protocol.into()),
        target_port: Some(IntOrString::Int(port)),
        ..Default::default()
    };
    let svc = Service {
        metadata: meta("kube-dns", Some("kube-system"), &labels),
        spec: Some(ServiceSpec {
            cluster_ip: Some(c.ips.nth(10).to_string()),
            ports: Some(vec![
                port("dns", "UDP", 53),
                port("dns-tcp", "TCP", 53),
                port("metrics", "TCP", 9153),
            ]),
            session_affinity: Some("None".into()),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    match c.services.create(Some("kube-system"), svc, &opts).await {
        Ok(_) => tracing::info!("created the kube-dns service"),
        Err(e) if e.code == 409 => {}
        // The address may be a user's already: kube-dns then gets another one.
        Err(e) if e.code == 422 => {
            tracing::warn!(error = %e, "the kube-dns service cannot have its usual address")
        }
        Err(e) => return Err(anyhow!("creating the kube-dns service: {e}")),
    }
    let endpoints = Endpoints {
        metadata: meta(
            "kube-dns",
            Some("kube-system"),
            &[
                ("k8s-app", "kube-dns"),
                ("endpointslice.kubernetes.io/skip-mirror", "true"),
            ],
        ),
        subsets: None,
    };
    match c
        .endpoints
        .create(Some("kube-system"), endpoints, &opts)
        .await
    {
        Ok(_) => {}
        Err(e) if e.code == 409 => {}
        Err(e) => return Err(anyhow!("creating the kube-dns endpoints: {e}")),
    }
    let slice = EndpointSlice {
        metadata: meta(
            "kube-dns",
            Some("kube-system"),
            &[
                ("k8s-app", "kube-dns"),
                ("kubernetes.io/service-name", "kube-dns"),
                ("endpointslice.kubernetes.io/managed-by", "tinykube-proxy"),
            ],
        ),
        address_type: "IPv4".into(),
        endpoints: vec![],
        ports: None,
    };
    match c
        .endpointslices
        .create(Some("kube-system"), slice, &opts)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(anyhow!("creating the kube-dns endpoint slice: {e}")),
    }
}
