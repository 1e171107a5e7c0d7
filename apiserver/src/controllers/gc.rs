//! The garbage collector: objects whose owners are gone are deleted (Background); owners deleted
//! with Foreground wait (foregroundDeletion finalizer) until their blocking dependents are gone;
//! owners deleted with Orphan (orphan finalizer) let go of their dependents first.
//!
//! `decide` looks at the metadata of every object of every kind at once (the informers' caches)
//! and returns what to do; an owner that looks absent is confirmed with a read of the store
//! before anything is deleted, as Kubernetes' collector confirms with a live lookup.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    DeleteOptions, ObjectMeta, OwnerReference, Preconditions,
};
use k8s_openapi::Metadata;
use tokio::sync::Notify;

use super::informer::Informer;
use crate::error::ApiError;
use crate::registry::generic::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use crate::registry::{Kind, Part, WriteOptions};
use crate::store::BoxFuture;

/// What the collector knows of one object.
#[derive(Debug, Clone)]
pub struct Item {
    pub source: usize,
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

/// One kind's objects, and how to act on them.
pub trait Source: Send + Sync {
    fn kind(&self) -> &'static str;
    fn namespaced(&self) -> bool;
    fn items(&self, source: usize) -> Vec<Item>;
    /// Whether the object still exists with that uid (read from the store, not a cache).
    fn exists<'a>(
        &'a self,
        ns: Option<&'a str>,
        name: &'a str,
        uid: &'a str,
    ) -> BoxFuture<'a, bool>;
    fn delete<'a>(
        &'a self,
        item: &'a Item,
        policy: &'static str,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
    fn remove_owners<'a>(
        &'a self,
        item: &'a Item,
        uids: Vec<String>,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
    fn remove_finalizer<'a>(
        &'a self,
        item: &'a Item,
        finalizer: &'static str,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
    fn on_change(&self, notify: Arc<Notify>);
}

fn ok_if_gone(r: Result<(), ApiError>) -> Result<(), ApiError> {
    match r {
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        other => other,
    }
}

impl<K: Kind> Informer<K> {
    /// Changes an object's metadata in place (gone or changed meanwhile is fine: the collector
    /// looks again on the next change).
    fn edit_meta<'a>(
        &'a self,
        item: &'a Item,
        edit: impl Fn(&mut ObjectMeta) + Send + Sync + 'a,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let r = self
                .registry
                .modify(
                    item.namespace.as_deref(),
                    &item.name,
                    Part::Main,
                    &WriteOptions::default(),
                    |old| {
                        let mut o = old.clone();
                        edit(o.metadata_mut());
                        Ok(o)
                    },
                )
                .await;
            ok_if_gone(r.map(|_| ()))
        })
    }
}

impl<K: Kind> Source for Informer<K> {
    fn kind(&self) -> &'static str {
        self.registry.info().kind
    }

    fn namespaced(&self) -> bool {
        self.registry.info().namespaced
    }

    fn items(&self, source: usize) -> Vec<Item> {
        let kind = self.kind();
        self.list(None)
            .iter()
            .map(|o| {
                let m = o.metadata();
                Item {
                    source,
                    kind,
                    namespace: m.namespace.clone(),
                    name: m.name.clone().unwrap_or_default(),
                    uid: m.uid.clone().unwrap_or_default(),
                    owners: m.owner_references.clone().unwrap_or_default(),
                    deleting: m.deletion_timestamp.is_some(),
                    finalizers: m.finalizers.clone().unwrap_or_default(),
                }
            })
            .collect()
    }

    fn exists<'a>(
        &'a self,
        ns: Option<&'a str>,
        name: &'a str,
        uid: &'a str,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            match self.registry.get(ns, name).await {
                Ok(o) => o.metadata().uid.as_deref() == Some(uid),
                Err(e) => e.code != 404,
            }
        })
    }

    fn delete<'a>(
        &'a self,
        item: &'a Item,
        policy: &'static str,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let opts = DeleteOptions {
                propagation_policy: Some(policy.into()),
                preconditions: Some(Preconditions {
                    uid: Some(item.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            ok_if_gone(
                self.registry
                    .delete(item.namespace.as_deref(), &item.name, &opts, false)
                    .await
                    .map(|_| ()),
            )
        })
    }

    fn remove_owners<'a>(
        &'a self,
        item: &'a Item,
        uids: Vec<String>,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        self.edit_meta(item, move |m| {
            if let Some(refs) = m.owner_references.as_mut() {
                refs.retain(|r| !uids.contains(&r.uid));
                if refs.is_empty() {
                    m.owner_references = None;
                }
            }
        })
    }

    fn remove_finalizer<'a>(
        &'a self,
        item: &'a Item,
        finalizer: &'static str,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        self.edit_meta(item, move |m| {
            if let Some(f) = m.finalizers.as_mut() {
                f.retain(|x| x != finalizer);
            }
        })
    }

    fn on_change(&self, notify: Arc<Notify>) {
        // Only changes that can matter to the collector wake it: objects with owners, deletions
        // (their dependents may be orphaned now), and owners marked for deletion.
        Informer::on_change(self, move |old, new| {
            let relevant = |o: &Arc<K::Obj>| {
                let m = o.metadata();
                m.owner_references.as_ref().is_some_and(|r| !r.is_empty())
                    || (m.deletion_timestamp.is_some()
                        && m.finalizers.as_ref().is_some_and(|f| !f.is_empty()))
            };
            if new.is_none() || old.is_some_and(relevant) || new.is_some_and(relevant) {
                notify.notify_one();
            }
        });
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Delete the item: its owners are all gone, or waiting for it.
    Delete { item: usize, policy: &'static str },
    /// Drop references to owners that are gone or waiting, keeping the live ones.
    RemoveOwners { item: usize, uids: Vec<String> },
    /// An owner whose dependents were dealt with: drop its GC finalizer.
    RemoveFinalizer {
        item: usize,
        finalizer: &'static str,
    },
}

/// The decisions, from every object's metadata. `known` are the kinds the collector sees: an
/// owner of another kind is never taken for absent.
pub fn decide(items: &[Item], known: &[&str]) -> Vec<Action> {
    let by_uid: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.uid.as_str(), i))
        .collect();
    let mut dependents: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        for r in &it.owners {
            dependents.entry(r.uid.as_str()).or_default().push(i);
        }
    }
    let mut actions = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if it.owners.is_empty() {
            continue;
        }
        let mut solid = 0;
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for r in &it.owners {
            match by_uid.get(r.uid.as_str()).map(|o| &items[*o]) {
                // Namespaced dependents may only be owned from their own namespace.
                Some(o) if o.namespace.is_none() || o.namespace == it.namespace => {
                    if o.deleting && o.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
                        waiting.push(r.uid.clone());
                    } else {
                        solid += 1;
                    }
                }
                _ if !known.contains(&r.kind.as_str()) => solid += 1,
                _ => dangling.push(r.uid.clone()),
            }
        }
        if solid > 0 {
            if !dangling.is_empty() || !waiting.is_empty() {
                let uids: Vec<String> = dangling.iter().chain(&waiting).cloned().collect();
                actions.push(Action::RemoveOwners { item: i, uids });
            }
        } else if !it.deleting {
            let policy =
                if !waiting.is_empty() || it.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
                    "Foreground"
                } else if it.finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
                    "Orphan"
                } else {
                    "Background"
                };
            actions.push(Action::Delete { item: i, policy });
        }
    }
    for (i, it) in items.iter().enumerate() {
        if !it.deleting {
            continue;
        }
        let deps = dependents.get(it.uid.as_str()).cloned().unwrap_or_default();
        if it.finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
            if deps.is_empty() {
                actions.push(Action::RemoveFinalizer {
                    item: i,
                    finalizer: ORPHAN_FINALIZER,
                });
            } else {
                for d in deps.iter() {
                    actions.push(Action::RemoveOwners {
                        item: *d,
                        uids: vec![it.uid.clone()],
                    });
                }
            }
        } else if it.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
            let blocking = deps.iter().any(|d| {
                items[*d]
                    .owners
                    .iter()
                    .any(|r| r.uid == it.uid && r.block_owner_deletion == Some(true))
            });
            if !blocking {
                actions.push(Action::RemoveFinalizer {
                    item: i,
                    finalizer: FOREGROUND_FINALIZER,
                });
            }
        }
    }
    actions
}

pub struct Collector {
    pub sources: Vec<Arc<dyn Source>>,
    notify: Arc<Notify>,
}

impl Collector {
    pub fn start(sources: Vec<Arc<dyn Source>>) -> Arc<Collector> {
        let notify = Arc::new(Notify::new());
        for s in &sources {
            s.on_change(notify.clone());
        }
        let c = Arc::new(Collector { sources, notify });
        let this = c.clone();
        tokio::spawn(async move { this.run().await });
        c
    }

    async fn run(&self) {
        loop {
            // Batch bursts of changes into one pass; look every 30 s regardless.
            let _ = tokio::time::timeout(Duration::from_secs(30), self.notify.notified()).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "garbage collection pass failed");
            }
        }
    }

    /// Whether an owner reference really names nothing (a live read, not the cache).
    async fn gone(&self, r: &OwnerReference, ns: Option<&str>) -> bool {
        match self.sources.iter().find(|s| s.kind() == r.kind) {
            Some(s) => {
                !s.exists(ns.filter(|_| s.namespaced()), &r.name, &r.uid)
                    .await
            }
            None => false,
        }
    }

    /// Owners missing from the caches may just not have arrived yet: ask the store.
    async fn confirm_absent(&self, it: &Item, cached: &HashSet<&str>) -> bool {
        for r in &it.owners {
            if !cached.contains(r.uid.as_str()) && !self.gone(r, it.namespace.as_deref()).await {
                return false;
            }
        }
        true
    }

    pub async fn pass(&self) -> Result<(), ApiError> {
        let items: Vec<Item> = self
            .sources
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.items(i))
            .collect();
        let known: Vec<&str> = self.sources.iter().map(|s| s.kind()).collect();
        let cached: HashSet<&str> = items.iter().map(|i| i.uid.as_str()).collect();
        for action in decide(&items, &known) {
            match action {
                Action::Delete { item, policy } => {
                    let it = &items[item];
                    if !self.confirm_absent(it, &cached).await {
                        continue;
                    }
                    tracing::info!(kind = it.kind, namespace = ?it.namespace, name = it.name, policy, "deleting an object whose owners are gone");
                    self.sources[it.source].delete(it, policy).await?;
                }
                Action::RemoveOwners { item, uids } => {
                    let it = &items[item];
                    if !self.confirm_absent(it, &cached).await {
                        continue;
                    }
                    self.sources[it.source].remove_owners(it, uids).await?;
                }
                Action::RemoveFinalizer { item, finalizer } => {
                    let it = &items[item];
                    self.sources[it.source]
                        .remove_finalizer(it, finalizer)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: &'static str, name: &str, uid: &str, owners: &[(&str, &str, bool)]) -> Item {
        Item {
            source: 0,
            kind,
            namespace: Some("default".into()),
            name: name.into(),
            uid: uid.into(),
            owners: owners
                .iter()
                .map(|(k, u, block)| OwnerReference {
                    api_version: "v1".into(),
                    kind: k.to_string(),
                    name: "x".into(),
                    uid: u.to_string(),
                    controller: Some(true),
                    block_owner_deletion: Some(*block),
                })
                .collect(),
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    const KNOWN: &[&str] = &["Deployment", "ReplicaSet", "Pod"];

    #[test]
    fn dependents_of_a_deleted_owner_are_deleted() {
        let items = [
            item("ReplicaSet", "rs", "rs1", &[("Deployment", "gone", true)]),
            item("Pod", "p", "p1", &[("ReplicaSet", "rs1", true)]),
        ];
        let actions = decide(&items, KNOWN);
        assert_eq!(actions.len(), 1);
        assert!(matches!(
            actions[0],
            Action::Delete {
                item: 0,
                policy: "Background",
                ..
            }
        ));
    }

    #[test]
    fn owners_of_unknown_kinds_are_never_taken_for_absent() {
        let items = [item("Pod", "p", "p1", &[("Widget", "w1", true)])];
        assert!(decide(&items, KNOWN).is_empty());
    }

    #[test]
    fn foreground_waits_for_blocking_dependents() {
        let mut owner = item("ReplicaSet", "rs", "rs1", &[]);
        owner.deleting = true;
        owner.finalizers = vec![FOREGROUND_FINALIZER.into()];
        let pod = item("Pod", "p", "p1", &[("ReplicaSet", "rs1", true)]);
        let actions = decide(&[owner.clone(), pod], KNOWN);
        assert_eq!(
            actions,
            [Action::Delete {
                item: 1,
                policy: "Foreground"
            }]
        );
        // Once the pod is gone, the owner's finalizer goes.
        let actions = decide(&[owner], KNOWN);
        assert_eq!(
            actions,
            [Action::RemoveFinalizer {
                item: 0,
                finalizer: FOREGROUND_FINALIZER
            }]
        );
    }

    #[test]
    fn orphaning_removes_references_then_the_finalizer() {
        let mut owner = item("ReplicaSet", "rs", "rs1", &[]);
        owner.deleting = true;
        owner.finalizers = vec![ORPHAN_FINALIZER.into()];
        let pod = item("Pod", "p", "p1", &[("ReplicaSet", "rs1", true)]);
        let actions = decide(&[owner.clone(), pod], KNOWN);
        assert!(
            actions.contains(&Action::RemoveOwners {
                item: 1,
                uids: vec!["rs1".into()]
            }),
            "{actions:?}"
        );
        assert!(!actions.iter().any(|a| matches!(a, Action::Delete { .. })));
        assert_eq!(
            decide(&[owner], KNOWN),
            [Action::RemoveFinalizer {
                item: 0,
                finalizer: ORPHAN_FINALIZER
            }]
        );
    }

    #[test]
    fn a_live_owner_keeps_its_dependent_and_dangling_refs_are_dropped() {
        let owner = item("ReplicaSet", "rs", "rs1", &[]);
        let pod = item(
            "Pod",
            "p",
            "p1",
            &[("ReplicaSet", "rs1", true), ("Deployment", "gone", false)],
        );
        let actions = decide(&[owner, pod], KNOWN);
        assert_eq!(actions.len(), 1);
        assert!(
            matches!(&actions[0], Action::RemoveOwners { item: 1, uids, .. } if uids == &vec!["gone".to_string()])
        );
    }
}
