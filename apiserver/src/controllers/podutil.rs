//! Facts about pods and owners that several controllers need, as Kubernetes' podutil and
//! controller_utils define them.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::Metadata;

use crate::registry::quantity::parse_milli;
use crate::registry::time_secs;

pub fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready").is_some_and(|c| c.status == "True")
}

/// When the pod last became ready (seconds), if it is ready.
pub fn ready_since(pod: &Pod) -> Option<i64> {
    condition(pod, "Ready")
        .filter(|c| c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(time_secs).unwrap_or(0))
}

/// Ready for at least `min_ready_seconds`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: i64) -> bool {
    ready_since(pod).is_some_and(|t| min_ready_seconds == 0 || t + min_ready_seconds as i64 <= now)
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Counts toward a controller's replicas: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !is_terminal(pod)
}

pub fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// The controller reference a workload puts on what it creates.
pub fn controller_ref<T>(owner: &T) -> OwnerReference
where
    T: k8s_openapi::Resource + Metadata<Ty = ObjectMeta>,
{
    let m = owner.metadata();
    OwnerReference {
        api_version: T::API_VERSION.to_string(),
        kind: T::KIND.to_string(),
        name: m.name.clone().unwrap_or_default(),
        uid: m.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| c.restart_count)
        .sum()
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

/// Kubernetes' ActivePodsWithRanks order: the pods to delete first when scaling down come
/// first (unassigned, pending, not ready, on crowded nodes, ready for less time, restarted more,
/// newer).
pub fn deletion_order(a: &Pod, b: &Pod, per_node: &BTreeMap<String, usize>) -> Ordering {
    let assigned = |p: &Pod| !node_name(p).is_empty();
    let crowd = |p: &Pod| per_node.get(node_name(p)).copied().unwrap_or(0);
    let created = |p: &Pod| {
        p.metadata
            .creation_timestamp
            .as_ref()
            .map(time_secs)
            .unwrap_or(0)
    };
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(is_ready(a).cmp(&is_ready(b)))
        .then(crowd(b).cmp(&crowd(a)))
        .then_with(|| match (ready_since(a), ready_since(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then(restarts(b).cmp(&restarts(a)))
        .then(created(b).cmp(&created(a)))
}

/// What a pod asks of a node: cpu (millicores), memory and ephemeral storage (milli-bytes), as
/// the scheduler counts it: the larger of the containers' sum and any init container.
pub fn requests(pod: &Pod) -> BTreeMap<String, i128> {
    let mut sum: BTreeMap<String, i128> = BTreeMap::new();
    let Some(spec) = &pod.spec else {
        return sum;
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| -> BTreeMap<String, i128> {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .map(|r| {
                r.iter()
                    .filter_map(|(k, q)| parse_milli(&q.0).ok().map(|v| (k.clone(), v)))
                    .collect()
            })
            .unwrap_or_default()
    };
    for c in &spec.containers {
        for (k, v) in of(c) {
            *sum.entry(k).or_insert(0) += v;
        }
    }
    for c in spec.init_containers.iter().flatten() {
        for (k, v) in of(c) {
            let e = sum.entry(k).or_insert(0);
            *e = (*e).max(v);
        }
    }
    for (k, q) in spec.overhead.iter().flatten() {
        if let Ok(v) = parse_milli(&q.0) {
            *sum.entry(k.clone()).or_insert(0) += v;
        }
    }
    sum
}

/// Records Kubernetes' `SuccessfulCreate` or `FailedCreate` event on `owner` for each result
/// of creating pods: the newest revision written and the last error.
pub fn record_creates(
    results: Vec<crate::error::ApiResult<Pod>>,
    recorder: &super::events::Recorder,
    owner: &k8s_openapi::api::core::v1::ObjectReference,
) -> (i64, Option<crate::error::ApiError>) {
    let (mut newest, mut failure) = (0, None);
    for r in results {
        match r {
            Ok(pod) => {
                newest = newest.max(super::informer::revision(&pod.metadata));
                recorder.normal(
                    owner.clone(),
                    "SuccessfulCreate",
                    format!("Created pod: {}", pod.metadata.name.unwrap_or_default()),
                );
            }
            Err(e) => {
                recorder.warning(
                    owner.clone(),
                    "FailedCreate",
                    format!("Error creating: {}", e.message),
                );
                failure = Some(e);
            }
        }
    }
    (newest, failure)
}

/// Deletes the pods `names` of namespace `ns` (each only if it is still the pod the cache
/// holds, by UID), recording Kubernetes' `SuccessfulDelete` event on `owner` for each: the
/// newest revision written and the last error (pods already gone are no error).
pub async fn delete_pods(
    pods: &super::informer::Informer<crate::registry::kinds::pod::PodKind>,
    ns: Option<&str>,
    names: &[String],
    recorder: &super::events::Recorder,
    owner: k8s_openapi::api::core::v1::ObjectReference,
) -> (i64, Option<crate::error::ApiError>) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Preconditions};
    let registry = &pods.registry;
    let results = futures::future::join_all(names.iter().map(|name| {
        let pod = pods.get(&format!("{}/{name}", ns.unwrap_or_default()));
        let del = DeleteOptions {
            preconditions: Some(Preconditions {
                uid: pod.and_then(|p| p.metadata.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        async move { (name, registry.delete(ns, name, &del, false).await) }
    }))
    .await;
    let (mut newest, mut failure) = (0, None);
    for (name, r) in results {
        match r {
            Ok(outcome) => {
                newest = newest.max(super::informer::revision(&outcome.object().metadata));
                recorder.normal(
                    owner.clone(),
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                );
            }
            Err(e) if e.code == 404 => {}
            Err(e) => failure = Some(e),
        }
    }
    (newest, failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn scale_down_prefers_unassigned_then_not_ready_then_newer() {
        let unassigned = pod(
            json!({"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Pending"}}),
        );
        let not_ready = pod(
            json!({"metadata": {"name": "b", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Running"}}),
        );
        let ready_old = pod(
            json!({"metadata": {"name": "c", "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"nodeName": "n", "containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"}]}}),
        );
        let ready_new = pod(
            json!({"metadata": {"name": "d", "creationTimestamp": "2026-01-01T00:01:00Z"}, "spec": {"nodeName": "n", "containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:01:10Z"}]}}),
        );
        let mut pods = [&ready_old, &ready_new, &not_ready, &unassigned];
        let per_node = BTreeMap::new();
        pods.sort_by(|a, b| deletion_order(a, b, &per_node));
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "d", "c"]);
    }

    #[test]
    fn requests_take_the_larger_of_containers_and_init() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                           {"name": "b", "resources": {"requests": {"cpu": "200m"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "500m"}}}]}}));
        let r = requests(&p);
        assert_eq!(r["cpu"], 500);
        assert_eq!(r["memory"], 64 * 1024 * 1024 * 1000);
    }
}
