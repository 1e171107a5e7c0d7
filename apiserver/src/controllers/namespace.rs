//! Namespace lifecycle: a deleted namespace is emptied (every object in it deleted) and then
//! finalized; every active namespace has a `default` ServiceAccount. Level-triggered: each pass
//! looks at all namespaces, passes run on every namespace change and every few seconds.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};

use crate::registry::catalog::Catalog;
use crate::registry::generic::ListOptions;
use crate::registry::selector::{FieldSelector, Selector};
use crate::registry::{Part, WriteOptions};

const RESYNC: Duration = Duration::from_secs(5);

pub async fn run(c: Arc<Catalog>) {
    loop {
        let rev = match sync(&c).await {
            Ok(rev) => rev,
            Err(e) => {
                tracing::warn!(error = %e, "namespace sync failed");
                tokio::time::sleep(RESYNC).await;
                continue;
            }
        };
        // Wait for the next change to a namespace, or the resync.
        match c
            .namespaces
            .watch(None, Selector::everything(), FieldSelector::default(), rev)
            .await
        {
            Ok(mut w) => {
                let _ = tokio::time::timeout(RESYNC, w.next()).await;
            }
            Err(_) => tokio::time::sleep(RESYNC).await,
        }
    }
}

async fn sync(c: &Catalog) -> Result<i64, crate::error::ApiError> {
    let list = c.namespaces.list(None, &ListOptions::default()).await?;
    for ns in &list.items {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let span = tracing::info_span!("namespace", name = %name);
        let _enter = span.enter();
        if ns.metadata.deletion_timestamp.is_some() {
            if let Err(e) = finalize(c, ns, &name).await {
                tracing::warn!(error = %e, "emptying namespace");
            }
        } else if let Err(e) = ensure_default_service_account(c, &name).await {
            tracing::warn!(error = %e, "creating default service account");
        }
    }
    Ok(list.rev)
}

async fn ensure_default_service_account(
    c: &Catalog,
    ns: &str,
) -> Result<(), crate::error::ApiError> {
    match c.serviceaccounts.get(Some(ns), "default").await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => {
            let sa = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("default".into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match c
                .serviceaccounts
                .create(Some(ns), sa, &WriteOptions::default())
                .await
            {
                Ok(_) | Err(crate::error::ApiError { code: 409, .. }) => Ok(()),
                Err(e) if e.code == 403 => Ok(()), // the namespace started terminating
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Deletes everything in the namespace; once nothing is left, drops the `kubernetes` finalizer,
/// which removes the namespace itself.
async fn finalize(c: &Catalog, ns: &Namespace, name: &str) -> Result<(), crate::error::ApiError> {
    let opts = DeleteOptions {
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    let mut remaining = 0;
    for r in c.all().iter().filter(|r| r.info().namespaced) {
        let n = r.count(Some(name)).await?;
        if n > 0 {
            r.delete_collection(Some(name), &ListOptions::default(), &opts, false)
                .await?;
            remaining += r.count(Some(name)).await?;
        }
    }
    if remaining > 0 {
        tracing::debug!(remaining, "namespace still has objects");
        return Ok(());
    }
    if ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| !f.is_empty())
    {
        c.namespaces
            .modify(
                None,
                name,
                Part::Internal,
                &WriteOptions::default(),
                |old| {
                    let mut new = old.clone();
                    if let Some(spec) = new.spec.as_mut() {
                        spec.finalizers = None;
                    }
                    Ok(new)
                },
            )
            .await?;
        tracing::info!("namespace emptied and finalized");
    }
    Ok(())
}
