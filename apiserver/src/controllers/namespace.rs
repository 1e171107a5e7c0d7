//! Namespace lifecycle: a deleted namespace is emptied (every object in it deleted) and then
//! finalized; every active namespace has a `default` ServiceAccount and the `kube-root-ca.crt`
//! ConfigMap with the cluster CA (Kubernetes' root CA publisher), which pods' kube-api-access
//! volumes mount. Level-triggered: each pass looks at all namespaces, passes run on every
//! namespace change and every few seconds.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};

use crate::registry::catalog::Catalog;
use crate::registry::generic::ListOptions;
use crate::registry::selector::{FieldSelector, Selector};
use crate::registry::{Part, WriteOptions};

const RESYNC: Duration = Duration::from_secs(5);

/// The ConfigMap every namespace gets, holding the cluster CA as `ca.crt`.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

pub async fn run(c: Arc<Catalog>, ca_pem: String) {
    loop {
        let rev = match sync(&c, &ca_pem).await {
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

async fn sync(c: &Catalog, ca_pem: &str) -> Result<i64, crate::error::ApiError> {
    let list = c.namespaces.list(None, &ListOptions::default()).await?;
    for ns in &list.items {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let span = tracing::info_span!("namespace", name = %name);
        let _enter = span.enter();
        if ns.metadata.deletion_timestamp.is_some() {
            if let Err(e) = finalize(c, ns, &name).await {
                tracing::warn!(error = %e, "emptying namespace");
            }
        } else {
            if let Err(e) = ensure_default_service_account(c, &name).await {
                tracing::warn!(error = %e, "creating default service account");
            }
            if let Err(e) = ensure_root_ca(c, &name, ca_pem).await {
                tracing::warn!(error = %e, "publishing the root CA");
            }
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

async fn ensure_root_ca(c: &Catalog, ns: &str, ca_pem: &str) -> Result<(), crate::error::ApiError> {
    let want = std::collections::BTreeMap::from([("ca.crt".to_string(), ca_pem.to_string())]);
    match c.configmaps.get(Some(ns), ROOT_CA_CONFIG_MAP).await {
        Ok(cm) if cm.data.as_ref() == Some(&want) => Ok(()),
        Ok(mut cm) => {
            cm.data = Some(want);
            cm.binary_data = None;
            c.configmaps
                .update(
                    Some(ns),
                    ROOT_CA_CONFIG_MAP,
                    cm,
                    Part::Main,
                    &WriteOptions::default(),
                )
                .await
                .map(|_| ())
        }
        Err(e) if e.code == 404 => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(ROOT_CA_CONFIG_MAP.into()),
                    annotations: Some(std::collections::BTreeMap::from([(
                        "kubernetes.io/description".to_string(),
                        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(want),
                ..Default::default()
            };
            match c
                .configmaps
                .create(Some(ns), cm, &WriteOptions::default())
                .await
            {
                Ok(_)
                | Err(crate::error::ApiError {
                    code: 409 | 403, ..
                }) => Ok(()),
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
