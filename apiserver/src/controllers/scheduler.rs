//! The scheduler: binds each pending pod to the node that fits it best. A node fits when it is
//! Ready and schedulable (or the pod tolerates that), its labels satisfy the pod's nodeSelector,
//! the pod tolerates its NoSchedule/NoExecute taints, its free allocatable covers the pod's
//! requests and its host ports are free. Among fitting nodes the least allocated wins. Pods that
//! fit nowhere get PodScheduled=False with the reasons and a FailedScheduling event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, Taint, Toleration};

use super::events::{reference, Recorder};
use super::informer::{key_of, split_key, Informer};
use super::podutil;
use super::queue::{run_workers, Queue};
use crate::error::ApiError;
use crate::registry::kinds::node::NodeKind;
use crate::registry::kinds::pod::{bind, PodKind};
use crate::registry::quantity::parse_milli;
use crate::registry::{now, Part, WriteOptions};

pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Pods this scheduler should place.
pub fn is_pending(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    podutil::node_name(pod).is_empty()
        && spec
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME)
        && podutil::is_active(pod)
}

pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => key.is_empty() || key == taint.key,
        _ => {
            key == taint.key
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        ..Default::default()
    }
}

/// The taints that keep pods off a node: its own, plus those its state implies (a node that is
/// not Ready, or cordoned, repels pods even before the node lifecycle controller taints it).
pub fn effective_taints(node: &Node) -> Vec<Taint> {
    let mut taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    let implied = match ready {
        Some("True") => None,
        Some("Unknown") => Some("node.kubernetes.io/unreachable"),
        _ => Some("node.kubernetes.io/not-ready"),
    };
    if let Some(key) = implied {
        if !taints
            .iter()
            .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(taint(key, "NoSchedule"));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
        && !taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unschedulable")
    {
        taints.push(taint("node.kubernetes.io/unschedulable", "NoSchedule"));
    }
    taints
}

fn allocatable(node: &Node, resource: &str) -> i128 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .and_then(|a| a.get(resource))
        .and_then(|q| parse_milli(&q.0).ok())
        .unwrap_or(if resource == "pods" { 110_000 } else { 0 })
}

fn host_ports(pod: &Pod) -> Vec<(i32, String)> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            p.host_port
                .filter(|h| *h > 0)
                .map(|h| (h, p.protocol.clone().unwrap_or_else(|| "TCP".into())))
        })
        .collect()
}

/// Why a node does not fit the pod, in the scheduler's words; None when it fits.
fn unfit(pod: &Pod, node: &Node, on_node: &[&Pod]) -> Option<String> {
    let spec = pod.spec.clone().unwrap_or_default();
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    for t in effective_taints(node) {
        if t.effect != "NoSchedule" && t.effect != "NoExecute" {
            continue;
        }
        if !tolerations.iter().any(|tol| tolerates(tol, &t)) {
            if t.key == "node.kubernetes.io/unschedulable" {
                return Some("node(s) were unschedulable".into());
            }
            return Some(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.unwrap_or_default()
            ));
        }
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if spec
        .node_selector
        .iter()
        .flatten()
        .any(|(k, v)| labels.get(k) != Some(v))
    {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    if on_node.len() as i128 + 1 > allocatable(node, "pods") / 1000 {
        return Some("Too many pods".into());
    }
    let wants = podutil::requests(pod);
    let mut used: BTreeMap<String, i128> = BTreeMap::new();
    for p in on_node {
        for (k, v) in podutil::requests(p) {
            *used.entry(k).or_insert(0) += v;
        }
    }
    for (resource, want) in &wants {
        if *want == 0 || resource == "pods" {
            continue;
        }
        if used.get(resource).copied().unwrap_or(0) + want > allocatable(node, resource) {
            return Some(format!("Insufficient {resource}"));
        }
    }
    let taken: BTreeSet<(i32, String)> = on_node.iter().flat_map(|p| host_ports(p)).collect();
    if host_ports(pod).iter().any(|hp| taken.contains(hp)) {
        return Some("node(s) didn't have free ports for the requested pod ports".into());
    }
    None
}

/// Higher is better: the mean free share of cpu and memory once the pod is placed.
fn score(pod: &Pod, node: &Node, on_node: &[&Pod]) -> i128 {
    let wants = podutil::requests(pod);
    let mut total = 0;
    for resource in ["cpu", "memory"] {
        let cap = allocatable(node, resource);
        if cap <= 0 {
            continue;
        }
        let used: i128 = on_node
            .iter()
            .map(|p| podutil::requests(p).get(resource).copied().unwrap_or(0))
            .sum::<i128>()
            + wants.get(resource).copied().unwrap_or(0);
        total += (cap - used).max(0) * 100 / cap;
    }
    total
}

#[derive(Debug, PartialEq)]
pub enum Decision {
    Bind(String),
    Unschedulable(String),
}

/// Picks a node for `pod` among `nodes`, given every pod bound so far.
pub fn schedule(pod: &Pod, nodes: &[Arc<Node>], pods: &[Arc<Pod>]) -> Decision {
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for p in pods {
        if !podutil::node_name(p).is_empty() && !podutil::is_terminal(p) {
            by_node.entry(podutil::node_name(p)).or_default().push(p);
        }
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(i128, usize, &str)> = None;
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let on_node = by_node.get(name).map(Vec::as_slice).unwrap_or_default();
        match unfit(pod, node, on_node) {
            Some(why) => *reasons.entry(why).or_insert(0) += 1,
            None => {
                let s = score(pod, node, on_node);
                // Best score, then fewest pods, then name.
                let better = match best {
                    None => true,
                    Some((bs, bn, bname)) => {
                        (s, std::cmp::Reverse(on_node.len()), std::cmp::Reverse(name))
                            > (bs, std::cmp::Reverse(bn), std::cmp::Reverse(bname))
                    }
                };
                if better {
                    best = Some((s, on_node.len(), name));
                }
            }
        }
    }
    match best {
        Some((_, _, name)) => Decision::Bind(name.to_string()),
        None => {
            let detail: Vec<String> = reasons
                .iter()
                .map(|(why, n)| format!("{n} {why}"))
                .collect();
            let mut msg = format!("0/{} nodes are available", nodes.len());
            if !detail.is_empty() {
                msg.push_str(": ");
                msg.push_str(&detail.join(", "));
            }
            msg.push('.');
            Decision::Unschedulable(msg)
        }
    }
}

pub struct Scheduler {
    pub pods: Arc<Informer<PodKind>>,
    pub nodes: Arc<Informer<NodeKind>>,
    pub recorder: Recorder,
    pub queue: Arc<Queue>,
}

impl Scheduler {
    pub fn new(
        pods: Arc<Informer<PodKind>>,
        nodes: Arc<Informer<NodeKind>>,
        recorder: Recorder,
    ) -> Arc<Scheduler> {
        let s = Arc::new(Scheduler {
            pods,
            nodes,
            recorder: recorder.for_component(SCHEDULER_NAME),
            queue: Queue::new("scheduler"),
        });
        let q = s.queue.clone();
        let pods = s.pods.clone();
        s.pods.on_change(move |old, new| {
            match new {
                Some(p) if is_pending(p) => q.add(key_of(p.as_ref())),
                // A pod that left a node (or finished) may make room for the waiting ones.
                _ => {
                    let freed = old.is_some_and(|o| !podutil::node_name(o).is_empty())
                        && new.is_none_or(|n| !podutil::is_active(n));
                    if freed {
                        for p in pods.list(None).iter().filter(|p| is_pending(p)) {
                            q.add(key_of(p.as_ref()));
                        }
                    }
                }
            }
        });
        let q = s.queue.clone();
        let pods = s.pods.clone();
        s.nodes.on_change(move |_, _| {
            for p in pods.list(None).iter().filter(|p| is_pending(p)) {
                q.add(key_of(p.as_ref()));
            }
        });
        s
    }

    /// Starts the workers; call once the informers have synced.
    pub fn run(self: &Arc<Self>) {
        let this = self.clone();
        run_workers(self.queue.clone(), 1, move |key| {
            let this = this.clone();
            async move { this.sync(&key).await }
        });
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>, ApiError> {
        let Some(pod) = self.pods.get(key) else {
            return Ok(None);
        };
        if !is_pending(&pod) {
            return Ok(None);
        }
        let (ns, name) = split_key(key);
        let nodes = self.nodes.list(None);
        let pods = self.pods.list(None);
        let opts = WriteOptions::default();
        match schedule(&pod, &nodes, &pods) {
            Decision::Bind(node) => {
                let bound = self
                    .pods
                    .registry
                    .modify(ns, name, Part::Internal, &opts, |old| {
                        let mut p = old.clone();
                        bind(&mut p, &node)?;
                        Ok(p)
                    })
                    .await;
                match bound {
                    Ok(p) => {
                        let rev = p
                            .metadata
                            .resource_version
                            .as_deref()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        self.recorder.normal(
                            reference(&p),
                            "Scheduled",
                            format!(
                                "Successfully assigned {}/{name} to {node}",
                                ns.unwrap_or_default()
                            ),
                        );
                        self.pods.wait_for(rev).await;
                        Ok(None)
                    }
                    // Bound by someone else, or gone: nothing left to do.
                    Err(e)
                        if e.code == 404
                            || (e.code == 409 && e.message.contains("already assigned")) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            }
            Decision::Unschedulable(msg) => {
                self.recorder
                    .warning(reference(pod.as_ref()), "FailedScheduling", msg.clone());
                let current = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
                    .cloned();
                let fresh = current
                    .as_ref()
                    .is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(&msg));
                if !fresh {
                    let updated = self
                        .pods
                        .registry
                        .modify(ns, name, Part::Status, &opts, |old| {
                            let mut p = old.clone();
                            let status = p.status.get_or_insert_with(Default::default);
                            let conditions = status.conditions.get_or_insert_with(Vec::new);
                            conditions.retain(|c| c.type_ != "PodScheduled");
                            conditions.push(PodCondition {
                                type_: "PodScheduled".into(),
                                status: "False".into(),
                                reason: Some("Unschedulable".into()),
                                message: Some(msg.clone()),
                                last_transition_time: Some(now()),
                                ..Default::default()
                            });
                            Ok(p)
                        })
                        .await;
                    if let Err(e) = updated {
                        if e.code != 404 {
                            return Err(e);
                        }
                    }
                }
                // Changes to nodes and pods bring it back sooner.
                Ok(Some(Duration::from_secs(10)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: &str, extra: serde_json::Value) -> Arc<Node> {
        let mut v = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": ready}],
                       "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}
        });
        json_patch::merge(&mut v, &extra);
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn pod(extra: serde_json::Value) -> Pod {
        let mut v = json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "500m"}}}],
                     "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]}
        });
        json_patch::merge(&mut v, &extra);
        serde_json::from_value(v).unwrap()
    }

    fn bound(node: &str, cpu: &str) -> Arc<Pod> {
        Arc::new(pod(
            json!({"spec": {"nodeName": node, "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu}}}]}}),
        ))
    }

    #[test]
    fn picks_a_ready_node_with_room() {
        let nodes = [node("a", "True", json!({})), node("b", "False", json!({}))];
        assert_eq!(
            schedule(&pod(json!({})), &nodes, &[]),
            Decision::Bind("a".into())
        );
    }

    #[test]
    fn least_allocated_wins() {
        let nodes = [node("a", "True", json!({})), node("b", "True", json!({}))];
        let pods = [bound("a", "1")];
        assert_eq!(
            schedule(&pod(json!({})), &nodes, &pods),
            Decision::Bind("b".into())
        );
    }

    #[test]
    fn taints_selectors_cordons_and_resources_exclude_nodes() {
        let nodes = [
            node(
                "tainted",
                "True",
                json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
            ),
            node("cordoned", "True", json!({"spec": {"unschedulable": true}})),
            node("full", "True", json!({})),
            node("notready", "False", json!({})),
        ];
        let pods = [bound("full", "1800m")];
        match schedule(&pod(json!({})), &nodes, &pods) {
            Decision::Unschedulable(msg) => {
                assert!(msg.starts_with("0/4 nodes are available: "), "{msg}");
                for part in [
                    "1 Insufficient cpu",
                    "1 node(s) had untolerated taint {dedicated: db}",
                    "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
                    "1 node(s) were unschedulable",
                ] {
                    assert!(msg.contains(part), "{part} missing: {msg}");
                }
            }
            other => panic!("{other:?}"),
        }
        // A toleration and a matching selector open the tainted node.
        let p = pod(
            json!({"spec": {"nodeSelector": {"kubernetes.io/hostname": "tainted"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(
            schedule(&p, &nodes, &pods),
            Decision::Bind("tainted".into())
        );
    }

    #[test]
    fn toleration_matching() {
        let t = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tol = |v: serde_json::Value| -> Toleration { serde_json::from_value(v).unwrap() };
        assert!(tolerates(
            &tol(json!({"key": "k", "operator": "Equal", "value": "v"})),
            &t
        ));
        assert!(!tolerates(
            &tol(json!({"key": "k", "operator": "Equal", "value": "w"})),
            &t
        ));
        assert!(tolerates(
            &tol(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})),
            &t
        ));
        assert!(!tolerates(
            &tol(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})),
            &t
        ));
        assert!(tolerates(&tol(json!({"operator": "Exists"})), &t));
    }
}
