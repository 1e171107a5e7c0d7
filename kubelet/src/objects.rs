//! The ConfigMaps and Secrets that pods' volumes reference, each kept current by a watch of
//! that one object (a `metadata.name` field selector), as the kubelet's watch-based configMap
//! and secret managers keep them (`configMapAndSecretChangeDetectionStrategy: Watch`, its
//! default). A watch is shared by every pod that references the object, starts with the first
//! reference and stops when the last pod goes. A change marks the referencing pods' volumes
//! stale and wakes their workers, which rewrite the volumes at once instead of at their next
//! periodic sync.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{watch, Notify};

/// How long a pod's first read of an object waits for its watch's initial list before its
/// sandbox is made (Kubernetes' `failed to sync configmap cache` comes after its own wait).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// The kind of a referenced object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    ConfigMap,
    Secret,
}

impl Source {
    /// The lower-case name Kubernetes' messages use.
    pub fn noun(self) -> &'static str {
        match self {
            Source::ConfigMap => "configmap",
            Source::Secret => "secret",
        }
    }
}

/// An object's keys (ConfigMap data and binaryData, or Secret data) as bytes.
pub type Keys = Arc<BTreeMap<String, Vec<u8>>>;

/// What a watch knows of its object.
#[derive(Clone, Debug)]
enum Seen {
    /// Not listed yet.
    Unknown,
    Absent,
    Present {
        rv: Option<String>,
        keys: Keys,
    },
}

impl Seen {
    fn same(&self, other: &Seen) -> bool {
        match (self, other) {
            (Seen::Unknown, Seen::Unknown) | (Seen::Absent, Seen::Absent) => true,
            (Seen::Present { rv: a, keys: ka }, Seen::Present { rv: b, keys: kb }) => {
                (a.is_some() && a == b) || ka == kb
            }
            _ => false,
        }
    }
}

/// How a pod's worker learns that an object its volumes hold has changed.
#[derive(Clone, Default)]
pub struct Subscriber {
    /// Set before `wake` is notified; the worker clears it when it rewrites the volumes.
    pub stale: Arc<AtomicBool>,
    pub wake: Arc<Notify>,
}

type Subscribers = Arc<Mutex<HashMap<String, Subscriber>>>;

struct Entry {
    seen: watch::Sender<Seen>,
    /// Referencing pods by UID.
    pods: Subscribers,
    task: tokio::task::JoinHandle<()>,
}

/// The watched objects, by (kind, namespace, name).
pub struct Objects {
    client: Client,
    entries: Mutex<HashMap<(Source, String, String), Entry>>,
}

impl Objects {
    pub fn new(client: Client) -> Self {
        Objects {
            client,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The keys of object `ns/name` (None: it does not exist), and from now on pod `uid` is
    /// told of its changes through `sub`. The first read of an object waits for its watch's
    /// initial list, at most `wait`; Err is Kubernetes' cache-sync failure.
    pub async fn get(
        &self,
        source: Source,
        ns: &str,
        name: &str,
        uid: &str,
        sub: &Subscriber,
        wait: Duration,
    ) -> Result<Option<Keys>, String> {
        let mut seen = {
            let mut entries = self.entries.lock().expect("objects");
            let key = (source, ns.to_string(), name.to_string());
            let entry = entries
                .entry(key)
                .or_insert_with(|| self.start(source, ns, name));
            entry
                .pods
                .lock()
                .expect("subscribers")
                .insert(uid.to_string(), sub.clone());
            entry.seen.subscribe()
        };
        let known = tokio::time::timeout(wait, seen.wait_for(|s| !matches!(s, Seen::Unknown)))
            .await
            .ok()
            .and_then(|r| r.ok().map(|s| s.clone()));
        match known {
            Some(Seen::Present { keys, .. }) => Ok(Some(keys)),
            Some(_) => Ok(None),
            None => Err(format!(
                "failed to sync {} cache: timed out waiting for the condition",
                source.noun()
            )),
        }
    }

    /// Pod `uid` references nothing any more: the watches no pod needs stop.
    pub fn release(&self, uid: &str) {
        self.entries.lock().expect("objects").retain(|_, e| {
            let mut pods = e.pods.lock().expect("subscribers");
            pods.remove(uid);
            let keep = !pods.is_empty();
            if !keep {
                e.task.abort();
            }
            keep
        });
    }

    fn start(&self, source: Source, ns: &str, name: &str) -> Entry {
        let (seen, _) = watch::channel(Seen::Unknown);
        let pods: Subscribers = Default::default();
        let task = match source {
            Source::ConfigMap => tokio::spawn(follow(
                Api::<ConfigMap>::namespaced(self.client.clone(), ns),
                name.to_string(),
                configmap_keys,
                seen.clone(),
                pods.clone(),
            )),
            Source::Secret => tokio::spawn(follow(
                Api::<Secret>::namespaced(self.client.clone(), ns),
                name.to_string(),
                secret_keys,
                seen.clone(),
                pods.clone(),
            )),
        };
        Entry { seen, pods, task }
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        for e in self.entries.lock().expect("objects").values() {
            e.task.abort();
        }
    }
}

fn configmap_keys(cm: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    data.extend(
        cm.binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    data
}

fn secret_keys(s: Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// Keeps `seen` equal to object `name` until aborted, waking the subscribers on each change.
async fn follow<K>(
    api: Api<K>,
    name: String,
    keys: fn(K) -> BTreeMap<String, Vec<u8>>,
    seen: watch::Sender<Seen>,
    pods: Subscribers,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let publish = |obj: Option<K>| {
        let now = match obj {
            None => Seen::Absent,
            Some(o) => Seen::Present {
                rv: o.meta().resource_version.clone(),
                keys: Arc::new(keys(o)),
            },
        };
        let changed = seen.send_if_modified(|s| {
            let changed = !s.same(&now);
            if changed {
                *s = now;
            }
            changed
        });
        if changed {
            for sub in pods.lock().expect("subscribers").values() {
                sub.stale.store(true, Ordering::Release);
                sub.wake.notify_one();
            }
        }
    };
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(api, cfg).default_backoff().boxed();
    let mut listed: Option<K> = None;
    while let Some(ev) = events.next().await {
        match ev {
            Ok(watcher::Event::Init) => listed = None,
            Ok(watcher::Event::InitApply(o)) => listed = Some(o),
            Ok(watcher::Event::InitDone) => publish(listed.take()),
            Ok(watcher::Event::Apply(o)) => publish(Some(o)),
            Ok(watcher::Event::Delete(_)) => publish(None),
            Err(e) => tracing::debug!(object = %name, error = %e, "watching a volume's object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_told_by_resource_version_or_content() {
        let keys = |v: &str| Arc::new(BTreeMap::from([("k".to_string(), v.as_bytes().to_vec())]));
        let a = Seen::Present {
            rv: Some("1".into()),
            keys: keys("a"),
        };
        let same_rv = Seen::Present {
            rv: Some("1".into()),
            keys: keys("a"),
        };
        let new_rv_same_keys = Seen::Present {
            rv: Some("2".into()),
            keys: keys("a"),
        };
        let new_keys = Seen::Present {
            rv: Some("3".into()),
            keys: keys("b"),
        };
        assert!(a.same(&same_rv));
        // Keys equal: nothing to rewrite even though the object was written.
        assert!(a.same(&new_rv_same_keys));
        assert!(!a.same(&new_keys));
        assert!(!a.same(&Seen::Absent));
        assert!(!Seen::Unknown.same(&Seen::Absent));
    }
}
