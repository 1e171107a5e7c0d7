//! Every served resource, typed (for the built-in controllers) and by URL (for the HTTP layer).

use std::sync::Arc;

use anyhow::Result;

use super::alloc::{IpAllocator, PortAllocator};
use super::generic::{ListOptions, Registry};
use super::kinds::{
    configmap::ConfigMapKind,
    deployment::DeploymentKind,
    endpoints::EndpointsKind,
    endpointslice::EndpointSliceKind,
    event::EventKind,
    job::JobKind,
    lease::LeaseKind,
    namespace::NamespaceKind,
    node::NodeKind,
    pod::PodKind,
    rbac::{ClusterRoleBindingKind, ClusterRoleKind, RoleBindingKind, RoleKind},
    replicaset::ReplicaSetKind,
    secret::SecretKind,
    service::ServiceKind,
    serviceaccount::ServiceAccountKind,
};
use super::resource::Resource;
use crate::auth::rbac::Rbac;
use crate::auth::review::{self, Review};
use crate::store::Store;

pub struct Catalog {
    pub store: Arc<dyn Store>,
    pub namespaces: Arc<Registry<NamespaceKind>>,
    pub nodes: Arc<Registry<NodeKind>>,
    pub pods: Arc<Registry<PodKind>>,
    pub services: Arc<Registry<ServiceKind>>,
    pub endpoints: Arc<Registry<EndpointsKind>>,
    pub events: Arc<Registry<EventKind>>,
    pub configmaps: Arc<Registry<ConfigMapKind>>,
    pub secrets: Arc<Registry<SecretKind>>,
    pub serviceaccounts: Arc<Registry<ServiceAccountKind>>,
    pub deployments: Arc<Registry<DeploymentKind>>,
    pub replicasets: Arc<Registry<ReplicaSetKind>>,
    pub jobs: Arc<Registry<JobKind>>,
    pub leases: Arc<Registry<LeaseKind>>,
    pub endpointslices: Arc<Registry<EndpointSliceKind>>,
    pub roles: Arc<Registry<RoleKind>>,
    pub clusterroles: Arc<Registry<ClusterRoleKind>>,
    pub rolebindings: Arc<Registry<RoleBindingKind>>,
    pub clusterrolebindings: Arc<Registry<ClusterRoleBindingKind>>,
    /// The RBAC authorizer's view of the four kinds above (auth/rbac.rs).
    pub rbac: Arc<Rbac>,
    pub ips: Arc<IpAllocator>,
    pub ports: Arc<PortAllocator>,
    all: Vec<Arc<dyn Resource>>,
}

impl Catalog {
    /// Builds the registries and rebuilds the allocators from the stored services.
    pub async fn new(
        store: Arc<dyn Store>,
        service_cidr: &str,
        node_ports: &str,
        pods: PodKind,
    ) -> Result<Catalog> {
        let ips = Arc::new(IpAllocator::new(service_cidr).map_err(anyhow::Error::msg)?);
        let ports = Arc::new(PortAllocator::new(node_ports).map_err(anyhow::Error::msg)?);
        let services = Arc::new(Registry::new(
            ServiceKind {
                ips: ips.clone(),
                ports: ports.clone(),
            },
            store.clone(),
        ));
        let existing = services
            .list(None, &ListOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("reading services: {e}"))?;
        for svc in &existing.items {
            services.kind.adopt(svc);
        }
        tracing::info!(
            services = existing.items.len(),
            cluster_ips = ips.in_use(),
            "allocators rebuilt"
        );
        let s = || store.clone();
        let rbac = Arc::new(Rbac::default());
        let mut c = Catalog {
            roles: Arc::new(Registry::new(RoleKind(rbac.clone()), s())),
            clusterroles: Arc::new(Registry::new(ClusterRoleKind(rbac.clone()), s())),
            rolebindings: Arc::new(Registry::new(RoleBindingKind(rbac.clone()), s())),
            clusterrolebindings: Arc::new(Registry::new(ClusterRoleBindingKind(rbac.clone()), s())),
            rbac,
            namespaces: Arc::new(Registry::new(NamespaceKind, s())),
            nodes: Arc::new(Registry::new(NodeKind, s())),
            pods: Arc::new(Registry::new(pods, s())),
            services,
            endpoints: Arc::new(Registry::new(EndpointsKind, s())),
            events: Arc::new(Registry::new(EventKind, s())),
            configmaps: Arc::new(Registry::new(ConfigMapKind, s())),
            secrets: Arc::new(Registry::new(SecretKind, s())),
            serviceaccounts: Arc::new(Registry::new(ServiceAccountKind, s())),
            deployments: Arc::new(Registry::new(DeploymentKind, s())),
            replicasets: Arc::new(Registry::new(ReplicaSetKind, s())),
            jobs: Arc::new(Registry::new(JobKind, s())),
            leases: Arc::new(Registry::new(LeaseKind, s())),
            endpointslices: Arc::new(Registry::new(EndpointSliceKind, s())),
            store,
            ips,
            ports,
            all: Vec::new(),
        };
        c.all = vec![
            c.configmaps.clone(),
            c.endpoints.clone(),
            c.events.clone(),
            c.namespaces.clone(),
            c.nodes.clone(),
            c.pods.clone(),
            c.secrets.clone(),
            c.serviceaccounts.clone(),
            c.services.clone(),
            c.deployments.clone(),
            c.replicasets.clone(),
            c.jobs.clone(),
            c.leases.clone(),
            c.endpointslices.clone(),
            c.roles.clone(),
            c.clusterroles.clone(),
            c.rolebindings.clone(),
            c.clusterrolebindings.clone(),
            Arc::new(Review(&review::SELF_SUBJECT_ACCESS_REVIEW)),
            Arc::new(Review(&review::SELF_SUBJECT_RULES_REVIEW)),
            Arc::new(Review(&review::SELF_SUBJECT_REVIEW)),
            Arc::new(Review(&review::SUBJECT_ACCESS_REVIEW)),
            Arc::new(Review(&review::LOCAL_SUBJECT_ACCESS_REVIEW)),
        ];
        Ok(c)
    }

    /// Every resource, in discovery order.
    pub fn all(&self) -> &[Arc<dyn Resource>] {
        &self.all
    }

    pub fn lookup(&self, group: &str, version: &str, resource: &str) -> Option<&Arc<dyn Resource>> {
        self.all.iter().find(|r| {
            let i = r.info();
            i.group == group && i.version == version && i.resource == resource
        })
    }

    /// The group/versions served, core first.
    pub fn groups(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for r in &self.all {
            let i = r.info();
            if !out.contains(&(i.group, i.version)) {
                out.push((i.group, i.version));
            }
        }
        out
    }
}
