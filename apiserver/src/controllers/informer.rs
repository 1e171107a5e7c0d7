//! A shared informer: one list-then-watch per kind feeding a cache of decoded objects that every
//! controller reads, and change handlers that enqueue work. It re-lists when the watch breaks
//! (e.g. 410 after compaction), reporting the differences as changes, so nothing is missed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use tokio::sync::watch;

use super::queue::Queue;
use crate::registry::generic::{Change, ListOptions, Registry};
use crate::registry::selector::{FieldSelector, Selector};
use crate::registry::Kind;

/// Called with (old, new): (None, Some) added, (Some, Some) changed, (Some, None) deleted.
pub type Handler<T> = Box<dyn Fn(Option<&Arc<T>>, Option<&Arc<T>>) + Send + Sync>;

/// `namespace/name`, or `name` for cluster-scoped objects: the work-queue key.
pub fn key_of<T: Metadata<Ty = ObjectMeta>>(obj: &T) -> String {
    let m = obj.metadata();
    match m.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", m.name.as_deref().unwrap_or_default()),
        _ => m.name.clone().unwrap_or_default(),
    }
}

/// Splits a key back into (namespace, name).
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

/// An object's resourceVersion as the store revision it is.
pub fn revision(meta: &ObjectMeta) -> i64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rev_of<T: Metadata<Ty = ObjectMeta>>(obj: &T) -> i64 {
    revision(obj.metadata())
}

pub struct Informer<K: Kind> {
    pub registry: Arc<Registry<K>>,
    cache: RwLock<BTreeMap<String, Arc<K::Obj>>>,
    handlers: RwLock<Vec<Handler<K::Obj>>>,
    /// The newest revision the cache reflects.
    rev: watch::Sender<i64>,
    synced: watch::Sender<bool>,
}

impl<K: Kind> Informer<K> {
    pub fn new(registry: Arc<Registry<K>>) -> Arc<Self> {
        Arc::new(Informer {
            registry,
            cache: RwLock::new(BTreeMap::new()),
            handlers: RwLock::new(Vec::new()),
            rev: watch::Sender::new(0),
            synced: watch::Sender::new(false),
        })
    }

    pub fn on_change(
        &self,
        h: impl Fn(Option<&Arc<K::Obj>>, Option<&Arc<K::Obj>>) + Send + Sync + 'static,
    ) {
        self.handlers.write().unwrap().push(Box::new(h));
    }

    fn notify(&self, old: Option<&Arc<K::Obj>>, new: Option<&Arc<K::Obj>>) {
        for h in self.handlers.read().unwrap().iter() {
            h(old, new);
        }
    }

    fn apply(&self, key: String, new: Option<Arc<K::Obj>>) {
        let old = {
            let mut cache = self.cache.write().unwrap();
            match &new {
                Some(obj) => cache.insert(key, obj.clone()),
                None => cache.remove(&key),
            }
        };
        self.notify(old.as_ref(), new.as_ref());
    }

    /// Lists and watches forever.
    pub async fn run(self: Arc<Self>) {
        loop {
            let listed = match self.registry.list(None, &ListOptions::default()).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(kind = self.registry.info().kind, error = %e, "informer list failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let fresh: BTreeMap<String, Arc<K::Obj>> = listed
                .items
                .into_iter()
                .map(|o| (key_of(&o), Arc::new(o)))
                .collect();
            let stale: Vec<String> = {
                let cache = self.cache.read().unwrap();
                cache
                    .keys()
                    .filter(|k| !fresh.contains_key(*k))
                    .cloned()
                    .collect()
            };
            for key in stale {
                self.apply(key, None);
            }
            for (key, obj) in fresh {
                let unchanged = self.cache.read().unwrap().get(&key).is_some_and(|old| {
                    old.metadata().resource_version == obj.metadata().resource_version
                });
                if !unchanged {
                    self.apply(key, Some(obj));
                }
            }
            self.rev.send_replace(listed.rev);
            self.synced.send_replace(true);
            let mut w = match self
                .registry
                .watch(
                    None,
                    Selector::everything(),
                    FieldSelector::default(),
                    listed.rev,
                )
                .await
            {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(kind = self.registry.info().kind, error = %e, "informer watch failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            while let Some(change) = w.next().await {
                match change {
                    Ok(Change::Added(o) | Change::Modified(o)) => {
                        let rev = rev_of(&o);
                        self.apply(key_of(&o), Some(Arc::new(o)));
                        self.rev.send_replace(rev);
                    }
                    Ok(Change::Deleted(o)) => {
                        let rev = rev_of(&o);
                        self.apply(key_of(&o), None);
                        self.rev.send_replace(rev);
                    }
                    Err(e) => {
                        tracing::info!(kind = self.registry.info().kind, error = %e, "informer watch ended; re-listing");
                        break;
                    }
                }
            }
        }
    }

    /// Every change to an object queues the object's own key.
    pub fn enqueue_to(&self, queue: Arc<Queue>) {
        self.on_change(move |old, new| {
            if let Some(o) = new.or(old) {
                queue.add(key_of(o.as_ref()));
            }
        });
    }

    /// Every change to one of these objects queues its controlling owner of `owner_kind` or,
    /// for an orphan, each owner whose selector matches it (those that would adopt it).
    pub fn enqueue_owners<O: Kind>(
        &self,
        owners: Arc<Informer<O>>,
        owner_kind: &'static str,
        selector: fn(&O::Obj) -> Option<Selector>,
        queue: Arc<Queue>,
    ) {
        self.on_change(move |old, new| {
            for o in [old, new].into_iter().flatten() {
                let m = o.metadata();
                let ns = m.namespace.as_deref().unwrap_or_default();
                match super::podutil::controller_of(m) {
                    Some(r) if r.kind == owner_kind => queue.add(format!("{ns}/{}", r.name)),
                    Some(_) => {}
                    None => {
                        for owner in owners.list(Some(ns)) {
                            if selector(&owner).is_some_and(|s| s.matches_opt(m.labels.as_ref())) {
                                queue.add(key_of(owner.as_ref()));
                            }
                        }
                    }
                }
            }
        });
    }

    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Waits (briefly) until the cache reflects revision `rev`: a controller's own writes are
    /// seen by its next sync.
    pub async fn wait_for(&self, rev: i64) {
        let mut rx = self.rev.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|r| *r >= rev)).await;
    }

    pub fn get(&self, key: &str) -> Option<Arc<K::Obj>> {
        self.cache.read().unwrap().get(key).cloned()
    }

    /// Every cached object, or those of one namespace.
    pub fn list(&self, ns: Option<&str>) -> Vec<Arc<K::Obj>> {
        let cache = self.cache.read().unwrap();
        match ns {
            Some(ns) => {
                let prefix = format!("{ns}/");
                cache
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, v)| v.clone())
                    .collect()
            }
            None => cache.values().cloned().collect(),
        }
    }

    pub fn list_matching(&self, ns: Option<&str>, selector: &Selector) -> Vec<Arc<K::Obj>> {
        self.list(ns)
            .into_iter()
            .filter(|o| selector.matches_opt(o.metadata().labels.as_ref()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(split_key("default/web"), (Some("default"), "web"));
        assert_eq!(split_key("node-1"), (None, "node-1"));
    }
}
