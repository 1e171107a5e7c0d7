//! What every cluster has from its first start: the system namespaces, and the `kubernetes`
//! service in `default` (10.96.0.1) with the apiserver's address as its endpoint.

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
