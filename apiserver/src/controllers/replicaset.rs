//! The ReplicaSet controller: as many active pods as `spec.replicas`, owned through a controller
//! reference; matching orphans are adopted, owned pods whose labels stop matching are released
//! (and replaced); when scaling down, unassigned, not-ready and newer pods go first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::events::{reference, Recorder};
use super::informer::{revision as rev, split_key, Informer};
use super::podutil::{self, controller_ref};
use super::queue::{run_workers, Queue};
use crate::error::ApiError;
use crate::registry::kinds::{pod::PodKind, replicaset::ReplicaSetKind};
use crate::registry::selector::Selector;
use crate::registry::{now, now_secs, Part, WriteOptions};

/// At most this many pods are created or deleted in one sync (Kubernetes' burstReplicas).
const BURST: usize = 500;

/// What one sync of a ReplicaSet should do.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub adopt: Vec<String>,
    pub release: Vec<String>,
    pub create: usize,
    pub delete: Vec<String>,
    pub status: ReplicaSetStatus,
    /// When a ready pod will have been ready for minReadySeconds.
    pub recheck_after: Option<Duration>,
}

fn selector(rs: &ReplicaSet) -> Option<Selector> {
    let s = Selector::from_label_selector(&rs.spec.as_ref()?.selector).ok()?;
    (!s.is_empty()).then_some(s)
}

/// The decision, from the ReplicaSet and the pods of its namespace.
pub fn plan(rs: &ReplicaSet, pods: &[Arc<Pod>], now: i64) -> Plan {
    let mut p = Plan::default();
    let Some(sel) = selector(rs) else {
        return p;
    };
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let spec = rs.spec.clone().unwrap_or_default();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut mine: Vec<&Arc<Pod>> = Vec::new();
    for pod in pods {
        let matches = sel.matches_opt(pod.metadata.labels.as_ref());
        match podutil::controller_of(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    mine.push(pod);
                } else if !deleting {
                    p.release
                        .push(pod.metadata.name.clone().unwrap_or_default());
                }
            }
            Some(_) => {}
            None if matches && !deleting && pod.metadata.deletion_timestamp.is_none() => {
                p.adopt.push(pod.metadata.name.clone().unwrap_or_default());
                mine.push(pod);
            }
            None => {}
        }
    }
    let active: Vec<&Arc<Pod>> = mine
        .iter()
        .copied()
        .filter(|p| podutil::is_active(p))
        .collect();
    let want = spec.replicas.unwrap_or(1).max(0) as usize;
    if !deleting {
        if active.len() < want {
            p.create = (want - active.len()).min(BURST);
        } else if active.len() > want {
            let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
            for pod in &active {
                *per_node
                    .entry(podutil::node_name(pod).to_string())
                    .or_default() += 1;
            }
            let mut ranked = active.clone();
            ranked.sort_by(|a, b| podutil::deletion_order(a, b, &per_node));
            p.delete = ranked
                .iter()
                .take((active.len() - want).min(BURST))
                .map(|pod| pod.metadata.name.clone().unwrap_or_default())
                .collect();
        }
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut status = ReplicaSetStatus {
        replicas: active.len() as i32,
        observed_generation: rs.metadata.generation,
        ..Default::default()
    };
    let (mut labeled, mut ready, mut available) = (0, 0, 0);
    for pod in &active {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            labeled += 1;
        }
        if podutil::is_ready(pod) {
            ready += 1;
            if podutil::is_available(pod, min_ready, now) {
                available += 1;
            } else if let Some(since) = podutil::ready_since(pod) {
                let left = Duration::from_secs((since + min_ready as i64 - now).max(1) as u64);
                p.recheck_after = Some(p.recheck_after.map_or(left, |d| d.min(left)));
            }
        }
    }
    status.fully_labeled_replicas = Some(labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.conditions = rs.status.as_ref().and_then(|s| s.conditions.clone());
    p.status = status;
    p
}

/// The pod a ReplicaSet creates from its template.
pub fn pod_for(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}-",
                rs.metadata.name.as_deref().unwrap_or_default()
            )),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_ref(rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

pub struct Controller {
    pub replicasets: Arc<Informer<ReplicaSetKind>>,
    pub pods: Arc<Informer<PodKind>>,
    pub recorder: Recorder,
    pub queue: Arc<Queue>,
}

impl Controller {
    pub fn new(
        replicasets: Arc<Informer<ReplicaSetKind>>,
        pods: Arc<Informer<PodKind>>,
        recorder: Recorder,
    ) -> Arc<Controller> {
        let c = Arc::new(Controller {
            replicasets,
            pods,
            recorder: recorder.for_component("replicaset-controller"),
            queue: Queue::new("replicaset"),
        });
        c.replicasets.enqueue_to(c.queue.clone());
        c.pods.enqueue_owners(
            c.replicasets.clone(),
            "ReplicaSet",
            selector,
            c.queue.clone(),
        );
        c
    }

    /// Starts the workers; call once the informers have synced.
    pub fn run(self: &Arc<Self>) {
        let this = self.clone();
        run_workers(self.queue.clone(), 4, move |key| {
            let this = this.clone();
            async move { this.sync(&key).await }
        });
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>, ApiError> {
        let Some(rs) = self.replicasets.get(key) else {
            return Ok(None);
        };
        let (ns, _) = split_key(key);
        let span = tracing::debug_span!("replicaset", key);
        let _enter = span.enter();
        let pods = self.pods.list(ns);
        let p = plan(&rs, &pods, now_secs());
        let registry = &self.pods.registry;
        let opts = WriteOptions::default();
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let mut newest = 0;
        for name in &p.adopt {
            let sel = selector(&rs);
            let owner = controller_ref(rs.as_ref());
            let adopted = registry
                .modify(ns, name, Part::Main, &opts, |old| {
                    let mut pod = old.clone();
                    // Only if it is still an orphan that matches.
                    if podutil::controller_of(&pod.metadata).is_none()
                        && sel
                            .as_ref()
                            .is_some_and(|s| s.matches_opt(pod.metadata.labels.as_ref()))
                    {
                        pod.metadata
                            .owner_references
                            .get_or_insert_with(Vec::new)
                            .push(owner.clone());
                    }
                    Ok(pod)
                })
                .await;
            if let Ok(pod) = adopted {
                newest = newest.max(rev(&pod.metadata));
            }
        }
        for name in &p.release {
            let released = registry
                .modify(ns, name, Part::Main, &opts, |old| {
                    let mut pod = old.clone();
                    if let Some(refs) = pod.metadata.owner_references.as_mut() {
                        refs.retain(|r| r.uid != uid);
                    }
                    Ok(pod)
                })
                .await;
            if let Ok(pod) = released {
                newest = newest.max(rev(&pod.metadata));
            }
        }
        let mut failure: Option<ApiError> = None;
        if p.create > 0 {
            // Slow start: 1, 2, 4, ... at a time, stopping at the first failure.
            let template = pod_for(&rs);
            let mut left = p.create;
            let mut batch = 1;
            while left > 0 && failure.is_none() {
                let n = batch.min(left);
                let results =
                    join_all((0..n).map(|_| registry.create(ns, template.clone(), &opts))).await;
                let (written, failed) =
                    podutil::record_creates(results, &self.recorder, &reference(rs.as_ref()));
                newest = newest.max(written);
                failure = failed.or(failure);
                left -= n;
                batch *= 2;
            }
        }
        if !p.delete.is_empty() {
            let (written, failed) = podutil::delete_pods(
                &self.pods,
                ns,
                &p.delete,
                &self.recorder,
                reference(rs.as_ref()),
            )
            .await;
            newest = newest.max(written);
            failure = failed.or(failure);
        }
        let mut status = p.status.clone();
        if newest > 0 {
            // The status counts the pods as they are after this sync's own changes.
            self.pods.wait_for(newest).await;
            status = plan(&rs, &self.pods.list(ns), now_secs()).status;
        }
        set_failure_condition(&mut status, failure.as_ref());
        if Some(&status) != rs.status.as_ref() {
            let (_, name) = split_key(key);
            let updated = self
                .replicasets
                .registry
                .modify(ns, name, Part::Status, &opts, |old| {
                    let mut r = old.clone();
                    r.status = Some(status.clone());
                    Ok(r)
                })
                .await;
            match updated {
                Ok(r) => self.replicasets.wait_for(rev(&r.metadata)).await,
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(p.recheck_after),
        }
    }
}

fn set_failure_condition(status: &mut ReplicaSetStatus, failure: Option<&ApiError>) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match failure {
        Some(e) => {
            if !conditions.iter().any(|c| c.type_ == "ReplicaFailure") {
                conditions.push(ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some("FailedCreate".into()),
                    message: Some(e.message.clone()),
                    last_transition_time: Some(now()),
                });
            }
        }
        None => conditions.retain(|c| c.type_ != "ReplicaFailure"),
    }
    if conditions.is_empty() {
        status.conditions = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(replicas: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
        }))
        .unwrap()
    }

    fn pod(name: &str, labels: serde_json::Value, owner: Option<&str>, ready: bool) -> Arc<Pod> {
        let owners = owner.map(|uid| json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": uid, "controller": true}]));
        let mut status = json!({"phase": "Running"});
        if ready {
            status["conditions"] = json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "labels": labels, "ownerReferences": owners,
                              "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
                "status": status,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn creates_the_missing_pods() {
        let p = plan(
            &rs(3),
            &[pod("a", json!({"app": "web"}), Some("rs-uid"), true)],
            10_000_000_000,
        );
        assert_eq!(p.create, 2);
        assert_eq!(p.status.replicas, 1);
        assert_eq!(p.status.ready_replicas, Some(1));
        assert_eq!(p.status.available_replicas, Some(1));
        assert_eq!(p.status.observed_generation, Some(2));
    }

    #[test]
    fn a_relabelled_pod_is_released_and_replaced() {
        let pods = [
            pod("a", json!({"app": "web"}), Some("rs-uid"), true),
            pod("b", json!({"app": "debug"}), Some("rs-uid"), true),
        ];
        let p = plan(&rs(2), &pods, 0);
        assert_eq!(p.release, ["b"]);
        assert_eq!(p.create, 1);
    }

    #[test]
    fn orphans_are_adopted_and_others_pods_left_alone() {
        let pods = [
            pod("orphan", json!({"app": "web"}), None, true),
            pod("theirs", json!({"app": "web"}), Some("other-uid"), true),
        ];
        let p = plan(&rs(1), &pods, 0);
        assert_eq!(p.adopt, ["orphan"]);
        assert_eq!(p.create, 0);
        assert!(p.delete.is_empty());
    }

    #[test]
    fn scaling_down_deletes_not_ready_first() {
        let pods = [
            pod("ready1", json!({"app": "web"}), Some("rs-uid"), true),
            pod("unready", json!({"app": "web"}), Some("rs-uid"), false),
            pod("ready2", json!({"app": "web"}), Some("rs-uid"), true),
        ];
        let p = plan(&rs(2), &pods, 0);
        assert_eq!(p.delete, ["unready"]);
    }

    #[test]
    fn terminating_pods_do_not_count() {
        let mut gone = (*pod("old", json!({"app": "web"}), Some("rs-uid"), true)).clone();
        gone.metadata.deletion_timestamp = Some(crate::registry::now());
        let p = plan(&rs(1), &[Arc::new(gone)], 0);
        assert_eq!(p.create, 1);
        assert_eq!(p.status.replicas, 0);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let mut r = rs(1);
        r.spec.as_mut().unwrap().min_ready_seconds = Some(30);
        let ready_at = k8s_openapi::jiff::Timestamp::from_second(1_767_225_600)
            .unwrap()
            .as_second();
        let p = plan(
            &r,
            &[pod("a", json!({"app": "web"}), Some("rs-uid"), true)],
            ready_at + 10,
        );
        assert_eq!(p.status.available_replicas, Some(0));
        assert_eq!(p.recheck_after, Some(Duration::from_secs(20)));
    }
}
