//! Node lifecycle: a node whose kubelet stops renewing its Lease (and posting status) for longer
//! than the grace period becomes Ready=Unknown; nodes that are not Ready get Kubernetes'
//! NoSchedule and NoExecute taints (cordoned ones the unschedulable taint); the pods of an
//! unreachable node are marked not ready, so endpoints drop them; and pods on a node with a
//! NoExecute taint are deleted once their tolerations run out (taint-based eviction), so their
//! controllers replace them elsewhere.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, Preconditions, Time};

use super::events::{reference, Recorder};
use super::informer::Informer;
use super::podutil;
use super::scheduler::tolerates;
use crate::error::ApiError;
use crate::registry::kinds::{lease::LeaseKind, node::NodeKind, pod::PodKind};
use crate::registry::{now, time_secs, Part, WriteOptions};

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// How long a node may go without a heartbeat before it is Unknown (Kubernetes: 40 s).
    pub grace: Duration,
    /// How often nodes are looked at (Kubernetes: 5 s).
    pub period: Duration,
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The newest sign of life: the Lease's renewTime, the Ready heartbeat, or the node's creation.
pub fn last_heartbeat(node: &Node, lease: Option<&Lease>) -> i64 {
    let lease_time = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0.as_second());
    let status_time = ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(time_secs);
    let created = node.metadata.creation_timestamp.as_ref().map(time_secs);
    [lease_time, status_time, created]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0)
}

/// What to change on a node.
#[derive(Debug, Default, PartialEq)]
pub struct NodePlan {
    /// The kubelet went silent: conditions to Unknown.
    pub mark_unknown: bool,
    /// The taints the node should carry, when they differ from what it has.
    pub taints: Option<Vec<Taint>>,
}

pub fn node_plan(node: &Node, lease: Option<&Lease>, now: i64, grace: Duration) -> NodePlan {
    let ready = ready_condition(node).map(|c| c.status.clone());
    let stale = now - last_heartbeat(node, lease) > grace.as_secs() as i64;
    let mark_unknown = stale && ready.as_deref() != Some("Unknown");
    let effective = if stale {
        Some("Unknown".to_string())
    } else {
        ready
    };
    let current: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let condition_key = match effective.as_deref() {
        Some("True") => None,
        Some("Unknown") => Some(UNREACHABLE),
        // A node that never reported, or reports NotReady.
        _ => Some(NOT_READY),
    };
    let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    let mut want: Vec<Taint> = current
        .iter()
        .filter(|t| t.key != UNREACHABLE && t.key != NOT_READY && t.key != UNSCHEDULABLE)
        .cloned()
        .collect();
    let keep_or_new = |key: &str, effect: &str| -> Taint {
        current
            .iter()
            .find(|t| t.key == key && t.effect == effect)
            .cloned()
            .unwrap_or_else(|| Taint {
                key: key.into(),
                effect: effect.into(),
                time_added: (effect == "NoExecute").then(|| {
                    Time(k8s_openapi::jiff::Timestamp::from_second(now).unwrap_or_default())
                }),
                value: None,
            })
    };
    if let Some(key) = condition_key {
        want.push(keep_or_new(key, "NoSchedule"));
        want.push(keep_or_new(key, "NoExecute"));
    }
    if cordoned {
        want.push(keep_or_new(UNSCHEDULABLE, "NoSchedule"));
    }
    let same = want.len() == current.len() && want.iter().all(|t| current.contains(t));
    NodePlan {
        mark_unknown,
        taints: (!same).then_some(want),
    }
}

/// When a pod on a node with these taints must go: now (untolerated NoExecute taint), at a
/// time (a toleration with tolerationSeconds), or never.
pub fn eviction_time(pod: &Pod, taints: &[Taint]) -> Option<i64> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut due: Option<i64> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let added = taint.time_added.as_ref().map(time_secs).unwrap_or(0);
        let limit = tolerations
            .iter()
            .filter(|t| tolerates(t, taint))
            .map(|t| t.toleration_seconds)
            .fold(None::<Option<i64>>, |acc, s| match (acc, s) {
                // Tolerated forever by one toleration: forever.
                (Some(None), _) | (_, None) => Some(None),
                (Some(Some(a)), Some(b)) => Some(Some(a.max(b))),
                (None, Some(b)) => Some(Some(b)),
            });
        let at = match limit {
            None => i64::MIN,
            Some(None) => continue,
            Some(Some(secs)) => added + secs.max(0),
        };
        due = Some(due.map_or(at, |d| d.min(at)));
    }
    due
}

pub struct Controller {
    pub nodes: Arc<Informer<NodeKind>>,
    pub leases: Arc<Informer<LeaseKind>>,
    pub pods: Arc<Informer<PodKind>>,
    pub recorder: Recorder,
    pub config: Config,
}

impl Controller {
    pub fn start(
        nodes: Arc<Informer<NodeKind>>,
        leases: Arc<Informer<LeaseKind>>,
        pods: Arc<Informer<PodKind>>,
        recorder: Recorder,
        config: Config,
    ) -> Arc<Controller> {
        let c = Arc::new(Controller {
            nodes,
            leases,
            pods,
            recorder: recorder.for_component("node-controller"),
            config,
        });
        let this = c.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.pass().await {
                    tracing::warn!(error = %e, "node lifecycle pass failed");
                }
                tokio::time::sleep(this.config.period).await;
            }
        });
        c
    }

    async fn pass(&self) -> Result<(), ApiError> {
        let now_s = crate::registry::now_secs();
        let opts = WriteOptions::default();
        for node in self.nodes.list(None) {
            let name = node.metadata.name.clone().unwrap_or_default();
            let lease = self.leases.get(&format!("{LEASE_NAMESPACE}/{name}"));
            let plan = node_plan(&node, lease.as_deref(), now_s, self.config.grace);
            if plan.mark_unknown {
                tracing::info!(node = name, "node stopped posting status: Ready=Unknown");
                self.nodes
                    .registry
                    .modify(None, &name, Part::Status, &opts, |old| {
                        let mut n = old.clone();
                        let status = n.status.get_or_insert_with(Default::default);
                        let conditions = status.conditions.get_or_insert_with(Vec::new);
                        for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
                            match conditions.iter_mut().find(|c| c.type_ == t) {
                                Some(c) if c.status != "Unknown" => {
                                    c.status = "Unknown".into();
                                    c.reason = Some("NodeStatusUnknown".into());
                                    c.message = Some("Kubelet stopped posting node status.".into());
                                    c.last_transition_time = Some(now());
                                }
                                Some(_) => {}
                                None => conditions.push(NodeCondition {
                                    type_: t.into(),
                                    status: "Unknown".into(),
                                    reason: Some("NodeStatusNeverUpdated".into()),
                                    message: Some("Kubelet never posted node status.".into()),
                                    last_transition_time: Some(now()),
                                    last_heartbeat_time: None,
                                }),
                            }
                        }
                        Ok(n)
                    })
                    .await?;
                self.recorder.normal(
                    reference(node.as_ref()),
                    "NodeNotReady",
                    format!("Node {name} status is now: NodeNotReady"),
                );
                self.mark_pods_not_ready(&name).await?;
            }
            if let Some(taints) = plan.taints {
                self.nodes
                    .registry
                    .modify(None, &name, Part::Main, &opts, |old| {
                        let mut n = old.clone();
                        n.spec.get_or_insert_with(Default::default).taints =
                            (!taints.is_empty()).then(|| taints.clone());
                        Ok(n)
                    })
                    .await?;
            }
            self.evict(&node, now_s).await?;
        }
        Ok(())
    }

    /// The pods of an unreachable node stop being Ready (endpoints drop them).
    async fn mark_pods_not_ready(&self, node: &str) -> Result<(), ApiError> {
        for pod in self
            .pods
            .list(None)
            .iter()
            .filter(|p| podutil::node_name(p) == node)
        {
            if !podutil::is_ready(pod) {
                continue;
            }
            let r = self
                .pods
                .registry
                .modify(
                    pod.metadata.namespace.as_deref(),
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    Part::Status,
                    &WriteOptions::default(),
                    |old| {
                        let mut p = old.clone();
                        for c in p
                            .status
                            .iter_mut()
                            .flat_map(|s| s.conditions.iter_mut().flatten())
                        {
                            if c.type_ == "Ready" && c.status == "True" {
                                c.status = "False".into();
                                c.reason = Some("NodeNotReady".into());
                                c.last_transition_time = Some(now());
                            }
                        }
                        Ok(p)
                    },
                )
                .await;
            match r {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Taint-based eviction: delete pods whose tolerations of the node's NoExecute taints ran out.
    async fn evict(&self, node: &Node, now_s: i64) -> Result<(), ApiError> {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        if !taints.iter().any(|t| t.effect == "NoExecute") {
            return Ok(());
        }
        for pod in self
            .pods
            .list(None)
            .iter()
            .filter(|p| podutil::node_name(p) == name)
        {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if eviction_time(pod, &taints).is_some_and(|at| at <= now_s) {
                let pname = pod.metadata.name.clone().unwrap_or_default();
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                tracing::info!(node = name, pod = %format!("{ns}/{pname}"), "evicting: NoExecute taint not tolerated");
                self.recorder.normal(
                    reference(pod.as_ref()),
                    "TaintManagerEviction",
                    format!("Marking for deletion Pod {ns}/{pname}"),
                );
                let opts = DeleteOptions {
                    preconditions: Some(Preconditions {
                        uid: pod.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match self
                    .pods
                    .registry
                    .delete(Some(&ns), &pname, &opts, false)
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: &str, heartbeat: i64, extra: serde_json::Value) -> Node {
        let t = |s: i64| {
            k8s_openapi::jiff::Timestamp::from_second(s)
                .unwrap()
                .to_string()
        };
        let mut v = json!({
            "metadata": {"name": "n1", "creationTimestamp": t(0)},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": t(heartbeat)}]}
        });
        json_patch::merge(&mut v, &extra);
        serde_json::from_value(v).unwrap()
    }

    const GRACE: Duration = Duration::from_secs(40);

    #[test]
    fn a_silent_node_becomes_unknown_and_unreachable() {
        let n = node("True", 1000, json!({}));
        assert_eq!(node_plan(&n, None, 1030, GRACE), NodePlan::default());
        let p = node_plan(&n, None, 1041, GRACE);
        assert!(p.mark_unknown);
        let taints = p.taints.unwrap();
        let keys: Vec<(&str, &str)> = taints
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            [(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]
        );
        assert!(taints[1].time_added.is_some());
    }

    #[test]
    fn a_fresh_lease_keeps_a_node_alive() {
        let n = node("True", 0, json!({}));
        let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "n1"}, "spec": {"renewTime": "1970-01-01T00:16:40.000000Z"}})).unwrap();
        assert!(!node_plan(&n, Some(&lease), 1010, GRACE).mark_unknown);
    }

    #[test]
    fn taints_follow_readiness_and_cordon() {
        let n = node("False", 1000, json!({}));
        let keys: Vec<String> = node_plan(&n, None, 1001, GRACE)
            .taints
            .unwrap()
            .iter()
            .map(|t| t.key.clone())
            .collect();
        assert_eq!(keys, [NOT_READY, NOT_READY]);
        let cordoned = node(
            "True",
            1000,
            json!({"spec": {"unschedulable": true, "taints": [{"key": NOT_READY, "effect": "NoSchedule"}]}}),
        );
        let t = node_plan(&cordoned, None, 1001, GRACE).taints.unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].key, UNSCHEDULABLE);
    }

    #[test]
    fn eviction_waits_for_toleration_seconds() {
        let taints = vec![Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(1000).unwrap(),
            )),
            value: None,
        }];
        let pod = |tol: serde_json::Value| -> Pod {
            serde_json::from_value(
                json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tol}}),
            )
            .unwrap()
        };
        assert_eq!(eviction_time(&pod(json!([])), &taints), Some(i64::MIN));
        let default = pod(
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
        );
        assert_eq!(eviction_time(&default, &taints), Some(1300));
        let forever =
            pod(json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]));
        assert_eq!(eviction_time(&forever, &taints), None);
    }
}
