//! Control loops that run inside the apiserver process, as k3s runs them: deployments,
//! replicasets, jobs, the scheduler, endpoints and endpoint slices, garbage collection, node lifecycle,
//! namespace lifecycle, history compaction and event expiry.
//!
//! Each controller is level-triggered: shared informers (one list-and-watch per kind, decoded
//! once) feed caches and enqueue keys; a sync recomputes the desired state from the objects and
//! writes the difference through the same registry code the HTTP API uses.

pub mod bootstrap;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod informer;
pub mod job;
pub mod namespace;
pub mod nodelifecycle;
pub mod podutil;
pub mod queue;
pub mod replicaset;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;

use crate::registry::catalog::Catalog;
use crate::registry::generic::ListOptions;
use crate::registry::now_secs;
use informer::Informer;

/// Starts the workload controllers; they begin work once every informer has listed.
pub async fn start(c: Arc<Catalog>, node: nodelifecycle::Config) {
    let pods = Informer::new(c.pods.clone());
    let replicasets = Informer::new(c.replicasets.clone());
    let deployments = Informer::new(c.deployments.clone());
    let jobs = Informer::new(c.jobs.clone());
    let nodes = Informer::new(c.nodes.clone());
    let leases = Informer::new(c.leases.clone());
    let services = Informer::new(c.services.clone());
    let endpoints = Informer::new(c.endpoints.clone());
    let slices = Informer::new(c.endpointslices.clone());
    let configmaps = Informer::new(c.configmaps.clone());
    let secrets = Informer::new(c.secrets.clone());
    let serviceaccounts = Informer::new(c.serviceaccounts.clone());
    {
        // The ServiceAccount admission's view of who opts out of automounting.
        let no_automount = c.pods.kind.no_automount.clone();
        serviceaccounts.on_change(move |old, new| {
            let sa = new.or(old).expect("a change has an object");
            let key = informer::key_of(&**sa);
            let mut set = no_automount.write().unwrap();
            match new {
                Some(n) if n.automount_service_account_token == Some(false) => set.insert(key),
                _ => set.remove(&key),
            };
        });
    }

    let recorder = events::start(c.events.clone());
    let rs = replicaset::Controller::new(replicasets.clone(), pods.clone(), recorder.clone());
    let deploy = deployment::Controller::new(
        deployments.clone(),
        replicasets.clone(),
        pods.clone(),
        recorder.clone(),
    );
    let job = job::Controller::new(jobs.clone(), pods.clone(), recorder.clone());
    let sched = scheduler::Scheduler::new(pods.clone(), nodes.clone(), recorder.clone());
    let eps = endpoints::Controller::new(
        services.clone(),
        pods.clone(),
        endpoints.clone(),
        slices.clone(),
    );
    let sources: Vec<Arc<dyn gc::Source>> = vec![
        pods.clone(),
        replicasets.clone(),
        deployments.clone(),
        jobs.clone(),
        services.clone(),
        endpoints.clone(),
        slices.clone(),
        configmaps.clone(),
        secrets.clone(),
        serviceaccounts.clone(),
        nodes.clone(),
        leases.clone(),
    ];

    tokio::spawn(pods.clone().run());
    tokio::spawn(replicasets.clone().run());
    tokio::spawn(deployments.clone().run());
    tokio::spawn(jobs.clone().run());
    tokio::spawn(nodes.clone().run());
    tokio::spawn(leases.clone().run());
    tokio::spawn(services.clone().run());
    tokio::spawn(endpoints.clone().run());
    tokio::spawn(slices.clone().run());
    tokio::spawn(configmaps.clone().run());
    tokio::spawn(secrets.clone().run());
    tokio::spawn(serviceaccounts.clone().run());
    pods.wait_synced().await;
    replicasets.wait_synced().await;
    deployments.wait_synced().await;
    jobs.wait_synced().await;
    nodes.wait_synced().await;
    leases.wait_synced().await;
    services.wait_synced().await;
    endpoints.wait_synced().await;
    slices.wait_synced().await;
    configmaps.wait_synced().await;
    secrets.wait_synced().await;
    serviceaccounts.wait_synced().await;

    rs.run();
    deploy.run();
    job.run();
    sched.run();
    eps.run();
    gc::Collector::start(sources);
    nodelifecycle::Controller::start(nodes, leases, pods, recorder, node);
    tracing::info!("controllers started");
}

/// Compacts the store every `interval` up to the revision seen one interval earlier, so watchers
/// can always resume from anything newer than `interval` (as kube-apiserver compacts etcd).
pub async fn compaction(c: Arc<Catalog>, interval: Duration) {
    let mut previous = c.store.current_revision();
    loop {
        tokio::time::sleep(interval).await;
        if previous > c.store.compacted_revision() {
            if let Err(e) = c.store.compact(previous).await {
                tracing::warn!(error = %e, "compaction failed");
            }
        }
        previous = c.store.current_revision();
    }
}

/// Deletes events whose last occurrence is older than `ttl`.
pub async fn event_expiry(c: Arc<Catalog>, ttl: Duration) {
    let period = (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(period).await;
        let Ok(list) = c.events.list(None, &ListOptions::default()).await else {
            continue;
        };
        let cutoff = now_secs() - ttl.as_secs() as i64;
        for e in list.items {
            let last = e
                .last_timestamp
                .as_ref()
                .map(crate::registry::time_secs)
                .or(e.event_time.as_ref().map(|t| t.0.as_second()))
                .or(e
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(crate::registry::time_secs))
                .unwrap_or(0);
            if last < cutoff {
                let name = e.metadata.name.clone().unwrap_or_default();
                let _ = c
                    .events
                    .delete(
                        e.metadata.namespace.as_deref(),
                        &name,
                        &DeleteOptions::default(),
                        false,
                    )
                    .await;
            }
        }
    }
}
