//! Control loops that run inside the apiserver process (as k3s runs them): namespace lifecycle,
//! history compaction and event expiry. The workload controllers land here too.

pub mod bootstrap;
pub mod namespace;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;

use crate::registry::catalog::Catalog;
use crate::registry::generic::ListOptions;
use crate::registry::now_secs;

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
